//! The host side of the `hotwasm:script` world: one file per WIT interface.
//!
//! Each instance's [`Store`](wasmtime::Store) holds a [`HostState`]. An
//! interface on a view of its own (`KvView`, `LogView`, ...) has its `Host`
//! trait implemented on that view, which borrows only the fields of the
//! state it touches, and is linked with a `HasData` marker whose data is
//! the view; `add_to_linker` shows which interface sees what.

mod access;
mod details;
mod ecs;
#[cfg(test)]
mod fixture;
#[cfg(test)]
mod fuzz;
mod instance;
mod keyvalue;
mod log;
mod messaging;
mod quota;
mod reflect;
mod scheduler;
mod spawned;
mod stdio;
mod types;
mod watch;

use std::sync::Arc;

use bevy::ecs::change_detection::Tick;
use bevy::ecs::component::ComponentId;
use bevy::ecs::reflect::AppTypeRegistry;
use bevy::prelude::{Entity, World};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::capabilities::Grant;
use crate::sandbox::GuestLimits;

use self::access::Access;
pub(crate) use self::details::DetailsStamp;
pub use self::details::{InstanceDetails, KeyWatch, TaskDetails};
pub use self::ecs::MAX_PREFETCHED;
use self::ecs::{Ecs, EcsView};
use self::instance::{Instance, InstanceView};
use self::keyvalue::{Kv, KvView};
pub use self::keyvalue::{MAX_CAS_HANDLES, MAX_OPEN_BUCKETS};
pub(crate) use self::keyvalue::{link_pairs_get_many, wants_pairs_get_many};
pub(crate) use self::log::GuestLine;
use self::log::{Log, LogView};
pub(crate) use self::messaging::{GAME_MESSAGE_PREFIX, check_message};
pub use self::messaging::{MAX_PAYLOAD_BYTES, MAX_SUBSCRIPTIONS, MAX_TOPIC_BYTES, MessageError};
use self::messaging::{Mailbox, Messaging, MessagingView};
pub(crate) use self::quota::CallQuota;
use self::quota::Limiter;
pub(crate) use self::reflect::event_json;
pub use self::scheduler::MAX_TASKS;
use self::scheduler::{Scheduler, SchedulerView, TaskQueue};
pub(crate) use self::spawned::SpawnCounts;
pub use self::spawned::SpawnedBy;
pub(crate) use self::stdio::GuestOutput;
use self::stdio::{GuestStdio, StdioStream};
use self::types::Types;
pub use self::watch::MAX_WATCHES;
use self::watch::{Watch, WatchView};
pub(crate) use self::watch::{Watches, selected_by};
pub(crate) use bindings::hotwasm::script::watch::ComponentChanges;

mod bindings {
    wasmtime::component::bindgen!({
        world: "script",
        path: "wit",
        // `wasi:keyvalue` errors are `KvFailure`s, converted in one place.
        imports: { "wasi:keyvalue": trappable },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => super::keyvalue::KvFailure,
        },
        with: {
            "wasi:keyvalue/store.bucket": super::keyvalue::KvBucket,
            "wasi:keyvalue/atomics.cas": super::keyvalue::KvCas,
        },
    });
}

pub(crate) use bindings::hotwasm::script::types::{
    Batch, Frame as GuestFrame, Message, Request, RequestError, TaskDue,
};
// bindgen's names for the world and a frame, renamed apart from the SDK's
// `Script` and `Frame` and from the runtime's tracked scripts.
pub(crate) use bindings::{Script as ScriptWorld, ScriptPre as ScriptWorldPre};

/// The exports every script module must have, by their WIT names.
pub(crate) const REQUIRED_EXPORTS: [&str; 6] = [
    "init",
    "save-state",
    "restore-state",
    "handle-batch",
    "handle-frame",
    "handle-requests",
];

/// Who an instance is: what the `instance` interface reports.
#[derive(Clone, Debug)]
pub(crate) struct InstanceIdentity {
    pub entity: Entity,
    pub generation: u32,
    pub module_path: Arc<str>,
}

/// What the host needs to know of the game's types.
#[derive(Clone, Default)]
pub(crate) struct GameTypes {
    /// The game's type registry, for type paths.
    pub registry: AppTypeRegistry,
    /// The component that marks an entity running a script, whose entity a
    /// guest may not despawn or change unless it is its own.
    pub script_component: Option<ComponentId>,
}

/// The data in each instance's store. Its fields are the host's own: each
/// interface sees the ones it touches through its view (`LogView`,
/// `EcsView`, ...), the rest of the crate calls the methods below.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    identity: InstanceIdentity,
    output: GuestOutput,
    /// The current frame's virtual time, in nanoseconds; set before each call.
    now: u64,
    tasks: TaskQueue,
    mailbox: Mailbox,
    watches: Watches,
    /// Whether the guest asked for `handle-batch` in every frame.
    every_frame: bool,
    /// Its own components the guest asked to have with every frame
    /// (`ecs.prefetch`).
    prefetched: Vec<ecs::Prefetched>,
    /// The game's type registry, to check watched type paths.
    registry: AppTypeRegistry,
    /// The component on every entity that runs a script.
    script_component: Option<ComponentId>,
    /// The game's world, lent for the length of each call (see `WorldLoan`).
    world: Option<Box<World>>,
    /// The world's change tick when the previous call ended: what the
    /// `added` and `changed` filters of a query count from.
    last_call_tick: Tick,
    /// Enforces the instance's memory and table limits.
    limiter: Limiter,
    /// The key-value handles the guest holds.
    kv_handles: keyvalue::KvHandles,
    /// The module's limits, its totals (key-value, spawned entities) among them.
    limits: GuestLimits,
    /// What the host did for the current call, against the quotas.
    quota: CallQuota,
    /// What the module was granted, checked in every import.
    access: Access,
    warned_task_cap: bool,
}

