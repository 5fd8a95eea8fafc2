//! The debug panel's functions, drawn and clicked with `egui_kittest` (no
//! window), over a headless app running real guests: each tab shows what
//! the runtime knows, and its buttons act on the game.

mod common;

use bevy::prelude::*;
use bevy_hotwasm::debug_panel::{
    HotWasmPanelPlugin, PanelState, PanelTab, ui_for_console, ui_for_instances, ui_for_modules,
    ui_for_panel, ui_for_time,
};
use common::*;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// An app running `modules/<file>` on one entity, with the panel's state
/// and actions (no window), once the script has started or failed to.
fn app_running(file: &str, bytes: &[u8]) -> (AssetDir, App, Entity) {
    let assets = AssetDir::new();
    assets.write(file, bytes);
    let mut app = game_with_fake_watcher(&assets, unsigned_plugin(), |app| {
        app.add_plugins(HotWasmPanelPlugin {
            window: false,
            ..default()
        });
    });
    let entity = spawn_script(&mut app, file);
    update_until(&mut app, "the script to start or fail", |app| {
        runtime(app)
            .script(entity)
            .is_some_and(|script| script.generation().is_some() || script.stats().faults > 0)
    });
    (assets, app, entity)
}

/// A harness drawing `ui` over the app, which it owns.
fn harness(app: App, ui: fn(&mut World, &mut egui::Ui)) -> Harness<'static, App> {
    Harness::builder()
        .with_size(egui::vec2(900.0, 500.0))
        .build_ui_state(
            move |egui_ui, app: &mut App| ui(app.world_mut(), egui_ui),
            app,
        )
}

#[test]
fn the_modules_tab_lists_modules_and_reloads_one() {
    let counter = guest_bytes("counter");
    let (assets, app, entity) = app_running("counter.wasm", &counter);
    let mut harness = harness(app, ui_for_modules);
    harness.run();
    harness.get_by_label("modules/counter.wasm");

    // A new build the watcher did not report (a reload of the same bytes
    // is no new generation).
    assets.write("counter.wasm", &rebuilt(&counter, 1));

    harness.get_by_label("Reload modules/counter.wasm").click();
    harness.run();
    update_until(harness.state_mut(), "the reloaded module to run", |app| {
        generation(app, entity) == Some(2)
    });
    assert_eq!(
        seen(harness.state()).lines_of(entity),
        ["starts=1", "starts=2"]
    );
}

#[test]
fn a_quarantined_script_is_released_from_the_instances_tab() {
    let (_assets, mut app, entity) = app_running("broken.wasm", &trapping_init());
    update_until(&mut app, "the script to be quarantined", |app| {
        runtime(app).script(entity).unwrap().is_quarantined()
    });
    let faults = runtime(&app).script(entity).unwrap().stats().faults;
    let mut harness = harness(app, ui_for_instances);
    harness.run();
    harness.get_by_label("quarantined");

    harness.get_by_label(&format!("Release {entity}")).click();
    harness.run();
    update_until(
        harness.state_mut(),
        "the released script to run again",
        |app| runtime(app).script(entity).unwrap().stats().faults > faults,
    );
}

#[test]
fn the_console_shows_guest_lines_and_filters_them() {
    let (_assets, app, _) = app_running("hello.wasm", &guest_bytes("hello"));
    let mut harness = harness(app, ui_for_console);
    harness.state_mut().update();
    harness.run();
    harness.get_by_label_contains("Hello from modules/hello.wasm");

    harness
        .state_mut()
        .world_mut()
        .resource_mut::<PanelState>()
        .console_filter = "no line says this".to_owned();
    harness.run();
    assert!(harness.query_by_label_contains("Hello from").is_none());

    harness
        .state_mut()
        .world_mut()
        .resource_mut::<PanelState>()
        .console_filter
        .clear();
    harness.get_by_label("Clear").click();
    harness.run();
    harness.state_mut().update();
    harness.run();
    assert!(harness.query_by_label_contains("Hello from").is_none());
}

#[test]
fn the_time_tab_pauses_and_resumes_the_game() {
    let (_assets, app, _) = app_running("counter.wasm", &guest_bytes("counter"));
    let mut harness = harness(app, ui_for_time);
    harness.run();
    harness.get_by_label("Pause").click();
    harness.run();
    harness.state_mut().update();
    assert!(
        harness
            .state()
            .world()
            .resource::<Time<Virtual>>()
            .is_paused()
    );

    harness.run();
    harness.get_by_label("Resume").click();
    harness.run();
    harness.state_mut().update();
    assert!(
        !harness
            .state()
            .world()
            .resource::<Time<Virtual>>()
            .is_paused()
    );
}

#[test]
fn the_panel_switches_tabs() {
    let (_assets, app, entity) = app_running("counter.wasm", &guest_bytes("counter"));
    let mut harness = harness(app, ui_for_panel);
    harness.run();
    harness.get_by_label("Reload modules/counter.wasm");

    harness.get_by_label("Instances").click();
    harness.run();
    let tab = harness.state().world().resource::<PanelState>().tab;
    assert_eq!(tab, PanelTab::Instances);
    harness.get_by_label(&entity.to_string());
}
