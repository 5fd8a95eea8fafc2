//! Every Bevy message of the crate: what the game sends scripts
//! ([`HostMessage`], also from other threads through [`ScriptSender`]) and
//! what the runtime reports ([`ModuleReloaded`], [`ModuleFailed`],
//! [`ModuleLogged`], [`ModuleMessage`], [`ScriptQuarantined`]), each naming
//! its script with one [`ScriptRef`].

use std::fmt;
use std::sync::Arc;

use bevy::log::Level;
use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use hotwasm_events::{ChangeKind, CloudEvent, Source};

use crate::asset::{WasmModule, WasmModuleLoaderError};
use crate::host::{MessageError, check_message};
use crate::sandbox::FaultKind;
use crate::stamps::EventStamp;

/// The `tracing` target of every line a guest logs, so a game can filter
/// guest output apart from the host's (`LogPlugin { filter: "hotwasm_guest=debug", .. }`).
pub const GUEST_LOG_TARGET: &str = "hotwasm_guest";

/// Which script, running which generation of which module: what every
/// message about a script names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScriptRef {
    /// The entity the script runs on.
    pub entity: Entity,
    /// The module.
    pub module: AssetId<WasmModule>,
    /// The module's asset path.
    pub path: Arc<str>,
    /// The module's generation.
    pub generation: u32,
}

impl fmt::Display for ScriptRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} generation {} on {}",
            self.path, self.generation, self.entity
        )
    }
}

/// Where on its way to running a module or instance failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureStage {
    /// The module's file could not be read.
    Read,
    /// The module's signature was refused by the [`TrustPolicy`](crate::TrustPolicy),
    /// or its capabilities could not be read or granted.
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
    /// The running instance trapped in `handle-batch`.
    Run,
    /// The running instance trapped answering the game's requests
    /// (`handle-requests`).
    Request,
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
            Self::Request => "handle-requests",
        })
    }
}

impl From<&WasmModuleLoaderError> for FailureStage {
    /// Where on a module's way to running the loader stopped it.
    fn from(error: &WasmModuleLoaderError) -> Self {
        match error {
            WasmModuleLoaderError::Io { .. } => Self::Read,
            WasmModuleLoaderError::Signature { .. }
            | WasmModuleLoaderError::Capabilities { .. }
            | WasmModuleLoaderError::WideningMeta { .. } => Self::Verify,
            WasmModuleLoaderError::NotWasm { .. }
            | WasmModuleLoaderError::CoreModule { .. }
            | WasmModuleLoaderError::Compile { .. } => Self::Compile,
            WasmModuleLoaderError::MissingExport { .. }
            | WasmModuleLoaderError::UnsatisfiedImport { .. }
            | WasmModuleLoaderError::ExportMismatch { .. } => Self::Link,
        }
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

impl ModuleFailed {
    /// The failure of one instance.
    pub(crate) fn of_script(
        script: &ScriptRef,
        stage: FailureStage,
        cause: String,
        fault: Option<FaultKind>,
    ) -> Self {
        Self {
            module: script.module,
            path: script.path.clone(),
            entity: Some(script.entity),
            generation: script.generation,
            stage,
            cause,
            fault,
        }
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

/// An instance faulted [`FaultPolicy::max_faults`](crate::sandbox::FaultPolicy::max_faults)
/// times within the policy's window and stopped running: it stays visible
/// in [`WasmRuntime`](crate::WasmRuntime) and starts again when its module
/// changes or [`WasmRuntime::release`](crate::WasmRuntime::release) is
/// called. Also logged as a warning.
#[derive(Message, Clone, Debug)]
pub struct ScriptQuarantined {
    /// The script, at the generation that kept faulting.
    pub script: ScriptRef,
    /// The last fault.
    pub fault: FaultKind,
}

/// A component or resource change that reached at least one script's
/// watch, as the scripts got it. Written only while
/// [`WasmRuntime::record_watched_changes`](crate::WasmRuntime::record_watched_changes)
/// is on (the debug panel turns it on).
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct WatchedChange {
    /// The CloudEvents `id` and times the scripts got.
    pub stamp: EventStamp,
    /// What happened: never a key-value kind (those are
    /// [`KvChanged`](crate::KvChanged)).
    pub kind: ChangeKind,
    /// The component's or resource's type path.
    pub type_path: String,
    /// The entity, for a component.
    pub entity: Option<Entity>,
    /// The value as JSON; empty for a removal.
    pub data: Vec<u8>,
    /// How many watches it matched, over all scripts.
    pub watches: usize,
}

impl WatchedChange {
    /// The change as the CloudEvent the watching scripts got
    /// ([`CloudEvent::to_json`] writes its JSON form).
    pub fn cloud_event(&self) -> CloudEvent<'_> {
        let source = match self.kind {
            ChangeKind::ResourceChanged => Source::Resource(&self.type_path),
            _ => Source::Component(&self.type_path),
        };
        let subject = self
            .entity
            .map_or(String::new(), |entity| entity.to_bits().to_string());
        let source = source.to_string().into();
        self.stamp
            .cloud_event(source, self.kind, subject.into(), &self.data)
    }
}

/// An instance now runs a new generation of its module, with the state the
/// old one saved.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct ModuleReloaded {
    /// The script, at the generation now running.
    pub script: ScriptRef,
}

/// A guest wrote a log line, through the `log` interface or its stdout
/// (`INFO`) / stderr (`WARN`). Also written to Bevy's log, target
/// [`GUEST_LOG_TARGET`].
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct ModuleLogged {
    /// The script that logged.
    pub script: ScriptRef,
    /// The line's level.
    pub level: Level,
    /// The line, at most 4096 bytes.
    pub message: String,
}

/// A message a guest sent. Every other instance subscribed to the topic gets
/// it too, in the next frame.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct ModuleMessage {
    /// The script that sent it.
    pub from: ScriptRef,
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
}

/// A message for scripts, from the game.
///
/// Write it with a `MessageWriter<HostMessage>` from any system, or send it
/// from any thread with [`ScriptSender`]. Messages written before
/// [`WasmSystems::Run`](crate::WasmSystems::Run) in a frame are delivered in
/// that frame's run; those of one sender arrive in the order sent.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct HostMessage {
    /// Who gets it.
    pub to: Recipient,
    /// The topic, 1 to 256 bytes.
    pub topic: String,
    /// The payload, at most 64 KiB.
    pub payload: Vec<u8>,
}

