//! The sandbox: a badly behaved module (the `mischief` guest, whose
//! misbehaviour follows its file name) is interrupted, restarted and
//! finally quarantined, while a well-behaved one (`ticker`, one line per
//! 100 ms tick, one tick per frame here) keeps working every frame.

use bevy::diagnostic::DiagnosticsStore;
use bevy::prelude::*;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::sandbox::{FaultKind, SpawnedBy};
use bevy_hotwasm::{
    Compilation, Compiler, FailureStage, GuestLimits, Sandbox, ScriptQuarantined, WasmDiagnostics,
};
use hotwasm_test_support::*;

/// Quarantine messages, collected.
#[derive(Resource, Default)]
struct Quarantined(Vec<ScriptQuarantined>);

/// An app running `ticker` and `mischief` loaded as `<bad>.wasm`.
fn good_beside_bad(assets: &AssetDir, bad: &str, sandbox: Sandbox) -> (App, Entity, Entity) {
    let plugin = HotWasmPlugin {
        sandbox,
        ..unsigned_plugin()
    };
    good_beside_bad_in(assets, bad, plugin)
}

/// The same with all of the plugin's settings given.
fn good_beside_bad_in(
    assets: &AssetDir,
    bad: &str,
    plugin: HotWasmPlugin,
) -> (App, Entity, Entity) {
    assets.write("ticker.wasm", &guest_bytes("ticker"));
    assets.write(&format!("{bad}.wasm"), &guest_bytes("mischief"));
    let mut app = app_with_fake_watcher(assets, plugin);
    app.init_resource::<Quarantined>().add_systems(
        Last,
        |mut read: MessageReader<ScriptQuarantined>, mut seen: ResMut<Quarantined>| {
            seen.0.extend(read.read().cloned());
        },
    );
    let good = spawn_script(&mut app, "ticker.wasm");
    let bad = spawn_script(&mut app, &format!("{bad}.wasm"));
    update_until(&mut app, "the good module to start", |app| {
        generation(app, good).is_some()
    });
    (app, good, bad)
}

fn ticks(app: &App, good: Entity) -> usize {
    seen(app)
        .lines_of(good)
        .iter()
        .filter(|line| line.starts_with("tick"))
        .count()
}

fn quarantined(app: &App, bad: Entity) -> bool {
    runtime(app).script(bad).is_some_and(|s| s.is_quarantined())
}

/// Runs frames until `bad` is quarantined, checking that `good` ticked in
/// every one of them; returns the number of frames.
fn until_quarantined(app: &mut App, good: Entity, bad: Entity) -> usize {
    let mut frames = 0;
    while !quarantined(app, bad) {
        let before = ticks(app, good);
        app.update();
        frames += 1;
        assert!(frames < 500, "never quarantined");
        assert_eq!(
            ticks(app, good),
            before + 1,
            "the good module missed frame {frames}"
        );
    }
    frames
}

fn faults_of(app: &App, bad: Entity) -> Vec<(FailureStage, Option<FaultKind>)> {
    seen(app)
        .failed
        .iter()
        .filter(|failure| failure.entity == Some(bad))
        .map(|failure| (failure.stage, failure.fault.clone()))
        .collect()
}

#[test]
fn a_looping_handler_is_interrupted_restarted_then_quarantined() {
    let assets = AssetDir::new();
    let (mut app, good, bad) = good_beside_bad(&assets, "loop-handler", Sandbox::default());

    until_quarantined(&mut app, good, bad);

    let script = runtime(&app).script(bad).unwrap();
    assert_eq!(script.last_fault(), Some(&FaultKind::OutOfCpu));
    assert_eq!(script.stats().faults, 3);
    assert_eq!(script.stats().restarts, 2);
    assert_eq!(
        faults_of(&app, bad),
        vec![(FailureStage::Run, Some(FaultKind::OutOfCpu)); 3]
    );
    let quarantine = &app.world().resource::<Quarantined>().0;
    assert_eq!(quarantine.len(), 1);
    assert_eq!(
        (quarantine[0].script.entity, &quarantine[0].fault),
        (bad, &FaultKind::OutOfCpu)
    );

    // Quarantined: it stays so, and the good one goes on.
    let before = ticks(&app, good);
    run_frames(&mut app, 10);
    assert_eq!(ticks(&app, good), before + 10);
    assert_eq!(runtime(&app).script(bad).unwrap().stats().faults, 3);
    let good_stats = runtime(&app).script(good).unwrap().stats();
    assert!(good_stats.calls > 10 && good_stats.faults == 0);
    assert!(good_stats.last_frame_time > std::time::Duration::ZERO);
    let diagnostics = app.world().resource::<DiagnosticsStore>();
    let quarantined = diagnostics.get(&WasmDiagnostics::QUARANTINED).unwrap();
    assert_eq!(quarantined.value(), Some(1.0));
    let guest_time = diagnostics.get(&WasmDiagnostics::GUEST_TIME).unwrap();
    assert!(guest_time.value().is_some_and(|ms| ms > 0.0));
}

