//! The guest side of bevy_hotwasm: write a script module the way you write
//! a Bevy system.
//!
//! A script is a `Default` type implementing [`Script`], exported with
//! [`export_script!`]. The host runs one instance per entity; this crate
//! keeps one value of your type per instance and calls its methods with a
//! [`Cx`], through which it registers closures that take the script's own
//! type (checked when it compiles). Every SDK call that can fail returns
//! `Result<_, `[`Error`]`>`, so `?` works everywhere.
//!
//! ```ignore
//! use hotwasm_sdk::{Cx, Error, Frame, Script, component, me};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Position { x: f32, y: f32 }
//! component!(Position = "my_game::Position");
//!
//! #[derive(Default)]
//! struct Drift;
//!
//! impl Script for Drift {
//!     fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
//!         cx.every_frame(true)?;
//!         cx.prefetch::<(Position,)>()
//!     }
//!
//!     fn update(&mut self, _: &mut Cx<Self>, frame: Frame) -> Result<(), Error> {
//!         me().update::<Position, _>(|p| p.x += 10.0 * frame.delta_secs())
//!     }
//! }
//!
//! hotwasm_sdk::export_script!(Drift);
//! ```
//!
//! # A frame
//!
//! The host hands everything due in a frame to the module in one call, and
//! this crate calls the closures in this order: tasks (by due time, then in
//! the order they were scheduled), messages (in arrival order), watch
//! events (in the order the changes happened), then [`Script::update`] if
//! the script asked for every frame ([`Cx::every_frame`]). Times are the
//! game's virtual time: pausing the game pauses tasks and `update`. Tasks,
//! subscriptions and watches belong to one generation of the module: after
//! a hot reload the new generation registers what it needs again in `init`.
//! A script that reads or writes its own components every frame asks for
//! them to come with the frame ([`Cx::prefetch`]): no host call for them,
//! and the changes go back when the call returns.
//!
//! # Errors
//!
//! A handler or `update` that returns an error is logged by the host under
//! the module's name, with the handler's name; the instance keeps running.
//! A panic is a trap: the host restarts the instance and, after repeated
//! faults, quarantines it.
//!
//! Build with `cargo build --target wasm32-wasip2` (or the repository's
//! `scripts/build-guests.sh`); the `.wasm` under `target/wasm32-wasip2/` is
//! the component to load.

extern crate self as hotwasm_sdk;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// The raw `wit-bindgen` bindings of the `hotwasm:script` world.
pub mod bindings {
    wit_bindgen::generate!({
        world: "script",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_bindings",
        default_bindings_module: "hotwasm_sdk::bindings",
        runtime_path: "hotwasm_sdk::__wit_bindgen::rt",
        generate_all,
    });
}

mod cx;
pub mod ecs;
mod encoding;
mod entity;
mod error;
pub mod game;
mod own;

pub use bindings::hotwasm::script::log::Level;
pub use bindings::hotwasm::script::watch::ComponentChanges;
/// The key-value store: `wasi:keyvalue@0.2.0-draft2` as published
/// (`store`, `atomics`, `batch`); its errors convert into [`Error`]. Writes
/// become change events for every watch of the key, this instance's own
/// included unless it watches with [`Watch::except_own`].
///
/// ```ignore
/// let bucket = hotwasm_sdk::kv::store::open("scores")?;
/// bucket.set("player/1", b"42")?;
/// let wins = hotwasm_sdk::kv::atomics::increment(&bucket, "wins", 1)?;
/// ```
pub use bindings::wasi::keyvalue as kv;
#[doc(hidden)]
pub use cx::Instance as __Instance;
pub use cx::{Cx, Event, Frame, Message, TaskId, Tick, Watch, WatchId};
pub use ecs::{Component, Resource};
pub use entity::Entity;
pub use error::Error;
pub use hotwasm_events::{ChangeKind, CloudEvent};

