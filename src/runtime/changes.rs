//! Which changes each instance watches: key-value changes from the store's
//! change log, component and resource changes read from Bevy's change ticks
//! and removal messages once per frame for the types guests watch.

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

use hotwasm_events::ChangeKind;

use super::Runner;
use crate::host::{ComponentChanges, event_json, selected_by};
use crate::kv::KvChanged;
use crate::messages::WatchedChange;
use crate::stamps::{EventIds, EventStamp, FrameClocks};

/// One component or resource change, with its CloudEvents id and times.
struct EcsChange {
    pub type_id: TypeId,
    pub kind: ChangeKind,
    pub stamp: EventStamp,
    /// The entity's bits in decimal; empty for a resource.
    pub subject: String,
    /// The value as JSON; empty for a removal.
    pub data: Vec<u8>,
}

/// What has to be remembered between frames: where each watched
/// component's removal messages were read up to, the change tick up to
/// which changes have been looked at, and the last event id given out.
#[derive(Default)]
pub(super) struct ChangeTracker {
    removal_cursors: HashMap<ComponentId, MessageCursor<RemovedComponentEntity>>,
    seen: Option<Tick>,
}

impl ChangeTracker {
    /// Marks every change so far as looked at, and moves the world's change
    /// tick on so that what guests write from here on (in this frame's
    /// batches) is newer and reaches watches next frame. Called once per
    /// frame, after collecting.
    fn mark_seen(&mut self, world: &mut World) {
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
        EcsChange {
            type_id,
            kind,
            stamp: EventStamp::UNPUBLISHED,
            subject,
            data,
        }
    }

    /// The changes since the last [`Self::mark_seen`] to the watched `components`
    /// (with the union of the changes any watch wants) and `resources`:
    /// per component type, additions and changes in query order, then
    /// removals; then resources.
    fn collect(
        &mut self,
        world: &mut World,
        components: &BTreeMap<TypeId, ComponentChanges>,
        resources: &BTreeSet<TypeId>,
    ) -> Vec<EcsChange> {
        let ticks = (
            self.seen.unwrap_or_else(|| world.last_change_tick()),
            world.read_change_tick(),
        );
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
                let target = (type_id, component_id, wanted);
                self.added_and_changed(world, &registry, target, ticks, &mut changes);
            }
            if wanted.contains(ComponentChanges::REMOVED) {
                self.removed(world, type_id, component_id, &mut changes);
            }
        }
        for &type_id in resources {
            let Some(component_id) = world.components().get_valid_id(type_id) else {
                continue;
            };
            let changed = world
                .get_resource_change_ticks_by_id(component_id)
                .is_some_and(|changed| changed.is_changed(ticks.0, ticks.1));
            if let Some(entity) = world.resource_entities().get(component_id)
                && changed
            {
                let data = event_json(world.get_reflect(entity, type_id).ok(), &registry);
                let kind = ChangeKind::ResourceChanged;
                changes.push(self.change(type_id, kind, String::new(), data));
            }
        }
        drop(registry);
        let virtual_time = world.get_resource::<Time<Virtual>>().map(Time::elapsed);
        let clocks = FrameClocks::now(virtual_time);
        let ids = world.get_resource_or_init::<EventIds>();
        for change in &mut changes {
            change.stamp = ids.stamp(clocks);
        }
        changes
    }

    /// The entities whose component `target` was added or changed between
    /// the `(last_run, this_run)` ticks, in query order, as far as `wanted`.
    fn added_and_changed(
        &mut self,
        world: &mut World,
        registry: &TypeRegistry,
        (type_id, component_id, wanted): (TypeId, ComponentId, ComponentChanges),
        (last_run, this_run): (Tick, Tick),
        changes: &mut Vec<EcsChange>,
    ) {
        let mut query = QueryBuilder::<Entity>::new(world)
            .with_id(component_id)
            .build();
        for entity in query.iter(world) {
            let Some(ticks) = world.entity(entity).get_change_ticks_by_id(component_id) else {
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
                let data = event_json(world.get_reflect(entity, type_id).ok(), registry);
                changes.push(self.change(type_id, kind, entity.to_bits().to_string(), data));
            }
        }
    }

    /// The entities the component was removed from since the last frame.
    fn removed(
        &mut self,
        world: &World,
        type_id: TypeId,
        component_id: ComponentId,
        changes: &mut Vec<EcsChange>,
    ) {
        let Some(removals) = world.removed_components().get(component_id) else {
            return;
        };
        let cursor = self.removal_cursors.entry(component_id).or_default();
        let removed: Vec<Entity> = cursor
            .read(removals)
            .map(|removal| removal.clone().into())
            .collect();
        for entity in removed {
            let subject = entity.to_bits().to_string();
            let kind = ChangeKind::ComponentRemoved;
            changes.push(self.change(type_id, kind, subject, Vec::new()));
        }
    }
}

