//! Every decision on what an instance may touch, made at the host boundary:
//! the module's grant ([`Access`]), asked by every import before it touches
//! anything, and the entities no guest may change whatever its grant
//! ([`check_unprotected`]). A refusal of the grant is an error result
//! naming the capability (`denied: component.write my_game::Gold`), counted
//! for the script's stats.

use std::any::TypeId;
use std::sync::Arc;

use bevy::ecs::component::ComponentId;
use bevy::ecs::reflect::AppTypeRegistry;
use bevy::ecs::resource::IsResource;
use bevy::platform::collections::HashMap;
use bevy::prelude::{Children, Entity, World};

use super::InstanceIdentity;
use super::details::KeyWatch;
use super::reflect::Registered;
use super::spawned::SpawnedBy;
use crate::capabilities::{BucketReach, Grant, Pattern, Right};

/// Which entities a right reaches beyond the instance's own, read from the
/// grant once.
#[derive(Clone, Copy, Default)]
struct EntityScope {
    /// `*`: every entity.
    any: bool,
    /// `own`: the instance's entity.
    own: bool,
    /// `spawned`: entities its module spawned.
    spawned: bool,
}

impl EntityScope {
    fn of(grant: &Grant, right: Right) -> Self {
        let granted = grant.granted();
        Self {
            any: granted.allows(right, "*"),
            own: granted.allows(right, "own"),
            spawned: granted.allows(right, "spawned"),
        }
    }
}

/// The `kv.*` rights a [`BucketRights`] resolves, in its order.
const BUCKET_RIGHTS: [Right; 3] = [Right::KvRead, Right::KvWrite, Right::KvAtomics];

/// How much of one bucket each `kv.*` right of the grant reaches (read,
/// write, atomics), resolved when the guest opens it: most uses are then
/// allowed or refused without looking at the key.
#[derive(Clone, Copy)]
pub(crate) struct BucketRights([BucketReach; 3]);

/// An instance's grant, with each type's rights resolved once.
pub(crate) struct Access {
    grant: Arc<Grant>,
    /// Whose components it may read and write (`entities`).
    entities: EntityScope,
    /// What it may despawn (`despawn`), and the marker components that let
    /// it despawn an entity (`despawn marked:<type path>`).
    despawn: EntityScope,
    despawn_markers: Vec<Pattern>,
    /// Whether a right reaches a type, looked up by type path the first
    /// time the type is used: a call costs a hash of its `TypeId` (foldhash,
    /// Bevy's: the standard SipHash cost ≈ 4 % on the typed ECS benchmark).
    by_type: HashMap<(TypeId, Right), bool>,
    /// Calls refused since the runtime last took the count.
    denied: u64,
    /// The newest refusal, as the guest was told.
    last_denied: Option<String>,
}

impl Access {
    pub fn new(grant: Arc<Grant>) -> Self {
        let despawn_markers = (grant.granted().reach(Right::Despawn).iter())
            .filter_map(|pattern| pattern.after("marked:"))
            .collect();
        Self {
            entities: EntityScope::of(&grant, Right::Entities),
            despawn: EntityScope::of(&grant, Right::Despawn),
            despawn_markers,
            grant,
            by_type: HashMap::default(),
            denied: 0,
            last_denied: None,
        }
    }

    /// Whether the grant is everything: then nothing needs checking.
    fn is_everything(&self) -> bool {
        self.grant.is_everything()
    }

    /// Whether `right` reaches the type `type_path` (its full path, as the
    /// registry has it).
    pub fn check_type(
        &mut self,
        right: Right,
        type_id: TypeId,
        type_path: &str,
    ) -> Result<(), String> {
        if self.is_everything() {
            return Ok(());
        }
        let grant = &self.grant;
        let allowed = *self
            .by_type
            .entry((type_id, right))
            .or_insert_with(|| grant.granted().allows(right, type_path));
        self.verdict(allowed, right, type_path)
    }

    /// Whether `right` reaches the registered type `registered`.
    pub fn check_registered(
        &mut self,
        right: Right,
        registered: &Registered,
    ) -> Result<(), String> {
        let type_path = registered.registration.type_info().type_path();
        self.check_type(right, registered.type_id, type_path)
    }

