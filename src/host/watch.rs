//! `hotwasm:script/watch`: what an instance watches, and which changes
//! match.

use std::any::TypeId;
use std::collections::BTreeMap;

use bevy::ecs::reflect::AppTypeRegistry;
use bevy::prelude::Entity;
use bevy::reflect::TypeRegistry;
use wasmtime::component::HasData;

use super::HostState;
use super::access::Access;
use super::bindings::hotwasm::script::watch::{ComponentChanges, Error, Host};
use super::details::{KeyWatch, type_name};
use super::reflect::{ReflectError, TypeKind, lookup};
use crate::capabilities::Right;
use crate::kv::{self, KvChanged, KvOrigin};
use hotwasm_events::ChangeKind;

/// The most watches one instance may hold.
pub const MAX_WATCHES: u32 = 256;

/// An instance's watches, by id (ids grow with creation, so matches come
/// out in creation order).
#[derive(Default)]
pub(crate) struct Watches {
    last_id: u64,
    kv: BTreeMap<u64, KvWatch>,
    components: BTreeMap<u64, TypeWatch>,
    resources: BTreeMap<u64, TypeWatch>,
}

/// A watch on a component or resource type.
pub(crate) struct TypeWatch {
    pub type_id: TypeId,
    /// For components: which changes; resources only change.
    pub changes: ComponentChanges,
}

struct KvWatch {
    watched: KeyWatch,
    skip_own_writes: bool,
}

impl Watches {
    fn next_id(&mut self) -> Result<u64, Error> {
        if self.kv.len() + self.components.len() + self.resources.len() >= MAX_WATCHES as usize {
            return Err(Error::TooManyWatches(MAX_WATCHES));
        }
        self.last_id += 1;
        Ok(self.last_id)
    }

    fn add_kv(&mut self, watch: KvWatch) -> Result<u64, Error> {
        let id = self.next_id()?;
        self.kv.insert(id, watch);
        Ok(id)
    }

    fn remove(&mut self, id: u64) -> Result<(), Error> {
        let removed = self.kv.remove(&id).is_some()
            || self.components.remove(&id).is_some()
            || self.resources.remove(&id).is_some();
        removed.then_some(()).ok_or(Error::UnknownWatch(id))
    }

    /// Changes when a watch is added or removed: the last id and the count.
    pub fn stamp(&self) -> (u64, usize) {
        let count = self.kv.len() + self.components.len() + self.resources.len();
        (self.last_id, count)
    }

    /// Every watch, described, in the order they were made.
    pub fn describe(&self, registry: &TypeRegistry) -> Vec<String> {
        let mut described: Vec<(u64, String)> = Vec::new();
        for (id, watch) in &self.kv {
            let KeyWatch {
                bucket,
                key,
                prefix,
            } = &watch.watched;
            let any = if *prefix { "*" } else { "" };
            let own = if watch.skip_own_writes {
                " (not its own writes)"
            } else {
                ""
            };
            described.push((*id, format!("kv {bucket}/{key}{any}{own}")));
        }
        for (id, watch) in &self.components {
            let changes: Vec<&str> = [
                (ComponentChanges::ADDED, "added"),
                (ComponentChanges::CHANGED, "changed"),
                (ComponentChanges::REMOVED, "removed"),
            ]
            .into_iter()
            .filter(|(change, _)| watch.changes.contains(*change))
            .map(|(_, name)| name)
            .collect();
            let name = type_name(registry, watch.type_id);
            described.push((*id, format!("component {name} ({})", changes.join(", "))));
        }
        for (id, watch) in &self.resources {
            described.push((
                *id,
                format!("resource {}", type_name(registry, watch.type_id)),
            ));
        }
        described.sort_by_key(|(id, _)| *id);
        described.into_iter().map(|(_, text)| text).collect()
    }

