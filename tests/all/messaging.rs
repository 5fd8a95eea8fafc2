//! Messages between the host, other threads and guests. The `echo` guest
//! logs every `ping` and answers with a `pong`; the `ticker` guest sends a
//! `ping` when it starts.

use bevy::prelude::*;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::sandbox::{MAX_PAYLOAD_BYTES, MAX_QUEUED_BYTES, QueueLimits};
use bevy_hotwasm::{FailureStage, MessageError, ModuleLogged, Sandbox, ScriptSender, WasmEngine};
use game_types::{EnemyKilled, Position};
use hotwasm_test_support::*;

/// A system that sends `ping` to the entity in it, once.
#[derive(Resource, Default)]
struct PingFromSystem(Option<Entity>);

fn ping_from_system(mut to: ResMut<PingFromSystem>, mut messages: MessageWriter<HostMessage>) {
    if let Some(entity) = to.0.take() {
        messages.write(HostMessage::to_entity(entity, "ping", "from a system"));
    }
}

#[test]
fn messages_from_a_system_a_thread_and_a_module_each_arrive_once_in_order() {
    let assets = AssetDir::new();
    assets.write("echo.wasm", &guest_bytes("echo"));
    assets.write("ticker.wasm", &guest_bytes("ticker"));
    let mut app = app(&assets, None);
    app.init_resource::<PingFromSystem>()
        .add_systems(Update, ping_from_system.before(WasmSystems::Run));
    let echo = spawn_script(&mut app, "echo.wasm");
    update_until(&mut app, "echo to start", |app| {
        generation(app, echo).is_some()
    });

    app.world_mut().resource_mut::<PingFromSystem>().0 = Some(echo);
    app.update();
    let sender = app.world().resource::<ScriptSender>().clone();
    std::thread::spawn(move || sender.send(HostMessage::to_entity(echo, "ping", "from a thread")))
        .join()
        .unwrap()
        .unwrap();
    app.update();
    let ticker = spawn_script(&mut app, "ticker.wasm");
    update_until(&mut app, "the ticker's ping", |app| {
        seen(app).lines_of(echo).len() == 3
    });
    run_frames(&mut app, 3);

    assert_eq!(
        seen(&app).lines_of(echo),
        [
            "ping 1 from the host: from a system".to_string(),
            "ping 2 from the host: from a thread".to_string(),
            // Entities print the way Bevy prints them, on both sides.
            format!("ping 3 from entity {ticker}: from ticker"),
        ]
    );
    // Guests' sends reach ordinary systems as ModuleMessage.
    let sent: Vec<(Entity, &str, &[u8])> = seen(&app)
        .sent
        .iter()
        .map(|m| (m.from.entity, m.topic.as_str(), m.payload.as_slice()))
        .collect();
    assert_eq!(
        sent,
        [
            (echo, "pong", &b"from a system"[..]),
            (echo, "pong", &b"from a thread"[..]),
            (ticker, "ping", &b"from ticker"[..]),
            (echo, "pong", &b"from ticker"[..]),
        ]
    );
}

/// One frame's messages travel packed, a repeated topic written once: each
/// still reaches the handler of its own topic with its own payload.
#[test]
fn messages_on_several_topics_in_one_frame_each_reach_their_handler() {
    let (_assets, mut app, entities) = start_scripts("echo.wasm", &guest_bytes("echo"), 1, None);
    let echo = entities[0];

    let sent = [
        ("ping", "a"),
        ("ping", "bb"),
        ("count", "x"),
        ("count", ""),
        ("nobody listens", "lost"),
        ("ping", ""),
        ("report", ""),
        ("ping", "ping"),
        // A handler that unsubscribes its own topic: the next two find none.
        ("count-once", ""),
        ("count-once", ""),
        ("count-once", ""),
        ("report", ""),
    ];
    for (topic, payload) in sent {
        app.world_mut()
            .write_message(HostMessage::to_entity(echo, topic, payload));
    }
    app.update();

    assert_eq!(
        seen(&app).lines_of(echo),
        [
            "ping 1 from the host: a",
            "ping 2 from the host: bb",
            "ping 3 from the host: ",
            "counted 2",
            "ping 4 from the host: ping",
            "counted 3",
        ]
    );
    let pongs: Vec<&[u8]> = seen(&app)
        .sent
        .iter()
        .map(|m| m.payload.as_slice())
        .collect();
    assert_eq!(pongs, [&b"a"[..], b"bb", b"", b"ping"]);
}

