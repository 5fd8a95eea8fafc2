//! Hot reload in a temporary asset directory: the first test end to end
//! through Bevy's real file watcher (`notify` underneath), the others with a
//! [`FakeWatcher`] that reports each save the moment the test makes it.

use bevy::prelude::*;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::sandbox::FaultKind;
use bevy_hotwasm::{FailureStage, ModuleFailed, WasmEngine};
use hotwasm_test_support::*;

/// Saves `bytes` over `modules/counter.wasm` and waits for the runtime to
/// act on it: a reload or a failure.
fn save_counter(app: &mut App, assets: &AssetDir, bytes: &[u8]) {
    let before = (seen(app).reloaded.len(), seen(app).failed.len());
    assets.save(app, "counter.wasm", bytes);
    update_until(app, "the runtime to act on the saved file", |app| {
        (seen(app).reloaded.len(), seen(app).failed.len()) != before
    });
}

#[test]
fn saving_a_module_swaps_every_instance_and_keeps_their_state() {
    let counter = guest_bytes("counter");
    let (assets, mut app, entities) =
        start_scripts("counter.wasm", &counter, 2, Some(TEST_DEBOUNCE));
    let [first, second] = entities[..] else {
        unreachable!()
    };

    // End to end: nothing tells the app but the file system.
    assets.write("counter.wasm", &rebuilt(&counter, 1));
    update_until(&mut app, "both instances to reload", |app| {
        seen(app).reloaded.len() == 2
    });

    let reloaded: Vec<(Entity, u32)> = seen(&app)
        .reloaded
        .iter()
        .map(|r| (r.script.entity, r.script.generation))
        .collect();
    assert_eq!(
        reloaded,
        [(first, 2), (second, 2)],
        "swapped in entity order"
    );
    assert_eq!(generation(&app, first), Some(2));
    // init ran on the new generation with the old generation's count.
    assert_eq!(seen(&app).lines_of(first), ["starts=1", "starts=2"]);
    assert_eq!(seen(&app).lines_of(second), ["starts=1", "starts=2"]);
    assert!(
        seen(&app)
            .logged
            .iter()
            .rev()
            .take(2)
            .all(|line| line.script.generation == 2)
    );
}

/// A broken file: what it is, the stage it fails at, the entity its
/// failure names, and words of the cause that tell it from the others'.
struct Broken {
    what: &'static str,
    bytes: Vec<u8>,
    stage: FailureStage,
    entity: Option<Entity>,
    cause: &'static str,
}

#[test]
fn a_broken_update_leaves_the_old_generation_running() {
    let counter = guest_bytes("counter");
    let (assets, mut app, entities) = start_scripts_with_fake_watcher("counter.wasm", &counter, 1);
    let entity = entities[0];

    let broken = [
        Broken {
            what: "truncated bytes",
            bytes: counter[..counter.len() / 2].to_vec(),
            stage: FailureStage::Compile,
            entity: None,
            cause: "not a valid component",
        },
        Broken {
            what: "a core module",
            bytes: core_module(),
            stage: FailureStage::Compile,
            entity: None,
            cause: "core WebAssembly module",
        },
        Broken {
            what: "a component of another world",
            bytes: other_world(),
            stage: FailureStage::Link,
            entity: None,
            cause: "",
        },
        Broken {
            what: "an init that traps",
            bytes: trapping_init(),
            stage: FailureStage::Init,
            entity: Some(entity),
            cause: "",
        },
    ];
    let mut last_generation = 1;
    for Broken {
        what,
        bytes,
        stage,
        entity: failed_entity,
        cause,
    } in broken
    {
        // Loads run concurrently: a slower load of an earlier file may
        // report after this one, so wait for this file's own failure.
        let before = seen(&app).failed.len();
        assets.save(&app, "counter.wasm", &bytes);
        let this_failure = |app: &App| {
            (seen(app).failed[before..].iter())
                .rfind(|failure| failure.stage == stage && failure.cause.contains(cause))
                .cloned()
        };
        update_until(&mut app, what, |app| this_failure(app).is_some());
        let failure = this_failure(&app).unwrap();
        assert_eq!(failure.entity, failed_entity, "{what}");
        assert!(failure.generation > last_generation, "{what}: {failure}");
        last_generation = failure.generation;
        assert_eq!(&*failure.path, "modules/counter.wasm", "{what}");
        assert_eq!(
            generation(&app, entity),
            Some(1),
            "{what}: generation 1 keeps running"
        );
        assert!(seen(&app).reloaded.is_empty(), "{what}");
    }
    let failed_generation = runtime(&app)
        .module(runtime(&app).script(entity).unwrap().module())
        .unwrap()
        .generation();
    assert!(failed_generation >= 5, "{failed_generation}");

    // Fixing the file brings the next generation, with the count of generation 1.
    assets.save(&app, "counter.wasm", &counter);
    update_until(&mut app, "the fixed file to run", |app| {
        !seen(app).reloaded.is_empty()
    });
    let fixed = seen(&app).reloaded.last().unwrap().script.generation;
    assert!(fixed > failed_generation, "{fixed}");
    assert_eq!(generation(&app, entity), Some(fixed));
    assert_eq!(seen(&app).lines_of(entity), ["starts=1", "starts=2"]);
    assert!(
        runtime(&app)
            .script(entity)
            .unwrap()
            .last_failure()
            .is_none()
    );
}

