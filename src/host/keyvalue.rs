//! `wasi:keyvalue@0.2.0-draft2` (`store`, `atomics`, `batch`), exactly as
//! published, over the game's [`KvStore`].
//!
//! A bucket handle is the bucket's name: `open` checks the name and creates
//! nothing (a bucket appears with its first key). Writes are made as
//! [`KvOrigin::Guest`] of the instance's entity, so they become change
//! events like any other, and `skip-own-writes` watches can leave them out.
//! Store errors arrive as `error::other` with the store's message.

use bevy::prelude::Mut;
use wasmtime::component::Resource;

use super::HostState;
use super::bindings::wasi::keyvalue::atomics::{self, CasError};
use super::bindings::wasi::keyvalue::batch;
use super::bindings::wasi::keyvalue::store::{self, Error, KeyResponse};
use super::quota::HostWork;
use crate::kv::{self, KvError, KvOrigin, KvStore};

/// What a `bucket` handle holds.
pub struct KvBucket {
    name: String,
}

/// What a `cas` handle holds: the key, and the value it was read with.
pub struct KvCas {
    bucket: String,
    key: String,
    current: Option<Vec<u8>>,
}

fn other(error: impl ToString) -> Error {
    Error::Other(error.to_string())
}

impl HostState {
    fn kv_store(&mut self) -> Result<Mut<'_, KvStore>, Error> {
        self.world
            .as_mut()
            .and_then(|world| world.get_resource_mut::<KvStore>())
            .ok_or_else(|| other("the game has no key-value store"))
    }

    fn bucket_name(&self, bucket: &Resource<KvBucket>) -> Result<String, Error> {
        let bucket = self.table.get(bucket).map_err(other)?;
        Ok(bucket.name.clone())
    }

    /// Counts one key-value write of `bytes` against the call's quota.
    fn kv_write(&mut self, bytes: usize) -> Result<(), Error> {
        self.quota
            .take(HostWork::KvWrite, bytes)
            .map_err(Error::Other)
    }

    fn kv_origin(&self) -> KvOrigin {
        KvOrigin::Guest(self.identity.entity)
    }

    /// Runs `op` on the store with the bucket's name and this instance as
    /// the writer.
    fn with_bucket<T>(
        &mut self,
        bucket: &Resource<KvBucket>,
        op: impl FnOnce(&mut KvStore, &str, KvOrigin) -> Result<T, KvError>,
    ) -> Result<T, Error> {
        let name = self.bucket_name(bucket)?;
        let origin = self.kv_origin();
        let mut store = self.kv_store()?;
        op(&mut store, &name, origin).map_err(other)
    }
}

impl store::Host for HostState {
    fn open(&mut self, identifier: String) -> Result<Resource<KvBucket>, Error> {
        kv::check_bucket(&identifier).map_err(other)?;
        self.table
            .push(KvBucket { name: identifier })
            .map_err(other)
    }
}

impl store::HostBucket for HostState {
    fn get(&mut self, bucket: Resource<KvBucket>, key: String) -> Result<Option<Vec<u8>>, Error> {
        self.with_bucket(&bucket, |store, name, _| store.get(name, &key))
    }

    fn set(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        self.kv_write(key.len() + value.len())?;
        self.with_bucket(&bucket, |store, name, origin| {
            store.set_as(origin, name, &key, &value)
        })
    }

    fn delete(&mut self, bucket: Resource<KvBucket>, key: String) -> Result<(), Error> {
        self.kv_write(key.len())?;
        self.with_bucket(&bucket, |store, name, origin| {
            store.delete_as(origin, name, &key)
        })
    }

    fn exists(&mut self, bucket: Resource<KvBucket>, key: String) -> Result<bool, Error> {
        self.with_bucket(&bucket, |store, name, _| store.exists(name, &key))
    }

