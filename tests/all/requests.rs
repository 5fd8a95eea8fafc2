//! The game's questions to scripts, with answers: asked now
//! (`World::ask_script`) and this frame (`ScriptAsk`, answered as a
//! `ScriptAnswered`). `echo` answers `echo/*`; `mischief` misbehaves on
//! `mischief/act`; the narrow `intruder` may not answer `game/gold`.

use bevy::prelude::*;
use bevy::reflect::TypePath;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::sandbox::{FaultKind, MAX_PAYLOAD_BYTES};
use bevy_hotwasm::{AskError, FailureStage, MessageError};
use hotwasm_test_support::*;

fn echo() -> (AssetDir, App, Entity) {
    let (assets, app, entities) = start_scripts("echo.wasm", &guest_bytes("echo"), 1, None);
    (assets, app, entities[0])
}

#[test]
fn a_question_asked_now_gets_its_typed_answer_from_the_running_script() {
    let (_assets, mut app, echo) = echo();
    let world = app.world_mut();

    assert_eq!(
        world.ask_script::<u64, u64>(echo, "echo/double", &21),
        Ok(42)
    );
    assert_eq!(world.ask_script::<_, u64>(echo, "echo/count", &()), Ok(1));
    // The answer came from the script's own state, which it keeps.
    assert_eq!(world.ask_script::<_, u64>(echo, "echo/count", &()), Ok(2));
    assert_eq!(
        // postcard: a small number is one byte.
        world.ask_script_bytes(echo, "echo/double", &[4]),
        Ok(vec![8])
    );
    app.update();
    let stats = runtime(&app).script(echo).unwrap().stats();
    assert_eq!((stats.calls >= 4, stats.faults), (true, 0), "{stats:?}");
}

#[test]
fn each_way_a_question_goes_unanswered_is_its_own_error() {
    let (_assets, mut app, echo) = echo();
    let nobody = app.world_mut().spawn_empty().id();
    let world = app.world_mut();

    assert_eq!(
        world.ask_script::<_, u64>(nobody, "echo/double", &1u64),
        Err(AskError::NoSuchScript(nobody))
    );
    let no_handler = world.ask_script::<_, u64>(echo, "echo/nothing", &1u64);
    let Err(AskError::NoHandler { script, topic }) = &no_handler else {
        panic!("{no_handler:?}");
    };
    assert_eq!((script.entity, topic.as_str()), (echo, "echo/nothing"));
    let refused = world.ask_script::<_, ()>(echo, "echo/fail", &());
    let Err(AskError::Guest { message, .. }) = &refused else {
        panic!("{refused:?}");
    };
    assert_eq!(message, "no, on purpose");
    assert!(
        (refused.as_ref().unwrap_err().to_string()).contains("modules/echo.wasm generation 1 on"),
        "the error names the module: {refused:?}"
    );
    // A request that is not what the handler reads is the guest's error too.
    let wrong = world.ask_script::<_, u64>(echo, "echo/double", &"twenty-one");
    assert!(matches!(wrong, Err(AskError::Guest { .. })), "{wrong:?}");
    assert_eq!(
        world.ask_script::<_, u64>(echo, "", &1u64),
        Err(AskError::Payload(MessageError::EmptyTopic))
    );
    let huge = vec![b'1'; MAX_PAYLOAD_BYTES as usize + 1];
    assert!(matches!(
        world.ask_script_bytes(echo, "echo/double", &huge),
        Err(AskError::Payload(MessageError::PayloadTooLarge { .. }))
    ));
    let too_long = world.ask_script::<_, String>(echo, "echo/bytes", &70_000u64);
    assert!(
        matches!(too_long, Err(AskError::AnswerTooLarge { len: 70_003, .. })),
        "{too_long:?}"
    );
    let not_a_string = world.ask_script::<_, String>(echo, "echo/double", &1u64);
    assert!(
        matches!(not_a_string, Err(AskError::Decode(_))),
        "{not_a_string:?}"
    );
    // None of it hurt the script.
    assert_eq!(
        world.ask_script::<_, u64>(echo, "echo/double", &5u64),
        Ok(10)
    );

    app.world_mut()
        .resource_mut::<WasmRuntime>()
        .pause(echo, true);
    assert_eq!(
        app.world_mut()
            .ask_script::<_, u64>(echo, "echo/double", &1u64),
        Err(AskError::Paused(echo))
    );
    app.world_mut()
        .resource_mut::<WasmRuntime>()
        .pause(echo, false);
    app.update();
    assert_eq!(
        app.world_mut()
            .ask_script::<_, u64>(echo, "echo/double", &1u64),
        Ok(2)
    );
}