impl HostState {
    /// A fresh state with a locked-down WASI context: no filesystem, no
    /// network, no environment or arguments, empty stdin; stdout and stderr
    /// are collected as log lines in `output`.
    pub fn new(
        identity: InstanceIdentity,
        output: GuestOutput,
        game: GameTypes,
        limits: &GuestLimits,
        quota: CallQuota,
        grant: Arc<Grant>,
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
            every_frame: false,
            prefetched: Vec::new(),
            registry: game.registry,
            script_component: game.script_component,
            world: None,
            last_call_tick: Tick::new(0),
            limiter: Limiter::new(limits),
            kv_handles: keyvalue::KvHandles::default(),
            limits: *limits,
            quota,
            access: Access::new(grant),
            warned_task_cap: false,
        }
    }

    /// The calls the grant refused since the last time, and the newest
    /// refusal as the guest was told.
    pub fn take_denied(&mut self) -> (u64, Option<String>) {
        self.access.take_denied()
    }

    /// Lends the instance the game's world for the length of a call
    /// (`WorldLoan`).
    pub(crate) fn lend_world(&mut self, world: Option<Box<World>>) {
        self.world = world;
    }

    /// Takes back the world lent for the call that ended.
    pub(crate) fn take_world(&mut self) -> Option<Box<World>> {
        // Ticked on, so that what is written after this call (by scripts
        // later in the frame, too) is newer than what it has seen.
        if let Some(world) = &mut self.world {
            self.last_call_tick = world.increment_change_tick();
        }
        self.world.take()
    }

    /// Sets the current frame's virtual time, in nanoseconds, before a call.
    pub(crate) fn set_now(&mut self, now: u64) {
        self.now = now;
    }

    /// What enforces the instance's memory and table limits, for the store.
    pub(crate) fn limiter(&mut self) -> &mut dyn wasmtime::ResourceLimiter {
        &mut self.limiter
    }

    /// Whether a memory or table growth was refused since the last time.
    pub(crate) fn take_limit_hit(&mut self) -> bool {
        self.limiter.take_hit()
    }

    /// Starts the quotas over for the next call; returns how many requests
    /// they refused since the last start.
    pub(crate) fn start_call(&mut self) -> u64 {
        self.quota.start_call()
    }

    /// The instance's watches, to match changes against.
    pub(crate) fn watches(&self) -> &Watches {
        &self.watches
    }

    /// Whether the instance subscribed to `topic`.
    pub(crate) fn is_subscribed(&self, topic: &str) -> bool {
        self.mailbox.is_subscribed(topic)
    }

    /// Whether the guest said it answers requests on `topic`.
    pub(crate) fn answers(&self, topic: &str) -> bool {
        self.mailbox.answers(topic)
    }

    /// Whether its capabilities let it answer requests on `topic`.
    pub(crate) fn may_answer(&self, topic: &str) -> bool {
        self.access
            .allows(crate::capabilities::Right::Answer, topic)
    }

    /// Whether the guest asked for `handle-batch` in every frame.
    pub(crate) fn every_frame(&self) -> bool {
        self.every_frame
    }

    /// Whether any task is due at `now`.
    pub(crate) fn has_due_tasks(&self, now: u64) -> bool {
        self.tasks.has_due(now)
    }

    /// Moves every task due at `now` into `out`, in order (see
    /// `TaskQueue::take_due`).
    pub(crate) fn take_due_tasks(&mut self, now: u64, out: &mut Vec<TaskDue>) {
        self.tasks.take_due(now, out);
    }

    /// The messages the guest sent since the last time, in order.
    pub(crate) fn take_sent(&mut self) -> Vec<(String, Vec<u8>)> {
        std::mem::take(&mut self.mailbox.sent)
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
/// interface of the `hotwasm:script` world, each with its marker and the
/// view of the state it is implemented on.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use bindings::hotwasm::script::{ecs, instance, log, messaging, scheduler, types, watch};
    use bindings::wasi::keyvalue::{atomics, batch, store};
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    store::add_to_linker::<HostState, Kv>(linker, KvView::of)?;
    atomics::add_to_linker::<HostState, Kv>(linker, KvView::of)?;
    batch::add_to_linker::<HostState, Kv>(linker, KvView::of)?;
    types::add_to_linker::<HostState, Types>(linker, |_| ())?;
    log::add_to_linker::<HostState, Log>(linker, LogView::of)?;
    instance::add_to_linker::<HostState, Instance>(linker, InstanceView::of)?;
    scheduler::add_to_linker::<HostState, Scheduler>(linker, SchedulerView::of)?;
    messaging::add_to_linker::<HostState, Messaging>(linker, MessagingView::of)?;
    watch::add_to_linker::<HostState, Watch>(linker, WatchView::of)?;
    ecs::add_to_linker::<HostState, Ecs>(linker, EcsView::of)
}
