//! Script modules as Bevy assets: [`WasmModule`], its loader and its errors.

use bevy::asset::io::{AssetReaderError, AssetSourceId, Reader};
use bevy::asset::{AssetLoader, AssetPath, LoadContext, ReadAssetBytesError};
use bevy::platform::time::Instant;
use bevy::prelude::*;
use thiserror::Error;

use crate::capabilities::{
    Capabilities, CapabilityPolicy, Grant, ManifestError, NarrowingError, Vouched, find_section,
};
use crate::engine::WasmEngine;
use crate::files::content_hash;
use crate::host::{HostState, REQUIRED_EXPORTS, ScriptPre};
use crate::sandbox::{GuestLimits, MetaLimits};
use crate::source::{ModuleOrigin, ServedOrigins};
use crate::trust::{ModuleTrust, SignatureError, Verified, signature_path};
use bevy::platform::collections::HashMap;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A compiled and pre-linked script component, ready to instantiate.
///
/// Load it with the [`AssetServer`] (`asset_server.load("modules/hello.wasm")`)
/// and put the handle in a [`WasmScript`](crate::WasmScript). Loading compiles
/// the component and links it against the host's imports off the main thread,
/// so a module that could not run never becomes an asset.
#[derive(Asset, TypePath, Clone)]
pub struct WasmModule {
    path: String,
    /// Which read of its file this is, in the order its loader began them
    /// (from 1); 0 for a module made with [`WasmModule::from_bytes`].
    read: u64,
    size: usize,
    content_hash: u64,
    limits: GuestLimits,
    /// Whether its `.wasm.meta` lowered any of the game's limits.
    narrowed_limits: bool,
    pre: ScriptPre<HostState>,
    load_started: Instant,
    origin: ModuleOrigin,
    verified: Option<Verified>,
    grant: Arc<Grant>,
}

/// A module's loader settings, from its `.wasm.meta` file:
///
/// ```ron
/// (
///     meta_format_version: "1.0",
///     asset: Load(
///         loader: "bevy_hotwasm::asset::WasmModuleLoader",
///         settings: (limits: Some((cpu_budget_ms: Some(5), max_memory_bytes: Some(8388608)))),
///     ),
/// )
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WasmModuleSettings {
    /// Lower limits for this module than the game's
    /// ([`Sandbox::limits`](crate::Sandbox::limits)): each field may only
    /// lower the game's; one asking for more is held to the game's, with a
    /// warning ([`MetaLimits`]).
    pub limits: Option<MetaLimits>,
    /// A capability manifest ([`Capabilities`]) that narrows what the
    /// module is granted, e.g. `capabilities: Some("kv.read tuning\nframe")`.
    /// It may only take away: one that asks for anything the module is
    /// not granted by its own request and the game's ceilings is refused
    /// ([`WasmModuleLoaderError::WideningMeta`]), since `.wasm.meta` files
    /// are not signed.
    pub capabilities: Option<String>,
}

