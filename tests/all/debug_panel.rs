//! The debug panel's functions, drawn and clicked with `egui_kittest` (no
//! window), over a headless app running real guests: each tab shows what
//! the runtime knows, and its buttons act on the game.

use std::time::Duration;

use bevy::asset::io::AssetSourceId;
use bevy::prelude::*;
use bevy_hotwasm::debug_panel::{
    EventKind, HotWasmPanelPlugin, PanelFaults, PanelState, PanelTab, PanelToasts, ui_for_console,
    ui_for_diagnostics, ui_for_events, ui_for_faults, ui_for_instances, ui_for_key_value,
    ui_for_modules, ui_for_panel, ui_for_time,
};
use bevy_hotwasm::{
    Capabilities, CapabilityPolicy, HostMessage, HotWasmPlugin, KvStore, Sandbox, WasmModule,
};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use hotwasm_test_support::*;

/// An app running `modules/<file>` on one entity, with the panel's state
/// and actions (no window), once the script has started or failed to.
fn app_running(file: &str, bytes: &[u8]) -> (AssetDir, App, Entity) {
    app_running_with(file, bytes, unsigned_plugin())
}

/// Like [`app_running`], with `plugin`'s settings.
fn app_running_with(file: &str, bytes: &[u8], plugin: HotWasmPlugin) -> (AssetDir, App, Entity) {
    let assets = AssetDir::new();
    assets.write(file, bytes);
    let mut app = game_with_fake_watcher(&assets, plugin, |app| {
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

/// The panel's state in the harness's app, to change as a user would.
fn panel<'h>(harness: &'h mut Harness<'static, App>) -> Mut<'h, PanelState> {
    harness.state_mut().world_mut().resource_mut::<PanelState>()
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
    let modules = harness.state().world().resource::<Assets<WasmModule>>();
    let (_, loaded) = modules.iter().next().expect("counter loaded");
    assert_eq!(loaded.size(), counter.len());
    harness.get_by_label(&format!("{:016x}", loaded.content_hash()));
    harness.get_by_label(&format!("{:.1} KiB", counter.len() as f64 / 1024.0));

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
    let app = harness.state();
    let (_, module) = runtime(app).modules().next().expect("one module");
    let start = module.last_reload().expect("generation 2 ran");
    assert_eq!(start.generation, 2);
    assert!(start.took > Duration::ZERO);
    let toasts = &app.world().resource::<PanelToasts>().toasts;
    let texts: Vec<&str> = toasts.iter().map(|toast| toast.text.as_str()).collect();
    let expected = format!(
        "modules/counter.wasm → gen 2 in {:.0?} (1 instance)",
        start.took
    );
    assert_eq!(texts, [expected.as_str()]);
    harness.run();
    harness.get_by_label(&format!("2 (in {:.0?})", start.took));

    // A version that fails to load: generation 3, and 2 still runs.
    assets.save(harness.state(), "counter.wasm", b"not a module");
    update_until(harness.state_mut(), "the failure", |app| {
        !seen(app).failed.is_empty()
    });
    harness.run();
    harness.get_by_label("3 (running 2)");
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
fn the_faults_tab_counts_repeats_and_can_pause_the_game_on_a_fault() {
    let (_assets, mut app, entity) = app_running("broken.wasm", &trapping_init());
    update_until(&mut app, "the script to be quarantined", |app| {
        runtime(app).script(entity).unwrap().is_quarantined()
    });
    let faults = runtime(&app).script(entity).unwrap().stats().faults;
    assert!(faults > 1, "{faults} faults");
    let mut harness = harness(app, ui_for_faults);
    harness.run();
    // Every restart trapped the same way: one record, counted.
    let records = &harness.state().world().resource::<PanelFaults>().records;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].count, faults);
    harness.get_by_label_contains(&format!("×{faults} modules/broken.wasm"));

    harness.get_by_label_contains("×").click();
    harness.run();
    harness.get_by_label("Copy");
    harness.get_by_label("Pause the game on a fault").click();
    harness.run();
    assert!(
        harness
            .state()
            .world()
            .resource::<PanelState>()
            .pause_on_fault
    );

    let app = harness.state_mut();
    app.world_mut()
        .resource_mut::<bevy_hotwasm::WasmRuntime>()
        .release(entity);
    update_until(app, "the game to pause on the next fault", |app| {
        app.world().resource::<Time<Virtual>>().is_paused()
    });
    let records = &app.world().resource::<PanelFaults>().records;
    assert_eq!(records[0].count, faults + 1);
}

#[test]
fn a_value_edited_in_the_key_value_tab_reaches_a_watching_guest() {
    let (_assets, mut app, watcher) = app_running("watcher.wasm", &guest_bytes("watcher"));
    let store = |app: &App| {
        app.world()
            .resource::<KvStore>()
            .get("tuning", "speed")
            .unwrap()
    };
    app.world_mut()
        .resource_mut::<KvStore>()
        .set("tuning", "speed", b"1")
        .unwrap();
    app.update();
    let mut harness = harness(app, ui_for_key_value);
    harness.run();
    harness.get_by_label("speed").click();
    harness.run();
    assert_eq!(
        harness.state().world().resource::<PanelState>().kv.edit,
        "1"
    );
    harness.get_by_label("last write: the game");
    harness.get_by_label(&format!("watched by {watcher} (modules/watcher.wasm)"));

    // Typed into the value's text box, then saved.
    let app = harness.state_mut();
    app.world_mut().resource_mut::<PanelState>().kv.edit = "7".to_owned();
    harness.get_by_label("Save").click();
    harness.run();
    update_until(harness.state_mut(), "the guest to see the edit", |app| {
        seen(app)
            .lines_of(watcher)
            .iter()
            .any(|line| line.contains("speed") && line.contains("\"7\""))
    });

    harness.get_by_label("+1").click();
    harness.run();
    harness.state_mut().update();
    assert_eq!(store(harness.state()).as_deref(), Some(&b"8"[..]));
    harness.run();
    harness.get_by_label("last write: a tool (this panel)");

    harness.get_by_label("Delete").click();
    harness.run();
    harness.state_mut().update();
    harness.run();
    assert_eq!(store(harness.state()), None);
    let kv = &harness.state().world().resource::<PanelState>().kv;
    let page = kv.page.as_ref().expect("read again after the change");
    assert!(page.keys.is_empty(), "{:?}", page.keys);
}

#[test]
fn the_key_value_tab_saves_only_edits_and_never_over_a_change_it_did_not_see() {
    let (_assets, mut app, _) = app_running("watcher.wasm", &guest_bytes("watcher"));
    let binary = [0xff, 0x00, 0x80];
    {
        let mut store = app.world_mut().resource_mut::<KvStore>();
        store.set("tuning", "speed", b"1").unwrap();
        store.set("tuning", "blob", &binary).unwrap();
    }
    app.update();
    let value = |harness: &Harness<'_, App>, key: &str| {
        let store = harness.state().world().resource::<KvStore>();
        store.get("tuning", key).unwrap()
    };
    let mut harness = harness(app, ui_for_key_value);
    harness.run();
    harness.get_by_label("speed").click();
    harness.run();

    // Unedited, Save writes nothing.
    harness.get_by_label("Save").click();
    harness.run();
    harness.state_mut().update();
    harness.run();
    harness.get_by_label("last write: the game");

    // The game changes the value while it is being edited: Save refuses,
    // says so and shows the value now; a second Save overwrites it.
    harness
        .state_mut()
        .world_mut()
        .resource_mut::<PanelState>()
        .kv
        .edit = "7".to_owned();
    (harness.state_mut().world_mut().resource_mut::<KvStore>())
        .set("tuning", "speed", b"2")
        .unwrap();
    harness.run();
    harness.get_by_label("Save").click();
    harness.run();
    harness.state_mut().update();
    harness.run();
    assert_eq!(value(&harness, "speed").as_deref(), Some(&b"2"[..]));
    harness.get_by_label_contains("Not saved: tuning/speed changed since it was read");
    let kv = &harness.state().world().resource::<PanelState>().kv;
    assert_eq!(kv.edit, "7", "the edit is kept");
    harness.get_by_label("Save").click();
    harness.run();
    harness.state_mut().update();
    harness.run();
    assert_eq!(value(&harness, "speed").as_deref(), Some(&b"7"[..]));

    // A binary value is shown, never turned into text or saved as text.
    harness.get_by_label("blob").click();
    harness.run();
    harness.get_by_label("Binary, 3 bytes: not text, so not editable here (see Hex).");
    assert_eq!(harness.state().world().resource::<PanelState>().kv.edit, "");
    harness.get_by_label("Save").click();
    harness.run();
    harness.state_mut().update();
    assert_eq!(value(&harness, "blob").as_deref(), Some(&binary[..]));
}

#[test]
fn the_events_tab_shows_messages_and_key_value_changes_as_cloudevents() {
    let (_assets, mut app, echo) = app_running("echo.wasm", &guest_bytes("echo"));
    app.world_mut()
        .write_message(HostMessage::to_entity(echo, "ping", "hi"));
    app.world_mut()
        .resource_mut::<KvStore>()
        .set("scores", "player/1", b"12")
        .unwrap();
    update_until(&mut app, "the echo's pong", |app| {
        seen(app)
            .lines_of(echo)
            .iter()
            .any(|line| line.contains("ping 1"))
    });
    app.update();
    let mut harness = harness(app, ui_for_events);
    harness.run();
    harness.get_by_label_contains(&format!("host → {echo} [ping] hi"));
    harness.get_by_label_contains("[pong] hi");
    let event = harness.get_by_label_contains(r#""specversion":"1.0""#);
    let label = event.accesskit_node().value().unwrap_or_default();
    assert!(label.contains(r#""type":"dev.hotwasm.kv.set""#), "{label}");
    assert!(label.contains(r#""source":"/kv/scores""#), "{label}");
    assert!(
        label.contains("key-value: scores/player/1 = 12 {"),
        "readable first: {label}"
    );
    assert!(label.contains(r#""data_base64":"MTI=""#), "{label}");
    assert!(label.contains(r#""hotwasmorigin":"Host""#), "{label}");

    harness.get_by_label("messages").click();
    harness.run();
    let hidden = &harness
        .state()
        .world()
        .resource::<PanelState>()
        .hidden_events;
    assert_eq!(hidden, &[EventKind::Message]);
    assert!(harness.query_by_label_contains("[ping]").is_none());
    harness.get_by_label_contains("specversion");
}

#[test]
fn the_events_tab_shows_component_changes_watches_got() {
    let (_assets, mut app, watcher) = app_running("watcher.wasm", &guest_bytes("watcher"));
    app.register_type::<Health>();
    app.world_mut().write_message(HostMessage::to_entity(
        watcher,
        "watcher/component",
        Health::type_path(),
    ));
    app.update();
    let entity = app.world_mut().spawn(Health { hp: 7 }).id();
    update_until(&mut app, "the watcher to see it", |app| {
        seen(app)
            .lines_of(watcher)
            .iter()
            .any(|line| line.starts_with("dev.hotwasm.component.added"))
    });
    let mut harness = harness(app, ui_for_events);
    harness.run();
    harness.get_by_label_contains(&format!(
        "dev.hotwasm.component.added {} on {entity} {{\"hp\":7}} → 1 watch(es)",
        Health::type_path()
    ));
    harness.get_by_label("component watches").click();
    harness.run();
    assert!(
        harness
            .query_by_label_contains("dev.hotwasm.component.added")
            .is_none(),
        "hidden"
    );
}

#[test]
fn the_diagnostics_tab_plots_guest_time() {
    let (_assets, mut app, _) = app_running("hello.wasm", &guest_bytes("hello"));
    for _ in 0..5 {
        app.update();
    }
    let mut harness = harness(app, ui_for_diagnostics);
    harness.run();
    let guest_time = harness.get_by_label_contains("guest time per frame (ms): latest");
    let label = guest_time.accesskit_node().value().unwrap_or_default();
    let frames: usize = label
        .rsplit("over ")
        .next()
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0);
    assert!(frames >= 5, "{label}");
    harness.get_by_label_contains("scripts quarantined: latest 0.000");
}

#[test]
fn the_instances_tab_shows_what_an_instance_registered() {
    let fuel = HotWasmPlugin {
        sandbox: Sandbox {
            fuel: true,
            ..default()
        },
        ..unsigned_plugin()
    };
    let (_assets, mut app, ticker) = app_running_with("ticker.wasm", &guest_bytes("ticker"), fuel);
    app.update();
    let mut harness = harness(app, ui_for_instances);
    harness.run();
    harness.get_by_label(&ticker.to_string()).click();
    harness.run();
    harness.get_by_label_contains("tasks (2)");
    harness.get_by_label_contains("every 100.0ms");
    harness.get_by_label_contains("subscriptions (2)");
    harness.get_by_label_contains("ticker/cancel");
    harness.get_by_label_contains(", memory ");
    harness.get_by_label_contains("fuel: ");
}

#[test]
fn a_running_script_restarts_afresh_from_the_instances_tab() {
    let (_assets, app, counter) = app_running("counter.wasm", &guest_bytes("counter"));
    let mut harness = harness(app, ui_for_instances);
    harness.run();
    harness.get_by_label(&format!("Restart {counter}")).click();
    harness.run();
    update_until(harness.state_mut(), "the restart", |app| {
        runtime(app).script(counter).unwrap().stats().restarts == 1
    });
    let app = harness.state();
    // No state carried over: it counts its starts from one again.
    assert_eq!(seen(app).lines_of(counter), ["starts=1", "starts=1"]);
    assert_eq!(runtime(app).script(counter).unwrap().stats().faults, 0);
    assert_eq!(generation(app, counter), Some(1));
}

#[test]
fn a_module_shows_its_origin_and_is_unloaded_and_loaded_again_from_the_modules_tab() {
    let (_assets, app, counter) = app_running("counter.wasm", &guest_bytes("counter"));
    let mut harness = harness(app, ui_for_modules);
    harness.run();
    harness.get_by_label("modules/counter.wasm").click();
    harness.run();
    harness.get_by_label("from: file");
    harness.get_by_label("trust: unsigned (allowed)");
    harness.get_by_label_contains(
        "limits: CPU 200 ms a call, fuel 1000000000 a call, memory 64.0 MiB",
    );

    harness.get_by_label("Unload modules/counter.wasm").click();
    harness.run();
    harness.state_mut().update();
    run_frames(harness.state_mut(), 5);
    assert_eq!(generation(harness.state(), counter), None, "stopped");
    harness.run();
    harness.get_by_label_contains("unloaded: its scripts wait");

    // The same bytes again start it afresh.
    harness.get_by_label("Reload modules/counter.wasm").click();
    harness.run();
    update_until(harness.state_mut(), "the module to run again", |app| {
        generation(app, counter) == Some(2)
    });
    assert_eq!(
        seen(harness.state()).lines_of(counter),
        ["starts=1", "starts=1"],
        "no state kept"
    );
}

#[test]
fn a_module_shows_what_it_may_touch_and_its_instances_what_was_denied() {
    // The intruder asks for its own Position, two buckets, topics and two
    // tasks; the game's ceiling for local files leaves it reading only.
    let ceiling = Capabilities::parse("component.read *\nkv.read *").unwrap();
    let plugin = HotWasmPlugin {
        capabilities: CapabilityPolicy::new().limit_source(AssetSourceId::Default, ceiling),
        ..unsigned_plugin()
    };
    let (_assets, mut app, intruder) =
        app_running_with("intruder.wasm", &guest_bytes("intruder"), plugin);
    update_until(&mut app, "the intruder's refused calls", |app| {
        runtime(app)
            .script(intruder)
            .unwrap()
            .stats()
            .denied_host_calls
            > 0
    });
    let mut harness = harness(app, ui_for_modules);
    harness.run();
    harness.get_by_label("modules/intruder.wasm").click();
    harness.run();
    harness.get_by_label("capabilities:");
    harness.get_by_label("  component.read game_types::Position");
    harness.get_by_label("  kv.read tuning/*");
    for refused in [
        "component.write game_types::Position",
        "kv.write intruder/*",
        "tasks 2",
    ] {
        harness.get_by_label(&format!(
            "  not granted (above the game's ceiling): {refused}"
        ));
    }

    let app = harness.into_state();
    let stats = runtime(&app).script(intruder).unwrap().stats().clone();
    let mut harness = self::harness(app, ui_for_instances);
    harness.run();
    harness.get_by_label(&format!(
        "{} / {} / {} / {} / {}",
        stats.calls, stats.faults, stats.denied_host_calls, stats.restarts, stats.postponed
    ));
    harness.get_by_label(&intruder.to_string()).click();
    harness.run();
    harness.get_by_label_contains(&format!(
        "denied by its capabilities {}",
        stats.denied_host_calls
    ));
}

#[test]
fn a_script_is_paused_and_resumed_from_the_instances_tab() {
    let (_assets, app, ticker) = app_running("ticker.wasm", &guest_bytes("ticker"));
    let mut harness = harness(app, ui_for_instances);
    harness.run();
    harness.get_by_label(&ticker.to_string()).click();
    harness.run();
    harness.get_by_label(&format!("Pause {ticker}")).click();
    harness.run();
    // Buttons' actions are applied after the frame's scripts ran.
    harness.state_mut().update();
    let calls = |app: &App| runtime(app).script(ticker).unwrap().stats().calls;
    let paused_at = calls(harness.state());
    run_frames(harness.state_mut(), 10);
    assert_eq!(calls(harness.state()), paused_at, "not called while paused");
    harness.run();
    harness.get_by_label("paused");
    harness.get_by_label_contains("paused: not called; 0 watch events held, 0 dropped");

    harness.get_by_label(&format!("Resume {ticker}")).click();
    harness.run();
    update_until(
        harness.state_mut(),
        "the ticker to be called again",
        |app| calls(app) > paused_at,
    );
    assert!(!runtime(harness.state()).script(ticker).unwrap().is_paused());
}

#[test]
fn the_time_tab_lists_the_next_due_tasks() {
    let (_assets, mut app, ticker) = app_running("ticker.wasm", &guest_bytes("ticker"));
    app.update();
    let mut harness = harness(app, ui_for_time);
    harness.run();
    harness.get_by_label_contains(&format!("{ticker} modules/ticker.wasm: task 1 due at"));
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
fn the_console_counts_and_filters_by_level_and_module_and_clears_on_reload() {
    let counter = guest_bytes("counter");
    let (assets, app, _) = app_running("counter.wasm", &counter);
    let mut harness = harness(app, ui_for_console);
    harness.state_mut().update();
    harness.run();
    harness.get_by_label("INFO 1");
    harness.get_by_label("ERROR 0");
    harness.get_by_label_contains("starts=1");

    harness.get_by_label("INFO 1").click();
    harness.run();
    assert!(
        harness.query_by_label_contains("starts=1").is_none(),
        "INFO hidden"
    );
    panel(&mut harness).console_hidden_levels.clear();
    panel(&mut harness).console_module = Some("modules/other.wasm".to_owned());
    harness.run();
    assert!(
        harness.query_by_label_contains("starts=1").is_none(),
        "another module"
    );
    panel(&mut harness).console_module = Some("modules/counter.wasm".to_owned());
    harness.run();
    harness.get_by_label_contains("starts=1");

    harness.get_by_label("Clear on reload").click();
    harness.run();
    assets.save(harness.state(), "counter.wasm", &rebuilt(&counter, 1));
    update_until(harness.state_mut(), "the reload", |app| {
        !seen(app).reloaded.is_empty()
    });
    harness.run();
    harness.get_by_label_contains("starts=2");
    assert!(
        harness.query_by_label_contains("starts=1").is_none(),
        "cleared on reload"
    );
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

    // One step: one frame of game time, paused again after it.
    let elapsed = |app: &App| app.world().resource::<Time<Virtual>>().elapsed();
    let before = elapsed(harness.state());
    harness.run();
    harness.get_by_label("Step one frame").click();
    harness.run();
    for _ in 0..3 {
        harness.state_mut().update();
    }
    let app = harness.state();
    assert!(app.world().resource::<Time<Virtual>>().is_paused());
    assert_eq!(elapsed(app) - before, FRAME_TIME);

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

#[cfg(feature = "nats")]
#[test]
fn the_key_value_tab_shows_a_shared_stores_connection() {
    use bevy_hotwasm::kv::NatsOptions;
    use hotwasm_test_support::nats_server::{NatsServer, wait_until};

    let mut server = NatsServer::start();
    let store = KvStore::connect_nats(&server.url(), NatsOptions::default()).unwrap();
    let assets = AssetDir::new();
    let mut app = game_with_fake_watcher(&assets, unsigned_plugin(), |app| {
        app.insert_resource(store).add_plugins(HotWasmPanelPlugin {
            window: false,
            ..default()
        });
    });
    app.world_mut()
        .resource_mut::<KvStore>()
        .set("tuning", "speed", b"1")
        .unwrap();
    let status = |app: &App| app.world().resource::<KvStore>().shared_status().unwrap();
    wait_until("the write to be acknowledged and come back", || {
        let status = status(&app);
        status.queued_writes == 0 && status.last_revision == 1
    });
    let mut harness = harness(app, ui_for_key_value);
    harness.run();
    harness.get_by_label(&format!("Shared on {}:", server.url()));
    harness.get_by_label("connected");
    harness.get_by_label("revision 1, 0 writes waiting for the server");

    server.kill();
    wait_until("the connection to drop", || {
        !status(harness.state()).connected
    });
    harness
        .state_mut()
        .world_mut()
        .resource_mut::<KvStore>()
        .set("tuning", "speed", b"2")
        .unwrap();
    harness.run();
    harness.get_by_label("disconnected");
    harness.get_by_label("revision 1, 1 writes waiting for the server");
}

#[test]
#[should_panic(expected = "add bevy_egui's EguiPlugin::default() to the app")]
fn the_panels_window_without_egui_says_how_to_add_it() {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, HotWasmPanelPlugin::default()));
    app.finish();
}
