//! Typed components shared with a script: `game_types` defines `Position`,
//! `Target` and `Speed` once, for the game (with Bevy's derives) and for
//! scripts (with the SDK's). The script, `guests/mover`, moves its entity
//! towards its `Target` at its `Speed` in its per-frame `update`; the game
//! only reads where the entity is.
//!
//! ```sh
//! cargo run --example components
//! ```

use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_hotwasm::prelude::*;
use game_types::{Position, Speed, Target};

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
        // Scripts reach components through reflection: register them.
        .register_type::<Position>()
        .register_type::<Target>()
        .register_type::<Speed>()
        .add_systems(
            Startup,
            |mut commands: Commands, assets: Res<AssetServer>| {
                commands.spawn((
                    WasmScript(assets.load("modules/mover.wasm")),
                    Position::default(),
                    Target { x: 10.0, y: 0.0 },
                    Speed(5.0),
                ));
            },
        )
        .add_systems(Update, follow.after(WasmSystems::Run))
        .run()
}

/// Logs where the entity is each time it has moved another unit; quits
/// when it has arrived.
fn follow(
    moved: Query<(&Position, &Target), Changed<Position>>,
    mut shown: Local<f32>,
    mut exit: MessageWriter<AppExit>,
) {
    for (position, target) in &moved {
        if position.x >= *shown + 1.0 {
            *shown = position.x.floor();
            info!(
                "at ({:.2}, {:.2}), heading for ({}, {})",
                position.x, position.y, target.x, target.y
            );
        }
        if (target.x - position.x).abs() < 0.01 {
            info!("arrived");
            exit.write(AppExit::Success);
        }
    }
}
