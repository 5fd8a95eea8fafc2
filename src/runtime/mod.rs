//! The one exclusive system that runs every script instance
//! ([`WasmSystems::Run`]), and the status it keeps for everyone to read
//! ([`WasmRuntime`]).
//!
//! The live instances are the runtime's own (the private resource
//! [`ScriptRunner`], taken out while scripts run); the status is
//! plain data, readable through `&World`. `requests` asks scripts the
//! game's questions, now or this frame; `game_messages` carries the game's
//! own Bevy messages to scripts and back.
//!
//! Its parts use one another one way: `lifecycle` → `delivery` → `faults`
//! (and `lifecycle` → `faults`, `lifecycle` → `script_changes`,
//! `requests` → `delivery`, `faults`, `delivery` → `game_messages`);
//! `changes` stands apart. Each may use
//! this file's types.

mod changes;
mod delivery;
mod encoding;
mod faults;
mod game_messages;
mod lifecycle;
mod requests;
mod script_changes;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bevy::asset::AssetLoadFailedEvent;
use bevy::diagnostic::FrameCount;
use bevy::ecs::message::{MessageCursor, Messages};
use bevy::ecs::system::SystemState;
use bevy::platform::cell::SyncCell;
use bevy::platform::collections::HashMap;
use bevy::prelude::*;

use self::changes::ChangeTracker;
use self::delivery::{Inbox, Sent};
pub(crate) use self::game_messages::GameMessages;
pub use self::game_messages::ScriptMessageApp;
use self::lifecycle::Version;
pub(crate) use self::requests::AskQueue;
pub use self::requests::{AskError, AskScript, AskTicket, ScriptAnswered, ScriptAsk};
use crate::asset::WasmModule;
use crate::capabilities::Grant;
use crate::engine::WasmEngine;
use crate::host::{GuestFrame, InstanceDetails};
use crate::instance::{CallCost, LiveInstance, PendingEvents, WorldLoan};
use crate::kv::{KvChanged, KvStore};
use crate::messages::{HostMessage, ModuleFailed, Recipient, ScriptReceiver};
use crate::sandbox::{FaultKind, FaultPolicy, QueueLimits};

/// Runs a script module on this entity.
///
/// The entity gets its own instance of the module (its own store and linear
/// memory), even when other entities run the same module. The instance starts
/// once the module has loaded, follows every hot reload of it, and is freed
/// when the entity is despawned or this component removed; nothing is called
/// on the guest then. Inserting a `WasmScript` with another module starts that
/// module afresh.
#[derive(Component, Clone, Debug)]
pub struct WasmScript(pub Handle<WasmModule>);

/// Runs the entity's script in `FixedUpdate` instead of `Update`: its
/// starts and hot swaps, tasks, messages, watch events and per-frame hook
/// happen at each fixed step, in `Time<Fixed>`, so gameplay it drives steps
/// with the game's fixed timestep. Insert it with the [`WasmScript`] (it
/// is read when the script is added).
///
/// ```no_run
/// # use bevy::prelude::*;
/// # use bevy_hotwasm::prelude::*;
/// fn spawn(mut commands: Commands, assets: Res<AssetServer>) {
///     commands.spawn((WasmScript(assets.load("modules/physics.wasm")), FixedUpdateScript));
/// }
/// ```
#[derive(Component, Clone, Copy, Debug, Default)]
pub struct FixedUpdateScript;

/// System sets of this crate, for ordering the game's systems around the
/// scripts.
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WasmSystems {
    /// The one exclusive system, in `Update`, that does all guest work of a
    /// frame: hot swaps, then starting new instances, in entity order.
    Run,
    /// Its twin in `FixedUpdate`, running the scripts with a
    /// [`FixedUpdateScript`] once per fixed step.
    RunFixed,
    /// In `Update`, before [`WasmSystems::Run`]: the key-value store's
    /// changes published as [`KvChanged`] messages. A system that writes to
    /// the store and wants scripts to see it this frame runs before it.
    PublishKvChanges,
}

