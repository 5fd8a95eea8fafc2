//! Steers one enemy: the game gives every enemy its own instance. Every
//! frame it points the enemy's `Velocity` at the player, the way
//! [`STEERING`] says, at `tuning/enemy_speed` units a second times the
//! enemy's `Speed`. How long the enemy has lived is its own state, kept
//! across hot reloads, so a zig-zag carries on where it was.

use game_types::{PlayerPosition, Position, Speed, Velocity, tuning, tuning_value};
use hotwasm_sdk::{Cx, Error, Frame, Script, Watch, ecs, info, me};

// What one enemy's AI may touch (the book's Capabilities chapter): its
// own entity's components, the player's position and its tuning value.
hotwasm_sdk::capabilities!(
    "
    component.read  game_types::Position game_types::Speed game_types::Velocity
    component.write game_types::Velocity
    resource.read   game_types::PlayerPosition
    kv.read         tuning/enemy_speed
    kv.watch        tuning/enemy_speed
    frame
    "
);

/// How enemies close in. Change it while the game runs and every enemy on
/// screen turns at once.
#[cfg(not(feature = "homing"))]
const STEERING: Steering = Steering::ZigZag;
#[cfg(feature = "homing")]
const STEERING: Steering = Steering::Homing;

/// Units a second when `tuning/enemy_speed` is unset or unreadable.
const DEFAULT_SPEED: f32 = 90.0;

#[derive(Debug)]
#[expect(dead_code, reason = "one of the two is picked by `STEERING`")]
enum Steering {
    /// Straight at the player.
    Homing,
    /// At the player, weaving from side to side.
    ZigZag,
}

#[derive(Default)]
struct EnemyAi {
    /// Seconds since the enemy appeared.
    age: f32,
    /// Units a second, from `tuning/enemy_speed`.
    speed: f32,
}

impl Script for EnemyAi {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        self.speed = tuning("enemy_speed").unwrap_or(DEFAULT_SPEED);
        cx.watch(Watch::key("tuning", "enemy_speed"), |me, _, event| {
            me.speed = tuning_value(event.data).unwrap_or(DEFAULT_SPEED);
            Ok(())
        })?;
        cx.every_frame(true)?;
        cx.prefetch::<(Position, Speed, Velocity)>()?;
        if self.age > 0.0 {
            // A hot reload: say which steering took over, and that the
            // enemy's own state came with it.
            info!("now {STEERING:?}, {:.1} s old", self.age);
        }
        Ok(())
    }

    fn update(&mut self, _: &mut Cx<Self>, frame: Frame) -> Result<(), Error> {
        self.age += frame.delta_secs();
        let (at, player) = (me().get::<Position>()?, ecs::resource::<PlayerPosition>()?);
        let (mut x, mut y) = unit(player.x - at.x, player.y - at.y);
        if let Steering::ZigZag = STEERING {
            let weave = (self.age * 4.0).sin() * 1.5;
            (x, y) = unit(x - y * weave, y + x * weave);
        }
        let speed = self.speed * me().get::<Speed>()?.0;
        me().set(&Velocity {
            x: x * speed,
            y: y * speed,
        })
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        Some(self.age.to_le_bytes().to_vec())
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), Error> {
        let age = state.try_into().map_err(|_| "expected 4 bytes of state")?;
        self.age = f32::from_le_bytes(age);
        Ok(())
    }
}

/// `(x, y)` scaled to length 1 (or zero).
fn unit(x: f32, y: f32) -> (f32, f32) {
    let length = (x * x + y * y).sqrt();
    if length < f32::EPSILON {
        (0.0, 0.0)
    } else {
        (x / length, y / length)
    }
}

hotwasm_sdk::export_script!(EnemyAi);
