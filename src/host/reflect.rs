//! The one way the host looks up a type by its path and turns values into
//! JSON and back, shared by `ecs`, `watch` and change tracking.

use std::any::TypeId;

use bevy::ecs::reflect::{ReflectComponent, ReflectFromWorld, ReflectResource};
use bevy::ecs::resource::IsResource;
use bevy::prelude::*;
use bevy::reflect::serde::{TypedReflectDeserializer, TypedReflectSerializer};
use bevy::reflect::{
    PartialReflect, ReflectDeserialize, ReflectFromReflect, ReflectSerialize, TypeInfo,
    TypeRegistration, TypeRegistry,
};
use serde::Serialize;
use serde::de::DeserializeSeed;

/// Why a type path or a value was refused.
#[derive(Debug)]
pub(crate) enum ReflectError {
    /// No type is registered under the path.
    UnknownType(String),
    /// The type is registered but cannot be used this way.
    UnsupportedType(String),
    /// The JSON does not fit the type.
    InvalidJson(String),
}

/// Whether a type is wanted as a component or as a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TypeKind {
    Component,
    Resource,
}

/// A registered component or resource type.
pub(crate) struct Registered<'r> {
    pub type_id: TypeId,
    pub registration: &'r TypeRegistration,
    pub reflect_component: &'r ReflectComponent,
}

/// Looks `type_path` up in `registry` and checks it is a component (and
/// not a resource, nor Bevy's own resource marker) or a resource.
pub(crate) fn lookup<'r>(
    registry: &'r TypeRegistry,
    type_path: &str,
    kind: TypeKind,
) -> Result<Registered<'r>, ReflectError> {
    let registration = registry
        .get_with_type_path(type_path)
        .ok_or_else(|| ReflectError::UnknownType(type_path.to_owned()))?;
    let is_resource = registration.data::<ReflectResource>().is_some();
    let reflect_component = registration.data::<ReflectComponent>();
    match (kind, reflect_component) {
        (TypeKind::Component, Some(reflect_component))
            if !is_resource && registration.type_id() != TypeId::of::<IsResource>() =>
        {
            Ok(Registered {
                type_id: registration.type_id(),
                registration,
                reflect_component,
            })
        }
        (TypeKind::Resource, Some(reflect_component)) if is_resource => Ok(Registered {
            type_id: registration.type_id(),
            registration,
            reflect_component,
        }),
        (TypeKind::Component, _) => Err(ReflectError::UnsupportedType(format!(
            "{type_path} is not a component: derive Component and add #[reflect(Component)]"
        ))),
        (TypeKind::Resource, _) => Err(ReflectError::UnsupportedType(format!(
            "{type_path} is not a resource: derive Resource and add #[reflect(Resource)]"
        ))),
    }
}

impl Registered<'_> {
    /// Refuses a type that can never be turned into JSON by reflection: an
    /// opaque type without its own `Serialize` registered.
    pub fn check_serializable(&self) -> Result<(), ReflectError> {
        let opaque = matches!(self.registration.type_info(), TypeInfo::Opaque(_));
        if opaque && self.registration.data::<ReflectSerialize>().is_none() {
            return Err(ReflectError::UnsupportedType(format!(
                "{} cannot be turned into JSON: add #[reflect(Serialize)]",
                self.registration.type_info().type_path()
            )));
        }
        Ok(())
    }

    /// `json` as a complete value of this type, ready for
    /// `ReflectComponent::insert` (which panics on a value it cannot build).
    pub fn value_from_json(
        &self,
        registry: &TypeRegistry,
        world: &mut World,
        json: &[u8],
    ) -> Result<Box<dyn PartialReflect>, ReflectError> {
        let partial = match self.decode(registry, json)? {
            Decoded::Whole(value) => return Ok(value.into_partial_reflect()),
            Decoded::Partial(partial) => partial,
        };
        if let Some(value) = self
            .registration
            .data::<ReflectFromReflect>()
            .and_then(|from_reflect| from_reflect.from_reflect(&*partial))
        {
            return Ok(value.into_partial_reflect());
        }
        let type_path = self.registration.type_info().type_path();
        let mut value = if let Some(default) = self.registration.data::<ReflectDefault>() {
            default.default()
        } else if let Some(from_world) = self.registration.data::<ReflectFromWorld>() {
            from_world.from_world(world)
        } else {
            return Err(ReflectError::UnsupportedType(format!(
                "{type_path} cannot be built from JSON: derive Reflect (which gives FromReflect) \
                 or add #[reflect(Default)]"
            )));
        };
        apply(&mut *value, &*partial, type_path)?;
        Ok(value.into_partial_reflect())
    }

    /// `json` as a value of this type, every field checked: built by the
    /// type's own `Deserialize` when it registered one (the fast way: no
    /// dynamic value, nothing to apply field by field), else dynamic.
    fn decode(&self, registry: &TypeRegistry, json: &[u8]) -> Result<Decoded, ReflectError> {
        let type_path = self.registration.type_info().type_path();
        if let Some(deserialize) = self.registration.data::<ReflectDeserialize>() {
            return deserialize_whole(deserialize, json, type_path).map(Decoded::Whole);
        }
        TypedReflectDeserializer::new(self.registration, registry)
            .deserialize(&mut serde_json::Deserializer::from_slice(json))
            .map(Decoded::Partial)
            .map_err(|error| ReflectError::InvalidJson(format!("{type_path}: {error}")))
    }

    /// Writes `json` over the component `entity` already has, in place
    /// (cheaper than inserting a new value, and change detection sees it).
    /// Returns `Ok(false)` when there is none to write over, or it is
    /// immutable: then it must be inserted.
    pub fn write_in_place(
        &self,
        registry: &TypeRegistry,
        world: &mut World,
        entity: Entity,
        json: &[u8],
    ) -> Result<bool, ReflectError> {
        if !is_mutable(world, self.type_id)
            || !self.reflect_component.contains(world.entity(entity))
        {
            return Ok(false);
        }
        let decoded = self.decode(registry, json)?;
        let Some(mut existing) = self.reflect_component.reflect_mut(world.entity_mut(entity))
        else {
            return Ok(false);
        };
        let type_path = self.registration.type_info().type_path();
        match decoded {
            Decoded::Whole(value) => set_whole(&mut *existing, value, type_path)?,
            Decoded::Partial(partial) => apply(&mut *existing, &*partial, type_path)?,
        }
        Ok(true)
    }
}

