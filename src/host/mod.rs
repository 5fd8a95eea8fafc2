//! The host side of the `hotwasm:script` world: one file per WIT interface.
//!
//! Each instance's [`Store`](wasmtime::Store) holds a [`HostState`]; the
//! `Host` trait of every imported interface is implemented on it.

mod ecs;
#[cfg(test)]
mod fuzz;
mod instance;
mod keyvalue;
mod log;
mod messaging;
mod quota;
mod reflect;
mod scheduler;
mod stdio;
mod types;
mod watch;

use std::sync::Arc;

use bevy::ecs::reflect::AppTypeRegistry;
use bevy::prelude::{Entity, World};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub(crate) use self::log::GuestLine;
use self::messaging::Mailbox;
pub(crate) use self::messaging::check_message;
pub use self::messaging::{MAX_PAYLOAD_BYTES, MAX_SUBSCRIPTIONS, MAX_TOPIC_BYTES, MessageError};
pub(crate) use self::quota::{CallQuota, Limiter};
pub(crate) use self::reflect::event_json;
pub use self::scheduler::MAX_TASKS;
use self::scheduler::TaskQueue;
pub(crate) use self::stdio::GuestOutput;
use self::stdio::{GuestStdio, StdioStream};
pub use self::watch::MAX_WATCHES;
pub(crate) use self::watch::{Watches, selected_by};
pub(crate) use bindings::hotwasm::script::watch::ComponentChanges;

mod bindings {
    wasmtime::component::bindgen!({
        world: "script",
        path: "wit",
        with: {
            "wasi:keyvalue/store.bucket": super::keyvalue::KvBucket,
            "wasi:keyvalue/atomics.cas": super::keyvalue::KvCas,
        },
    });
}

pub(crate) use bindings::hotwasm::script::types::{
    Batch, ChangeEvent, ChangeKind, Message, TaskDue,
};
pub(crate) use bindings::{Script, ScriptPre};

/// The exports every script module must have, by their WIT names.
pub(crate) const REQUIRED_EXPORTS: [&str; 4] =
    ["init", "save-state", "restore-state", "handle-batch"];

/// Who an instance is: what the `instance` interface reports.
#[derive(Clone, Debug)]
pub(crate) struct InstanceIdentity {
    pub entity: Entity,
    pub generation: u32,
    pub module_path: Arc<str>,
}

/// The data in each instance's store.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    identity: InstanceIdentity,
    output: GuestOutput,
    /// The current frame's virtual time, in nanoseconds; set before each call.
    pub now: u64,
    pub tasks: TaskQueue,
    pub mailbox: Mailbox,
    pub watches: Watches,
    /// The game's type registry, to check watched type paths.
    registry: AppTypeRegistry,
    /// The game's world, lent for the length of each call (see `WorldLoan`).
    pub world: Option<World>,
    /// Enforces the instance's memory and table limits.
    pub limiter: Limiter,
    /// What the host did for the current call, against the quotas.
    pub quota: CallQuota,
    warned_task_cap: bool,
}

impl HostState {
    /// A fresh state with a locked-down WASI context: no filesystem, no
    /// network, no environment or arguments, empty stdin; stdout and stderr
    /// are collected as log lines in `output`.
    pub fn new(
        identity: InstanceIdentity,
        output: GuestOutput,
        registry: AppTypeRegistry,
        limiter: Limiter,
        quota: CallQuota,
    ) -> Self {
        let wasi = WasiCtxBuilder::new()
            .stdout(GuestStdio::new(output.clone(), StdioStream::Stdout))
            .stderr(GuestStdio::new(output.clone(), StdioStream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            identity,
            output,
            now: 0,
            tasks: TaskQueue::default(),
            mailbox: Mailbox::default(),
            watches: Watches::default(),
            registry,
            world: None,
            limiter,
            quota,
            warned_task_cap: false,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Links WASI p2 (what a std guest for `wasm32-wasip2` imports) and every
/// `hotwasm:script` interface.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    Script::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
}
