//! The smallest game with a script: the plugin, one entity with a
//! `WasmScript`, and the script's first words. Headless (the quick start in
//! the README is the same with `DefaultPlugins` and a window).
//!
//! ```sh
//! cargo run --example minimal
//! ```
//!
//! It logs what `assets/modules/hello.wasm` says when it starts, then quits.

use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_hotwasm::prelude::*;

fn main() -> AppExit {
    App::new()
        .add_plugins((
            MinimalPlugins,
            LogPlugin::default(),
            AssetPlugin::default(),
            HotWasmPlugin {
                // Unsigned modules from assets/ in development builds only: a
                // release build runs modules signed by a key it trusts.
                trust: TrustPolicy::new().allow_unsigned_local(cfg!(debug_assertions)),
                ..default()
            },
        ))
        .add_systems(
            Startup,
            |mut commands: Commands, assets: Res<AssetServer>| {
                commands.spawn(WasmScript(assets.load("modules/hello.wasm")));
            },
        )
        .add_systems(Update, quit_once_it_spoke.after(WasmSystems::Run))
        .run()
}

/// The script's log lines arrive as `ModuleLogged` messages (and in the
/// log); the first one means it ran.
fn quit_once_it_spoke(
    mut lines: MessageReader<bevy_hotwasm::ModuleLogged>,
    mut exit: MessageWriter<AppExit>,
) {
    for line in lines.read() {
        info!("{} said: {}", line.script.path, line.message);
        exit.write(AppExit::Success);
    }
}
