//! Guest tasks in virtual time, driven by `TimeUpdateStrategy::ManualDuration`
//! (every frame moves virtual time by `FRAME_TIME`, 100 ms). The `ticker`
//! guest ticks every 100 ms and logs once 250 ms after it starts; every
//! test runs it and its Zig twin `zig_ticker`, which must behave the same.

use hotwasm_test_support::*;
use std::time::Duration;

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy_hotwasm::diagnostics::{RECENT_RUNS, TaskDetails};
use bevy_hotwasm::prelude::*;

/// The Rust `ticker` and its Zig twin.
const TICKERS: [&str; 2] = ["ticker", "zig_ticker"];

/// An app running the guest `name` as `ticker.wasm`.
fn ticker(name: &str) -> (AssetDir, App, Entity) {
    let (assets, app, entities) = start_scripts("ticker.wasm", &guest_bytes(name), 1, None);
    (assets, app, entities[0])
}

/// The lines `entity` logged that start with `prefix`.
fn lines_starting(app: &App, entity: Entity, prefix: &str) -> Vec<String> {
    seen(app)
        .lines_of(entity)
        .into_iter()
        .filter(|line| line.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_one_shot_task_runs_once_at_the_first_frame_past_its_time() {
    for name in TICKERS {
        let (_assets, mut app, entity) = ticker(name);

        // Started at t; the task is due at t + 250 ms: frames at t + 100 and
        // t + 200 are too early, t + 300 runs it.
        run_frames(&mut app, 2);
        assert!(lines_starting(&app, entity, "once").is_empty());
        run_frames(&mut app, 1);
        assert_eq!(lines_starting(&app, entity, "once"), ["once after 300ms"]);
        run_frames(&mut app, 20);
        assert_eq!(lines_starting(&app, entity, "once"), ["once after 300ms"]);
    }
}

#[test]
fn a_repeating_task_runs_every_interval_until_cancelled() {
    for name in TICKERS {
        let (_assets, mut app, entity) = ticker(name);

        run_frames(&mut app, 10);
        let ticks: Vec<String> = (1..=10)
            .map(|n| format!("tick {n} gen=1 missed=0"))
            .collect();
        assert_eq!(lines_starting(&app, entity, "tick"), ticks);

        app.world_mut()
            .write_message(HostMessage::to_entity(entity, "ticker/cancel", []));
        run_frames(&mut app, 10);
        // Tasks run before messages: the 11th tick still ran in the cancelling frame.
        assert_eq!(lines_starting(&app, entity, "tick").len(), 11);
        assert_eq!(
            lines_starting(&app, entity, "cancelled"),
            ["cancelled after 11 ticks"]
        );
    }
}

#[test]
fn a_long_frame_runs_a_repeating_task_once_and_counts_what_it_skipped() {
    for name in TICKERS {
        let (_assets, mut app, entity) = ticker(name);
        app.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_millis(
            250,
        )));

        run_frames(&mut app, 4);

        // Ticks are due every 100 ms from the start; frames end at 250, 500, 750, 1000.
        assert_eq!(
            lines_starting(&app, entity, "tick"),
            [
                "tick 1 gen=1 missed=1",
                "tick 2 gen=1 missed=2",
                "tick 3 gen=1 missed=1",
                "tick 4 gen=1 missed=2",
            ]
        );
    }
}

#[test]
fn pausing_virtual_time_pauses_tasks() {
    for name in TICKERS {
        let (_assets, mut app, entity) = ticker(name);
        run_frames(&mut app, 1);
        assert_eq!(lines_starting(&app, entity, "tick").len(), 1);

        app.world_mut().resource_mut::<Time<Virtual>>().pause();
        run_frames(&mut app, 10);
        assert_eq!(lines_starting(&app, entity, "tick").len(), 1);
        assert!(lines_starting(&app, entity, "once").is_empty());

        app.world_mut().resource_mut::<Time<Virtual>>().unpause();
        run_frames(&mut app, 1);
        assert_eq!(lines_starting(&app, entity, "tick").len(), 2);
    }
}

