//! The one wasmtime [`Engine`] and [`Linker`] every module and instance shares.

use std::sync::Arc;

use bevy::prelude::*;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

use crate::host::{self, HostState};

/// wasmtime's default stack limit for guest code: 512 KiB.
pub const DEFAULT_MAX_WASM_STACK: usize = 512 * 1024;

/// The shared wasmtime engine and the linker that holds every host import.
///
/// Inserted by [`HotWasmPlugin`](crate::HotWasmPlugin). Cloning is cheap: both
/// halves are reference-counted.
#[derive(Resource, Clone)]
pub struct WasmEngine {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
}

impl WasmEngine {
    /// Builds the engine (component model on, concurrency support off: no
    /// host import is async, and it halves the cost of every boundary
    /// crossing) and links WASI p2 plus every `hotwasm:script` interface.
    pub fn new() -> wasmtime::Result<Self> {
        Self::with_max_wasm_stack(DEFAULT_MAX_WASM_STACK)
    }

    /// Like [`WasmEngine::new`], with at most `bytes` of stack for guest
    /// code (see [`HotWasmPlugin::max_wasm_stack`](crate::HotWasmPlugin::max_wasm_stack)).
    pub fn with_max_wasm_stack(bytes: usize) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.concurrency_support(false);
        config.max_wasm_stack(bytes);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker)?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
        })
    }

    /// The wasmtime engine, for callers that compile or inspect components.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }
}
