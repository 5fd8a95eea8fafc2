//! The one path every write to the store takes ([`KvWriter`], from
//! [`KvStore::by`]): checked against the store's limits, made, counted and
//! recorded as a change by its origin.

use super::backend::Swap;
use super::{
    KvChanged, KvError, KvOrigin, KvStore, MAX_BUCKETS, MAX_VALUE_BYTES, check_bucket, check_key,
};
use crate::stamps::EventStamp;

/// How many times `increment` tries again when another process changed
/// the key between its read and its write.
const INCREMENT_TRIES: usize = 64;

/// Writes to a [`KvStore`] made as one [`KvOrigin`]; [`KvStore::by`]
/// returns one.
///
/// Every write becomes a [`KvChanged`] that carries its origin, so whoever
/// reads the changes can tell who wrote: a watching guest can leave out its
/// own writes (`skip-own-writes`), and the debug panel shows who last wrote
/// each key. [`KvStore::set`] and its siblings write as [`KvOrigin::Host`],
/// a guest's writes are [`KvOrigin::Guest`] of its entity, and a developer
/// tool inside the game (the debug panel, an editor of your own) writes as
/// [`KvOrigin::Tool`]:
///
/// ```
/// # use bevy_hotwasm::KvStore;
/// # use bevy_hotwasm::kv::{KvError, KvOrigin};
/// # fn main() -> Result<(), KvError> {
/// let mut store = KvStore::in_memory();
/// store.by(KvOrigin::Tool).set("tuning", "speed", b"250")?;
/// # assert_eq!(store.get("tuning", "speed")?.as_deref(), Some(&b"250"[..]));
/// # Ok(())
/// # }
/// ```
#[must_use = "a KvWriter writes nothing until one of its methods is called"]
pub struct KvWriter<'a> {
    store: &'a mut KvStore,
    origin: KvOrigin,
}

impl<'a> KvWriter<'a> {
    /// Writes to `store` as `origin`; see [`KvStore::by`].
    pub(super) fn new(store: &'a mut KvStore, origin: KvOrigin) -> Self {
        Self { store, origin }
    }

    /// Sets `key` to `value`, creating the bucket if needed.
    pub fn set(&mut self, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.check_write(bucket, key, value)?;
        let old = self.store.backend.set(bucket, key, value)?;
        self.record_set(bucket, key, old, value);
        Ok(())
    }

    /// Deletes `key`; deleting a key that is not set is not an error.
    pub fn delete(&mut self, bucket: &str, key: &str) -> Result<(), KvError> {
        check_bucket(bucket)?;
        check_key(key)?;
        let origin = self.origin;
        let store = &mut *self.store;
        if let Some(old) = store.backend.delete(bucket, key)? {
            store.usage.delete(bucket, key, old);
            store.changes.push(KvChanged {
                stamp: EventStamp::UNPUBLISHED,
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                value: None,
                origin,
            });
        }
        Ok(())
    }

    /// Adds `delta` to the decimal integer stored at `key` (0 when unset)
    /// and returns the new value. Counters are stored as decimal text, so a
    /// person can read and edit them.
    pub fn increment(&mut self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        let mut current = self.store.get(bucket, key)?;
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
            match self.swap(bucket, key, current.as_deref(), text.as_bytes())? {
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

    /// Sets `key` to `new` only if its value is `expected` (`None`: only if
    /// unset). Returns whether it did.
    pub fn compare_and_swap(
        &mut self,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        Ok(self.swap(bucket, key, expected, new)?.is_ok())
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
        let store = &mut *self.store;
        let len = value.len() as u64;
        // Only near the ceiling does the value replaced matter.
        if store.usage.bytes + len > store.max_bytes {
            let old = store.backend.value_len(bucket, key)?.unwrap_or(0);
            if store.usage.bytes.saturating_sub(old) + len > store.max_bytes {
                return Err(KvError::StoreFull {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    max: store.max_bytes,
                });
            }
        }
        if let Some(writer) = &store.writer {
            store.usage.check(writer, bucket, key, len)?;
        }
        // The bucket is recorded when the write lands (`record_set`): a
        // refused or failed write leaves no bucket behind.
        if !store.buckets.contains(bucket) && store.buckets.len() >= MAX_BUCKETS {
            return Err(KvError::TooManyBuckets {
                bucket: bucket.to_owned(),
                max: MAX_BUCKETS,
            });
        }
        Ok(())
    }

    /// Counts and reports a write of `value` that replaced `old` bytes.
    fn record_set(&mut self, bucket: &str, key: &str, old: Option<u64>, value: &[u8]) {
        let origin = self.origin;
        let store = &mut *self.store;
        if !store.buckets.contains(bucket) {
            store.buckets.insert(bucket.to_owned());
        }
        store
            .usage
            .set(store.writer.as_ref(), bucket, key, old, value.len() as u64);
        store.changes.push(KvChanged {
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
    fn swap(
        &mut self,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Result<(), Option<Vec<u8>>>, KvError> {
        self.check_write(bucket, key, value)?;
        let guest = self.store.writer.is_some();
        let started = std::time::Instant::now();
        let wait = guest.then_some(self.store.guest_wait_left);
        let answer = self.store.backend.swap(bucket, key, expected, value, wait);
        if guest {
            self.store.guest_wait_left =
                self.store.guest_wait_left.saturating_sub(started.elapsed());
        }
        let mut abandoned = Vec::new();
        self.store.backend.take_abandoned(&mut abandoned);
        for (bucket, key, value, old) in abandoned {
            self.record_set(&bucket, &key, old, &value);
        }
        let swapped = match answer {
            Some(swapped) => swapped?,
            None => match self.store.backend.get(bucket, key)? {
                current if current.as_deref() != expected => Swap::Holds(current),
                _ => Swap::Done(self.store.backend.set(bucket, key, value)?),
            },
        };
        match swapped {
            Swap::Done(old) => {
                self.record_set(bucket, key, old, value);
                Ok(Ok(()))
            }
            Swap::Holds(current) => Ok(Err(current)),
        }
    }
}
