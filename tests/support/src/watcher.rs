//! A stand-in for Bevy's file watcher, as in `bevy_asset`'s own tests: the
//! asset server hears of exactly the changes a test reports, when the test
//! reports them, so no test waits for `notify`, its debounce, or late
//! duplicate events.

use std::path::PathBuf;
use std::sync::mpsc;

use bevy::asset::io::{AssetSource, AssetSourceBuilder, AssetSourceEvent, AssetWatcher};
use bevy::prelude::*;

/// Reports file changes to the asset server of the app it is a resource of.
#[derive(Resource)]
pub struct FakeWatcher {
    report: Box<dyn Fn(AssetSourceEvent) + Send + Sync>,
}

impl FakeWatcher {
    /// Tells the asset server that the file at `path`, relative to the asset
    /// directory, changed: it reloads every asset loaded from that file or
    /// from a file that read it (a module, for its `.wasm.sig`).
    pub fn modified(&self, path: impl Into<PathBuf>) {
        (self.report)(AssetSourceEvent::ModifiedAsset(path.into()));
    }
}

/// What Bevy holds while it watches the source; the fake has nothing to stop.
struct Watching;

impl AssetWatcher for Watching {}

/// The files under `path`, watched by a [`FakeWatcher`] that goes to
/// `watchers` when `AssetPlugin` (with watching on) builds the source.
pub(super) fn fake_watched_source(
    path: String,
    watchers: mpsc::Sender<FakeWatcher>,
) -> AssetSourceBuilder {
    AssetSourceBuilder::new(AssetSource::get_default_reader(path)).with_watcher(move |events| {
        let report: Box<dyn Fn(AssetSourceEvent) + Send + Sync> =
            Box::new(move |event: AssetSourceEvent| {
                events
                    .try_send(event)
                    .expect("the asset server listens while the app lives");
            });
        watchers
            .send(FakeWatcher { report })
            .expect("the app under construction waits for its watcher");
        Some(Box::new(Watching))
    })
}
