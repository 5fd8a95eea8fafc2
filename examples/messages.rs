//! Messages both ways: the game asks a script (`HostMessage`), from a system
//! and from another thread (`ScriptSender`), and reads its answers
//! (`ModuleMessage`). The script is `guests/echo`: it answers every `ping`
//! with a `pong` carrying the same payload.
//!
//! ```sh
//! cargo run --example messages
//! ```

use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_hotwasm::ScriptSender;
use bevy_hotwasm::prelude::*;

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
                commands.spawn(WasmScript(assets.load("modules/echo.wasm")));
            },
        )
        .add_systems(
            Update,
            (ask_once_it_runs, read_answers).after(WasmSystems::Run),
        )
        .run()
}

/// Once the script runs (it subscribes to `ping` in its `init`: a message
/// before that would find no one listening), asks it twice: from this
/// system, and from a thread of its own, as a network or file-watcher
/// callback would.
fn ask_once_it_runs(
    scripts: Query<Entity, With<WasmScript>>,
    runtime: Res<WasmRuntime>,
    mut asked: Local<bool>,
    mut ask: MessageWriter<HostMessage>,
    sender: Res<ScriptSender>,
) {
    let running = |entity| {
        runtime
            .script(entity)
            .and_then(|s| s.generation())
            .is_some()
    };
    if *asked || !scripts.iter().any(running) {
        return;
    }
    *asked = true;
    ask.write(HostMessage::to_subscribers("ping", "from a system"));
    let sender = sender.clone();
    std::thread::spawn(move || {
        let message = HostMessage::to_subscribers("ping", "from another thread");
        sender.send(message).expect("a valid topic and payload");
    });
}

/// Logs each answer; quits after both.
fn read_answers(
    mut answers: MessageReader<ModuleMessage>,
    mut heard: Local<usize>,
    mut exit: MessageWriter<AppExit>,
) {
    for answer in answers.read() {
        let payload = String::from_utf8_lossy(&answer.payload);
        info!("{} answered {}: {payload}", answer.from, answer.topic);
        *heard += 1;
    }
    if *heard == 2 {
        exit.write(AppExit::Success);
    }
}
