//! What a release build runs: only modules signed by a key the game
//! trusts. `hello.wasm` is signed here and runs; `counter.wasm` is not and
//! is refused, saying why. A signed module gets only what its
//! `capabilities!` manifest asks for: `hello` asks for nothing, so the game
//! warns that it is granted nothing (it only logs, which needs nothing).
//!
//! ```sh
//! cargo run --example release
//! ```
//!
//! A real game signs in its build (`hotwasm keygen` once, then
//! `hotwasm build --sign keys/release.key.pem`) and trusts its public key
//! (`TrustedKey::from_bytes(include_bytes!("../keys/release.pub.pem"))`);
//! this example makes a key and signs in memory to stay self-contained.

use bevy::asset::{AssetLoadError, AssetLoadFailedEvent};
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::trust::sign_module;
use bevy_hotwasm::{ModuleLogged, WasmModuleLoaderError};
use ed25519_dalek::SigningKey;

fn main() -> AppExit {
    // The game's key pair: the private half signs modules at build time, the
    // public half ships in the game.
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = TrustedKey::from_bytes(key.verifying_key().as_bytes()).expect("32 bytes");

    let assets = tempfile::tempdir().expect("a temporary folder");
    let modules = assets.path().join("modules");
    std::fs::create_dir_all(&modules).expect("a modules folder");
    let hello = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/modules/hello.wasm"
    ))
    .expect("the committed hello.wasm");
    std::fs::write(modules.join("hello.wasm.sig"), sign_module(&key, &hello)).expect("written");
    std::fs::write(modules.join("hello.wasm"), &hello).expect("written");
    let counter = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/modules/counter.wasm"
    ))
    .expect("the committed counter.wasm");
    std::fs::write(modules.join("counter.wasm"), counter).expect("written");

    App::new()
        .add_plugins((
            MinimalPlugins,
            LogPlugin::default(),
            AssetPlugin {
                file_path: assets.path().display().to_string(),
                ..default()
            },
            HotWasmPlugin {
                // A release's rules in every build: signatures required (the
                // default) and one trusted key.
                trust: TrustPolicy::new().with_key("release", public),
                ..default()
            },
        ))
        .add_systems(
            Startup,
            |mut commands: Commands, assets: Res<AssetServer>| {
                commands.spawn(WasmScript(assets.load("modules/hello.wasm")));
                commands.spawn(WasmScript(assets.load("modules/counter.wasm")));
            },
        )
        .add_systems(Update, report.after(WasmSystems::Run))
        .run()
}

/// Logs what ran and what was refused; quits once both are known.
fn report(
    mut lines: MessageReader<ModuleLogged>,
    mut refused: MessageReader<AssetLoadFailedEvent<WasmModule>>,
    mut seen: Local<(bool, bool)>,
    mut exit: MessageWriter<AppExit>,
) {
    for line in lines.read() {
        info!(
            "signed, running: {} says {}",
            line.script.path, line.message
        );
        seen.0 = true;
    }
    for failure in refused.read() {
        if let AssetLoadError::AssetLoaderError(error) = &failure.error
            && let Some(refusal @ WasmModuleLoaderError::Signature { .. }) =
                error.error().downcast_ref()
        {
            info!("refused: {refusal}");
            seen.1 = true;
        }
    }
    if *seen == (true, true) {
        exit.write(AppExit::Success);
    }
}
