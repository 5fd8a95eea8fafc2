//! `wasi:keyvalue@0.2.0-draft2` (`store`, `atomics`, `batch`) as upstream
//! defines it, over the game's [`KvStore`]; and `batch.get-many` in the
//! other shape some SDKs ship, for the guests that import that one
//! ([`link_pairs_get_many`], chosen per component by
//! [`wants_pairs_get_many`]).
//!
//! Implemented on a view of the instance's state ([`KvView`]: its resource
//! table, the lent world, its quota and its entity), linked with the
//! [`Kv`] marker, the way wasmtime-wasi links its interfaces. Every failure
//! is a [`KvFailure`], converted to the WIT `error` in one place
//! (`convert_error`): store errors and refused quotas reach the guest as
//! `error::other` with the message, a key out of the module's grant as
//! `error::access-denied`; a bad handle is a host bug and traps.
//!
//! A bucket handle is the bucket's name: `open` checks the name and creates
//! nothing (a bucket appears with its first key). Writes are made as
//! [`KvOrigin::Guest`] of the instance's entity, so they become change
//! events like any other, and `skip-own-writes` watches can leave them out.

use bevy::prelude::{Entity, Mut, World};
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{
    Component, HasData, Linker, Resource, ResourceTable, ResourceTableError,
};
use wasmtime::{Engine, StoreContextMut};

use super::HostState;
use super::access::{Access, BucketRights};
use super::bindings::wasi::keyvalue::atomics::{self, CasError};
use super::bindings::wasi::keyvalue::batch;
use super::bindings::wasi::keyvalue::store::{self, Error, KeyResponse};
use super::quota::{CallQuota, HostWork, Limiter};
use crate::capabilities::Right;
use crate::kv::{self, KvError, KvOrigin, KvStore, Writer};

/// What a `bucket` handle holds.
pub struct KvBucket {
    name: String,
    /// How much of it each `kv.*` right of the grant reaches, resolved when
    /// the guest opens it.
    rights: BucketRights,
}

/// What a `cas` handle holds: the key, and the value it was read with.
pub struct KvCas {
    bucket: String,
    key: String,
    current: Option<Vec<u8>>,
}

/// The most bucket handles one instance may hold open at once.
pub const MAX_OPEN_BUCKETS: usize = 64;
/// The most compare-and-swap handles one instance may hold at once.
pub const MAX_CAS_HANDLES: usize = 16;

/// The key-value handles an instance holds in its resource table, and the
/// bytes its compare-and-swap handles keep, counted so a guest cannot grow
/// the host's memory outside its own limit.
#[derive(Default)]
pub(crate) struct KvHandles {
    buckets: usize,
    swaps: usize,
}

impl KvCas {
    /// What the host keeps for it, against the instance's memory limit.
    fn bytes(&self) -> usize {
        self.key.len() + self.current.as_ref().map_or(0, Vec::len)
    }
}

/// Why a `wasi:keyvalue` call failed on the host.
pub enum KvFailure {
    /// The guest's request failed or was refused: its error message.
    Refused(String),
    /// The module's grant does not reach the key (`Access` keeps the
    /// refusal, naming the capability, for the script's stats).
    Denied,
    /// A host bug (a handle the host does not know): traps the guest.
    Trap(wasmtime::Error),
}

impl From<KvError> for KvFailure {
    fn from(error: KvError) -> Self {
        Self::Refused(error.to_string())
    }
}

impl From<ResourceTableError> for KvFailure {
    fn from(error: ResourceTableError) -> Self {
        Self::Trap(error.into())
    }
}

/// The marker `wasi:keyvalue` is linked with: its host is a [`KvView`].
pub(crate) struct Kv;

impl HasData for Kv {
    type Data<'a> = KvView<'a>;
}

/// What `wasi:keyvalue` sees of an instance's state.
pub(crate) struct KvView<'a> {
    table: &'a mut ResourceTable,
    world: &'a mut Option<Box<World>>,
    quota: &'a mut CallQuota,
    entity: Entity,
    /// The module writing, against its totals.
    writer: Writer,
    /// What the module was granted.
    access: &'a mut Access,
    handles: &'a mut KvHandles,
    /// Counts what compare-and-swap handles keep against the memory limit.
    limiter: &'a mut Limiter,
}

