//! A host state as during a guest call, with a world lent to it, for the
//! host's tests: the world holds the type registry, the key-value store
//! and one [`Health`].

use std::sync::Arc;

use bevy::ecs::reflect::AppTypeRegistry;
use bevy::prelude::*;

use super::quota::CallQuota;
use super::{GameTypes, GuestOutput, HostState, InstanceIdentity};
use crate::capabilities::Grant;
use crate::kv::KvStore;
use crate::sandbox::{GuestLimits, HostQuotas};

/// A registered component, in the lent world and in reach of a grant's
/// `bevy_hotwasm::host::fixture::*`.
#[derive(Component, Reflect, Default)]
#[reflect(Component)]
pub(super) struct Health {
    pub hp: u32,
    name: String,
}

/// [`Health`]'s type path.
pub(super) const HEALTH: &str = "bevy_hotwasm::host::fixture::Health";

/// A host state with a world lent to it, as during a guest call, that may
/// do everything.
pub(super) fn host() -> HostState {
    host_granted(Grant::everything())
}

/// A host state with a world lent to it, as during a guest call, that may
/// do what `grant` allows.
pub(super) fn host_granted(grant: Grant) -> HostState {
    let registry = AppTypeRegistry::default();
    registry.write().register::<Health>();
    let mut world = World::new();
    world.insert_resource(registry.clone());
    world.insert_resource(KvStore::in_memory());
    world.spawn(Health {
        hp: 3,
        name: "a".into(),
    });
    let identity = InstanceIdentity {
        entity: world.spawn_empty().id(),
        generation: 1,
        module_path: "fuzz.wasm".into(),
    };
    let mut state = HostState::new(
        identity,
        GuestOutput::default(),
        GameTypes {
            registry,
            script_component: None,
        },
        &GuestLimits::default(),
        CallQuota::new(HostQuotas::default()),
        Arc::new(grant),
    );
    state.world = Some(Box::new(world));
    state
}
