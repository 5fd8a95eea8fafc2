//! The key-value store: named buckets of byte values, in memory or in a
//! directory on disk, with every change published as a [`KvChanged`] message.
//!
//! Guests reach it through `wasi:keyvalue@0.2.0-draft2`; Bevy systems use the
//! [`KvStore`] resource directly. Either way a write becomes a change, and so
//! does a file edited by hand in a bucket directory (a designer live-tuning
//! a value).

mod directory;
mod memory;
mod names;
#[cfg(feature = "nats")]
mod nats;
mod usage;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bevy::prelude::*;
use hotwasm_events::{ChangeKind, CloudEvent, Source};
use thiserror::Error;

use self::directory::DirectoryBackend;
use self::memory::MemoryBackend;
#[cfg(feature = "nats")]
pub use self::nats::{NatsOptions, nats_key};
pub use self::usage::KvUsage;
use self::usage::Usage;
pub(crate) use self::usage::Writer;

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

/// Why the store refused or failed an operation. Every variant names what it
/// was about.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KvError {
    /// A bucket name outside `[A-Za-z0-9_.-]`, empty, `.`/`..`, or too long.
    #[error("bucket name {bucket:?} is not allowed: {reason}")]
    InvalidBucket {
        /// The bucket name.
        bucket: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An empty key, or one that could escape its bucket directory (a `.` or
    /// `..` segment between slashes, a NUL or a backslash).
    #[error("key {key:?} is not allowed: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key longer than [`MAX_KEY_BYTES`].
    #[error("key of {len} bytes is longer than the limit of {max}")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value larger than [`MAX_VALUE_BYTES`].
    #[error("value of {len} bytes for key {key:?} is larger than the limit of {max}")]
    ValueTooLarge {
        /// The key.
        key: String,
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Creating the bucket would exceed [`MAX_BUCKETS`].
    #[error("bucket {bucket:?} would be bucket number {}, over the limit of {max}", max + 1)]
    TooManyBuckets {
        /// The bucket that was to be created.
        bucket: String,
        /// The limit.
        max: usize,
    },
    /// `increment` on a value that is not a decimal integer.
    #[error("value of {bucket}/{key} is not a decimal integer, so it cannot be incremented")]
    NotANumber {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// `increment` would overflow a signed 64-bit integer.
    #[error("incrementing {bucket}/{key} would overflow")]
    Overflow {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// The write would take the store past its ceiling
    /// ([`KvStore::with_max_bytes`]), whoever writes.
    #[error("writing {bucket}/{key} would take the store past its ceiling of {max} bytes")]
    StoreFull {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The ceiling.
        max: u64,
    },
    /// A module's write would take it past one of its key-value totals
    /// ([`GuestLimits`](crate::GuestLimits)).
    #[error("module {module} writing {bucket}/{key} would keep more than {total}")]
    ModuleTotal {
        /// The module's asset path.
        module: String,
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Which total, e.g. `10000 keys in one bucket (GuestLimits::max_kv_keys_per_bucket)`.
        total: String,
    },
    /// A guest's `increment` or compare-and-swap on a shared store that
    /// the server has not answered, while this frame's wait for the server
    /// is spent (`NatsOptions::max_frame_wait`). The swap goes on: the same
    /// call made again, in this frame or a later one, gets its answer, and
    /// is never made twice. Retry it.
    #[error(
        "busy: the server has not answered a compare-and-swap of {bucket}/{key} yet, and this \
         frame's wait for it is spent: make the same call again, now or in a later frame, for \
         its answer (it is not made twice)"
    )]
    Busy {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// Other processes changed the key every time an `increment` tried.
    #[error("key {key:?} in bucket {bucket} changed under each of {tries} tries to increment it")]
    Contended {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// How many times it tried.
        tries: usize,
    },
    /// The server of a shared store could not be reached or refused it.
    #[error("key-value server {url}: {reason}")]
    Remote {
        /// The server.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The disk failed.
    #[error("key-value store I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

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
    /// with [`KvStore::set_as`] and its siblings.
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

/// One page of a bucket's keys, in sorted order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPage {
    /// Up to [`KEYS_PER_PAGE`] keys.
    pub keys: Vec<String>,
    /// Where the next page starts, or `None` after the last page.
    pub cursor: Option<u64>,
}

/// Where the values live.
trait Backend: Send + Sync {
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
/// ([`KvStore::shared_status`]).
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
    /// server while it was disconnected ([`KvOrigin::Remote`]'s
    /// `skipped`).
    pub skipped_changes: u64,
    /// The lag: changes on the server this store had not received when it
    /// received its last (0 once it has caught up).
    pub behind: u64,
}

/// How a shared store's compare-and-swap went.
enum Swap {
    /// It swapped; the length of the value it replaced, if any.
    Done(Option<u64>),
    /// The key holds this instead (`None`: unset).
    Holds(Option<Vec<u8>>),
}

/// How many times `increment` tries again when another process changed
/// the key between its read and its write.
const INCREMENT_TRIES: usize = 64;

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
    /// `url` (feature `nats`; see the README's "Sharing state across
    /// processes"). Waits up to [`NatsOptions::connect_timeout`] for the
    /// server and the current values; after that no frame waits on the
    /// network.
    #[cfg(feature = "nats")]
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

    /// Runs `op` with `writer` as the module writing: its writes count
    /// against, and are refused past, its totals.
    /// Gives guests' swaps this frame's wait for a shared store's server
    /// (`NatsOptions::max_frame_wait`); the runtime calls it every frame.
    pub(crate) fn start_frame(&mut self) {
        self.guest_wait_left = self.backend.max_frame_wait();
    }

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

    /// Sets `key` to `value`, creating the bucket if needed.
    pub fn set(&mut self, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.set_as(KvOrigin::Host, bucket, key, value)
    }

    /// Deletes `key`; deleting a key that is not set is not an error.
    pub fn delete(&mut self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.delete_as(KvOrigin::Host, bucket, key)
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
        self.increment_as(KvOrigin::Host, bucket, key, delta)
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
        self.compare_and_swap_as(KvOrigin::Host, bucket, key, expected, new)
    }

    /// [`KvStore::set`], recorded as a change made by `origin` (e.g.
    /// [`KvOrigin::Tool`] for an editor's writes, which watches see like any
    /// other).
    pub fn set_as(
        &mut self,
        origin: KvOrigin,
        bucket: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), KvError> {
        self.check_write(bucket, key, value)?;
        let old = self.backend.set(bucket, key, value)?;
        self.record_set(origin, bucket, key, old, value);
        Ok(())
    }

    /// Refuses a write of `value` the store's limits do not allow.
    fn check_write(&mut self, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_bucket(bucket)?;
        check_key(key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(KvError::ValueTooLarge {
                key: key.to_owned(),
                len: value.len(),
                max: MAX_VALUE_BYTES,
            });
        }
        let len = value.len() as u64;
        // Only near the ceiling does the value replaced matter.
        if self.usage.bytes + len > self.max_bytes {
            let old = self.backend.value_len(bucket, key)?.unwrap_or(0);
            if self.usage.bytes.saturating_sub(old) + len > self.max_bytes {
                return Err(KvError::StoreFull {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    max: self.max_bytes,
                });
            }
        }
        if let Some(writer) = &self.writer {
            self.usage.check(writer, bucket, key, len)?;
        }
        // The bucket is recorded when the write lands (`record_set`): a
        // refused or failed write leaves no bucket behind.
        if !self.buckets.contains(bucket) && self.buckets.len() >= MAX_BUCKETS {
            return Err(KvError::TooManyBuckets {
                bucket: bucket.to_owned(),
                max: MAX_BUCKETS,
            });
        }
        Ok(())
    }

    /// Counts and reports a write of `value` that replaced `old` bytes.
    fn record_set(
        &mut self,
        origin: KvOrigin,
        bucket: &str,
        key: &str,
        old: Option<u64>,
        value: &[u8],
    ) {
        if !self.buckets.contains(bucket) {
            self.buckets.insert(bucket.to_owned());
        }
        self.usage
            .set(self.writer.as_ref(), bucket, key, old, value.len() as u64);
        self.changes.push(KvChanged {
            stamp: EventStamp::UNPUBLISHED,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            value: Some(value.to_vec()),
            origin,
        });
    }

    /// Sets `key` to `value` if it holds `expected`: `Err` with what it
    /// holds instead when it does not. Atomic for every process sharing
    /// the store (a round trip to its server); within this game otherwise.
    fn swap_as(
        &mut self,
        origin: KvOrigin,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Result<(), Option<Vec<u8>>>, KvError> {
        self.check_write(bucket, key, value)?;
        let guest = self.writer.is_some();
        let started = std::time::Instant::now();
        let wait = guest.then_some(self.guest_wait_left);
        let answer = self.backend.swap(bucket, key, expected, value, wait);
        if guest {
            self.guest_wait_left = self.guest_wait_left.saturating_sub(started.elapsed());
        }
        let mut abandoned = Vec::new();
        self.backend.take_abandoned(&mut abandoned);
        for (bucket, key, value, old) in abandoned {
            self.record_set(origin, &bucket, &key, old, &value);
        }
        let swapped = match answer {
            Some(swapped) => swapped?,
            None => match self.backend.get(bucket, key)? {
                current if current.as_deref() != expected => Swap::Holds(current),
                _ => Swap::Done(self.backend.set(bucket, key, value)?),
            },
        };
        match swapped {
            Swap::Done(old) => {
                self.record_set(origin, bucket, key, old, value);
                Ok(Ok(()))
            }
            Swap::Holds(current) => Ok(Err(current)),
        }
    }

    /// [`KvStore::delete`], recorded as a change made by `origin`.
    pub fn delete_as(&mut self, origin: KvOrigin, bucket: &str, key: &str) -> Result<(), KvError> {
        check_bucket(bucket)?;
        check_key(key)?;
        if let Some(old) = self.backend.delete(bucket, key)? {
            self.usage.delete(bucket, key, old);
            self.changes.push(KvChanged {
                stamp: EventStamp::UNPUBLISHED,
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                value: None,
                origin,
            });
        }
        Ok(())
    }

    /// [`KvStore::increment`], recorded as a change made by `origin`.
    pub fn increment_as(
        &mut self,
        origin: KvOrigin,
        bucket: &str,
        key: &str,
        delta: i64,
    ) -> Result<i64, KvError> {
        let mut current = self.get(bucket, key)?;
        for _ in 0..INCREMENT_TRIES {
            let number = match &current {
                None => 0,
                Some(bytes) => std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|text| text.trim().parse::<i64>().ok())
                    .ok_or_else(|| KvError::NotANumber {
                        bucket: bucket.to_owned(),
                        key: key.to_owned(),
                    })?,
            };
            let new = number.checked_add(delta).ok_or_else(|| KvError::Overflow {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            })?;
            let text = new.to_string();
            match self.swap_as(origin, bucket, key, current.as_deref(), text.as_bytes())? {
                Ok(()) => return Ok(new),
                // Another process changed it between the read and the write.
                Err(now) => current = now,
            }
        }
        Err(KvError::Contended {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            tries: INCREMENT_TRIES,
        })
    }

    /// [`KvStore::compare_and_swap`], recorded as a change made by `origin`.
    pub fn compare_and_swap_as(
        &mut self,
        origin: KvOrigin,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        Ok(self.swap_as(origin, bucket, key, expected, new)?.is_ok())
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

/// What every CloudEvent of one change shares, whoever gets it: its `id`,
/// its `time` and its `virtualtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventStamp {
    /// The CloudEvents `id`: one counter for key-value and component
    /// changes, starting at a random number in each run, so unique across
    /// runs over one store and across processes.
    pub id: u64,
    /// The wall clock of the frame that published the change.
    pub time: SystemTime,
    /// The game's virtual time of that frame.
    pub virtual_time: Duration,
}

impl EventStamp {
    /// The stamp of a change not published yet.
    pub(crate) const UNPUBLISHED: Self = Self {
        id: 0,
        time: SystemTime::UNIX_EPOCH,
        virtual_time: Duration::ZERO,
    };

    /// The change's CloudEvent.
    pub(crate) fn cloud_event<'a>(
        &self,
        source: Cow<'a, str>,
        kind: ChangeKind,
        subject: Cow<'a, str>,
        data: &'a [u8],
    ) -> CloudEvent<'a> {
        CloudEvent {
            id: self.id,
            source,
            kind,
            subject,
            time: self.time,
            virtual_time: self.virtual_time,
            data,
        }
    }
}

/// The clocks of the frame that publishes changes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameClocks {
    time: SystemTime,
    virtual_time: Duration,
}

impl FrameClocks {
    /// The wall clock now, and the game's virtual time (zero without one).
    pub(crate) fn now(virtual_time: Option<Duration>) -> Self {
        Self {
            time: SystemTime::now(),
            virtual_time: virtual_time.unwrap_or_default(),
        }
    }
}

/// The CloudEvents ids of change events, key-value and component alike: a
/// resource. The first is a random number, so ids stay unique across runs
/// over one store and across processes (two runs' ranges would overlap
/// only after about 2^61 events).
#[derive(Resource)]
pub(crate) struct EventIds(AtomicU64);

impl Default for EventIds {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // std's RandomState is seeded from the OS's randomness once per
        // process; the time and the process id set runs apart further.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        let since_1970 = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        hasher.write_u128(since_1970.as_nanos());
        hasher.write_u32(std::process::id());
        // Room to count up without wrapping.
        Self(AtomicU64::new(hasher.finish() >> 2))
    }
}

