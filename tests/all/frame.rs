//! The per-frame hook: a guest that asks for every frame gets `update`
//! after its tasks, messages and events, every frame the game is not
//! paused; one that does not ask is not called at all.

use bevy::prelude::*;
use bevy_hotwasm::prelude::*;
use game_types::{Position, Speed, Target};
use hotwasm_test_support::*;

/// An app running `mover` on an entity at the origin heading east.
fn mover_app() -> (AssetDir, App, Entity) {
    let assets = AssetDir::new();
    assets.write("mover.wasm", &guest_bytes("mover"));
    let mut app = app(&assets, None);
    app.register_type::<Position>()
        .register_type::<Target>()
        .register_type::<Speed>();
    let mover = spawn_script(&mut app, "mover.wasm");
    app.world_mut().entity_mut(mover).insert((
        Position::default(),
        Target { x: 10.0, y: 0.0 },
        Speed(5.0),
    ));
    update_until(&mut app, "the mover to start", |app| {
        generation(app, mover).is_some()
    });
    (assets, app, mover)
}

fn x(app: &App, entity: Entity) -> f32 {
    app.world().get::<Position>(entity).unwrap().x
}

#[test]
fn update_runs_every_frame_but_not_while_the_game_is_paused() {
    let (_assets, mut app, mover) = mover_app();
    app.update();
    let start = x(&app, mover);

    // 5 units a second, 100 ms of game time a frame.
    run_frames(&mut app, 4);
    assert!(
        (x(&app, mover) - start - 2.0).abs() < 1e-4,
        "{}",
        x(&app, mover)
    );

    app.world_mut().resource_mut::<Time<Virtual>>().pause();
    let calls = runtime(&app).script(mover).unwrap().stats().calls;
    run_frames(&mut app, 5);
    let paused_at = x(&app, mover);
    assert!((paused_at - start - 2.0).abs() < 1e-4, "moved while paused");
    assert_eq!(runtime(&app).script(mover).unwrap().stats().calls, calls);

    app.world_mut().resource_mut::<Time<Virtual>>().unpause();
    run_frames(&mut app, 40);
    assert_eq!(x(&app, mover), 10.0, "stops on its target");
    assert!(seen(&app).logged.is_empty(), "{:?}", seen(&app).logged);
}

#[test]
fn a_frame_hands_over_tasks_then_messages_then_events_then_update() {
    let (_assets, mut app, entities) = start_scripts("order.wasm", &guest_bytes("order"), 1, None);
    let order = entities[0];
    run_frames(&mut app, 2);

    let before = seen(&app).lines_of(order).len();
    app.world_mut()
        .write_message(HostMessage::to_entity(order, "order", "now"));
    app.world_mut()
        .resource_mut::<KvStore>()
        .set("order", "k", b"1")
        .unwrap();
    app.update();
    let frame = app.world().resource::<bevy::diagnostic::FrameCount>().0;
    assert_eq!(
        seen(&app).lines_of(order)[before..],
        ["task", "message", "event", &format!("update {}", frame - 1)]
    );

    // Turned off: tasks still come, `update` no more.
    app.world_mut()
        .write_message(HostMessage::to_entity(order, "order/stop", []));
    app.update();
    let before = seen(&app).lines_of(order).len();
    run_frames(&mut app, 3);
    assert_eq!(
        seen(&app).lines_of(order)[before..],
        ["task", "task", "task"]
    );
}

#[test]
fn a_module_that_did_not_ask_for_frames_is_not_called() {
    let (_assets, mut app, entities) =
        start_scripts("counter.wasm", &guest_bytes("counter"), 1, None);
    run_frames(&mut app, 20);
    let stats = runtime(&app).script(entities[0]).unwrap().stats();
    assert_eq!((stats.calls, stats.frames), (1, 1), "init only: {stats:?}");
}

