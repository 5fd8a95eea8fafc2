//! Where the values live: the [`Backend`] trait every backend implements,
//! and the answers backends give the store.

use std::time::Duration;

use super::{KvChanged, KvError};

/// Where the values live.
pub(super) trait Backend: Send + Sync {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Returns the length of the value it replaced, if there was one.
    fn set(&mut self, bucket: &str, key: &str, value: &[u8]) -> Result<Option<u64>, KvError>;
    /// Returns the length of the value it deleted, if the key existed.
    fn delete(&mut self, bucket: &str, key: &str) -> Result<Option<u64>, KvError>;
    /// Every key of the bucket, sorted.
    fn keys(&self, bucket: &str) -> Result<Vec<String>, KvError>;
    fn buckets(&self) -> Result<Vec<String>, KvError>;
    /// The length of the value at `key`, if set.
    fn value_len(&self, bucket: &str, key: &str) -> Result<Option<u64>, KvError>;
    /// The bytes of every value.
    fn total_bytes(&self) -> Result<u64, KvError>;
    /// Changes made from outside since the last call.
    fn external_changes(&mut self, _out: &mut Vec<KvChanged>) {}
    /// The connection of a store shared with other processes.
    fn shared_status(&self) -> Option<SharedStatus> {
        None
    }
    /// How long the game's exit waits for writes not sent yet.
    fn exit_wait(&self) -> Duration {
        Duration::ZERO
    }
    /// Sets `key` to `value` if it holds `expected`, atomically for every
    /// process sharing the store; `None` for a store this game has alone,
    /// which the store compares and sets itself. A guest's swap waits at
    /// most `wait` (then [`KvError::Busy`]); the game's, the backend's own
    /// bound.
    fn swap(
        &mut self,
        _bucket: &str,
        _key: &str,
        _expected: Option<&[u8]>,
        _value: &[u8],
        _wait: Option<Duration>,
    ) -> Option<Result<Swap, KvError>> {
        None
    }
    /// The most all guests' swaps may wait for a server in one frame.
    fn max_frame_wait(&self) -> Duration {
        Duration::ZERO
    }
    /// Swaps whose caller stopped waiting, found landed since the last
    /// call: (bucket, key, value, length of the value replaced).
    fn take_abandoned(&mut self, _out: &mut Vec<(String, String, Vec<u8>, Option<u64>)>) {}
}

/// The connection of a store shared with other processes
/// ([`KvStore::shared_status`](super::KvStore::shared_status)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedStatus {
    /// The server.
    pub url: String,
    /// Whether the connection is up now.
    pub connected: bool,
    /// The newest revision of the shared bucket this store has applied.
    pub last_revision: u64,
    /// Writes sent to the server and not yet acknowledged.
    pub queued_writes: usize,
    /// Changes this store never saw since it connected: replaced on the
    /// server while it was disconnected
    /// ([`KvOrigin::Remote`](super::KvOrigin::Remote)'s `skipped`).
    pub skipped_changes: u64,
    /// The lag: changes on the server this store had not received when it
    /// received its last (0 once it has caught up).
    pub behind: u64,
}

/// How a shared store's compare-and-swap went.
pub(super) enum Swap {
    /// It swapped; the length of the value it replaced, if any.
    Done(Option<u64>),
    /// The key holds this instead (`None`: unset).
    Holds(Option<Vec<u8>>),
}