#[test]
fn a_looping_init_is_interrupted_at_every_start() {
    let assets = AssetDir::new();
    // Each start spends a call's 200 ms, over the frame's budget, which
    // would put the good one off to the next frame (tested further down).
    let sandbox = Sandbox {
        frame_budget: None,
        ..default()
    };
    let (mut app, good, bad) = good_beside_bad(&assets, "loop-init", sandbox);

    until_quarantined(&mut app, good, bad);

    assert_eq!(generation(&app, bad), None);
    assert_eq!(
        faults_of(&app, bad),
        vec![(FailureStage::Init, Some(FaultKind::OutOfCpu)); 3]
    );
    // Three starts: the first and two retries, each counted.
    let stats = runtime(&app).script(bad).unwrap().stats().clone();
    assert_eq!((stats.faults, stats.restarts), (3, 2), "{stats:?}");
}

#[test]
fn a_memory_bomb_stops_at_the_limit() {
    drop(memory_bomb_under_16_mib(&AssetDir::new()));
}

/// Runs `grow` beside `ticker` with the game's memory limit at 16 MiB
/// until it is quarantined, and checks it faulted at that limit each time.
fn memory_bomb_under_16_mib(assets: &AssetDir) -> App {
    let sandbox = with_limits(GuestLimits {
        max_memory_bytes: 16 * 1024 * 1024,
        ..default()
    });
    let (mut app, good, bad) = good_beside_bad(assets, "grow", sandbox);

    until_quarantined(&mut app, good, bad);

    assert_eq!(
        faults_of(&app, bad),
        vec![(FailureStage::Run, Some(FaultKind::OutOfMemory)); 3]
    );
    let cause = &seen(&app).failed[0].cause;
    assert!(cause.contains("memory limit of 16777216 bytes"), "{cause}");
    app
}

/// Writes `<file>.meta` beside a module: the loader's settings with
/// `limits` (a `MetaLimits` in RON).
fn write_meta_limits(assets: &AssetDir, file: &str, limits: &str) {
    let meta = format!(
        r#"(
            meta_format_version: "1.0",
            asset: Load(
                loader: "bevy_hotwasm::asset::WasmModuleLoader",
                settings: (limits: Some(({limits}))),
            ),
        )"#
    );
    assets.write(&format!("{file}.meta"), meta.as_bytes());
}

#[test]
fn a_meta_file_asking_for_less_gets_less() {
    let assets = AssetDir::new();
    write_meta_limits(&assets, "grow.wasm", "max_memory_bytes: Some(4194304)");
    let (mut app, good, bad) = good_beside_bad(&assets, "grow", Sandbox::default());

    update_until(&mut app, "the first fault", |app| {
        !faults_of(app, bad).is_empty()
    });

    assert_eq!(faults_of(&app, bad)[0].1, Some(FaultKind::OutOfMemory));
    let cause = &seen(&app).failed[0].cause;
    assert!(cause.contains("memory limit of 4194304 bytes"), "{cause}");
    assert!(ticks(&app, good) > 0);
}

#[test]
fn a_meta_file_asking_for_more_memory_is_held_to_the_games_limit() {
    let assets = AssetDir::new();
    write_meta_limits(&assets, "grow.wasm", "max_memory_bytes: Some(1073741824)");
    let app = memory_bomb_under_16_mib(&assets);

    let module = app
        .world()
        .resource::<Assets<WasmModule>>()
        .iter()
        .find(|(_, module)| module.path() == "modules/grow.wasm")
        .map(|(_, module)| *module.limits());
    assert_eq!(
        module.map(|limits| limits.max_memory_bytes),
        Some(16 * 1024 * 1024)
    );
}