impl WasmModule {
    /// Compiles `bytes` as a script component and pre-links it.
    ///
    /// `path` names the module in errors and logs. This is what
    /// [`WasmModuleLoader`] does; call it directly for modules that do not
    /// come from a file. Such a module is the game's own: it is granted what
    /// its `hotwasm:capabilities` section asks for, or everything when it
    /// has none (no [`CapabilityPolicy`] ceiling applies).
    pub fn from_bytes(
        engine: &WasmEngine,
        path: impl Into<String>,
        bytes: &[u8],
    ) -> Result<Self, WasmModuleLoaderError> {
        let path = path.into();
        check_header(&path, bytes)?;
        let requested = requested_capabilities(&path, bytes)?;
        let grant = requested.map_or_else(Grant::everything, Grant::as_requested);
        let component = engine
            .compile(bytes)
            .map_err(|error| WasmModuleLoaderError::Compile {
                path: path.clone(),
                error: Arc::new(error),
                imports: describe_unprovided_imports(bytes),
            })?;
        if let Some(export) = REQUIRED_EXPORTS
            .into_iter()
            .find(|name| component.get_export_index(None, name).is_none())
        {
            return Err(WasmModuleLoaderError::MissingExport {
                path,
                export: export.to_owned(),
            });
        }
        let instance_pre = engine
            .linker_for(&component)
            .instantiate_pre(&component)
            .map_err(|error| WasmModuleLoaderError::UnsatisfiedImport {
                path: path.clone(),
                error: Arc::new(error),
            })?;
        let pre = ScriptPre::new(instance_pre).map_err(|error| {
            WasmModuleLoaderError::ExportMismatch {
                path: path.clone(),
                error: Arc::new(error),
            }
        })?;
        Ok(Self {
            limits: *engine.sandbox().limits_for(&path),
            path,
            read: 0,
            size: bytes.len(),
            content_hash: content_hash(bytes),
            narrowed_limits: false,
            pre,
            load_started: Instant::now(),
            origin: ModuleOrigin::Bytes,
            verified: None,
            grant: Arc::new(grant),
        })
    }

    /// The asset path the module was loaded from, e.g. `modules/hello.wasm`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Which read of its file this is, counted per file in the order its
    /// loader began them (from 1); 0 for a module made with
    /// [`WasmModule::from_bytes`]. A newer read always wins over an older
    /// one that finishes later (see [`WasmModuleLoader`]).
    pub fn read(&self) -> u64 {
        self.read
    }

    /// Size of the component in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// When its loader began to read the file (for a module made with
    /// [`WasmModule::from_bytes`], when that was called): the start of the
    /// time [`ModuleStatus::last_reload`](crate::ModuleStatus::last_reload)
    /// reports.
    pub fn load_started(&self) -> Instant {
        self.load_started
    }

    /// A hash of the component's bytes: equal bytes, equal hash.
    pub fn content_hash(&self) -> u64 {
        self.content_hash
    }

    /// Where its bytes came from: a file, a remote source's server, cache or
    /// embedded copy, another asset source, or [`WasmModule::from_bytes`].
    pub fn origin(&self) -> &ModuleOrigin {
        &self.origin
    }

    /// How it passed the trust policy: signed by which key, built into the
    /// game, or unsigned where that is allowed; `None` for a module made
    /// with [`WasmModule::from_bytes`], which checks nothing.
    pub fn verified(&self) -> Option<&Verified> {
        self.verified.as_ref()
    }

    /// The limits its instances get: the game's for it
    /// ([`Sandbox::limits_for`](crate::Sandbox::limits_for)), lowered by
    /// its `.wasm.meta`.
    pub fn limits(&self) -> &GuestLimits {
        &self.limits
    }

    /// Whether its `.wasm.meta` lowered any of the game's limits.
    pub fn has_narrowed_limits(&self) -> bool {
        self.narrowed_limits
    }

    /// What it may touch: what it asked for, within the game's ceilings,
    /// narrowed by its `.wasm.meta`.
    pub fn grant(&self) -> &Arc<Grant> {
        &self.grant
    }

    pub(crate) fn pre(&self) -> &ScriptPre<HostState> {
        &self.pre
    }
}

/// The contents of the module's `.wasm.sig`, or `None` when there is none.
/// Read through the module's own asset source, so a remote module's
/// signature comes from the same server (and a changed `.sig` reloads it).
async fn read_signature(
    load_context: &mut LoadContext<'_>,
    path: &str,
) -> Result<Option<Vec<u8>>, WasmModuleLoaderError> {
    let module = load_context.path();
    let signature_path = AssetPath::from_path_buf(signature_path(module.path()))
        .with_source(module.source().clone_owned());
    match load_context.read_asset_bytes(signature_path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(ReadAssetBytesError::AssetReaderError(AssetReaderError::NotFound(_))) => Ok(None),
        Err(error) => Err(WasmModuleLoaderError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(format!("reading its signature: {error}")),
        }),
    }
}

