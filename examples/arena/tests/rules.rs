//! The arena example's rules, headless (`MinimalPlugins`, virtual time at
//! 60 frames a second, input written by the test): its guests spawn waves,
//! steer enemies, score kills into a high score kept on disk, read tuning a
//! person edits by hand, and a new `enemy_ai` turns every enemy at once;
//! a release build runs the rules signed by its key.

use std::path::Path;
use std::time::Duration;

use arena::logic::{ArenaLogicPlugin, ArenaModules, Player, PlayerInput, Scoreboard};
use arena::trust::arena_trust;
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::trust::{SignatureError, sign_module};
use ed25519_dalek::SigningKey;
use game_types::{Boost, EnemyKilled, Position, Powerup, Team, Velocity};
use hotwasm_test_support::*;

/// The game over a temporary asset directory holding the four rule guests,
/// saving into `save`.
fn arena(save: &Path) -> (AssetDir, App) {
    arena_with(save, None)
}

/// The game, keeping its state in `store` if given (as `--nats` does),
/// else in `save`.
fn arena_with(save: &Path, store: Option<bevy_hotwasm::KvStore>) -> (AssetDir, App) {
    let assets = AssetDir::new();
    for guest in RULES {
        assets.write(&format!("{guest}.wasm"), &guest_bytes(guest));
    }
    let app = arena_over(&assets, save, store, unsigned_plugin());
    (assets, app)
}

/// The four rule guests.
const RULES: [&str; 4] = ["waves", "enemy_ai", "scoring", "powerups"];

/// The game over `assets` with `plugin`'s settings.
fn arena_over(
    assets: &AssetDir,
    save: &Path,
    store: Option<bevy_hotwasm::KvStore>,
    plugin: HotWasmPlugin,
) -> App {
    game_with_fake_watcher(assets, plugin, |app| {
        if let Some(store) = store {
            app.insert_resource(store);
        }
        app.add_plugins(ArenaLogicPlugin {
            save_dir: save.to_owned(),
        })
        // Frames as short as the game's, so bullets meet what they aim at.
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs_f64(
            1.0 / 60.0,
        )));
    })
}

fn board(app: &App) -> Scoreboard {
    app.world().resource::<Scoreboard>().clone()
}

/// Every enemy: its entity, where it is and how it moves.
fn enemies(app: &mut App) -> Vec<(Entity, Position, Velocity)> {
    let mut query = app
        .world_mut()
        .query::<(Entity, &Team, &Position, &Velocity)>();
    query
        .iter(app.world())
        .filter(|(_, team, _, _)| matches!(team, Team::Enemy { .. }))
        .map(|(entity, _, position, velocity)| (entity, *position, *velocity))
        .collect()
}

fn player(app: &mut App) -> Vec2 {
    let mut query = app.world_mut().query_filtered::<&Position, With<Player>>();
    let position = query.single(app.world()).unwrap();
    Vec2::new(position.x, position.y)
}

/// Waits until the first wave's five enemies are all in, each steered by
/// its own running `enemy_ai`.
fn wait_for_first_wave(app: &mut App) -> Vec<Entity> {
    update_until(
        app,
        "the first wave's five enemies, each with its AI",
        |app| {
            let enemies = enemies(app);
            enemies.len() == 5
                && enemies.iter().all(|(entity, _, velocity)| {
                    generation(app, *entity).is_some() && velocity.x.hypot(velocity.y) > 0.0
                })
        },
    );
    enemies(app)
        .into_iter()
        .map(|(entity, ..)| entity)
        .collect()
}

/// How closely each enemy heads straight at the player: the cosine of the
/// angle between its velocity and the way to the player.
fn headings(app: &mut App) -> Vec<f32> {
    let player = player(app);
    enemies(app)
        .iter()
        .map(|(_, at, velocity)| {
            let to_player = (player - Vec2::new(at.x, at.y)).normalize_or_zero();
            Vec2::new(velocity.x, velocity.y)
                .normalize_or_zero()
                .dot(to_player)
        })
        .collect()
}

#[test]
fn waves_spawn_enemies_and_their_ai_brings_them_to_the_player() {
    let save = tempfile::tempdir().unwrap();
    let (_assets, mut app) = arena(save.path());
    update_until(&mut app, "wave 1 to be announced", |app| {
        board(app).wave == 1
    });
    let first = wait_for_first_wave(&mut app);
    assert_eq!(first.len(), 5, "wave 1 brings 3 + 2 enemies");

    let distance = |app: &mut App| {
        let player = player(app);
        enemies(app)
            .iter()
            .map(|(_, at, _)| Vec2::new(at.x, at.y).distance(player))
            .sum::<f32>()
    };
    let far = distance(&mut app);
    update_until(&mut app, "the enemies to close in on the player", |app| {
        distance(app) < far - 5.0 * 100.0
    });
}