    /// Whether `right` reaches `key` in `bucket`.
    fn check_key(&mut self, right: Right, bucket: &str, key: &str) -> Result<(), String> {
        if self.is_everything() {
            return Ok(());
        }
        let allowed = self.grant.granted().allows_key(right, bucket, key);
        self.verdict(allowed, right, format_args!("{bucket}/{key}"))
    }

    /// Whether `right` reaches `key` in `bucket`, of which it reaches
    /// `reach` (resolved before): only `Some` looks at the key.
    fn check_key_in(
        &mut self,
        reach: BucketReach,
        right: Right,
        bucket: &str,
        key: &str,
    ) -> Result<(), String> {
        let allowed = match reach {
            BucketReach::All => true,
            BucketReach::None => false,
            BucketReach::Some => self.grant.granted().allows_key(right, bucket, key),
        };
        self.verdict(allowed, right, format_args!("{bucket}/{key}"))
    }

    /// How much of `bucket` `right` reaches.
    fn bucket_reach(&self, right: Right, bucket: &str) -> BucketReach {
        if self.is_everything() {
            return BucketReach::All;
        }
        self.grant.granted().bucket_reach(right, bucket)
    }

    /// How much of `bucket` each `kv.*` right reaches, for a handle to it.
    pub fn bucket_rights(&self, bucket: &str) -> BucketRights {
        BucketRights(BUCKET_RIGHTS.map(|right| self.bucket_reach(right, bucket)))
    }

    /// Whether `right` reaches `key` in `bucket`, of which each `kv.*`
    /// right reaches `rights` (resolved when the guest opened it).
    pub fn check_bucket_key(
        &mut self,
        rights: BucketRights,
        right: Right,
        bucket: &str,
        key: &str,
    ) -> Result<(), String> {
        if self.is_everything() {
            return Ok(());
        }
        let index = BUCKET_RIGHTS.iter().position(|&r| r == right);
        let reach = index.map_or(BucketReach::Some, |index| rights.0[index]);
        self.check_key_in(reach, right, bucket, key)
    }

    /// Whether `right` reaches every key of `bucket` that starts with
    /// `prefix`.
    fn check_key_prefix(&mut self, right: Right, bucket: &str, prefix: &str) -> Result<(), String> {
        if self.is_everything() {
            return Ok(());
        }
        let allowed = self
            .grant
            .granted()
            .allows_prefix(right, &format!("{bucket}/{prefix}"));
        self.verdict(allowed, right, format_args!("{bucket}/{prefix}*"))
    }

    /// Whether `kv.watch` reaches the key, or every key with the prefix,
    /// that `watched` covers.
    pub fn check_kv_watch(&mut self, watched: &KeyWatch) -> Result<(), String> {
        let KeyWatch {
            bucket,
            key,
            prefix,
        } = watched;
        if *prefix {
            self.check_key_prefix(Right::KvWatch, bucket, key)
        } else {
            self.check_key(Right::KvWatch, bucket, key)
        }
    }

    /// Leaves out of `keys` (of `bucket`) those `kv.read` does not reach,
    /// without counting a refusal: listings leave out what is out of reach.
    pub fn retain_readable(&self, bucket: &str, keys: &mut Vec<String>) {
        if self.is_everything() {
            return;
        }
        let granted = self.grant.granted();
        keys.retain(|key| granted.allows_key(Right::KvRead, bucket, key));
    }

    /// Whether `right` reaches `value`: a topic, or `own`, `spawned` or `*`
    /// for entities.
    pub fn check(&mut self, right: Right, value: &str) -> Result<(), String> {
        if self.is_everything() {
            return Ok(());
        }
        let allowed = self.grant.granted().allows(right, value);
        self.verdict(allowed, right, value)
    }

    /// Whether `right` reaches `value`, asked by the game rather than the
    /// guest: not counted as a refusal of the guest's.
    pub fn allows(&self, right: Right, value: &str) -> bool {
        self.is_everything() || self.grant.granted().allows(right, value)
    }

    /// Refuses one more task when the instance already has `pending`, as
    /// many as the grant's `tasks` allows.
    pub fn check_task(&mut self, pending: usize) -> Result<(), String> {
        let granted = self.grant.granted().tasks();
        if pending < granted as usize {
            return Ok(());
        }
        Err(self.deny(format!(
            "tasks {} (granted {granted}, {pending} pending)",
            pending + 1
        )))
    }

