//! A script's life: tracked when its entity gets a [`WasmScript`], a new
//! generation for every new version of its module, started (first start,
//! hot swap or restart after a fault: one path), released, forgotten. What
//! a fault does to it (a backoff, or quarantine) is decided in `faults`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bevy::ecs::reflect::AppTypeRegistry;
use bevy::prelude::*;

use super::delivery::{Sent, publish};
use super::faults::{fail, faulted, report};
use super::script_changes::{LoadFailure, ScriptChanges};
use super::{
    FixedUpdateScript, FrameContext, ModuleStatus, ReloadTiming, RunOrder, Runner, ScriptStatus,
    TrackedScript, WasmScript,
};
use crate::asset::{FileLoads, LoadOrder, WasmModule};
use crate::capabilities::Grant;
use crate::engine::WasmEngine;
use crate::host::{GameTypes, HostState, ScriptWorldPre};
use crate::instance::{CallError, LiveInstance, PendingEvents};
use crate::messages::{FailureStage, ModuleFailed, ModuleReloaded, ScriptRef};
use crate::sandbox::GuestLimits;
use crate::trust::{ModuleTrust, Verified};

/// What the newest generation of a module was, to recognise a repeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Version {
    /// The grant is part of a version: a changed `.wasm.meta` narrows it.
    Loaded {
        content_hash: u64,
        grant: Arc<Grant>,
    },
    Failed(String),
}

impl Runner {
    /// Applies released quarantines, asked-for restarts, removed and new
    /// scripts, failed loads and new module versions.
    pub(super) fn apply(&mut self, frame: &mut FrameContext, changes: ScriptChanges) {
        for entity in std::mem::take(&mut frame.status.released) {
            if let Some(script) = self.scripts.get_mut(&RunOrder(entity)) {
                script.recent_faults.clear();
                self.restarts.insert(RunOrder(entity), 0);
            }
        }
        for (entity, paused) in std::mem::take(&mut frame.status.pausing) {
            if let Some(script) = self.scripts.get_mut(&RunOrder(entity)) {
                script.paused = paused;
                script.dropping_events &= paused;
            }
        }
        for module in std::mem::take(&mut frame.status.unloading) {
            self.unload(frame, module);
        }
        for entity in std::mem::take(&mut frame.status.restarted) {
            let order = RunOrder(entity);
            let Some(script) = self.scripts.get_mut(&order) else {
                continue;
            };
            if script.instance.take().is_some() {
                if let Some(status) = frame.status.scripts.get_mut(&order) {
                    status.generation = None;
                }
                self.restarts.insert(order, 0);
            }
        }
        for entity in changes.removed {
            let still_scripted = frame
                .world
                .get_entity(entity)
                .is_ok_and(|entity| entity.contains::<WasmScript>());
            if !still_scripted {
                self.forget(frame, RunOrder(entity));
            }
        }
        for (entity, module) in changes.changed {
            self.track(frame, RunOrder(entity), module);
        }
        for failure in changes.load_failures {
            if !(failure.by_loader && self.settle(frame, failure.module, &failure.path)) {
                let LoadFailure {
                    module,
                    path,
                    stage,
                    cause,
                    ..
                } = failure;
                self.module_failed(frame, module, &path, stage, cause);
            }
        }
        for id in changes.new_versions {
            let Some((path, version, read)) = frame
                .world
                .resource::<Assets<WasmModule>>()
                .get(id)
                .map(|module| {
                    let version = Version::Loaded {
                        content_hash: module.content_hash(),
                        grant: module.grant().clone(),
                    };
                    (module.path().to_owned(), version, module.read())
                })
            else {
                continue;
            };
            if read == 0 || !self.settle(frame, id, &path) {
                self.new_generation(frame, id, &path, version);
            }
        }
        for id in changes.gone_modules {
            if let (Some(order), Some(status)) = (
                frame.world.get_resource::<LoadOrder>(),
                frame.status.modules.get(&id),
            ) {
                order.forget(&status.path);
            }
        }
    }