/// What the module's `hotwasm:capabilities` section asks for, if it has one.
fn requested_capabilities(
    path: &str,
    bytes: &[u8],
) -> Result<Option<Capabilities>, WasmModuleLoaderError> {
    let Some(section) = find_section(bytes) else {
        return Ok(None);
    };
    let manifest_error = |error: ManifestError| WasmModuleLoaderError::Capabilities {
        path: path.to_owned(),
        error,
    };
    let text = std::str::from_utf8(&section).map_err(|_| {
        manifest_error(ManifestError {
            line: 0,
            message: "the section is not UTF-8 text".to_owned(),
        })
    })?;
    Capabilities::parse(text).map(Some).map_err(manifest_error)
}

/// The most imports [`describe_unprovided_imports`] names.
const NAMED_IMPORTS: usize = 3;

/// For a component wasmtime refused: how many instances it imports at its
/// top level, and which of them this host does not provide (every import
/// the host links is a `wasi:` or `hotwasm:` interface), so an error such
/// as the validator's instance limit still names what is missing. Empty
/// when every import is one the host may provide.
fn describe_unprovided_imports(bytes: &[u8]) -> String {
    use wasmparser::{Parser, Payload};
    let (mut imports, mut unprovided, mut depth) = (0usize, Vec::new(), 0usize);
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::ModuleSection { .. } | Payload::ComponentSection { .. }) => depth += 1,
            Ok(Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(Payload::ComponentImportSection(section)) if depth == 0 => {
                for import in section.into_iter().flatten() {
                    imports += 1;
                    let name = import.name.name;
                    if !(name.starts_with("wasi:") || name.starts_with("hotwasm:")) {
                        unprovided.push(name.to_owned());
                    }
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if unprovided.is_empty() {
        return String::new();
    }
    let more = unprovided.len().saturating_sub(NAMED_IMPORTS);
    unprovided.truncate(NAMED_IMPORTS);
    let named = unprovided.join("`, `");
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        " (it imports {imports} items; this host provides none of `{named}`{more}: only \
         `wasi:` and `hotwasm:` interfaces)"
    )
}

/// Tells apart "not Wasm at all" and "a core module" before asking wasmtime,
/// whose error for both is a less helpful parse failure.
fn check_header(path: &str, bytes: &[u8]) -> Result<(), WasmModuleLoaderError> {
    const MAGIC: &[u8; 4] = b"\0asm";
    // Bytes 4..8 are a version and a layer; layer 0 is a core module, 1 a component.
    const CORE_MODULE_LAYER: [u8; 2] = [0, 0];
    if !bytes.starts_with(MAGIC) {
        return Err(WasmModuleLoaderError::NotWasm {
            path: path.to_owned(),
        });
    }
    if bytes.get(6..8) == Some(&CORE_MODULE_LAYER[..]) {
        return Err(WasmModuleLoaderError::CoreModule {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// Why a module could not be loaded. Every variant names the module.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WasmModuleLoaderError {
    /// The file could not be read.
    #[error("could not read module {path}: {source}")]
    Io {
        /// The module's asset path.
        path: String,
        /// What the reader reported.
        #[source]
        source: std::io::Error,
    },
    /// The module's signature was refused: it is unsigned where its source
    /// requires a signature, the signature is malformed, names an untrusted
    /// key, or does not match the bytes. Nothing was compiled.
    #[error("module {path} was refused: {error}")]
    Signature {
        /// The module's asset path.
        path: String,
        /// Why, by kind.
        #[source]
        error: SignatureError,
    },
    /// The bytes do not start with the WebAssembly magic number.
    #[error("module {path} is not WebAssembly: it does not start with the `\\0asm` magic bytes")]
    NotWasm {
        /// The module's asset path.
        path: String,
    },
    /// A core WebAssembly module, where a component is needed.
    #[error(
        "module {path} is a core WebAssembly module, not a component: build it for \
         `wasm32-wasip2`, or wrap it with `wasm-tools component new`"
    )]
    CoreModule {
        /// The module's asset path.
        path: String,
    },
    /// A component header, but wasmtime could not validate or compile it
    /// (truncated or corrupt bytes, an unsupported proposal, ...).
    #[error("module {path} is not a valid component: {error:#}{imports}")]
    Compile {
        /// The module's asset path.
        path: String,
        /// wasmtime's error (shared, so a failed load can be kept and cloned).
        #[source]
        error: Arc<wasmtime::Error>,
        /// The imports this host does not provide, when they explain the
        /// refusal (a component over the validator's limits); else empty.
        imports: String,
    },
    /// The component lacks an export of the `hotwasm:script` world.
    #[error(
        "module {path} does not export `{export}`: it was not built for the hotwasm:script world"
    )]
    MissingExport {
        /// The module's asset path.
        path: String,
        /// The missing export's WIT name.
        export: String,
    },
    /// The component imports something this host does not provide, or
    /// provides with another type.
    #[error("module {path} cannot be linked: {error:#}")]
    UnsatisfiedImport {
        /// The module's asset path.
        path: String,
        /// wasmtime's error, which names the import.
        #[source]
        error: Arc<wasmtime::Error>,
    },
    /// The module's `hotwasm:capabilities` section, or the capabilities
    /// of its `.wasm.meta`, could not be read.
    #[error("module {path} has a capability manifest that cannot be read: {error}")]
    Capabilities {
        /// The module's asset path.
        path: String,
        /// Which line, and why.
        #[source]
        error: ManifestError,
    },
    /// Its `.wasm.meta` asks for capabilities beyond what the module is
    /// granted: a meta file may only narrow a grant.
    #[error("module {path} was refused: {error}")]
    WideningMeta {
        /// The module's asset path.
        path: String,
        /// What it asked for beyond the grant.
        #[source]
        error: NarrowingError,
    },
    /// An export of the `hotwasm:script` world has the wrong type.
    #[error("module {path} has an export of the wrong type: {error:#}")]
    ExportMismatch {
        /// The module's asset path.
        path: String,
        /// wasmtime's error, which names the export.
        #[source]
        error: Arc<wasmtime::Error>,
    },
}

