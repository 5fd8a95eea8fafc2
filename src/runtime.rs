//! The one exclusive system that runs every script instance, and what it
//! reports: [`ModuleReloaded`], [`ModuleFailed`], [`ModuleLogged`].

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy::asset::AssetLoadFailedEvent;
use bevy::diagnostic::{DiagnosticMeasurement, DiagnosticPath, DiagnosticsStore};
use bevy::ecs::reflect::AppTypeRegistry;
use bevy::ecs::system::SystemState;
use bevy::log::Level;
use bevy::platform::cell::SyncCell;
use bevy::platform::collections::HashMap;
use bevy::prelude::*;

use crate::asset::{WasmModule, WasmModuleLoaderError};
use crate::ecs_changes::EcsChangeTracker;
use crate::engine::WasmEngine;
use crate::host::{ChangeKind, ComponentChanges, InstanceIdentity, Message};
use crate::instance::{CallCost, CallError, LiveInstance, PendingEvents, WorldLoan};
use crate::kv::KvChanged;
use crate::messages::{HostMessage, MAX_QUEUED_MESSAGES, Recipient, ScriptReceiver};
use crate::sandbox::{FaultKind, FaultPolicy};

/// The `tracing` target of every line a guest logs, so a game can filter
/// guest output apart from the host's (`LogPlugin { filter: "hotwasm_guest=debug", .. }`).
pub const GUEST_LOG_TARGET: &str = "hotwasm_guest";

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

/// System sets of this crate.
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WasmSystems {
    /// The one exclusive system, in `Update`, that does all guest work of a
    /// frame: hot swaps, then starting new instances, in entity order.
    Run,
}

/// Where on its way to running a module or instance failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureStage {
    /// The module's file could not be read.
    Read,
    /// The module's signature was refused by the [`TrustPolicy`](crate::TrustPolicy).
    Verify,
    /// The bytes are not a valid component (not Wasm, a core module, corrupt).
    Compile,
    /// The component does not fit the `hotwasm:script` world.
    Link,
    /// The running generation's `save-state` trapped.
    Save,
    /// Creating the new instance failed (a trap in its start function, ...).
    Instantiate,
    /// The new generation's `restore-state` trapped or refused the state.
    Restore,
    /// The new instance's `init` trapped or returned an error.
    Init,
    /// The running instance trapped in `handle-batch`; it is stopped until
    /// its module changes.
    Run,
}

impl fmt::Display for FailureStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Verify => "verify",
            Self::Compile => "compile",
            Self::Link => "link",
            Self::Save => "save-state",
            Self::Instantiate => "instantiate",
            Self::Restore => "restore-state",
            Self::Init => "init",
            Self::Run => "handle-batch",
        })
    }
}

/// A new generation of a module did not start; whatever ran before keeps
/// running. Also logged as a warning.
#[derive(Message, Clone, Debug)]
pub struct ModuleFailed {
    /// The module.
    pub module: AssetId<WasmModule>,
    /// The module's asset path.
    pub path: Arc<str>,
    /// The instance that failed, or `None` when the module itself failed to
    /// load (then every instance of it keeps its generation).
    pub entity: Option<Entity>,
    /// The generation that failed.
    pub generation: u32,
    /// The step that failed.
    pub stage: FailureStage,
    /// What went wrong, from wasmtime, the loader or the guest.
    pub cause: String,
    /// When the guest did not return (a trap, an interrupt, a limit): the
    /// kind of fault. `None` for load failures and errors a guest returned.
    pub fault: Option<FaultKind>,
}

/// An instance faulted [`FaultPolicy::max_faults`] times within the
/// policy's window and stopped running: it stays visible in
/// [`WasmRuntime`] and starts again when its module changes or
/// [`WasmRuntime::release`] is called. Also logged as a warning.
#[derive(Message, Clone, Debug)]
pub struct ScriptQuarantined {
    /// The entity.
    pub entity: Entity,
    /// The module.
    pub module: AssetId<WasmModule>,
    /// The module's asset path.
    pub path: Arc<str>,
    /// The generation that kept faulting.
    pub generation: u32,
    /// The last fault.
    pub fault: FaultKind,
}

