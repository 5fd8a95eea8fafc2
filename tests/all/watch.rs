//! Watch events for key-value changes, delivered to the `watcher` guest:
//! it logs every change to `tuning/speed` and to `scores` keys under
//! `player/`.

use bevy::prelude::*;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::watch::{ChangeKind, WatchedChange};
use hotwasm_test_support::*;

fn watcher_with_store() -> (AssetDir, tempfile::TempDir, App, Entity) {
    let store_dir = tempfile::tempdir().unwrap();
    let (assets, mut app, entities) =
        start_scripts_with_fake_watcher("watcher.wasm", &guest_bytes("watcher"), 1);
    app.insert_resource(KvStore::open_dir(store_dir.path()).unwrap());
    (assets, store_dir, app, entities[0])
}

fn store(app: &mut App) -> Mut<'_, KvStore> {
    app.world_mut().resource_mut::<KvStore>()
}

/// `lines` with each `(id N, ...)` counted from the first line's id as 1:
/// ids start at a random number in each run.
fn ids_from_one(lines: Vec<String>) -> Vec<String> {
    let id = |line: &str| -> Option<u64> {
        let (_, after) = line.split_once("(id ")?;
        after.split_once(',')?.0.parse().ok()
    };
    let first = lines.iter().find_map(|line| id(line)).unwrap_or(1);
    lines
        .into_iter()
        .map(|line| match id(&line) {
            Some(n) => line.replace(&format!("(id {n},"), &format!("(id {},", n - first + 1)),
            None => line,
        })
        .collect()
}

/// Lines logged after the first `skip`.
fn lines_after(app: &App, entity: Entity, skip: usize) -> Vec<String> {
    seen(app).lines_of(entity)[skip..]
        .iter()
        .map(|line| line.to_string())
        .collect()
}

#[test]
fn a_key_watch_sees_sets_and_deletes_from_systems_and_from_files() {
    let (_assets, store_dir, mut app, watcher) = watcher_with_store();
    let start = seen(&app).lines_of(watcher).len();

    store(&mut app).set("tuning", "speed", b"1.0").unwrap();
    app.update();
    std::fs::write(store_dir.path().join("tuning").join("speed"), b"2.5").unwrap();
    update_until(&mut app, "the hand edit", |app| {
        seen(app).lines_of(watcher).len() == start + 2
    });
    store(&mut app).delete("tuning", "speed").unwrap();
    app.update();

    assert_eq!(
        ids_from_one(lines_after(&app, watcher, start)),
        [
            r#"dev.hotwasm.kv.set /kv/tuning speed = "1.0" (id 1, gen 1)"#,
            r#"dev.hotwasm.kv.set /kv/tuning speed = "2.5" (id 2, gen 1)"#,
            r#"dev.hotwasm.kv.delete /kv/tuning speed = "" (id 3, gen 1)"#,
        ]
    );
}

#[test]
fn a_prefix_watch_sees_only_its_keys_until_unwatched() {
    let (_assets, _store_dir, mut app, watcher) = watcher_with_store();
    let start = seen(&app).lines_of(watcher).len();

    let mut kv = store(&mut app);
    kv.set("scores", "player/1", b"10").unwrap();
    kv.set("scores", "team/1", b"99").unwrap();
    kv.set("other", "player/1", b"5").unwrap();
    kv.set("scores", "player/2", b"20").unwrap();
    app.update();
    app.world_mut()
        .write_message(HostMessage::to_entity(watcher, "watcher/unwatch", []));
    app.update();
    store(&mut app).set("scores", "player/1", b"11").unwrap();
    run_frames(&mut app, 2);

    assert_eq!(
        lines_after(&app, watcher, start),
        [
            r#"score player/1 = "10""#,
            r#"score player/2 = "20""#,
            "stopped watching scores",
        ]
    );
}