    /// Applies the newest outcomes of the loader's reads of `path` the
    /// runtime has not applied yet: its newest module that loaded, then its
    /// newest failure if that read was newer still. An outcome of a read
    /// older than one of its kind already applied is never applied, so the
    /// newest read of a file wins, whatever order the loads finished in.
    /// Returns `false` when the loader never read `path`.
    fn settle(
        &mut self,
        frame: &mut FrameContext,
        module: AssetId<WasmModule>,
        path: &str,
    ) -> bool {
        let Some(order) = frame.world.get_resource::<LoadOrder>() else {
            return false;
        };
        let Some(FileLoads { loaded, failed, .. }) = order.newest(path) else {
            return false;
        };
        let (applied_loaded, applied_failed) = (frame.status.modules.get(&module))
            .map_or((0, 0), |status| {
                (status.applied_loaded, status.applied_failed)
            });
        let loaded_read = loaded.as_ref().map_or(0, WasmModule::read);
        if let Some(newest) = loaded.filter(|newest| newest.read() > applied_loaded) {
            let version = Version::Loaded {
                content_hash: newest.content_hash(),
                grant: newest.grant().clone(),
            };
            let mut modules = frame.world.resource_mut::<Assets<WasmModule>>();
            if modules.get(module).map(WasmModule::read) != Some(loaded_read) {
                // Bevy applied an older read after this one: the newest
                // goes back (and is a repeat when Bevy reports it).
                if let Err(error) = modules.insert(module, newest) {
                    warn!("could not put back the newest read of {path}: {error}");
                }
            }
            self.new_generation(frame, module, path, version);
            if let Some(status) = frame.status.modules.get_mut(&module) {
                status.applied_loaded = loaded_read;
            }
        }
        if let Some((read, error)) =
            failed.filter(|(read, _)| *read > applied_failed.max(loaded_read))
        {
            self.module_failed(frame, module, path, (&error).into(), error.to_string());
            if let Some(status) = frame.status.modules.get_mut(&module) {
                status.applied_failed = read;
            }
        }
        true
    }

    /// Stops every module signed by a key revoked since the last run
    /// ([`TrustPolicy::remove_key`](crate::TrustPolicy::remove_key)) and
    /// loads it again: the loader refuses it, or a fallback that passes
    /// (a cached or embedded copy) takes its place.
    pub(super) fn stop_revoked(&mut self, frame: &mut FrameContext) {
        let Some(trust) = frame.world.get_resource::<ModuleTrust>() else {
            return;
        };
        let trust = trust.read();
        if trust.revocations() == self.revocations {
            return;
        }
        self.revocations = trust.revocations();
        let modules = frame.world.resource::<Assets<WasmModule>>();
        let revoked: Vec<(AssetId<WasmModule>, String, String)> = (modules.iter())
            .filter_map(|(id, module)| match module.verified() {
                Some(Verified::Signed { key_id, .. }) if trust.is_revoked(key_id) => {
                    Some((id, module.path().to_owned(), key_id.clone()))
                }
                _ => None,
            })
            .collect();
        drop(trust);
        for (module, path, key_id) in revoked {
            warn!(
                "module {path} runs signed by revoked key {key_id:?}: its scripts stop, and it \
                 is loaded again"
            );
            if let Some(status) = frame.status.modules.get_mut(&module) {
                status.unloaded = true;
            }
            self.unload(frame, module);
            frame.world.resource::<AssetServer>().reload(path);
        }
    }

    /// Drops the instances of `module`'s scripts, which then wait for its
    /// next version ([`WasmRuntime::unload`]).
    fn unload(&mut self, frame: &mut FrameContext, module: AssetId<WasmModule>) {
        for (order, script) in &mut self.scripts {
            if script.module != module {
                continue;
            }
            script.instance = None;
            self.restarts.remove(order);
            if let Some(status) = frame.status.scripts.get_mut(order) {
                status.generation = None;
                status.details = default();
            }
        }
    }