    /// Calls `matched` with the id of every component or resource watch
    /// that a change of `kind` to the type `type_id` matches.
    pub fn match_type(&self, type_id: TypeId, kind: ChangeKind, mut matched: impl FnMut(u64)) {
        if matches!(kind, ChangeKind::ResourceChanged) {
            for (id, watch) in &self.resources {
                if watch.type_id == type_id {
                    matched(*id);
                }
            }
            return;
        }
        for (id, watch) in &self.components {
            if watch.type_id == type_id && watch.changes.contains(selected_by(kind)) {
                matched(*id);
            }
        }
    }

    /// Component watches, by id.
    pub fn components(&self) -> impl Iterator<Item = (u64, &TypeWatch)> {
        self.components.iter().map(|(id, watch)| (*id, watch))
    }

    /// Resource watches, by id.
    pub fn resources(&self) -> impl Iterator<Item = (u64, &TypeWatch)> {
        self.resources.iter().map(|(id, watch)| (*id, watch))
    }

    /// The buckets and keys it watches, in the order the watches were made.
    pub fn key_watches(&self) -> Vec<KeyWatch> {
        self.kv
            .values()
            .map(|watch| watch.watched.clone())
            .collect()
    }

    /// Calls `matched` with the id of every watch of `owner`'s that `change`
    /// matches.
    pub fn match_kv(&self, change: &KvChanged, owner: Entity, mut matched: impl FnMut(u64)) {
        for (id, watch) in &self.kv {
            let own = change.origin == KvOrigin::Guest(owner);
            let covered = watch.watched.covers(&change.bucket, &change.key);
            if covered && !(own && watch.skip_own_writes) {
                matched(*id);
            }
        }
    }
}

fn checked_kv_watch(watched: KeyWatch, skip_own_writes: bool) -> Result<KvWatch, Error> {
    kv::check_bucket(&watched.bucket).map_err(|error| Error::InvalidBucket(error.to_string()))?;
    // An empty prefix watches the whole bucket.
    if !(watched.prefix && watched.key.is_empty()) {
        kv::check_key(&watched.key).map_err(|error| Error::InvalidKey(error.to_string()))?;
    }
    Ok(KvWatch {
        watched,
        skip_own_writes,
    })
}

/// The flag a component change kind is selected by.
pub(crate) fn selected_by(kind: ChangeKind) -> ComponentChanges {
    match kind {
        ChangeKind::ComponentAdded => ComponentChanges::ADDED,
        ChangeKind::ComponentRemoved => ComponentChanges::REMOVED,
        _ => ComponentChanges::CHANGED,
    }
}

impl From<ReflectError> for Error {
    fn from(error: ReflectError) -> Self {
        match error {
            ReflectError::UnknownType(message) => Error::UnknownType(message),
            ReflectError::UnsupportedType(message) | ReflectError::InvalidJson(message) => {
                Error::UnsupportedType(message)
            }
        }
    }
}

/// The marker `watch` is linked with: its host is a [`WatchView`].
pub(super) struct Watch;

impl HasData for Watch {
    type Data<'a> = WatchView<'a>;
}

/// What `watch` sees of an instance's state: the game's type registry,
/// what it was granted, and its watches.
pub(crate) struct WatchView<'a> {
    /// The game's type registry, to check watched type paths.
    registry: &'a AppTypeRegistry,
    access: &'a mut Access,
    watches: &'a mut Watches,
}

impl WatchView<'_> {
    pub fn of(state: &mut HostState) -> WatchView<'_> {
        WatchView {
            registry: &state.registry,
            access: &mut state.access,
            watches: &mut state.watches,
        }
    }

    /// The registered, serializable type of `kind` under `type_path`, if
    /// the grant lets the module watch it.
    fn watched_type(&mut self, type_path: &str, kind: TypeKind) -> Result<TypeId, Error> {
        let registry = self.registry;
        let registry = registry.read();
        let registered = lookup(&registry, type_path, kind)?;
        let right = match kind {
            TypeKind::Component => Right::ComponentWatch,
            TypeKind::Resource => Right::ResourceWatch,
        };
        (self.access)
            .check_registered(right, &registered)
            .map_err(Error::Denied)?;
        registered.check_serializable()?;
        Ok(registered.type_id)
    }

    /// A checked watch of `watched`, if the grant's `kv.watch` reaches it.
    fn kv_watch(&mut self, watched: KeyWatch, skip_own_writes: bool) -> Result<u64, Error> {
        let watch = checked_kv_watch(watched, skip_own_writes)?;
        (self.access)
            .check_kv_watch(&watch.watched)
            .map_err(Error::Denied)?;
        self.watches.add_kv(watch)
    }
}

