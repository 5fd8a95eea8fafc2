//! Component and resource changes, read from Bevy's change ticks and
//! removal messages once per frame, for the types guests watch.

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};

use bevy::ecs::change_detection::Tick;
use bevy::ecs::component::ComponentId;
use bevy::ecs::lifecycle::RemovedComponentEntity;
use bevy::ecs::message::MessageCursor;
use bevy::ecs::reflect::AppTypeRegistry;
use bevy::platform::collections::HashMap;
use bevy::prelude::*;
use bevy::reflect::TypeRegistry;
use bevy::reflect::serde::TypedReflectSerializer;

use crate::host::{ChangeKind, ComponentChanges, selected_by};

/// One component or resource change, with its CloudEvents id.
pub(crate) struct EcsChange {
    pub type_id: TypeId,
    pub kind: ChangeKind,
    pub id: u64,
    /// The entity's bits in decimal; empty for a resource.
    pub subject: String,
    /// The value as JSON; empty for a removal.
    pub data: Vec<u8>,
}

/// What has to be remembered between frames: where each watched
/// component's removal messages were read up to, and the last event id per
/// type (each type is one CloudEvents source).
#[derive(Default)]
pub(crate) struct EcsChangeTracker {
    removal_cursors: HashMap<ComponentId, MessageCursor<RemovedComponentEntity>>,
    event_ids: HashMap<TypeId, u64>,
    /// The change tick up to which changes have been looked at.
    seen: Option<Tick>,
}

impl EcsChangeTracker {
    /// Marks every change so far as looked at, and moves the world's change
    /// tick on so that what guests write from here on (in this frame's
    /// batches) is newer and reaches watches next frame. Called once per
    /// frame, after collecting.
    pub fn mark_seen(&mut self, world: &mut World) {
        self.seen = Some(world.read_change_tick());
        world.increment_change_tick();
    }

    fn change(
        &mut self,
        type_id: TypeId,
        kind: ChangeKind,
        subject: String,
        data: Vec<u8>,
    ) -> EcsChange {
        let id = self.event_ids.entry(type_id).or_default();
        *id += 1;
        EcsChange {
            type_id,
            kind,
            id: *id,
            subject,
            data,
        }
    }

    /// The changes since the last [`Self::mark_seen`] to the watched `components`
    /// (with the union of the changes any watch wants) and `resources`:
    /// per component type, additions and changes in query order, then
    /// removals; then resources.
    pub fn collect(
        &mut self,
        world: &mut World,
        components: &BTreeMap<TypeId, ComponentChanges>,
        resources: &BTreeSet<TypeId>,
    ) -> Vec<EcsChange> {
        let last_run = self.seen.unwrap_or_else(|| world.last_change_tick());
        let this_run = world.read_change_tick();
        let registry = world
            .get_resource::<AppTypeRegistry>()
            .cloned()
            .unwrap_or_default();
        let registry = registry.read();
        let mut changes = Vec::new();
        for (&type_id, &wanted) in components {
            let Some(component_id) = world.components().get_valid_id(type_id) else {
                continue;
            };
            if wanted.intersects(ComponentChanges::ADDED | ComponentChanges::CHANGED) {
                let mut query = QueryBuilder::<Entity>::new(world)
                    .with_id(component_id)
                    .build();
                for entity in query.iter(world) {
                    let Some(ticks) = world.entity(entity).get_change_ticks_by_id(component_id)
                    else {
                        continue;
                    };
                    let kind = if ticks.is_added(last_run, this_run) {
                        ChangeKind::ComponentAdded
                    } else if ticks.is_changed(last_run, this_run) {
                        ChangeKind::ComponentChanged
                    } else {
                        continue;
                    };
                    if wanted.contains(selected_by(kind)) {
                        let data = to_json(world.get_reflect(entity, type_id).ok(), &registry);
                        changes.push(self.change(
                            type_id,
                            kind,
                            entity.to_bits().to_string(),
                            data,
                        ));
                    }
                }
            }
            if wanted.contains(ComponentChanges::REMOVED)
                && let Some(removals) = world.removed_components().get(component_id)
            {
                let cursor = self.removal_cursors.entry(component_id).or_default();
                let removed: Vec<Entity> = cursor
                    .read(removals)
                    .map(|removal| removal.clone().into())
                    .collect();
                for entity in removed {
                    let subject = entity.to_bits().to_string();
                    changes.push(self.change(
                        type_id,
                        ChangeKind::ComponentRemoved,
                        subject,
                        Vec::new(),
                    ));
                }
            }
        }
        for &type_id in resources {
            let Some(component_id) = world.components().get_valid_id(type_id) else {
                continue;
            };
            let changed = world
                .get_resource_change_ticks_by_id(component_id)
                .is_some_and(|ticks| ticks.is_changed(last_run, this_run));
            if let Some(entity) = world.resource_entities().get(component_id)
                && changed
            {
                let data = to_json(world.get_reflect(entity, type_id).ok(), &registry);
                changes.push(self.change(
                    type_id,
                    ChangeKind::ResourceChanged,
                    String::new(),
                    data,
                ));
            }
        }
        changes
    }
}

/// A reflected value as JSON.
pub(crate) fn reflect_to_json(
    value: &dyn Reflect,
    registry: &TypeRegistry,
) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&TypedReflectSerializer::new(
        value.as_partial_reflect(),
        registry,
    ))
}

/// A value as JSON for an event; a value that cannot be turned into JSON
/// becomes `{"error": ...}` rather than a missing event.
fn to_json(value: Option<&dyn Reflect>, registry: &TypeRegistry) -> Vec<u8> {
    let Some(value) = value else {
        return br#"{"error":"the value could not be read"}"#.to_vec();
    };
    reflect_to_json(value, registry).unwrap_or_else(|error| {
        serde_json::json!({ "error": error.to_string() })
            .to_string()
            .into_bytes()
    })
}
