//! `ecs.prefetch`: the own components a guest asked to have with every
//! frame, looked up once, framed for the frame's `components`, and the
//! changes it returned written back.

use std::any::TypeId;

use bevy::ecs::reflect::ReflectComponent;
use bevy::prelude::*;
use bevy::reflect::{ReflectDeserialize, ReflectSerialize, TypeRegistration};

use super::{EcsView, component};
use crate::capabilities::Right;
use crate::host::HostState;
use crate::host::bindings::hotwasm::script::ecs::Error;
use crate::host::quota::HostWork;
use crate::host::reflect::{Registered, deserialize_whole, is_mutable, set_whole};

/// How many of its own components a guest may ask to have with every frame.
pub const MAX_PREFETCHED: usize = 16;

/// The length in the frame's `components` of one the entity does not have.
pub(super) const ABSENT: u32 = u32::MAX;

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
        EcsView::of(self).read_prefetched()
    }

    /// Writes the changes a guest returned to its prefetched components,
    /// as `set-component` would; returns why each refused one was refused.
    pub(crate) fn write_prefetched(&mut self, changed: Vec<(u32, Vec<u8>)>) -> Vec<String> {
        EcsView::of(self).write_prefetched(changed)
    }
}

impl EcsView<'_> {
    /// What `ecs.prefetch` asks for: the components `type_paths` with every
    /// frame, replacing what it asked for before; a refused ask changes
    /// nothing.
    pub(super) fn set_prefetched(&mut self, type_paths: &[String]) -> Result<(), Error> {
        if type_paths.len() > MAX_PREFETCHED {
            return Err(Error::CallLimit(format!(
                "{} components asked for with every frame; at most {MAX_PREFETCHED}",
                type_paths.len()
            )));
        }
        let registry = self.registry;
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
        *self.prefetched = prefetched;
        Ok(())
    }

    /// What [`HostState::read_prefetched`] returns.
    fn read_prefetched(&mut self) -> Option<Vec<u8>> {
        if self.prefetched.is_empty() {
            return None;
        }
        let prefetched = std::mem::take(&mut *self.prefetched);
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
        *self.prefetched = prefetched;
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

    /// What [`HostState::write_prefetched`] does.
    fn write_prefetched(&mut self, changed: Vec<(u32, Vec<u8>)>) -> Vec<String> {
        let prefetched = std::mem::take(&mut *self.prefetched);
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
        *self.prefetched = prefetched;
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
