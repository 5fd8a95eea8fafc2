//! What bevy_hotwasm's integration tests, the arena's tests and the
//! benchmarks share: a headless app over a temporary
//! asset directory (watched by Bevy's file watcher or by a [`FakeWatcher`]),
//! message collection, bounded update loops and inline-WAT script components.

pub mod http;
pub mod nats_server;
mod watcher;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bevy::asset::io::AssetSourceId;
use bevy::asset::{AssetLoadError, AssetLoadFailedEvent};
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::trust::SignatureError;
use bevy_hotwasm::{ModuleLogged, WasmModuleLoaderError};
use tempfile::TempDir;

pub use watcher::FakeWatcher;

/// The repository's `assets/` (this crate is `tests/support` in it).
pub fn repository_assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets")
}

/// The committed build of a guest under `guests/`.
pub fn guest_bytes(name: &str) -> Vec<u8> {
    let path = repository_assets().join(format!("modules/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The same component with a custom section appended: what a rebuild with
/// changed metadata gives, new bytes running the same code. Each `build`
/// number gives different bytes.
pub fn rebuilt(component: &[u8], build: u8) -> Vec<u8> {
    let name = b"hotwasm-test-rebuild";
    let mut bytes = component.to_vec();
    // Custom section: id 0, size, name length, name, payload; sizes fit one LEB128 byte.
    bytes.extend([0, 2 + name.len() as u8, name.len() as u8]);
    bytes.extend(name);
    bytes.push(build);
    bytes
}

/// A temporary asset directory with a `modules/` folder.
pub struct AssetDir {
    dir: TempDir,
}

impl AssetDir {
    #[expect(
        clippy::new_without_default,
        reason = "each is a new temporary directory, not a default value"
    )]
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("modules")).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn path_string(&self) -> String {
        self.path().to_string_lossy().into_owned()
    }

    /// Writes `modules/<file>` in place, as `cp` or a linker would.
    pub fn write(&self, file: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join("modules").join(file);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Replaces `modules/<file>` at once (a temporary file renamed over it,
    /// as an editor saves) and reports the change through `app`'s
    /// [`FakeWatcher`], as Bevy's file watcher would after a save. At once,
    /// because the asset server may still be reading the file for an
    /// earlier change (it can reload a path more than once per event).
    pub fn save(&self, app: &App, file: &str, bytes: &[u8]) {
        let temp = self.dir.path().join(format!(".{file}.saving"));
        std::fs::write(&temp, bytes).unwrap();
        std::fs::rename(&temp, self.dir.path().join("modules").join(file)).unwrap();
        app.world()
            .resource::<FakeWatcher>()
            .modified(format!("modules/{file}"));
    }
}

/// A component the tests' guests read, write and watch by type path.
#[derive(Component, Reflect, Default, Debug, PartialEq)]
#[reflect(Component)]
pub struct Health {
    pub hp: u32,
}

/// A resource the tests' guests read and watch by type path.
#[derive(Resource, Reflect, Default)]
#[reflect(Resource)]
pub struct Weather {
    pub wind: f32,
}

/// Every message the plugin wrote, in order.
#[derive(Resource, Default)]
pub struct Seen {
    pub logged: Vec<ModuleLogged>,
    pub failed: Vec<ModuleFailed>,
    pub reloaded: Vec<ModuleReloaded>,
    pub sent: Vec<ModuleMessage>,
    pub kv: Vec<KvChanged>,
    /// Modules the trust policy refused, by kind.
    pub refused: Vec<SignatureError>,
    /// Answers to questions asked through `ScriptAsk`.
    pub answered: Vec<ScriptAnswered>,
}

impl Seen {
    /// The messages one entity logged, in order.
    pub fn lines_of(&self, entity: Entity) -> Vec<&str> {
        self.logged
            .iter()
            .filter(|line| line.script.entity == entity)
            .map(|line| line.message.as_str())
            .collect()
    }
}

fn collect(
    mut seen: ResMut<Seen>,
    mut logged: MessageReader<ModuleLogged>,
    mut failed: MessageReader<ModuleFailed>,
    mut reloaded: MessageReader<ModuleReloaded>,
    mut sent: MessageReader<ModuleMessage>,
    mut kv: MessageReader<KvChanged>,
    mut load_failures: MessageReader<AssetLoadFailedEvent<WasmModule>>,
) {
    for failure in load_failures.read() {
        if let AssetLoadError::AssetLoaderError(error) = &failure.error
            && let Some(WasmModuleLoaderError::Signature { error, .. }) =
                error.error().downcast_ref()
        {
            seen.refused.push(error.clone());
        }
    }
    seen.logged.extend(logged.read().cloned());
    seen.failed.extend(failed.read().cloned());
    seen.reloaded.extend(reloaded.read().cloned());
    seen.sent.extend(sent.read().cloned());
    seen.kv.extend(kv.read().cloned());
}

fn collect_answers(mut seen: ResMut<Seen>, mut answered: MessageReader<ScriptAnswered>) {
    seen.answered.extend(answered.read().cloned());
}

/// How far virtual time moves each frame in tests.
pub const FRAME_TIME: Duration = Duration::from_millis(100);

/// How long the file watcher in tests waits after a change.
pub const TEST_DEBOUNCE: Duration = Duration::from_millis(50);

/// A headless app with the plugin, reading assets from `assets`, whose
/// virtual time moves [`FRAME_TIME`] each frame. With a debounce, Bevy's
/// file watcher watches the assets, waiting that long after a change.
pub fn app(assets: &AssetDir, watch_debounce: Option<Duration>) -> App {
    app_with(assets, watch_debounce, unsigned_plugin(), |_| {})
}

/// The plugin with unsigned local modules allowed in every build profile
/// (release builds require signatures by default, and benches are release).
pub fn unsigned_plugin() -> HotWasmPlugin {
    HotWasmPlugin {
        trust: TrustPolicy::new().allow_unsigned_local(true),
        ..default()
    }
}

/// Like [`app`], with `plugin`'s settings, after `register_sources` has
/// registered asset sources (which must come before `AssetPlugin`).
pub fn app_with(
    assets: &AssetDir,
    watch_debounce: Option<Duration>,
    plugin: HotWasmPlugin,
    register_sources: impl FnOnce(&mut App),
) -> App {
    let mut app = App::new();
    register_sources(&mut app);
    if let Some(debounce) = watch_debounce {
        app.register_asset_source(
            AssetSourceId::Default,
            bevy_hotwasm::file_source_with_debounce(&assets.path_string(), debounce),
        );
    }
    add_test_plugins(&mut app, assets, watch_debounce.is_some(), plugin, |_| {});
    app
}

/// Like [`app`] with `plugin`'s settings, whose assets change only when a
/// test says so: [`AssetDir::save`], or the app's [`FakeWatcher`] resource.
pub fn app_with_fake_watcher(assets: &AssetDir, plugin: HotWasmPlugin) -> App {
    game_with_fake_watcher(assets, plugin, |_| {})
}

/// Like [`app_with_fake_watcher`], with a game's own plugins and resources
/// added by `game` before the app finishes building.
pub fn game_with_fake_watcher(
    assets: &AssetDir,
    plugin: HotWasmPlugin,
    game: impl FnOnce(&mut App),
) -> App {
    let (watcher_sender, watcher_receiver) = mpsc::channel();
    let mut app = App::new();
    app.register_asset_source(
        AssetSourceId::Default,
        watcher::fake_watched_source(assets.path_string(), watcher_sender),
    );
    add_test_plugins(&mut app, assets, true, plugin, game);
    let fake_watcher = watcher_receiver
        .try_recv()
        .expect("AssetPlugin started the fake watcher");
    app.insert_resource(fake_watcher);
    app
}

/// The plugins, resources and systems every test app has, over `assets`
/// (watched by the default source's watcher if `watch`).
fn add_test_plugins(
    app: &mut App,
    assets: &AssetDir,
    watch: bool,
    plugin: HotWasmPlugin,
    game: impl FnOnce(&mut App),
) {
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin {
            file_path: assets.path_string(),
            watch_for_changes_override: Some(watch),
            ..default()
        },
        plugin,
    ))
    .insert_resource(TimeUpdateStrategy::ManualDuration(FRAME_TIME))
    .init_resource::<Seen>()
    .add_systems(Last, (collect, collect_answers));
    game(app);
    // What `App::run` does before the first update: the plugin makes its
    // engine in `finish`.
    app.finish();
    app.cleanup();
}

