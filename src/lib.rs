//! Hot-reloadable WebAssembly component scripting for [Bevy](https://bevy.org).
//!
//! A script module is a WebAssembly component built for the `hotwasm:script`
//! world (`wit/` in this repository). It is a Bevy asset: load it with the
//! [`AssetServer`], put the handle on an entity in a
//! [`WasmScript`], and the entity runs its own instance of it. Save a rebuilt
//! `.wasm` and the running game swaps it in, carrying the module's state
//! across.
//!
//! # Quick start
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_hotwasm::prelude::*;
//!
//! App::new()
//!     .add_plugins((
//!         MinimalPlugins,
//!         AssetPlugin::default(),
//!         HotWasmPlugin {
//!             // Unsigned local modules in this game's development builds only.
//!             trust: TrustPolicy::new().allow_unsigned_local(cfg!(debug_assertions)),
//!             ..default()
//!         },
//!     ))
//!     .add_systems(Startup, |mut commands: Commands, assets: Res<AssetServer>| {
//!         commands.spawn(WasmScript(assets.load("modules/hello.wasm")));
//!     })
//!     .run();
//! ```
//!
//! # Where names live
//!
//! The API comes in three tiers, like `bevy_asset`'s:
//!
//! - [`prelude`]: what `use bevy_hotwasm::prelude::*;` gives a game: the
//!   plugin, modules and scripts, the runtime and its system set, the
//!   messages most games read and send, the key-value store and the trust
//!   policy with its keys.
//! - The crate root: every name a game uses day to day: the prelude's, the
//!   plugin's configuration ([`Sandbox`], [`GuestLimits`],
//!   [`Compilation`], [`CapabilityPolicy`], [`TrustPolicy`]), the rest of
//!   the runtime's messages and status ([`ScriptStatus`], [`ScriptStats`],
//!   [`ModuleStatus`]), and [`WasmEngine`] for modules made from bytes.
//! - A public module per area for the rest: [`kv`] (the store's errors,
//!   origins and [`KvWriter`](kv::KvWriter), which writes as one, pages,
//!   limits and NATS options), [`trust`] (signing, signature errors,
//!   where a module came from), [`capabilities`] (manifests, rights,
//!   patterns and grants), [`sandbox`] (faults, quotas, queue limits and
//!   every fixed bound on an instance), [`diagnostics`] (what the runtime
//!   records of each instance, and the guest log target), [`watch`]
//!   (change events as CloudEvents), and with their features `remote`
//!   (modules from a URL) and `debug_panel`.
//!
//! A root name is there on purpose: `.ci/check-api.py` fails when the
//! root's names differ from the list in `.ci/api-root.txt`.
//!
//! # Loading
//!
//! [`WasmModuleLoader`] compiles the component and links it against the host
//! in `load`, off the main thread, so a module that could not run never
//! becomes an asset. Each kind of bad file has its own
//! [`WasmModuleLoaderError`]: not Wasm, a core module instead of a component,
//! an invalid component, a component of another world (a missing export or an
//! import the host does not provide, named), or an I/O error.
//!
//! # Instances
//!
//! Every entity with a [`WasmScript`] gets its own instance: its own wasmtime
//! store and linear memory, even when several entities run the same module.
//! All guest work happens in one exclusive system, [`WasmSystems::Run`] in
//! `Update`, in entity order, so a guest never sees two calls at once and the
//! same inputs give the same calls in the same order. Despawning the entity or
//! removing the component frees the instance without calling the guest.
//!
//! # Hot reload
//!
//! With the `file_watcher` feature (on by default) Bevy watches the asset
//! directory; a changed `.wasm` is loaded again and every instance of it moves
//! to the new generation at the next run of [`WasmSystems::Run`]:
//!
//! 1. `save-state` on the running instance,
//! 2. a new instance of the new generation,
//! 3. `restore-state` with those bytes (skipped when `save-state` gave `none`),
//! 4. `init`.
//!
//! Bevy's file watcher waits 300 ms after a change before it reports it;
//! [`file_source_with_debounce`] gives the default asset source a shorter
//! wait. Writing identical bytes again is not a new generation.
//!
//! If any step fails (the file does not compile or link, or the new instance
//! traps or returns an error), the old generation keeps running unchanged, a
//! [`ModuleFailed`] message says which module, generation and stage failed and
//! why, a warning is logged, and [`WasmRuntime`] keeps the failure for a debug
//! panel. Each success writes a [`ModuleReloaded`]. Generations count every
//! version of the file the runtime has seen, failed ones included.
//!
//! # Tasks and messages
//!
//! Guests schedule tasks in Bevy's virtual time (`scheduler` in `wit/`):
//! once after a delay, once at a time, or every interval; pausing the game
//! pauses them. They send and subscribe to topics (`messaging`). Each frame,
//! [`WasmSystems::Run`] hands every instance its due tasks and waiting
//! messages in one `handle-batch` call (none when nothing is due), tasks by
//! due time then creation, messages in arrival order. A repeating task runs at
//! most once per frame and reports the ticks it skipped.
//!
//! The game sends [`HostMessage`]s with a `MessageWriter` or, from any
//! thread, with [`ScriptSender`]; guests' sends arrive as [`ModuleMessage`]s
//! and reach other subscribed instances next frame. Tasks and subscriptions
//! belong to a generation and are dropped on hot reload; queued messages are
//! delivered to the new generation. Limits: [`sandbox::MAX_TASKS`],
//! [`sandbox::MAX_TOPIC_BYTES`], [`sandbox::MAX_PAYLOAD_BYTES`],
//! [`sandbox::MAX_SUBSCRIPTIONS`], and per script
//! [`sandbox::MAX_QUEUED_MESSAGES`] and [`sandbox::MAX_QUEUED_BYTES`]
//! waiting, whether it runs, loads, is quarantined or is paused
//! ([`WasmRuntime::pause`], which also holds its watch events, up to
//! [`sandbox::MAX_HELD_EVENTS`] and [`sandbox::MAX_HELD_EVENT_BYTES`]).
//!
//! # Key-value store
//!
//! [`KvStore`] is a resource of named buckets of byte values: get, set,
//! delete, exists, paged key lists, increment and compare-and-swap. It lives
//! in memory unless the app inserts [`KvStore::open_dir`] before adding the
//! plugin: then each bucket is a directory and each key a file (keys encoded
//! into portable names), written by temp file, fsync and rename, so an
//! acknowledged write survives a crash. Every change, including a file edited
//! by hand in a bucket directory (watched with `notify`), is written as a
//! [`KvChanged`] message each frame before [`WasmSystems::Run`]. Keys that
//! would escape their bucket (`..` segments, NUL, backslash) and bad bucket
//! names are refused; see [`kv::KvError`] for every limit.
//!
//! With the `nats` feature, `KvStore::connect_nats` keeps the store on a
//! NATS JetStream server, shared by every process connected to it: reads
//! from a local replica, writes sent from the store's own thread and held
//! while the server is away, other processes' changes as [`KvChanged`]
//! with [`kv::KvOrigin::Remote`], the connection in [`KvStore::shared_status`]
//! (the README's "Sharing state across processes").
//!
//! # Watch events
//!
//! Guests watch a key or key prefix of a bucket, a component type or a
//! resource type (`watch` in `wit/`) and get every change as a
//! CloudEvents 1.0 event in their batch, the same [`watch::CloudEvent`]
//! that [`KvChanged::cloud_event`] and [`watch::WatchedChange::cloud_event`]
//! give the game ([`watch::CloudEvent::to_json`] writes the JSON format):
//! key-value changes from the store's change log, component and resource
//! changes from Bevy's change ticks and removal messages, data as JSON
//! through `bevy_reflect`. Types are named by type path and checked against
//! the `AppTypeRegistry` when watched. Watches belong to a generation.
//!
//! # The game's ECS from a guest
//!
//! The `ecs` import reads and writes components and resources as JSON by
//! type path, spawns and despawns entities, returns many entities'
//! components in pages of 1000 (`query`), and reads one numeric field of a
//! component on every entity in one call (`query-field`). For the length of
//! each guest call the game's `World` is moved into the instance's store and
//! moved back afterwards, so host imports get `&mut World` with no `unsafe`.
//! Entities that hold a resource (each resource lives on an entity of its
//! own) are protected: a guest cannot despawn them or change their
//! components, so it cannot take away a resource the game relies on.
//!
//! # Signed modules, and modules from a URL
//!
//! [`HotWasmPlugin::trust`] (the [`ModuleTrust`] resource at run time) says
//! which ed25519 keys are trusted and which asset sources must be signed;
//! the loader checks `<module>.wasm.sig` before compiling and refuses with a
//! [`trust::SignatureError`] kind. Every module must be signed unless the
//! game allows unsigned local files ([`TrustPolicy::allow_unsigned_local`]).
//! `remote::RemoteSource` (feature `remote`) registers an asset source that fetches
//! modules and signatures over HTTP, polls them for changes, caches verified
//! copies and falls back to embedded defaults; `remote::RemoteModules` shows
//! each download's state. `examples/sign.rs` makes keys and signatures in
//! OpenSSL's formats ([`trust::sign_module`], [`trust::private_key_pem`]).
//!
//! # The sandbox
//!
//! [`HotWasmPlugin::sandbox`] bounds every guest call: a CPU budget (epoch
//! interruption, optional fuel), memory, table and stack limits (the
//! game's are the ceiling: a module's `.wasm.meta` may only lower them,
//! [`sandbox::MetaLimits`]; [`Sandbox::module_limits`] gives one module
//! more, in code), per-call host quotas ([`sandbox::HostQuotas`]), and all
//! guest work of a frame together ([`Sandbox::frame_budget`]: past it,
//! scripts take turns across frames). A faulting instance is reported with
//! its [`sandbox::FaultKind`], restarted after a backoff and quarantined
//! after repeated faults ([`sandbox::FaultPolicy`], [`ScriptQuarantined`],
//! [`WasmRuntime::release`]); [`ScriptStats`] counts calls, faults,
//! restarts, time and fuel. [`sandbox`] also holds the fixed bounds on
//! every instance (tasks, watches, subscriptions, message sizes) and
//! [`sandbox::SpawnedBy`], which marks what a guest spawned.
//!
//! # Guests
//!
//! Guest crates use `guests/sdk` (the `hotwasm-sdk` crate), which wraps the
//! `wit-bindgen` bindings so that a script is a `Default` type with an `init`
//! method. Guest logs (the `log` interface, and stdout / stderr of std guests)
//! go to Bevy's log under the module's path, target
//! [`diagnostics::GUEST_LOG_TARGET`], and are written as [`ModuleLogged`]
//! messages. WASI is linked for std guests with nothing granted: no
//! filesystem, no network, no environment.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod asset;
#[cfg(doctest)]
mod book_tests;
pub mod capabilities;
#[cfg(feature = "debug_panel")]
#[cfg_attr(docsrs, doc(cfg(feature = "debug_panel")))]
pub mod debug_panel;
pub mod diagnostics;
mod engine;
mod files;
mod host;
mod instance;
pub mod kv;
mod messages;
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub mod remote;
mod runtime;
pub mod sandbox;
mod source;
mod stamps;
pub mod trust;

