//! A key watch driving a value: a designer (here, a system) writes
//! `tuning/speed` in the key-value store; the script `guests/watcher`
//! watches that key and hears every change as it happens, with no polling.
//!
//! ```sh
//! cargo run --example tuning_watch
//! ```
//!
//! In a game the store is usually on disk (`KvStore::open_dir`), so a
//! person can edit `tuning/speed` by hand while the game runs: see the
//! book's key-value chapter.

use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_hotwasm::ModuleLogged;
use bevy_hotwasm::prelude::*;

/// The values the designer tries, one a frame once the script runs.
const SPEEDS: [&str; 3] = ["1.5", "2.5", "4"];

fn main() -> AppExit {
    App::new()
        .add_plugins((
            MinimalPlugins,
            LogPlugin::default(),
            AssetPlugin::default(),
            HotWasmPlugin {
                trust: TrustPolicy::new().allow_unsigned_local(cfg!(debug_assertions)),
                ..default()
            },
        ))
        .add_systems(
            Startup,
            |mut commands: Commands, assets: Res<AssetServer>| {
                commands.spawn(WasmScript(assets.load("modules/watcher.wasm")));
            },
        )
        .add_systems(Update, (tune, hear_the_script).after(WasmSystems::Run))
        .run()
}

/// Writes the next speed, once the script runs (it watches from its `init`).
fn tune(
    scripts: Query<Entity, With<WasmScript>>,
    runtime: Res<WasmRuntime>,
    mut store: ResMut<KvStore>,
    mut written: Local<usize>,
) {
    let running = |entity| {
        runtime
            .script(entity)
            .and_then(|s| s.generation())
            .is_some()
    };
    if *written == SPEEDS.len() || !scripts.iter().any(running) {
        return;
    }
    let speed = SPEEDS[*written];
    store
        .set("tuning", "speed", speed.as_bytes())
        .expect("a valid bucket and key");
    info!("the designer sets tuning/speed to {speed}");
    *written += 1;
}

/// The script logs each change of `tuning/speed` it hears (`… /kv/tuning
/// speed = "2.5" …`); quits once it heard them all.
fn hear_the_script(
    mut lines: MessageReader<ModuleLogged>,
    mut heard: Local<usize>,
    mut exit: MessageWriter<AppExit>,
) {
    for line in lines
        .read()
        .filter(|line| line.message.contains("/kv/tuning speed = "))
    {
        info!("the script heard: {}", line.message);
        *heard += 1;
    }
    if *heard == SPEEDS.len() {
        exit.write(AppExit::Success);
    }
}
