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
use crate::sandbox::GuestLimits;
use crate::source::{ModuleOrigin, ServedOrigins};
use crate::trust::{ModuleTrust, SignatureError, Verified, signature_path};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A compiled and pre-linked script component, ready to instantiate.
///
/// Load it with the [`AssetServer`] (`asset_server.load("modules/hello.wasm")`)
/// and put the handle in a [`WasmScript`](crate::WasmScript). Loading compiles
/// the component and links it against the host's imports off the main thread,
/// so a module that could not run never becomes an asset.
#[derive(Asset, TypePath)]
pub struct WasmModule {
    path: String,
    size: usize,
    content_hash: u64,
    limits: Option<GuestLimits>,
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
///         settings: (limits: Some((cpu_budget_ms: Some(5), max_memory_bytes: 8388608))),
///     ),
/// )
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WasmModuleSettings {
    /// This module's limits, replacing the plugin's
    /// ([`Sandbox::limits`](crate::Sandbox::limits)) as a whole: fields
    /// left out take [`GuestLimits`]' defaults.
    pub limits: Option<GuestLimits>,
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
                cause: format!("{error:#}"),
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
                cause: format!("{error:#}"),
            })?;
        let pre = ScriptPre::new(instance_pre).map_err(|error| {
            WasmModuleLoaderError::ExportMismatch {
                path: path.clone(),
                cause: format!("{error:#}"),
            }
        })?;
        Ok(Self {
            path,
            size: bytes.len(),
            content_hash: content_hash(bytes),
            limits: None,
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

    /// The limits its `.wasm.meta` gave it, if any.
    pub fn limits(&self) -> Option<&GuestLimits> {
        self.limits.as_ref()
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
    #[error("module {path} is not a valid component: {cause}")]
    Compile {
        /// The module's asset path.
        path: String,
        /// wasmtime's explanation.
        cause: String,
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
    #[error("module {path} cannot be linked: {cause}")]
    UnsatisfiedImport {
        /// The module's asset path.
        path: String,
        /// wasmtime's explanation, which names the import.
        cause: String,
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
    #[error("module {path} has an export of the wrong type: {cause}")]
    ExportMismatch {
        /// The module's asset path.
        path: String,
        /// wasmtime's explanation, which names the export.
        cause: String,
    },
}

/// Loads `.wasm` files as [`WasmModule`]s: checks the signature in the
/// `.wasm.sig` beside the module against [`ModuleTrust`], then compiles and
/// links, all in `load`.
#[derive(TypePath)]
pub struct WasmModuleLoader {
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
        Self {
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
            Err(WasmModuleLoaderError::Compile {
                path,
                cause: format!("the compiler panicked: {message}"),
            })
        }
        Err(_) => Err(WasmModuleLoaderError::Compile {
            path,
            cause: "the compile thread stopped".to_owned(),
        }),
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
        module.limits = settings.limits;
        module.load_started = load_started;
        module.origin = origin;
        module.verified = Some(verified);
        module.grant = Arc::new(grant);
        Ok(module)
    }

    fn extensions(&self) -> &[&str] {
        &["wasm"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compile_that_panics_is_an_error_naming_the_module() {
        let compile = || -> Result<WasmModule, WasmModuleLoaderError> { panic!("on purpose") };
        let result = bevy::tasks::block_on(on_compile_threads(compile, "modules/x.wasm".into()));
        let Err(WasmModuleLoaderError::Compile { path, cause }) = result else {
            panic!("expected a compile error");
        };
        assert_eq!(path, "modules/x.wasm");
        assert_eq!(cause, "the compiler panicked: on purpose");
    }

    #[test]
    fn compiles_run_off_the_calling_thread() {
        let caller = std::thread::current().id();
        let compile = move || {
            assert_ne!(std::thread::current().id(), caller);
            Err(WasmModuleLoaderError::Compile {
                path: "modules/x.wasm".into(),
                cause: "checked".into(),
            })
        };
        let result = bevy::tasks::block_on(on_compile_threads(compile, "modules/x.wasm".into()));
        assert!(
            matches!(result, Err(WasmModuleLoaderError::Compile { cause, .. }) if cause == "checked")
        );
    }
}