/// Spawns an entity running `modules/<file>`.
pub fn spawn_script(app: &mut App, file: &str) -> Entity {
    let handle = app
        .world()
        .resource::<AssetServer>()
        .load(format!("modules/{file}"));
    app.world_mut().spawn(WasmScript(handle)).id()
}

/// An app that runs `modules/<file>` (written with `bytes`) on `count`
/// entities, returned once every instance has started.
pub fn start_scripts(
    file: &str,
    bytes: &[u8],
    count: usize,
    watch_debounce: Option<Duration>,
) -> (AssetDir, App, Vec<Entity>) {
    start_scripts_in(file, bytes, count, |assets| app(assets, watch_debounce))
}

/// Like [`start_scripts`], with `plugin`'s settings.
pub fn start_scripts_with(
    file: &str,
    bytes: &[u8],
    count: usize,
    plugin: HotWasmPlugin,
) -> (AssetDir, App, Vec<Entity>) {
    start_scripts_in(file, bytes, count, |assets| {
        app_with(assets, None, plugin, |_| {})
    })
}

/// Like [`start_scripts`], in an [`app_with_fake_watcher`].
pub fn start_scripts_with_fake_watcher(
    file: &str,
    bytes: &[u8],
    count: usize,
) -> (AssetDir, App, Vec<Entity>) {
    start_scripts_in(file, bytes, count, |assets| {
        app_with_fake_watcher(assets, unsigned_plugin())
    })
}