/// What one script's instances have used and suffered, across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptStats {
    /// Calls into the guest.
    pub calls: u64,
    /// Calls that faulted.
    pub faults: u64,
    /// Restarts after a fault, and by [`WasmRuntime::restart`].
    pub restarts: u64,
    /// Time spent in the guest in the last frame it was called.
    pub last_frame_time: Duration,
    /// Fuel burnt in the last frame it was called (with fuel on).
    pub last_frame_fuel: u64,
    /// Frames in which it was called.
    pub frames: u64,
    /// Time spent in the guest in all those frames.
    pub total_time: Duration,
    /// Fuel burnt in all those frames.
    pub total_fuel: u64,
    /// Host requests refused over the per-call quotas
    /// ([`HostQuotas`](crate::sandbox::HostQuotas)), dropped log lines included.
    pub refused_host_calls: u64,
    /// Host calls refused because the module was not granted the
    /// capability they need (see [`CapabilityPolicy`](crate::CapabilityPolicy));
    /// the warning about refused requests quotes the newest.
    pub denied_host_calls: u64,
    /// Watch events dropped while the script was paused or put off by the
    /// frame budget, or held when a new generation was swapped in, past
    /// [`QueueLimits::max_held_events`] or [`QueueLimits::max_held_event_bytes`].
    pub dropped_events: u64,
    /// Frames in which it had work due but was not called, the frame's
    /// guest time budget spent ([`Sandbox::frame_budget`](crate::Sandbox::frame_budget)).
    pub postponed: u64,
}

impl ScriptStats {
    /// Time in the guest per frame it was called, on average.
    pub fn average_frame_time(&self) -> Duration {
        self.total_time
            .checked_div(u32::try_from(self.frames).unwrap_or(u32::MAX))
            .unwrap_or_default()
    }

    /// Fuel per frame it was called, on average.
    pub fn average_frame_fuel(&self) -> u64 {
        self.total_fuel.checked_div(self.frames).unwrap_or_default()
    }

    fn close_frame(&mut self, cost: CallCost) {
        self.postponed += cost.postponed;
        if cost.calls == 0 && cost.faults == 0 {
            return;
        }
        self.calls += cost.calls;
        self.refused_host_calls += cost.refused;
        self.denied_host_calls += cost.denied;
        self.frames += 1;
        self.last_frame_time = cost.time;
        self.last_frame_fuel = cost.fuel;
        self.total_time += cost.time;
        self.total_fuel += cost.fuel;
    }
}

/// What the runtime knows of a module that has been loaded or tried to.
#[derive(Clone, Debug)]
pub struct ModuleStatus {
    path: Arc<str>,
    generation: u32,
    /// The generation of the version in `Assets<WasmModule>`: the newest that
    /// loaded.
    loaded_generation: u32,
    newest: Option<Version>,
    last_failure: Option<ModuleFailed>,
    last_reload: Option<ReloadTiming>,
    /// Stopped by [`WasmRuntime::unload`] until its next version loads.
    unloaded: bool,
    /// What the loaded generation may touch.
    grant: Option<Arc<Grant>>,
    /// The newest read of its file ([`WasmModule::read`]) that loaded and
    /// was applied, and the newest that failed: older outcomes are dropped.
    applied_loaded: u64,
    applied_failed: u64,
}

/// A hot reload: when a module's new generation first replaced a running
/// one, and how long it took to get there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReloadTiming {
    /// The generation.
    pub generation: u32,
    /// The game's virtual time when it replaced the first instance.
    pub at: Duration,
    /// From its loader beginning to read the file (after the file watcher's
    /// debounce) to that instance running it, state restored and `init`
    /// run.
    pub took: Duration,
}

impl ModuleStatus {
    /// The module's asset path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// How many versions of the module's file have been seen, failed ones
    /// included: the generation the newest version got.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The newest failure to load the module, if its newest version failed.
    pub fn last_failure(&self) -> Option<&ModuleFailed> {
        self.last_failure.as_ref()
    }

    /// What the loaded generation was granted, what it asked for and what
    /// the game's ceilings refused it; `None` until a version loaded.
    pub fn capabilities(&self) -> Option<&Grant> {
        self.grant.as_deref()
    }

    /// The newest generation that loaded: what its scripts run, or start.
    /// Lower than [`ModuleStatus::generation`] while its newest version
    /// failed to load (the scripts keep the older one).
    pub fn loaded_generation(&self) -> u32 {
        self.loaded_generation
    }