#[test]
fn a_meta_file_asking_for_no_cpu_budget_is_still_interrupted() {
    let assets = AssetDir::new();
    write_meta_limits(
        &assets,
        "loop-handler.wasm",
        "cpu_budget_ms: Some(18446744073709551615), fuel_per_call: None",
    );
    let (mut app, good, bad) = good_beside_bad(&assets, "loop-handler", Sandbox::default());

    until_quarantined(&mut app, good, bad);

    assert_eq!(
        faults_of(&app, bad),
        vec![(FailureStage::Run, Some(FaultKind::OutOfCpu)); 3]
    );
}

#[test]
fn a_meta_file_asking_for_more_keys_or_entities_is_held_to_the_games_totals() {
    let assets = AssetDir::new();
    write_meta_limits(
        &assets,
        "kv-flood.wasm",
        "max_kv_keys: Some(100000000), max_kv_keys_per_bucket: Some(100000000)",
    );
    let limits = GuestLimits {
        max_kv_keys_per_bucket: 2_500,
        ..default()
    };
    let (mut app, _, flood) = good_beside_bad(&assets, "kv-flood", with_limits(limits));
    run_ticks(&mut app, flood, 5);
    assert_eq!(key_count(&app, "flood"), 2_500, "the game's total holds");

    let assets = AssetDir::new();
    write_meta_limits(
        &assets,
        "spawn-flood.wasm",
        "max_spawned_entities: Some(100000000)",
    );
    let limits = GuestLimits {
        max_spawned_entities: 2_500,
        ..default()
    };
    let (mut app, _, flood) = good_beside_bad(&assets, "spawn-flood", with_limits(limits));
    run_ticks(&mut app, flood, 5);
    assert_eq!(spawned_by(&mut app, "modules/spawn-flood.wasm"), 2_500);
}

#[test]
fn the_games_no_cpu_limit_runs_guests_without_a_deadline() {
    let assets = AssetDir::new();
    let sandbox = with_limits(GuestLimits {
        cpu_budget_ms: None,
        ..default()
    });
    let (mut app, good, fine) = good_beside_bad(&assets, "fine", sandbox);
    update_until(&mut app, "the second module to start", |app| {
        generation(app, fine).is_some()
    });
    let before = (ticks(&app, good), seen(&app).lines_of(fine).len());

    run_frames(&mut app, 50);

    assert_eq!(ticks(&app, good), before.0 + 50, "no tick interrupted");
    assert!(seen(&app).lines_of(fine).len() > before.1);
    for entity in [good, fine] {
        assert_eq!(runtime(&app).script(entity).unwrap().stats().faults, 0);
    }
}

#[test]
fn the_game_gives_one_module_more_in_code() {
    let assets = AssetDir::new();
    let mut sandbox = with_limits(GuestLimits {
        max_memory_bytes: 4 * 1024 * 1024,
        ..default()
    });
    let more = GuestLimits {
        max_memory_bytes: 8 * 1024 * 1024,
        ..default()
    };
    sandbox
        .module_limits
        .insert("modules/grow.wasm".into(), more);
    let (mut app, _, bad) = good_beside_bad(&assets, "grow", sandbox);

    update_until(&mut app, "the first fault", |app| {
        !faults_of(app, bad).is_empty()
    });

    let cause = &seen(&app).failed[0].cause;
    assert!(cause.contains("memory limit of 8388608 bytes"), "{cause}");
}

#[test]
fn deep_recursion_and_traps_are_faults_of_their_kind() {
    let assets = AssetDir::new();
    let (mut app, _, recurse) = good_beside_bad(&assets, "recurse", Sandbox::default());
    update_until(&mut app, "the stack overflow", |app| {
        !faults_of(app, recurse).is_empty()
    });
    assert_eq!(
        faults_of(&app, recurse)[0].1,
        Some(FaultKind::StackOverflow)
    );

    let assets = AssetDir::new();
    let (mut app, _, trap) = good_beside_bad(&assets, "trap", Sandbox::default());
    update_until(&mut app, "the trap", |app| !faults_of(app, trap).is_empty());
    let Some(FaultKind::Trap { message, backtrace }) = faults_of(&app, trap)[0].1.clone() else {
        panic!("{:?}", faults_of(&app, trap));
    };
    assert!(message.contains("unreachable"), "{message}");
    // Guests keep their name section, so the frames name guest functions.
    let backtrace = backtrace.expect("wasmtime gives a guest backtrace");
    assert!(
        backtrace.contains("mischief::trap_on_purpose"),
        "{backtrace}"
    );
}

