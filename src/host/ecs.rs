//! `hotwasm:script/ecs`: the game's world, lent to the instance for the
//! length of each call, read and written through `bevy_reflect`.
//!
//! Entities that hold a resource (Bevy 0.19 keeps each resource on an
//! entity of its own) are protected: a guest that despawned one, or
//! changed its components, could make the game's next `Res` access panic.

use std::any::TypeId;

use bevy::ecs::reflect::ReflectComponent;
use bevy::ecs::resource::IsResource;
use bevy::prelude::*;
use bevy::reflect::{
    ParsedPath, PartialReflect, ReflectDeserialize, ReflectSerialize, TypeRegistration,
    TypeRegistry,
};

use super::access::Access;
use super::bindings::hotwasm::script::ecs::{Error, Host, QueryPage, QueryRow};
use super::quota::HostWork;
use super::reflect::{
    ReflectError, Registered, TypeKind, deserialize_whole, is_mutable, lookup, resource_entity,
    set_whole, to_json,
};
use super::spawned::{SpawnCounts, SpawnedBy};
use super::{HostState, InstanceIdentity};
use crate::capabilities::Right;

/// How many rows one `query` page holds.
pub const QUERY_PAGE_ROWS: usize = 1000;

impl From<ReflectError> for Error {
    fn from(error: ReflectError) -> Self {
        match error {
            ReflectError::UnknownType(message) => Error::UnknownType(message),
            ReflectError::UnsupportedType(message) => Error::UnsupportedType(message),
            ReflectError::InvalidJson(message) => Error::InvalidJson(message),
        }
    }
}

fn component<'r>(registry: &'r TypeRegistry, type_path: &str) -> Result<Registered<'r>, Error> {
    Ok(lookup(registry, type_path, TypeKind::Component)?)
}

fn entity(world: &World, bits: u64) -> Result<Entity, Error> {
    Entity::try_from_bits(bits)
        .filter(|&entity| world.get_entity(entity).is_ok())
        .ok_or(Error::NoSuchEntity(bits))
}

impl HostState {
    /// Refuses `root` when it, or (for a despawn) one of its descendants,
    /// holds a resource or runs another script.
    fn check_unprotected(&self, root: Entity, with_descendants: bool) -> Result<(), Error> {
        let world = self.world.as_deref().ok_or_else(not_lent)?;
        let mut pending = vec![root];
        while let Some(entity) = pending.pop() {
            let Ok(entity_ref) = world.get_entity(entity) else {
                continue;
            };
            let runs_a_script = entity != self.identity.entity
                && self
                    .script_component
                    .is_some_and(|id| entity_ref.contains_id(id));
            let what = if entity_ref.contains::<IsResource>() {
                "holds a resource"
            } else if runs_a_script {
                "runs another script"
            } else {
                if with_descendants && let Some(children) = entity_ref.get::<Children>() {
                    pending.extend(children.iter());
                }
                continue;
            };
            let which = if entity == root {
                root.to_string()
            } else {
                format!("{entity}, a descendant of {root},")
            };
            return Err(Error::Protected(format!(
                "{which} {what}: guests may not despawn it or change its components"
            )));
        }
        Ok(())
    }
}

impl HostState {
    /// Refuses a use of a type the grant's `right` does not reach.
    fn check_type(&mut self, right: Right, registered: &Registered) -> Result<(), Error> {
        let type_path = registered.registration.type_info().type_path();
        self.access
            .check_type(right, registered.type_id, type_path)
            .map_err(Error::Denied)
    }

    /// Refuses to read or write the components of an entity the grant's
    /// `entities` does not reach.
    fn check_entity(&mut self, entity: Entity) -> Result<(), Error> {
        let world = self.world.as_deref().ok_or_else(not_lent)?;
        if reaches(&self.access, &self.identity, world, entity) {
            return Ok(());
        }
        let needed = if spawned_by(&self.identity, world, entity) {
            "spawned"
        } else {
            "*"
        };
        let refusal = self
            .access
            .deny(format!("entities {needed} ({entity} is not its own)"));
        Err(Error::Denied(refusal))
    }

