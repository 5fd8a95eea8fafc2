//! The in-memory backend.

use std::collections::{BTreeMap, HashMap};

use super::{Backend, KvError};

#[derive(Default)]
pub(super) struct MemoryBackend {
    buckets: HashMap<String, BTreeMap<String, Vec<u8>>>,
}

impl Backend for MemoryBackend {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.buckets.get(bucket).and_then(|b| b.get(key)).cloned())
    }

    fn set(&mut self, bucket: &str, key: &str, value: &[u8]) -> Result<Option<u64>, KvError> {
        let replaced = self
            .buckets
            .entry(bucket.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_vec());
        Ok(replaced.map(|old| old.len() as u64))
    }

    fn delete(&mut self, bucket: &str, key: &str) -> Result<Option<u64>, KvError> {
        let deleted = self.buckets.get_mut(bucket).and_then(|b| b.remove(key));
        Ok(deleted.map(|old| old.len() as u64))
    }

    fn keys(&self, bucket: &str) -> Result<Vec<String>, KvError> {
        Ok(self
            .buckets
            .get(bucket)
            .map(|b| b.keys().cloned().collect())
            .unwrap_or_default())
    }

    fn buckets(&self) -> Result<Vec<String>, KvError> {
        Ok(self.buckets.keys().cloned().collect())
    }

    fn value_len(&self, bucket: &str, key: &str) -> Result<Option<u64>, KvError> {
        let value = self.buckets.get(bucket).and_then(|b| b.get(key));
        Ok(value.map(|value| value.len() as u64))
    }

    fn total_bytes(&self) -> Result<u64, KvError> {
        let values = self.buckets.values().flat_map(BTreeMap::values);
        Ok(values.map(|value| value.len() as u64).sum())
    }
}
