//! The one wasmtime [`Engine`] and [`Linker`] every module and instance shares.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::prelude::*;
use crossbeam_channel::{RecvTimeoutError, Sender};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::host::{self, HostState};
use crate::sandbox::Sandbox;

/// How many compiled components the engine keeps for bytes loaded again.
pub const COMPILED_KEPT: usize = 32;

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
    compiled: Arc<Compiled>,
}

/// The latest [`COMPILED_KEPT`] compiled components by the SHA-256 of their
/// bytes, most recently used last, and how many compiles there were.
#[derive(Default)]
struct Compiled {
    kept: Mutex<VecDeque<([u8; 32], Component)>>,
    compiles: AtomicU64,
}

impl Compiled {
    /// The kept components; a load that panicked while holding them left
    /// nothing half-done (each change is one push or pop).
    fn kept(&self) -> std::sync::MutexGuard<'_, VecDeque<([u8; 32], Component)>> {
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
            compiled: Arc::default(),
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

    /// `bytes` compiled, or the component compiled from the same bytes
    /// before (a module under two paths, a reload back to a version it had):
    /// the last [`COMPILED_KEPT`] are kept, found by a SHA-256 of the bytes.
    pub(crate) fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        {
            let mut kept = self.compiled.kept();
            if let Some(at) = kept.iter().position(|(key, _)| *key == digest)
                && let Some(entry) = kept.remove(at)
            {
                let component = entry.1.clone();
                kept.push_back(entry);
                return Ok(component);
            }
        }
        // Compiled outside the lock: loads on other threads go on.
        let component = Component::new(&self.engine, bytes)?;
        self.compiled.compiles.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.compiled.kept();
        kept.push_back((digest, component.clone()));
        if kept.len() > COMPILED_KEPT {
            kept.pop_front();
        }
        Ok(component)
    }

    /// How many components this engine compiled (bytes it had compiled
    /// before and still kept are not compiled again).
    pub fn compiles(&self) -> u64 {
        self.compiled.compiles.load(Ordering::Relaxed)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A component of its own bytes for each `n`.
    fn component(n: usize) -> Vec<u8> {
        wat::parse_str(format!(
            "(component (core module (func (export \"f{n}\"))))"
        ))
        .unwrap()
    }

    #[test]
    fn bytes_compiled_before_are_not_compiled_again_within_the_kept_few() {
        let engine = WasmEngine::new().unwrap();
        engine.compile(&component(0)).unwrap();
        engine.compile(&component(0)).unwrap();
        assert_eq!(engine.compiles(), 1, "the same bytes again");
        for n in 1..=COMPILED_KEPT {
            engine.compile(&component(n)).unwrap();
        }
        assert_eq!(engine.compiles(), 1 + COMPILED_KEPT as u64);
        engine.compile(&component(COMPILED_KEPT)).unwrap();
        assert_eq!(engine.compiles(), 1 + COMPILED_KEPT as u64, "kept");
        engine.compile(&component(0)).unwrap();
        assert_eq!(
            engine.compiles(),
            2 + COMPILED_KEPT as u64,
            "the oldest was let go"
        );
    }
}