impl Runner {
    /// Gives each key-value change its CloudEvents id and hands it to every
    /// running instance with a matching watch.
    pub(super) fn match_kv_changes<'a>(&mut self, changes: impl Iterator<Item = &'a KvChanged>) {
        for change in changes {
            let kind = match change.value {
                Some(_) => ChangeKind::KvSet,
                None => ChangeKind::KvDelete,
            };
            let data = change.value.as_deref().unwrap_or_default();
            for (order, script) in &mut self.scripts {
                let Some(instance) = &script.instance else {
                    continue;
                };
                let events = &mut script.events;
                instance.watches().match_kv(change, order.0, |watch| {
                    events.push(watch, &change.stamp, kind, &change.key, data);
                });
            }
        }
    }

    /// Collects this frame's changes to every component and resource type a
    /// running instance watches and hands each to the matching watches.
    /// Changes made by guests in last frame's batches count too: whoever
    /// wrote a component, every watch of its type sees it.
    /// With `record`, each change that matched a watch is also written as
    /// a [`WatchedChange`].
    pub(super) fn match_ecs_changes(&mut self, world: &mut World, record: bool) {
        let mut components: BTreeMap<TypeId, ComponentChanges> = BTreeMap::new();
        let mut resources = BTreeSet::new();
        for instance in self
            .scripts
            .values()
            .filter_map(|script| script.instance.as_ref())
        {
            let watches = instance.watches();
            for (_, watch) in watches.components() {
                *components
                    .entry(watch.type_id)
                    .or_insert(ComponentChanges::empty()) |= watch.changes;
            }
            resources.extend(watches.resources().map(|(_, watch)| watch.type_id));
        }
        let changes = if components.is_empty() && resources.is_empty() {
            Vec::new()
        } else {
            self.changes.collect(world, &components, &resources)
        };
        self.changes.mark_seen(world);
        if changes.is_empty() {
            return;
        }
        let mut matched = vec![0; if record { changes.len() } else { 0 }];
        for script in self.scripts.values_mut() {
            let Some(instance) = &script.instance else {
                continue;
            };
            let events = &mut script.events;
            for (index, change) in changes.iter().enumerate() {
                instance
                    .watches()
                    .match_type(change.type_id, change.kind, |watch| {
                        events.push(
                            watch,
                            &change.stamp,
                            change.kind,
                            &change.subject,
                            &change.data,
                        );
                        if let Some(count) = matched.get_mut(index) {
                            *count += 1;
                        }
                    });
            }
        }
        if record {
            write_watched(world, changes, &matched);
        }
    }
}

/// Writes each change that matched a watch as a [`WatchedChange`].
fn write_watched(world: &mut World, changes: Vec<EcsChange>, matched: &[usize]) {
    let registry = world
        .get_resource::<AppTypeRegistry>()
        .cloned()
        .unwrap_or_default();
    let registry = registry.read();
    let watched: Vec<WatchedChange> = changes
        .into_iter()
        .zip(matched)
        .filter(|(_, watches)| **watches > 0)
        .map(|(change, &watches)| {
            let type_path = registry
                .get_type_info(change.type_id)
                .map_or("?", |info| info.type_path());
            let entity = change.subject.parse().ok().and_then(Entity::try_from_bits);
            WatchedChange {
                stamp: change.stamp,
                kind: change.kind,
                type_path: type_path.to_owned(),
                entity,
                data: change.data,
                watches,
            }
        })
        .collect();
    drop(registry);
    world.write_message_batch(watched);
}
