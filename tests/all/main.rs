//! Every integration test, in one binary: each module is one area of the
//! crate (wasmtime's `tests/all` shape). One binary links Bevy and wasmtime
//! once instead of once per area, and `cargo test -- sandbox::` runs one area.

mod capabilities;
mod cloudevents;
#[cfg(feature = "debug_panel")]
mod debug_panel;
mod ecs;
mod frame;
mod fuzz;
mod guest_types;
#[cfg(feature = "file_watcher")]
mod hot_reload;
mod keyvalue;
mod kv;
mod loading;
mod messaging;
#[cfg(feature = "nats")]
mod nats;
#[cfg(all(feature = "file_watcher", feature = "remote"))]
mod remote;
mod requests;
mod sandbox;
mod scheduler;
mod signing;
mod watch;
mod zig;