impl Clone for WasmModuleLoaderError {
    /// The same error; an I/O error keeps its kind and its message.
    fn clone(&self) -> Self {
        match self {
            Self::Io { path, source } => Self::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Self::Signature { path, error } => Self::Signature {
                path: path.clone(),
                error: error.clone(),
            },
            Self::NotWasm { path } => Self::NotWasm { path: path.clone() },
            Self::CoreModule { path } => Self::CoreModule { path: path.clone() },
            Self::Compile {
                path,
                error,
                imports,
            } => Self::Compile {
                path: path.clone(),
                error: error.clone(),
                imports: imports.clone(),
            },
            Self::MissingExport { path, export } => Self::MissingExport {
                path: path.clone(),
                export: export.clone(),
            },
            Self::UnsatisfiedImport { path, error } => Self::UnsatisfiedImport {
                path: path.clone(),
                error: error.clone(),
            },
            Self::Capabilities { path, error } => Self::Capabilities {
                path: path.clone(),
                error: error.clone(),
            },
            Self::WideningMeta { path, error } => Self::WideningMeta {
                path: path.clone(),
                error: error.clone(),
            },
            Self::ExportMismatch { path, error } => Self::ExportMismatch {
                path: path.clone(),
                error: error.clone(),
            },
        }
    }
}

/// The reads of each module file in the order their loads began, and the
/// newest outcome of each file: its newest module that loaded and its
/// newest failure, if newer. Bevy starts a load for every change of a
/// file and applies their results in the order they finish, so a slow
/// older read could land after a newer one; the loader and the runtime
/// both go by this order instead. Shared by the loader and the runtime.
#[derive(Resource, Clone, Default)]
pub(crate) struct LoadOrder(Arc<Mutex<HashMap<String, FileLoads>>>);