    /// The newest read of its file whose outcome (loaded or failed) the
    /// runtime applied ([`WasmModule::read`]); 0 until one was, or for a
    /// module the game made itself.
    pub fn applied_read(&self) -> u64 {
        self.applied_loaded.max(self.applied_failed)
    }

    /// Whether [`WasmRuntime::unload`] stopped its scripts, which wait for
    /// its next version.
    pub fn is_unloaded(&self) -> bool {
        self.unloaded
    }

    /// The newest hot reload that reached a running instance: its
    /// generation, when, and how long it took from the file being read.
    /// `None` until one did (a first start waits for entities, so it is not
    /// timed).
    pub fn last_reload(&self) -> Option<ReloadTiming> {
        self.last_reload
    }
}

/// One entity's script, as the runtime last left it.
#[derive(Clone, Debug)]
pub struct ScriptStatus {
    module: AssetId<WasmModule>,
    generation: Option<u32>,
    last_failure: Option<ModuleFailed>,
    stats: ScriptStats,
    quarantined: bool,
    paused: bool,
    last_fault: Option<FaultKind>,
    queued_messages: usize,
    held_events: usize,
    details: InstanceDetails,
    /// (run, guest time) of the frames it was called in, within the last
    /// [`RECENT_RUNS`] runs.
    recent: VecDeque<(u64, Duration)>,
}

impl ScriptStatus {
    /// The module this script runs.
    pub fn module(&self) -> AssetId<WasmModule> {
        self.module
    }

    /// The generation of the running instance, or `None` while the module
    /// is loading, after its first start failed, or while a faulted
    /// instance waits to restart.
    pub fn generation(&self) -> Option<u32> {
        self.generation
    }

    /// The newest failure of this instance to start or reload, if any; it
    /// stays until a start succeeds (a later generation, or a restart).
    pub fn last_failure(&self) -> Option<&ModuleFailed> {
        self.last_failure.as_ref()
    }

    /// What the script's instances have used, across restarts.
    pub fn stats(&self) -> &ScriptStats {
        &self.stats
    }

    /// Whether the script stopped after too many faults.
    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }

    /// Whether the script is paused ([`WasmRuntime::pause`]).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// How many watch events wait for a paused script (none while it runs:
    /// a running script gets each frame's events in that frame).
    pub fn held_events(&self) -> usize {
        self.held_events
    }

    /// The most recent fault, if the script ever faulted.
    pub fn last_fault(&self) -> Option<&FaultKind> {
        self.last_fault.as_ref()
    }

    /// How many messages wait for this script's next run.
    pub fn queued_messages(&self) -> usize {
        self.queued_messages
    }

    /// The guest time of each frame this script was called in, within the
    /// last [`RECENT_RUNS`] runs of [`WasmSystems::Run`]: `(run, time)`,
    /// oldest first, runs numbered as [`WasmRuntime::runs`] counts them.
    /// Frames it was not called in are not listed (their time is zero).
    pub fn recent_guest_time(&self) -> impl Iterator<Item = (u64, Duration)> + '_ {
        self.recent.iter().copied()
    }

    /// What the running instance has registered (tasks, subscriptions,
    /// watches, the per-frame hook) and its memory, as of its last call;
    /// empty while no instance runs.
    pub fn details(&self) -> &InstanceDetails {
        &self.details
    }
}

/// How many runs of [`WasmSystems::Run`] a script's
/// [`ScriptStatus::recent_guest_time`] covers.
pub const RECENT_RUNS: u64 = 300;

/// Every script's and module's status, as of the last run of
/// [`WasmSystems::Run`]: plain data for debug panels and game systems.
#[derive(Resource, Default)]
pub struct WasmRuntime {
    modules: HashMap<AssetId<WasmModule>, ModuleStatus>,
    scripts: BTreeMap<RunOrder, ScriptStatus>,
    /// What every script's calls used in the last frame, added up.
    last_frame: CallCost,
    /// Quarantined scripts released since the last run.
    released: Vec<Entity>,
    /// Running scripts asked to start afresh since the last run.
    restarted: Vec<Entity>,
    /// Scripts paused (`true`) or resumed since the last run.
    pausing: Vec<(Entity, bool)>,
    /// Modules whose scripts were asked to stop since the last run.
    unloading: Vec<AssetId<WasmModule>>,
    /// Whether each component or resource change a watch got is written as
    /// a [`WatchedChange`](crate::messages::WatchedChange).
    record_watched_changes: bool,
    /// How many times [`WasmSystems::Run`] ran.
    runs: u64,
}

