//! The arena's game side, headless: the player's movement and gun, moving
//! everything by its `Velocity`, collisions, and the guests that make the
//! rules. No drawing and no keyboard here (`main.rs` and `render.rs` do both),
//! so the tests run this plugin with `MinimalPlugins`.
//!
//! The rules are guests (`guests/waves`, `enemy-ai`, `scoring`,
//! `powerups`); the game only does what they ask and tells them what
//! happened: an enemy's `Team` removed is a kill (and an `EnemyKilled`, the
//! game's own Bevy message, says where it fell), `player-hit` is a
//! message, and `score` and `wave` messages come back for the HUD. A
//! pick-up the player touches is a question: the game asks `powerups`
//! (`powerup/take`) and leaves the pick-up lying when the answer is no.

#![allow(
    clippy::type_complexity,
    reason = "Bevy queries name their filters in full"
)]

use std::collections::HashMap;
use std::path::PathBuf;

use bevy::prelude::*;
use bevy_hotwasm::prelude::*;
use game_types::{
    ARENA_HALF_HEIGHT, ARENA_HALF_WIDTH, Boost, EnemyKilled, Health, PlayerPosition, Position,
    Powerup, Speed, Team, Velocity,
};

/// The player's speed, units a second.
pub const PLAYER_SPEED: f32 = 320.0;
/// A bullet's speed, units a second.
const BULLET_SPEED: f32 = 900.0;
/// Seconds between two shots without a boost.
const FIRE_INTERVAL: f32 = 0.2;
/// Radii, for collisions and drawing.
pub const PLAYER_RADIUS: f32 = 14.0;
pub const ENEMY_RADIUS: f32 = 14.0;
pub const BULLET_RADIUS: f32 = 4.0;
pub const POWERUP_RADIUS: f32 = 10.0;
/// How far an enemy that touched the player is pushed back.
const KNOCK_BACK: f32 = 90.0;

/// Designer values written into the `tuning` bucket when it has none; a
/// person can edit `<save dir>/tuning/<key>` by hand while the game runs.
pub const TUNING_DEFAULTS: [(&str, &str); 2] = [("enemy_speed", "90"), ("spawn_rate", "0.8")];

/// The game's rules and state, without drawing. Opens the key-value store
/// in `save_dir` (tuning, high score) unless the app has one already (a
/// store shared on a NATS server, `--nats`), loads the four rule guests
/// from `modules/` and gives every enemy its own `enemy_ai` instance.
pub struct ArenaLogicPlugin {
    pub save_dir: PathBuf,
}

/// The player's entity.
#[derive(Component)]
pub struct Player;

/// A shot, flying until it hits or leaves the arena.
#[derive(Component)]
pub struct Bullet;

/// What the player wants this frame: a direction (length ≤ 1) and whether
/// to shoot. Written by the keyboard in the windowed game, by the tests
/// headless.
#[derive(Resource, Default)]
pub struct PlayerInput {
    pub movement: Vec2,
    pub fire: bool,
}

/// What the HUD shows, from the guests' `score` and `wave` messages.
#[derive(Resource, Default, Debug, Clone, PartialEq)]
pub struct Scoreboard {
    pub score: u64,
    pub combo: u64,
    pub high: u64,
    pub wave: u32,
    /// Whether a power-up's boost is running (the `boost` message).
    pub boosted: bool,
}

/// The rule modules, by name, for the scripts and the HUD.
#[derive(Resource)]
pub struct ArenaModules {
    pub waves: Handle<WasmModule>,
    pub enemy_ai: Handle<WasmModule>,
    pub scoring: Handle<WasmModule>,
    pub powerups: Handle<WasmModule>,
}