/// What one script's instances have used and suffered, across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptStats {
    /// Calls into the guest.
    pub calls: u64,
    /// Calls that faulted.
    pub faults: u64,
    /// Restarts after a fault.
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
    /// ([`HostQuotas`](crate::HostQuotas)), dropped log lines included.
    pub refused_host_calls: u64,
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
        if cost.calls == 0 && cost.faults == 0 {
            return;
        }
        self.calls += cost.calls;
        self.refused_host_calls += cost.refused;
        self.frames += 1;
        self.last_frame_time = cost.time;
        self.last_frame_fuel = cost.fuel;
        self.total_time += cost.time;
        self.total_fuel += cost.fuel;
    }
}

impl fmt::Display for ModuleFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "module {} generation {}", self.path, self.generation)?;
        if let Some(entity) = self.entity {
            write!(f, " on {entity}")?;
        }
        write!(f, " failed at {}: {}", self.stage, self.cause)
    }
}

/// An instance now runs a new generation of its module, with the state the
/// old one saved.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct ModuleReloaded {
    /// The entity whose instance was replaced.
    pub entity: Entity,
    /// The module.
    pub module: AssetId<WasmModule>,
    /// The module's asset path.
    pub path: Arc<str>,
    /// The generation now running.
    pub generation: u32,
}

/// A guest wrote a log line, through the `log` interface or its stdout
/// (`INFO`) / stderr (`WARN`). Also written to Bevy's log, target
/// [`GUEST_LOG_TARGET`].
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct ModuleLogged {
    /// The entity whose instance logged.
    pub entity: Entity,
    /// The module's asset path.
    pub path: Arc<str>,
    /// The generation that logged.
    pub generation: u32,
    /// The line's level.
    pub level: Level,
    /// The line, at most 4096 bytes.
    pub message: String,
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
}

/// What the newest generation of a module was, to recognise a repeat.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Version {
    Loaded { content_hash: u64 },
    Failed(String),
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
}

/// One entity's script: the generation it runs and its live instance.
pub struct ScriptInstance {
    module: AssetId<WasmModule>,
    /// The newest module generation this script tried to start or swap to.
    attempted: u32,
    /// The running generation's number (kept beside the instance so that
    /// `&self` can read it) and the instance.
    running: Option<(u32, SyncCell<LiveInstance>)>,
    last_failure: Option<ModuleFailed>,
    /// Messages waiting for the next `handle-batch`; kept across reloads.
    inbox: Vec<Message>,
    /// This frame's changes that matched the running generation's watches.
    events: PendingEvents,
    stats: ScriptStats,
    /// What this frame's calls used so far.
    this_frame: CallCost,
    /// When recent faults happened (virtual time, ns), oldest first.
    recent_faults: VecDeque<u64>,
    last_fault: Option<FaultKind>,
    quarantined: bool,
}

impl ScriptInstance {
    /// How many messages wait for this script's next run.
    pub fn queued_messages(&self) -> usize {
        self.inbox.len()
    }

    fn is_subscribed(&mut self, topic: &str) -> bool {
        self.running
            .as_mut()
            .is_some_and(|(_, live)| live.get().is_subscribed(topic))
    }

    /// Records and reports that `identity`'s generation failed on this script.
    fn fail(
        &mut self,
        world: &mut World,
        identity: &InstanceIdentity,
        stage: FailureStage,
        error: CallError,
    ) {
        let failure = ModuleFailed {
            module: identity.module,
            path: identity.module_path.clone(),
            entity: Some(identity.entity),
            generation: identity.generation,
            stage,
            cause: error.cause,
            fault: error.fault,
        };
        self.last_failure = Some(failure.clone());
        report(world, failure);
    }