#[test]
fn kills_score_and_the_high_score_outlives_the_game() {
    let save = tempfile::tempdir().unwrap();
    let high = {
        let (_assets, mut app) = arena(save.path());
        wait_for_first_wave(&mut app);
        app.world_mut().resource_mut::<PlayerInput>().fire = true;
        update_until(&mut app, "a kill to score", |app| board(app).score > 0);
        let board = board(&app);
        assert!(board.score >= 10 && board.combo >= 1, "{board:?}");
        assert_eq!(
            board.high, board.score,
            "a first game's score is its high score"
        );
        // The rules that declare their capabilities asked for all they use.
        for (entity, script) in runtime(&app).scripts() {
            let stats = script.stats();
            assert_eq!(stats.denied_host_calls, 0, "{entity}: {stats:?}");
        }
        board.high
    };
    let on_disk = std::fs::read_to_string(save.path().join("scores/high")).unwrap();
    assert_eq!(
        on_disk,
        high.to_string(),
        "the high score is a file anyone can read"
    );

    let (_assets, mut app) = arena(save.path());
    update_until(&mut app, "the next game to show the high score", |app| {
        board(app).high == high
    });
    assert_eq!(board(&app).score, 0, "a new game starts from nothing");
}

/// The speed of the fastest enemy.
fn fastest(app: &mut App) -> f32 {
    enemies(app)
        .iter()
        .map(|(_, _, velocity)| velocity.x.hypot(velocity.y))
        .fold(0.0, f32::max)
}

/// Runs frames until every enemy goes faster than `speed`.
fn wait_for_every_enemy_faster_than(app: &mut App, speed: f32) {
    update_until(app, "every enemy to speed up", |app| {
        let enemies = enemies(app);
        enemies
            .iter()
            .all(|(_, _, velocity)| velocity.x.hypot(velocity.y) > speed)
    });
}

#[test]
fn a_hand_edited_tuning_file_changes_every_enemys_speed() {
    let save = tempfile::tempdir().unwrap();
    let (_assets, mut app) = arena(save.path());
    wait_for_first_wave(&mut app);
    assert!(
        fastest(&mut app) < 150.0,
        "90 units a second times a wave-1 enemy's 1.1"
    );

    std::fs::write(save.path().join("tuning/enemy_speed"), "400\n").unwrap();
    wait_for_every_enemy_faster_than(&mut app, 400.0);
}

/// The book's two-process example: the `tune` tool, another process
/// with its own connection, changes the tuning of an arena whose store is
/// shared on a NATS server (`--nats`).
#[cfg(feature = "nats_server_tests")]
#[test]
fn a_tuning_tool_on_a_shared_store_changes_every_enemys_speed() {
    use bevy_hotwasm::KvStore;
    use bevy_hotwasm::kv::NatsOptions;
    use hotwasm_test_support::nats_server::{NatsServer, wait_until};

    let server = NatsServer::start();
    let connect = || KvStore::connect_nats(&server.url(), NatsOptions::default()).unwrap();
    let save = tempfile::tempdir().unwrap();
    let (_assets, mut app) = arena_with(save.path(), Some(connect()));
    wait_for_first_wave(&mut app);
    assert!(
        fastest(&mut app) < 150.0,
        "the default tuning, written to the server"
    );
    let mut tool = connect();
    assert_eq!(
        tool.get("tuning", "enemy_speed").unwrap().as_deref(),
        Some(&b"90"[..])
    );

    tool.set("tuning", "enemy_speed", b"400").unwrap();
    wait_until("the tool's write to be acknowledged", || {
        tool.shared_status().unwrap().queued_writes == 0
    });
    wait_for_every_enemy_faster_than(&mut app, 400.0);
    // Nothing was written to the save directory.
    assert!(!save.path().join("tuning").exists());
}