#[test]
fn a_script_that_faults_answering_is_counted_restarted_and_quarantined() {
    let assets = AssetDir::new();
    // Traps on requests only, not in its ticks.
    assets.write("ask-trap.wasm", &guest_bytes("mischief"));
    let mut app = app(&assets, None);
    let bad = spawn_script(&mut app, "ask-trap.wasm");
    update_until(&mut app, "mischief to start", |app| {
        generation(app, bad).is_some()
    });

    let fault = app
        .world_mut()
        .ask_script::<_, ()>(bad, "mischief/act", &());
    let Err(AskError::Fault { fault, script, .. }) = &fault else {
        panic!("{fault:?}");
    };
    assert!(matches!(fault, FaultKind::Trap { .. }), "{fault:?}");
    assert_eq!(script.entity, bad);
    let stats = runtime(&app).script(bad).unwrap().stats();
    assert_eq!(stats.faults, 1);
    // Until its restart, it is not running: never a dead instance.
    let waiting = app
        .world_mut()
        .ask_script::<_, ()>(bad, "mischief/act", &());
    assert!(
        matches!(waiting, Err(AskError::NotRunning { .. })),
        "{waiting:?}"
    );
    app.update();
    assert!(
        (seen(&app).failed.iter()).any(|failure| failure.stage == FailureStage::Request),
        "reported as a failure at handle-requests"
    );

    for fault in 2..=3 {
        update_until(&mut app, "the restart", |app| {
            generation(app, bad).is_some()
        });
        let again = app
            .world_mut()
            .ask_script::<_, ()>(bad, "mischief/act", &());
        assert!(
            matches!(again, Err(AskError::Fault { .. })),
            "fault {fault}: {again:?}"
        );
    }
    assert!(runtime(&app).script(bad).unwrap().is_quarantined());
    assert_eq!(
        app.world_mut()
            .ask_script::<_, ()>(bad, "mischief/act", &()),
        Err(AskError::Quarantined(bad))
    );
}

#[test]
fn a_topic_its_capabilities_do_not_grant_is_denied() {
    let (_assets, mut app, entities) =
        start_scripts("intruder.wasm", &guest_bytes("intruder"), 1, None);
    let denied = app
        .world_mut()
        .ask_script::<_, u64>(entities[0], "game/gold", &());
    let Err(AskError::Denied { topic, .. }) = &denied else {
        panic!("{denied:?}");
    };
    assert_eq!(topic, "game/gold");
    assert!(
        denied
            .unwrap_err()
            .to_string()
            .contains("denied: requests.answer game/gold")
    );
}

