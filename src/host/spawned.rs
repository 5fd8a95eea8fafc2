//! Entities a module spawned: each carries [`SpawnedBy`], and a count per
//! module follows the marker's insertions and removals, so a despawn (by
//! anyone) gives the module its quota back at once.

use std::sync::Arc;

use bevy::ecs::lifecycle::HookContext;
use bevy::ecs::world::DeferredWorld;
use bevy::platform::collections::HashMap;
use bevy::prelude::*;

/// On every entity a script module spawned through `ecs.spawn`: the
/// module's asset path (`modules/waves.wasm`). Query it to find what a
/// module spawned, e.g. to despawn a mod's entities when unloading it;
/// the entities alive with it count against the module's
/// [`GuestLimits::max_spawned_entities`](crate::GuestLimits::max_spawned_entities).
#[derive(Component, Clone, Debug, PartialEq, Eq)]
#[component(on_insert = count_in, on_discard = count_out)]
pub struct SpawnedBy {
    /// The module's asset path.
    pub module: Arc<str>,
}

/// Entities alive per module that spawned them.
#[derive(Resource, Default)]
pub(crate) struct SpawnCounts(HashMap<Arc<str>, u64>);

impl SpawnCounts {
    /// Entities alive that `module` spawned.
    pub fn of(&self, module: &str) -> u64 {
        self.0.get(module).copied().unwrap_or(0)
    }
}

fn module_of(world: &DeferredWorld, context: &HookContext) -> Option<Arc<str>> {
    let spawned_by = world.get::<SpawnedBy>(context.entity)?;
    Some(spawned_by.module.clone())
}

fn count_in(mut world: DeferredWorld, context: HookContext) {
    if let Some(module) = module_of(&world, &context)
        && let Some(mut counts) = world.get_resource_mut::<SpawnCounts>()
    {
        *counts.0.entry(module).or_default() += 1;
    }
}

fn count_out(mut world: DeferredWorld, context: HookContext) {
    if let Some(module) = module_of(&world, &context)
        && let Some(mut counts) = world.get_resource_mut::<SpawnCounts>()
        && let Some(count) = counts.0.get_mut(&module)
    {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.0.remove(&module);
        }
    }
}
