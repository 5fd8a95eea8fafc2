//! The one wasmtime [`Engine`] and [`Linker`] every module and instance shares.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::prelude::*;
use crossbeam_channel::{RecvTimeoutError, Sender};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Cache, CacheConfig, Config, Engine, Strategy};

use crate::host::{self, HostState};
use crate::sandbox::Sandbox;

/// How often the epoch ticks: the unit of [`GuestLimits::cpu_budget_ms`](crate::GuestLimits::cpu_budget_ms).
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How modules become native code: by which compiler, and whether compiled
/// code is kept on disk for the next start. Set on
/// [`HotWasmPlugin::compilation`](crate::HotWasmPlugin::compilation).
#[derive(Clone, Debug, Default)]
pub struct Compilation {
    /// Which of wasmtime's compilers turns modules into native code.
    pub compiler: Compiler,
    /// A directory where compiled modules are kept between runs, so a second
    /// start of the game compiles nothing it compiled before (wasmtime's own
    /// cache: entries are found by the module's bytes, the compiler, its
    /// settings and wasmtime's version, and one that fails wasmtime's checks
    /// is compiled again). `None`, the default, keeps nothing on disk.
    ///
    /// Whoever can write this directory can run native code in the game, as
    /// with the game's own executable: put it where only the game writes
    /// (the user's cache directory, or `target/` in development), never
    /// beside downloaded mods. A relative path is taken from the working
    /// directory. If it cannot be made, the game warns and runs without it.
    pub cache_dir: Option<PathBuf>,
}

impl Compilation {
    /// The default compiler, keeping compiled modules in `dir`.
    pub fn cached_in(dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: Some(dir.into()),
            ..default()
        }
    }
}

/// Which of wasmtime's compilers turns modules into native code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compiler {
    /// Cranelift, the optimizing compiler: the fastest guest code. The default.
    #[default]
    Optimizing,
    /// Winch, the baseline compiler: compiles a module about three times
    /// faster, for quicker starts and reloads in development, and runs guest
    /// code slower (see the book's Performance chapter). Only on x86-64
    /// and AArch64.
    Baseline,
}

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
    /// Compiled modules on disk, when [`Compilation::cache_dir`] is set and
    /// could be used.
    disk_cache: Option<Cache>,
}

/// The latest [`WasmEngine::COMPILED_KEPT`] compiled components by the
/// SHA-256 of their bytes, most recently used last, and how many components
/// wasmtime made (compiled, or read from the disk cache).
#[derive(Default)]
struct Compiled {
    kept: Mutex<VecDeque<([u8; 32], Component)>>,
    loads: AtomicU64,
}