    /// The instance of `identity`'s generation faulted (and is gone):
    /// reports it, then returns when to restart it (virtual time, ns) after
    /// a backoff, or quarantines the script after too many recent faults.
    #[must_use = "the restart must be scheduled"]
    fn faulted(
        &mut self,
        world: &mut World,
        identity: &InstanceIdentity,
        stage: FailureStage,
        error: CallError,
        now: u64,
        policy: &FaultPolicy,
    ) -> Option<u64> {
        self.running = None;
        self.stats.faults += 1;
        self.this_frame.faults += 1;
        let fault = error.fault.clone();
        self.last_fault.clone_from(&fault);
        self.fail(world, identity, stage, error);
        let window = policy.window.as_nanos() as u64;
        self.recent_faults.push_back(now);
        while self
            .recent_faults
            .front()
            .is_some_and(|&at| at.saturating_add(window) < now)
        {
            self.recent_faults.pop_front();
        }
        let recent = self.recent_faults.len() as u32;
        if recent < policy.max_faults {
            return Some(now + policy.backoff(recent).as_nanos() as u64);
        }
        self.quarantined = true;
        let quarantined = ScriptQuarantined {
            entity: identity.entity,
            module: identity.module,
            path: identity.module_path.clone(),
            generation: identity.generation,
            fault: fault.unwrap_or(FaultKind::OutOfCpu),
        };
        warn!(
            "quarantined {} generation {} on {} after {recent} faults; the last: {}",
            quarantined.path, quarantined.generation, quarantined.entity, quarantined.fault
        );
        world.write_message(quarantined);
        None
    }

    /// A new generation started: whatever the old one suffered is over.
    fn recovered(&mut self) {
        self.last_failure = None;
        self.recent_faults.clear();
        self.quarantined = false;
    }

    fn charge(&mut self, cost: CallCost) {
        self.this_frame.calls += cost.calls;
        self.this_frame.time += cost.time;
        self.this_frame.fuel += cost.fuel;
        self.this_frame.refused += cost.refused;
        self.this_frame.faults += cost.faults;
    }

    /// What the script's instances have used, across restarts.
    pub fn stats(&self) -> &ScriptStats {
        &self.stats
    }

    /// Whether the script stopped after too many faults.
    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }

    /// The most recent fault, if the script ever faulted.
    pub fn last_fault(&self) -> Option<&FaultKind> {
        self.last_fault.as_ref()
    }

    /// Queues a message for the next run, unless the inbox is full.
    fn queue(&mut self, entity: Entity, message: Message) {
        if self.inbox.len() >= MAX_QUEUED_MESSAGES {
            warn!(
                "dropped a message on topic {:?} for {entity}: {MAX_QUEUED_MESSAGES} messages already wait for it",
                message.topic
            );
            return;
        }
        self.inbox.push(message);
    }

    /// The module this script runs.
    pub fn module(&self) -> AssetId<WasmModule> {
        self.module
    }

    /// The generation of the running instance, or `None` while the module
    /// is loading or after its first start failed.
    pub fn generation(&self) -> Option<u32> {
        self.running.as_ref().map(|(generation, _)| *generation)
    }

    /// The newest failure of this instance to start or reload, if any; it
    /// stays until a later generation starts.
    pub fn last_failure(&self) -> Option<&ModuleFailed> {
        self.last_failure.as_ref()
    }
}

/// Every script instance and module status: the data the runtime acts on
/// and a debug panel reads.
#[derive(Resource, Default)]
pub struct WasmRuntime {
    modules: HashMap<AssetId<WasmModule>, ModuleStatus>,
    scripts: BTreeMap<RunOrder, ScriptInstance>,
    /// Scripts whose module has a generation they have not tried yet.
    stale: BTreeSet<RunOrder>,
    /// What guests sent this frame, delivered to subscribers at its end.
    sent: Vec<Sent>,
    /// The last CloudEvents `id` given out per bucket (source `/kv/<bucket>`).
    kv_event_ids: HashMap<String, u64>,
    ecs_changes: EcsChangeTracker,
    /// Stands in for the game's world while it is lent to an instance.
    stand_in_world: Option<World>,
    /// Faulted scripts waiting to start again, with when (virtual time, ns).
    restarts: BTreeMap<RunOrder, u64>,
    /// Scripts whose guest was called this frame, for the frame's accounting.
    charged: Vec<RunOrder>,
    /// What every script's calls used in the last frame, added up.
    last_frame: CallCost,
}