/// Asks what `Asks` holds, from an ordinary system before the scripts run.
#[derive(Resource, Default)]
struct Asks(Vec<(Entity, &'static str, Vec<u8>)>, Vec<AskTicket>);

fn ask(asks: ScriptAsk, mut queued: ResMut<Asks>) {
    for (entity, topic, bytes) in std::mem::take(&mut queued.0) {
        let ticket = asks.ask_bytes(entity, topic, bytes).unwrap();
        queued.1.push(ticket);
    }
}

fn app_asking(assets: &AssetDir) -> App {
    let mut app = app(assets, None);
    app.init_resource::<Asks>()
        .add_systems(Update, ask.before(WasmSystems::Run));
    app
}

#[test]
fn questions_asked_from_a_system_are_answered_that_frame_each_with_its_ticket() {
    let assets = AssetDir::new();
    assets.write("echo.wasm", &guest_bytes("echo"));
    let mut app = app_asking(&assets);
    let echo = spawn_script(&mut app, "echo.wasm");
    let nobody = app.world_mut().spawn_empty().id();
    update_until(&mut app, "echo to start", |app| {
        generation(app, echo).is_some()
    });

    app.world_mut().resource_mut::<Asks>().0 = vec![
        (echo, "echo/double", vec![1]),
        (nobody, "echo/double", vec![2]),
        (echo, "echo/double", vec![3]),
    ];
    app.update();

    let tickets = app.world().resource::<Asks>().1.clone();
    let answered = &seen(&app).answered;
    let of = |ticket| {
        answered
            .iter()
            .find(|answered| answered.ticket == ticket)
            .unwrap()
    };
    assert_eq!(
        answered.len(),
        3,
        "all three answered in the frame they were asked"
    );
    assert_eq!(of(tickets[0]).answer::<u64>(), Ok(2));
    assert_eq!(
        of(tickets[1]).answer::<u64>(),
        Err(AskError::NoSuchScript(nobody))
    );
    assert_eq!(of(tickets[2]).answer::<u64>(), Ok(6));
    assert_eq!(
        (of(tickets[2]).entity, of(tickets[2]).topic.as_str()),
        (echo, "echo/double")
    );
}

#[test]
fn a_question_in_the_frame_of_a_hot_reload_is_answered_by_the_new_generation() {
    let (assets, mut app, entities) =
        start_scripts_with_fake_watcher("echo.wasm", &guest_bytes("echo"), 1);
    let echo = entities[0];
    app.init_resource::<Asks>()
        .add_systems(Update, ask.before(WasmSystems::Run));

    assets.save(&app, "echo.wasm", &rebuilt(&guest_bytes("echo"), 1));
    // Ask every frame until the swap: each frame's answer comes from the
    // generation running once the frame's swaps are done.
    let mut frames = 0;
    loop {
        app.world_mut().resource_mut::<Asks>().0 = vec![(echo, "echo/generation", Vec::new())];
        app.update();
        let answer = seen(&app).answered.last().unwrap().answer::<u32>();
        let running = generation(&app, echo);
        assert_eq!(
            answer.as_ref().ok(),
            running.as_ref(),
            "never a dead instance: {answer:?}"
        );
        if running == Some(2) {
            break;
        }
        frames += 1;
        assert!(frames < 10_000, "the new generation never started");
    }
}

/// What a command queued by an observer got when it asked `echo` now.
#[derive(Resource, Default)]
struct AskedFromObserver(Vec<Result<u64, AskError>>);

/// An observer of a component a guest spawns queues a command that asks a
/// script now: it runs while the guest's call is still going (the world's
/// commands are applied as the spawn ends), so it is told `Busy`, and
/// nothing breaks.
#[test]
fn asking_now_from_inside_a_guests_call_is_busy() {
    let assets = AssetDir::new();
    assets.write("echo.wasm", &guest_bytes("echo"));
    assets.write("inspector.wasm", &guest_bytes("inspector"));
    let mut app = app(&assets, None);
    app.register_type::<Health>()
        .init_resource::<AskedFromObserver>();
    let echo = spawn_script(&mut app, "echo.wasm");
    let inspector = spawn_script(&mut app, "inspector.wasm");
    app.add_observer(move |_: On<Add, Health>, mut commands: Commands| {
        commands.queue(move |world: &mut World| {
            let answer = world.ask_script::<_, u64>(echo, "echo/double", &1u64);
            world.resource_mut::<AskedFromObserver>().0.push(answer);
        });
    });
    update_until(&mut app, "both to start", |app| {
        generation(app, echo).is_some() && generation(app, inspector).is_some()
    });

    let health = Health::type_path();
    app.world_mut().write_message(HostMessage::to_entity(
        inspector,
        "inspect/spawn",
        format!("{health} {{\"hp\":1}}"),
    ));
    app.update();
    assert_eq!(
        app.world().resource::<AskedFromObserver>().0,
        [Err(AskError::Busy)]
    );
    // Asked again from outside the run, it is answered.
    assert_eq!(
        app.world_mut()
            .ask_script::<_, u64>(echo, "echo/double", &1u64),
        Ok(2)
    );
}