impl WasmRuntime {
    /// The script on `entity`, if it has a [`WasmScript`].
    pub fn script(&self, entity: Entity) -> Option<&ScriptStatus> {
        self.scripts.get(&RunOrder(entity))
    }

    /// Every script, in the order the runtime runs them: by entity index.
    pub fn scripts(&self) -> impl Iterator<Item = (Entity, &ScriptStatus)> {
        self.scripts.iter().map(|(order, script)| (order.0, script))
    }

    /// The status of a module that has loaded or failed to.
    pub fn module(&self, module: impl Into<AssetId<WasmModule>>) -> Option<&ModuleStatus> {
        self.modules.get(&module.into())
    }

    /// Every module that has loaded or failed to, in no particular order.
    pub fn modules(&self) -> impl Iterator<Item = (AssetId<WasmModule>, &ModuleStatus)> {
        self.modules.iter().map(|(id, status)| (*id, status))
    }

    /// Lets a quarantined script start again (from its module's newest
    /// generation, at the next run). Returns whether it was quarantined.
    pub fn release(&mut self, entity: Entity) -> bool {
        let Some(script) = self.scripts.get_mut(&RunOrder(entity)) else {
            return false;
        };
        let was_quarantined = std::mem::take(&mut script.quarantined);
        if was_quarantined {
            self.released.push(entity);
        }
        was_quarantined
    }

    /// Starts a running script's generation again from scratch (no saved
    /// state, tasks or subscriptions) at the next run, as after a fault but
    /// without counting one. Returns whether it was running.
    pub fn restart(&mut self, entity: Entity) -> bool {
        let running = self
            .scripts
            .get(&RunOrder(entity))
            .is_some_and(|script| script.generation.is_some());
        if running {
            self.restarted.push(entity);
        }
        running
    }

    /// Pauses the script on `entity` (`paused`), or resumes it, from the
    /// next run. A paused script is not called at all: no tasks, frame
    /// hook, messages or watch events, and no start, hot swap or restart.
    /// Its messages wait as they would for a busy script (up to
    /// [`QueueLimits`]) and its watch events are held (up to
    /// [`QueueLimits::max_held_events`]; more are dropped and counted in
    /// [`ScriptStats::dropped_events`]); on resume it gets them all in one
    /// batch and its tasks that fell due while paused run (an `every` task
    /// once, with its missed ticks counted). A newer generation that loaded
    /// meanwhile is swapped in first; the events held for the old one are
    /// then dropped and counted, as its watches are gone. The game's own
    /// time is not paused. Returns whether `entity` has a script.
    pub fn pause(&mut self, entity: Entity, paused: bool) -> bool {
        let Some(script) = self.scripts.get_mut(&RunOrder(entity)) else {
            return false;
        };
        script.paused = paused;
        self.pausing.push((entity, paused));
        true
    }

    /// Stops every script running `module` at the next run: their
    /// instances are dropped (nothing is called on them; in-memory state
    /// is lost, the key-value store keeps its data) and they, and scripts
    /// spawned for it later, wait for the module's next version. Loading
    /// the file again (`AssetServer::reload`, the panel's Reload button)
    /// starts them afresh, even with the same bytes. Returns whether the
    /// module has loaded or tried to.
    pub fn unload(&mut self, module: impl Into<AssetId<WasmModule>>) -> bool {
        let module = module.into();
        let Some(status) = self.modules.get_mut(&module) else {
            return false;
        };
        status.unloaded = true;
        self.unloading.push(module);
        true
    }

    /// Writes each component or resource change that reached a watch as a
    /// [`WatchedChange`](crate::messages::WatchedChange) message from the
    /// next run on (`on`), or stops. Off
    /// by default: each costs a copy of the change's JSON.
    pub fn record_watched_changes(&mut self, on: bool) {
        self.record_watched_changes = on;
    }

