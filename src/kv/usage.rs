//! What the store holds, in all and per module: the bytes of every value
//! (against the store's ceiling), and the keys and bytes each module wrote
//! last that still exist (against its [`GuestLimits`] totals). Kept for the
//! keys that exist, so it is bounded by them.

use std::collections::HashMap;
use std::sync::Arc;

use super::KvError;
use crate::sandbox::GuestLimits;

/// A module writing, with its totals; see [`super::KvStore::written_by`].
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    pub module: Arc<str>,
    pub limits: GuestLimits,
}

/// Keys and bytes a module keeps in the store ([`super::KvStore::kept_by`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvUsage {
    /// Keys it wrote last that still exist.
    pub keys: u64,
    /// Their values' bytes.
    pub bytes: u64,
}

impl KvUsage {
    fn add(&mut self, bytes: u64) {
        self.keys += 1;
        self.bytes += bytes;
    }

    fn remove(&mut self, bytes: u64) {
        self.keys = self.keys.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

/// One module's keys: in all, and per bucket.
#[derive(Default)]
struct Footprint {
    all: KvUsage,
    buckets: HashMap<String, KvUsage>,
}

#[derive(Default)]
pub(crate) struct Usage {
    /// The bytes of every value in the store.
    pub bytes: u64,
    /// The module that wrote each key last, if a module did, and its size.
    owners: HashMap<(String, String), (Arc<str>, u64)>,
    modules: HashMap<Arc<str>, Footprint>,
}

impl Usage {
    /// Usage of a store holding `bytes` of values, no module's yet.
    pub fn new(bytes: u64) -> Self {
        Self {
            bytes,
            ..Self::default()
        }
    }

    /// Refuses `writer` setting `key` to `len` bytes past one of its totals.
    pub fn check(&self, writer: &Writer, bucket: &str, key: &str, len: u64) -> Result<(), KvError> {
        let footprint = self.modules.get(&writer.module);
        let mine = self
            .owners
            .get(&(bucket.to_owned(), key.to_owned()))
            .filter(|(owner, _)| *owner == writer.module)
            .map(|(_, bytes)| *bytes);
        let after = |tally: KvUsage| KvUsage {
            keys: tally.keys + u64::from(mine.is_none()),
            bytes: tally.bytes.saturating_sub(mine.unwrap_or(0)) + len,
        };
        let all = after(footprint.map(|f| f.all).unwrap_or_default());
        let in_bucket = after(
            footprint
                .and_then(|f| f.buckets.get(bucket))
                .copied()
                .unwrap_or_default(),
        );
        let limits = &writer.limits;
        // (what it would keep, its total, the total's words and name)
        let totals = [
            (all.keys, limits.max_kv_keys, "keys in all", "max_kv_keys"),
            (
                all.bytes,
                limits.max_kv_bytes,
                "bytes in all",
                "max_kv_bytes",
            ),
            (
                in_bucket.keys,
                limits.max_kv_keys_per_bucket,
                "keys in one bucket",
                "max_kv_keys_per_bucket",
            ),
            (
                in_bucket.bytes,
                limits.max_kv_bytes_per_bucket,
                "bytes in one bucket",
                "max_kv_bytes_per_bucket",
            ),
        ];
        match totals.into_iter().find(|(kept, max, ..)| kept > max) {
            Some((_, max, what, limit)) => Err(KvError::ModuleTotal {
                module: writer.module.to_string(),
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                total: format!("{max} {what} (GuestLimits::{limit})"),
            }),
            None => Ok(()),
        }
    }

    /// `key` now holds `len` bytes (it held `old`), written by `writer`.
    pub fn set(
        &mut self,
        writer: Option<&Writer>,
        bucket: &str,
        key: &str,
        old: Option<u64>,
        len: u64,
    ) {
        self.bytes = self.bytes.saturating_sub(old.unwrap_or(0)) + len;
        self.disown(bucket, key);
        if let Some(writer) = writer {
            let footprint = self.modules.entry(writer.module.clone()).or_default();
            footprint.all.add(len);
            footprint
                .buckets
                .entry(bucket.to_owned())
                .or_default()
                .add(len);
            let entry = (bucket.to_owned(), key.to_owned());
            self.owners.insert(entry, (writer.module.clone(), len));
        }
    }

    /// `key`, which held `old` bytes, is gone.
    pub fn delete(&mut self, bucket: &str, key: &str, old: u64) {
        self.bytes = self.bytes.saturating_sub(old);
        self.disown(bucket, key);
    }

    /// Someone outside the game changed `key`: no module's any more.
    pub fn forget(&mut self, bucket: &str, key: &str) {
        self.disown(bucket, key);
    }

    fn disown(&mut self, bucket: &str, key: &str) {
        // The game's own writes, with no module's key in the store, cost
        // no lookup.
        if self.owners.is_empty() {
            return;
        }
        let Some((module, bytes)) = self.owners.remove(&(bucket.to_owned(), key.to_owned())) else {
            return;
        };
        if let Some(footprint) = self.modules.get_mut(&module) {
            footprint.all.remove(bytes);
            if let Some(tally) = footprint.buckets.get_mut(bucket) {
                tally.remove(bytes);
            }
            if footprint.all.keys == 0 {
                self.modules.remove(&module);
            }
        }
    }

    /// The keys and bytes `module` keeps in the store.
    pub fn of(&self, module: &str) -> KvUsage {
        self.modules
            .get(module)
            .map(|footprint| footprint.all)
            .unwrap_or_default()
    }
}
