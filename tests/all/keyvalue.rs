//! Guests reach the key-value store through `wasi:keyvalue@0.2.0-draft2`:
//! `upstream_kv` is written against upstream wasi-keyvalue alone,
//! `pairs_kv` against the other shape of `get-many` some SDKs ship, and
//! their writes reach other guests' watches like any change.

use bevy::prelude::*;
use bevy_hotwasm::FailureStage;
use bevy_hotwasm::kv::KvOrigin;
use bevy_hotwasm::prelude::*;
use hotwasm_test_support::*;

/// An app with a store in `store_dir` running `modules` (each on its own
/// entity, in order), returned once every instance has started.
fn start_with_store(
    assets: &AssetDir,
    store_dir: &std::path::Path,
    modules: &[&str],
) -> (App, Vec<Entity>) {
    let mut app = app(assets, None);
    app.insert_resource(KvStore::open_dir(store_dir).unwrap());
    for module in modules {
        assets.write(&format!("{module}.wasm"), &guest_bytes(module));
    }
    let entities: Vec<Entity> = modules
        .iter()
        .map(|module| spawn_script(&mut app, &format!("{module}.wasm")))
        .collect();
    update_until(&mut app, "every instance to start", |app| {
        entities.iter().all(|&e| generation(app, e).is_some())
    });
    (app, entities)
}

/// Asserts each (bucket, key, value as text); `None`: not set.
fn assert_values(app: &App, expected: &[(&str, &str, Option<&str>)]) {
    let store = app.world().resource::<KvStore>();
    for (bucket, key, value) in expected {
        let actual = store.get(bucket, key).unwrap();
        let actual = actual.map(|bytes| String::from_utf8(bytes).unwrap());
        assert_eq!(actual.as_deref(), *value, "{bucket}/{key}");
    }
}

#[test]
fn the_upstream_guest_imports_nothing_of_ours_but_types() {
    let engine = wasmtime::Engine::default();
    let component =
        wasmtime::component::Component::new(&engine, guest_bytes("upstream_kv")).unwrap();
    let imports: Vec<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    assert!(
        imports
            .iter()
            .any(|name| name == "wasi:keyvalue/store@0.2.0-draft2"),
        "{imports:?}"
    );
    let ours: Vec<&String> = imports
        .iter()
        .filter(|name| !name.starts_with("wasi:"))
        .collect();
    // `types` holds the record `handle-batch` is declared with: no functions.
    assert_eq!(ours, ["hotwasm:script/types@0.4.0"]);
}

#[test]
fn a_guest_written_against_upstream_wasi_keyvalue_reads_and_writes_the_store() {
    let assets = AssetDir::new();
    let store_dir = tempfile::tempdir().unwrap();
    {
        let mut store = KvStore::open_dir(store_dir.path()).unwrap();
        store.set("tuning", "greeting", b"hello").unwrap();
        store.set("tuning", "speed", b"2.5").unwrap();
        store.set("stats", "upstream/stale", b"old").unwrap();
    }

    let (app, guests) = start_with_store(&assets, store_dir.path(), &["upstream_kv"]);
    assert_values(
        &app,
        &[
            ("stats", "upstream/launches", Some("1")),
            ("scores", "player/upstream", Some("1")),
            ("stats", "upstream/greeting", Some("hello")),
            ("stats", "upstream/tuning-keys", Some("2")),
            ("stats", "upstream/alive", Some("yes")),
            ("stats", "upstream/got", Some("upstream/alive=yes, not set")),
            ("stats", "upstream/stale", None),
            ("stats", "upstream/log", Some("started\n")),
        ],
    );
    // Its writes are changes like any other, made by its entity.
    let mut app = app;
    run_frames(&mut app, 2);
    let changes: Vec<(&str, &str, KvOrigin)> = seen(&app)
        .kv
        .iter()
        .map(|change| (change.bucket.as_str(), change.key.as_str(), change.origin))
        .collect();
    let by_guest = KvOrigin::Guest(guests[0]);
    assert_eq!(
        changes,
        [
            ("stats", "upstream/launches", by_guest),
            ("scores", "player/upstream", by_guest),
            ("stats", "upstream/greeting", by_guest),
            ("stats", "upstream/tuning-keys", by_guest),
            ("stats", "upstream/alive", by_guest),
            ("stats", "upstream/got", by_guest),
            ("stats", "upstream/stale", by_guest),
            ("stats", "upstream/log", by_guest),
        ]
    );
    drop(app);

    // A second start of the game continues from what the first one wrote.
    let (app, _) = start_with_store(&assets, store_dir.path(), &["upstream_kv"]);
    assert_values(
        &app,
        &[
            ("stats", "upstream/launches", Some("2")),
            ("stats", "upstream/log", Some("started\nstarted\n")),
        ],
    );
}