    /// How many times [`WasmSystems::Run`] has run: the frame count of
    /// [`ScriptStatus::recent_guest_time`].
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// Time spent in guest code in the last frame, all scripts together.
    pub fn last_frame_guest_time(&self) -> Duration {
        self.last_frame.time
    }

    /// Guest calls that faulted in the last frame.
    pub fn last_frame_faults(&self) -> u64 {
        self.last_frame.faults
    }

    /// Scripts with work due that the last frame put off to the next, its
    /// guest time budget spent ([`Sandbox::frame_budget`](crate::Sandbox::frame_budget)).
    pub fn last_frame_postponed(&self) -> u64 {
        self.last_frame.postponed
    }

    /// How many scripts are quarantined.
    pub fn quarantined(&self) -> usize {
        self.scripts
            .values()
            .filter(|script| script.quarantined)
            .count()
    }
}

/// Scripts run in the order of their entities' indices: oldest first, the
/// same on every run of the same game. (`Entity`'s own `Ord` compares its
/// bit pattern, which puts newer entities first.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RunOrder(Entity);

impl Ord for RunOrder {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0.index_u32(), self.0).cmp(&(other.0.index_u32(), other.0))
    }
}

impl PartialOrd for RunOrder {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One script as the runtime runs it: its live instance and what waits for
/// it. Its public face is its [`ScriptStatus`].
struct TrackedScript {
    module: AssetId<WasmModule>,
    /// Whether it runs in `FixedUpdate` ([`FixedUpdateScript`]).
    fixed: bool,
    /// The newest module generation this script tried to start or swap to.
    attempted: u32,
    /// The version its running instance was started from: what a restart
    /// after a fault starts again, even when a newer version failed to
    /// start on it and `Assets<WasmModule>` holds only that one.
    started: Option<lifecycle::StartedVersion>,
    instance: Option<LiveInstance>,
    /// Messages waiting for the next `handle-batch`; kept across reloads.
    inbox: Inbox,
    /// Whether it is paused: not called, its messages and events held.
    paused: bool,
    /// Watch events dropped while paused, past the bounds, ever.
    dropped_events: u64,
    /// Whether this pause has dropped events yet (and warned about it).
    dropping_events: bool,
    /// This frame's changes that matched the running generation's watches.
    events: PendingEvents,
    /// What this frame's calls used so far.
    this_frame: CallCost,
    /// When recent faults happened (virtual time, ns), oldest first.
    recent_faults: VecDeque<u64>,
}

impl TrackedScript {
    fn charge(&mut self, cost: CallCost) {
        self.this_frame.calls += cost.calls;
        self.this_frame.time += cost.time;
        self.this_frame.fuel += cost.fuel;
        self.this_frame.refused += cost.refused;
        self.this_frame.denied += cost.denied;
        self.this_frame.faults += cost.faults;
    }

