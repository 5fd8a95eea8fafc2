//! `hotwasm:script/ecs`: the game's world, lent to the instance for the
//! length of each call, read and written through `bevy_reflect`.

use std::any::TypeId;

use bevy::ecs::reflect::{ReflectComponent, ReflectResource};
use bevy::prelude::*;
use bevy::reflect::serde::TypedReflectDeserializer;
use bevy::reflect::{ParsedPath, PartialReflect, TypeRegistration, TypeRegistry};
use serde::de::DeserializeSeed;

use super::HostState;
use super::bindings::hotwasm::script::ecs::{Error, Host, QueryPage, QueryRow};
use crate::ecs_changes::reflect_to_json;
use crate::sandbox::HostWork;

fn registration<'r>(
    registry: &'r TypeRegistry,
    type_path: &str,
) -> Result<&'r TypeRegistration, Error> {
    registry
        .get_with_type_path(type_path)
        .ok_or_else(|| Error::UnknownType(type_path.to_owned()))
}

fn component<'r>(
    registry: &'r TypeRegistry,
    type_path: &str,
) -> Result<(TypeId, &'r ReflectComponent), Error> {
    let registration = registration(registry, type_path)?;
    match registration.data::<ReflectComponent>() {
        Some(reflect) if registration.data::<ReflectResource>().is_none() => {
            Ok((registration.type_id(), reflect))
        }
        _ => Err(Error::UnsupportedType(format!(
            "{type_path} is not a component: derive Component and add #[reflect(Component)]"
        ))),
    }
}

/// How many rows one `query` page holds.
pub const QUERY_PAGE_ROWS: usize = 1000;

/// `json` as a value of the type registered under `type_path`.
fn from_json(
    registry: &TypeRegistry,
    type_path: &str,
    json: &[u8],
) -> Result<Box<dyn PartialReflect>, Error> {
    let registration = registration(registry, type_path)?;
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    TypedReflectDeserializer::new(registration, registry)
        .deserialize(&mut deserializer)
        .map_err(|error| Error::InvalidJson(format!("{type_path}: {error}")))
}

fn resource(registry: &TypeRegistry, type_path: &str) -> Result<(TypeId, ReflectComponent), Error> {
    let registration = registration(registry, type_path)?;
    match (
        registration.data::<ReflectResource>(),
        registration.data::<ReflectComponent>(),
    ) {
        (Some(_), Some(reflect)) => Ok((registration.type_id(), reflect.clone())),
        _ => Err(Error::UnsupportedType(format!(
            "{type_path} is not a resource: derive Resource and add #[reflect(Resource)]"
        ))),
    }
}

/// The entity holding the resource `type_id`, if it is in the world.
fn resource_entity(world: &World, type_id: TypeId) -> Option<Entity> {
    let component_id = world.components().get_valid_id(type_id)?;
    world.resource_entities().get(component_id)
}

fn entity(world: &World, bits: u64) -> Result<Entity, Error> {
    Entity::try_from_bits(bits)
        .filter(|&entity| world.get_entity(entity).is_ok())
        .ok_or(Error::NoSuchEntity(bits))
}

fn json(value: &dyn Reflect, registry: &TypeRegistry) -> Result<Vec<u8>, Error> {
    reflect_to_json(value, registry).map_err(|error| Error::UnsupportedType(error.to_string()))
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
        self.world
            .as_mut()
            .ok_or_else(|| Error::Missing("the game's world (only lent during calls)".to_owned()))
    }
}

impl Host for HostState {
    fn get_component(&mut self, bits: u64, type_path: String) -> Result<Vec<u8>, Error> {
        let registry = self.registry.clone();
        let registry = registry.read();
        let (type_id, _) = component(&registry, &type_path)?;
        let world = self.world()?;
        let entity = entity(world, bits)?;
        let value = world
            .get_reflect(entity, type_id)
            .map_err(|_| Error::Missing(format!("{entity} has no {type_path}")))?;
        json(value, &registry)
    }

