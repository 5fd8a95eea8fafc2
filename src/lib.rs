//! Hot-reloadable WebAssembly component scripting for [Bevy](https://bevy.org).
//!
//! A script module is a WebAssembly component built for the `hotwasm:script`
//! world, usually with the `hotwasm-sdk` crate and the `hotwasm` command. It
//! is a Bevy asset: load it with the [`AssetServer`], put the handle on an
//! entity in a [`WasmScript`], and the entity runs its own instance of it,
//! in a sandbox. Save a rebuilt `.wasm` and the running game swaps it in,
//! carrying the module's state across.
//!
//! These docs are the API; [the book](https://github.com/bevy-hotwasm/bevy_hotwasm/blob/main/docs/src/introduction.md)
//! (`docs/` in the repository, `mdbook serve docs`) is the guide, and every
//! Rust block in it is compiled.
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
//! The book's [Your own game](https://github.com/bevy-hotwasm/bevy_hotwasm/blob/main/docs/src/getting-started.md) makes the guest
//! with `hotwasm new` and runs the edit loop with `hotwasm watch`.
//!
//! # Where names live
//!
//! - [`prelude`]: the plugin, modules and scripts, the runtime and its
//!   system set, the messages most games read and send, the key-value store
//!   and the trust policy with its keys.
//! - The crate root: the prelude's names, the plugin's configuration
//!   ([`Sandbox`], [`GuestLimits`], [`Compilation`], [`CapabilityPolicy`],
//!   [`TrustPolicy`]), the rest of the runtime's messages and status
//!   ([`ScriptStatus`], [`ScriptStats`], [`ModuleStatus`]), and
//!   [`WasmEngine`] for modules made from bytes. `.ci/check-api.py` holds
//!   the root to the list in `.ci/api-root.txt`.
//! - A module per area: [`kv`] (the store's errors, origins, pages, limits
//!   and NATS options), [`trust`] (signing and where a module came from),
//!   [`capabilities`] (manifests, rights and grants), [`sandbox`] (faults,
//!   quotas and every fixed bound on an instance), [`diagnostics`] (what the
//!   runtime records of each instance), [`watch`] (changes as CloudEvents),
//!   and with their features `remote` (modules from a URL) and
//!   `debug_panel`.
//!
//! # How it runs
//!
//! | what | where to read |
//! |------|---------------|
//! | loading: [`WasmModuleLoader`] compiles and links off the main thread, so a module that could not run never becomes an asset; each bad file is a [`WasmModuleLoaderError`] | [Errors](https://github.com/bevy-hotwasm/bevy_hotwasm/blob/main/docs/src/reference/errors.md) |
//! | every guest call happens in one exclusive system, [`WasmSystems::Run`] in `Update` (or [`WasmSystems::RunFixed`] in `FixedUpdate` for a [`FixedUpdateScript`]), in entity order; each entity has its own instance | [Writing scripts](https://github.com/bevy-hotwasm/bevy_hotwasm/blob/main/docs/src/scripts.md) |
//! | hot reload: `save-state`, a new instance, `restore-state`, `init`; on any failure the old generation keeps running and [`ModuleFailed`] says why | [How hot reload behaves](https://github.com/bevy-hotwasm/bevy_hotwasm/blob/main/docs/src/hot-reload.md) |
//! | tasks in virtual time, topics, [`HostMessage`] and [`ScriptSender`] in, [`ModuleMessage`] out; questions with answers ([`AskScript::ask_script`] now, [`ScriptAsk`] this frame) | [Tasks and messages](https://github.com/bevy-hotwasm/bevy_hotwasm/blob/main/docs/src/tasks-and-messages.md) |
//! | [`KvStore`]: buckets in memory, on disk or shared over NATS (feature `nats`), every change a [`KvChanged`] | [The key-value store](https://github.com/bevy-hotwasm/bevy_hotwasm/blob/main/docs/src/key-value.md) |
//! | watches of keys, components and resources, delivered as CloudEvents | [Watch events](https://github.com/bevy-hotwasm/bevy_hotwasm/blob/main/docs/src/watch.md) |
//! | the game's ECS from a guest: components and resources as JSON by type path, queries, spawning | [The game's ECS](https://github.com/bevy-hotwasm/bevy_hotwasm/blob/main/docs/src/ecs.md) |
//! | [`Sandbox`]: CPU budget, memory, per-call quotas, the frame budget, faults, restarts and quarantine | [The sandbox](https://github.com/bevy-hotwasm/bevy_hotwasm/blob/main/docs/src/sandbox.md) |
//! | [`CapabilityPolicy`]: what a module may touch, and the most any module gets | [Capabilities](https://github.com/bevy-hotwasm/bevy_hotwasm/blob/main/docs/src/capabilities.md) |
//! | [`TrustPolicy`]: ed25519 signatures, and modules from a URL | [Signed modules](https://github.com/bevy-hotwasm/bevy_hotwasm/blob/main/docs/src/signing.md) |
//!
//! Guest logs go to Bevy's log under the module's path, target
//! [`diagnostics::GUEST_LOG_TARGET`], and arrive as [`ModuleLogged`]
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
pub use runtime::{
    AskError, AskScript, AskTicket, FixedUpdateScript, ModuleStatus, ScriptAnswered, ScriptAsk,
    ScriptMessageApp, ScriptStats, ScriptStatus, WasmRuntime, WasmScript, WasmSystems,
};
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
/// set, the messages most games read and send, asking scripts questions,
/// the key-value store, and the trust policy with its keys. Everything else is at the crate root or
/// in its module.
pub mod prelude {
    pub use crate::{
        AskScript, AskTicket, FixedUpdateScript, HostMessage, HotWasmPlugin, KvChanged, KvStore,
        ModuleFailed, ModuleMessage, ModuleReloaded, ScriptAnswered, ScriptAsk, ScriptMessageApp,
        TrustPolicy, TrustedKey, WasmModule, WasmRuntime, WasmScript, WasmSystems,
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
    /// modules are kept between runs (none by default; the book's
    /// Performance chapter says what each saves).
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
            .init_resource::<runtime::ScriptRunner>()
            .init_resource::<runtime::AskQueue>()
            .init_resource::<runtime::GameMessages>()
            .add_message::<ModuleFailed>()
            .add_message::<ScriptQuarantined>()
            .add_message::<ModuleReloaded>()
            .add_message::<ModuleLogged>()
            .add_message::<ModuleMessage>()
            .add_message::<HostMessage>()
            .add_message::<ScriptAnswered>()
            .add_message::<KvChanged>()
            .add_message::<watch::WatchedChange>()
            .init_resource::<stamps::EventIds>()
            .init_resource::<host::SpawnCounts>()
            .add_systems(
                Update,
                (
                    kv::publish_kv_changes.in_set(WasmSystems::PublishKvChanges),
                    runtime::run_scripts.in_set(WasmSystems::Run),
                    WasmDiagnostics::measure,
                )
                    .chain(),
            )
            .add_systems(
                FixedUpdate,
                runtime::run_fixed_scripts.in_set(WasmSystems::RunFixed),
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
