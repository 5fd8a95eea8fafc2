//! A change of a value ([`KvChanged`], made by a [`KvOrigin`]) and the
//! system that publishes the store's changes as messages.

use bevy::prelude::*;
use hotwasm_events::{ChangeKind, CloudEvent, Source};

use super::KvStore;
use crate::stamps::{EventIds, EventStamp, FrameClocks};

/// Who changed a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOrigin {
    /// A Bevy system, through [`KvStore`].
    Host,
    /// The script instance on this entity.
    Guest(Entity),
    /// Someone outside the game: a file in a bucket directory was edited.
    External,
    /// A developer tool inside the game, such as the debug panel: written
    /// through [`KvStore::by`].
    Tool,
    /// Another process sharing the store (`KvStore::connect_nats`, feature
    /// `nats`), at the server's `revision` of the change.
    Remote {
        /// The change's revision on the server.
        revision: u64,
        /// Changes before this one that this store will never see: made
        /// while it was disconnected and replaced by newer changes of
        /// their keys before it was back (the server keeps the newest
        /// value of each key). Their keys' newest values arrive as
        /// changes of their own; 0 almost always.
        skipped: u64,
    },
}

impl KvOrigin {
    /// Whether the change was made outside this game: its store learns of
    /// it rather than making it.
    pub fn is_outside(self) -> bool {
        matches!(self, KvOrigin::External | KvOrigin::Remote { .. })
    }
}

/// A value was set or deleted. Written once per frame, before
/// [`WasmSystems::Run`](crate::WasmSystems::Run), for every change since
/// the last one.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct KvChanged {
    /// Its CloudEvents `id` and times, the ones watching guests get. Given
    /// when the change is published.
    pub stamp: EventStamp,
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The new value, or `None` when the key was deleted.
    pub value: Option<Vec<u8>>,
    /// Who changed it.
    pub origin: KvOrigin,
}

impl KvChanged {
    /// The change as the CloudEvent watching guests get
    /// ([`CloudEvent::to_json`] writes its JSON form).
    pub fn cloud_event(&self) -> CloudEvent<'_> {
        let (kind, data) = match &self.value {
            Some(value) => (ChangeKind::KvSet, value.as_slice()),
            None => (ChangeKind::KvDelete, &[][..]),
        };
        self.stamp.cloud_event(
            Source::Bucket(&self.bucket).to_string().into(),
            kind,
            self.key.as_str().into(),
            data,
        )
    }
}

/// Writes every change since the last frame as a [`KvChanged`] message,
/// each with its event id and the frame's clocks.
pub(crate) fn publish_kv_changes(
    mut store: ResMut<KvStore>,
    ids: Res<EventIds>,
    time: Option<Res<Time<Virtual>>>,
    mut changed: MessageWriter<KvChanged>,
) {
    // Taking the change log is bookkeeping, not a change of the store.
    let mut changes = store.bypass_change_detection().take_changes();
    if changes.is_empty() {
        return;
    }
    let clocks = FrameClocks::now(time.map(|time| time.elapsed()));
    for change in &mut changes {
        change.stamp = ids.stamp(clocks);
    }
    changed.write_batch(changes);
}