/// wasmtime's cache of compiled modules in `dir` (made absolute, as it
/// requires), with its defaults for compression and clean-up.
fn disk_cache(dir: &std::path::Path) -> wasmtime::Result<Cache> {
    let mut config = CacheConfig::new();
    config.with_directory(std::path::absolute(dir)?);
    Cache::new(config)
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
    /// How many compiled components the engine keeps for bytes loaded again.
    pub const COMPILED_KEPT: usize = 32;

    /// An engine with the default [`Sandbox`] and [`Compilation`].
    pub fn new() -> wasmtime::Result<Self> {
        Self::build(Sandbox::default(), &Compilation::default())
    }

    /// An engine with `sandbox` and the default [`Compilation`].
    pub fn with_sandbox(sandbox: Sandbox) -> wasmtime::Result<Self> {
        Self::build(sandbox, &Compilation::default())
    }

    /// Builds the engine (component model on, concurrency support off: no
    /// host import is async, and it halves the cost of every boundary
    /// crossing; epochs, fuel and the stack limit as `sandbox` says; the
    /// compiler and cache as `compilation` says) and links WASI p2 plus
    /// every `hotwasm:script` interface.
    pub fn build(sandbox: Sandbox, compilation: &Compilation) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.strategy(match compilation.compiler {
            Compiler::Optimizing => Strategy::Cranelift,
            Compiler::Baseline => Strategy::Winch,
        });
        let disk_cache = compilation.cache_dir.as_ref().and_then(|dir| {
            disk_cache(dir)
                .inspect_err(|error| {
                    warn!(
                        "compiled modules are not kept on disk: {}: {error:#}",
                        dir.display()
                    )
                })
                .ok()
        });
        config.cache(disk_cache.clone());
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
            disk_cache,
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
    /// the last [`Self::COMPILED_KEPT`] are kept, found by a SHA-256 of the bytes.
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
        self.compiled.loads.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.compiled.kept();
        kept.push_back((digest, component.clone()));
        if kept.len() > Self::COMPILED_KEPT {
            kept.pop_front();
        }
        Ok(component)
    }

    /// How many components this engine compiled: bytes it had compiled
    /// before and still kept, and modules found compiled on disk, are not
    /// compiled again.
    pub fn compiles(&self) -> u64 {
        self.compiled.loads.load(Ordering::Relaxed) - self.disk_cache_hits()
    }

    /// How many components were found compiled on disk (see
    /// [`Compilation::cache_dir`]) instead of being compiled.
    pub fn disk_cache_hits(&self) -> u64 {
        self.disk_cache
            .as_ref()
            .map_or(0, |cache| cache.cache_hits() as u64)
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

    /// A component of its own bytes for each `n`, exporting `f{n}`.
    fn component(n: usize) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(component
                (core module $m (func (export "f")))
                (core instance $i (instantiate $m))
                (func (export "f{n}") (canon lift (core func $i "f"))))"#
        ))
        .unwrap()
    }

    #[test]
    fn bytes_compiled_before_are_not_compiled_again_within_the_kept_few() {
        let kept = WasmEngine::COMPILED_KEPT;
        let engine = WasmEngine::new().unwrap();
        engine.compile(&component(0)).unwrap();
        engine.compile(&component(0)).unwrap();
        assert_eq!(engine.compiles(), 1, "the same bytes again");
        for n in 1..=kept {
            engine.compile(&component(n)).unwrap();
        }
        assert_eq!(engine.compiles(), 1 + kept as u64);
        engine.compile(&component(kept)).unwrap();
        assert_eq!(engine.compiles(), 1 + kept as u64, "kept");
        engine.compile(&component(0)).unwrap();
        assert_eq!(engine.compiles(), 2 + kept as u64, "the oldest was let go");
    }

    fn cached_in(dir: &std::path::Path, sandbox: Sandbox) -> WasmEngine {
        WasmEngine::build(sandbox, &Compilation::cached_in(dir)).unwrap()
    }

    /// The cache's entries: one file per compiled module, beside its
    /// bookkeeping (`.stats`, unfinished `.wip-*` writes).
    fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut entries = Vec::new();
        for compiler in std::fs::read_dir(dir.join("modules")).unwrap() {
            for file in std::fs::read_dir(compiler.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_none() {
                    entries.push(path);
                }
            }
        }
        entries
    }

    /// The names a component exports.
    fn exports(engine: &WasmEngine, component: &Component) -> Vec<String> {
        let exports = component.component_type();
        exports
            .exports(engine.engine())
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// Compiles `bytes` on a new engine over `dir` and says whether it
    /// compiled (true) or found the module on disk (false); either way the
    /// component is the one `bytes` describe.
    fn compiled_on_new_engine(dir: &std::path::Path, sandbox: Sandbox, bytes: &[u8]) -> bool {
        let engine = cached_in(dir, sandbox);
        let component = engine.compile(bytes).unwrap();
        let uncached = WasmEngine::new().unwrap();
        assert_eq!(
            exports(&engine, &component),
            exports(&uncached, &uncached.compile(bytes).unwrap())
        );
        assert_eq!(engine.compiles() + engine.disk_cache_hits(), 1);
        engine.compiles() == 1
    }

    #[test]
    fn a_second_engine_over_the_same_directory_compiles_nothing_compiled_before() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = component(0);
        assert!(compiled_on_new_engine(
            dir.path(),
            Sandbox::default(),
            &bytes
        ));
        assert_eq!(entries(dir.path()).len(), 1);
        assert!(!compiled_on_new_engine(
            dir.path(),
            Sandbox::default(),
            &bytes
        ));
        assert!(
            compiled_on_new_engine(dir.path(), Sandbox::default(), &component(1)),
            "other bytes"
        );
    }

    #[test]
    fn other_engine_settings_do_not_share_compiled_modules() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = component(0);
        assert!(compiled_on_new_engine(
            dir.path(),
            Sandbox::default(),
            &bytes
        ));
        let fuel = Sandbox {
            fuel: true,
            ..default()
        };
        assert!(compiled_on_new_engine(dir.path(), fuel.clone(), &bytes));
        assert!(!compiled_on_new_engine(dir.path(), fuel, &bytes));
        let engine = WasmEngine::build(
            Sandbox::default(),
            &Compilation {
                compiler: Compiler::Baseline,
                cache_dir: Some(dir.path().to_owned()),
            },
        )
        .unwrap();
        engine.compile(&bytes).unwrap();
        assert_eq!(engine.compiles(), 1, "another compiler");
    }

    #[test]
    fn a_damaged_or_foreign_entry_is_compiled_again_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = component(0);
        assert!(compiled_on_new_engine(
            dir.path(),
            Sandbox::default(),
            &bytes
        ));
        let [entry] = entries(dir.path()).try_into().unwrap();
        let written = std::fs::read(&entry).unwrap();
        // The same module compiled with fuel metering: a valid artifact,
        // made for other settings.
        let fuel = WasmEngine::with_sandbox(Sandbox {
            fuel: true,
            ..default()
        })
        .unwrap();
        let foreign = fuel.compile(&bytes).unwrap().serialize().unwrap();
        let damaged: [(&str, Vec<u8>); 5] = [
            ("truncated", written[..written.len() / 2].to_vec()),
            ("empty", Vec::new()),
            ("garbage", b"not a compiled module".repeat(100)),
            (
                "garbage, compressed as the cache compresses",
                zstd::encode_all(&b"not a compiled module".repeat(100)[..], 0).unwrap(),
            ),
            (
                "compiled for other settings",
                zstd::encode_all(&foreign[..], 0).unwrap(),
            ),
        ];
        for (what, bytes_on_disk) in damaged {
            std::fs::write(&entry, bytes_on_disk).unwrap();
            assert!(
                compiled_on_new_engine(dir.path(), Sandbox::default(), &bytes),
                "{what}: compiled again"
            );
            assert!(
                !compiled_on_new_engine(dir.path(), Sandbox::default(), &bytes),
                "{what}: replaced by a good entry"
            );
        }
    }

    #[test]
    fn a_cache_directory_that_cannot_be_made_leaves_compiling_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a file");
        std::fs::write(&file, b"").unwrap();
        let engine = cached_in(&file.join("cache"), Sandbox::default());
        engine.compile(&component(0)).unwrap();
        assert_eq!(engine.compiles(), 1);
        assert_eq!(engine.disk_cache_hits(), 0);
    }
}