use bevy::asset::AssetApp;
use bevy::prelude::*;

// The crate root: the names a game uses day to day. `.ci/check-api.py`
// holds it to `.ci/api-root.txt`; everything else lives in its module.
pub use asset::{WasmModule, WasmModuleLoader, WasmModuleLoaderError, WasmModuleSettings};
pub use capabilities::{Capabilities, CapabilityPolicy};
pub use diagnostics::WasmDiagnostics;
pub use engine::{Compilation, Compiler, WasmEngine};
pub use host::MessageError;
pub use kv::{KvChanged, KvStore};
pub use messages::{
    FailureStage, HostMessage, ModuleFailed, ModuleLogged, ModuleMessage, ModuleReloaded,
    Recipient, ScriptQuarantined, ScriptRef, ScriptSender,
};
pub use runtime::{ModuleStatus, ScriptStats, ScriptStatus, WasmRuntime, WasmScript, WasmSystems};
pub use sandbox::{GuestLimits, Sandbox};
pub use source::file_source_with_debounce;
pub use trust::{ModuleTrust, TrustPolicy, TrustedKey};

pub mod watch {
    //! What watching guests get, as the game can read it: every change as a
    //! CloudEvents 1.0 event ([`CloudEvent`], of a [`ChangeKind`]), with the
    //! [`EventStamp`] (its `id` and clocks) that key-value and component
    //! changes share.
    //!
    //! Key-value changes are [`KvChanged`](crate::KvChanged) messages anyway;
    //! component and resource changes that matched a watch are
    //! [`WatchedChange`] messages once
    //! [`WasmRuntime::record_watched_changes`](crate::WasmRuntime::record_watched_changes)
    //! is on. Each gives its CloudEvent with `cloud_event()`.