impl KvView<'_> {
    pub fn of(state: &mut HostState) -> KvView<'_> {
        KvView {
            table: &mut state.table,
            world: &mut state.world,
            quota: &mut state.quota,
            entity: state.identity.entity,
            writer: Writer {
                module: state.identity.module_path.clone(),
                limits: state.limits,
            },
            access: &mut state.access,
            handles: &mut state.kv_handles,
            limiter: &mut state.limiter,
        }
    }

    /// Refuses a request past a bound on what the host keeps, counted as a
    /// refused request.
    fn refuse(&mut self, message: String) -> KvFailure {
        self.quota.refused += 1;
        KvFailure::Refused(message)
    }

    fn push_bucket(&mut self, bucket: KvBucket) -> Result<Resource<KvBucket>, KvFailure> {
        if self.handles.buckets >= MAX_OPEN_BUCKETS {
            return Err(self.refuse(format!(
                "{MAX_OPEN_BUCKETS} buckets already open, the most one instance may hold: drop \
                 one first"
            )));
        }
        let handle = self.table.push(bucket)?;
        self.handles.buckets += 1;
        Ok(handle)
    }

    fn delete_bucket(&mut self, bucket: Resource<KvBucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        self.handles.buckets -= 1;
        Ok(())
    }

    fn push_cas(&mut self, cas: KvCas) -> Result<Resource<KvCas>, KvFailure> {
        if self.handles.swaps >= MAX_CAS_HANDLES {
            return Err(self.refuse(format!(
                "{MAX_CAS_HANDLES} compare-and-swap handles already held, the most one instance \
                 may hold: swap or drop one first"
            )));
        }
        if let Err(refusal) = self.limiter.reserve_host_bytes(cas.bytes()) {
            return Err(self.refuse(refusal));
        }
        let bytes = cas.bytes();
        let handle = self.table.push(cas).inspect_err(|_| {
            self.limiter.release_host_bytes(bytes);
        })?;
        self.handles.swaps += 1;
        Ok(handle)
    }

    fn delete_cas(&mut self, cas: Resource<KvCas>) -> wasmtime::Result<()> {
        let cas = self.table.delete(cas)?;
        self.limiter.release_host_bytes(cas.bytes());
        self.handles.swaps -= 1;
        Ok(())
    }

    /// Gives `cas` the key's value `now`, counting the change in what the
    /// host keeps; refused past the memory limit.
    fn refresh_cas(
        &mut self,
        cas: &Resource<KvCas>,
        now: Option<Vec<u8>>,
    ) -> Result<(), KvFailure> {
        let held = self.table.get(cas)?;
        let (held, wanted) = (
            held.bytes(),
            held.key.len() + now.as_ref().map_or(0, Vec::len),
        );
        if wanted > held {
            if let Err(refusal) = self.limiter.reserve_host_bytes(wanted - held) {
                return Err(self.refuse(refusal));
            }
        } else {
            self.limiter.release_host_bytes(held - wanted);
        }
        self.table.get_mut(cas)?.current = now;
        Ok(())
    }

    /// Refuses a use of `key` in `bucket` that the grant's `right` does
    /// not reach.
    fn granted(
        &mut self,
        right: Right,
        bucket: &Resource<KvBucket>,
        key: &str,
    ) -> Result<(), KvFailure> {
        let bucket = self.table.get(bucket)?;
        (self.access)
            .check_bucket_key(bucket.rights, right, &bucket.name, key)
            .map_err(|_| KvFailure::Denied)
    }

    fn store(&mut self) -> Result<Mut<'_, KvStore>, KvFailure> {
        self.world
            .as_mut()
            .and_then(|world| world.get_resource_mut::<KvStore>())
            .ok_or_else(|| KvFailure::Refused("the game has no key-value store".to_owned()))
    }

    fn bucket_name(&self, bucket: &Resource<KvBucket>) -> Result<String, KvFailure> {
        Ok(self.table.get(bucket)?.name.clone())
    }

    /// Counts one key-value write of `bytes` against the call's quota.
    fn count_write(&mut self, bytes: usize) -> Result<(), KvFailure> {
        self.quota
            .take(HostWork::KvWrite, bytes)
            .map_err(KvFailure::Refused)
    }

    /// Runs `op` on the store with this instance as the writer: its
    /// module's totals apply, and a write refused for them (or for the
    /// store's ceiling) counts as a refused request, like a call quota.
    fn write<T>(
        &mut self,
        op: impl FnOnce(&mut KvStore, KvOrigin) -> Result<T, KvError>,
    ) -> Result<T, KvFailure> {
        let origin = KvOrigin::Guest(self.entity);
        let writer = self.writer.clone();
        let mut store = self.store()?;
        let done = store.written_by(writer, |store| op(store, origin));
        if let Err(KvError::StoreFull { .. } | KvError::ModuleTotal { .. }) = &done {
            self.quota.refused += 1;
        }
        Ok(done?)
    }

    /// Runs `op` with the bucket's name, as [`KvView::write`].
    fn with_bucket<T>(
        &mut self,
        bucket: &Resource<KvBucket>,
        op: impl FnOnce(&mut KvStore, &str, KvOrigin) -> Result<T, KvError>,
    ) -> Result<T, KvFailure> {
        let name = self.bucket_name(bucket)?;
        self.write(|store, origin| op(store, &name, origin))
    }
}