    fn set_component(&mut self, bits: u64, type_path: String, json: Vec<u8>) -> Result<(), Error> {
        self.quota
            .take(HostWork::Bytes, json.len())
            .map_err(Error::CallLimit)?;
        let registry = self.registry.clone();
        let registry = registry.read();
        let (_, reflect_component) = component(&registry, &type_path)?;
        let value = from_json(&registry, &type_path, &json)?;
        let world = self.world()?;
        let entity = entity(world, bits)?;
        reflect_component.insert(&mut world.entity_mut(entity), &*value, &registry);
        Ok(())
    }

    fn get_resource(&mut self, type_path: String) -> Result<Vec<u8>, Error> {
        let registry = self.registry.clone();
        let registry = registry.read();
        let (type_id, _) = resource(&registry, &type_path)?;
        let world = self.world()?;
        let value = resource_entity(world, type_id)
            .and_then(|entity| world.get_reflect(entity, type_id).ok())
            .ok_or_else(|| Error::Missing(format!("no {type_path} resource")))?;
        json(value, &registry)
    }

    fn set_resource(&mut self, type_path: String, json: Vec<u8>) -> Result<(), Error> {
        self.quota
            .take(HostWork::Bytes, json.len())
            .map_err(Error::CallLimit)?;
        let registry = self.registry.clone();
        let registry = registry.read();
        let (type_id, reflect_component) = resource(&registry, &type_path)?;
        let value = from_json(&registry, &type_path, &json)?;
        let world = self.world()?;
        // A resource is a component on an entity of its own (Bevy 0.19).
        let mut holder = match resource_entity(world, type_id) {
            Some(entity) => world.entity_mut(entity),
            None => world.spawn_empty(),
        };
        reflect_component.insert(&mut holder, &*value, &registry);
        Ok(())
    }

    fn spawn(&mut self, components: Vec<(String, Vec<u8>)>) -> Result<u64, Error> {
        let bytes = components.iter().map(|(_, json)| json.len()).sum();
        self.quota
            .take(HostWork::Spawn, bytes)
            .map_err(Error::CallLimit)?;
        let registry = self.registry.clone();
        let registry = registry.read();
        let values = components
            .iter()
            .map(|(type_path, json)| {
                let (_, reflect_component) = component(&registry, type_path)?;
                Ok((reflect_component, from_json(&registry, type_path, json)?))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let mut spawned = self.world()?.spawn_empty();
        for (reflect_component, value) in values {
            reflect_component.insert(&mut spawned, &*value, &registry);
        }
        Ok(spawned.id().to_bits())
    }

    fn despawn(&mut self, bits: u64) -> Result<(), Error> {
        let world = self.world()?;
        let entity = entity(world, bits)?;
        world.despawn(entity);
        Ok(())
    }

    fn query_field(&mut self, type_path: String, field: String) -> Result<Vec<(u64, f64)>, Error> {
        let registry = self.registry.clone();
        let registry = registry.read();
        let (type_id, _) = component(&registry, &type_path)?;
        let path = ParsedPath::parse(&field)
            .map_err(|error| Error::InvalidField(format!("{field}: {error}")))?;
        let world = self.world()?;
        let Some(component_id) = world.components().get_valid_id(type_id) else {
            return Ok(Vec::new());
        };
        let mut query = QueryBuilder::<Entity>::new(world)
            .with_id(component_id)
            .build();
        let mut values = Vec::new();
        for entity in query.iter(world) {
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
        let type_ids = |paths: &[String]| {
            paths
                .iter()
                .map(|path| component(&registry, path).map(|(type_id, _)| type_id))
                .collect::<Result<Vec<_>, Error>>()
        };
        let (having, read) = (type_ids(&having)?, type_ids(&read)?);
        let world = self.world()?;
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
        let mut entities = query.iter(world).skip(skip).take(QUERY_PAGE_ROWS + 1);
        let mut rows = Vec::new();
        for entity in entities.by_ref().take(QUERY_PAGE_ROWS) {
            let values = read
                .iter()
                .map(|&type_id| {
                    let value = world
                        .get_reflect(entity, type_id)
                        .map_err(|error| Error::UnsupportedType(format!("{entity}: {error}")))?;
                    json(value, &registry)
                })
                .collect::<Result<_, _>>()?;
            rows.push(QueryRow {
                entity: entity.to_bits(),
                values,
            });
        }
        let next = entities.next().map(|_| cursor + rows.len() as u64);
        Ok(QueryPage { rows, next })
    }
}
