//! The order of each module file's reads, shared by the loader and the
//! runtime: [`LoadOrder`].

use bevy::platform::collections::HashMap;
use bevy::prelude::*;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{WasmModule, WasmModuleLoaderError};

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
    pub(super) fn begin(&self, path: &str) -> u64 {
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
    pub(super) fn finish(
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