    /// Whether it has anything to be called for at `now`: messages, watch
    /// events, a task due or the frame it asked for.
    fn has_work(&self, now: u64, frame: Option<&GuestFrame>) -> bool {
        let Some(instance) = &self.instance else {
            return false;
        };
        !self.inbox.is_empty() || !self.events.is_empty() || instance.wants_call(now, frame)
    }
}

/// The runtime's own state, owned by the exclusive system.
#[derive(Default)]
pub(crate) struct Runner {
    scripts: BTreeMap<RunOrder, TrackedScript>,
    /// Scripts whose module has a generation they have not tried yet.
    stale: BTreeSet<RunOrder>,
    /// Faulted scripts waiting to start again, with when (virtual time, ns).
    restarts: BTreeMap<RunOrder, u64>,
    /// Scripts whose guest was called this frame, for the frame's accounting.
    charged: Vec<RunOrder>,
    /// Scripts that got a message this frame, for their status.
    queued_to: Vec<RunOrder>,
    /// What guests sent this frame, delivered to subscribers at its end.
    sent: Vec<Sent>,
    changes: ChangeTracker,
    /// How much may wait for each script, from the sandbox.
    queues: QueueLimits,
    /// The first script the last frame put off, the budget spent: the
    /// next frame's batches begin with it.
    resume_at: Option<RunOrder>,
    /// The same for the `FixedUpdate` pass.
    resume_fixed_at: Option<RunOrder>,
    /// The trust policy's revocations the runtime has acted on.
    revocations: u64,
    /// Topics a message found no script listening on, said once each.
    unheard: delivery::UnheardTopics,
}

/// The runtime's own state between its passes, taken out while scripts
/// run (`None` then: a call that asks again finds it away). A `SyncCell`,
/// since wasmtime stores are `Send` but not `Sync`.
#[derive(Resource)]
pub(crate) struct ScriptRunner(SyncCell<Option<Box<RunnerParts>>>);

struct RunnerParts {
    runner: Runner,
    /// The box the game's world moves into for a pass's calls.
    spare_world: Option<Box<World>>,
}

impl Default for ScriptRunner {
    fn default() -> Self {
        Self(SyncCell::new(Some(Box::new(RunnerParts {
            runner: Runner::default(),
            spare_world: None,
        }))))
    }
}

/// The game's virtual time now, in nanoseconds (0 without `Time<Virtual>`).
fn virtual_now(world: &World) -> u64 {
    (world.get_resource::<Time<Virtual>>()).map_or(0, |time| time.elapsed().as_nanos() as u64)
}

/// What a frame's work needs besides the runner: the game's world, the
/// status to keep up to date, the frame's virtual time (ns) and the fault
/// policy.
struct FrameContext<'a> {
    world: WorldLoan<'a>,
    status: &'a mut WasmRuntime,
    now: u64,
    policy: FaultPolicy,
    /// The most guest time this frame ([`Sandbox::frame_budget`](crate::Sandbox::frame_budget)).
    budget: Option<Duration>,
    /// The frame for guests that asked for every frame; `None` while the
    /// game is paused.
    this_frame: Option<GuestFrame>,
    /// Whether this is the `FixedUpdate` pass: its scripts, in fixed time.
    fixed: bool,
}

impl FrameContext<'_> {
    /// The status of the script `order`; it exists as long as its [`TrackedScript`].
    fn script_status(&mut self, order: RunOrder) -> Option<&mut ScriptStatus> {
        self.status.scripts.get_mut(&order)
    }
}