#[test]
fn guests_with_either_shape_of_get_many_run_side_by_side() {
    let assets = AssetDir::new();
    let store_dir = tempfile::tempdir().unwrap();
    let (app, _) = start_with_store(&assets, store_dir.path(), &["pairs_kv", "upstream_kv"]);
    assert_values(
        &app,
        &[
            (
                "stats",
                "pairs/got",
                Some("pairs/a=1, pairs/missing not set, pairs/b=2"),
            ),
            ("stats", "upstream/got", Some("upstream/alive=yes, not set")),
        ],
    );
}

#[test]
fn a_counter_that_is_not_a_number_is_refused_and_the_guest_reports_it() {
    let assets = AssetDir::new();
    let store_dir = tempfile::tempdir().unwrap();
    KvStore::open_dir(store_dir.path())
        .unwrap()
        .set("stats", "upstream/launches", b"many")
        .unwrap();

    let mut app = app(&assets, None);
    app.insert_resource(KvStore::open_dir(store_dir.path()).unwrap());
    assets.write("upstream_kv.wasm", &guest_bytes("upstream_kv"));
    let guest = spawn_script(&mut app, "upstream_kv.wasm");
    update_until(&mut app, "init to fail", |app| !seen(app).failed.is_empty());

    let failure = &seen(&app).failed[0];
    assert_eq!(failure.entity, Some(guest));
    assert_eq!(failure.stage, FailureStage::Init);
    assert!(
        failure.cause.contains("not a decimal integer"),
        "{}",
        failure.cause
    );
}

#[test]
fn a_guest_sees_another_guests_writes() {
    let assets = AssetDir::new();
    let store_dir = tempfile::tempdir().unwrap();
    let (mut app, entities) = start_with_store(&assets, store_dir.path(), &["watcher"]);
    let watcher = entities[0];
    // Only now, so that the watch exists before the write.
    assets.write("upstream_kv.wasm", &guest_bytes("upstream_kv"));
    spawn_script(&mut app, "upstream_kv.wasm");

    update_until(&mut app, "the watcher to see the score", |app| {
        seen(app)
            .lines_of(watcher)
            .contains(&r#"score player/upstream = "1""#)
    });
}

#[test]
fn own_writes_reach_every_watch_unless_it_skips_them() {
    let assets = AssetDir::new();
    let store_dir = tempfile::tempdir().unwrap();
    let (mut app, entities) = start_with_store(&assets, store_dir.path(), &["watcher"]);
    let watcher = entities[0];
    let start = seen(&app).lines_of(watcher).len();

    app.world_mut()
        .write_message(HostMessage::to_entity(watcher, "watcher/set-score", *b"5"));
    run_frames(&mut app, 3);
    app.world_mut()
        .resource_mut::<KvStore>()
        .set("scores", "player/watcher", b"6")
        .unwrap();
    run_frames(&mut app, 2);

    assert_eq!(
        seen(&app).lines_of(watcher)[start..],
        [
            r#"score player/watcher = "5""#,
            r#"score player/watcher = "6""#,
            r#"someone else set my score to "6""#,
        ]
    );
}
