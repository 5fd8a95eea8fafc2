//! [`WasmModuleLoader`]: `.wasm` files checked against the trust policy,
//! granted their capabilities and compiled on wasmtime's compile threads;
//! per-module [`WasmModuleSettings`] from `.wasm.meta`.

use bevy::asset::io::{AssetReaderError, AssetSourceId, Reader};
use bevy::asset::{AssetLoader, AssetPath, LoadContext, ReadAssetBytesError};
use bevy::platform::time::Instant;
use bevy::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::load_order::LoadOrder;
use super::{WasmModule, WasmModuleLoaderError, requested_capabilities};
use crate::capabilities::{Capabilities, CapabilityPolicy, Grant, Vouched};
use crate::engine::WasmEngine;
use crate::sandbox::MetaLimits;
use crate::source::{ModuleOrigin, ServedOrigins};
use crate::trust::{ModuleTrust, Verified, signature_path};

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
        if let Some(warning) = signed_without_manifest(path, verified, requested.as_ref()) {
            warn!("{warning}");
        }
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

/// The warning for a signed module that asks for no capabilities: signed,
/// it is granted none, which its author rarely means.
fn signed_without_manifest(
    path: &str,
    verified: &Verified,
    requested: Option<&Capabilities>,
) -> Option<String> {
    let Verified::Signed { key_id, .. } = verified else {
        return None;
    };
    requested.is_none().then(|| {
        format!(
            "module {path} is signed by key `{key_id}` but asks for no capabilities, so it is \
             granted none: it can log and keep its state, and every ECS, key-value, message, \
             watch and task call is denied. Declare what it needs with \
             `hotwasm_sdk::capabilities!` and sign it again"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_signed_module_without_a_manifest_is_warned_about() {
        let signed = Verified::Signed {
            key_id: "release".into(),
            fingerprint: String::new(),
        };
        let warning = signed_without_manifest("modules/spin.wasm", &signed, None).unwrap();
        assert!(
            warning.starts_with(
                "module modules/spin.wasm is signed by key `release` but asks for no capabilities"
            ),
            "{warning}"
        );
        let manifest = Capabilities::parse("frame").unwrap();
        assert_eq!(signed_without_manifest("m", &signed, Some(&manifest)), None);
        assert_eq!(
            signed_without_manifest("m", &Verified::Unsigned, None),
            None
        );
        assert_eq!(
            signed_without_manifest("m", &Verified::Embedded, None),
            None
        );
    }

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