/// One file's reads: how many began, and the newest outcomes.
#[derive(Clone, Default)]
pub(crate) struct FileLoads {
    began: u64,
    /// The newest read that loaded.
    pub loaded: Option<WasmModule>,
    /// The newest read that failed, when newer than `loaded`: (read, why).
    pub failed: Option<(u64, WasmModuleLoaderError)>,
}

impl LoadOrder {
    fn files(&self) -> MutexGuard<'_, HashMap<String, FileLoads>> {
        // Every change under the lock is one assignment: a panic cannot
        // leave it half-made.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Numbers a read of `path` that begins now.
    fn begin(&self, path: &str) -> u64 {
        let mut files = self.files();
        let loads = files.entry(path.to_owned()).or_default();
        loads.began += 1;
        loads.began
    }

    /// Records what read `read` of `path` gave, and returns what Bevy
    /// should apply. A module that loaded is recorded unless a newer read
    /// loaded (then Bevy gets that newer one again, never the older); a
    /// failure is recorded when newer than every outcome (a failed update
    /// leaves the newest module that loaded running).
    fn finish(
        &self,
        path: &str,
        read: u64,
        outcome: Result<WasmModule, WasmModuleLoaderError>,
    ) -> Result<WasmModule, WasmModuleLoaderError> {
        let mut files = self.files();
        let loads = files.entry(path.to_owned()).or_default();
        let loaded = loads.loaded.as_ref().map_or(0, WasmModule::read);
        let failed = loads.failed.as_ref().map_or(0, |(read, _)| *read);
        match outcome {
            Ok(module) if read > loaded => {
                loads.loaded = Some(module.clone());
                if failed < read {
                    loads.failed = None;
                }
                Ok(module)
            }
            Ok(older) => Ok(loads.loaded.clone().unwrap_or(older)),
            Err(error) => {
                if read > loaded.max(failed) {
                    loads.failed = Some((read, error.clone()));
                }
                Err(error)
            }
        }
    }

    /// The newest outcomes of `path`'s reads, if the loader read it.
    pub fn newest(&self, path: &str) -> Option<FileLoads> {
        self.files().get(path).cloned()
    }

    /// Forgets `path` (its asset is gone), freeing its newest module.
    pub fn forget(&self, path: &str) {
        self.files().remove(path);
    }
}

/// Loads `.wasm` files as [`WasmModule`]s: checks the signature in the
/// `.wasm.sig` beside the module against [`ModuleTrust`], then compiles and
/// links, all in `load`. Each read of a file is numbered when it begins
/// ([`WasmModule::read`]): a read that loads after a newer one of the
/// same file loaded gives that newer module instead of its own, so an older
/// version never replaces a newer one, however the loads interleave.
///
/// Its type path, `bevy_hotwasm::asset::WasmModuleLoader`, is the loader's
/// name in every `.wasm.meta` file; it is spelled out here so that it stays
/// the same wherever the type lives.
#[derive(TypePath)]
#[type_path = "bevy_hotwasm::asset"]
#[type_name = "WasmModuleLoader"]
pub struct WasmModuleLoader {
    order: LoadOrder,
    engine: WasmEngine,
    trust: ModuleTrust,
    capabilities: CapabilityPolicy,
    origins: ServedOrigins,
}

impl FromWorld for WasmModuleLoader {
    fn from_world(world: &mut World) -> Self {
        let engine = world
            .get_resource::<WasmEngine>()
            .expect("WasmModuleLoader needs the WasmEngine resource: add HotWasmPlugin")
            .clone();
        let trust = world.get_resource_or_init::<ModuleTrust>().clone();
        let origins = world.get_resource_or_init::<ServedOrigins>().clone();
        let capabilities = world.get_resource_or_init::<CapabilityPolicy>().clone();
        let order = world.get_resource_or_init::<LoadOrder>().clone();
        Self {
            order,
            engine,
            trust,
            capabilities,
            origins,
        }
    }
}

