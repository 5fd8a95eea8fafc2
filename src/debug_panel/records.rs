//! What the panel collects from each frame's messages, open or not:
//! guest log lines, failures, events and who wrote each key, in bounded
//! buffers.

use std::collections::VecDeque;

use bevy::diagnostic::FrameCount;
use bevy::platform::collections::HashMap;
use bevy::prelude::*;

use super::state::{EventKind, PanelState};
use crate::kv::{KvChanged, KvOrigin};
use crate::messages::{
    HostMessage, ModuleFailed, ModuleLogged, ModuleMessage, ModuleReloaded, Recipient,
    ScriptQuarantined, WatchedChange,
};
use crate::runtime::WasmRuntime;

/// How many guest log lines the console keeps.
pub const CONSOLE_LINES: usize = 1000;

/// How many events the Events tab keeps.
pub const EVENT_RECORDS: usize = 1000;

/// How many distinct failures the Faults tab keeps (repeats are counted,
/// not kept).
pub const FAULT_RECORDS: usize = 200;

/// The last [`CONSOLE_LINES`] guest log lines.
#[derive(Resource, Debug, Default)]
pub struct PanelConsole {
    /// Oldest first.
    pub lines: VecDeque<ModuleLogged>,
}

/// A failure as the Faults tab shows it: the latest of its repeats (the
/// same module, stage and cause, on any instance) and how many there were.
#[derive(Clone, Debug)]
pub struct FaultRecord {
    /// The latest repeat.
    pub failure: ModuleFailed,
    /// How many times it happened.
    pub count: u64,
}

/// The last [`FAULT_RECORDS`] distinct failures ([`ModuleFailed`]), oldest
/// first.
#[derive(Resource, Debug, Default)]
pub struct PanelFaults {
    /// Oldest first; a repeat moves its record to the end.
    pub records: Vec<FaultRecord>,
}

/// One line of the Events tab.
#[derive(Clone, Debug)]
pub struct EventRecord {
    /// Counting up from 1 since the app started.
    pub number: u64,
    /// Bevy's frame count when it was seen.
    pub frame: u32,
    /// What it is.
    pub kind: EventKind,
    /// What happened, in one line.
    pub text: String,
}

/// The last [`EVENT_RECORDS`] events, oldest first.
#[derive(Resource, Debug, Default)]
pub struct PanelEvents {
    /// Oldest first.
    pub records: VecDeque<EventRecord>,
    /// How many were ever recorded.
    pub count: u64,
}

impl PanelEvents {
    fn push(&mut self, frame: u32, kind: EventKind, text: String) {
        if self.records.len() == EVENT_RECORDS {
            self.records.pop_front();
        }
        self.count += 1;
        self.records.push_back(EventRecord {
            number: self.count,
            frame,
            kind,
            text,
        });
    }
}

/// Who last wrote each key ([`KvChanged::origin`]) since the panel's
/// plugin was added, by `(bucket, key)`.
#[derive(Resource, Debug, Default)]
pub struct PanelKvWrites {
    /// The origin of the newest change to each key.
    pub last: HashMap<(String, String), KvOrigin>,
}

/// The Events tab shows component and resource changes as watches got them.
pub(super) fn record_watched_changes(runtime: Option<ResMut<WasmRuntime>>) {
    if let Some(mut runtime) = runtime {
        runtime.record_watched_changes(true);
    }
}

/// Keeps the guests' log lines, first forgetting them on a reload when the
/// console is set to.
pub(super) fn collect_console(
    mut logged: MessageReader<ModuleLogged>,
    mut reloaded: MessageReader<ModuleReloaded>,
    mut console: ResMut<PanelConsole>,
    state: Res<PanelState>,
) {
    // Before this frame's lines: the new generation's own stay.
    if reloaded.read().count() > 0 && state.clear_console_on_reload {
        console.lines.clear();
    }
    for line in logged.read() {
        if console.lines.len() == CONSOLE_LINES {
            console.lines.pop_front();
        }
        console.lines.push_back(line.clone());
    }
}

