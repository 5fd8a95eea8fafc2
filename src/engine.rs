//! The one wasmtime [`Engine`] and [`Linker`] every module and instance shares.

use std::sync::Arc;
use std::time::Duration;

use bevy::prelude::*;
use crossbeam_channel::{RecvTimeoutError, Sender};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::host::{self, HostState};
use crate::sandbox::Sandbox;

/// How often the epoch ticks: the unit of [`GuestLimits::cpu_budget_ms`](crate::GuestLimits::cpu_budget_ms).
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The shared wasmtime engine, the linkers that hold every host import (one
/// per shape of `wasi:keyvalue`'s `get-many`), and the [`Sandbox`] it was
/// built for.
///
/// Inserted by [`HotWasmPlugin`](crate::HotWasmPlugin). Cloning is cheap:
/// everything is reference-counted.
#[derive(Resource, Clone)]
pub struct WasmEngine {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    /// The same imports, with `get-many` in the other shape.
    pairs_linker: Arc<Linker<HostState>>,
    sandbox: Arc<Sandbox>,
}

impl WasmEngine {
    /// An engine with the default [`Sandbox`].
    pub fn new() -> wasmtime::Result<Self> {
        Self::with_sandbox(Sandbox::default())
    }

    /// Builds the engine (component model on, concurrency support off: no
    /// host import is async, and it halves the cost of every boundary
    /// crossing; epochs, fuel and the stack limit as `sandbox` says) and
    /// links WASI p2 plus every `hotwasm:script` interface.
    pub fn with_sandbox(sandbox: Sandbox) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.concurrency_support(false);
        config.max_wasm_stack(sandbox.max_wasm_stack);
        config.epoch_interruption(sandbox.epoch_interruption);
        config.consume_fuel(sandbox.fuel);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker)?;
        let mut pairs_linker = linker.clone();
        host::link_pairs_get_many(&mut pairs_linker)?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            pairs_linker: Arc::new(pairs_linker),
            sandbox: Arc::new(sandbox),
        })
    }

    /// The wasmtime engine, for callers that compile or inspect components.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The sandbox settings the engine was built with.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The linker with the `get-many` shape `component` imports.
    pub(crate) fn linker_for(&self, component: &Component) -> &Linker<HostState> {
        if host::wants_pairs_get_many(&self.engine, component) {
            &self.pairs_linker
        } else {
            &self.linker
        }
    }
}

/// Ticks the engine's epoch every [`EPOCH_TICK`] on a thread of its own
/// (a guest stuck in a loop holds the main thread); dropping it stops the
/// thread. A resource.
#[derive(Resource)]
pub(crate) struct EpochTicker {
    _stop: Sender<()>,
}

impl EpochTicker {
    pub fn start(engine: Engine) -> std::io::Result<Self> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        std::thread::Builder::new()
            .name("hotwasm epoch".to_owned())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Self { _stop: stop })
    }
}
