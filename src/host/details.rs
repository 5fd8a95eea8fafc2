//! What an instance has registered (tasks, subscriptions, answered topics, watches, the
//! per-frame hook) and its memory, as plain data for debug panels: read
//! after a call, and rebuilt only when it changed.

use std::time::Duration;

use bevy::reflect::TypeRegistry;

use super::HostState;

/// What a running instance has asked for, and its memory, as of the end
/// of its last call ([`ScriptStatus::details`](crate::ScriptStatus::details)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceDetails {
    /// Its pending tasks, soonest first.
    pub tasks: Vec<TaskDetails>,
    /// The topics it subscribed to, sorted.
    pub subscriptions: Vec<String>,
    /// The topics it answers the game's requests on, sorted.
    pub answers: Vec<String>,
    /// Its watches, described: `kv scores/player/* (not its own writes)`,
    /// `component game::Health (added, changed)`, `resource game::Weather`.
    pub watches: Vec<String>,
    /// Its key-value watches, to ask which keys they cover.
    pub key_watches: Vec<KeyWatch>,
    /// Whether it asked for `update` in every frame.
    pub every_frame: bool,
    /// Its linear memory, in bytes, all memories together.
    pub memory_bytes: usize,
}

/// A key-value watch: one key, or every key with a prefix, of a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyWatch {
    /// The bucket.
    pub bucket: String,
    /// The key, or the prefix.
    pub key: String,
    /// Whether `key` is a prefix (an empty one covers the whole bucket).
    pub prefix: bool,
}

impl KeyWatch {
    /// Whether a change to `key` in `bucket` reaches this watch (a watch
    /// that leaves out its own script's writes still covers the key).
    pub fn covers(&self, bucket: &str, key: &str) -> bool {
        self.bucket == bucket
            && if self.prefix {
                key.starts_with(self.key.as_str())
            } else {
                key == self.key
            }
    }
}

/// One pending task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskDetails {
    /// The task's id, as the guest knows it.
    pub id: u64,
    /// When it is next due, in the game's virtual time.
    pub due: Duration,
    /// How often it repeats, or `None` for a task that runs once.
    pub interval: Option<Duration>,
}

/// What the details depend on, cheap to compare after every call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DetailsStamp {
    tasks: (u64, usize, Option<(u64, u64)>),
    subscriptions: u64,
    watches: (u64, usize),
    every_frame: bool,
    memory_bytes: usize,
}

impl HostState {
    /// What the details would be built from now.
    pub(crate) fn details_stamp(&self) -> DetailsStamp {
        DetailsStamp {
            tasks: self.tasks.stamp(),
            subscriptions: self.mailbox.changes(),
            watches: self.watches.stamp(),
            every_frame: self.every_frame,
            memory_bytes: self.limiter.memory_bytes(),
        }
    }

    /// The instance's details, built now.
    pub(crate) fn details(&self) -> InstanceDetails {
        let registry = self.registry.read();
        InstanceDetails {
            tasks: self.tasks.details(),
            subscriptions: self.mailbox.subscriptions(),
            answers: self.mailbox.answered_topics(),
            watches: self.watches.describe(&registry),
            key_watches: self.watches.key_watches(),
            every_frame: self.every_frame,
            memory_bytes: self.limiter.memory_bytes(),
        }
    }
}

/// A type's path for a description, or its `TypeId` when unregistered.
pub(crate) fn type_name(registry: &TypeRegistry, type_id: std::any::TypeId) -> String {
    registry.get(type_id).map_or_else(
        || format!("{type_id:?}"),
        |registration| registration.type_info().type_path().to_owned(),
    )
}