impl ArenaModules {
    /// `(name, module)` for each, in the HUD's order.
    pub fn named(&self) -> [(&'static str, &Handle<WasmModule>); 4] {
        [
            ("waves", &self.waves),
            ("enemy_ai", &self.enemy_ai),
            ("scoring", &self.scoring),
            ("powerups", &self.powerups),
        ]
    }
}

/// The entity running the `powerups` rules, which the game asks whether a
/// pick-up applies.
#[derive(Component)]
pub struct PowerupsScript;

/// Pick-ups the game asked `powerups` about, by the question's ticket.
#[derive(Resource, Default)]
struct PickupsAsked(HashMap<AskTicket, Entity>);

/// Seconds until the gun may fire again.
#[derive(Resource, Default)]
struct GunCooldown(f32);

impl Plugin for ArenaLogicPlugin {
    fn build(&self, app: &mut App) {
        let mut store = app
            .world_mut()
            .remove_resource::<KvStore>()
            .unwrap_or_else(|| {
                KvStore::open_dir(&self.save_dir).unwrap_or_else(|error| {
                    panic!(
                        "cannot open the save directory {}: {error}",
                        self.save_dir.display()
                    )
                })
            });
        for (key, value) in TUNING_DEFAULTS {
            if !store.exists("tuning", key).unwrap_or(false) {
                // A store that cannot write leaves the guests their defaults.
                let _ = store.set("tuning", key, value.as_bytes());
            }
        }
        app.insert_resource(store)
            .register_type::<Position>()
            .register_type::<Velocity>()
            .register_type::<Speed>()
            .register_type::<Health>()
            .register_type::<Team>()
            .register_type::<Powerup>()
            .register_type::<PlayerPosition>()
            .register_type::<Boost>()
            .add_script_message::<EnemyKilled>()
            .init_resource::<PlayerInput>()
            .init_resource::<Scoreboard>()
            .init_resource::<GunCooldown>()
            .init_resource::<PickupsAsked>()
            .init_resource::<PlayerPosition>()
            .init_resource::<Boost>()
            .add_systems(Startup, start)
            .add_systems(
                Update,
                (
                    (
                        steer_player,
                        move_everything,
                        fire,
                        collide,
                        ask_to_take_powerups,
                        share_player_position,
                    )
                        .chain()
                        .before(WasmSystems::Run),
                    (give_enemies_their_ai, read_guest_messages, take_powerups)
                        .after(WasmSystems::Run),
                ),
            );
    }
}

fn start(mut commands: Commands, assets: Res<AssetServer>) {
    let modules = ArenaModules {
        waves: assets.load("modules/waves.wasm"),
        enemy_ai: assets.load("modules/enemy_ai.wasm"),
        scoring: assets.load("modules/scoring.wasm"),
        powerups: assets.load("modules/powerups.wasm"),
    };
    for module in [&modules.waves, &modules.scoring] {
        commands.spawn(WasmScript(module.clone()));
    }
    commands.spawn((WasmScript(modules.powerups.clone()), PowerupsScript));
    commands.insert_resource(modules);
    commands.spawn((
        Player,
        Team::Player,
        Position::default(),
        Velocity::default(),
    ));
}

fn steer_player(input: Res<PlayerInput>, mut player: Single<&mut Velocity, With<Player>>) {
    let direction = input.movement.clamp_length_max(1.0) * PLAYER_SPEED;
    **player = Velocity {
        x: direction.x,
        y: direction.y,
    };
}

/// Moves everything by its velocity; keeps all but bullets inside the
/// arena, and despawns bullets that leave it.
fn move_everything(
    time: Res<Time>,
    mut commands: Commands,
    mut moving: Query<(Entity, &mut Position, &Velocity, Has<Bullet>)>,
) {
    let dt = time.delta_secs();
    for (entity, mut position, velocity, bullet) in &mut moving {
        let (x, y) = (position.x + velocity.x * dt, position.y + velocity.y * dt);
        let outside = x.abs() > ARENA_HALF_WIDTH || y.abs() > ARENA_HALF_HEIGHT;
        if bullet && outside {
            commands.entity(entity).despawn();
        }
        position.x = x.clamp(-ARENA_HALF_WIDTH, ARENA_HALF_WIDTH);
        position.y = y.clamp(-ARENA_HALF_HEIGHT, ARENA_HALF_HEIGHT);
    }
}

/// Shoots at the nearest enemy while the player holds fire, faster while a
/// boost runs; counts the boost down.
fn fire(
    time: Res<Time>,
    input: Res<PlayerInput>,
    mut cooldown: ResMut<GunCooldown>,
    mut boost: ResMut<Boost>,
    mut commands: Commands,
    player: Single<&Position, With<Player>>,
    enemies: Query<(&Position, &Team), Without<Player>>,
) {
    let dt = time.delta_secs();
    if boost.secs_left > 0.0 {
        boost.secs_left = (boost.secs_left - dt).max(0.0);
    }
    cooldown.0 -= dt;
    if !input.fire || cooldown.0 > 0.0 {
        return;
    }
    let from = Vec2::new(player.x, player.y);
    let nearest = enemies
        .iter()
        .filter(|(_, team)| matches!(team, Team::Enemy { .. }))
        .map(|(at, _)| Vec2::new(at.x, at.y))
        .min_by(|a, b| {
            a.distance_squared(from)
                .total_cmp(&b.distance_squared(from))
        });
    let Some(target) = nearest else {
        return;
    };
    let rate = if boost.secs_left > 0.0 {
        boost.fire_rate.max(1.0)
    } else {
        1.0
    };
    cooldown.0 = FIRE_INTERVAL / rate;
    let direction = (target - from).normalize_or(Vec2::X) * BULLET_SPEED;
    commands.spawn((
        Bullet,
        Position {
            x: from.x,
            y: from.y,
        },
        Velocity {
            x: direction.x,
            y: direction.y,
        },
    ));
}

/// Bullets hurt enemies (an enemy with no hit points left dies: a kill);
/// enemies that touch the player hurt the score and are pushed back.
fn collide(
    time: Res<Time>,
    mut commands: Commands,
    (mut to_scripts, mut killed): (MessageWriter<HostMessage>, MessageWriter<EnemyKilled>),
    bullets: Query<(Entity, &Position, &Velocity), With<Bullet>>,
    mut enemies: Query<(Entity, &mut Position, &mut Health), (Without<Bullet>, Without<Player>)>,
    player: Single<&Position, (With<Player>, Without<Bullet>, Without<Health>)>,
) {
    let at = |position: &Position| Vec2::new(position.x, position.y);
    let player_at = at(&player);
    // A bullet stops at the first enemy it hits (and is despawned once).
    let mut spent = Vec::new();
    for (enemy, mut position, mut health) in &mut enemies {
        for (bullet, bullet_at, velocity) in &bullets {
            if spent.contains(&bullet) {
                continue;
            }
            // Along the whole way the bullet flew this frame, so a slow
            // frame cannot carry it through an enemy.
            let to = at(bullet_at);
            let from = to - Vec2::new(velocity.x, velocity.y) * time.delta_secs();
            if health.hp > 0
                && distance_to_segment(at(&position), from, to) <= ENEMY_RADIUS + BULLET_RADIUS
            {
                commands.entity(bullet).despawn();
                spent.push(bullet);
                health.hp -= 1;
            }
        }
        if health.hp == 0 {
            commands.entity(enemy).despawn();
            killed.write(EnemyKilled { at: *position });
            continue;
        }
        let away = at(&position) - player_at;
        if away.length() <= ENEMY_RADIUS + PLAYER_RADIUS {
            let pushed = player_at
                + away.normalize_or(Vec2::Y) * (PLAYER_RADIUS + ENEMY_RADIUS + KNOCK_BACK);
            (position.x, position.y) = (pushed.x, pushed.y);
            to_scripts.write(HostMessage::to_subscribers("player-hit", Vec::new()));
        }
    }
}

/// Asks `powerups` whether each pick-up the player touches applies
/// (`powerup/take`, the pick-up's kind); the answer comes this frame.
fn ask_to_take_powerups(
    asks: ScriptAsk,
    rules: Single<Entity, With<PowerupsScript>>,
    mut asked: ResMut<PickupsAsked>,
    powerups: Query<(Entity, &Position, &Powerup)>,
    player: Single<&Position, With<Player>>,
) {
    let player_at = Vec2::new(player.x, player.y);
    for (pickup, at, kind) in &powerups {
        let touching = Vec2::new(at.x, at.y).distance(player_at) <= POWERUP_RADIUS + PLAYER_RADIUS;
        if touching && !asked.0.values().any(|&asked| asked == pickup) {
            match asks.ask(*rules, "powerup/take", kind) {
                Ok(ticket) => {
                    asked.0.insert(ticket, pickup);
                }
                Err(error) => warn!("cannot ask powerups about a pick-up: {error}"),
            }
        }
    }
}

/// Takes each pick-up `powerups` said applies; one it refused (a boost
/// already running) stays where it lies, to be asked about again.
fn take_powerups(
    mut commands: Commands,
    mut answers: MessageReader<ScriptAnswered>,
    mut asked: ResMut<PickupsAsked>,
) {
    for answered in answers.read() {
        let Some(pickup) = asked.0.remove(&answered.ticket) else {
            continue;
        };
        match answered.answer::<bool>() {
            Ok(true) => {
                commands.entity(pickup).try_despawn();
            }
            Ok(false) => {}
            Err(error) => warn!("powerups did not answer about a pick-up: {error}"),
        }
    }
}

/// How far `point` is from the segment `from`–`to`.
fn distance_to_segment(point: Vec2, from: Vec2, to: Vec2) -> f32 {
    let along = to - from;
    let t = ((point - from).dot(along) / along.length_squared().max(f32::EPSILON)).clamp(0.0, 1.0);
    point.distance(from + along * t)
}

fn share_player_position(
    player: Single<&Position, With<Player>>,
    mut shared: ResMut<PlayerPosition>,
) {
    shared.set_if_neq(PlayerPosition {
        x: player.x,
        y: player.y,
    });
}

/// Every enemy a wave spawned gets its own `enemy_ai` instance.
fn give_enemies_their_ai(
    mut commands: Commands,
    modules: Res<ArenaModules>,
    new: Query<(Entity, &Team), (Added<Team>, Without<WasmScript>)>,
) {
    for (entity, team) in &new {
        if matches!(team, Team::Enemy { .. }) {
            commands
                .entity(entity)
                .insert(WasmScript(modules.enemy_ai.clone()));
        }
    }
}

/// `score` (`score combo high`), `wave` (its number) and `boost` (`on` or
/// `off`) from the guests, for the HUD.
fn read_guest_messages(
    mut from_scripts: MessageReader<ModuleMessage>,
    mut board: ResMut<Scoreboard>,
) {
    for message in from_scripts.read() {
        let text = String::from_utf8_lossy(&message.payload);
        let numbers: Vec<u64> = text.split(' ').filter_map(|n| n.parse().ok()).collect();
        match (message.topic.as_str(), &numbers[..]) {
            ("score", &[score, combo, high]) => {
                (board.score, board.combo, board.high) = (score, combo, high);
            }
            ("wave", &[wave]) => board.wave = wave as u32,
            ("boost", _) => board.boosted = text == "on",
            _ => {}
        }
    }
}
