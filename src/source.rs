//! Asset sources tuned for hot reload, and where a module's bytes came
//! from.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bevy::asset::io::{AssetSource, AssetSourceBuilder};
use bevy::prelude::Resource;

/// The platform's default file source for `path`, with a file watcher that
/// waits only `debounce` after a change instead of Bevy's 300 ms.
///
/// Register it as the default source before `AssetPlugin` (which
/// `DefaultPlugins` adds) to make a saved module run sooner:
///
/// ```no_run
/// # use std::time::Duration;
/// # use bevy::prelude::*;
/// # use bevy::asset::io::AssetSourceId;
/// App::new().register_asset_source(
///     AssetSourceId::Default,
///     bevy_hotwasm::file_source_with_debounce("assets", Duration::from_millis(50)),
/// );
/// ```
///
/// A short debounce can catch a file half-written by a slow writer; that
/// version then fails to compile (reported as usual, the old generation keeps
/// running) and the complete file, reported by the next event, loads.
pub fn file_source_with_debounce(path: &str, debounce: Duration) -> AssetSourceBuilder {
    AssetSourceBuilder::platform_default(path, None)
        .with_watcher(AssetSource::get_default_watcher(path.to_owned(), debounce))
}

/// Where a loaded module's bytes came from ([`WasmModule::origin`](crate::WasmModule::origin)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModuleOrigin {
    /// A file of the default asset source (the game's `assets` folder).
    File,
    /// Another asset source that is not a remote one, by name.
    Source(String),
    /// A remote source's server: the module's URL.
    Server(String),
    /// A remote source's cache of the last verified copy, while its server
    /// fails.
    Cache,
    /// The copy built into the game, while a remote source's server and
    /// cache fail.
    Embedded,
    /// Bytes handed to [`WasmModule::from_bytes`](crate::WasmModule::from_bytes).
    Bytes,
}

impl fmt::Display for ModuleOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File => f.write_str("file"),
            Self::Source(name) => write!(f, "asset source {name}"),
            Self::Server(url) => write!(f, "server {url}"),
            Self::Cache => f.write_str("cache (the server failed)"),
            Self::Embedded => f.write_str("embedded (the server and cache failed)"),
            Self::Bytes => f.write_str("bytes"),
        }
    }
}

/// What remote sources last handed to the module loader, by asset path
/// (`name://path`): a resource the sources and the loader share, so the
/// loader can record where a module came from.
#[derive(Resource, Clone, Default)]
pub(crate) struct ServedOrigins(Arc<Mutex<HashMap<String, ModuleOrigin>>>);

impl ServedOrigins {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, ModuleOrigin>> {
        // Each change is a single insert: a panic cannot leave one half-made.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `asset_path`'s bytes, about to be read, came from `origin`.
    #[cfg_attr(
        not(feature = "remote"),
        expect(dead_code, reason = "remote sources record")
    )]
    pub(crate) fn record(&self, asset_path: String, origin: ModuleOrigin) {
        self.lock().insert(asset_path, origin);
    }

    /// Where `asset_path`'s bytes came from, if a remote source served them.
    pub(crate) fn get(&self, asset_path: &str) -> Option<ModuleOrigin> {
        self.lock().get(asset_path).cloned()
    }
}