#[test]
fn a_broadcast_reaches_every_subscriber_and_only_them() {
    let assets = AssetDir::new();
    assets.write("echo.wasm", &guest_bytes("echo"));
    assets.write("counter.wasm", &guest_bytes("counter"));
    let mut app = app(&assets, None);
    let echoes = [
        spawn_script(&mut app, "echo.wasm"),
        spawn_script(&mut app, "echo.wasm"),
    ];
    let counter = spawn_script(&mut app, "counter.wasm");
    update_until(&mut app, "every script to start", |app| {
        [echoes[0], echoes[1], counter]
            .iter()
            .all(|&e| generation(app, e).is_some())
    });

    app.world_mut()
        .write_message(HostMessage::to_subscribers("ping", "everyone"));
    app.update();

    for echo in echoes {
        assert_eq!(
            seen(&app).lines_of(echo),
            ["ping 1 from the host: everyone"]
        );
    }
    assert_eq!(seen(&app).lines_of(counter), ["starts=1"]);
    assert_eq!(runtime(&app).script(counter).unwrap().queued_messages(), 0);
}

#[test]
fn messages_queued_for_an_instance_reach_its_next_generation() {
    let assets = AssetDir::new();
    let echo_bytes = guest_bytes("echo");
    assets.write("echo.wasm", &echo_bytes);
    assets.write("ticker.wasm", &guest_bytes("ticker"));
    let mut app = app(&assets, None);
    let echo = spawn_script(&mut app, "echo.wasm");
    let first_ticker = spawn_script(&mut app, "ticker.wasm");
    update_until(&mut app, "both to start", |app| {
        generation(app, echo).is_some() && generation(app, first_ticker).is_some()
    });
    run_frames(&mut app, 2);
    let pings_so_far = seen(&app).lines_of(echo).len();

    // In one frame a new ticker starts and pings (queued for echo at the end
    // of the frame) while a new echo replaces the asset (swapped in at the
    // start of the next frame, before messages are handed out).
    let module = runtime(&app).script(echo).unwrap().module();
    let engine = app.world().resource::<WasmEngine>().clone();
    let new_echo =
        WasmModule::from_bytes(&engine, "modules/echo.wasm", &rebuilt(&echo_bytes, 1)).unwrap();
    app.world_mut()
        .resource_mut::<Assets<WasmModule>>()
        .insert(module, new_echo)
        .unwrap();
    spawn_script(&mut app, "ticker.wasm");
    run_frames(&mut app, 3);

    let pings: Vec<&ModuleLogged> = seen(&app)
        .logged
        .iter()
        .filter(|line| line.script.entity == echo)
        .skip(pings_so_far)
        .collect();
    assert_eq!(pings.len(), 1, "{pings:?}");
    assert_eq!(pings[0].script.generation, 2);
    assert!(pings[0].message.ends_with("from ticker"), "{pings:?}");
}

#[test]
fn a_trap_in_handle_batch_stops_that_instance_only() {
    let assets = AssetDir::new();
    assets.write("echo.wasm", &guest_bytes("echo"));
    assets.write("trap.wasm", &script_wat("", ZEROES, ZEROES, "unreachable"));
    let mut app = app(&assets, None);
    let trap = spawn_script(&mut app, "trap.wasm");
    let echo = spawn_script(&mut app, "echo.wasm");
    update_until(&mut app, "both to start", |app| {
        generation(app, trap).is_some() && generation(app, echo).is_some()
    });

    app.world_mut()
        .write_message(HostMessage::to_entity(trap, "ping", "boom"));
    app.world_mut()
        .write_message(HostMessage::to_entity(echo, "ping", "still here"));
    app.update();

    let failure = &seen(&app).failed[0];
    assert_eq!(
        (failure.entity, failure.stage),
        (Some(trap), FailureStage::Run)
    );
    assert!(failure.cause.contains("trapped"), "{}", failure.cause);
    assert_eq!(generation(&app, trap), None);
    assert_eq!(
        seen(&app).lines_of(echo),
        ["ping 1 from the host: still here"]
    );
}

#[test]
fn bad_host_messages_are_refused() {
    let assets = AssetDir::new();
    let app = app(&assets, None);
    let sender = app.world().resource::<ScriptSender>();
    assert_eq!(
        sender.send(HostMessage::to_subscribers("", "x")),
        Err(MessageError::EmptyTopic)
    );
    assert!(matches!(
        sender.send(HostMessage::to_subscribers("t", vec![0; 100_000])),
        Err(MessageError::PayloadTooLarge { len: 100_000, .. })
    ));
}

