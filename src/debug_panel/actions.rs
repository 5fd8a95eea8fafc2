//! What the panel's buttons ask for ([`PanelAction`]), queued while egui
//! holds the world and applied after the UI pass.

use bevy::prelude::*;

use super::records::{PanelConsole, PanelEvents, PanelFaults};
use super::state::PanelState;
use crate::asset::WasmModule;
use crate::kv::{KvOrigin, KvStore};
use crate::runtime::WasmRuntime;

/// Something a panel button asked for, applied after the UI pass.
#[derive(Clone, Debug, PartialEq)]
pub enum PanelAction {
    /// Lets a quarantined script start again ([`WasmRuntime::release`]).
    Release(Entity),
    /// Starts a running script afresh ([`WasmRuntime::restart`]).
    Restart(Entity),
    /// Loads a module's file again, as if it had been saved.
    Reload(AssetId<WasmModule>),
    /// Stops a module's scripts until its next version ([`WasmRuntime::unload`]).
    Unload(AssetId<WasmModule>),
    /// Pauses (`true`) or resumes one script ([`WasmRuntime::pause`]).
    PauseScript(Entity, bool),
    /// Pauses or resumes the game's virtual time.
    PauseGame(bool),
    /// Sets the virtual time's speed.
    Speed(f32),
    /// Runs the paused game for one frame.
    Step,
    /// Forgets the console's lines.
    ClearConsole,
    /// Forgets the Faults tab's records.
    ClearFaults,
    /// Forgets the Events tab's records.
    ClearEvents,
    /// Saves an edited value ([`KvOrigin::Tool`]) if the key still holds
    /// what it held when it was read; otherwise the tab says so, shows the
    /// value now and keeps the edit (a second Save overwrites it).
    KvSave {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// What the key held when the edit began (`None`: unset).
        read: Option<Vec<u8>>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Deletes a key ([`KvOrigin::Tool`]).
    KvDelete {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// Adds to a key's decimal integer ([`KvOrigin::Tool`]).
    KvIncrement {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// What to add.
        delta: i64,
    },
}

/// Actions waiting to be applied.
#[derive(Resource, Debug, Default)]
pub struct PanelActions(pub Vec<PanelAction>);

/// Applies what the panel's buttons asked for.
pub fn apply_actions(world: &mut World) {
    let actions = std::mem::take(&mut world.resource_mut::<PanelActions>().0);
    for action in actions {
        match action {
            PanelAction::Release(entity) => {
                world.resource_mut::<WasmRuntime>().release(entity);
            }
            PanelAction::Restart(entity) => {
                world.resource_mut::<WasmRuntime>().restart(entity);
            }
            PanelAction::Reload(module) => {
                let server = world.resource::<AssetServer>();
                if let Some(path) = server.get_path(module) {
                    server.reload(path.into_owned());
                }
            }
            PanelAction::Unload(module) => {
                world.resource_mut::<WasmRuntime>().unload(module);
            }
            PanelAction::PauseScript(entity, paused) => {
                world.resource_mut::<WasmRuntime>().pause(entity, paused);
            }
            PanelAction::PauseGame(paused) => {
                let mut time = world.resource_mut::<Time<Virtual>>();
                if paused {
                    time.pause();
                } else {
                    time.unpause();
                }
            }
            PanelAction::Step => {
                world.resource_mut::<PanelState>().stepping = true;
                world.resource_mut::<Time<Virtual>>().unpause();
            }
            PanelAction::Speed(speed) => {
                world
                    .resource_mut::<Time<Virtual>>()
                    .set_relative_speed(speed.max(0.0));
            }
            PanelAction::ClearConsole => world.resource_mut::<PanelConsole>().lines.clear(),
            PanelAction::ClearFaults => world.resource_mut::<PanelFaults>().records.clear(),
            PanelAction::ClearEvents => world.resource_mut::<PanelEvents>().records.clear(),
            PanelAction::KvSave {
                bucket,
                key,
                read,
                value,
            } => save_kv_edit(world, &bucket, &key, read, &value),
            PanelAction::KvDelete { bucket, key } => {
                let deleted = world
                    .resource_mut::<KvStore>()
                    .by(KvOrigin::Tool)
                    .delete(&bucket, &key);
                report_kv(deleted, &bucket, &key);
            }
            PanelAction::KvIncrement { bucket, key, delta } => {
                let added = world
                    .resource_mut::<KvStore>()
                    .by(KvOrigin::Tool)
                    .increment(&bucket, &key, delta);
                report_kv(added.map(drop), &bucket, &key);
            }
        }
    }
}

/// Saves an edit of `bucket/key` if the key still holds `read`; says in
/// the tab why not otherwise.
fn save_kv_edit(world: &mut World, bucket: &str, key: &str, read: Option<Vec<u8>>, value: &[u8]) {
    let mut store = world.resource_mut::<KvStore>();
    let saved = store
        .by(KvOrigin::Tool)
        .compare_and_swap(bucket, key, read.as_deref(), value);
    let now = store.get(bucket, key).ok().flatten();
    let notice = match saved {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "Not saved: {bucket}/{key} changed since it was read. Its value now is above; \
             Save again to overwrite it with your edit."
        )),
        Err(error) => Some(format!("Not saved: {error}")),
    };
    let browser = &mut world.resource_mut::<PanelState>().kv;
    if browser.bucket.as_deref() == Some(bucket) && browser.key.as_deref() == Some(key) {
        browser.read = now;
        browser.notice = notice;
    }
}

/// Logs a key-value edit the store refused.
fn report_kv(result: Result<(), crate::kv::KvError>, bucket: &str, key: &str) {
    if let Err(error) = result {
        warn!("debug panel: the edit of {bucket}/{key} was refused: {error}");
    }
}

/// Pauses the game again in the frame after a step was asked for (which
/// is the frame its virtual time moved), before the actions of this one.
pub(super) fn finish_step(mut state: ResMut<PanelState>, time: Option<ResMut<Time<Virtual>>>) {
    if state.stepping {
        state.stepping = false;
        if let Some(mut time) = time {
            time.pause();
        }
    }
}
