//! What changed since the last frame for the scripts and their modules, as
//! Bevy reported it: scripts added, changed and removed, module versions
//! loaded, failed and dropped; applied by `lifecycle`.

use bevy::asset::{AssetLoadError, AssetLoadFailedEvent};
use bevy::prelude::*;

use super::WasmScript;
use crate::asset::{WasmModule, WasmModuleLoaderError};
use crate::messages::FailureStage;

/// What changed since the last frame for the scripts and their modules.
pub(super) struct ScriptChanges {
    /// Entities whose [`WasmScript`] was removed (or that were despawned).
    pub removed: Vec<Entity>,
    /// Entities that got a [`WasmScript`], a new one or a changed one.
    pub changed: Vec<(Entity, AssetId<WasmModule>)>,
    pub load_failures: Vec<LoadFailure>,
    /// Modules that loaded a version, first or new.
    pub new_versions: Vec<AssetId<WasmModule>>,
    /// Modules Bevy dropped.
    pub gone_modules: Vec<AssetId<WasmModule>>,
}

/// A failed load of a module, as Bevy reported it.
pub(super) struct LoadFailure {
    pub module: AssetId<WasmModule>,
    pub path: String,
    pub stage: FailureStage,
    pub cause: String,
    /// Whether our loader failed it (a read it numbered), rather than Bevy
    /// before the loader ran.
    pub by_loader: bool,
}

impl ScriptChanges {
    pub fn read(
        asset_events: &mut MessageReader<AssetEvent<WasmModule>>,
        load_failures: &mut MessageReader<AssetLoadFailedEvent<WasmModule>>,
        removed: &mut RemovedComponents<WasmScript>,
        changed: &Query<(Entity, &WasmScript), Changed<WasmScript>>,
    ) -> Self {
        Self {
            removed: removed.read().collect(),
            changed: changed
                .iter()
                .map(|(entity, script)| (entity, script.0.id()))
                .collect(),
            load_failures: load_failures
                .read()
                .map(|failed| LoadFailure::of(failed.id, failed.path.to_string(), &failed.error))
                .collect(),
            new_versions: Vec::new(),
            gone_modules: Vec::new(),
        }
        .with_asset_events(asset_events)
    }

    fn with_asset_events(
        mut self,
        asset_events: &mut MessageReader<AssetEvent<WasmModule>>,
    ) -> Self {
        for event in asset_events.read() {
            match *event {
                AssetEvent::Added { id } | AssetEvent::Modified { id } => {
                    self.new_versions.push(id);
                }
                AssetEvent::Removed { id } => self.gone_modules.push(id),
                _ => {}
            }
        }
        self
    }
}

impl LoadFailure {
    /// The stage and cause of a failed asset load, from our loader's error
    /// when that is what failed.
    fn of(module: AssetId<WasmModule>, path: String, error: &AssetLoadError) -> Self {
        if let AssetLoadError::AssetLoaderError(loader_error) = error
            && let Some(error) = loader_error.error().downcast_ref::<WasmModuleLoaderError>()
        {
            return Self {
                module,
                path,
                stage: error.into(),
                cause: error.to_string(),
                by_loader: true,
            };
        }
        Self {
            module,
            path,
            stage: FailureStage::Read,
            cause: error.to_string(),
            by_loader: false,
        }
    }
}
