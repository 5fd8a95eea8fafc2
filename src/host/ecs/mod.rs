//! `hotwasm:script/ecs`: the game's world, lent to the instance for the
//! length of each call, read and written through `bevy_reflect`.
//!
//! This file holds the imports, implemented on an [`EcsView`] of the
//! instance's state, and the reads and writes they share;
//! `queries` pages through entities, `prefetch` keeps the own components a
//! guest asked for with every frame. What a guest may touch (its grant, and
//! the entities that hold a resource or run another script, which no guest
//! may change) is decided in `host::access`.

mod prefetch;
mod queries;
#[cfg(test)]
mod tests;

use bevy::ecs::change_detection::Tick;
use bevy::ecs::component::ComponentId;
use bevy::prelude::*;
use bevy::reflect::TypeRegistry;
use wasmtime::component::HasData;

pub use self::prefetch::MAX_PREFETCHED;
pub(super) use self::prefetch::Prefetched;
use self::queries::QueryFilter;
use super::access::{self, Access};
use super::bindings::hotwasm::script::ecs::{
    Error, Host, QueryFilter as WitQueryFilter, QueryPage,
};
use super::quota::{CallQuota, HostWork};
use super::reflect::{ReflectError, Registered, TypeKind, lookup, resource_entity, to_json};
use super::spawned::{SpawnCounts, SpawnedBy};
use super::{HostState, InstanceIdentity};
use crate::capabilities::Right;

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

fn not_lent() -> Error {
    Error::Missing("the game's world (only lent during calls)".to_owned())
}

/// The marker `ecs` is linked with: its host is an [`EcsView`].
pub(super) struct Ecs;

impl HasData for Ecs {
    type Data<'a> = EcsView<'a>;
}

/// What `ecs` sees of an instance's state: the lent world, the game's
/// types, who it is, what it was granted, the call's quota, its cap of
/// spawned entities, and the components it asked for with every frame.
pub(crate) struct EcsView<'a> {
    /// The game's world, lent for the length of each call.
    world: &'a mut Option<Box<World>>,
    /// The game's type registry, for type paths.
    registry: &'a AppTypeRegistry,
    /// The component on every entity that runs a script.
    script_component: Option<ComponentId>,
    identity: &'a InstanceIdentity,
    access: &'a mut Access,
    quota: &'a mut CallQuota,
    /// The most entities the module may have alive that it spawned
    /// (`GuestLimits::max_spawned_entities`).
    max_spawned_entities: u64,
    /// Its own components the guest asked to have with every frame.
    prefetched: &'a mut Vec<Prefetched>,
    /// The world's change tick when the previous call ended.
    last_call_tick: Tick,
}