impl store::Host for KvView<'_> {
    fn open(&mut self, identifier: String) -> Result<Resource<KvBucket>, KvFailure> {
        kv::check_bucket(&identifier)?;
        let rights = self.access.bucket_rights(&identifier);
        self.push_bucket(KvBucket {
            name: identifier,
            rights,
        })
    }

    fn convert_error(&mut self, failure: KvFailure) -> wasmtime::Result<Error> {
        match failure {
            KvFailure::Refused(message) => Ok(Error::Other(message)),
            KvFailure::Denied => Ok(Error::AccessDenied),
            KvFailure::Trap(error) => Err(error),
        }
    }
}

impl store::HostBucket for KvView<'_> {
    fn get(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, KvFailure> {
        self.granted(Right::KvRead, &bucket, &key)?;
        self.with_bucket(&bucket, |store, name, _| store.get(name, &key))
    }

    fn set(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KvFailure> {
        self.granted(Right::KvWrite, &bucket, &key)?;
        self.count_write(key.len() + value.len())?;
        self.with_bucket(&bucket, |store, name, origin| {
            store.by(origin).set(name, &key, &value)
        })
    }

    fn delete(&mut self, bucket: Resource<KvBucket>, key: String) -> Result<(), KvFailure> {
        self.granted(Right::KvWrite, &bucket, &key)?;
        self.count_write(key.len())?;
        self.with_bucket(&bucket, |store, name, origin| {
            store.by(origin).delete(name, &key)
        })
    }

    fn exists(&mut self, bucket: Resource<KvBucket>, key: String) -> Result<bool, KvFailure> {
        self.granted(Right::KvRead, &bucket, &key)?;
        self.with_bucket(&bucket, |store, name, _| store.exists(name, &key))
    }

    /// Cursors are page offsets written as decimal text.
    fn list_keys(
        &mut self,
        bucket: Resource<KvBucket>,
        cursor: Option<String>,
    ) -> Result<KeyResponse, KvFailure> {
        let cursor = cursor
            .map(|text| {
                text.parse::<u64>().map_err(|_| {
                    KvFailure::Refused(format!("cursor {text:?} was not made by list-keys"))
                })
            })
            .transpose()?;
        let name = self.bucket_name(&bucket)?;
        let page = self.with_bucket(&bucket, |store, name, _| store.list_keys(name, cursor))?;
        // Keys out of the grant's reach are left out, not refused.
        let mut keys = page.keys;
        self.access.retain_readable(&name, &mut keys);
        Ok(KeyResponse {
            keys,
            cursor: page.cursor.map(|next| next.to_string()),
        })
    }

    fn drop(&mut self, bucket: Resource<KvBucket>) -> wasmtime::Result<()> {
        self.delete_bucket(bucket)
    }
}

impl atomics::Host for KvView<'_> {
    fn increment(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
        delta: i64,
    ) -> Result<i64, KvFailure> {
        self.granted(Right::KvAtomics, &bucket, &key)?;
        self.count_write(key.len())?;
        self.with_bucket(&bucket, |store, name, origin| {
            store.by(origin).increment(name, &key, delta)
        })
    }

    /// Swaps in `value` if the key still holds what the handle read. On a
    /// failed swap the handle comes back holding the key's value now, so a
    /// retry loop can look at it and try again.
    fn swap(
        &mut self,
        cas: Resource<KvCas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), CasError>> {
        match self.try_swap(&cas, &value) {
            Ok(true) => {
                self.delete_cas(cas)?;
                Ok(Ok(()))
            }
            Ok(false) => Ok(Err(CasError::CasFailed(cas))),
            Err(failure) => {
                // The guest handed the handle over; a failed swap drops it.
                self.delete_cas(cas)?;
                let error = store::Host::convert_error(self, failure)?;
                Ok(Err(CasError::StoreError(error)))
            }
        }
    }
}

impl KvView<'_> {
    /// Swaps in `value` if the key still holds what `cas` read; on a failed
    /// swap, `cas` is updated to the key's value now.
    fn try_swap(&mut self, cas: &Resource<KvCas>, value: &[u8]) -> Result<bool, KvFailure> {
        self.count_write(value.len())?;
        let KvCas {
            bucket,
            key,
            current,
        } = self.table.get(cas)?;
        let (bucket, key, expected) = (bucket.clone(), key.clone(), current.clone());
        let swapped = self.write(|store, origin| {
            store
                .by(origin)
                .compare_and_swap(&bucket, &key, expected.as_deref(), value)
        })?;
        if swapped {
            return Ok(true);
        }
        let now = self.store()?.get(&bucket, &key)?;
        self.refresh_cas(cas, now)?;
        Ok(false)
    }
}