    /// Refuses to despawn an entity the grant's `despawn` does not reach:
    /// `own`, `spawned`, `marked:<type path>` (an entity with such a
    /// component) or `*`.
    fn check_despawn(&mut self, entity: Entity) -> Result<(), Error> {
        let world = self.world.as_deref().ok_or_else(not_lent)?;
        let (scope, markers) = (self.access.despawn, &self.access.despawn_markers);
        let marked = || {
            let registry = self.registry.read();
            let Ok(components) = world.inspect_entity(entity) else {
                return false;
            };
            components
                .filter_map(|info| info.type_id())
                .filter_map(|type_id| registry.get(type_id))
                .any(|registration| {
                    let type_path = registration.type_info().type_path();
                    markers.iter().any(|marker| marker.covers(type_path))
                })
        };
        let allowed = scope.any
            || scope.own && entity == self.identity.entity
            || scope.spawned && spawned_by(&self.identity, world, entity)
            || !markers.is_empty() && marked();
        if allowed {
            return Ok(());
        }
        Err(Error::Denied(self.access.deny(format!("despawn {entity}"))))
    }
}

/// Whether the grant's `entities` reaches `entity`: its own always, the
/// entities it spawned with `spawned`, any with `*`.
fn reaches(access: &Access, identity: &InstanceIdentity, world: &World, entity: Entity) -> bool {
    let scope = access.entities;
    entity == identity.entity || scope.any || scope.spawned && spawned_by(identity, world, entity)
}

/// Whether the instance's module spawned `entity`.
fn spawned_by(identity: &InstanceIdentity, world: &World, entity: Entity) -> bool {
    world
        .get::<SpawnedBy>(entity)
        .is_some_and(|spawned_by| spawned_by.module == identity.module_path)
}

fn not_lent() -> Error {
    Error::Missing("the game's world (only lent during calls)".to_owned())
}

/// A reflected number as `f64`, whatever its primitive type.
fn number(value: &dyn PartialReflect) -> Option<f64> {
    macro_rules! try_numbers {
        ($($ty:ty),*) => {
            $(if let Some(n) = value.try_downcast_ref::<$ty>() {
                return Some(*n as f64);
            })*
        };
    }
    try_numbers!(f32, f64, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);
    None
}

impl HostState {
    /// The world lent for this call.
    fn world(&mut self) -> Result<&mut World, Error> {
        self.world.as_deref_mut().ok_or_else(not_lent)
    }
}

/// How many of its own components a guest may ask to have with every frame.
pub const MAX_PREFETCHED: usize = 16;

/// The length in the frame's `components` of one the entity does not have.
const ABSENT: u32 = u32::MAX;

/// A component a guest asked for with every frame, looked up once (at
/// `prefetch`): a frame needs neither the registry lock nor its lookups.
pub(crate) struct Prefetched {
    type_path: String,
    type_id: TypeId,
    reflect_component: ReflectComponent,
    /// Its own `Serialize` and `Deserialize`, when it registered both (a type
    /// shared with guests does): then frames need no registry at all.
    own_serde: Option<(ReflectSerialize, ReflectDeserialize)>,
}

impl Prefetched {
    fn new(registered: &Registered) -> Self {
        let data = |registration: &TypeRegistration| {
            Some((
                registration.data::<ReflectSerialize>()?.clone(),
                registration.data::<ReflectDeserialize>()?.clone(),
            ))
        };
        Self {
            type_path: registered.registration.type_info().type_path().to_owned(),
            type_id: registered.type_id,
            reflect_component: registered.reflect_component.clone(),
            own_serde: data(registered.registration),
        }
    }
}

impl HostState {
    /// The own components asked for with `prefetch`, framed for the frame's
    /// `components`: a little-endian length and the JSON for each, in order.
    pub(crate) fn read_prefetched(&mut self) -> Option<Vec<u8>> {
        if self.prefetched.is_empty() {
            return None;
        }
        let prefetched = std::mem::take(&mut self.prefetched);
        let mut framed = Vec::with_capacity(64 * prefetched.len());
        for component in &prefetched {
            let start = framed.len();
            framed.extend_from_slice(&ABSENT.to_le_bytes());
            if self.frame_json(component, &mut framed).is_ok() {
                let length = (framed.len() - start - 4) as u32;
                framed[start..start + 4].copy_from_slice(&length.to_le_bytes());
            } else {
                framed.truncate(start + 4);
            }
        }
        self.prefetched = prefetched;
        Some(framed)
    }