#[test]
fn a_new_enemy_ai_turns_every_enemy_at_once_and_each_keeps_its_state() {
    let save = tempfile::tempdir().unwrap();
    let (assets, mut app) = arena(save.path());
    let enemies_before = wait_for_first_wave(&mut app);
    run_frames(&mut app, 30);
    assert!(
        headings(&mut app).iter().any(|&cos| cos < 0.99),
        "zig-zagging enemies do not all head straight at the player"
    );

    assets.save(&app, "enemy_ai.wasm", &guest_bytes("enemy_ai_homing"));
    update_until(&mut app, "every enemy to run the homing AI", |app| {
        enemies(app)
            .iter()
            .all(|(entity, ..)| generation(app, *entity) == Some(2))
    });
    run_frames(&mut app, 1);
    for cos in headings(&mut app) {
        assert!(
            cos > 0.999,
            "every enemy heads straight at the player: {cos}"
        );
    }
    let module = app.world().resource::<ArenaModules>().enemy_ai.id();
    assert_eq!(runtime(&app).module(module).unwrap().generation(), 2);
    let survivors: Vec<Entity> = (enemies_before.into_iter())
        .filter(|&e| app.world().get_entity(e).is_ok())
        .collect();
    assert!(
        !survivors.is_empty(),
        "an enemy from before the reload is still there to say how old it is"
    );
    for enemy in survivors {
        let lines = seen(&app).lines_of(enemy);
        let age: f32 = lines
            .iter()
            .find_map(|line| {
                line.strip_prefix("now Homing, ")?
                    .strip_suffix(" s old")?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{enemy} says how old it was: {lines:?}"));
        assert!(age >= 0.5, "{enemy} kept its age across the reload: {age}");
    }
}

#[test]
fn a_release_arena_runs_the_rules_signed_by_its_key_and_refuses_an_unsigned_one() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let trusted = TrustedKey::from_bytes(key.verifying_key().as_bytes()).unwrap();
    let (save, assets) = (tempfile::tempdir().unwrap(), AssetDir::new());
    for guest in RULES {
        let bytes = guest_bytes(guest);
        if guest != "powerups" {
            let signature = sign_module(&key, &bytes);
            assets.write(&format!("{guest}.wasm.sig"), signature.as_bytes());
        }
        assets.write(&format!("{guest}.wasm"), &bytes);
    }
    let plugin = HotWasmPlugin {
        trust: arena_trust(true, Some(trusted)),
        ..default()
    };
    let mut app = arena_over(&assets, save.path(), None, plugin);

    // Signed: waves spawns, each enemy runs its own signed AI.
    wait_for_first_wave(&mut app);
    // Unsigned, in a release build: refused, saying how to sign it.
    update_until(&mut app, "the unsigned powerups refused", |app| {
        let refused = &app.world().resource::<Seen>().refused;
        refused
            .iter()
            .any(|error| matches!(error, SignatureError::Unsigned { .. }))
    });
}

/// Updates until the three scripts the game starts (waves, scoring,
/// powerups) run.
fn wait_for_the_rules(app: &mut App) {
    update_until(app, "every rule to start", |app| {
        runtime(app).scripts().count() >= 3
            && runtime(app)
                .scripts()
                .all(|(_, script)| script.generation().is_some())
    });
}

/// The game asks `powerups` whether a pick-up applies (`powerup/take`):
/// the first one the player touches is taken and boosts the gun; a second,
/// touched while that boost runs, stays where it lies.
#[test]
fn a_pick_up_is_taken_only_when_the_powerups_rules_say_it_applies() {
    let save = tempfile::tempdir().unwrap();
    let (_assets, mut app) = arena(save.path());
    wait_for_the_rules(&mut app);
    let player = player(&mut app);
    let lying = |app: &mut App| {
        let mut query = app.world_mut().query_filtered::<Entity, With<Powerup>>();
        query.iter(app.world()).count()
    };
    let at = Position {
        x: player.x,
        y: player.y,
    };
    app.world_mut().spawn((at, Powerup::RapidFire));
    update_until(&mut app, "the first pick-up to be taken", |app| {
        lying(app) == 0
    });
    assert!(
        app.world().resource::<Boost>().secs_left > 0.0,
        "the gun is boosted"
    );
    update_until(&mut app, "the HUD to show the boost", |app| {
        board(app).boosted
    });

    app.world_mut().spawn((at, Powerup::RapidFire));
    run_frames(&mut app, 30);
    assert_eq!(lying(&mut app), 1, "no second boost while one runs");
    assert!(app.world().resource::<Boost>().secs_left > 0.0);
}

/// The game's own `EnemyKilled` messages reach `powerups` (a script
/// subscribed to a Bevy message type): the fifth kill drops a pick-up where
/// that enemy fell.
#[test]
fn every_fifth_enemy_killed_drops_a_pick_up_where_it_fell() {
    let save = tempfile::tempdir().unwrap();
    let (_assets, mut app) = arena(save.path());
    wait_for_the_rules(&mut app);
    let pickups = |app: &mut App| {
        let mut query = app.world_mut().query_filtered::<&Position, With<Powerup>>();
        query.iter(app.world()).copied().collect::<Vec<_>>()
    };
    for kill in 1..=5 {
        let at = Position {
            x: 100.0 + kill as f32,
            y: -50.0,
        };
        app.world_mut().write_message(EnemyKilled { at });
        app.update();
        if kill < 5 {
            assert!(pickups(&mut app).is_empty(), "no drop at kill {kill}");
        }
    }
    update_until(&mut app, "the drop", |app| !pickups(app).is_empty());
    assert_eq!(pickups(&mut app), [Position { x: 105.0, y: -50.0 }]);
}
