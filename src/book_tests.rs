//! The README's and the book's Rust blocks, compiled (and run, unless a
//! block says `no_run`) as this crate's doc tests: `cargo test` fails when
//! the documentation stops matching the code. Guest blocks compile against
//! `hotwasm-sdk` and `game-types` (dev-dependencies). Chapters about a
//! feature are tested with it on (`cargo test --features nats,debug_panel --doc`).

#[doc = include_str!("../README.md")]
mod readme {}
#[doc = include_str!("../docs/src/introduction.md")]
mod introduction {}
#[doc = include_str!("../docs/src/getting-started.md")]
mod getting_started {}
#[doc = include_str!("../docs/src/hotwasm-command.md")]
mod hotwasm_command {}
#[doc = include_str!("../docs/src/arena.md")]
mod arena {}
#[doc = include_str!("../docs/src/scripts.md")]
mod scripts {}
#[doc = include_str!("../docs/src/tasks-and-messages.md")]
mod tasks_and_messages {}
#[doc = include_str!("../docs/src/ecs.md")]
mod ecs {}
#[doc = include_str!("../docs/src/watch.md")]
mod watch {}
#[doc = include_str!("../docs/src/key-value.md")]
mod key_value {}
#[cfg(feature = "nats")]
#[doc = include_str!("../docs/src/nats.md")]
mod nats {}
#[doc = include_str!("../docs/src/other-languages.md")]
mod other_languages {}
#[doc = include_str!("../docs/src/sandbox.md")]
mod sandbox {}
#[doc = include_str!("../docs/src/capabilities.md")]
mod capabilities {}
#[cfg(feature = "remote")]
#[doc = include_str!("../docs/src/signing.md")]
mod signing {}
#[doc = include_str!("../docs/src/hot-reload.md")]
mod hot_reload {}
#[cfg(feature = "debug_panel")]
#[doc = include_str!("../docs/src/debug-panel.md")]
mod debug_panel {}
#[doc = include_str!("../docs/src/performance.md")]
mod performance {}
#[doc = include_str!("../docs/src/features.md")]
mod features {}
#[doc = include_str!("../docs/src/reference/wasm-meta.md")]
mod wasm_meta {}
#[doc = include_str!("../docs/src/reference/wit.md")]
mod wit {}
#[doc = include_str!("../docs/src/reference/errors.md")]
mod errors {}