impl HostMessage {
    /// A message for the script on `entity`, whether or not it subscribed
    /// to `topic`.
    pub fn to_entity(
        entity: Entity,
        topic: impl Into<String>,
        payload: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            to: Recipient::Entity(entity),
            topic: topic.into(),
            payload: payload.into(),
        }
    }

    /// A message for every script subscribed to `topic`.
    pub fn to_subscribers(topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            to: Recipient::Subscribers,
            topic: topic.into(),
            payload: payload.into(),
        }
    }
}

/// Who a [`HostMessage`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// The script on this entity. Queued while its module loads; dropped
    /// (with a debug log line) if the entity has no [`WasmScript`](crate::WasmScript).
    Entity(Entity),
    /// Every running script subscribed to the topic.
    Subscribers,
}

/// Sends [`HostMessage`]s to scripts from any thread: a network thread, an
/// async task, a file watcher callback.
///
/// A resource; clone it and move the clone where it is needed. Messages are
/// taken once per frame, before [`WasmSystems::Run`](crate::WasmSystems::Run)
/// hands them out, after the frame's `MessageWriter<HostMessage>` messages.
#[derive(Resource, Clone)]
pub struct ScriptSender(Sender<HostMessage>);

impl ScriptSender {
    /// Queues `message` for the next run of the scripts. Refuses (and
    /// returns) a message with a bad topic or payload.
    pub fn send(&self, message: HostMessage) -> Result<(), MessageError> {
        check_message(&message.topic, &message.payload)?;
        // The receiver lives as long as the app; after the app is gone there
        // is nobody left to deliver to, so a failed send is dropped.
        let _ = self.0.send(message);
        Ok(())
    }
}

/// The receiving end of [`ScriptSender`], drained by the runtime.
#[derive(Resource)]
pub(crate) struct ScriptReceiver(pub Receiver<HostMessage>);

/// A connected [`ScriptSender`] and its receiver.
pub(crate) fn script_channel() -> (ScriptSender, ScriptReceiver) {
    let (sender, receiver) = crossbeam_channel::unbounded();
    (ScriptSender(sender), ScriptReceiver(receiver))
}