    /// Appends the JSON of the own entity's `component` to `framed`.
    fn frame_json(&mut self, component: &Prefetched, framed: &mut Vec<u8>) -> Result<(), Error> {
        let own = self.identity.entity;
        let Some((serialize, _)) = &component.own_serde else {
            let json = self.component_json(own.to_bits(), &component.type_path)?;
            framed.extend_from_slice(&json);
            return Ok(());
        };
        let world = self.world()?;
        let value = world
            .get_entity(own)
            .ok()
            .and_then(|entity| component.reflect_component.reflect(entity))
            .ok_or_else(|| Error::Missing(format!("{own} has no {}", component.type_path)))?;
        serialize
            .serialize(value, &mut serde_json::Serializer::new(framed))
            .map_err(|error| Error::UnsupportedType(error.to_string()))
    }

    /// Writes the changes a guest returned to its prefetched components,
    /// as `set-component` would; returns why each refused one was refused.
    pub(crate) fn write_prefetched(&mut self, changed: Vec<(u32, Vec<u8>)>) -> Vec<String> {
        let prefetched = std::mem::take(&mut self.prefetched);
        let refused = changed
            .into_iter()
            .filter_map(|(index, json)| {
                let Some(component) = prefetched.get(index as usize) else {
                    return Some(format!(
                        "it returned a change to prefetched component {index} of {}",
                        prefetched.len()
                    ));
                };
                let error = self.write_own(component, &json).err()?;
                Some(format!("{}: {}", component.type_path, describe(&error)))
            })
            .collect();
        self.prefetched = prefetched;
        refused
    }

    /// Writes `json` as the own entity's `component`: in place through its
    /// own `Deserialize` when it has one and the entity has a mutable one to
    /// write over, else as `set-component` would.
    fn write_own(&mut self, component: &Prefetched, json: &[u8]) -> Result<(), Error> {
        let own = self.identity.entity;
        let world = self.world()?;
        let mutable = is_mutable(world, component.type_id);
        let present = world
            .get_entity(own)
            .is_ok_and(|entity| component.reflect_component.contains(entity));
        let Some((_, deserialize)) = component.own_serde.as_ref().filter(|_| mutable && present)
        else {
            return self.write_component(own.to_bits(), &component.type_path, json);
        };
        self.quota
            .take(HostWork::Bytes, json.len())
            .map_err(Error::CallLimit)?;
        self.access
            .check_type(
                Right::ComponentWrite,
                component.type_id,
                &component.type_path,
            )
            .map_err(Error::Denied)?;
        self.check_unprotected(own, false)?;
        let value = deserialize_whole(deserialize, json, &component.type_path)?;
        let world = self.world()?;
        let mut existing = component
            .reflect_component
            .reflect_mut(world.entity_mut(own))
            .ok_or_else(|| Error::Missing(format!("{own} has no {}", component.type_path)))?;
        Ok(set_whole(&mut *existing, value, &component.type_path)?)
    }

    /// `entity`'s component `type_path` as JSON.
    fn component_json(&mut self, bits: u64, type_path: &str) -> Result<Vec<u8>, Error> {
        let registry = self.registry.clone();
        let registry = registry.read();
        let component = component(&registry, type_path)?;
        self.check_type(Right::ComponentRead, &component)?;
        let entity = entity(self.world()?, bits)?;
        self.check_entity(entity)?;
        let world = self.world()?;
        // Through the registration already found, not `World::get_reflect`,
        // which would look the registry up again.
        let value = component
            .reflect_component
            .reflect(world.entity(entity))
            .ok_or_else(|| Error::Missing(format!("{entity} has no {type_path}")))?;
        Ok(to_json(value, &registry)?)
    }

    /// Writes `json` as `entity`'s component `type_path`, over the one it
    /// has or inserted.
    fn write_component(&mut self, bits: u64, type_path: &str, json: &[u8]) -> Result<(), Error> {
        self.quota
            .take(HostWork::Bytes, json.len())
            .map_err(Error::CallLimit)?;
        let registry = self.registry.clone();
        let registry = registry.read();
        let component = component(&registry, type_path)?;
        self.check_type(Right::ComponentWrite, &component)?;
        let entity = entity(self.world()?, bits)?;
        self.check_entity(entity)?;
        self.check_unprotected(entity, false)?;
        let world = self.world()?;
        if component.write_in_place(&registry, world, entity, json)? {
            return Ok(());
        }
        let value = component.value_from_json(&registry, world, json)?;
        component
            .reflect_component
            .insert(&mut world.entity_mut(entity), &*value, &registry);
        Ok(())
    }
}