/// A message a guest sent, on its way to the other subscribers.
pub(crate) struct Sent {
    pub sender: Entity,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Scripts run in the order of their entities' indices: oldest first, the
/// same on every run of the same game. (`Entity`'s own `Ord` compares its
/// bit pattern, which puts newer entities first.)
#[derive(Clone, Copy, PartialEq, Eq)]
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

impl WasmRuntime {
    /// The script on `entity`, if it has a [`WasmScript`].
    pub fn script(&self, entity: Entity) -> Option<&ScriptInstance> {
        self.scripts.get(&RunOrder(entity))
    }

    /// Every script, in the order the runtime runs them: by entity index.
    pub fn scripts(&self) -> impl Iterator<Item = (Entity, &ScriptInstance)> {
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

    fn forget(&mut self, entity: Entity) {
        self.scripts.remove(&RunOrder(entity));
        self.stale.remove(&RunOrder(entity));
        self.restarts.remove(&RunOrder(entity));
    }

    fn track(&mut self, entity: Entity, module: AssetId<WasmModule>) {
        if self.script(entity).is_some_and(|s| s.module == module) {
            return;
        }
        let inbox = self
            .scripts
            .remove(&RunOrder(entity))
            .map(|old| old.inbox)
            .unwrap_or_default();
        let script = ScriptInstance {
            module,
            attempted: 0,
            running: None,
            last_failure: None,
            inbox,
            events: PendingEvents::default(),
            stats: ScriptStats::default(),
            this_frame: CallCost::default(),
            recent_faults: VecDeque::new(),
            last_fault: None,
            quarantined: false,
        };
        self.scripts.insert(RunOrder(entity), script);
        self.stale.insert(RunOrder(entity));
    }

    /// Gives a new version of a module (or a failed attempt at one) its
    /// generation number and marks its scripts stale. Returns `None` for a
    /// repeat of the newest version: Bevy's file watcher reports one save as
    /// several changes, and rewriting identical bytes changes nothing.
    fn new_generation(
        &mut self,
        module: AssetId<WasmModule>,
        path: &str,
        version: Version,
    ) -> Option<&mut ModuleStatus> {
        let status = self.modules.entry(module).or_insert_with(|| ModuleStatus {
            path: path.into(),
            generation: 0,
            loaded_generation: 0,
            newest: None,
            last_failure: None,
        });
        if status.newest.as_ref() == Some(&version) {
            return None;
        }
        status.generation += 1;
        if let Version::Loaded { .. } = version {
            status.loaded_generation = status.generation;
            for (order, script) in &self.scripts {
                if script.module == module {
                    self.stale.insert(*order);
                }
            }
        }
        status.newest = Some(version);
        status.last_failure = None;
        Some(status)
    }

    fn module_failed(
        &mut self,
        world: &mut World,
        module: AssetId<WasmModule>,
        path: &str,
        stage: FailureStage,
        cause: String,
    ) {
        let Some(status) = self.new_generation(module, path, Version::Failed(cause.clone())) else {
            return;
        };
        let failure = ModuleFailed {
            module,
            path: status.path.clone(),
            entity: None,
            generation: status.generation,
            stage,
            cause,
            fault: None,
        };
        status.last_failure = Some(failure.clone());
        report(world, failure);
    }

    /// Starts or swaps every stale script whose module has loaded.
    fn update_stale(&mut self, world: &mut World, now: u64) {
        let stale = std::mem::take(&mut self.stale);
        for order in stale {
            let entity = order.0;
            let Some(script) = self.scripts.get_mut(&order) else {
                continue;
            };
            let module_id = script.module;
            let loaded = world.resource::<Assets<WasmModule>>().contains(module_id);
            let (true, Some(status)) = (loaded, self.modules.get(&module_id)) else {
                // Still loading, or loaded this frame and announced next frame.
                self.stale.insert(order);
                continue;
            };
            if script.attempted == status.loaded_generation {
                continue;
            }
            script.attempted = status.loaded_generation;
            let identity = InstanceIdentity {
                entity,
                module: module_id,
                generation: status.loaded_generation,
                module_path: status.path.clone(),
            };
            let first_start = script.running.is_none();
            let started = start_generation(
                world,
                &mut self.stand_in_world,
                &mut self.sent,
                script,
                module_id,
                identity.clone(),
                now,
            );
            self.charged.push(order);
            match started {
                Ok(()) => {
                    script.recovered();
                    self.restarts.remove(&order);
                }
                // A first start that faulted is retried like a running
                // instance that faulted; a failed reload leaves the old one.
                Err((stage, error)) if first_start && error.fault.is_some() => {
                    let policy = world.resource::<WasmEngine>().sandbox().faults;
                    if let Some(at) = script.faulted(world, &identity, stage, error, now, &policy) {
                        self.restarts.insert(order, at);
                    }
                }
                Err((stage, error)) => script.fail(world, &identity, stage, error),
            }
        }
    }

    /// Starts again every faulted script whose backoff is over, from the
    /// same generation, with no saved state.
    fn restart_due(&mut self, world: &mut World, now: u64) {
        let due: Vec<RunOrder> = self
            .restarts
            .iter()
            .filter(|&(_, &at)| at <= now)
            .map(|(order, _)| *order)
            .collect();
        for order in due {
            self.restarts.remove(&order);
            let Some(script) = self.scripts.get_mut(&order) else {
                continue;
            };
            let Some(status) = self.modules.get(&script.module) else {
                continue;
            };
            if script.running.is_some() || status.loaded_generation != script.attempted {
                // A newer generation started, or is on its way: `update_stale`.
                continue;
            }
            let identity = InstanceIdentity {
                entity: order.0,
                module: script.module,
                generation: script.attempted,
                module_path: status.path.clone(),
            };
            let started = start_generation(
                world,
                &mut self.stand_in_world,
                &mut self.sent,
                script,
                script.module,
                identity.clone(),
                now,
            );
            self.charged.push(order);
            match started {
                Ok(()) => {
                    script.stats.restarts += 1;
                    info!(
                        "restarted {} generation {} on {}",
                        identity.module_path, identity.generation, identity.entity
                    );
                }
                Err((stage, error)) if error.fault.is_some() => {
                    let policy = world.resource::<WasmEngine>().sandbox().faults;
                    if let Some(at) = script.faulted(world, &identity, stage, error, now, &policy) {
                        self.restarts.insert(order, at);
                    }
                }
                Err((stage, error)) => script.fail(world, &identity, stage, error),
            }
        }
    }

    /// Lets a quarantined script start again (from its module's newest
    /// generation, next frame). Returns whether it was quarantined.
    pub fn release(&mut self, entity: Entity) -> bool {
        let Some(script) = self.scripts.get_mut(&RunOrder(entity)) else {
            return false;
        };
        let was_quarantined = std::mem::take(&mut script.quarantined);
        if was_quarantined {
            script.recent_faults.clear();
            self.restarts.insert(RunOrder(entity), 0);
        }
        was_quarantined
    }

    /// Time spent in guest code in the last frame, all scripts together.
    pub fn last_frame_guest_time(&self) -> Duration {
        self.last_frame.time
    }

    /// Guest calls that faulted in the last frame.
    pub fn last_frame_faults(&self) -> u64 {
        self.last_frame.faults
    }

    /// How many scripts are quarantined.
    pub fn quarantined(&self) -> usize {
        self.scripts
            .values()
            .filter(|script| script.quarantined)
            .count()
    }

    /// Closes the frame's accounting of every script's calls.
    fn close_frame(&mut self) {
        self.last_frame = CallCost::default();
        for order in self.charged.drain(..) {
            let Some(script) = self.scripts.get_mut(&order) else {
                continue;
            };
            // A script charged twice in a frame is closed at its first turn.
            let cost = std::mem::take(&mut script.this_frame);
            if cost == CallCost::default() {
                continue;
            }
            self.last_frame.time += cost.time;
            self.last_frame.faults += cost.faults;
            script.stats.close_frame(cost);
        }
    }

    /// Adds the frame's measurements to Bevy's diagnostics, when they are on.
    fn measure(&self, world: &mut World) {
        let Some(mut store) = world.get_resource_mut::<DiagnosticsStore>() else {
            return;
        };
        let time = Instant::now();
        let measurements = [
            (
                &WasmDiagnostics::GUEST_TIME,
                self.last_frame.time.as_secs_f64() * 1000.0,
            ),
            (&WasmDiagnostics::FAULTS, self.last_frame.faults as f64),
            (&WasmDiagnostics::QUARANTINED, self.quarantined() as f64),
        ];
        for (path, value) in measurements {
            if let Some(diagnostic) = store.get_mut(path).filter(|d| d.is_enabled) {
                diagnostic.add_measurement(DiagnosticMeasurement { time, value });
            }
        }
    }

    /// Queues a message from the host for its recipients.
    fn deliver(&mut self, HostMessage { to, topic, payload }: HostMessage) {
        if let Err(error) = crate::messages::check_message(&topic, &payload) {
            warn!("dropped a HostMessage on topic {topic:?}: {error}");
            return;
        }
        let message = Message {
            topic,
            payload,
            sender: None,
        };
        match to {
            Recipient::Entity(entity) => match self.scripts.get_mut(&RunOrder(entity)) {
                Some(script) => script.queue(entity, message),
                None => debug!(
                    "dropped a HostMessage on topic {:?}: {entity} has no WasmScript",
                    message.topic
                ),
            },
            Recipient::Subscribers => self.queue_for_subscribers(None, message),
        }
    }

    /// Queues `message` for every running script subscribed to its topic,
    /// except its sender.
    fn queue_for_subscribers(&mut self, sender: Option<Entity>, message: Message) {
        for (order, script) in &mut self.scripts {
            if Some(order.0) != sender && script.is_subscribed(&message.topic) {
                script.queue(order.0, message.clone());
            }
        }
    }

    /// Gives each key-value change its CloudEvents id and hands it to every
    /// running instance with a matching watch.
    fn match_kv_changes<'a>(&mut self, changes: impl Iterator<Item = &'a KvChanged>) {
        for change in changes {
            let id = match self.kv_event_ids.get_mut(&change.bucket) {
                Some(id) => id,
                None => self.kv_event_ids.entry(change.bucket.clone()).or_default(),
            };
            *id += 1;
            let (id, kind) = match change.value {
                Some(_) => (*id, ChangeKind::KvSet),
                None => (*id, ChangeKind::KvDelete),
            };
            for (order, script) in &mut self.scripts {
                let Some((_, live)) = &mut script.running else {
                    continue;
                };
                let events = &mut script.events;
                let data = change.value.as_deref().unwrap_or_default();
                live.get().watches().match_kv(change, order.0, |watch| {
                    events.push(watch, id, kind, &change.key, data);
                });
            }
        }
    }