impl EventIds {
    /// The next change's stamp: the next id, at the frame's `clocks`.
    pub(crate) fn stamp(&self, clocks: FrameClocks) -> EventStamp {
        EventStamp {
            id: self.0.fetch_add(1, Ordering::Relaxed) + 1,
            time: clocks.time,
            virtual_time: clocks.virtual_time,
        }
    }
}

/// Bucket names become directory names, so only a safe alphabet is allowed.
pub(crate) fn check_bucket(bucket: &str) -> Result<(), KvError> {
    let refuse = |reason| {
        Err(KvError::InvalidBucket {
            bucket: bucket.to_owned(),
            reason,
        })
    };
    if bucket.is_empty() {
        return refuse("it is empty");
    }
    if bucket.len() > MAX_BUCKET_NAME_BYTES {
        return refuse("it is longer than 64 bytes");
    }
    if bucket == "." || bucket == ".." || bucket.contains(['/', '\\', '\0']) {
        return refuse("it would escape the store's directory");
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return refuse("only ASCII letters, digits, `_`, `-` and `.` are allowed");
    }
    Ok(())
}

/// Keys are encoded into file names, so any text is safe on disk; keys that
/// look like an attempt to leave the bucket are refused all the same.
pub(crate) fn check_key(key: &str) -> Result<(), KvError> {
    let refuse = |reason| {
        Err(KvError::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return refuse("it is empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::KeyTooLong {
            len: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    if key.contains(['\0', '\\'])
        || key
            .split('/')
            .any(|segment| segment == ".." || segment == ".")
    {
        return refuse("it would escape the bucket directory");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
