//! The key-value store in a running app: changes become `KvChanged`
//! messages, hand edits in a bucket directory are seen through the real
//! file watcher, and the store outlives the app.

use bevy::prelude::*;
use bevy_hotwasm::kv::KvOrigin;
use bevy_hotwasm::{KvChanged, KvStore};
use hotwasm_test_support::*;

fn app_with_store(assets: &AssetDir, dir: &std::path::Path) -> App {
    let mut app = app(assets, None);
    app.insert_resource(KvStore::open_dir(dir).unwrap());
    app
}

fn changes(app: &App) -> Vec<(String, Option<&[u8]>, KvOrigin)> {
    seen(app)
        .kv
        .iter()
        .map(|c: &KvChanged| (c.key.clone(), c.value.as_deref(), c.origin))
        .collect()
}

#[derive(Resource)]
struct Tune(&'static [u8]);

fn tune_speed(tune: Option<Res<Tune>>, mut store: ResMut<KvStore>) {
    if let Some(tune) = tune {
        store.set("tuning", "speed", tune.0).unwrap();
    }
}

#[test]
fn writes_from_systems_and_from_outside_the_game_become_changes() {
    let assets = AssetDir::new();
    let dir = tempfile::tempdir().unwrap();
    let mut app = app_with_store(&assets, dir.path());
    app.add_systems(Startup, |mut commands: Commands| {
        commands.insert_resource(Tune(b"1.0"))
    })
    .add_systems(
        Update,
        (tune_speed, |mut c: Commands| c.remove_resource::<Tune>()).chain(),
    );

    update_until(&mut app, "the system's write", |app| {
        !seen(app).kv.is_empty()
    });
    assert_eq!(
        changes(&app),
        [("speed".to_string(), Some(&b"1.0"[..]), KvOrigin::Host)]
    );

    // A designer edits the value by hand while the game runs.
    std::fs::write(dir.path().join("tuning").join("speed"), b"2.5").unwrap();
    update_until(&mut app, "the hand edit", |app| seen(app).kv.len() == 2);
    std::fs::remove_file(dir.path().join("tuning").join("speed")).unwrap();
    update_until(&mut app, "the hand delete", |app| seen(app).kv.len() == 3);
    run_frames(&mut app, 20);

    assert_eq!(
        changes(&app),
        [
            ("speed".to_string(), Some(&b"1.0"[..]), KvOrigin::Host),
            ("speed".to_string(), Some(&b"2.5"[..]), KvOrigin::External),
            ("speed".to_string(), None, KvOrigin::External),
        ],
        "the game's own write is never reported as an outside edit"
    );
    let store = app.world().resource::<KvStore>();
    assert_eq!(store.get("tuning", "speed").unwrap(), None);
}

#[test]
fn the_store_survives_an_app_restart() {
    let assets = AssetDir::new();
    let dir = tempfile::tempdir().unwrap();
    {
        let mut app = app_with_store(&assets, dir.path());
        app.world_mut()
            .resource_mut::<KvStore>()
            .set("save", "level", b"7")
            .unwrap();
        app.update();
    }
    let app = app_with_store(&assets, dir.path());
    let store = app.world().resource::<KvStore>();
    assert_eq!(
        store.get("save", "level").unwrap().as_deref(),
        Some(&b"7"[..])
    );
}
