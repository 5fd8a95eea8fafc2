//! Script modules as Bevy assets: [`WasmModule`], its loader and its errors.
//!
//! The asset itself lives here; [`WasmModuleLoader`] and its settings in
//! `loader.rs`, [`WasmModuleLoaderError`] in `error.rs`, and the per-file
//! order of reads that loader and runtime share in `load_order.rs`.

mod error;
mod load_order;
mod loader;

pub use error::WasmModuleLoaderError;
pub(crate) use load_order::{FileLoads, LoadOrder};
pub use loader::{WasmModuleLoader, WasmModuleSettings};

use bevy::platform::time::Instant;
use bevy::prelude::*;

use crate::capabilities::{Capabilities, Grant, ManifestError, find_section};
use crate::engine::WasmEngine;
use crate::files::content_hash;
use crate::host::{HostState, REQUIRED_EXPORTS, ScriptWorldPre};
use crate::sandbox::GuestLimits;
use crate::source::ModuleOrigin;
use crate::trust::Verified;
use error::{describe_other_world, describe_unprovided_imports};
use std::sync::Arc;

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
    pre: ScriptWorldPre<HostState>,
    load_started: Instant,
    origin: ModuleOrigin,
    verified: Option<Verified>,
    grant: Arc<Grant>,
}

impl WasmModule {
    /// Compiles `bytes` as a script component and pre-links it.
    ///
    /// `path` names the module in errors and logs. This is what
    /// [`WasmModuleLoader`] does; call it directly for modules that do not
    /// come from a file. Such a module is the game's own: it is granted what
    /// its `hotwasm:capabilities` section asks for, or everything when it
    /// has none (no [`CapabilityPolicy`] ceiling applies).
    ///
    /// [`CapabilityPolicy`]: crate::capabilities::CapabilityPolicy
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
        // Imports first: a module of another world version lacks an export
        // too, and the import error names both versions.
        let instance_pre = engine
            .linker_for(&component)
            .instantiate_pre(&component)
            .map_err(|error| WasmModuleLoaderError::UnsatisfiedImport {
                path: path.clone(),
                error: Arc::new(error),
                world: describe_other_world(bytes),
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
        let pre = ScriptWorldPre::new(instance_pre).map_err(|error| {
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

    pub(crate) fn pre(&self) -> &ScriptWorldPre<HostState> {
        &self.pre
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
