//! Component, resource and message types shared by a game and its guests: one definition,
//! compiled into the game (feature `bevy`: Bevy `Component` and `Reflect`
//! with `Serialize`/`Deserialize`) and into guests (feature `guest`:
//! `hotwasm_sdk::Component`, the same type paths). The JSON the game's
//! `bevy_reflect` writes is the JSON the guest's serde reads; the host's
//! tests check that for every type here.
//!
//! Copy the pattern for your own game: a small crate both sides depend on.

use serde::{Deserialize, Serialize};

#[cfg(feature = "bevy")]
use bevy::prelude::{
    Component, Message, Reflect, ReflectComponent, ReflectDeserialize, ReflectResource,
    ReflectSerialize, Resource,
};

/// Where an entity is, in world units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bevy", derive(Component, Reflect))]
#[cfg_attr(feature = "bevy", reflect(Component, Serialize, Deserialize))]
pub struct Position {
    /// East.
    pub x: f32,
    /// North.
    pub y: f32,
}

impl Position {
    /// Moves at most `step` towards `target`, stopping on it.
    pub fn move_towards(&mut self, target: Target, step: f32) {
        let (dx, dy) = (target.x - self.x, target.y - self.y);
        let distance = (dx * dx + dy * dy).sqrt();
        if distance <= step {
            (self.x, self.y) = (target.x, target.y);
        } else {
            self.x += dx / distance * step;
            self.y += dy / distance * step;
        }
    }
}

/// Where an entity is heading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bevy", derive(Component, Reflect))]
#[cfg_attr(feature = "bevy", reflect(Component, Serialize, Deserialize))]
pub struct Target {
    /// East.
    pub x: f32,
    /// North.
    pub y: f32,
}

/// How fast an entity moves, in world units per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bevy", derive(Component, Reflect))]
#[cfg_attr(feature = "bevy", reflect(Component, Serialize, Deserialize))]
pub struct Speed(pub f32);

/// Hit points, and a shield that takes hits first if there is one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bevy", derive(Component, Reflect))]
#[cfg_attr(feature = "bevy", reflect(Component, Serialize, Deserialize))]
pub struct Health {
    /// Hit points left.
    pub hp: u32,
    /// Shield points left, if the entity has a shield.
    pub shield: Option<u32>,
}

/// Whose side an entity is on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bevy", derive(Component, Reflect))]
#[cfg_attr(feature = "bevy", reflect(Component, Serialize, Deserialize))]
pub enum Team {
    /// The player.
    #[default]
    Player,
    /// An enemy of a wave.
    Enemy {
        /// The wave it came with.
        wave: u32,
    },
    /// Nobody's, named.
    Neutral(String),
}

/// Spawns entities of a team at a place: nested types, a list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bevy", derive(Component, Reflect))]
#[cfg_attr(feature = "bevy", reflect(Component, Serialize, Deserialize))]
pub struct Spawner {
    /// Where.
    pub at: Position,
    /// Whose.
    pub team: Team,
    /// Seconds between two spawns.
    pub every_secs: f32,
    /// Free-form labels.
    pub tags: Vec<String>,
}

/// How fast and which way an entity moves, in world units per second; the
/// game moves every entity with a `Position` by it each frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bevy", derive(Component, Reflect))]
#[cfg_attr(feature = "bevy", reflect(Component, Serialize, Deserialize))]
pub struct Velocity {
    /// East.
    pub x: f32,
    /// North.
    pub y: f32,
}

/// A pick-up lying in the arena, until the player touches it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bevy", derive(Component, Reflect))]
#[cfg_attr(feature = "bevy", reflect(Component, Serialize, Deserialize))]
pub enum Powerup {
    /// Shoots three times as fast for a while.
    #[default]
    RapidFire,
}

/// Where the player is, updated by the game every frame: what enemies
/// steer by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bevy", derive(Resource, Reflect))]
#[cfg_attr(feature = "bevy", reflect(Resource, Serialize, Deserialize))]
pub struct PlayerPosition {
    /// East.
    pub x: f32,
    /// North.
    pub y: f32,
}

/// A power-up's effect on the player's gun while it lasts; the game counts
/// `secs_left` down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bevy", derive(Resource, Reflect))]
#[cfg_attr(feature = "bevy", reflect(Resource, Serialize, Deserialize))]
pub struct Boost {
    /// How many times as fast the gun fires (1: normal).
    pub fire_rate: f32,
    /// Seconds the boost has left.
    pub secs_left: f32,
}

/// An enemy was killed, where it fell: a Bevy message the game writes and
/// scripts read (`app.add_script_message::<EnemyKilled>()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bevy", derive(Message, Reflect))]
pub struct EnemyKilled {
    /// Where it was when it died.
    pub at: Position,
}

/// Half the arena's width: entities stay within `-ARENA_HALF_WIDTH..=ARENA_HALF_WIDTH`.
pub const ARENA_HALF_WIDTH: f32 = 600.0;
/// Half the arena's height.
pub const ARENA_HALF_HEIGHT: f32 = 290.0;

#[cfg(feature = "guest")]
hotwasm_sdk::component!(
    Position, Target, Speed, Health, Team, Spawner, Velocity, Powerup
);
#[cfg(feature = "guest")]
hotwasm_sdk::resource!(PlayerPosition, Boost);
#[cfg(feature = "guest")]
hotwasm_sdk::game_message!(EnemyKilled);

/// A designer's value from the game's `tuning` bucket (written as text, so
/// a person can edit its file by hand), read by a guest; `None` when it is
/// unset or not a number.
#[cfg(feature = "guest")]
pub fn tuning(key: &str) -> Option<f32> {
    let bucket = hotwasm_sdk::kv::store::open("tuning").ok()?;
    tuning_value(&bucket.get(key).ok()??)
}

/// A `tuning` value's bytes (a key's value, or a watch event's data) as a
/// number.
pub fn tuning_value(text: &[u8]) -> Option<f32> {
    String::from_utf8_lossy(text).trim().parse().ok()
}