/// Starts `modules/counter.wasm` as `first`, then saves the counter guest
/// over it, and returns the failure that reload reported.
fn reload_onto_counter(first: Vec<u8>) -> (App, Entity, ModuleFailed) {
    let (assets, mut app, entities) = start_scripts_with_fake_watcher("counter.wasm", &first, 1);
    let entity = entities[0];
    save_counter(&mut app, &assets, &guest_bytes("counter"));
    let failure = seen(&app)
        .failed
        .last()
        .cloned()
        .expect("the reload failed");
    (app, entity, failure)
}

#[test]
fn state_the_new_generation_refuses_keeps_the_old_one_running() {
    let (app, entity, failure) = reload_onto_counter(script_wat("", ZEROES, SAVES_ABC, ""));
    assert_eq!(failure.stage, FailureStage::Restore);
    assert_eq!(failure.entity, Some(entity));
    assert!(
        failure.cause.contains("expected 8 bytes of state, got 3"),
        "{}",
        failure.cause
    );
    assert_eq!(generation(&app, entity), Some(1));
    assert!(
        seen(&app).lines_of(entity).is_empty(),
        "the counter's init never ran"
    );
}

/// A running instance whose `save-state` faults during a hot reload is an
/// instance that faulted: wasmtime never enters it again, so it is dropped
/// and counted, and the script restarts after the backoff on the newest
/// generation, without state. Messages sent meanwhile wait for it; none
/// reaches the dead instance.
#[test]
fn a_save_state_that_faults_is_the_running_instances_fault() {
    let mischief = guest_bytes("mischief");
    for (name, is_fault) in [
        (
            "save-trap",
            (|fault| matches!(fault, FaultKind::Trap { .. })) as fn(&FaultKind) -> bool,
        ),
        ("save-loop", |fault| *fault == FaultKind::OutOfCpu),
        ("save-grow", |fault| *fault == FaultKind::OutOfMemory),
        ("save-recurse", |fault| *fault == FaultKind::StackOverflow),
    ] {
        let file = format!("{name}.wasm");
        let (assets, mut app, entities) = start_scripts_with_fake_watcher(&file, &mischief, 1);
        let entity = entities[0];
        assets.save(&app, &file, &rebuilt(&mischief, 1));
        update_until(&mut app, "the save to fault", |app| {
            !seen(app).failed.is_empty()
        });

        let failure = seen(&app).failed[0].clone();
        assert_eq!(
            (failure.stage, failure.generation, failure.entity),
            (FailureStage::Save, 1, Some(entity)),
            "{name}: the running generation faulted"
        );
        assert!(
            failure.fault.as_ref().is_some_and(is_fault),
            "{name}: {failure}"
        );
        assert_eq!(
            generation(&app, entity),
            None,
            "{name}: not reported running"
        );

        let lines_before = seen(&app).lines_of(entity).len();
        for _ in 0..30 {
            app.world_mut()
                .write_message(HostMessage::to_entity(entity, "poke", b"".to_vec()));
            app.update();
        }
        let script = runtime(&app).script(entity).unwrap();
        assert_eq!(
            script.generation(),
            Some(2),
            "{name}: the new generation runs"
        );
        assert_eq!(
            (script.stats().faults, script.stats().restarts),
            (1, 1),
            "{name}: one fault, one restart"
        );
        assert_eq!(
            seen(&app).failed.len(),
            1,
            "{name}: {:?}",
            seen(&app).failed
        );
        assert!(
            seen(&app).lines_of(entity).len() > lines_before,
            "{name}: the new generation ticks"
        );
    }
}