fn start_scripts_in(
    file: &str,
    bytes: &[u8],
    count: usize,
    new_app: impl FnOnce(&AssetDir) -> App,
) -> (AssetDir, App, Vec<Entity>) {
    let assets = AssetDir::new();
    assets.write(file, bytes);
    let mut app = new_app(&assets);
    let entities: Vec<Entity> = (0..count).map(|_| spawn_script(&mut app, file)).collect();
    update_until(&mut app, "every instance to start", |app| {
        entities
            .iter()
            .all(|&entity| generation(app, entity).is_some())
    });
    (assets, app, entities)
}

/// Updates the app until `done` holds, frame after frame with no pause
/// (as `bevy_asset`'s tests do), and panics naming `what` if it never does.
///
/// Loads, Bevy's file watcher and test servers work on other threads, at
/// their own speed: the loop gives up only after `MIN_FRAMES` frames *and*
/// `PATIENCE`, so neither a fast machine nor a slow one fails a test that
/// would have passed. A passing test never waits longer than its result.
pub fn update_until(app: &mut App, what: &str, mut done: impl FnMut(&mut App) -> bool) {
    const MIN_FRAMES: u32 = 10_000;
    const PATIENCE: Duration = Duration::from_secs(20);
    let started = Instant::now();
    let mut frames = 0;
    loop {
        app.update();
        frames += 1;
        if done(app) {
            return;
        }
        let waited = started.elapsed();
        if frames >= MIN_FRAMES && waited >= PATIENCE {
            panic!("gave up waiting for {what} after {frames} frames ({waited:.1?})");
        }
        // Let the threads doing the work run on a small machine.
        std::thread::yield_now();
    }
}

pub fn seen(app: &App) -> &Seen {
    app.world().resource::<Seen>()
}

pub fn runtime(app: &App) -> &WasmRuntime {
    app.world().resource::<WasmRuntime>()
}

/// The generation `entity`'s instance runs, if it runs.
pub fn generation(app: &App, entity: Entity) -> Option<u32> {
    runtime(app)
        .script(entity)
        .and_then(|script| script.generation())
}

/// Runs the test named `test` again in a process of its own, with no other
/// test beside it, and fails if it fails there. True in that process, where
/// the test's body goes on: for measurements of the whole process, such as
/// its resident memory, that tests running in parallel would disturb.
pub fn alone_in_a_process(test: &str) -> bool {
    const ALONE: &str = "HOTWASM_TEST_ALONE";
    if std::env::var_os(ALONE).is_some() {
        return true;
    }
    let run = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--test-threads=1", "--nocapture"])
        .env(ALONE, test)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && stdout.contains("1 passed"),
        "{test} in its own process: {}\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    false
}

/// Updates the app `frames` times.
pub fn run_frames(app: &mut App, frames: usize) {
    for _ in 0..frames {
        app.update();
    }
}