    /// Collects this frame's changes to every component and resource type a
    /// running instance watches and hands each to the matching watches.
    /// Changes made by guests in last frame's batches count too: whoever
    /// wrote a component, every watch of its type sees it.
    fn match_ecs_changes(&mut self, world: &mut World) {
        let mut components: BTreeMap<TypeId, ComponentChanges> = BTreeMap::new();
        let mut resources = BTreeSet::new();
        for script in self.scripts.values_mut() {
            let Some((_, live)) = &mut script.running else {
                continue;
            };
            let watches = live.get().watches();
            for (_, watch) in watches.components() {
                *components
                    .entry(watch.type_id)
                    .or_insert(ComponentChanges::empty()) |= watch.changes;
            }
            resources.extend(watches.resources().map(|(_, watch)| watch.type_id));
        }
        let changes = if components.is_empty() && resources.is_empty() {
            Vec::new()
        } else {
            self.ecs_changes.collect(world, &components, &resources)
        };
        self.ecs_changes.mark_seen(world);
        if changes.is_empty() {
            return;
        }
        for script in self.scripts.values_mut() {
            let Some((_, live)) = &mut script.running else {
                continue;
            };
            let events = &mut script.events;
            for change in &changes {
                live.get()
                    .watches()
                    .match_type(change.type_id, change.kind, |watch| {
                        events.push(watch, change.id, change.kind, &change.subject, &change.data);
                    });
            }
        }
    }

