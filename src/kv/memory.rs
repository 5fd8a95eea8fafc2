//! The in-memory backend.

use std::collections::HashMap;

use super::KvError;
use super::backend::Backend;

/// Hash maps: a write is a lookup and a copy of the value into the buffer
/// the key already has; listing keys sorts them.
#[derive(Default)]
pub(super) struct MemoryBackend {
    buckets: HashMap<String, HashMap<String, Vec<u8>>>,
}

impl Backend for MemoryBackend {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.buckets.get(bucket).and_then(|b| b.get(key)).cloned())
    }

    fn set(&mut self, bucket: &str, key: &str, value: &[u8]) -> Result<Option<u64>, KvError> {
        // Names are copied only when new, and a key's value buffer is reused.
        if !self.buckets.contains_key(bucket) {
            self.buckets.insert(bucket.to_owned(), HashMap::new());
        }
        let Some(values) = self.buckets.get_mut(bucket) else {
            unreachable!("inserted above")
        };
        if let Some(stored) = values.get_mut(key) {
            let old = stored.len() as u64;
            stored.clear();
            stored.extend_from_slice(value);
            return Ok(Some(old));
        }
        values.insert(key.to_owned(), value.to_vec());
        Ok(None)
    }

    fn delete(&mut self, bucket: &str, key: &str) -> Result<Option<u64>, KvError> {
        let deleted = self.buckets.get_mut(bucket).and_then(|b| b.remove(key));
        Ok(deleted.map(|old| old.len() as u64))
    }

    fn keys(&self, bucket: &str) -> Result<Vec<String>, KvError> {
        let mut keys: Vec<String> = self
            .buckets
            .get(bucket)
            .map(|b| b.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort_unstable();
        Ok(keys)
    }

    fn buckets(&self) -> Result<Vec<String>, KvError> {
        let mut buckets: Vec<String> = self.buckets.keys().cloned().collect();
        buckets.sort_unstable();
        Ok(buckets)
    }

    fn value_len(&self, bucket: &str, key: &str) -> Result<Option<u64>, KvError> {
        let value = self.buckets.get(bucket).and_then(|b| b.get(key));
        Ok(value.map(|value| value.len() as u64))
    }

    fn total_bytes(&self) -> Result<u64, KvError> {
        let values = self.buckets.values().flat_map(HashMap::values);
        Ok(values.map(|value| value.len() as u64).sum())
    }
}