impl Host for WatchView<'_> {
    fn watch_component(
        &mut self,
        type_path: String,
        changes: ComponentChanges,
    ) -> Result<u64, Error> {
        let type_id = self.watched_type(&type_path, TypeKind::Component)?;
        let id = self.watches.next_id()?;
        let watch = TypeWatch { type_id, changes };
        self.watches.components.insert(id, watch);
        Ok(id)
    }

    fn watch_resource(&mut self, type_path: String) -> Result<u64, Error> {
        let type_id = self.watched_type(&type_path, TypeKind::Resource)?;
        let id = self.watches.next_id()?;
        let watch = TypeWatch {
            type_id,
            changes: ComponentChanges::CHANGED,
        };
        self.watches.resources.insert(id, watch);
        Ok(id)
    }

    fn watch_key(
        &mut self,
        bucket: String,
        key: String,
        skip_own_writes: bool,
    ) -> Result<u64, Error> {
        let watched = KeyWatch {
            bucket,
            key,
            prefix: false,
        };
        self.kv_watch(watched, skip_own_writes)
    }

    fn watch_prefix(
        &mut self,
        bucket: String,
        prefix: String,
        skip_own_writes: bool,
    ) -> Result<u64, Error> {
        let watched = KeyWatch {
            bucket,
            key: prefix,
            prefix: true,
        };
        self.kv_watch(watched, skip_own_writes)
    }

    fn unwatch(&mut self, id: u64) -> Result<(), Error> {
        self.watches.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamps::EventStamp;

    fn change(bucket: &str, key: &str, origin: KvOrigin) -> KvChanged {
        KvChanged {
            stamp: EventStamp::UNPUBLISHED,
            bucket: bucket.into(),
            key: key.into(),
            value: None,
            origin,
        }
    }

    fn key_watch(bucket: &str, key: &str, prefix: bool) -> KeyWatch {
        KeyWatch {
            bucket: bucket.into(),
            key: key.into(),
            prefix,
        }
    }

    fn matches(watches: &Watches, change: &KvChanged, owner: Entity) -> Vec<u64> {
        let mut ids = Vec::new();
        watches.match_kv(change, owner, |id| ids.push(id));
        ids
    }

    #[test]
    fn keys_prefixes_and_own_writes() {
        let me = Entity::from_raw_u32(7).unwrap();
        let mut watches = Watches::default();
        let exact = watches
            .add_kv(checked_kv_watch(key_watch("s", "player/1", false), false).unwrap())
            .unwrap();
        let prefix = watches
            .add_kv(checked_kv_watch(key_watch("s", "player/", true), true).unwrap())
            .unwrap();

        assert_eq!(
            matches(&watches, &change("s", "player/1", KvOrigin::Host), me),
            [exact, prefix]
        );
        assert_eq!(
            matches(&watches, &change("s", "player/2", KvOrigin::External), me),
            [prefix]
        );
        assert!(matches(&watches, &change("s", "team/1", KvOrigin::Host), me).is_empty());
        assert!(matches(&watches, &change("t", "player/1", KvOrigin::Host), me).is_empty());
        // The prefix watch skips this instance's own writes; the exact one does not.
        assert_eq!(
            matches(&watches, &change("s", "player/1", KvOrigin::Guest(me)), me),
            [exact]
        );

        watches.remove(exact).unwrap();
        assert!(matches!(watches.remove(exact), Err(Error::UnknownWatch(id)) if id == exact));
        assert!(matches!(
            checked_kv_watch(key_watch("..", "", true), false),
            Err(Error::InvalidBucket(_))
        ));
        assert!(matches!(
            checked_kv_watch(key_watch("s", "../x", false), false),
            Err(Error::InvalidKey(_))
        ));
    }
}
