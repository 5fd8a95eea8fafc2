//! The key-value store: named buckets of byte values, in memory or in a
//! directory on disk, with every change published as a [`KvChanged`] message.
//!
//! Guests reach it through `wasi:keyvalue@0.2.0-draft2`; Bevy systems use the
//! [`KvStore`] resource directly. Either way a write becomes a change, and so
//! does a file edited by hand in a bucket directory (a designer live-tuning
//! a value).
//!
//! [`KvStore`] and [`KvChanged`] are also at the crate root; here are the
//! rest: the store's errors ([`KvError`]), who made a change
//! ([`KvOrigin`]) and writes made as one ([`KvWriter`], from
//! [`KvStore::by`]), a page of keys ([`KeyPage`]), what a module keeps
//! ([`KvUsage`]), the limits on keys, values and buckets, and with the
//! `nats` feature the shared store's options and status.

mod backend;
mod change;
mod directory;
mod error;
mod memory;
mod names;
#[cfg(feature = "nats")]
mod nats;
mod usage;
mod writer;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use bevy::prelude::*;

use self::backend::Backend;
pub use self::backend::SharedStatus;
pub(crate) use self::change::publish_kv_changes;
pub use self::change::{KvChanged, KvOrigin};
use self::directory::DirectoryBackend;
pub use self::error::KvError;
use self::memory::MemoryBackend;
pub(crate) use self::names::{check_bucket, check_key};
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use self::nats::{NatsOptions, nats_key};
pub use self::usage::KvUsage;
use self::usage::Usage;
pub(crate) use self::usage::Writer;
pub use self::writer::KvWriter;

/// The longest key, in bytes (a key's file name is at most three times as long).
pub const MAX_KEY_BYTES: usize = 80;
/// The largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// The longest bucket name, in bytes.
pub const MAX_BUCKET_NAME_BYTES: usize = 64;
/// The most buckets a store holds.
pub const MAX_BUCKETS: usize = 64;
/// The most bytes of values a store holds unless the game says otherwise
/// ([`KvStore::with_max_bytes`]): 1 GiB.
pub const DEFAULT_MAX_STORE_BYTES: u64 = 1024 * 1024 * 1024;
/// How many keys one [`KvStore::list_keys`] page holds.
pub const KEYS_PER_PAGE: usize = 1000;

/// One page of a bucket's keys, in sorted order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPage {
    /// Up to [`KEYS_PER_PAGE`] keys.
    pub keys: Vec<String>,
    /// Where the next page starts, or `None` after the last page.
    pub cursor: Option<u64>,
}

/// The key-value store, a resource.
///
/// [`HotWasmPlugin`](crate::HotWasmPlugin) inserts an in-memory store unless
/// the app already has one; insert [`KvStore::open_dir`] before it for a
/// store that survives restarts. Atomic operations are atomic with respect
/// to the game (all access goes through this resource), not to other
/// processes writing the same directory.
#[derive(Resource)]
pub struct KvStore {
    backend: Box<dyn Backend>,
    buckets: BTreeSet<String>,
    changes: Vec<KvChanged>,
    usage: Usage,
    max_bytes: u64,
    /// The module whose instance is writing now, if one is.
    writer: Option<Writer>,
    /// What is left this frame of the time guests' swaps may wait for a
    /// shared store's server.
    guest_wait_left: Duration,
}

impl KvStore {
    /// A store that lives in memory and ends with the app.
    pub fn in_memory() -> Self {
        Self::with_backend(Box::new(MemoryBackend::default()))
            .expect("listing an empty in-memory store cannot fail")
    }