/// Modules compiled by the baseline compiler (Winch) are held to the same
/// limits: a runaway loop is interrupted, a deep recursion and a trap are
/// faults of their kind, and the good module keeps working.
#[test]
fn the_baseline_compiler_keeps_every_guard() {
    let baseline = || HotWasmPlugin {
        compilation: Compilation {
            compiler: Compiler::Baseline,
            ..default()
        },
        ..unsigned_plugin()
    };
    let expected = [
        ("loop-handler", FaultKind::OutOfCpu),
        ("recurse", FaultKind::StackOverflow),
    ];
    for (bad_name, fault) in expected {
        let assets = AssetDir::new();
        let (mut app, good, bad) = good_beside_bad_in(&assets, bad_name, baseline());
        until_quarantined(&mut app, good, bad);
        assert_eq!(
            runtime(&app).script(bad).unwrap().last_fault(),
            Some(&fault),
            "{bad_name}"
        );
    }
    let assets = AssetDir::new();
    let (mut app, _, trap) = good_beside_bad_in(&assets, "trap", baseline());
    update_until(&mut app, "the trap", |app| !faults_of(app, trap).is_empty());
    assert!(
        matches!(&faults_of(&app, trap)[0].1, Some(FaultKind::Trap { message, .. }) if message.contains("unreachable")),
        "{:?}",
        faults_of(&app, trap)
    );
}

#[test]
fn fuel_gives_a_deterministic_budget() {
    let assets = AssetDir::new();
    let sandbox = Sandbox {
        epoch_interruption: false,
        fuel: true,
        limits: GuestLimits {
            fuel_per_call: Some(50_000_000),
            ..default()
        },
        ..default()
    };
    let (mut app, good, bad) = good_beside_bad(&assets, "loop-handler", sandbox);

    until_quarantined(&mut app, good, bad);

    assert_eq!(
        runtime(&app).script(bad).unwrap().last_fault(),
        Some(&FaultKind::OutOfFuel)
    );
    let good_stats = runtime(&app).script(good).unwrap().stats();
    assert!(good_stats.last_frame_fuel > 0 && good_stats.average_frame_fuel() > 0);
}

#[test]
fn the_quarantine_lifts_when_the_module_is_fixed_or_released() {
    let assets = AssetDir::new();
    let (mut app, good, bad) = good_beside_bad(&assets, "loop-handler", Sandbox::default());
    until_quarantined(&mut app, good, bad);

    // Released by the host: it runs (and loops) again.
    assert!(app.world_mut().resource_mut::<WasmRuntime>().release(bad));
    update_until(&mut app, "the restart", |app| {
        generation(app, bad).is_some()
    });
    update_until(&mut app, "the next fault", |app| {
        faults_of(app, bad).len() == 4
    });

    // Fixed: a good module saved over it runs, out of quarantine.
    until_quarantined(&mut app, good, bad);
    assets.save(&app, "loop-handler.wasm", &guest_bytes("counter"));
    update_until(&mut app, "the fixed module", |app| {
        generation(app, bad).is_some_and(|generation| generation > 1)
    });
    assert!(!quarantined(&app, bad));
}

#[test]
fn floods_are_cut_at_the_per_call_quotas() {
    let assets = AssetDir::new();
    let (mut app, good, logs) = good_beside_bad(&assets, "log-flood", Sandbox::default());
    assets.write("message-flood.wasm", &guest_bytes("mischief"));
    let messages = spawn_script(&mut app, "message-flood.wasm");
    update_until(&mut app, "both floods to run", |app| {
        generation(app, messages).is_some()
            && runtime(app).script(messages).unwrap().stats().frames >= 2
            && runtime(app).script(logs).unwrap().stats().frames >= 2
    });
    let flood_lines = |app: &App| {
        seen(app)
            .lines_of(logs)
            .iter()
            .filter(|line| line.starts_with("flood"))
            .count()
    };
    let (start, lines_before) = (seen(&app).sent.len(), flood_lines(&app));
    let before = ticks(&app, good);
    app.update();

    // Each flood tries 10 000 a tick; the default quota keeps 1 000.
    assert_eq!(flood_lines(&app) - lines_before, 1000);
    assert_eq!(seen(&app).sent.len() - start, 1000);
    for flooder in [logs, messages] {
        let script = runtime(&app).script(flooder).unwrap();
        assert!(
            script.stats().refused_host_calls >= 9000,
            "{:?}",
            script.stats()
        );
        assert_eq!(script.stats().faults, 0, "a refused request is not a fault");
    }
    assert_eq!(ticks(&app, good), before + 1);
}