impl EcsView<'_> {
    pub fn of(state: &mut HostState) -> EcsView<'_> {
        EcsView {
            world: &mut state.world,
            registry: &state.registry,
            script_component: state.script_component,
            identity: &state.identity,
            access: &mut state.access,
            quota: &mut state.quota,
            max_spawned_entities: state.limits.max_spawned_entities,
            prefetched: &mut state.prefetched,
            last_call_tick: state.last_call_tick,
        }
    }

    /// The world lent for this call.
    fn world(&mut self) -> Result<&mut World, Error> {
        self.world.as_deref_mut().ok_or_else(not_lent)
    }

    /// Refuses `root` when it, or (for a despawn) one of its descendants,
    /// holds a resource or runs another script.
    fn check_unprotected(&self, root: Entity, with_descendants: bool) -> Result<(), Error> {
        let world = self.world.as_deref().ok_or_else(not_lent)?;
        let script_component = self.script_component;
        access::check_unprotected(
            world,
            self.identity,
            script_component,
            root,
            with_descendants,
        )
        .map_err(Error::Protected)
    }

    /// Refuses a use of a type the grant's `right` does not reach.
    fn check_type(&mut self, right: Right, registered: &Registered) -> Result<(), Error> {
        (self.access)
            .check_registered(right, registered)
            .map_err(Error::Denied)
    }

    /// Refuses to read or write the components of an entity the grant's
    /// `entities` does not reach.
    fn check_entity(&mut self, entity: Entity) -> Result<(), Error> {
        let world = self.world.as_deref().ok_or_else(not_lent)?;
        (self.access)
            .check_entity(self.identity, world, entity)
            .map_err(Error::Denied)
    }

    /// Refuses to despawn an entity the grant's `despawn` does not reach.
    fn check_despawn(&mut self, entity: Entity) -> Result<(), Error> {
        let world = self.world.as_deref().ok_or_else(not_lent)?;
        (self.access)
            .check_despawn(self.identity, world, self.registry, entity)
            .map_err(Error::Denied)
    }

    /// `entity`'s component `type_path` as JSON.
    fn component_json(&mut self, bits: u64, type_path: &str) -> Result<Vec<u8>, Error> {
        let registry = self.registry;
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
        let registry = self.registry;
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

impl Host for EcsView<'_> {
    fn get_component(&mut self, bits: u64, type_path: String) -> Result<Vec<u8>, Error> {
        self.component_json(bits, &type_path)
    }

    fn set_component(&mut self, bits: u64, type_path: String, json: Vec<u8>) -> Result<(), Error> {
        self.write_component(bits, &type_path, &json)
    }

    fn prefetch(&mut self, type_paths: Vec<String>) -> Result<(), Error> {
        self.set_prefetched(&type_paths)
    }

    fn get_resource(&mut self, type_path: String) -> Result<Vec<u8>, Error> {
        let registry = self.registry;
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
        let registry = self.registry;
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
        self.spawn_with(None, &components)
    }

    fn spawn_child(
        &mut self,
        parent: u64,
        components: Vec<(String, Vec<u8>)>,
    ) -> Result<u64, Error> {
        let parent = entity(self.world()?, parent)?;
        self.check_entity(parent)?;
        self.check_unprotected(parent, false)?;
        self.spawn_with(Some(parent), &components)
    }

    fn remove_component(&mut self, bits: u64, type_path: String) -> Result<(), Error> {
        let registry = self.registry;
        let registry = registry.read();
        let component = component(&registry, &type_path)?;
        self.check_type(Right::ComponentWrite, &component)?;
        let entity = entity(self.world()?, bits)?;
        self.check_entity(entity)?;
        self.check_unprotected(entity, false)?;
        let world = self.world()?;
        component
            .reflect_component
            .remove(&mut world.entity_mut(entity));
        Ok(())
    }

    fn query_filtered(
        &mut self,
        filter: WitQueryFilter,
        read: Vec<String>,
        cursor: u64,
    ) -> Result<QueryPage, Error> {
        let filter = QueryFilter {
            with: &filter.having,
            without: &filter.without,
            added: &filter.added,
            changed: &filter.changed,
        };
        self.query_page(&filter, &read, cursor)
    }

    fn despawn(&mut self, bits: u64) -> Result<(), Error> {
        let entity = entity(self.world()?, bits)?;
        self.check_despawn(entity)?;
        self.check_unprotected(entity, true)?;
        self.world()?.despawn(entity);
        Ok(())
    }

    fn query_field(&mut self, type_path: String, field: String) -> Result<Vec<(u64, f64)>, Error> {
        self.field_values(&type_path, &field)
    }

    fn query(
        &mut self,
        having: Vec<String>,
        read: Vec<String>,
        cursor: u64,
    ) -> Result<QueryPage, Error> {
        let filter = QueryFilter {
            with: &having,
            ..QueryFilter::default()
        };
        self.query_page(&filter, &read, cursor)
    }
}

impl EcsView<'_> {
    /// Spawns an entity with `components` (each checked first: one refused
    /// spawns nothing), as a child of `parent` if given.
    fn spawn_with(
        &mut self,
        parent: Option<Entity>,
        components: &[(String, Vec<u8>)],
    ) -> Result<u64, Error> {
        let bytes = components.iter().map(|(_, json)| json.len()).sum();
        self.quota
            .take(HostWork::Spawn, bytes)
            .map_err(Error::CallLimit)?;
        let module = self.identity.module_path.clone();
        let max = self.max_spawned_entities;
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
        self.access.check_spawn().map_err(Error::Denied)?;
        let registry = self.registry;
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
        if let Some(parent) = parent {
            spawned.insert(ChildOf(parent));
        }
        for (reflect_component, value) in values {
            reflect_component.insert(&mut spawned, &*value, &registry);
        }
        Ok(spawned.id().to_bits())
    }
}