    /// One `handle-batch` call for every running instance with tasks due,
    /// messages waiting or watched changes; instances with nothing due are
    /// not called.
    fn run_batches(&mut self, world: &mut World, now: u64) {
        let policy = world.resource::<WasmEngine>().sandbox().faults;
        for (order, script) in &mut self.scripts {
            let Some((_, live)) = &mut script.running else {
                continue;
            };
            let live = live.get();
            if script.inbox.is_empty() && script.events.is_empty() && !live.has_due_tasks(now) {
                continue;
            }
            self.charged.push(*order);
            let messages = std::mem::take(&mut script.inbox);
            let events = std::mem::take(&mut script.events);
            let mut loan = WorldLoan::new(world, &mut self.stand_in_world);
            let result = live.handle_batch(&mut loan, now, messages, events);
            live.flush(world, &mut self.sent);
            let cost = live.take_cost();
            let identity = result.is_err().then(|| live.identity().clone());
            script.charge(cost);
            if let (Err(error), Some(identity)) = (result, identity)
                && let Some(at) =
                    script.faulted(world, &identity, FailureStage::Run, error, now, &policy)
            {
                self.restarts.insert(*order, at);
            }
        }
    }

    /// Hands what guests sent this frame to the other subscribers, for the
    /// next frame.
    fn route_sent(&mut self) {
        for Sent {
            sender,
            topic,
            payload,
        } in std::mem::take(&mut self.sent)
        {
            let message = Message {
                topic,
                payload,
                sender: Some(sender.to_bits()),
            };
            self.queue_for_subscribers(Some(sender), message);
        }
    }
}

/// Runs `save-state` on the running generation (if any), then instantiates
/// the new one, restores the state into it and calls `init`. Only when every
/// step succeeds does the new instance replace the old.
fn start_generation(
    world: &mut World,
    stand_in_world: &mut Option<World>,
    sent: &mut Vec<Sent>,
    script: &mut ScriptInstance,
    module: AssetId<WasmModule>,
    identity: InstanceIdentity,
    now: u64,
) -> Result<(), (FailureStage, CallError)> {
    let saved = match &mut script.running {
        Some((_, old)) => {
            let old = old.get();
            let saved = old.save_state(&mut WorldLoan::new(world, stand_in_world));
            old.flush(world, sent);
            Some((saved, old.take_cost()))
        }
        None => None,
    };
    let saved = match saved {
        Some((saved, cost)) => {
            script.charge(cost);
            Some(saved.map_err(|error| (FailureStage::Save, error))?)
        }
        None => None,
    };
    let engine = world.resource::<WasmEngine>().clone();
    let Some(module) = world.resource::<Assets<WasmModule>>().get(module) else {
        return Err((
            FailureStage::Instantiate,
            CallError {
                cause: "the module is no longer loaded".to_owned(),
                fault: None,
            },
        ));
    };
    let limits = module.limits().copied().unwrap_or(engine.sandbox().limits);
    let pre = module.pre().clone();
    let registry = world
        .get_resource::<AppTypeRegistry>()
        .cloned()
        .unwrap_or_default();
    let mut new =
        LiveInstance::instantiate(&pre, &engine, &limits, identity.clone(), now, registry)
            .map_err(|error| (FailureStage::Instantiate, error))?;
    let result = new.start(&mut WorldLoan::new(world, stand_in_world), saved.flatten());
    new.flush(world, sent);
    let cost = new.take_cost();
    script.charge(cost);
    result?;
    let replaced = script
        .running
        .replace((identity.generation, SyncCell::new(new)));
    script.last_failure = None;
    if replaced.is_some() {
        world.write_message(ModuleReloaded {
            entity: identity.entity,
            module: identity.module,
            path: identity.module_path,
            generation: identity.generation,
        });
    }
    Ok(())
}

fn report(world: &mut World, failure: ModuleFailed) {
    warn!("{failure}");
    world.write_message(failure);
}

/// The stage and cause of a failed asset load, from our loader's error when
/// that is what failed.
fn load_failure(error: &bevy::asset::AssetLoadError) -> (FailureStage, String) {
    if let bevy::asset::AssetLoadError::AssetLoaderError(loader_error) = error
        && let Some(error) = loader_error.error().downcast_ref::<WasmModuleLoaderError>()
    {
        return (error.stage(), error.to_string());
    }
    (FailureStage::Read, error.to_string())
}

type RunInputs = (
    MessageReader<'static, 'static, AssetEvent<WasmModule>>,
    MessageReader<'static, 'static, AssetLoadFailedEvent<WasmModule>>,
    RemovedComponents<'static, 'static, WasmScript>,
    Query<'static, 'static, (Entity, &'static WasmScript), Changed<WasmScript>>,
    MessageReader<'static, 'static, HostMessage>,
);

/// What is handed out after the hot swaps, so the new generations' watches
/// and subscriptions apply: read in place, not copied.
type DeliveryInputs = (
    MessageReader<'static, 'static, KvChanged>,
    ResMut<'static, WasmRuntime>,
);

/// The exclusive system ([`WasmSystems::Run`]): forgets removed scripts,
/// tracks new ones, numbers new module generations, starts or hot-swaps
/// every instance that is behind, hands out the host's messages, gives every
/// instance with something due its batch, and finally routes what guests
/// sent to subscribers for the next frame. Always in entity order.
pub(crate) fn run_scripts(
    world: &mut World,
    inputs: &mut SystemState<RunInputs>,
    delivery: &mut SystemState<DeliveryInputs>,
) -> Result {
    let (mut asset_events, mut load_failures, mut removed, changed, mut host_messages) =
        inputs.get_mut(world)?;
    let new_versions: Vec<AssetId<WasmModule>> = asset_events
        .read()
        .filter_map(|event| match *event {
            AssetEvent::Added { id } | AssetEvent::Modified { id } => Some(id),
            _ => None,
        })
        .collect();
    let load_failures: Vec<_> = load_failures
        .read()
        .map(|failed| {
            (
                failed.id,
                failed.path.to_string(),
                load_failure(&failed.error),
            )
        })
        .collect();
    let removed: Vec<Entity> = removed.read().collect();
    let changed: Vec<(Entity, AssetId<WasmModule>)> = changed
        .iter()
        .map(|(entity, script)| (entity, script.0.id()))
        .collect();
    let mut host_messages: Vec<HostMessage> = host_messages.read().cloned().collect();
    host_messages.extend(world.resource::<ScriptReceiver>().0.try_iter());
    let now = world
        .get_resource::<Time<Virtual>>()
        .map_or(0, |time| time.elapsed().as_nanos() as u64);

    world.resource_scope(|world, mut runtime: Mut<WasmRuntime>| {
        for entity in removed {
            if !world
                .get_entity(entity)
                .is_ok_and(|e| e.contains::<WasmScript>())
            {
                runtime.forget(entity);
            }
        }
        for (entity, module) in changed {
            runtime.track(entity, module);
        }
        for (module, path, (stage, cause)) in load_failures {
            runtime.module_failed(world, module, &path, stage, cause);
        }
        for id in new_versions {
            let Some((path, content_hash)) = world
                .resource::<Assets<WasmModule>>()
                .get(id)
                .map(|module| (module.path().to_owned(), module.content_hash()))
            else {
                continue;
            };
            runtime.new_generation(id, &path, Version::Loaded { content_hash });
        }
        runtime.update_stale(world, now);
        runtime.restart_due(world, now);
    });

    let (mut kv_changes, mut runtime) = delivery.get_mut(world)?;
    for message in host_messages {
        runtime.deliver(message);
    }
    runtime.match_kv_changes(kv_changes.read());

    world.resource_scope(|world, mut runtime: Mut<WasmRuntime>| {
        runtime.match_ecs_changes(world);
        runtime.run_batches(world, now);
        runtime.route_sent();
        runtime.close_frame();
        runtime.measure(world);
    });
    Ok(())
}

/// Bevy diagnostics of the runtime, measured at the end of every
/// [`WasmSystems::Run`] (see Bevy's `DiagnosticsPlugin` and
/// `LogDiagnosticsPlugin`).
pub struct WasmDiagnostics;

impl WasmDiagnostics {
    /// Milliseconds spent in guest code in the frame, all scripts together.
    pub const GUEST_TIME: DiagnosticPath = DiagnosticPath::const_new("hotwasm/guest_time_ms");
    /// Guest calls that faulted in the frame.
    pub const FAULTS: DiagnosticPath = DiagnosticPath::const_new("hotwasm/faults");
    /// Scripts quarantined.
    pub const QUARANTINED: DiagnosticPath = DiagnosticPath::const_new("hotwasm/quarantined");
}