#[test]
fn messages_waiting_for_a_script_are_bounded_by_bytes() {
    let assets = AssetDir::new();
    let mut app = app(&assets, None);
    // A module that never loads: the script is tracked but never runs.
    let waiting = spawn_script(&mut app, "missing.wasm");
    run_frames(&mut app, 2);
    let payload = vec![7; MAX_PAYLOAD_BYTES as usize];
    for _ in 0..300 {
        app.world_mut()
            .write_message(HostMessage::to_entity(waiting, "t", payload.clone()));
    }
    app.update();

    let per_message = payload.len() + "t".len();
    let queued = runtime(&app).script(waiting).unwrap().queued_messages();
    assert_eq!(queued, MAX_QUEUED_BYTES / per_message);
    assert!(queued < 300);
}

#[test]
fn the_game_sets_how_many_messages_may_wait() {
    let assets = AssetDir::new();
    let plugin = HotWasmPlugin {
        sandbox: Sandbox {
            queues: QueueLimits {
                max_messages: 10,
                ..default()
            },
            ..default()
        },
        ..unsigned_plugin()
    };
    let mut app = app_with(&assets, None, plugin, |_| {});
    let waiting = spawn_script(&mut app, "missing.wasm");
    run_frames(&mut app, 2);
    for n in 0..25 {
        app.world_mut()
            .write_message(HostMessage::to_entity(waiting, "t", format!("{n}")));
    }
    app.update();
    let queued = runtime(&app).script(waiting).unwrap().queued_messages();
    assert_eq!(queued, 10, "the oldest ten wait, the rest are dropped");
}

#[test]
fn an_error_a_handler_returns_is_logged_with_its_name_not_a_fault() {
    let (_assets, mut app, entities) = start_scripts("echo.wasm", &guest_bytes("echo"), 1, None);
    let echo = entities[0];
    app.world_mut()
        .write_message(HostMessage::to_entity(echo, "read-component", "nonsense"));
    app.update();

    let line = seen(&app)
        .logged
        .iter()
        .find(|line| line.script.entity == echo && line.level == bevy::log::Level::ERROR)
        .expect("the error is logged");
    // A closure is named by where it was registered, in the guest's source.
    assert!(
        line.message
            .contains("the closure at guests/echo/src/lib.rs:76 failed: read-component takes"),
        "{}",
        line.message
    );
    assert_eq!(runtime(&app).script(echo).unwrap().stats().faults, 0);
    // It keeps answering.
    app.world_mut()
        .write_message(HostMessage::to_entity(echo, "ping", "still there"));
    app.update();
    assert!(
        seen(&app)
            .lines_of(echo)
            .iter()
            .any(|line| line.ends_with("still there"))
    );
}

/// The `EnemyKilled`s a system after the scripts' run read, by `x`.
#[derive(Resource, Default)]
struct Killed(Vec<f32>);

fn read_killed(mut killed: MessageReader<EnemyKilled>, mut seen: ResMut<Killed>) {
    seen.0.extend(killed.read().map(|killed| killed.at.x));
}

#[test]
fn the_games_own_messages_reach_scripts_and_theirs_reach_the_game_in_the_same_frame() {
    let assets = AssetDir::new();
    assets.write("echo.wasm", &guest_bytes("echo"));
    let mut app = app(&assets, None);
    app.add_script_message::<EnemyKilled>()
        .init_resource::<Killed>()
        .add_systems(Update, read_killed.after(WasmSystems::Run));
    let echo = spawn_script(&mut app, "echo.wasm");
    update_until(&mut app, "echo to start", |app| {
        generation(app, echo).is_some()
    });

    let at = Position { x: 1.0, y: 2.0 };
    app.world_mut().write_message(EnemyKilled { at });
    app.update();
    // The game's message and the script's, written during the run, both
    // read by a system after it in the same frame.
    assert_eq!(app.world().resource::<Killed>().0, [1.0, 101.0]);
    run_frames(&mut app, 3);
    assert_eq!(
        app.world().resource::<Killed>().0,
        [1.0, 101.0],
        "the script's own message does not come back to it"
    );
    let sent = &seen(&app).sent;
    assert!(
        sent.iter()
            .any(|m| m.topic == "bevy:game_types::EnemyKilled"),
        "{sent:?}"
    );
}
