//! The one exclusive system that runs every script instance, and what it
//! reports: [`ModuleReloaded`], [`ModuleFailed`], [`ModuleLogged`].

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use bevy::asset::AssetLoadFailedEvent;
use bevy::ecs::reflect::AppTypeRegistry;
use bevy::ecs::system::SystemState;
use bevy::log::Level;
use bevy::platform::cell::SyncCell;
use bevy::platform::collections::HashMap;
use bevy::prelude::*;

use crate::asset::{WasmModule, WasmModuleLoaderError};
use crate::ecs_changes::EcsChangeTracker;
use crate::host::{ChangeKind, ComponentChanges, HostState, InstanceIdentity, Message, ScriptPre};
use crate::instance::{LiveInstance, PendingEvents, WorldLoan};
use crate::kv::KvChanged;
use crate::messages::{HostMessage, MAX_QUEUED_MESSAGES, Recipient, ScriptReceiver};

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
        (stage, cause): (FailureStage, String),
    ) {
        let failure = ModuleFailed {
            module: identity.module,
            path: identity.module_path.clone(),
            entity: Some(identity.entity),
            generation: identity.generation,
            stage,
            cause,
        };
        self.last_failure = Some(failure.clone());
        report(world, failure);
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
            let module = world.resource::<Assets<WasmModule>>().get(module_id);
            let (Some(module), Some(status)) = (module, self.modules.get(&module_id)) else {
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
            let pre = module.pre().clone();
            if let Err(failure) = start_generation(
                world,
                &mut self.stand_in_world,
                &mut self.sent,
                script,
                &pre,
                identity.clone(),
                now,
            ) {
                script.fail(world, &identity, failure);
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
        for script in self.scripts.values_mut() {
            let Some((_, live)) = &mut script.running else {
                continue;
            };
            let live = live.get();
            if script.inbox.is_empty() && script.events.is_empty() && !live.has_due_tasks(now) {
                continue;
            }
            let messages = std::mem::take(&mut script.inbox);
            let events = std::mem::take(&mut script.events);
            let mut loan = WorldLoan::new(world, &mut self.stand_in_world);
            let result = live.handle_batch(&mut loan, now, messages, events);
            live.flush(world, &mut self.sent);
            if let Err(cause) = result {
                let identity = live.identity().clone();
                script.running = None;
                script.fail(world, &identity, (FailureStage::Run, cause));
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
    pre: &ScriptPre<HostState>,
    identity: InstanceIdentity,
    now: u64,
) -> Result<(), (FailureStage, String)> {
    let saved = match &mut script.running {
        Some((_, old)) => {
            let old = old.get();
            let saved = old.save_state(&mut WorldLoan::new(world, stand_in_world));
            old.flush(world, sent);
            Some(saved.map_err(|cause| (FailureStage::Save, cause))?)
        }
        None => None,
    };
    let registry = world
        .get_resource::<AppTypeRegistry>()
        .cloned()
        .unwrap_or_default();
    let mut new = LiveInstance::instantiate(pre, identity.clone(), now, registry)
        .map_err(|error| (FailureStage::Instantiate, format!("{error:#}")))?;
    let result = new.start(&mut WorldLoan::new(world, stand_in_world), saved.flatten());
    new.flush(world, sent);
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
    });
    Ok(())
}
