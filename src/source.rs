//! Asset sources tuned for hot reload.

use std::time::Duration;

use bevy::asset::io::{AssetSource, AssetSourceBuilder};

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