/// Runs `compile` on wasmtime's compile threads (rayon's pool, one per core)
/// and waits for it there, not on the loader's thread: Bevy's IO pool has a
/// single thread on a small machine, which would compile one module at a
/// time. A compile that panics is an error of the module, not of the game.
async fn on_compile_threads(
    compile: impl FnOnce() -> Result<WasmModule, WasmModuleLoaderError> + Send + 'static,
    path: String,
) -> Result<WasmModule, WasmModuleLoaderError> {
    let (done, finished) = async_channel::bounded(1);
    rayon::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(compile));
        // The load was dropped if nobody waits any more.
        let _ = done.try_send(result);
    });
    match finished.recv().await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => {
            let message = (panic.downcast_ref::<&str>().copied())
                .or(panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("no message");
            Err(compile_error(
                path,
                format!("the compiler panicked: {message}"),
            ))
        }
        Err(_) => Err(compile_error(path, "the compile thread stopped")),
    }
}

/// A compile error of the host's own making (no wasmtime error behind it).
fn compile_error(path: String, message: impl Into<String>) -> WasmModuleLoaderError {
    WasmModuleLoaderError::Compile {
        path,
        error: Arc::new(wasmtime::Error::msg(message.into())),
        imports: String::new(),
    }
}

impl WasmModuleLoader {
    /// What the module asks for, within the ceilings for its source and
    /// signer, narrowed by its `.wasm.meta`; a warning when the ceilings
    /// took something away.
    fn grant(
        &self,
        path: &str,
        bytes: &[u8],
        source: &AssetSourceId,
        verified: &Verified,
        settings: &WasmModuleSettings,
    ) -> Result<Grant, WasmModuleLoaderError> {
        let requested = requested_capabilities(path, bytes)?;
        let narrowed = settings
            .capabilities
            .as_deref()
            .map(Capabilities::parse)
            .transpose()
            .map_err(|error| WasmModuleLoaderError::Capabilities {
                path: path.to_owned(),
                error,
            })?;
        let vouched = match verified {
            Verified::Signed { key_id, .. } => Vouched::Signed(key_id),
            Verified::Embedded | Verified::Unsigned => Vouched::Game,
        };
        let grant = self
            .capabilities
            .grant(requested.as_ref(), source, vouched, narrowed.as_ref())
            .map_err(|error| WasmModuleLoaderError::WideningMeta {
                path: path.to_owned(),
                error,
            })?;
        if !grant.denied_by_ceiling().is_empty() {
            warn!(
                "module {path} asks for more than the game allows it; not granted: {}",
                grant.denied_by_ceiling().join("; ")
            );
        }
        Ok(grant)
    }
}

impl AssetLoader for WasmModuleLoader {
    type Asset = WasmModule;
    type Settings = WasmModuleSettings;
    type Error = WasmModuleLoaderError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        settings: &WasmModuleSettings,
        load_context: &mut LoadContext<'_>,
    ) -> Result<WasmModule, WasmModuleLoaderError> {
        let path = load_context.path().to_string();
        let read = self.order.begin(&path);
        let outcome = self.read_and_compile(reader, settings, load_context).await;
        let outcome = outcome.map(|module| WasmModule { read, ..module });
        self.order.finish(&path, read, outcome)
    }

    fn extensions(&self) -> &[&str] {
        &["wasm"]
    }
}

