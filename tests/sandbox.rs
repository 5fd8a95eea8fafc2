//! The sandbox: a badly behaved module (the `mischief` guest, whose
//! misbehaviour follows its file name) is interrupted, restarted and
//! finally quarantined, while a well-behaved one (`ticker`, one line per
//! 100 ms tick, one tick per frame here) keeps working every frame.

mod common;

use bevy::diagnostic::DiagnosticsStore;
use bevy::prelude::*;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::{
    Compilation, Compiler, FailureStage, FaultKind, GuestLimits, Sandbox, ScriptQuarantined,
    SpawnedBy, WasmDiagnostics,
};
use common::*;

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
    let (mut app, good, bad) = good_beside_bad(&assets, "loop-init", Sandbox::default());

    until_quarantined(&mut app, good, bad);

    assert_eq!(generation(&app, bad), None);
    assert_eq!(
        faults_of(&app, bad),
        vec![(FailureStage::Init, Some(FaultKind::OutOfCpu)); 3]
    );
}

#[test]
fn a_memory_bomb_stops_at_the_limit() {
    let assets = AssetDir::new();
    let sandbox = Sandbox {
        limits: GuestLimits {
            max_memory_bytes: 16 * 1024 * 1024,
            ..default()
        },
        ..default()
    };
    let (mut app, good, bad) = good_beside_bad(&assets, "grow", sandbox);

    until_quarantined(&mut app, good, bad);

    assert_eq!(
        faults_of(&app, bad),
        vec![(FailureStage::Run, Some(FaultKind::OutOfMemory)); 3]
    );
    let cause = &seen(&app).failed[0].cause;
    assert!(cause.contains("memory limit of 16777216 bytes"), "{cause}");
}

#[test]
fn a_module_limit_in_its_meta_file_replaces_the_plugins() {
    let assets = AssetDir::new();
    assets.write(
        "grow.wasm.meta",
        br#"(
            meta_format_version: "1.0",
            asset: Load(
                loader: "bevy_hotwasm::asset::WasmModuleLoader",
                settings: (limits: Some((max_memory_bytes: 4194304))),
            ),
        )"#,
    );
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