/// A script module's behaviour. Every method has a default that does nothing.
pub trait Script: Default + Sized + 'static {
    /// Called once on every new instance, after [`Script::restore_state`]
    /// on a hot reload: register tasks, subscriptions, watches and the
    /// per-frame hook here. An error stops this generation from starting
    /// (the old one keeps running on a reload).
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        let _ = cx;
        Ok(())
    }

    /// Called in every frame the game is not paused, after the frame's
    /// tasks, messages and events, once [`Cx::every_frame`] asked for it.
    /// An error is logged; the instance keeps running.
    fn update(&mut self, cx: &mut Cx<Self>, frame: Frame) -> Result<(), Error> {
        let _ = (cx, frame);
        Ok(())
    }

    /// What to carry over to the next generation when the module is hot
    /// reloaded; `None` (the default) carries nothing.
    fn save_state(&self) -> Option<Vec<u8>> {
        None
    }

    /// Takes what the previous generation saved. An error rejects the new
    /// generation and keeps the old one running.
    fn restore_state(&mut self, state: &[u8]) -> Result<(), Error> {
        let _ = state;
        Ok(())
    }
}

/// Asks for the capabilities the module needs, written as a manifest (see
/// the host's `Capabilities` for every line it may hold):
///
/// ```
/// hotwasm_sdk::capabilities!(
///     "
///     component.read  game_types::Position game_types::Health
///     component.write game_types::Position
///     kv.read         tuning
///     messages.send   score/*
///     tasks           2
///     frame
///     "
/// );
/// ```
///
/// The manifest goes into the module's `hotwasm:capabilities` custom
/// section, so the module's signature covers it: changing what a signed
/// module asks for means signing it again. The game grants what is asked
/// within its ceilings; a call beyond the grant fails with an error whose
/// [`Error::is_denied`] is true. A module without the macro asks for
/// nothing: the game's own unsigned modules then get everything, a signed
/// one nothing. Use it once per module; a manifest the host cannot read is
/// a load error naming the line.
#[macro_export]
macro_rules! capabilities {
    ($manifest:expr) => {
        const _: () = {
            const MANIFEST: &str = $manifest;
            // A custom section of the core module, which the component keeps.
            #[unsafe(link_section = "hotwasm:capabilities")]
            #[used]
            static CAPABILITIES: [u8; MANIFEST.len()] = $crate::__manifest_bytes(MANIFEST);
        };
    };
}

#[doc(hidden)]
pub const fn __manifest_bytes<const N: usize>(manifest: &str) -> [u8; N] {
    let bytes = manifest.as_bytes();
    let mut out = [0; N];
    let mut index = 0;
    while index < N {
        out[index] = bytes[index];
        index += 1;
    }
    out
}