impl atomics::HostCas for KvView<'_> {
    fn new(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
    ) -> Result<Resource<KvCas>, KvFailure> {
        self.granted(Right::KvAtomics, &bucket, &key)?;
        let name = self.bucket_name(&bucket)?;
        let current = self.with_bucket(&bucket, |store, name, _| store.get(name, &key))?;
        self.push_cas(KvCas {
            bucket: name,
            key,
            current,
        })
    }

    fn current(&mut self, cas: Resource<KvCas>) -> Result<Option<Vec<u8>>, KvFailure> {
        Ok(self.table.get(&cas)?.current.clone())
    }

    fn drop(&mut self, cas: Resource<KvCas>) -> wasmtime::Result<()> {
        self.delete_cas(cas)
    }
}

/// Each key with its value, if set.
type Pairs = Vec<(String, Option<Vec<u8>>)>;

impl KvView<'_> {
    /// Each key with its value, if set: what both shapes of `get-many`
    /// return, each in its own way.
    fn get_pairs(
        &mut self,
        bucket: &Resource<KvBucket>,
        keys: Vec<String>,
    ) -> Result<Pairs, KvFailure> {
        for key in &keys {
            self.granted(Right::KvRead, bucket, key)?;
        }
        self.with_bucket(bucket, |store, name, _| {
            keys.into_iter()
                .map(|key| {
                    let value = store.get(name, &key)?;
                    Ok((key, value))
                })
                .collect()
        })
    }
}

impl batch::Host for KvView<'_> {
    /// Upstream's shape: a key that is not set is `none`.
    fn get_many(
        &mut self,
        bucket: Resource<KvBucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvFailure> {
        let pairs = self.get_pairs(&bucket, keys)?;
        Ok(pairs
            .into_iter()
            .map(|(key, value)| Some((key, value?)))
            .collect())
    }

    /// Not atomic: a failure leaves the pairs before it written.
    fn set_many(
        &mut self,
        bucket: Resource<KvBucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvFailure> {
        for (key, value) in &key_values {
            self.granted(Right::KvWrite, &bucket, key)?;
            self.count_write(key.len() + value.len())?;
        }
        self.with_bucket(&bucket, |store, name, origin| {
            key_values
                .iter()
                .try_for_each(|(key, value)| store.by(origin).set(name, key, value))
        })
    }

    /// Not atomic: a failure leaves the keys before it deleted.
    fn delete_many(
        &mut self,
        bucket: Resource<KvBucket>,
        keys: Vec<String>,
    ) -> Result<(), KvFailure> {
        for key in &keys {
            self.granted(Right::KvWrite, &bucket, key)?;
            self.count_write(key.len())?;
        }
        self.with_bucket(&bucket, |store, name, origin| {
            keys.iter()
                .try_for_each(|key| store.by(origin).delete(name, key))
        })
    }
}

/// The `batch` interface's import name, the same for both shapes.
const BATCH: &str = "wasi:keyvalue/batch@0.2.0-draft2";

/// Replaces `get-many` in `linker` (a copy of the upstream one) with the
/// other shape, from an unmerged upstream change that some SDKs ship:
/// `result<list<tuple<string, option<list<u8>>>>, error>`, every key with
/// its value if set.
pub(crate) fn link_pairs_get_many(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.instance(BATCH)?.func_wrap(
        "get-many",
        |mut cx: StoreContextMut<'_, HostState>,
         (bucket, keys): (Resource<KvBucket>, Vec<String>)|
         -> wasmtime::Result<(Result<Pairs, Error>,)> {
            let mut view = KvView::of(cx.data_mut());
            let result = match view.get_pairs(&bucket, keys) {
                Ok(pairs) => Ok(pairs),
                Err(failure) => Err(store::Host::convert_error(&mut view, failure)?),
            };
            Ok((result,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Whether `component` imports `get-many` in the other shape (a list of
/// tuples), rather than upstream's (a list of options).
pub(crate) fn wants_pairs_get_many(engine: &Engine, component: &Component) -> bool {
    let component_type = component.component_type();
    let Some(ComponentItem::ComponentInstance(batch)) = component_type
        .get_import(engine, BATCH)
        .map(|import| import.ty)
    else {
        return false;
    };
    let Some(ComponentItem::ComponentFunc(get_many)) =
        batch.get_export(engine, "get-many").map(|export| export.ty)
    else {
        return false;
    };
    let ok = match get_many.results().next() {
        Some(Type::Result(result)) => result.ok(),
        _ => None,
    };
    matches!(ok, Some(Type::List(list)) if matches!(list.ty(), Type::Tuple(_)))
}