    fn forget(&mut self, frame: &mut FrameContext, order: RunOrder) {
        self.scripts.remove(&order);
        self.stale.remove(&order);
        self.restarts.remove(&order);
        frame.status.scripts.remove(&order);
    }

    fn track(&mut self, frame: &mut FrameContext, order: RunOrder, module: AssetId<WasmModule>) {
        if self
            .scripts
            .get(&order)
            .is_some_and(|script| script.module == module)
        {
            return;
        }
        let inbox = self
            .scripts
            .remove(&order)
            .map(|old| old.inbox)
            .unwrap_or_default();
        frame.status.scripts.insert(
            order,
            ScriptStatus {
                module,
                generation: None,
                last_failure: None,
                stats: default(),
                quarantined: false,
                paused: false,
                last_fault: None,
                queued_messages: inbox.len(),
                held_events: 0,
                details: default(),
                recent: default(),
            },
        );
        let fixed = frame.world.get::<FixedUpdateScript>(order.0).is_some();
        let script = TrackedScript {
            module,
            fixed,
            attempted: 0,
            started: None,
            instance: None,
            inbox,
            paused: false,
            dropped_events: 0,
            dropping_events: false,
            events: PendingEvents::default(),
            this_frame: default(),
            recent_faults: VecDeque::new(),
        };
        self.scripts.insert(order, script);
        self.restarts.remove(&order);
        self.stale.insert(order);
    }

