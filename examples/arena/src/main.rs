//! Arena: a small top-down shooter whose rules are Wasm guests, edited while
//! it runs.
//!
//! ```sh
//! cargo run -p arena
//! ```
//!
//! WASD or the arrows move, Space shoots at the nearest enemy. The rules live
//! in `guests/waves`, `guests/enemy-ai` (one instance per enemy), `guests/scoring`
//! and `guests/powerups`; run `cargo run -p hotwasm-cli -- watch` (`hotwasm watch`) in a second terminal,
//! edit one, save, and the game picks the new module up while it runs. Tuning
//! and the high score are files under `saves/arena/` (or `--save-dir DIR`):
//! edit `saves/arena/tuning/enemy_speed` by hand and every enemy speeds up.
//! With `--nats URL` the store lives on a NATS server instead, shared with
//! other processes: `cargo run --example tune --features nats -- enemy_speed
//! 200` in another terminal speeds the enemies up (see the book's
//! "Sharing state across processes").
//!
//! F12 opens the debug panel. `--panel` opens it at the start (`--panel-tab
//! events` on that tab; `--panel-select` shows the first module's and
//! instance's details), `--autoplay` plays by itself; `--screenshot FILE`
//! saves the window once
//! `--screenshot-at SECS` (7) of game time have passed, checks it shows the
//! arena, the player, enemies and the HUD, and exits (non-zero if it does
//! not).

mod render;

use std::path::PathBuf;
use std::time::Duration;

use bevy::asset::io::AssetSourceId;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured, save_to_disk};
use bevy::window::WindowResolution;
use bevy_egui::EguiPlugin;
use bevy_hotwasm::debug_panel::{HotWasmPanelPlugin, PanelState, PanelTab};
use bevy_hotwasm::kv::NatsOptions;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::{Compilation, Compiler};

use crate::render::ArenaRenderPlugin;
use arena::logic::{ArenaLogicPlugin, PlayerInput};
use arena::trust::{RELEASE_NEEDS_A_KEY, arena_trust, read_key};

/// Game time after which `--screenshot` captures the window, unless
/// `--screenshot-at` says otherwise: wave 1 is in.
const SCREENSHOT_AT: Duration = Duration::from_secs(7);