/// Records failures, counting repeats, and pauses the game on a fault when
/// asked to.
pub(super) fn collect_faults(
    mut failed: MessageReader<ModuleFailed>,
    mut faults: ResMut<PanelFaults>,
    state: Res<PanelState>,
    time: Option<ResMut<Time<Virtual>>>,
) {
    let mut faulted = false;
    for failure in failed.read() {
        faulted |= failure.fault.is_some();
        let repeat = faults.records.iter().position(|record| {
            let seen = &record.failure;
            (&seen.path, seen.stage, &seen.cause) == (&failure.path, failure.stage, &failure.cause)
        });
        let count = match repeat {
            Some(index) => faults.records.remove(index).count + 1,
            None => 1,
        };
        if faults.records.len() == FAULT_RECORDS {
            faults.records.remove(0);
        }
        faults.records.push(FaultRecord {
            failure: failure.clone(),
            count,
        });
    }
    if faulted
        && state.pause_on_fault
        && let Some(mut time) = time
    {
        time.pause();
    }
}

/// Records messages, key-value changes, component and resource changes
/// watches got, reloads and failures, in the order
/// the frame produced them, kind by kind.
#[expect(clippy::too_many_arguments, reason = "one reader per kind of event")]
pub(super) fn collect_events(
    mut events: ResMut<PanelEvents>,
    frame: Option<Res<FrameCount>>,
    mut sent: MessageReader<ModuleMessage>,
    mut host: MessageReader<HostMessage>,
    mut kv: MessageReader<KvChanged>,
    mut watched: MessageReader<WatchedChange>,
    mut reloaded: MessageReader<ModuleReloaded>,
    mut failed: MessageReader<ModuleFailed>,
    mut quarantined: MessageReader<ScriptQuarantined>,
) {
    let frame = frame.map_or(0, |count| count.0);
    for message in host.read() {
        let to = match message.to {
            Recipient::Entity(entity) => entity.to_string(),
            Recipient::Subscribers => "subscribers".to_owned(),
        };
        let payload = preview(&message.payload, 80);
        let text = format!("host → {to} [{}] {payload}", message.topic);
        events.push(frame, EventKind::Message, text);
    }
    for message in sent.read() {
        let payload = preview(&message.payload, 80);
        let text = format!("{} → [{}] {payload}", message.from, message.topic);
        events.push(frame, EventKind::Message, text);
    }
    for change in kv.read() {
        let text = kv_event_line(change);
        events.push(frame, EventKind::KeyValue, text);
    }
    for change in watched.read() {
        let on = change
            .entity
            .map_or(String::new(), |entity| format!(" on {entity}"));
        let data = match change.data.as_slice() {
            [] => String::new(),
            data => format!(" {}", preview(data, 80)),
        };
        let text = format!(
            "{} {}{on}{data} → {} watch(es)",
            change.kind.event_type(),
            change.type_path,
            change.watches
        );
        events.push(frame, EventKind::Watch, text);
    }
    for reload in reloaded.read() {
        events.push(
            frame,
            EventKind::Reload,
            format!("{} running", reload.script),
        );
    }
    for failure in failed.read() {
        events.push(frame, EventKind::Failure, failure.to_string());
    }
    for quarantine in quarantined.read() {
        let text = format!("{} quarantined: {}", quarantine.script, quarantine.fault);
        events.push(frame, EventKind::Failure, text);
    }
}

/// A key-value change for people (`tuning/speed = 250`: the value as
/// text), then as the CloudEvents JSON watching guests got (the value in
/// base64), with who wrote it as the extension attribute `hotwasmorigin`.
fn kv_event_line(change: &KvChanged) -> String {
    let mut event = change.cloud_event().to_value();
    event["hotwasmorigin"] = format!("{:?}", change.origin).into();
    let what = match &change.value {
        Some(value) => format!("= {}", preview(value, 40)),
        None => "deleted".to_owned(),
    };
    format!("{}/{} {what} {event}", change.bucket, change.key)
}

/// Up to `max` characters of `bytes` as text, for one line.
fn preview(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut shown: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        shown.push('…');
    }
    shown.replace('\n', "⏎")
}

/// Has the Key-value tab read its page again when its bucket changed.
pub(super) fn notice_kv_changes(
    mut changed: MessageReader<KvChanged>,
    mut state: ResMut<PanelState>,
    mut writes: ResMut<PanelKvWrites>,
) {
    let mut shown_bucket_changed = false;
    for change in changed.read() {
        shown_bucket_changed |= state.kv.bucket.as_deref() == Some(change.bucket.as_str());
        let key = (change.bucket.clone(), change.key.clone());
        writes.last.insert(key, change.origin);
    }
    if shown_bucket_changed {
        state.kv.page = None;
    }
}