impl WasmModuleLoader {
    /// What `load` does for one read, in the order it was begun or not.
    async fn read_and_compile(
        &self,
        reader: &mut dyn Reader,
        settings: &WasmModuleSettings,
        load_context: &mut LoadContext<'_>,
    ) -> Result<WasmModule, WasmModuleLoaderError> {
        let load_started = Instant::now();
        let path = load_context.path().to_string();
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .await
            .map_err(|source| WasmModuleLoaderError::Io {
                path: path.clone(),
                source,
            })?;
        let signature = read_signature(load_context, &path).await?;
        let source = load_context.path().source();
        let verified = self
            .trust
            .read()
            .verify(source, &bytes, signature.as_deref())
            .map_err(|error| WasmModuleLoaderError::Signature {
                path: path.clone(),
                error,
            })?;
        let origin = self.origins.get(&path).unwrap_or_else(|| match source {
            AssetSourceId::Default => ModuleOrigin::File,
            AssetSourceId::Name(name) => ModuleOrigin::Source(name.to_string()),
        });
        let grant = self.grant(&path, &bytes, source, &verified, settings)?;
        let engine = self.engine.clone();
        let named = path.clone();
        let compile = move || WasmModule::from_bytes(&engine, named, &bytes);
        let mut module = on_compile_threads(compile, path).await?;
        if let Some(meta) = &settings.limits {
            let (limits, raised) = module.limits.narrowed_by(meta);
            if !raised.is_empty() {
                let raised: Vec<String> = raised.iter().map(ToString::to_string).collect();
                warn!(
                    "module {}: its .wasm.meta asks for more than the game allows, held to the \
                     game's limits: {}",
                    module.path,
                    raised.join("; ")
                );
            }
            module.narrowed_limits = limits != module.limits;
            module.limits = limits;
        }
        module.load_started = load_started;
        module.origin = origin;
        module.verified = Some(verified);
        module.grant = Arc::new(grant);
        Ok(module)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_keeps_the_name_meta_files_give_it() {
        // Bevy writes the loader's type path into every `.wasm.meta` and
        // finds the loader by it: a change orphans every meta file.
        assert_eq!(
            <WasmModuleLoader as TypePath>::type_path(),
            "bevy_hotwasm::asset::WasmModuleLoader"
        );
        assert_eq!(
            <WasmModuleLoader as TypePath>::short_type_path(),
            "WasmModuleLoader"
        );
    }

    #[test]
    fn a_compile_that_panics_is_an_error_naming_the_module() {
        let compile = || -> Result<WasmModule, WasmModuleLoaderError> { panic!("on purpose") };
        let result = bevy::tasks::block_on(on_compile_threads(compile, "modules/x.wasm".into()));
        let Err(error @ WasmModuleLoaderError::Compile { .. }) = result else {
            panic!("expected a compile error");
        };
        assert_eq!(
            error.to_string(),
            "module modules/x.wasm is not a valid component: the compiler panicked: on purpose"
        );
    }

    #[test]
    fn a_component_over_the_validators_limits_is_refused_naming_its_imports() {
        let imports: String = (0..10_000)
            .map(|n| format!("(import \"mod:missing/thing-{n}\" (instance))\n"))
            .collect();
        let bytes = wat::parse_str(format!("(component {imports})")).unwrap();
        let engine = WasmEngine::build(Default::default(), &Default::default()).unwrap();
        let Err(WasmModuleLoaderError::Compile {
            path,
            error,
            imports,
        }) = WasmModule::from_bytes(&engine, "modules/many.wasm", &bytes)
        else {
            panic!("expected a compile error");
        };
        assert_eq!(path, "modules/many.wasm");
        assert!(format!("{error:#}").contains("exceeds limit"), "{error:#}");
        assert!(
            imports.contains(
                "it imports 10000 items; this host provides none of `mod:missing/thing-0`, \
                 `mod:missing/thing-1`, `mod:missing/thing-2` and 9997 more"
            ),
            "{imports}"
        );
    }

    #[test]
    fn compiles_run_off_the_calling_thread() {
        let caller = std::thread::current().id();
        let compile = move || {
            assert_ne!(std::thread::current().id(), caller);
            Err(compile_error("modules/x.wasm".into(), "checked"))
        };
        let result = bevy::tasks::block_on(on_compile_threads(compile, "modules/x.wasm".into()));
        assert!(
            matches!(result, Err(WasmModuleLoaderError::Compile { error, .. }) if error.to_string() == "checked")
        );
    }
}