/// An ECS error as a sentence, for a log line.
fn describe(error: &Error) -> String {
    match error {
        Error::UnknownType(path) => format!("no type {path} is registered"),
        Error::NoSuchEntity(bits) => match Entity::try_from_bits(*bits) {
            Some(entity) => format!("no entity {entity}"),
            None => format!("no entity with bits {bits}"),
        },
        Error::UnsupportedType(message)
        | Error::Missing(message)
        | Error::InvalidJson(message)
        | Error::InvalidField(message)
        | Error::CallLimit(message)
        | Error::Protected(message)
        | Error::Denied(message) => message.clone(),
    }
}

impl Host for HostState {
    fn get_component(&mut self, bits: u64, type_path: String) -> Result<Vec<u8>, Error> {
        self.component_json(bits, &type_path)
    }

    fn set_component(&mut self, bits: u64, type_path: String, json: Vec<u8>) -> Result<(), Error> {
        self.write_component(bits, &type_path, &json)
    }

    fn prefetch(&mut self, type_paths: Vec<String>) -> Result<(), Error> {
        if type_paths.len() > MAX_PREFETCHED {
            return Err(Error::CallLimit(format!(
                "{} components asked for with every frame; at most {MAX_PREFETCHED}",
                type_paths.len()
            )));
        }
        let registry = self.registry.clone();
        let registry = registry.read();
        let prefetched = type_paths
            .iter()
            .map(|type_path| {
                let component = component(&registry, type_path)?;
                self.check_type(Right::ComponentRead, &component)?;
                component.check_serializable()?;
                Ok(Prefetched::new(&component))
            })
            .collect::<Result<_, Error>>()?;
        self.prefetched = prefetched;
        Ok(())
    }

    fn get_resource(&mut self, type_path: String) -> Result<Vec<u8>, Error> {
        let registry = self.registry.clone();
        let registry = registry.read();
        let resource = lookup(&registry, &type_path, TypeKind::Resource)?;
        self.check_type(Right::ResourceRead, &resource)?;
        let world = self.world()?;
        let value = resource_entity(world, resource.type_id)
            .and_then(|entity| world.get_reflect(entity, resource.type_id).ok())
            .ok_or_else(|| Error::Missing(format!("no {type_path} resource")))?;
        Ok(to_json(value, &registry)?)
    }

    fn set_resource(&mut self, type_path: String, json: Vec<u8>) -> Result<(), Error> {
        self.quota
            .take(HostWork::Bytes, json.len())
            .map_err(Error::CallLimit)?;
        let registry = self.registry.clone();
        let registry = registry.read();
        let resource = lookup(&registry, &type_path, TypeKind::Resource)?;
        self.check_type(Right::ResourceWrite, &resource)?;
        let world = self.world()?;
        let value = resource.value_from_json(&registry, world, &json)?;
        // A resource is a component on an entity of its own (Bevy 0.19).
        let mut holder = match resource_entity(world, resource.type_id) {
            Some(entity) => world.entity_mut(entity),
            None => world.spawn_empty(),
        };
        resource
            .reflect_component
            .insert(&mut holder, &*value, &registry);
        Ok(())
    }