type RunInputs = (
    MessageReader<'static, 'static, AssetEvent<WasmModule>>,
    MessageReader<'static, 'static, AssetLoadFailedEvent<WasmModule>>,
    RemovedComponents<'static, 'static, WasmScript>,
    Query<'static, 'static, (Entity, &'static WasmScript), Changed<WasmScript>>,
);

/// Read after the hot swaps, so the new generations' watches apply.
type KvInputs = MessageReader<'static, 'static, KvChanged>;

/// The exclusive system ([`WasmSystems::Run`]), one frame's steps in entity
/// order.
pub(crate) fn run_scripts(
    world: &mut World,
    inputs: &mut SystemState<RunInputs>,
    kv_inputs: &mut SystemState<KvInputs>,
    // Read in place, not through a `MessageReader` that would hold the
    // world: a frame of messages is delivered without copying one.
    mut host_messages: Local<MessageCursor<HostMessage>>,
) -> Result {
    let (mut asset_events, mut load_failures, mut removed, changed) = inputs.get_mut(world)?;
    let script_changes = script_changes::ScriptChanges::read(
        &mut asset_events,
        &mut load_failures,
        &mut removed,
        &changed,
    );
    let from_threads: Vec<HostMessage> = world.resource::<ScriptReceiver>().0.try_iter().collect();
    let asks = world.resource::<AskQueue>().take();
    let clock = world.get_resource::<Time<Virtual>>().map(|time| Clock {
        now: time.elapsed().as_nanos() as u64,
        this_frame: (!time.is_paused()).then(|| GuestFrame {
            delta: time.delta().as_nanos() as u64,
            number: world
                .get_resource::<FrameCount>()
                .map_or(0, |count| u64::from(count.0)),
            components: None,
        }),
    });
    if let Some(mut store) = world.get_resource_mut::<KvStore>() {
        store.bypass_change_detection().start_frame();
    }
    run_pass(world, clock.unwrap_or_default(), false, |runner, frame| {
        runner.apply(frame, script_changes);
        runner.stop_revoked(frame);
        runner.start_due(frame);
        let from_systems = frame.world.resource::<Messages<HostMessage>>();
        for message in host_messages.read(from_systems).chain(&from_threads) {
            runner.deliver(message.to, &message.topic, &message.payload);
        }
        GameMessages::read_new(&mut frame.world, |topic, bytes| {
            runner.deliver(Recipient::Subscribers, topic, bytes);
        });
        runner.match_kv_changes(kv_inputs.get_mut(&mut frame.world)?.read());
        let record = frame.status.record_watched_changes;
        runner.match_ecs_changes(&mut frame.world, record);
        runner.run_batches(frame);
        runner.answer_asks(frame, asks);
        GameMessages::skip(&mut frame.world);
        runner.route_sent();
        runner.close_frame(frame.status);
        Ok(())
    })
}

/// The exclusive system [`WasmSystems::RunFixed`]: one fixed step of the
/// scripts with a [`FixedUpdateScript`], in `Time<Fixed>`: their starts and
/// hot swaps, then their batches (what `Update` queued for them, tasks due,
/// the step as their frame, numbered by fixed steps).
pub(crate) fn run_fixed_scripts(world: &mut World, mut steps: Local<u64>) -> Result {
    *steps += 1;
    let clock = world.get_resource::<Time<Fixed>>().map(|time| Clock {
        now: time.elapsed().as_nanos() as u64,
        this_frame: Some(GuestFrame {
            delta: time.delta().as_nanos() as u64,
            number: *steps,
            components: None,
        }),
    });
    run_pass(world, clock.unwrap_or_default(), true, |runner, frame| {
        runner.start_due(frame);
        runner.run_batches(frame);
        Ok(())
    })
}

/// The time a pass runs at: now (ns) and the frame for per-frame hooks.
#[derive(Default)]
pub(super) struct Clock {
    now: u64,
    this_frame: Option<GuestFrame>,
}

/// A system's pass: [`with_runner`], which only a game that never ran
/// `Plugin::finish` can find unready.
fn run_pass(
    world: &mut World,
    clock: Clock,
    fixed: bool,
    work: impl FnOnce(&mut Runner, &mut FrameContext) -> Result,
) -> Result {
    with_runner(world, clock, fixed, work).expect(
        "HotWasmPlugin makes its engine in `Plugin::finish`: call `app.finish()` before \
         `app.update()` (App::run does)",
    )
}

/// Runs `work` with the runner and the status taken out of the world and
/// the world lent for its calls; `None` when the plugin has no engine yet
/// or the runner is away (asked again from inside a guest's call). The
/// resources stay where they are: removing and inserting one moves an
/// entity between archetypes (a resource is an entity in Bevy 0.19),
/// which costs more than taking the contents out.
fn with_runner<R>(
    world: &mut World,
    clock: Clock,
    fixed: bool,
    work: impl FnOnce(&mut Runner, &mut FrameContext) -> R,
) -> Option<R> {
    let sandbox = world.get_resource::<WasmEngine>()?.sandbox();
    let (policy, budget, queues) = (sandbox.faults, sandbox.frame_budget, sandbox.queues);
    world.get_resource::<WasmRuntime>()?;
    let mut parts = world
        .get_resource_mut::<ScriptRunner>()?
        .bypass_change_detection()
        .0
        .get()
        .take()?;
    let mut status = std::mem::take(
        world
            .resource_mut::<WasmRuntime>()
            .bypass_change_detection(),
    );
    let RunnerParts {
        runner,
        spare_world,
    } = &mut *parts;
    runner.queues = queues;
    let result = work(
        runner,
        &mut FrameContext {
            world: WorldLoan::new(world, spare_world),
            status: &mut status,
            now: clock.now,
            policy,
            budget,
            this_frame: clock.this_frame,
            fixed,
        },
    );
    *world.resource_mut::<WasmRuntime>() = status;
    *world
        .resource_mut::<ScriptRunner>()
        .bypass_change_detection()
        .0
        .get() = Some(parts);
    Some(result)
}