    pub use crate::messages::WatchedChange;
    pub use crate::stamps::EventStamp;
    pub use hotwasm_events::{ChangeKind, CloudEvent};
}

/// What `use bevy_hotwasm::prelude::*;` gives a game: the plugin, script
/// modules and the component that runs them, the runtime and its system
/// set, the messages most games read and send, the key-value store, and
/// the trust policy with its keys. Everything else is at the crate root or
/// in its module.
pub mod prelude {
    pub use crate::{
        HostMessage, HotWasmPlugin, KvChanged, KvStore, ModuleFailed, ModuleMessage,
        ModuleReloaded, TrustPolicy, TrustedKey, WasmModule, WasmRuntime, WasmScript, WasmSystems,
    };
}

/// Runs WebAssembly component scripts: registers the [`WasmModule`] asset
/// and its loader, the runtime and its messages, and the exclusive system
/// [`WasmSystems::Run`] in `Update`.
///
/// Needs Bevy's `AssetPlugin` (part of `DefaultPlugins`) added first. The
/// engine, its epoch thread and the default [`KvStore`] are made in
/// [`Plugin::finish`], which `App::run` calls; a test that drives the app
/// with `app.update()` calls `app.finish()` first.
///
/// ```no_run
/// # use bevy::prelude::*;
/// # use bevy_hotwasm::prelude::*;
/// let pem = std::fs::read("keys/release.pub.pem").expect("the release key");
/// let key = TrustedKey::from_bytes(&pem).expect("an ed25519 public key");
/// App::new().add_plugins((
///     DefaultPlugins,
///     HotWasmPlugin {
///         trust: TrustPolicy::new()
///             .with_key("release", key)
///             .allow_unsigned_local(cfg!(debug_assertions)),
///         ..default()
///     },
/// ));
/// ```
#[derive(Default)]
pub struct HotWasmPlugin {
    /// Which keys are trusted to sign modules and which asset sources must
    /// be signed; becomes the [`ModuleTrust`] resource. By default every
    /// module must be signed.
    pub trust: TrustPolicy,
    /// CPU, memory and stack limits for guest code, and what happens to an
    /// instance that faults.
    pub sandbox: Sandbox,
    /// Which compiler makes native code of modules, and where compiled
    /// modules are kept between runs (none by default; the README's
    /// Performance section says what each saves).
    pub compilation: Compilation,
    /// The most each module may be granted, per asset source and per
    /// signing key; becomes the [`CapabilityPolicy`] resource the loader
    /// reads. By default no ceiling: see [`CapabilityPolicy`] for what a
    /// module that asks for nothing gets.
    pub capabilities: CapabilityPolicy,
}

