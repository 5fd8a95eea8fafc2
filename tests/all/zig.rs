//! Guests written in Zig (`guests/zig-*`, built by
//! `scripts/build-guests.sh` from the C bindings `wit-bindgen c` made of
//! `wit/`): loaded, hot-reloaded and isolated exactly like the Rust
//! guests, with the same messages and the same state as their Rust twin
//! (`counter`); they talk to Rust guests. The Zig `ticker`'s twin runs
//! every test of `tests/scheduler.rs`.

use bevy::prelude::*;
use bevy_hotwasm::FailureStage;
use bevy_hotwasm::sandbox::FaultKind;
use hotwasm_test_support::*;

/// The lines `entity` logged that count starts.
fn starts(app: &App, entity: Entity) -> Vec<String> {
    (seen(app).lines_of(entity).into_iter())
        .filter(|line| line.starts_with("starts="))
        .map(str::to_owned)
        .collect()
}

/// Saves `bytes` over `modules/counter.wasm` and runs frames until the
/// runtime has swapped it in.
fn swap_in(app: &mut App, assets: &AssetDir, bytes: &[u8]) {
    let before = seen(app).reloaded.len();
    assets.save(app, "counter.wasm", bytes);
    update_until(app, "the saved module to run", |app| {
        seen(app).reloaded.len() > before
    });
}

#[test]
fn a_zig_guest_starts_and_keeps_its_count_across_a_hot_reload() {
    let zig = guest_bytes("zig_hello");
    let (assets, mut app, entities) = start_scripts_with_fake_watcher("counter.wasm", &zig, 2);
    for &entity in &entities {
        assert_eq!(starts(&app, entity), ["starts=1"]);
    }
    swap_in(&mut app, &assets, &rebuilt(&zig, 1));
    for &entity in &entities {
        assert_eq!(starts(&app, entity), ["starts=1", "starts=2"]);
        assert_eq!(generation(&app, entity), Some(2));
    }
    assert!(seen(&app).failed.is_empty(), "{:?}", seen(&app).failed);
}

#[test]
fn the_zig_guest_and_its_rust_twin_replace_each_other_and_keep_the_count() {
    let (assets, mut app, entities) =
        start_scripts_with_fake_watcher("counter.wasm", &guest_bytes("counter"), 1);
    let entity = entities[0];
    swap_in(&mut app, &assets, &guest_bytes("zig_hello"));
    swap_in(&mut app, &assets, &guest_bytes("counter"));
    assert_eq!(
        starts(&app, entity),
        ["starts=1", "starts=2", "starts=3"],
        "Rust, then Zig, then Rust again, one count"
    );
}

#[test]
fn a_zig_guest_that_traps_is_isolated_like_any_other() {
    let assets = AssetDir::new();
    assets.write("counter.wasm", &guest_bytes("counter"));
    assets.write("trapping.wasm", &guest_bytes("zig_hello_trapping"));
    let mut app = app_with_fake_watcher(&assets, unsigned_plugin());
    let good = spawn_script(&mut app, "counter.wasm");
    let bad = spawn_script(&mut app, "trapping.wasm");
    update_until(&mut app, "the trapping guest to be quarantined", |app| {
        runtime(app)
            .script(bad)
            .is_some_and(|script| script.is_quarantined())
    });
    let failures: Vec<_> = (seen(&app).failed.iter())
        .filter(|failure| failure.entity == Some(bad))
        .collect();
    assert!(
        failures.len() > 1,
        "restarted before quarantine: {failures:?}"
    );
    for failure in &failures {
        assert_eq!(failure.stage, FailureStage::Init);
        assert_eq!(&*failure.path, "modules/trapping.wasm");
        assert!(
            matches!(&failure.fault, Some(FaultKind::Trap { message, .. }) if message.contains("unreachable")),
            "{failure}"
        );
    }
    // Each try logged its start before trapping; the good guest ran once.
    assert_eq!(starts(&app, bad).len(), failures.len());
    update_until(&mut app, "the good guest to log its start", |app| {
        !starts(app, good).is_empty()
    });
    assert_eq!(starts(&app, good), ["starts=1"]);
    assert_eq!(generation(&app, good), Some(1));
}

#[test]
fn the_zig_tickers_ping_is_answered_by_a_rust_guest() {
    let assets = AssetDir::new();
    assets.write("echo.wasm", &guest_bytes("echo"));
    assets.write("ticker.wasm", &guest_bytes("zig_ticker"));
    let mut app = app_with_fake_watcher(&assets, unsigned_plugin());
    let echo = spawn_script(&mut app, "echo.wasm");
    update_until(&mut app, "echo to start", |app| {
        generation(app, echo).is_some()
    });
    let ticker = spawn_script(&mut app, "ticker.wasm");
    update_until(&mut app, "echo to answer the ping", |app| {
        seen(app).sent.len() == 2
    });
    assert_eq!(
        seen(&app).lines_of(echo),
        [format!("ping 1 from entity {ticker}: from ticker")]
    );
    let sent: Vec<(Entity, &str, &[u8])> = (seen(&app).sent.iter())
        .map(|m| (m.from.entity, m.topic.as_str(), m.payload.as_slice()))
        .collect();
    assert_eq!(
        sent,
        [
            (ticker, "ping", &b"from ticker"[..]),
            (echo, "pong", &b"from ticker"[..]),
        ]
    );
}

#[test]
fn a_zig_error_is_the_results_error_and_the_old_generation_keeps_running() {
    // This one saves "abc": not a count the Zig guest takes.
    let saves_abc = script_wat("", ZEROES, SAVES_ABC, "");
    let (assets, mut app, entities) =
        start_scripts_with_fake_watcher("counter.wasm", &saves_abc, 1);
    let entity = entities[0];
    let before = seen(&app).failed.len();
    assets.save(&app, "counter.wasm", &guest_bytes("zig_hello"));
    update_until(&mut app, "the Zig guest to refuse the state", |app| {
        seen(app).failed.len() > before
    });
    let failure = seen(&app).failed.last().unwrap();
    assert_eq!(failure.stage, FailureStage::Restore, "{failure}");
    assert!(failure.cause.contains("StateNotEightBytes"), "{failure}");
    assert_eq!(failure.fault, None, "an error returned, not a trap");
    assert_eq!(
        generation(&app, entity),
        Some(1),
        "the old generation runs on"
    );
}