    /// Gives a new version of a module (or a failed attempt at one) its
    /// generation number and marks its scripts stale. Returns `None` for a
    /// repeat of the newest version: Bevy's file watcher reports one save as
    /// several changes, and rewriting identical bytes changes nothing.
    fn new_generation<'s>(
        &mut self,
        frame: &'s mut FrameContext,
        module: AssetId<WasmModule>,
        path: &str,
        version: Version,
    ) -> Option<&'s mut ModuleStatus> {
        let status = frame
            .status
            .modules
            .entry(module)
            .or_insert_with(|| ModuleStatus {
                path: path.into(),
                generation: 0,
                loaded_generation: 0,
                newest: None,
                last_failure: None,
                last_reload: None,
                unloaded: false,
                grant: None,
                applied_loaded: 0,
                applied_failed: 0,
            });
        if status.newest.as_ref() == Some(&version) && !status.unloaded {
            return None;
        }
        status.generation += 1;
        if let Version::Loaded { grant, .. } = &version {
            status.loaded_generation = status.generation;
            status.grant = Some(grant.clone());
            status.unloaded = false;
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
        frame: &mut FrameContext,
        module: AssetId<WasmModule>,
        path: &str,
        stage: FailureStage,
        cause: String,
    ) {
        let Some(status) = self.new_generation(frame, module, path, Version::Failed(cause.clone()))
        else {
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
        report(&mut frame.world, failure);
    }

    /// Starts or swaps every stale script whose module has loaded, then
    /// starts again every faulted script whose backoff is over.
    pub(super) fn start_due(&mut self, frame: &mut FrameContext) {
        for order in std::mem::take(&mut self.stale) {
            let Some(script) = self.scripts.get_mut(&order) else {
                continue;
            };
            // Each script starts and swaps in its own schedule's pass.
            if script.paused || script.fixed != frame.fixed {
                self.stale.insert(order);
                continue;
            }
            let loaded = frame
                .world
                .resource::<Assets<WasmModule>>()
                .contains(script.module);
            let module = frame.status.modules.get(&script.module);
            let (true, Some(status)) = (loaded, module.filter(|module| !module.unloaded)) else {
                // Still loading, loaded this frame and announced next frame,
                // or unloaded until its next version.
                self.stale.insert(order);
                continue;
            };
            if script.attempted == status.loaded_generation {
                continue;
            }
            script.attempted = status.loaded_generation;
            self.start(frame, order, Start::NewGeneration);
        }
        let due: Vec<RunOrder> = self
            .restarts
            .iter()
            .filter(|&(order, &at)| {
                at <= frame.now
                    && (self.scripts.get(order))
                        .is_some_and(|script| !script.paused && script.fixed == frame.fixed)
            })
            .map(|(order, _)| *order)
            .collect();
        for order in due {
            self.restarts.remove(&order);
            let Some(script) = self.scripts.get(&order) else {
                continue;
            };
            let Some(status) = frame.status.modules.get(&script.module) else {
                continue;
            };
            if script.instance.is_some() || status.loaded_generation != script.attempted {
                // A newer generation started, or is on its way.
                continue;
            }
            self.start(frame, order, Start::Restart);
        }
    }

    /// Starts the script's `attempted` generation, reports how it went, and
    /// schedules a restart or quarantines it when a first start faulted.
    fn start(&mut self, frame: &mut FrameContext, order: RunOrder, why: Start) {
        let Some(script) = self.scripts.get_mut(&order) else {
            return;
        };
        let Some(path) = frame
            .status
            .modules
            .get(&script.module)
            .map(|module| module.path.clone())
        else {
            return;
        };
        // A restart starts what was running, not a newer version that
        // failed to start on this script.
        let restart_of = (script.started.clone()).filter(|started| {
            matches!(why, Start::Restart) && started.generation != script.attempted
        });
        let script_ref = ScriptRef {
            entity: order.0,
            module: script.module,
            path,
            generation: restart_of
                .as_ref()
                .map_or(script.attempted, |started| started.generation),
        };
        let running = (script.instance.as_ref()).map(|instance| instance.script_ref().clone());
        let first_start = running.is_none();
        let started = start_generation(
            frame,
            &mut self.sent,
            script,
            script_ref.clone(),
            restart_of,
        );
        self.charged.push(order);
        // A hot swap: the first start of a module's instances waits for its
        // entities, which says nothing of how fast a reload is.
        if started.is_ok() && matches!(why, Start::NewGeneration) && !first_start {
            record_reload(frame, script.module, script_ref.generation);
        }
        let Some(status) = frame.script_status(order) else {
            return;
        };
        // Every retry counts, whether or not it starts.
        if matches!(why, Start::Restart) {
            status.stats.restarts += 1;
        }
        match started {
            Ok(()) => {
                // Events held while paused matched the old instance's
                // watches, which the new one does not have.
                let held = std::mem::take(&mut script.events);
                script.dropped_events += held.len() as u64;
                status.generation = Some(script_ref.generation);
                status.last_failure = None;
                match why {
                    Start::NewGeneration => {
                        status.quarantined = false;
                        script.recent_faults.clear();
                        self.restarts.remove(&order);
                    }
                    Start::Restart => info!("restarted {script_ref}"),
                }
            }
            // The running instance faulted saving its state, and wasmtime
            // never enters an instance that trapped again: it is gone like
            // any instance that faulted, and the script restarts after the
            // backoff on the newest generation, without state. Not on its
            // own generation: the update may be what mends `save-state`.
            Err((FailureStage::Save, error)) => {
                script.started = None;
                let running = running.unwrap_or_else(|| script_ref.clone());
                if let Some(at) = faulted(frame, script, &running, FailureStage::Save, error) {
                    self.restarts.insert(order, at);
                }
            }
            // A first start that faulted is retried like a running instance
            // that faulted; a failed reload leaves the old one running.
            Err((stage, error)) if first_start && error.fault.is_some() => {
                if let Some(at) = faulted(frame, script, &script_ref, stage, error) {
                    self.restarts.insert(order, at);
                }
            }
            Err((stage, error)) => fail(frame, &script_ref, stage, error),
        }
    }
}