impl Plugin for HotWasmPlugin {
    fn build(&self, app: &mut App) {
        assert!(
            app.is_plugin_added::<AssetPlugin>(),
            "HotWasmPlugin needs Bevy's AssetPlugin: add DefaultPlugins (or MinimalPlugins and \
             AssetPlugin::default()) before HotWasmPlugin"
        );
        app.world_mut()
            .get_resource_or_init::<ModuleTrust>()
            .write()
            .configure(self.trust.clone());
        let (sender, receiver) = messages::script_channel();
        app.insert_resource(self.capabilities.clone())
            .insert_resource(sender)
            .insert_resource(receiver)
            .init_asset::<WasmModule>()
            // Loads asked for before `finish` wait for the loader.
            .preregister_asset_loader::<WasmModuleLoader>(&["wasm"])
            .init_resource::<WasmRuntime>()
            .add_message::<ModuleFailed>()
            .add_message::<ScriptQuarantined>()
            .add_message::<ModuleReloaded>()
            .add_message::<ModuleLogged>()
            .add_message::<ModuleMessage>()
            .add_message::<HostMessage>()
            .add_message::<KvChanged>()
            .add_message::<watch::WatchedChange>()
            .init_resource::<stamps::EventIds>()
            .init_resource::<host::SpawnCounts>()
            .add_systems(
                Update,
                (
                    kv::publish_kv_changes,
                    runtime::run_scripts.in_set(WasmSystems::Run),
                    WasmDiagnostics::measure,
                )
                    .chain(),
            )
            .add_systems(Last, kv::send_writes_on_exit);
        WasmDiagnostics::register(app);
    }

    fn finish(&self, app: &mut App) {
        let engine =
            WasmEngine::build(self.sandbox.clone(), &self.compilation).unwrap_or_else(|error| {
                panic!("HotWasmPlugin could not create its wasmtime engine: {error:#}")
            });
        if self.sandbox.epoch_interruption {
            let ticker =
                engine::EpochTicker::start(engine.engine().clone()).unwrap_or_else(|error| {
                    panic!("HotWasmPlugin could not start its epoch thread: {error}")
                });
            app.insert_resource(ticker);
        }
        app.insert_resource(engine)
            .init_asset_loader::<WasmModuleLoader>();
        if !app.world().contains_resource::<KvStore>() {
            app.insert_resource(KvStore::in_memory());
        }
    }
}
