//! Runs `assets/modules/hello.wasm` headless and hot-reloads it.
//!
//! ```sh
//! cargo run --example hello
//! ```
//!
//! The module logs a greeting when it starts. While this runs, edit
//! `guests/hello/src/lib.rs` and run `scripts/build-guests.sh` in another
//! terminal: the new module is swapped in and its greeting logged, without a
//! restart. Save a broken file and the running generation stays, with a
//! warning saying why.

use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::asset::io::AssetSourceId;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_hotwasm::prelude::*;

fn main() {
    App::new()
        // Before AssetPlugin: the default asset source, with a file watcher
        // that reports a save after 50 ms instead of Bevy's 300 ms.
        .register_asset_source(
            AssetSourceId::Default,
            bevy_hotwasm::file_source_with_debounce("assets", Duration::from_millis(50)),
        )
        .add_plugins((
            MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_secs_f64(
                1.0 / 60.0,
            ))),
            LogPlugin::default(),
            AssetPlugin {
                watch_for_changes_override: Some(true),
                ..default()
            },
            HotWasmPlugin {
                // The guests here are rebuilt by hand and not signed. A game
                // passes `cfg!(debug_assertions)`: unsigned local modules in
                // its development builds, signed ones only in its releases.
                trust: TrustPolicy::new().allow_unsigned_local(true),
                ..default()
            },
        ))
        .add_systems(Startup, spawn_hello)
        .add_systems(Update, announce_reloads.after(WasmSystems::Run))
        .run();
}

fn spawn_hello(mut commands: Commands, assets: Res<AssetServer>) {
    commands.spawn(WasmScript(assets.load("modules/hello.wasm")));
    info!(
        "Running modules/hello.wasm; rebuild it with scripts/build-guests.sh to see it reload. Ctrl-C quits."
    );
}

fn announce_reloads(mut reloaded: MessageReader<ModuleReloaded>) {
    for reload in reloaded.read() {
        info!(
            "{} is now at generation {}",
            reload.script.path, reload.script.generation
        );
    }
}