/// Core-function body returning a pointer to zeroed memory: `ok` for a
/// `result`, `none` for an `option`.
pub const ZEROES: &str = "(i32.const 16)";
/// Core-function body for `save-state` that saves the three bytes `abc`.
pub const SAVES_ABC: &str = "(i32.const 32)";

/// A script component in WAT: `imports` go first; `init`, `save` and
/// `batch` are the bodies of the core functions behind those exports
/// ([`ZEROES`], [`SAVES_ABC`], `unreachable` to trap, or nothing for a
/// `handle-batch` that does nothing; `handle-frame` does the same). `restore-state` accepts
/// anything; `handle-requests` answers nothing.
pub fn script_wat(imports: &str, init: &str, save: &str, batch: &str) -> Vec<u8> {
    let wat = format!(
        r#"(component
            {imports}
            (core module $m
                (memory (export "memory") 1)
                ;; option<list<u8>> at 32: some, pointer 64, length 3.
                (data (i32.const 32) "\01\00\00\00\40\00\00\00\03\00\00\00")
                (data (i32.const 64) "abc")
                (func (export "init") (result i32) {init})
                (func (export "save-state") (result i32) {save})
                (func (export "restore-state") (param i32 i32) (result i32) (i32.const 16))
                ;; Both return an empty list of changes (the zeroes at 16). The
                ;; batch has more fields than fit in parameters: it comes in memory.
                (func (export "handle-batch") (param i32) (result i32) {batch} (i32.const 16))
                (func (export "handle-frame") (param i64 i64 i64 i32 i32 i32) (result i32) {batch} (i32.const 16))
                ;; No answers: the host answers each request "no handler".
                (func (export "handle-requests") (param i64 i32 i32 i32 i32) (result i32) (i32.const 16))
                (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024)))
            (core instance $i (instantiate $m))
            (func (export "init") (result (result (error string)))
                (canon lift (core func $i "init") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
            (func (export "save-state") (result (option (list u8)))
                (canon lift (core func $i "save-state") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
            (func (export "restore-state") (param "state" (list u8)) (result (result (error string)))
                (canon lift (core func $i "restore-state") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
            (type $task-due' (record (field "id" u64) (field "missed" u32)))
            (export $task-due "task-due" (type $task-due'))
            (type $message' (record (field "topic-start" u32) (field "topic-len" u32) (field "payload-start" u32) (field "payload-len" u32) (field "sender" (option u64))))
            (export $message "message" (type $message'))
            (type $frame' (record (field "delta" u64) (field "number" u64) (field "components" (option (list u8)))))
            (export $frame "frame" (type $frame'))
            (type $batch' (record (field "now" u64) (field "tasks" (list $task-due)) (field "messages" (list $message)) (field "message-bytes" (list u8)) (field "event-headers" (list u8)) (field "event-bytes" (list u8)) (field "frame" (option $frame))))
            (export $batch "batch" (type $batch'))
            (func (export "handle-batch") (param "batch" $batch) (result (list (tuple u32 (list u8))))
                (canon lift (core func $i "handle-batch") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
            (func (export "handle-frame") (param "now" u64) (param "frame" $frame) (result (list (tuple u32 (list u8))))
                (canon lift (core func $i "handle-frame") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
            (type $request' (record (field "topic-start" u32) (field "topic-len" u32) (field "payload-start" u32) (field "payload-len" u32)))
            (export $request "request" (type $request'))
            (type $request-error' (variant (case "no-handler") (case "failed" string)))
            (export $request-error "request-error" (type $request-error'))
            (func (export "handle-requests") (param "now" u64) (param "requests" (list $request)) (param "request-bytes" (list u8)) (result (list (result (list u8) (error $request-error))))
                (canon lift (core func $i "handle-requests") (memory (core memory $i "memory")) (realloc (core func $i "realloc")))))"#
    );
    wat::parse_str(wat).expect("test WAT parses")
}

/// A script whose `init` traps.
pub fn trapping_init() -> Vec<u8> {
    script_wat("", "unreachable", ZEROES, "")
}

/// A script that needs an import this host does not provide.
pub fn other_world() -> Vec<u8> {
    script_wat(
        r#"(import "acme:missing/thing" (instance (export "f" (func))))"#,
        ZEROES,
        ZEROES,
        "",
    )
}

/// A core module, not a component.
pub fn core_module() -> Vec<u8> {
    wat::parse_str("(module (func (export \"init\")))").unwrap()
}
