//! The arena's waves: when and what spawns. Wave `n` brings `3 + 2n`
//! enemies, one every `tuning/spawn_rate` seconds, from the arena's edges;
//! the next wave comes [`BREAK`] after the last enemy of this one died.
//! Each wave is announced on the `wave` topic. The wave, how many enemies
//! are still to come and the random state survive a hot reload.

use std::time::Duration;

use game_types::{
    ARENA_HALF_HEIGHT, ARENA_HALF_WIDTH, Health, Position, Speed, Team, Velocity, tuning,
};
use hotwasm_sdk::{Cx, Error, Script, TaskId, Watch, ecs, info};

// What waves may touch: a signed build gets exactly this (README, Release builds).
hotwasm_sdk::capabilities!(
    "
    kv.read          tuning/spawn_rate
    kv.watch         tuning/spawn_rate
    component.read   game_types::Team     # counting the enemies alive
    entities         *
    spawn            game_types::Position game_types::Velocity game_types::Speed game_types::Health game_types::Team
    messages.send    wave
    tasks            4
    "
);

/// The pause between two waves.
const BREAK: Duration = Duration::from_secs(2);
/// Seconds between two spawns when `tuning/spawn_rate` is unset or unreadable.
const DEFAULT_SPAWN_SECS: f32 = 0.8;

#[derive(Default)]
struct Waves {
    wave: u32,
    /// Enemies of this wave not spawned yet.
    to_spawn: u32,
    /// A xorshift state: where enemies appear.
    random: u64,
    spawning: Option<TaskId>,
    /// Set while the break before the next wave runs.
    between_waves: bool,
}

impl Script for Waves {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        if self.random == 0 {
            self.random = 0x9E37_79B9_7F4A_7C15;
        }
        cx.watch(Watch::key("tuning", "spawn_rate"), |me, cx, _| {
            me.start_spawning(cx)
        })?;
        // Once a second: is the wave over?
        cx.every(Duration::from_secs(1), |me, cx, _| {
            if me.to_spawn > 0 || me.between_waves || enemies_alive()? > 0 {
                return Ok(());
            }
            me.between_waves = true;
            cx.after(BREAK, |me, cx| me.next_wave(cx))?;
            Ok(())
        })?;
        if self.to_spawn > 0 {
            self.start_spawning(cx)?;
        }
        Ok(())
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        let mut state = Vec::with_capacity(16);
        state.extend(self.wave.to_le_bytes());
        state.extend(self.to_spawn.to_le_bytes());
        state.extend(self.random.to_le_bytes());
        Some(state)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), Error> {
        let state: [u8; 16] = state.try_into().map_err(|_| "expected 16 bytes of state")?;
        let [wave, to_spawn, random] = [&state[0..4], &state[4..8], &state[8..16]];
        self.wave = u32::from_le_bytes(wave.try_into().unwrap_or_default());
        self.to_spawn = u32::from_le_bytes(to_spawn.try_into().unwrap_or_default());
        self.random = u64::from_le_bytes(random.try_into().unwrap_or_default());
        Ok(())
    }
}

impl Waves {
    fn next_wave(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        self.between_waves = false;
        self.wave += 1;
        self.to_spawn = 3 + 2 * self.wave;
        info!("wave {}: {} enemies", self.wave, self.to_spawn);
        hotwasm_sdk::send("wave", self.wave.to_string().as_bytes())?;
        self.start_spawning(cx)
    }

    /// (Re)starts the spawning task at the tuned rate.
    fn start_spawning(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        if let Some(task) = self.spawning.take() {
            cx.cancel(task)?;
        }
        if self.to_spawn == 0 {
            return Ok(());
        }
        let every = Duration::from_secs_f32(tuning("spawn_rate").unwrap_or(DEFAULT_SPAWN_SECS));
        let task = cx.every(every.max(Duration::from_millis(50)), |me, cx, _| {
            me.spawn_one()?;
            if me.to_spawn == 0
                && let Some(task) = me.spawning.take()
            {
                cx.cancel(task)?;
            }
            Ok(())
        })?;
        self.spawning = Some(task);
        Ok(())
    }

    fn spawn_one(&mut self) -> Result<(), Error> {
        let along = self.next_random() * 2.0 - 1.0;
        let at = match self.next_random() * 4.0 {
            side if side < 1.0 => Position {
                x: along * ARENA_HALF_WIDTH,
                y: ARENA_HALF_HEIGHT,
            },
            side if side < 2.0 => Position {
                x: along * ARENA_HALF_WIDTH,
                y: -ARENA_HALF_HEIGHT,
            },
            side if side < 3.0 => Position {
                x: ARENA_HALF_WIDTH,
                y: along * ARENA_HALF_HEIGHT,
            },
            _ => Position {
                x: -ARENA_HALF_WIDTH,
                y: along * ARENA_HALF_HEIGHT,
            },
        };
        let health = Health {
            hp: 1 + self.wave / 3,
            shield: None,
        };
        let speed = Speed(1.0 + 0.1 * self.wave as f32);
        let team = Team::Enemy { wave: self.wave };
        ecs::spawn((at, Velocity::default(), speed, health, team))?;
        self.to_spawn -= 1;
        Ok(())
    }

    /// A number in `0.0..1.0`.
    fn next_random(&mut self) -> f32 {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        (self.random >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// How many enemies are in the arena.
fn enemies_alive() -> Result<usize, Error> {
    let mut alive = 0;
    for row in ecs::query::<(Team,)>() {
        if let (_, (Team::Enemy { .. },)) = row? {
            alive += 1;
        }
    }
    Ok(alive)
}

hotwasm_sdk::export_script!(Waves);