/// The repository this crate lives in (two folders up), in full: its
/// `assets/` hold the guests, and Bevy's file watcher matches the paths it
/// is told of against this one, so it carries no `..`.
fn repository() -> PathBuf {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    std::fs::canonicalize(path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// What the command line asked for.
#[derive(Resource, Clone, Default)]
struct Options {
    save_dir: PathBuf,
    autoplay: bool,
    screenshot: Option<PathBuf>,
    screenshot_at: Duration,
    /// Open the debug panel at the start.
    panel: bool,
    /// The panel's tab at the start.
    panel_tab: PanelTab,
    /// Show the details of the first module and instance in the panel.
    panel_select: bool,
    /// A NATS server to keep the store on, shared with other processes.
    nats: Option<String>,
    /// The folder the modules are loaded from (`modules/` in it).
    assets: PathBuf,
    /// The public key whose signatures the game trusts.
    trust_key: Option<PathBuf>,
}

impl Options {
    fn from_args() -> Result<Self, String> {
        let mut options = Options {
            save_dir: repository().join("saves/arena"),
            screenshot_at: SCREENSHOT_AT,
            assets: repository().join("assets"),
            ..default()
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--autoplay" => options.autoplay = true,
                "--panel" => options.panel = true,
                "--panel-select" => options.panel_select = true,
                "--panel-tab" => {
                    options.panel = true;
                    options.panel_tab = value("--panel-tab")?.parse()?;
                }
                "--screenshot" => options.screenshot = Some(value("--screenshot")?.into()),
                "--save-dir" => options.save_dir = value("--save-dir")?.into(),
                "--nats" => options.nats = Some(value("--nats")?),
                "--assets" => {
                    options.assets = std::path::absolute(value("--assets")?)
                        .map_err(|error| format!("--assets: {error}"))?
                }
                "--trust-key" => options.trust_key = Some(value("--trust-key")?.into()),
                "--screenshot-at" => {
                    let secs = value("--screenshot-at")?;
                    let secs: f64 = secs.parse().map_err(|_| format!("not seconds: {secs}"))?;
                    options.screenshot_at = Duration::from_secs_f64(secs.max(0.0));
                }
                other => {
                    return Err(format!(
                        "unknown argument {other}; arena [--autoplay] [--panel] \
                         [--panel-tab TAB] [--panel-select] [--screenshot FILE] [--screenshot-at SECS] \
                         [--save-dir DIR] [--nats URL] [--assets DIR] [--trust-key PUBLIC_KEY]"
                    ));
                }
            }
        }
        Ok(options)
    }
}

fn main() -> AppExit {
    let options = match Options::from_args() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("{error}");
            return AppExit::error();
        }
    };
    let release = !cfg!(debug_assertions);
    let key = match options.trust_key.as_deref().map(read_key).transpose() {
        Ok(key) => key,
        Err(error) => {
            eprintln!("--trust-key {error}");
            return AppExit::error();
        }
    };
    if release && key.is_none() {
        eprintln!("{RELEASE_NEEDS_A_KEY}");
        return AppExit::error();
    }
    let mut app = App::new();
    if let Some(url) = &options.nats {
        // Before ArenaLogicPlugin, which keeps a store the app has.
        match KvStore::connect_nats(url, NatsOptions::default()) {
            Ok(store) => app.insert_resource(store),
            Err(error) => {
                eprintln!("{error}");
                return AppExit::error();
            }
        };
    }
    // Before AssetPlugin: the default asset source, with a file watcher
    // that reports a saved module after 50 ms instead of Bevy's 300 ms. The
    // repository's `assets/`, wherever the binary is started from, unless
    // `--assets` says otherwise.
    let assets = options
        .assets
        .to_str()
        .expect("the assets folder's path is UTF-8");
    app.register_asset_source(
        AssetSourceId::Default,
        bevy_hotwasm::file_source_with_debounce(assets, Duration::from_millis(50)),
    )
    .add_plugins((
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: "bevy_hotwasm arena".into(),
                    resolution: WindowResolution::new(1280, 720),
                    ..default()
                }),
                ..default()
            })
            .set(AssetPlugin {
                file_path: assets.to_owned(),
                watch_for_changes_override: Some(true),
                ..default()
            }),
        HotWasmPlugin {
            // Unsigned local modules in development builds only.
            trust: arena_trust(release, key),
            compilation: Compilation {
                // Development builds start and reload sooner with the
                // baseline compiler; releases get the fastest guest code.
                compiler: if cfg!(debug_assertions) {
                    Compiler::Baseline
                } else {
                    Compiler::Optimizing
                },
                // Compiled modules kept for the next start.
                cache_dir: Some(repository().join("target/hotwasm-cache")),
            },
            ..default()
        },
        ArenaLogicPlugin {
            save_dir: options.save_dir.clone(),
        },
        ArenaRenderPlugin,
        EguiPlugin::default(),
        // F12 opens and closes it.
        HotWasmPanelPlugin::default(),
    ))
    .insert_resource(PanelState {
        open: options.panel,
        tab: options.panel_tab,
        ..default()
    })
    .add_systems(Startup, |options: Res<Options>| match &options.nats {
        Some(url) => info!(
            "Sharing the store on {url}; `cargo run --example tune --features nats -- \
             enemy_speed 200` changes the enemies' speed while the game runs."
        ),
        None => info!(
            "Saving to {}; edit tuning/enemy_speed there while the game runs.",
            options.save_dir.display()
        ),
    });
    if options.autoplay {
        app.add_systems(Update, autoplay.before(WasmSystems::Run));
    }
    if options.screenshot.is_some() {
        app.add_systems(Update, take_screenshot);
    }
    if options.panel_select {
        app.add_systems(Update, select_first.after(WasmSystems::Run));
    }
    app.insert_resource(options).run()
}

/// Selects the first module by path and the first instance in the panel,
/// to show their details (`--panel-select`). The module is chosen again
/// while modules load, so it is the same in every screenshot.
fn select_first(runtime: Res<WasmRuntime>, mut panel: ResMut<PanelState>) {
    let first = runtime
        .modules()
        .min_by_key(|(_, module)| module.path().to_owned());
    if let Some((id, _)) = first
        && panel.selected_module != Some(id)
    {
        panel.selected_module = Some(id);
    }
    if panel.selected_instance.is_none() {
        panel.selected_instance = runtime.scripts().next().map(|(entity, _)| entity);
    }
}

/// Circles the arena, shooting.
fn autoplay(time: Res<Time>, mut input: ResMut<PlayerInput>) {
    let turn = time.elapsed_secs() * 0.7;
    *input = PlayerInput {
        movement: Vec2::new(turn.cos(), turn.sin()) * 0.6,
        fire: true,
    };
}

/// Once, at `SCREENSHOT_AT`: saves the window, checks it, exits.
fn take_screenshot(
    time: Res<Time>,
    options: Res<Options>,
    mut commands: Commands,
    mut taken: Local<bool>,
) {
    let Some(path) = options.screenshot.clone() else {
        return;
    };
    if *taken || time.elapsed() < options.screenshot_at {
        return;
    }
    *taken = true;
    commands
        .spawn(Screenshot::primary_window())
        .observe(save_to_disk(path))
        .observe(
            |captured: On<ScreenshotCaptured>,
             panel: Res<PanelState>,
             mut exit: MessageWriter<AppExit>| {
                let facts = render::check_screenshot(&captured.image, panel.open);
                for fact in &facts {
                    info!("screenshot: {fact}");
                }
                exit.write(if facts.iter().all(|fact| fact.holds) {
                    AppExit::Success
                } else {
                    AppExit::error()
                });
            },
        );
}