    /// Refuses to call the instance in every frame without the grant's
    /// `frame`.
    pub fn check_frame(&mut self) -> Result<(), String> {
        if self.grant.granted().frame() {
            return Ok(());
        }
        Err(self.deny("frame".to_owned()))
    }

    /// Refuses any spawn when the grant's `spawn` reaches no type at all.
    pub fn check_spawn(&mut self) -> Result<(), String> {
        if !self.grant.granted().reach(Right::Spawn).is_empty() {
            return Ok(());
        }
        Err(self.deny("spawn".to_owned()))
    }

    /// Whether the grant's `entities` reaches `entity`: its own always, the
    /// entities it spawned with `spawned`, any with `*`.
    pub fn reaches(&self, identity: &InstanceIdentity, world: &World, entity: Entity) -> bool {
        let scope = self.entities;
        entity == identity.entity
            || scope.any
            || scope.spawned && spawned_by(identity, world, entity)
    }

    /// Refuses to read or write the components of an entity the grant's
    /// `entities` does not reach.
    pub fn check_entity(
        &mut self,
        identity: &InstanceIdentity,
        world: &World,
        entity: Entity,
    ) -> Result<(), String> {
        if self.reaches(identity, world, entity) {
            return Ok(());
        }
        let needed = if spawned_by(identity, world, entity) {
            "spawned"
        } else {
            "*"
        };
        Err(self.deny(format!("entities {needed} ({entity} is not its own)")))
    }

    /// Refuses to despawn an entity the grant's `despawn` does not reach:
    /// `own`, `spawned`, `marked:<type path>` (an entity with such a
    /// component) or `*`.
    pub fn check_despawn(
        &mut self,
        identity: &InstanceIdentity,
        world: &World,
        registry: &AppTypeRegistry,
        entity: Entity,
    ) -> Result<(), String> {
        let (scope, markers) = (self.despawn, &self.despawn_markers);
        let marked = || {
            let registry = registry.read();
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
            || scope.own && entity == identity.entity
            || scope.spawned && spawned_by(identity, world, entity)
            || !markers.is_empty() && marked();
        if allowed {
            return Ok(());
        }
        Err(self.deny(format!("despawn {entity}")))
    }

    /// `Ok`, or the refusal, counted.
    fn verdict(
        &mut self,
        allowed: bool,
        right: Right,
        what: impl std::fmt::Display,
    ) -> Result<(), String> {
        if allowed {
            Ok(())
        } else {
            Err(self.deny(format!("{right} {what}")))
        }
    }

    /// Counts a refusal of `capability` and says it as the guest is told.
    fn deny(&mut self, capability: String) -> String {
        let message = format!("denied: {capability}");
        self.denied += 1;
        self.last_denied = Some(message.clone());
        message
    }

    /// The calls refused since the last time, and the newest refusal.
    pub fn take_denied(&mut self) -> (u64, Option<String>) {
        (std::mem::take(&mut self.denied), self.last_denied.take())
    }
}

/// Whether the instance's module spawned `entity`.
fn spawned_by(identity: &InstanceIdentity, world: &World, entity: Entity) -> bool {
    world
        .get::<SpawnedBy>(entity)
        .is_some_and(|spawned_by| spawned_by.module == identity.module_path)
}

/// Refuses `root` when it, or (for a despawn, `with_descendants`) one of
/// its descendants, holds a resource or runs another script (has
/// `script_component`), whatever the grant: a guest that despawned a
/// resource's entity, or changed its components, could make the game's
/// next `Res` access panic.
pub(crate) fn check_unprotected(
    world: &World,
    identity: &InstanceIdentity,
    script_component: Option<ComponentId>,
    root: Entity,
    with_descendants: bool,
) -> Result<(), String> {
    let mut pending = vec![root];
    while let Some(entity) = pending.pop() {
        let Ok(entity_ref) = world.get_entity(entity) else {
            continue;
        };
        let runs_a_script = entity != identity.entity
            && script_component.is_some_and(|id| entity_ref.contains_id(id));
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
        return Err(format!(
            "{which} {what}: guests may not despawn it or change its components"
        ));
    }
    Ok(())
}