    /// A store in `dir`, created if missing: one directory per bucket, one
    /// file per key. Acknowledged writes survive a crash (written to a
    /// temporary file, synced, then renamed over the old one). Files written
    /// into a bucket directory by anyone else become changes too.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Self, KvError> {
        Self::with_backend(Box::new(DirectoryBackend::open(dir.as_ref())?))
    }

    /// A store shared by every process connected to the NATS server at
    /// `url` (feature `nats`; see the book's "Sharing state across
    /// processes"). Waits up to [`NatsOptions::connect_timeout`] for the
    /// server and the current values; after that no frame waits on the
    /// network.
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    pub fn connect_nats(url: &str, options: NatsOptions) -> Result<Self, KvError> {
        Self::with_backend(Box::new(nats::NatsBackend::connect(url, &options)?))
    }

    fn with_backend(backend: Box<dyn Backend>) -> Result<Self, KvError> {
        let usage = Usage::new(backend.total_bytes()?);
        Ok(Self {
            buckets: backend.buckets()?.into_iter().collect(),
            backend,
            changes: Vec::new(),
            usage,
            max_bytes: DEFAULT_MAX_STORE_BYTES,
            writer: None,
            guest_wait_left: Duration::ZERO,
        })
    }

    /// The store, holding at most `max` bytes of values: a write past it is
    /// refused with [`KvError::StoreFull`], whoever writes (a store already
    /// past it refuses every write that does not shrink it). Default
    /// [`DEFAULT_MAX_STORE_BYTES`].
    pub fn with_max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = max;
        self
    }

    /// The connection, for a store shared with other processes
    /// (`KvStore::connect_nats`, feature `nats`); `None` for one this game
    /// has alone.
    pub fn shared_status(&self) -> Option<SharedStatus> {
        self.backend.shared_status()
    }

    /// Waits for the writes a shared store has not yet had acknowledged
    /// (made while the server was slow or gone, which live only in this
    /// process's memory), at most its `NatsOptions::exit_wait`; returns how
    /// many still wait (0 for a store this game has alone). The plugin
    /// calls it when the app exits ([`AppExit`]) and logs what was lost.
    pub fn wait_for_writes(&self) -> usize {
        let deadline = std::time::Instant::now() + self.backend.exit_wait();
        loop {
            let waiting = self
                .shared_status()
                .map_or(0, |status| status.queued_writes);
            if waiting == 0 || std::time::Instant::now() >= deadline {
                return waiting;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The ceiling set by [`KvStore::with_max_bytes`].
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The bytes of every value in the store.
    pub fn used_bytes(&self) -> u64 {
        self.usage.bytes
    }

    /// The keys and bytes that the instances of `module` (its asset path,
    /// e.g. `modules/scoring.wasm`) wrote last and that still exist: what
    /// counts against its [`GuestLimits`](crate::GuestLimits) totals.
    pub fn kept_by(&self, module: &str) -> KvUsage {
        self.usage.of(module)
    }

    /// Gives guests' swaps this frame's wait for a shared store's server
    /// (`NatsOptions::max_frame_wait`); the runtime calls it every frame.
    pub(crate) fn start_frame(&mut self) {
        self.guest_wait_left = self.backend.max_frame_wait();
    }

    /// Runs `op` with `writer` as the module writing: its writes count
    /// against, and are refused past, its totals.
    pub(crate) fn written_by<T>(&mut self, writer: Writer, op: impl FnOnce(&mut Self) -> T) -> T {
        self.writer = Some(writer);
        let done = op(self);
        self.writer = None;
        done
    }

    /// The value of `key`, or `None` if it is not set.
    pub fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_bucket(bucket)?;
        check_key(key)?;
        self.backend.get(bucket, key)
    }

    /// Whether `key` is set.
    pub fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        Ok(self.get(bucket, key)?.is_some())
    }

    /// Writes made as `origin`, which every change they make carries
    /// ([`KvWriter`]): `store.by(KvOrigin::Tool).set(..)` for a developer
    /// tool's. [`KvStore::set`], [`delete`](KvStore::delete),
    /// [`increment`](KvStore::increment) and
    /// [`compare_and_swap`](KvStore::compare_and_swap) write as
    /// [`KvOrigin::Host`].
    pub fn by(&mut self, origin: KvOrigin) -> KvWriter<'_> {
        KvWriter::new(self, origin)
    }

    /// Sets `key` to `value`, creating the bucket if needed.
    pub fn set(&mut self, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.by(KvOrigin::Host).set(bucket, key, value)
    }

    /// Deletes `key`; deleting a key that is not set is not an error.
    pub fn delete(&mut self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.by(KvOrigin::Host).delete(bucket, key)
    }

    /// Every bucket, sorted by name.
    pub fn buckets(&self) -> impl Iterator<Item = &str> {
        self.buckets.iter().map(String::as_str)
    }

    /// One page of the bucket's keys, from `cursor` (`None`: the first page).
    pub fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        check_bucket(bucket)?;
        let keys = self.backend.keys(bucket)?;
        let start = usize::try_from(cursor.unwrap_or(0))
            .unwrap_or(usize::MAX)
            .min(keys.len());
        let end = (start + KEYS_PER_PAGE).min(keys.len());
        Ok(KeyPage {
            keys: keys[start..end].to_vec(),
            cursor: (end < keys.len()).then_some(end as u64),
        })
    }

    /// Adds `delta` to the decimal integer stored at `key` (0 when unset)
    /// and returns the new value. Counters are stored as decimal text, so a
    /// person can read and edit them.
    pub fn increment(&mut self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        self.by(KvOrigin::Host).increment(bucket, key, delta)
    }

    /// Sets `key` to `new` only if its value is `expected` (`None`: only if
    /// unset). Returns whether it did.
    pub fn compare_and_swap(
        &mut self,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        self.by(KvOrigin::Host)
            .compare_and_swap(bucket, key, expected, new)
    }

    /// Every change since the last call: the store's own writes, then edits
    /// from outside the game.
    fn take_changes(&mut self) -> Vec<KvChanged> {
        let mut changes = std::mem::take(&mut self.changes);
        self.backend.external_changes(&mut changes);
        let mut edited = false;
        for change in changes.iter().filter(|c| c.origin.is_outside()) {
            edited = true;
            self.usage.forget(&change.bucket, &change.key);
            if change.value.is_some() {
                self.buckets.insert(change.bucket.clone());
            }
        }
        if edited {
            // Edited by hand: what the values weigh now, from the files.
            self.usage.bytes = self.backend.total_bytes().unwrap_or(self.usage.bytes);
        }
        changes
    }
}

/// When the app exits, waits (bounded) for a shared store's writes not yet
/// sent, and says how many were lost if the server never answered.
pub(crate) fn send_writes_on_exit(mut exits: MessageReader<AppExit>, store: Option<Res<KvStore>>) {
    let (Some(store), Some(_)) = (store, exits.read().last()) else {
        return;
    };
    let Some(status) = store.shared_status() else {
        return;
    };
    if status.queued_writes == 0 {
        return;
    }
    let lost = store.wait_for_writes();
    if lost == 0 {
        info!(
            "sent the {} writes that waited for {} before exiting",
            status.queued_writes, status.url
        );
    } else {
        warn!(
            "{lost} writes to the shared store on {} were never sent: the server did not \
             answer within NatsOptions::exit_wait; they are lost",
            status.url
        );
    }
}

#[cfg(test)]
mod tests;