#[test]
fn a_module_loaded_again_with_bytes_it_had_is_not_compiled_again() {
    let counter = guest_bytes("counter");
    let (assets, mut app, entities) = start_scripts_with_fake_watcher("counter.wasm", &counter, 1);
    let compiles = |app: &App| app.world().resource::<WasmEngine>().compiles();
    assert_eq!(compiles(&app), 1);

    // The same bytes under a second path.
    assets.write("twin.wasm", &counter);
    let twin = spawn_script(&mut app, "twin.wasm");
    update_until(&mut app, "the twin to start", |app| {
        generation(app, twin).is_some()
    });
    assert_eq!(compiles(&app), 1, "one compile for both paths");

    // A new version, then back to the first: only the new one compiles.
    save_counter(&mut app, &assets, &rebuilt(&counter, 1));
    save_counter(&mut app, &assets, &counter);
    assert_eq!(generation(&app, entities[0]), Some(3));
    assert_eq!(compiles(&app), 2);
    assert_eq!(seen(&app).lines_of(entities[0]).last(), Some(&"starts=3"));
}

/// What the runtime had applied of `counter.wasm` at the end of each frame:
/// (its newest read applied, its generation).
#[derive(Resource, Default)]
struct Applied(Vec<(u64, u32)>);

#[test]
fn the_last_save_wins_however_the_loads_finish() {
    let counter = guest_bytes("counter");
    let (assets, mut app, entities) = start_scripts_with_fake_watcher("counter.wasm", &counter, 2);
    let module = app.world().get::<WasmScript>(entities[0]).unwrap().0.id();
    app.init_resource::<Applied>().add_systems(
        Last,
        move |runtime: Res<WasmRuntime>, mut applied: ResMut<Applied>| {
            let status = runtime.module(module).unwrap();
            applied.0.push((status.applied_read(), status.generation()));
        },
    );

    let builds: Vec<Vec<u8>> = (1..=30).map(|build| rebuilt(&counter, build)).collect();
    for build in &builds {
        assets.save(&app, "counter.wasm", build);
        app.update();
    }
    // The first load and the 30 saves: 31 reads.
    update_until(&mut app, "the newest read applied and running", |app| {
        let status = runtime(app).module(module).unwrap();
        status.applied_read() == 31
            && (entities.iter())
                .all(|&entity| generation(app, entity) == Some(status.loaded_generation()))
    });
    run_frames(&mut app, 30);

    let engine = app.world().resource::<WasmEngine>().clone();
    let last = WasmModule::from_bytes(&engine, "last", &builds[29]).unwrap();
    let modules = app.world().resource::<Assets<WasmModule>>();
    let running = modules.get(module).unwrap();
    assert_eq!(
        running.content_hash(),
        last.content_hash(),
        "the last saved bytes"
    );
    assert_eq!(running.read(), 31);
    let status = runtime(&app).module(module).unwrap();
    for &entity in &entities {
        assert_eq!(generation(&app, entity), Some(status.loaded_generation()));
    }
    // Each new version read is one generation, and nothing older ever came
    // back.
    let applied = &app.world().resource::<Applied>().0;
    for pair in applied.windows(2) {
        let [(read, generation), (next_read, next_generation)] = pair else {
            unreachable!()
        };
        assert!(next_read >= read, "{pair:?}");
        // A read of bytes the one before had (the file was saved again
        // before the read began) is a repeat: no generation.
        assert!(
            next_generation - generation <= u32::from(next_read != read),
            "at most one generation per read applied: {pair:?}"
        );
    }
}

/// After an update that failed to start (its `init` traps), the old
/// generation keeps running; when it then faults, its restart is that same
/// old generation, not the broken newer one.
#[test]
fn a_restart_after_a_failed_update_starts_the_generation_that_was_running() {
    // Misbehaves on requests only: a fault on demand.
    let (assets, mut app, entities) =
        start_scripts_with_fake_watcher("ask-trap.wasm", &guest_bytes("mischief"), 1);
    let bad = entities[0];
    assets.save(&app, "ask-trap.wasm", &trapping_init());
    update_until(&mut app, "the update to fail at init", |app| {
        (seen(app).failed.iter())
            .any(|failure| failure.generation == 2 && failure.stage == FailureStage::Init)
    });
    assert_eq!(generation(&app, bad), Some(1), "the old generation runs on");

    let fault = app
        .world_mut()
        .ask_script::<_, ()>(bad, "mischief/act", &());
    assert!(
        matches!(fault, Err(bevy_hotwasm::AskError::Fault { .. })),
        "{fault:?}"
    );
    update_until(&mut app, "the restart", |app| {
        generation(app, bad).is_some()
    });
    assert_eq!(
        generation(&app, bad),
        Some(1),
        "restarted on the generation that ran"
    );
    // It runs: it answers (and faults) again.
    let again = app
        .world_mut()
        .ask_script::<_, ()>(bad, "mischief/act", &());
    assert!(
        matches!(again, Err(bevy_hotwasm::AskError::Fault { .. })),
        "{again:?}"
    );
}
