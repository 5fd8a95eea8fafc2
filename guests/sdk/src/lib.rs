//! The guest side of bevy_hotwasm: write a script module in a few lines.
//!
//! A script is a `Default` type implementing [`Script`], exported with
//! [`export_script!`]. The host creates one instance per entity; this crate
//! keeps one value of your type per instance and calls its methods.
//!
//! ```ignore
//! use hotwasm_sdk::{Script, info};
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Script for Hello {
//!     fn init(&mut self) -> Result<(), String> {
//!         info!("hello from {}", hotwasm_sdk::module_path());
//!         Ok(())
//!     }
//! }
//!
//! hotwasm_sdk::export_script!(Hello);
//! ```
//!
//! # Tasks and messages
//!
//! Register closures, usually in `init`; each gets `&mut` your script when it
//! runs. The host hands everything due in a frame to the module in one call
//! and this crate calls the closures: tasks first (by due time, then in the
//! order they were scheduled), then messages (in arrival order), then watch
//! events ([`watch_key`], [`watch_prefix`]; in the order the changes happened).
//!
//! ```ignore
//! use std::time::Duration;
//! use hotwasm_sdk::{Script, Tick, info};
//!
//! #[derive(Default)]
//! struct Ticker { ticks: u64 }
//!
//! impl Script for Ticker {
//!     fn init(&mut self) -> Result<(), String> {
//!         hotwasm_sdk::every(Duration::from_millis(100), |me: &mut Ticker, _: Tick| {
//!             me.ticks += 1;
//!         }).map_err(|e| format!("{e:?}"))?;
//!         hotwasm_sdk::on_message("ping", |me: &mut Ticker, msg| {
//!             info!("ping after {} ticks: {:?}", me.ticks, msg.payload);
//!         }).map_err(|e| format!("{e:?}"))?;
//!         Ok(())
//!     }
//! }
//! ```
//!
//! Times are the game's virtual time: pausing the game pauses tasks. Tasks
//! and subscriptions belong to one generation of the module: after a hot
//! reload the new generation registers what it needs again in `init`.
//!
//! Build with `cargo build --target wasm32-wasip2` (or the repository's
//! `scripts/build-guests.sh`); the `.wasm` under `target/wasm32-wasip2/` is
//! the component to load.

extern crate self as hotwasm_sdk;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// The raw `wit-bindgen` bindings of the `hotwasm:script` world.
#[expect(
    clippy::too_many_arguments,
    reason = "the generated `handle-batch` export takes the batch flattened into nine core values"
)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "script",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_bindings",
        default_bindings_module: "hotwasm_sdk::bindings",
        runtime_path: "hotwasm_sdk::__wit_bindgen::rt",
        generate_all,
    });
}

mod handlers;

/// The game's ECS by type path: components and resources as JSON, and
/// `query_field` for one number of a component on every entity in one call.
pub use bindings::hotwasm::script::ecs;
pub use bindings::hotwasm::script::log::Level;
pub use bindings::hotwasm::script::messaging::Error as MessagingError;
pub use bindings::hotwasm::script::scheduler::Error as SchedulerError;
pub use bindings::hotwasm::script::types::{ChangeKind, Message};
pub use bindings::hotwasm::script::watch::{ComponentChanges, Error as WatchError};
/// The key-value store: `wasi:keyvalue@0.2.0-draft2` as published
/// (`store`, `atomics`, `batch`). Writes become change events for every
/// watch of the key, this instance's own included unless it watches with
/// [`watch_key_except_own`] or [`watch_prefix_except_own`].
///
/// ```ignore
/// let bucket = hotwasm_sdk::kv::store::open("scores")?;
/// bucket.set("player/1", b"42")?;
/// let wins = hotwasm_sdk::kv::atomics::increment(&bucket, "wins", 1)?;
/// ```
pub use bindings::wasi::keyvalue as kv;
#[doc(hidden)]
pub use handlers::dispatch as __dispatch;
pub use handlers::{
    Event, TaskId, Tick, WatchId, after, at, cancel, cancel_all, every, every_after, now,
    on_message, send, unsubscribe, unwatch, watch_component, watch_key, watch_key_except_own,
    watch_prefix, watch_prefix_except_own, watch_resource,
};

/// A script module's behaviour. Every method has a default that does nothing.
pub trait Script: Default + 'static {
    /// Called once on every new instance, after [`Script::restore_state`]
    /// on a hot reload. An error stops this generation from starting (the old
    /// one keeps running on a reload).
    fn init(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// What to carry over to the next generation when the module is hot
    /// reloaded; `None` (the default) carries nothing.
    fn save_state(&self) -> Option<Vec<u8>> {
        None
    }

    /// Takes what the previous generation saved. An error rejects the new
    /// generation and keeps the old one running.
    fn restore_state(&mut self, state: &[u8]) -> Result<(), String> {
        let _ = state;
        Ok(())
    }
}

/// Exports a [`Script`] type as the module's `hotwasm:script` world exports.
#[macro_export]
macro_rules! export_script {
    ($script:ty) => {
        struct __HotwasmExports;

        ::std::thread_local! {
            static __HOTWASM_SCRIPT: ::core::cell::RefCell<$script> =
                ::core::cell::RefCell::new(<$script as ::core::default::Default>::default());
        }

        impl $crate::bindings::Guest for __HotwasmExports {
            fn init() -> ::core::result::Result<(), ::std::string::String> {
                __HOTWASM_SCRIPT.with_borrow_mut(|script| $crate::Script::init(script))
            }

            fn save_state() -> ::core::option::Option<::std::vec::Vec<u8>> {
                __HOTWASM_SCRIPT.with_borrow(|script| $crate::Script::save_state(script))
            }

            fn restore_state(
                state: ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), ::std::string::String> {
                __HOTWASM_SCRIPT
                    .with_borrow_mut(|script| $crate::Script::restore_state(script, &state))
            }

            fn handle_batch(batch: $crate::bindings::hotwasm::script::types::Batch) {
                __HOTWASM_SCRIPT.with_borrow_mut(|script| $crate::__dispatch(script, batch))
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
pub fn restore_u64(state: &[u8]) -> Result<u64, String> {
    let bytes = state
        .try_into()
        .map_err(|_| format!("expected 8 bytes of state, got {}", state.len()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// Writes a line to the host's log, under this module's name.
pub fn log(level: Level, message: &str) {
    bindings::hotwasm::script::log::log(level, message);
}

/// The entity this instance runs for, as Bevy's `Entity::to_bits()`.
pub fn entity() -> u64 {
    bindings::hotwasm::script::instance::entity()
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