/// Every key of `bucket`, page by page.
fn key_count(app: &App, bucket: &str) -> usize {
    let store = app.world().resource::<KvStore>();
    let (mut count, mut cursor) = (0, None);
    loop {
        let page = store.list_keys(bucket, cursor).unwrap();
        count += page.keys.len();
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return count,
        }
    }
}

#[test]
fn a_key_value_set_flood_is_cut_at_the_write_quota() {
    let assets = AssetDir::new();
    // Totals out of the way: this is about one call.
    let limits = GuestLimits {
        max_kv_keys: u64::MAX,
        max_kv_keys_per_bucket: u64::MAX,
        ..default()
    };
    let (mut app, good, flood) = good_beside_bad(&assets, "kv-flood", with_limits(limits));
    update_until(&mut app, "the flood to run", |app| {
        runtime(app).script(flood).unwrap().stats().frames >= 2
    });
    let keys = key_count(&app, "flood");
    let refused = runtime(&app)
        .script(flood)
        .unwrap()
        .stats()
        .refused_host_calls;
    let before = ticks(&app, good);
    app.update();

    // 2 000 sets a tick; the default quota keeps 1 000 key-value writes.
    assert_eq!(key_count(&app, "flood") - keys, 1000);
    let script = runtime(&app).script(flood).unwrap();
    assert_eq!(script.stats().refused_host_calls - refused, 1000);
    assert_eq!(script.stats().faults, 0);
    assert_eq!(ticks(&app, good), before + 1);
}

/// A sandbox whose modules have `limits`.
fn with_limits(limits: GuestLimits) -> Sandbox {
    Sandbox {
        limits,
        ..default()
    }
}

/// Runs `count` ticks (one per frame here) of the script on `entity`,
/// after waiting for it to start.
fn run_ticks(app: &mut App, entity: Entity, count: usize) {
    update_until(app, "the script to start", |app| {
        generation(app, entity).is_some()
    });
    run_frames(app, count);
}

/// The last line `entity` logged that starts with `refused: `.
fn last_refusal(app: &App, entity: Entity) -> String {
    let lines = seen(app).lines_of(entity);
    let last = lines.iter().rfind(|line| line.starts_with("refused: "));
    last.map_or_else(String::new, |line| line.to_string())
}

#[test]
fn a_key_flood_stops_at_the_modules_key_total_and_deletes_give_room_back() {
    let assets = AssetDir::new();
    let limits = GuestLimits {
        max_kv_keys_per_bucket: 2_500,
        ..default()
    };
    let (mut app, _, flood) = good_beside_bad(&assets, "kv-flood", with_limits(limits));
    // 1 000 new keys a tick get past the per-call quota.
    run_ticks(&mut app, flood, 5);
    assert_eq!(key_count(&app, "flood"), 2_500, "the store stops growing");
    let store = app.world().resource::<KvStore>();
    assert_eq!(store.kept_by("modules/kv-flood.wasm").keys, 2_500);
    let refusal = last_refusal(&app, flood);
    assert!(
        refusal.contains("modules/kv-flood.wasm")
            && refusal.contains("2500 keys in one bucket (GuestLimits::max_kv_keys_per_bucket)"),
        "{refusal}"
    );
    let script = runtime(&app).script(flood).unwrap();
    assert!(script.stats().refused_host_calls >= 2_500, "counted");
    assert_eq!(script.stats().faults, 0, "refused, not faulted");

    // The game deletes 100 of them: room for 100 more, no more.
    let keys = app
        .world()
        .resource::<KvStore>()
        .list_keys("flood", None)
        .unwrap();
    let mut store = app.world_mut().resource_mut::<KvStore>();
    for key in &keys.keys[..100] {
        store.delete("flood", key).unwrap();
    }
    assert_eq!(store.kept_by("modules/kv-flood.wasm").keys, 2_400);
    run_ticks(&mut app, flood, 2);
    assert_eq!(key_count(&app, "flood"), 2_500);
}

