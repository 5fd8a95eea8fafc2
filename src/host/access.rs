//! The module's grant, checked at the host boundary: every import asks
//! [`Access`] before it touches anything, and a refusal is an error result
//! naming the capability (`denied: component.write my_game::Gold`), counted
//! for the script's stats.

use std::any::TypeId;
use std::sync::Arc;

use bevy::platform::collections::HashMap;

use crate::capabilities::{BucketReach, Grant, Pattern, Right};

/// Which entities a right reaches beyond the instance's own, read from the
/// grant once.
#[derive(Clone, Copy, Default)]
pub(crate) struct EntityScope {
    /// `*`: every entity.
    pub any: bool,
    /// `own`: the instance's entity.
    pub own: bool,
    /// `spawned`: entities its module spawned.
    pub spawned: bool,
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

/// An instance's grant, with each type's rights resolved once.
pub(crate) struct Access {
    grant: Arc<Grant>,
    /// Whose components it may read and write (`entities`).
    pub entities: EntityScope,
    /// What it may despawn (`despawn`), and the marker components that let
    /// it despawn an entity (`despawn marked:<type path>`).
    pub despawn: EntityScope,
    pub despawn_markers: Vec<Pattern>,
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
    pub fn is_everything(&self) -> bool {
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

    /// Whether `right` reaches `key` in `bucket`.
    pub fn check_key(&mut self, right: Right, bucket: &str, key: &str) -> Result<(), String> {
        if self.is_everything() {
            return Ok(());
        }
        let allowed = self.grant.granted().allows_key(right, bucket, key);
        self.verdict(allowed, right, format_args!("{bucket}/{key}"))
    }

    /// Whether `right` reaches `key` in `bucket`, of which it reaches
    /// `reach` (resolved before): only `Some` looks at the key.
    pub fn check_key_in(
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
    pub fn bucket_reach(&self, right: Right, bucket: &str) -> BucketReach {
        if self.is_everything() {
            return BucketReach::All;
        }
        self.grant.granted().bucket_reach(right, bucket)
    }

    /// Whether `right` reaches every key of `bucket` that starts with
    /// `prefix`.
    pub fn check_key_prefix(
        &mut self,
        right: Right,
        bucket: &str,
        prefix: &str,
    ) -> Result<(), String> {
        if self.is_everything() {
            return Ok(());
        }
        let allowed = self
            .grant
            .granted()
            .allows_prefix(right, &format!("{bucket}/{prefix}"));
        self.verdict(allowed, right, format_args!("{bucket}/{prefix}*"))
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

    /// Whether `right` reaches `key` in `bucket`, without counting a
    /// refusal: for listings, which leave out what is out of reach.
    pub fn allows_key(&self, right: Right, bucket: &str, key: &str) -> bool {
        self.is_everything() || self.grant.granted().allows_key(right, bucket, key)
    }

    /// Whether `right` reaches anything at all.
    pub fn reaches_any(&self, right: Right) -> bool {
        !self.grant.granted().reach(right).is_empty()
    }

    /// How many tasks it may have at once.
    pub fn tasks(&self) -> u32 {
        self.grant.granted().tasks()
    }

    /// Whether it may ask for every frame.
    pub fn frame(&self) -> bool {
        self.grant.granted().frame()
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
    pub fn deny(&mut self, capability: String) -> String {
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