    fn spawn(&mut self, components: Vec<(String, Vec<u8>)>) -> Result<u64, Error> {
        let bytes = components.iter().map(|(_, json)| json.len()).sum();
        self.quota
            .take(HostWork::Spawn, bytes)
            .map_err(Error::CallLimit)?;
        let module = self.identity.module_path.clone();
        let max = self.limits.max_spawned_entities;
        if self
            .world()?
            .get_resource_or_init::<SpawnCounts>()
            .of(&module)
            >= max
        {
            self.quota.refused += 1;
            return Err(Error::CallLimit(format!(
                "module {module} has {max} entities alive that it spawned \
                 (GuestLimits::max_spawned_entities): despawn some first"
            )));
        }
        if !self.access.reaches_any(Right::Spawn) {
            return Err(Error::Denied(self.access.deny("spawn".to_owned())));
        }
        let registry = self.registry.clone();
        let registry = registry.read();
        let values = components
            .iter()
            .map(|(type_path, json)| {
                let component = component(&registry, type_path)?;
                self.check_type(Right::Spawn, &component)?;
                let value = component.value_from_json(&registry, self.world()?, json)?;
                Ok((component.reflect_component, value))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let world = self.world()?;
        let mut spawned = world.spawn(SpawnedBy { module });
        for (reflect_component, value) in values {
            reflect_component.insert(&mut spawned, &*value, &registry);
        }
        Ok(spawned.id().to_bits())
    }

    fn despawn(&mut self, bits: u64) -> Result<(), Error> {
        let entity = entity(self.world()?, bits)?;
        self.check_despawn(entity)?;
        self.check_unprotected(entity, true)?;
        self.world()?.despawn(entity);
        Ok(())
    }

    fn query_field(&mut self, type_path: String, field: String) -> Result<Vec<(u64, f64)>, Error> {
        let registry = self.registry.clone();
        let registry = registry.read();
        let component = component(&registry, &type_path)?;
        self.check_type(Right::ComponentRead, &component)?;
        let type_id = component.type_id;
        let path = ParsedPath::parse(&field)
            .map_err(|error| Error::InvalidField(format!("{field}: {error}")))?;
        let world = self.world.as_deref_mut().ok_or_else(not_lent)?;
        let Some(component_id) = world.components().get_valid_id(type_id) else {
            return Ok(Vec::new());
        };
        let mut query = QueryBuilder::<Entity>::new(world)
            .with_id(component_id)
            .build();
        let mut values = Vec::new();
        let world: &World = world;
        for entity in query.iter(world) {
            // Entities out of the grant's reach are left out, not refused.
            if !reaches(&self.access, &self.identity, world, entity) {
                continue;
            }
            let Ok(value) = world.get_reflect(entity, type_id) else {
                continue;
            };
            let number = value
                .reflect_path(&path)
                .ok()
                .and_then(number)
                .ok_or_else(|| {
                    Error::InvalidField(format!("{type_path} has no number at `{field}`"))
                })?;
            values.push((entity.to_bits(), number));
        }
        Ok(values)
    }

    fn query(
        &mut self,
        having: Vec<String>,
        read: Vec<String>,
        cursor: u64,
    ) -> Result<QueryPage, Error> {
        let registry = self.registry.clone();
        let registry = registry.read();
        let mut type_ids = |paths: &[String]| {
            paths
                .iter()
                .map(|path| {
                    let component = component(&registry, path)?;
                    self.check_type(Right::ComponentRead, &component)?;
                    Ok(component.type_id)
                })
                .collect::<Result<Vec<_>, Error>>()
        };
        let (having, read) = (type_ids(&having)?, type_ids(&read)?);
        let world = self.world.as_deref_mut().ok_or_else(not_lent)?;
        let component_ids: Option<Vec<_>> = having
            .iter()
            .chain(&read)
            .map(|type_id| world.components().get_valid_id(*type_id))
            .collect();
        // A type never added to the world matches no entity.
        let Some(component_ids) = component_ids else {
            return Ok(QueryPage {
                rows: Vec::new(),
                next: None,
            });
        };
        let mut builder = QueryBuilder::<Entity>::new(world);
        for component_id in component_ids {
            builder.with_id(component_id);
        }
        let mut query = builder.build();
        let skip = usize::try_from(cursor).unwrap_or(usize::MAX);
        let world: &World = world;
        // Entities out of the grant's reach are left out, not refused.
        let mut entities = (query.iter(world))
            .filter(|&entity| reaches(&self.access, &self.identity, world, entity))
            .skip(skip)
            .take(QUERY_PAGE_ROWS + 1);
        let mut rows = Vec::new();
        for entity in entities.by_ref().take(QUERY_PAGE_ROWS) {
            let values = read
                .iter()
                .map(|&type_id| {
                    let value = world
                        .get_reflect(entity, type_id)
                        .map_err(|error| Error::UnsupportedType(format!("{entity}: {error}")))?;
                    Ok(to_json(value, &registry)?)
                })
                .collect::<Result<_, Error>>()?;
            rows.push(QueryRow {
                entity: entity.to_bits(),
                values,
            });
        }
        let next = entities.next().map(|_| cursor + rows.len() as u64);
        Ok(QueryPage { rows, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::{Capabilities, Grant};
    use crate::host::fuzz::{Health, host, host_granted};
    use crate::kv::KvStore;

    /// A component `ReflectComponent::insert` cannot build: no `FromReflect`,
    /// no `Default`, no `FromWorld`.
    #[derive(Component, Reflect)]
    #[reflect(Component, from_reflect = false)]
    struct Opaque {
        level: u32,
    }

    const OPAQUE: &str = "bevy_hotwasm::host::ecs::tests::Opaque";

    /// A component with its own serde, as a type shared with guests has:
    /// prefetched copies of it skip the registry.
    #[derive(Component, Reflect, Default, serde::Serialize, serde::Deserialize)]
    #[reflect(Component, Serialize, Deserialize)]
    struct Served {
        speed: f32,
    }

    const SERVED: &str = "bevy_hotwasm::host::ecs::tests::Served";

    fn world(host: &mut HostState) -> &mut World {
        host.world.as_deref_mut().expect("lent")
    }

    #[test]
    fn resource_entities_cannot_be_despawned_or_changed() {
        let mut host = host();
        let holder = resource_entity(world(&mut host), std::any::TypeId::of::<KvStore>())
            .expect("the store is a resource");
        let bits = holder.to_bits();
        let refused = Host::despawn(&mut host, bits).unwrap_err();
        assert!(
            matches!(&refused, Error::Protected(message) if message.contains("holds a resource")),
            "{refused:?}"
        );
        let health = r#"{"hp":1,"name":"x"}"#.as_bytes().to_vec();
        let type_path = "bevy_hotwasm::host::fuzz::Health".to_owned();
        assert!(matches!(
            Host::set_component(&mut host, bits, type_path, health),
            Err(Error::Protected(_))
        ));
        // A parent whose child holds a resource is protected as a whole.
        let parent = world(&mut host).spawn_empty().id();
        world(&mut host).entity_mut(holder).insert(ChildOf(parent));
        assert!(matches!(
            Host::despawn(&mut host, parent.to_bits()),
            Err(Error::Protected(message)) if message.contains("descendant")
        ));
        assert!(world(&mut host).contains_resource::<KvStore>());
        assert!(world(&mut host).get_entity(parent).is_ok());
    }

    #[test]
    fn despawn_reaches_only_what_the_grant_names() {
        let granted = |manifest: &str| {
            let capabilities = Capabilities::parse(manifest).expect("a manifest");
            host_granted(Grant::as_requested(capabilities))
        };
        let stranger = |host: &mut HostState| world(host).spawn_empty().id();
        let marked = |host: &mut HostState| world(host).spawn(Health::default()).id();
        // Whether it was despawned; a refusal must leave it in the world.
        let despawn = |host: &mut HostState, entity: Entity| {
            let result = Host::despawn(host, entity.to_bits());
            let gone = world(host).get_entity(entity).is_err();
            assert_eq!(gone, result.is_ok(), "{result:?}");
            result
        };

        let mut host = granted("despawn marked:bevy_hotwasm::host::fuzz::*");
        let target = marked(&mut host);
        assert!(despawn(&mut host, target).is_ok());
        let target = stranger(&mut host);
        let refused = despawn(&mut host, target);
        assert!(
            matches!(&refused, Err(Error::Denied(message)) if *message == format!("denied: despawn {target}")),
            "{refused:?}"
        );
        let own = host.identity.entity;
        assert!(
            despawn(&mut host, own).is_err(),
            "not its own without `own`"
        );
        assert_eq!(host.access.take_denied().0, 2);

        let mut host = granted("despawn own spawned\nspawn *");
        let target = marked(&mut host);
        assert!(
            despawn(&mut host, target).is_err(),
            "not marked: not granted"
        );
        let spawned = Entity::from_bits(Host::spawn(&mut host, Vec::new()).unwrap());
        assert!(despawn(&mut host, spawned).is_ok());
        let own = host.identity.entity;
        assert!(despawn(&mut host, own).is_ok());

        let mut host = granted("despawn *");
        let target = stranger(&mut host);
        assert!(despawn(&mut host, target).is_ok());
        let mut host = granted("spawn *");
        let spawned = Entity::from_bits(Host::spawn(&mut host, Vec::new()).unwrap());
        assert!(
            despawn(&mut host, spawned).is_err(),
            "spawning is not despawning"
        );
    }

    /// The frame's `components` split into each component's JSON, `None`
    /// for one the entity does not have.
    fn unframe(mut framed: &[u8]) -> Vec<Option<String>> {
        let mut copies = Vec::new();
        while let Some((length, rest)) = framed.split_first_chunk::<4>() {
            let length = u32::from_le_bytes(*length);
            if length == ABSENT {
                copies.push(None);
                framed = rest;
            } else {
                let (json, rest) = rest.split_at(length as usize);
                copies.push(Some(String::from_utf8(json.to_vec()).unwrap()));
                framed = rest;
            }
        }
        copies
    }

    #[test]
    fn prefetched_components_come_framed_and_changes_are_written_back() {
        let mut host = host();
        host.registry.write().register::<Opaque>();
        host.registry.write().register::<Served>();
        let health = "bevy_hotwasm::host::fuzz::Health".to_owned();
        assert_eq!(host.read_prefetched(), None, "nothing asked for");
        let unknown = Host::prefetch(&mut host, vec![health.clone(), "no::Such".to_owned()]);
        assert!(matches!(unknown, Err(Error::UnknownType(path)) if path == "no::Such"));
        let too_many = Host::prefetch(&mut host, vec![health.clone(); MAX_PREFETCHED + 1]);
        assert!(matches!(too_many, Err(Error::CallLimit(_))), "{too_many:?}");
        assert_eq!(host.read_prefetched(), None, "refused asks change nothing");

        let own = host.identity.entity;
        world(&mut host)
            .entity_mut(own)
            .insert((Opaque { level: 2 }, Served { speed: 1.5 }));
        let asked = vec![health.clone(), OPAQUE.to_owned(), SERVED.to_owned()];
        Host::prefetch(&mut host, asked).unwrap();
        let copies = unframe(&host.read_prefetched().expect("asked for three"));
        assert_eq!(
            copies,
            [
                None,
                Some(r#"{"level":2}"#.to_owned()),
                Some(r#"{"speed":1.5}"#.to_owned())
            ]
        );

        let refused = host.write_prefetched(vec![
            (1, br#"{"level":5}"#.to_vec()),
            (0, br#"{"hp":9,"name":"new"}"#.to_vec()),
            (2, br#"{"speed":4.0}"#.to_vec()),
            (0, b"not json".to_vec()),
            (2, br#"{"speed":"fast"}"#.to_vec()),
            (7, b"{}".to_vec()),
        ]);
        assert_eq!(world(&mut host).get::<Opaque>(own).unwrap().level, 5);
        assert_eq!(world(&mut host).get::<Served>(own).unwrap().speed, 4.0);
        let inserted = world(&mut host).get::<super::super::fuzz::Health>(own);
        assert_eq!(
            inserted.map(|health| health.hp),
            Some(9),
            "absent: inserted"
        );
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(
            refused[0].starts_with(&health),
            "names the type: {}",
            refused[0]
        );
        assert!(refused[1].starts_with(SERVED), "{}", refused[1]);
        assert!(refused[2].contains("7 of 3"), "{}", refused[2]);

        world(&mut host).entity_mut(own).remove::<Served>();
        let copies = unframe(&host.read_prefetched().expect("still asked for"));
        assert_eq!(copies[2], None, "removed since: absent");
        let refused = host.write_prefetched(vec![(2, br#"{"speed":2.0}"#.to_vec())]);
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(
            world(&mut host)
                .get::<Served>(own)
                .map(|served| served.speed),
            Some(2.0),
            "absent with its own serde: inserted"
        );
    }

    #[test]
    fn a_type_that_cannot_be_built_from_json_is_refused_not_inserted() {
        let mut host = host();
        host.registry.write().register::<Opaque>();
        let entity = world(&mut host).spawn_empty().id();
        let json = br#"{"level":3}"#.to_vec();
        let refused =
            Host::set_component(&mut host, entity.to_bits(), OPAQUE.to_owned(), json.clone())
                .unwrap_err();
        assert!(
            matches!(&refused, Error::UnsupportedType(message) if message.contains("FromReflect")),
            "{refused:?}"
        );
        let entities = world(&mut host).entities().len();
        assert!(matches!(
            Host::spawn(&mut host, vec![(OPAQUE.to_owned(), json)]),
            Err(Error::UnsupportedType(_))
        ));
        assert_eq!(
            world(&mut host).entities().len(),
            entities,
            "spawned nothing"
        );
        assert!(world(&mut host).get::<Opaque>(entity).is_none());
    }
}