#[test]
fn a_value_hoard_stops_at_the_modules_byte_total() {
    let assets = AssetDir::new();
    let limits = GuestLimits {
        max_kv_bytes: 1024 * 1024,
        ..default()
    };
    let (mut app, _, hoard) = good_beside_bad(&assets, "kv-hoard", with_limits(limits));
    // 8 values of 64 KiB a tick: 16 fit in 1 MiB.
    run_ticks(&mut app, hoard, 4);
    assert_eq!(key_count(&app, "hoard"), 16);
    let store = app.world().resource::<KvStore>();
    assert_eq!(store.kept_by("modules/kv-hoard.wasm").bytes, 1024 * 1024);
    let refusal = last_refusal(&app, hoard);
    assert!(
        refusal.contains("1048576 bytes in all (GuestLimits::max_kv_bytes)"),
        "{refusal}"
    );
}

/// Entities alive that `module` spawned.
fn spawned_by(app: &mut App, module: &str) -> usize {
    let mut query = app.world_mut().query::<&SpawnedBy>();
    let world = app.world();
    query
        .iter(world)
        .filter(|spawned| &*spawned.module == module)
        .count()
}

#[test]
fn a_spawn_flood_stops_at_the_modules_entity_total_and_despawns_give_it_back() {
    let assets = AssetDir::new();
    let limits = GuestLimits {
        max_spawned_entities: 2_500,
        ..default()
    };
    let (mut app, _, flood) = good_beside_bad(&assets, "spawn-flood", with_limits(limits));
    let module = "modules/spawn-flood.wasm";
    // 1 000 spawns a tick, within the per-call quota.
    run_ticks(&mut app, flood, 5);
    assert_eq!(spawned_by(&mut app, module), 2_500);
    let refusal = last_refusal(&app, flood);
    assert!(
        refusal.contains(module)
            && refusal.contains(
                "2500 entities alive that it spawned (GuestLimits::max_spawned_entities)"
            ),
        "{refusal}"
    );

    // The game despawns 700 of them: the module gets its quota back.
    let mut query = app.world_mut().query_filtered::<Entity, With<SpawnedBy>>();
    let doomed: Vec<Entity> = query.iter(app.world()).take(700).collect();
    for entity in doomed {
        app.world_mut().despawn(entity);
    }
    assert_eq!(spawned_by(&mut app, module), 1_800);
    run_ticks(&mut app, flood, 2);
    assert_eq!(spawned_by(&mut app, module), 2_500);
    assert_eq!(runtime(&app).script(flood).unwrap().stats().faults, 0);
}

#[test]
fn a_guest_that_despawns_every_entity_it_finds_breaks_nothing() {
    let assets = AssetDir::new();
    let (mut app, good, bad) = good_beside_bad(&assets, "despawn-all", Sandbox::default());
    update_until(&mut app, "the despawner to run", |app| {
        !seen(app).lines_of(bad).is_empty()
    });
    let report = seen(&app).lines_of(bad)[0].to_owned();
    let refused: usize = report
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    // Every resource's entity and the other script's entity were refused.
    let resources = app.world().resource_entities().iter().count();
    assert!(refused > resources, "{report} with {resources} resources");

    for _ in 0..5 {
        let before = ticks(&app, good);
        app.update();
        assert_eq!(
            ticks(&app, good),
            before + 1,
            "the other script keeps running"
        );
    }
    assert!(app.world().contains_resource::<KvStore>());
    assert!(app.world().contains_resource::<Time<Virtual>>());
    // It despawned its own entity, which ends its script.
    assert!(app.world().get_entity(bad).is_err());
    assert!(runtime(&app).script(bad).is_none());
}

/// `count` scripts of `busy` (a million spins every tick, one tick a frame
/// here) under `sandbox`, once every one has started.
fn busy_scripts(assets: &AssetDir, count: usize, sandbox: Sandbox) -> (App, Vec<Entity>) {
    assets.write("busy.wasm", &guest_bytes("mischief"));
    let plugin = HotWasmPlugin {
        sandbox,
        ..unsigned_plugin()
    };
    let mut app = app_with_fake_watcher(assets, plugin);
    let busy: Vec<Entity> = (0..count)
        .map(|_| spawn_script(&mut app, "busy.wasm"))
        .collect();
    update_until(&mut app, "every busy script to start", |app| {
        busy.iter().all(|&entity| generation(app, entity).is_some())
    });
    (app, busy)
}