#[test]
fn bad_watches_are_refused_to_the_guest() {
    let (_assets, _store_dir, app, watcher) = watcher_with_store();
    let refused: Vec<&str> = seen(&app)
        .lines_of(watcher)
        .into_iter()
        .filter(|line| line.starts_with("refused"))
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].contains("InvalidBucket"), "{}", refused[0]);
    assert!(refused[0].contains("escape"), "{}", refused[0]);
}

#[test]
fn after_a_reload_only_the_new_generations_watches_fire() {
    let watcher_bytes = guest_bytes("watcher");
    let (assets, _store_dir, mut app, watcher) = watcher_with_store();
    assets.save(&app, "watcher.wasm", &rebuilt(&watcher_bytes, 1));
    update_until(&mut app, "the reload", |app| !seen(app).reloaded.is_empty());
    let start = seen(&app).lines_of(watcher).len();

    store(&mut app).set("tuning", "speed", b"3").unwrap();
    run_frames(&mut app, 2);

    assert_eq!(
        ids_from_one(lines_after(&app, watcher, start)),
        [r#"dev.hotwasm.kv.set /kv/tuning speed = "3" (id 1, gen 2)"#]
    );
}

/// Present for one frame: `damage` takes one hit point from every `Health`.
#[derive(Resource)]
struct Hit;

fn damage(hit: Option<Res<Hit>>, mut healths: Query<&mut Health>) {
    if hit.is_some() {
        for mut health in &mut healths {
            health.hp -= 1;
        }
    }
}

fn watcher_of(type_kind: &str, type_path: &str) -> (AssetDir, App, Entity) {
    let (assets, mut app, entities) =
        start_scripts("watcher.wasm", &guest_bytes("watcher"), 1, None);
    app.register_type::<Health>()
        .register_type::<Weather>()
        .add_systems(Update, damage.before(WasmSystems::Run));
    let watcher = entities[0];
    let topic = format!("watcher/{type_kind}");
    app.world_mut()
        .write_message(HostMessage::to_entity(watcher, topic, type_path));
    app.update();
    (assets, app, watcher)
}

#[test]
fn a_component_watch_sees_added_changed_and_removed_as_json() {
    let (_assets, mut app, watcher) = watcher_of("component", Health::type_path());
    let start = seen(&app).lines_of(watcher).len();

    let entity = app.world_mut().spawn(Health { hp: 3 }).id();
    app.update();
    app.insert_resource(Hit);
    app.update();
    app.world_mut().remove_resource::<Hit>();
    run_frames(&mut app, 2);
    app.world_mut().entity_mut(entity).remove::<Health>();
    run_frames(&mut app, 2);

    let source = format!("/ecs/component/{}", Health::type_path());
    let bits = entity.to_bits();
    assert_eq!(
        lines_after(&app, watcher, start),
        [
            format!(r#"dev.hotwasm.component.added {source} {bits} {{"hp":3}}"#),
            format!(r#"dev.hotwasm.component.changed {source} {bits} {{"hp":2}}"#),
            format!("dev.hotwasm.component.removed {source} {bits} "),
        ]
    );
}

#[test]
fn a_resource_watch_fires_once_per_change() {
    let (_assets, mut app, watcher) = watcher_of("resource", Weather::type_path());
    let start = seen(&app).lines_of(watcher).len();

    app.insert_resource(Weather { wind: 1.5 });
    run_frames(&mut app, 3);
    app.world_mut().resource_mut::<Weather>().wind = 4.0;
    run_frames(&mut app, 3);

    let source = format!("/ecs/resource/{}", Weather::type_path());
    assert_eq!(
        lines_after(&app, watcher, start),
        [
            format!(r#"dev.hotwasm.resource.changed {source} {{"wind":1.5}}"#),
            format!(r#"dev.hotwasm.resource.changed {source} {{"wind":4.0}}"#),
        ]
    );
}

#[test]
fn unknown_or_unfit_type_paths_are_refused_when_watched() {
    for (kind, path, error) in [
        ("component", "nope::Missing", "UnknownType"),
        ("component", Weather::type_path(), "is not a component"),
        ("resource", Health::type_path(), "is not a resource"),
    ] {
        let (_assets, app, watcher) = watcher_of(kind, path);
        let lines = seen(&app).lines_of(watcher);
        let refused = lines
            .iter()
            .rev()
            .find(|line| line.starts_with("refused"))
            .unwrap();
        assert!(refused.contains(error), "{kind} {path}: {refused}");
    }
}

#[test]
fn a_component_written_by_a_guest_reaches_every_watch_of_its_type() {
    let (assets, mut app, watcher) = watcher_of("component", Health::type_path());
    assets.write("inspector.wasm", &guest_bytes("inspector"));
    let inspector = spawn_script(&mut app, "inspector.wasm");
    let entity = app.world_mut().spawn(Health { hp: 3 }).id();
    update_until(&mut app, "the inspector to start", |app| {
        generation(app, inspector).is_some()
    });
    run_frames(&mut app, 1);
    let start = seen(&app).lines_of(watcher).len();

    let write = format!(r#"{} {} {{"hp":9}}"#, entity.to_bits(), Health::type_path());
    app.world_mut()
        .write_message(HostMessage::to_entity(inspector, "inspect/set", write));
    run_frames(&mut app, 3);

    let source = format!("/ecs/component/{}", Health::type_path());
    assert_eq!(
        lines_after(&app, watcher, start),
        [format!(
            r#"dev.hotwasm.component.changed {source} {} {{"hp":9}}"#,
            entity.to_bits()
        )],
        "seen once, the frame after the write"
    );
}

/// Every `WatchedChange` written.
#[derive(Resource, Default)]
struct Watched(Vec<WatchedChange>);

fn collect_watched(mut changes: MessageReader<WatchedChange>, mut watched: ResMut<Watched>) {
    watched.0.extend(changes.read().cloned());
}

#[test]
fn changes_a_watch_got_are_written_as_messages_only_when_asked() {
    let (_assets, mut app, _) = watcher_of("component", Health::type_path());
    app.init_resource::<Watched>()
        .add_systems(Update, collect_watched.after(WasmSystems::Run));
    app.world_mut().spawn(Health { hp: 3 });
    run_frames(&mut app, 2);
    assert!(
        app.world().resource::<Watched>().0.is_empty(),
        "off by default"
    );

    app.world_mut()
        .resource_mut::<WasmRuntime>()
        .record_watched_changes(true);
    let entity = app.world_mut().spawn(Health { hp: 5 }).id();
    // Not watched: not written.
    app.insert_resource(Weather { wind: 1.0 });
    run_frames(&mut app, 2);
    let watched: Vec<_> = app
        .world()
        .resource::<Watched>()
        .0
        .iter()
        .map(|change| {
            let json = String::from_utf8_lossy(&change.data).into_owned();
            let what = (change.kind, change.type_path.as_str(), change.entity);
            (what, json, change.watches)
        })
        .collect();
    assert_eq!(
        watched,
        [(
            (
                ChangeKind::ComponentAdded,
                Health::type_path(),
                Some(entity)
            ),
            r#"{"hp":5}"#.to_owned(),
            1
        )]
    );
}

/// One frame's events come to the guest in runs for one watch, its handler
/// looked up once per run; a handler that unwatches its own watch still
/// stops the rest of the run.
#[test]
fn a_watch_removed_by_its_own_handler_gets_no_more_events_of_the_batch() {
    let (_assets, mut app, entities) = start_scripts("echo.wasm", &guest_bytes("echo"), 1, None);
    let echo = entities[0];

    let writes = [
        ("bench", "a"),
        ("once", "a"),
        ("once", "b"),
        ("once", "c"),
        ("bench", "b"),
        ("bench", "c"),
        ("bench", "d"),
    ];
    for (bucket, key) in writes {
        store(&mut app).set(bucket, key, b"1").unwrap();
    }
    app.update();
    app.world_mut()
        .write_message(HostMessage::to_entity(echo, "report", ""));
    app.update();

    // Four changes of `bench`, and one of `once`.
    assert_eq!(seen(&app).lines_of(echo), ["counted 5"]);
}