/// The module version a running instance was started from.
#[derive(Clone)]
pub(super) struct StartedVersion {
    generation: u32,
    pre: ScriptWorldPre<HostState>,
    limits: GuestLimits,
    grant: Arc<Grant>,
}

/// Why a script starts.
#[derive(Clone, Copy)]
enum Start {
    /// Its module has a generation it has not tried: a first start or a hot swap.
    NewGeneration,
    /// Its instance faulted and its backoff is over: the same generation
    /// again, with no saved state.
    Restart,
}

/// Records when `generation` of `module` first replaced a running one and
/// how long that took from its file being read.
fn record_reload(frame: &mut FrameContext, module: AssetId<WasmModule>, generation: u32) {
    let read_at = frame
        .world
        .resource::<Assets<WasmModule>>()
        .get(module)
        .map(WasmModule::load_started);
    let (Some(status), Some(read_at)) = (frame.status.modules.get_mut(&module), read_at) else {
        return;
    };
    if status
        .last_reload
        .is_none_or(|start| start.generation != generation)
    {
        status.last_reload = Some(ReloadTiming {
            generation,
            at: Duration::from_nanos(frame.now),
            took: read_at.elapsed(),
        });
    }
}

/// Runs `save-state` on the running generation (if any), then instantiates
/// the new one, restores the state into it and calls `init`. Only when every
/// step succeeds does the new instance replace the old.
fn start_generation(
    frame: &mut FrameContext,
    sent: &mut Vec<Sent>,
    script: &mut TrackedScript,
    script_ref: ScriptRef,
    restart_of: Option<StartedVersion>,
) -> Result<(), (FailureStage, CallError)> {
    let applied =
        (frame.status.modules.get(&script_ref.module)).map_or(0, |status| status.applied_loaded);
    let world = &mut frame.world;
    let saved = match &mut script.instance {
        Some(old) => {
            let saved = old.save_state(world);
            publish(world, old, sent);
            let cost = old.take_cost();
            script.charge(cost);
            Some(saved.map_err(|error| (FailureStage::Save, error))?)
        }
        None => None,
    };
    let engine = world.resource::<WasmEngine>().clone();
    let assets = world.resource::<Assets<WasmModule>>();
    let in_assets = assets.get(script_ref.module);
    // Bevy may have applied an older read of the file this frame, after the
    // runtime applied a newer one (its event comes next frame): the newer
    // one runs.
    let newest = in_assets
        .filter(|module| module.read() < applied)
        .and_then(|_| {
            world
                .get_resource::<LoadOrder>()?
                .newest(&script_ref.path)?
                .loaded
        })
        .filter(|newest| newest.read() == applied);
    let version = match restart_of {
        Some(started) => started,
        None => {
            let Some(module) = newest.as_ref().or(in_assets) else {
                return Err((
                    FailureStage::Instantiate,
                    CallError {
                        cause: "the module is no longer loaded".to_owned(),
                        fault: None,
                    },
                ));
            };
            StartedVersion {
                generation: script_ref.generation,
                pre: module.pre().clone(),
                limits: *module.limits(),
                grant: module.grant().clone(),
            }
        }
    };
    let StartedVersion {
        pre, limits, grant, ..
    } = version.clone();
    let game = GameTypes {
        registry: world
            .get_resource::<AppTypeRegistry>()
            .cloned()
            .unwrap_or_default(),
        script_component: world.component_id::<WasmScript>(),
    };
    let mut new = LiveInstance::instantiate(
        &pre,
        &engine,
        &limits,
        grant,
        script_ref.clone(),
        frame.now,
        game,
    )
    .map_err(|error| (FailureStage::Instantiate, error))?;
    let result = new.start(world, saved.flatten());
    publish(world, &mut new, sent);
    script.charge(new.take_cost());
    result?;
    script.started = Some(version);
    if script.instance.replace(new).is_some() {
        world.write_message(ModuleReloaded { script: script_ref });
    }
    Ok(())
}