#[test]
fn a_paused_script_is_not_called_and_gets_what_waited_when_resumed() {
    let bytes = guest_bytes("order");
    let (assets, mut app, entities) = start_scripts_with_fake_watcher("order.wasm", &bytes, 2);
    let (paused, running) = (entities[0], entities[1]);
    run_frames(&mut app, 2);
    let pause = |app: &mut App, paused_now| {
        let mut runtime = app.world_mut().resource_mut::<WasmRuntime>();
        assert!(runtime.pause(paused, paused_now));
    };
    let set_key = |app: &mut App, value: &[u8]| {
        let mut store = app.world_mut().resource_mut::<KvStore>();
        store.set("order", "k", value).unwrap();
    };

    pause(&mut app, true);
    let calls = runtime(&app).script(paused).unwrap().stats().calls;
    let (before, others_before) = (
        seen(&app).lines_of(paused).len(),
        seen(&app).lines_of(running).len(),
    );
    app.world_mut()
        .write_message(HostMessage::to_entity(paused, "order", "now"));
    set_key(&mut app, b"1");
    app.update();
    set_key(&mut app, b"2");
    run_frames(&mut app, 3);
    let status = runtime(&app).script(paused).unwrap();
    assert!(status.is_paused());
    assert_eq!(status.stats().calls, calls, "no call while paused");
    assert_eq!((status.queued_messages(), status.held_events()), (1, 2));
    assert_eq!(seen(&app).lines_of(paused).len(), before);
    assert!(
        seen(&app).lines_of(running).len() > others_before + 4,
        "the other instance of the module runs on"
    );

    pause(&mut app, false);
    app.update();
    let frame = app.world().resource::<bevy::diagnostic::FrameCount>().0;
    assert_eq!(
        seen(&app).lines_of(paused)[before..],
        [
            "task",
            "message",
            "event",
            "event",
            &format!("update {}", frame - 1)
        ],
        "what waited, in one batch; the task that fell due runs once"
    );
    let status = runtime(&app).script(paused).unwrap();
    assert_eq!((status.queued_messages(), status.held_events()), (0, 0));

    // A new generation waits for the paused script; the events held for
    // the old one are dropped with its watches, and counted.
    pause(&mut app, true);
    set_key(&mut app, b"3");
    assets.save(&app, "order.wasm", &rebuilt(&bytes, 1));
    update_until(&mut app, "the other instance to swap", |app| {
        generation(app, running) == Some(2)
    });
    assert_eq!(
        generation(&app, paused),
        Some(1),
        "not swapped while paused"
    );
    pause(&mut app, false);
    app.update();
    let status = runtime(&app).script(paused).unwrap();
    assert_eq!(status.generation(), Some(2), "swapped on resume");
    assert_eq!(status.stats().dropped_events, 1);
    assert!(!status.is_paused());
}

/// Fixed steps the game ran, counted by a system of its own in `FixedUpdate`.
#[derive(Resource, Default)]
struct FixedSteps(usize);

fn count_step(mut steps: ResMut<FixedSteps>) {
    steps.0 += 1;
}

/// The `order` guest run in `FixedUpdate`: its per-frame hook runs once per
/// fixed step (numbered by step), its tasks in fixed time.
#[test]
fn a_fixed_update_script_steps_exactly_once_per_fixed_step() {
    let assets = AssetDir::new();
    assets.write("order.wasm", &guest_bytes("order"));
    let mut app = app(&assets, None);
    app.init_resource::<FixedSteps>()
        .add_systems(FixedUpdate, count_step.before(WasmSystems::RunFixed));
    let handle = app
        .world()
        .resource::<AssetServer>()
        .load("modules/order.wasm");
    let order = app
        .world_mut()
        .spawn((WasmScript(handle), FixedUpdateScript))
        .id();
    update_until(&mut app, "the fixed script to start", |app| {
        generation(app, order).is_some()
    });
    let updates = |app: &App| {
        (seen(app).lines_of(order).into_iter())
            .filter_map(|line| line.strip_prefix("update ")?.parse::<u64>().ok())
            .collect::<Vec<_>>()
    };
    let tasks = |app: &App| {
        seen(app)
            .lines_of(order)
            .iter()
            .filter(|l| **l == "task")
            .count()
    };
    let (updates_before, tasks_before) = (updates(&app).len(), tasks(&app));
    let steps_before = app.world().resource::<FixedSteps>().0;

    run_frames(&mut app, 20);

    let steps = app.world().resource::<FixedSteps>().0 - steps_before;
    let new_updates = &updates(&app)[updates_before..];
    // 20 frames of 100 ms at Bevy's 64 Hz: 128 steps, give or take one.
    assert!((127..=129).contains(&steps), "{steps} fixed steps");
    assert_eq!(new_updates.len(), steps, "one hook call per fixed step");
    assert!(
        new_updates.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "numbered by step: {new_updates:?}"
    );
    // Every 100 ms of fixed time: 2 s of it.
    let new_tasks = tasks(&app) - tasks_before;
    assert!((19..=21).contains(&new_tasks), "{new_tasks} tasks");
}

/// Writes `order/k` once when asked, from an ordinary system.
#[derive(Resource, Default)]
struct WriteKey(bool);

fn write_key(mut write: ResMut<WriteKey>, mut store: ResMut<KvStore>) {
    if std::mem::take(&mut write.0) {
        store.set("order", "k", b"v").unwrap();
    }
}

/// A system that writes to the store, ordered before the publishing of its
/// changes, has the scripts watching see the change in the same frame.
#[test]
fn a_store_write_ordered_before_the_publishing_reaches_watchers_that_frame() {
    let assets = AssetDir::new();
    assets.write("order.wasm", &guest_bytes("order"));
    let mut app = app(&assets, None);
    app.init_resource::<WriteKey>()
        .add_systems(Update, write_key.before(WasmSystems::PublishKvChanges));
    let order = spawn_script(&mut app, "order.wasm");
    update_until(&mut app, "order to start", |app| {
        generation(app, order).is_some()
    });
    let events = |app: &App| {
        seen(app)
            .lines_of(order)
            .iter()
            .filter(|l| **l == "event")
            .count()
    };
    let before = events(&app);

    app.world_mut().resource_mut::<WriteKey>().0 = true;
    app.update();
    assert_eq!(
        events(&app),
        before + 1,
        "the watch event came in the same frame"
    );
}