#[test]
fn scheduling_past_the_cap_is_an_error_for_the_guest_not_a_crash() {
    for name in TICKERS {
        let (_assets, mut app, entity) = ticker(name);
        app.world_mut()
            .write_message(HostMessage::to_entity(entity, "ticker/flood", []));
        run_frames(&mut app, 1);

        let refused = lines_starting(&app, entity, "scheduled");
        assert_eq!(refused.len(), 1);
        assert!(
            refused[0].ends_with("then: Scheduler(Error::TooManyTasks(1024))"),
            "{}",
            refused[0]
        );
        let ticks = lines_starting(&app, entity, "tick").len();
        run_frames(&mut app, 1);
        assert_eq!(
            lines_starting(&app, entity, "tick").len(),
            ticks + 1,
            "still ticking"
        );
        assert!(seen(&app).failed.is_empty());
    }
}

#[test]
fn after_a_reload_only_the_new_generations_tasks_run() {
    for name in TICKERS {
        let ticker_bytes = guest_bytes(name);
        let (assets, mut app, entities) =
            start_scripts_with_fake_watcher("ticker.wasm", &ticker_bytes, 1);
        let entity = entities[0];
        run_frames(&mut app, 3);

        assets.save(&app, "ticker.wasm", &rebuilt(&ticker_bytes, 1));
        update_until(&mut app, "the reload", |app| !seen(app).reloaded.is_empty());
        let before = seen(&app).lines_of(entity).len();
        run_frames(&mut app, 5);

        let after: Vec<&str> = seen(&app).lines_of(entity)[before..].to_vec();
        let ticks: Vec<&str> = after
            .iter()
            .copied()
            .filter(|l| l.starts_with("tick"))
            .collect();
        assert_eq!(ticks.len(), 5, "{after:?}");
        assert!(ticks.iter().all(|line| line.contains("gen=2")), "{after:?}");
        // The count carried over through save-state, the tasks did not.
        let first_new: u64 = ticks[0]["tick ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(first_new > 3, "{after:?}");
    }
}

#[test]
fn the_status_shows_each_instances_tasks_subscriptions_and_memory() {
    for name in TICKERS {
        let (_assets, mut app, entity) = ticker(name);
        let details = |app: &App| runtime(app).script(entity).unwrap().details().clone();
        let started = details(&app);
        let every = |task: &TaskDetails| task.interval;
        assert_eq!(
            started.tasks.iter().map(every).collect::<Vec<_>>(),
            [Some(Duration::from_millis(100)), None],
            "the tick, then the one-shot: {:?}",
            started.tasks
        );
        assert_eq!(started.subscriptions, ["ticker/cancel", "ticker/flood"]);
        assert!(started.watches.is_empty());
        assert!(!started.every_frame);
        assert!(started.memory_bytes >= 65_536, "{}", started.memory_bytes);

        // The one-shot ran; the tick moved on; cancelling empties the list.
        run_frames(&mut app, 3);
        let later = details(&app);
        assert_eq!(later.tasks.len(), 1);
        assert!(later.tasks[0].due > started.tasks[0].due);
        app.world_mut()
            .write_message(HostMessage::to_entity(entity, "ticker/cancel", []));
        run_frames(&mut app, 1);
        assert!(details(&app).tasks.is_empty());
    }
}

#[test]
fn the_status_keeps_the_guest_time_of_the_last_300_runs() {
    for name in TICKERS {
        let (_assets, mut app, entity) = ticker(name);
        run_frames(&mut app, RECENT_RUNS as usize + 10);
        let runs = runtime(&app).runs();
        let recent: Vec<(u64, Duration)> = runtime(&app)
            .script(entity)
            .unwrap()
            .recent_guest_time()
            .collect();
        // Ticking every frame: one entry per run, the oldest dropped.
        assert_eq!(recent.len() as u64, RECENT_RUNS);
        assert_eq!(recent.last().unwrap().0, runs);
        assert_eq!(recent[0].0, runs - RECENT_RUNS + 1);
        assert!(recent.iter().all(|(_, time)| !time.is_zero()));
    }
}