    /// Cursors are page offsets written as decimal text.
    fn list_keys(
        &mut self,
        bucket: Resource<KvBucket>,
        cursor: Option<String>,
    ) -> Result<KeyResponse, Error> {
        let cursor = cursor
            .map(|text| {
                text.parse::<u64>()
                    .map_err(|_| other(format!("cursor {text:?} was not made by list-keys")))
            })
            .transpose()?;
        let page = self.with_bucket(&bucket, |store, name, _| store.list_keys(name, cursor))?;
        Ok(KeyResponse {
            keys: page.keys,
            cursor: page.cursor.map(|next| next.to_string()),
        })
    }

    fn drop(&mut self, bucket: Resource<KvBucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for HostState {
    fn increment(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
        delta: i64,
    ) -> Result<i64, Error> {
        self.kv_write(key.len())?;
        self.with_bucket(&bucket, |store, name, origin| {
            store.increment_as(origin, name, &key, delta)
        })
    }

    /// Swaps in `value` if the key still holds what the handle read. On a
    /// failed swap the handle comes back holding the key's value now, so a
    /// retry loop can look at it and try again.
    fn swap(&mut self, cas: Resource<KvCas>, value: Vec<u8>) -> Result<(), CasError> {
        let store_error = CasError::StoreError;
        self.kv_write(value.len()).map_err(store_error)?;
        let (bucket, key, expected) = {
            let cas = self.table.get(&cas).map_err(|e| store_error(other(e)))?;
            (cas.bucket.clone(), cas.key.clone(), cas.current.clone())
        };
        let origin = self.kv_origin();
        let mut store = self.kv_store().map_err(store_error)?;
        let swapped = store
            .compare_and_swap_as(origin, &bucket, &key, expected.as_deref(), &value)
            .map_err(|e| store_error(other(e)))?;
        if swapped {
            self.table.delete(cas).map_err(|e| store_error(other(e)))?;
            return Ok(());
        }
        let now = store
            .get(&bucket, &key)
            .map_err(|e| store_error(other(e)))?;
        self.table
            .get_mut(&cas)
            .map_err(|e| store_error(other(e)))?
            .current = now;
        Err(CasError::CasFailed(cas))
    }
}

impl atomics::HostCas for HostState {
    fn new(&mut self, bucket: Resource<KvBucket>, key: String) -> Result<Resource<KvCas>, Error> {
        let name = self.bucket_name(&bucket)?;
        let current = self.with_bucket(&bucket, |store, name, _| store.get(name, &key))?;
        self.table
            .push(KvCas {
                bucket: name,
                key,
                current,
            })
            .map_err(other)
    }

    fn current(&mut self, cas: Resource<KvCas>) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.table.get(&cas).map_err(other)?.current.clone())
    }

    fn drop(&mut self, cas: Resource<KvCas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for HostState {
    fn get_many(
        &mut self,
        bucket: Resource<KvBucket>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, Error> {
        self.with_bucket(&bucket, |store, name, _| {
            keys.into_iter()
                .map(|key| {
                    let value = store.get(name, &key)?;
                    Ok((key, value))
                })
                .collect()
        })
    }

    /// Not atomic: a failure leaves the pairs before it written.
    fn set_many(
        &mut self,
        bucket: Resource<KvBucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), Error> {
        for (key, value) in &key_values {
            self.kv_write(key.len() + value.len())?;
        }
        self.with_bucket(&bucket, |store, name, origin| {
            key_values
                .iter()
                .try_for_each(|(key, value)| store.set_as(origin, name, key, value))
        })
    }

    /// Not atomic: a failure leaves the keys before it deleted.
    fn delete_many(&mut self, bucket: Resource<KvBucket>, keys: Vec<String>) -> Result<(), Error> {
        for key in &keys {
            self.kv_write(key.len())?;
        }
        self.with_bucket(&bucket, |store, name, origin| {
            keys.iter()
                .try_for_each(|key| store.delete_as(origin, name, key))
        })
    }
}