/// How many ticks each of `scripts` has run.
fn busy_ticks(app: &App, scripts: &[Entity]) -> Vec<usize> {
    let seen = seen(app);
    scripts
        .iter()
        .map(|&entity| seen.lines_of(entity).len())
        .collect()
}

#[test]
fn the_frame_budget_bounds_every_frame_and_puts_scripts_off_in_turn() {
    let assets = AssetDir::new();
    let budget = std::time::Duration::from_millis(10);
    let call_budget = std::time::Duration::from_millis(50);
    let sandbox = Sandbox {
        frame_budget: Some(budget),
        limits: GuestLimits {
            cpu_budget_ms: Some(call_budget.as_millis() as u64),
            ..default()
        },
        ..default()
    };
    let (mut app, busy) = busy_scripts(&assets, 200, sandbox);

    let mut frames = 0;
    let mut postponed = 0;
    while busy_ticks(&app, &busy).into_iter().min() < Some(3) {
        app.update();
        frames += 1;
        assert!(frames < 2_000, "some script starved");
        let runtime = runtime(&app);
        let spent = runtime.last_frame_guest_time();
        assert!(spent < budget + call_budget, "frame {frames}: {spent:?}");
        postponed += runtime.last_frame_postponed();
        let diagnostics = app.world().resource::<DiagnosticsStore>();
        let measured = diagnostics.get(&WasmDiagnostics::POSTPONED).unwrap();
        assert_eq!(
            measured.value(),
            Some(runtime.last_frame_postponed() as f64),
            "frame {frames}: the diagnostic measures every frame"
        );
        let ticks = busy_ticks(&app, &busy);
        let (least, most) = (ticks.iter().min(), ticks.iter().max());
        assert!(
            most.zip(least)
                .is_some_and(|(most, least)| most - least <= 1),
            "frame {frames}: scripts run in turn, none twice before another once: {least:?}..{most:?}"
        );
    }
    assert!(postponed > 0, "the budget put scripts off");
    let stats: u64 = busy
        .iter()
        .map(|&entity| runtime(&app).script(entity).unwrap().stats().postponed)
        .sum();
    assert_eq!(stats, postponed, "each put-off call counted on its script");
}

#[test]
fn without_a_frame_budget_every_script_runs_every_frame() {
    let assets = AssetDir::new();
    let sandbox = Sandbox {
        frame_budget: None,
        ..default()
    };
    let (mut app, busy) = busy_scripts(&assets, 50, sandbox);
    let before = busy_ticks(&app, &busy);

    run_frames(&mut app, 5);

    let after = busy_ticks(&app, &busy);
    assert!(
        before
            .iter()
            .zip(&after)
            .all(|(before, after)| after - before == 5)
    );
    assert_eq!(runtime(&app).last_frame_postponed(), 0);
}

/// This process's resident memory, in bytes (Linux's `/proc/self/statm`).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn key_value_handles_stop_at_their_bounds_and_host_memory_stays_flat() {
    // Resident memory is the whole process's: measured with no other test beside it.
    if !alone_in_a_process("key_value_handles_stop_at_their_bounds_and_host_memory_stays_flat") {
        return;
    }
    let assets = AssetDir::new();
    assets.write("cas-handles.wasm", &guest_bytes("mischief"));
    let (mut app, _, buckets) = good_beside_bad(&assets, "kv-handles", Sandbox::default());
    let swaps = spawn_script(&mut app, "cas-handles.wasm");
    run_ticks(&mut app, swaps, 100);
    let before = resident_bytes();

    run_frames(&mut app, 900);

    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 8 * 1024 * 1024, "the host grew {grown} bytes");
    let refusal = last_refusal(&app, buckets);
    assert!(
        refusal.contains("64 buckets already open, the most one instance may hold"),
        "{refusal}"
    );
    let refusal = last_refusal(&app, swaps);
    assert!(
        refusal.contains("16 compare-and-swap handles already held, the most one instance"),
        "{refusal}"
    );
    for entity in [buckets, swaps] {
        let stats = runtime(&app).script(entity).unwrap().stats();
        assert_eq!(stats.faults, 0, "refused, not faulted");
        assert!(stats.refused_host_calls >= 900 * 84, "{stats:?}");
    }
}