/// Whether `type_id` is a component whose values may be changed in place
/// (registered in `world` and not immutable).
pub(crate) fn is_mutable(world: &World, type_id: TypeId) -> bool {
    world
        .components()
        .get_valid_id(type_id)
        .and_then(|id| world.components().get_info(id))
        .is_some_and(|info| info.mutable())
}

/// `json` as a whole value of `type_path`, by the type's own `Deserialize`.
pub(crate) fn deserialize_whole(
    deserialize: &ReflectDeserialize,
    json: &[u8],
    type_path: &str,
) -> Result<Box<dyn Reflect>, ReflectError> {
    deserialize
        .deserialize(&mut serde_json::Deserializer::from_slice(json))
        .map_err(|error| ReflectError::InvalidJson(format!("{type_path}: {error}")))
}

/// Replaces `existing` with `value`, a whole value its type's own
/// `Deserialize` built.
pub(crate) fn set_whole(
    existing: &mut dyn Reflect,
    value: Box<dyn Reflect>,
    type_path: &str,
) -> Result<(), ReflectError> {
    existing.set(value).map_err(|_| {
        ReflectError::UnsupportedType(format!(
            "{type_path}: its registered Deserialize builds another type"
        ))
    })
}

/// A value decoded from JSON.
enum Decoded {
    /// A complete value of the type, built by its own `Deserialize`.
    Whole(Box<dyn Reflect>),
    /// A dynamic value, to apply to or build one from.
    Partial(Box<dyn PartialReflect>),
}

/// Applies a checked dynamic value, without `apply`'s panic on a mismatch.
fn apply(
    target: &mut dyn Reflect,
    value: &dyn PartialReflect,
    type_path: &str,
) -> Result<(), ReflectError> {
    target
        .try_apply(value)
        .map_err(|error| ReflectError::InvalidJson(format!("{type_path}: {error}")))
}

/// A reflected value as JSON.
pub(crate) fn to_json(
    value: &dyn Reflect,
    registry: &TypeRegistry,
) -> Result<Vec<u8>, ReflectError> {
    // A type's own `Serialize` is what `TypedReflectSerializer` would use
    // too, found here without its second registry lookup.
    let mut json = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut json);
    match registry.get_type_data::<ReflectSerialize>(value.reflect_type_info().type_id()) {
        Some(own) => own.serialize(value, &mut serializer),
        None => TypedReflectSerializer::new(value.as_partial_reflect(), registry)
            .serialize(&mut serializer),
    }
    .map_err(|error| ReflectError::UnsupportedType(error.to_string()))?;
    Ok(json)
}

/// A value as JSON for a change event: a value that cannot be read or
/// turned into JSON becomes `{"error": ...}` rather than a missing event.
pub(crate) fn event_json(value: Option<&dyn Reflect>, registry: &TypeRegistry) -> Vec<u8> {
    let Some(value) = value else {
        return br#"{"error":"the value could not be read"}"#.to_vec();
    };
    to_json(value, registry).unwrap_or_else(|error| {
        let (ReflectError::UnsupportedType(error)
        | ReflectError::UnknownType(error)
        | ReflectError::InvalidJson(error)) = error;
        serde_json::json!({ "error": error })
            .to_string()
            .into_bytes()
    })
}

/// The entity holding the resource `type_id`, if it is in the world.
pub(crate) fn resource_entity(world: &World, type_id: TypeId) -> Option<Entity> {
    let component_id = world.components().get_valid_id(type_id)?;
    world.resource_entities().get(component_id)
}