/// Exports a [`Script`] type as the module's `hotwasm:script` world exports.
#[macro_export]
macro_rules! export_script {
    ($script:ty) => {
        struct __HotwasmExports;

        ::std::thread_local! {
            static __HOTWASM_INSTANCE: ::core::cell::RefCell<$crate::__Instance<$script>> =
                ::core::cell::RefCell::default();
        }

        impl $crate::bindings::Guest for __HotwasmExports {
            fn init() -> ::core::result::Result<(), ::std::string::String> {
                __HOTWASM_INSTANCE.with_borrow_mut(|instance| {
                    $crate::Script::init(&mut instance.script, &mut instance.cx)
                        .map_err(|error| ::std::string::ToString::to_string(&error))
                })
            }

            fn save_state() -> ::core::option::Option<::std::vec::Vec<u8>> {
                __HOTWASM_INSTANCE.with_borrow(|instance| $crate::Script::save_state(&instance.script))
            }

            fn restore_state(
                state: ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), ::std::string::String> {
                __HOTWASM_INSTANCE.with_borrow_mut(|instance| {
                    $crate::Script::restore_state(&mut instance.script, &state)
                        .map_err(|error| ::std::string::ToString::to_string(&error))
                })
            }

            fn handle_batch(
                batch: $crate::bindings::hotwasm::script::types::Batch,
            ) -> ::std::vec::Vec<(u32, ::std::vec::Vec<u8>)> {
                __HOTWASM_INSTANCE.with_borrow_mut(|instance| instance.dispatch(batch))
            }

            fn handle_frame(
                now: $crate::bindings::hotwasm::script::types::Instant,
                frame: $crate::bindings::hotwasm::script::types::Frame,
            ) -> ::std::vec::Vec<(u32, ::std::vec::Vec<u8>)> {
                let batch = $crate::bindings::hotwasm::script::types::Batch {
                    now,
                    tasks: ::std::vec::Vec::new(),
                    messages: ::std::vec::Vec::new(),
                    message_bytes: ::std::vec::Vec::new(),
                    event_headers: ::std::vec::Vec::new(),
                    event_bytes: ::std::vec::Vec::new(),
                    frame: ::core::option::Option::Some(frame),
                };
                __HOTWASM_INSTANCE.with_borrow_mut(|instance| instance.dispatch(batch))
            }

            fn handle_requests(
                _now: $crate::bindings::hotwasm::script::types::Instant,
                requests: ::std::vec::Vec<$crate::bindings::hotwasm::script::types::Request>,
                request_bytes: ::std::vec::Vec<u8>,
            ) -> ::std::vec::Vec<
                ::core::result::Result<
                    ::std::vec::Vec<u8>,
                    $crate::bindings::hotwasm::script::types::RequestError,
                >,
            > {
                __HOTWASM_INSTANCE
                    .with_borrow_mut(|instance| instance.answer(&requests, &request_bytes))
            }
        }

        $crate::bindings::__export_bindings!(__HotwasmExports with_types_in $crate::bindings);
    };
}

/// Encodes a `u64` as state bytes for [`Script::save_state`].
pub fn save_u64(value: u64) -> Option<Vec<u8>> {
    Some(value.to_le_bytes().to_vec())
}

/// Decodes what [`save_u64`] saved, for [`Script::restore_state`]; refuses
/// state of another length.
pub fn restore_u64(state: &[u8]) -> Result<u64, Error> {
    let bytes = state
        .try_into()
        .map_err(|_| format!("expected 8 bytes of state, got {}", state.len()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// Writes a line to the host's log, under this module's name.
pub fn log(level: Level, message: &str) {
    bindings::hotwasm::script::log::log(level, message);
}

/// The entity this instance runs for.
pub fn me() -> Entity {
    // An instance runs for one entity all its life: asked once.
    thread_local! {
        static ME: Entity = Entity::from_bits(bindings::hotwasm::script::instance::entity());
    }
    ME.with(|me| *me)
}

/// The game's virtual time now (it stops while the game is paused).
pub fn now() -> std::time::Duration {
    std::time::Duration::from_nanos(bindings::hotwasm::script::scheduler::now())
}

/// Sends `payload` on `topic` to the host and every other subscriber.
pub fn send(topic: &str, payload: &[u8]) -> Result<(), Error> {
    Ok(bindings::hotwasm::script::messaging::send(topic, payload)?)
}

/// The module generation this instance runs (1 for the first version).
pub fn generation() -> u32 {
    bindings::hotwasm::script::instance::generation()
}

/// This module's asset path, e.g. `modules/hello.wasm`.
pub fn module_path() -> String {
    bindings::hotwasm::script::instance::module_path()
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log {
    ($level:ident, $($arg:tt)*) => {
        $crate::log($crate::Level::$level, &::std::format!($($arg)*))
    };
}

/// Logs a formatted line at `TRACE`.
#[macro_export]
macro_rules! trace { ($($arg:tt)*) => { $crate::__log!(Trace, $($arg)*) }; }
/// Logs a formatted line at `DEBUG`.
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::__log!(Debug, $($arg)*) }; }
/// Logs a formatted line at `INFO`.
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::__log!(Info, $($arg)*) }; }
/// Logs a formatted line at `WARN`.
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::__log!(Warn, $($arg)*) }; }
/// Logs a formatted line at `ERROR`.
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::__log!(Error, $($arg)*) }; }
