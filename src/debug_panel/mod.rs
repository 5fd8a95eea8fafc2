//! The debug panel (feature `debug_panel`): what the runtime knows, in
//! egui, and buttons that act on it.
//!
//! Each part is a function, `ui_for_*(world, ui)`, that draws into any
//! [`egui::Ui`] from the same public data a game's own systems can read
//! ([`WasmRuntime`], its messages, [`KvStore`], `DiagnosticsStore`,
//! `Time<Virtual>`), so a game can put one in its own UI.
//! [`HotWasmPanelPlugin`] shows them all in one window with tabs, toggled by
//! a key, and toasts for reloads. Buttons do not change the world while
//! egui holds it: they queue a [`PanelAction`], applied by a system after
//! the UI. With the window closed, the panel only records messages as they
//! come (bounded buffers); nothing is drawn or copied per frame.

use std::collections::VecDeque;
use std::time::Duration;

use bevy::diagnostic::{DiagnosticPath, DiagnosticsStore, FrameCount};
use bevy::input::common_conditions::input_just_pressed;
use bevy::log::Level;
use bevy::platform::collections::HashMap;
use bevy::prelude::*;
use bevy_egui::{EguiContext, EguiPrimaryContextPass, PrimaryEguiContext, egui};

use crate::asset::WasmModule;
use crate::capabilities::Grant;
use crate::diagnostics::WasmDiagnostics;
use crate::host::TaskDetails;
use crate::kv::{KEYS_PER_PAGE, KeyPage, KvChanged, KvOrigin, KvStore, SharedStatus};
use crate::messages::{
    FailureStage, HostMessage, ModuleFailed, ModuleLogged, ModuleMessage, ModuleReloaded,
    Recipient, ScriptQuarantined, ScriptRef, WatchedChange,
};
use crate::runtime::{ModuleStatus, RECENT_RUNS, ScriptStatus, WasmRuntime, WasmSystems};
use crate::sandbox::{FaultKind, GuestLimits};

/// How many guest log lines the console keeps.
pub const CONSOLE_LINES: usize = 1000;

/// How long a toast stays on screen.
pub const TOAST_TIME: Duration = Duration::from_secs(4);

/// How many of the soonest tasks the Time tab lists.
pub const NEXT_TASKS: usize = 10;

/// How many events the Events tab keeps.
pub const EVENT_RECORDS: usize = 1000;

/// How many distinct failures the Faults tab keeps (repeats are counted,
/// not kept).
pub const FAULT_RECORDS: usize = 200;

/// The panel: its state and actions, and (with `window`) a window with a
/// tab for each `ui_for_*`, opened and closed with `toggle`.
///
/// Needs `bevy_egui`'s `EguiPlugin` for the window (add it after
/// `DefaultPlugins`). With `window: false` the plugin only keeps the
/// panel's state and applies its actions: for `ui_for_*` in a game's own
/// UI, or in tests.
pub struct HotWasmPanelPlugin {
    /// The key that opens and closes the window.
    pub toggle: KeyCode,
    /// Whether to show the panel's own window.
    pub window: bool,
}

impl Default for HotWasmPanelPlugin {
    fn default() -> Self {
        Self {
            toggle: KeyCode::F12,
            window: true,
        }
    }
}

/// The panel's tabs, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PanelTab {
    /// Every module: path, generation, state, last failure.
    #[default]
    Modules,
    /// Every script instance: state, counters, quarantine.
    Instances,
    /// Faults and failures, repeats counted.
    Faults,
    /// Guest log lines.
    Console,
    /// The key-value store: buckets, keys, values, edits.
    KeyValue,
    /// A timeline of messages, key-value changes, reloads and failures.
    Events,
    /// The game's virtual time: pause, resume, speed.
    Time,
    /// Guest time, faults and quarantines over the last frames, plotted.
    Diagnostics,
}

impl PanelTab {
    const ALL: [Self; 8] = [
        Self::Modules,
        Self::Instances,
        Self::Faults,
        Self::Console,
        Self::Events,
        Self::KeyValue,
        Self::Time,
        Self::Diagnostics,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Modules => "Modules",
            Self::Instances => "Instances",
            Self::Faults => "Faults",
            Self::Console => "Console",
            Self::KeyValue => "Key-value",
            Self::Events => "Events",
            Self::Diagnostics => "Diagnostics",
            Self::Time => "Time",
        }
    }
}

impl std::str::FromStr for PanelTab {
    type Err = String;

    /// A tab by its label, in any case: `instances`, `Key-value`.
    fn from_str(label: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|tab| tab.label().eq_ignore_ascii_case(label))
            .ok_or_else(|| {
                let labels: Vec<&str> = Self::ALL.iter().map(|tab| tab.label()).collect();
                format!("no tab {label}; the tabs: {}", labels.join(", "))
            })
    }
}

/// Whether the window is open, its tab, and the console's filter.
#[derive(Resource, Debug, Default)]
pub struct PanelState {
    /// Whether the panel's window is shown.
    pub open: bool,
    /// The tab shown.
    pub tab: PanelTab,
    /// Only console lines containing this text are shown.
    pub console_filter: String,
    /// Log levels the console hides.
    pub console_hidden_levels: Vec<Level>,
    /// Only console lines of this module (its path) are shown.
    pub console_module: Option<String>,
    /// Whether the console forgets its lines when a module reloads.
    pub clear_console_on_reload: bool,
    /// Whether a guest fault pauses the game's virtual time, to look at the
    /// moment it happened.
    pub pause_on_fault: bool,
    /// Where the Key-value tab is.
    pub kv: KvBrowser,
    /// Only events containing this text are shown.
    pub events_filter: String,
    /// Kinds of event the Events tab hides.
    pub hidden_events: Vec<EventKind>,
    /// Whether the game is running the one frame of a step, to be paused
    /// again when the next begins.
    pub stepping: bool,
    /// The instance whose tasks, subscriptions and watches the Instances
    /// tab shows.
    pub selected_instance: Option<Entity>,
    /// The module whose origin, signer and limits the Modules tab shows.
    pub selected_module: Option<AssetId<WasmModule>>,
}

/// The Key-value tab's place: a bucket, a page of its keys (read again only
/// when it changes, not every frame), a key and its value being edited.
#[derive(Debug, Default)]
pub struct KvBrowser {
    /// The bucket shown.
    pub bucket: Option<String>,
    /// Where the page starts (`None`: the first page).
    pub cursor: Option<u64>,
    /// The page read last; `None` to read it again.
    pub page: Option<KeyPage>,
    /// The key shown.
    pub key: Option<String>,
    /// The value being edited, as text.
    pub edit: String,
    /// The key's value when the edit began: Save writes only over that.
    pub read: Option<Vec<u8>>,
    /// Why the last Save did not save, shown until the next key or Save.
    pub notice: Option<String>,
    /// How the value is shown.
    pub view: ValueView,
}

/// How the Key-value tab shows a value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ValueView {
    /// As UTF-8 text, editable.
    #[default]
    Text,
    /// As JSON, pretty-printed.
    Json,
    /// As hexadecimal bytes.
    Hex,
}

/// Something a panel button asked for, applied after the UI pass.
#[derive(Clone, Debug, PartialEq)]
pub enum PanelAction {
    /// Lets a quarantined script start again ([`WasmRuntime::release`]).
    Release(Entity),
    /// Starts a running script afresh ([`WasmRuntime::restart`]).
    Restart(Entity),
    /// Loads a module's file again, as if it had been saved.
    Reload(AssetId<WasmModule>),
    /// Stops a module's scripts until its next version ([`WasmRuntime::unload`]).
    Unload(AssetId<WasmModule>),
    /// Pauses (`true`) or resumes one script ([`WasmRuntime::pause`]).
    PauseScript(Entity, bool),
    /// Pauses or resumes the game's virtual time.
    PauseGame(bool),
    /// Sets the virtual time's speed.
    Speed(f32),
    /// Runs the paused game for one frame.
    Step,
    /// Forgets the console's lines.
    ClearConsole,
    /// Forgets the Faults tab's records.
    ClearFaults,
    /// Forgets the Events tab's records.
    ClearEvents,
    /// Saves an edited value ([`KvOrigin::Tool`]) if the key still holds
    /// what it held when it was read; otherwise the tab says so, shows the
    /// value now and keeps the edit (a second Save overwrites it).
    KvSave {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// What the key held when the edit began (`None`: unset).
        read: Option<Vec<u8>>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Deletes a key ([`KvOrigin::Tool`]).
    KvDelete {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// Adds to a key's decimal integer ([`KvOrigin::Tool`]).
    KvIncrement {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// What to add.
        delta: i64,
    },
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

/// What an [`EventRecord`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A message a guest sent ([`ModuleMessage`]) or the game sent to
    /// scripts ([`HostMessage`]).
    Message,
    /// A key-value change ([`KvChanged`]), as CloudEvents JSON.
    KeyValue,
    /// A component or resource change a script's watch got
    /// ([`WatchedChange`]).
    Watch,
    /// A new generation running ([`ModuleReloaded`]).
    Reload,
    /// A failure ([`ModuleFailed`]) or a quarantine ([`ScriptQuarantined`]).
    Failure,
}

impl EventKind {
    const ALL: [Self; 5] = [
        Self::Message,
        Self::KeyValue,
        Self::Watch,
        Self::Reload,
        Self::Failure,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Message => "messages",
            Self::KeyValue => "key-value",
            Self::Watch => "component watches",
            Self::Reload => "reloads",
            Self::Failure => "failures",
        }
    }
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

/// A reload that landed or a module that failed to load or start, shown
/// in a corner of the window for [`TOAST_TIME`], panel open or not.
#[derive(Clone, Debug, PartialEq)]
pub struct Toast {
    /// What happened: `modules/enemy_ai.wasm → gen 7 (12 instances)`.
    pub text: String,
    /// Whether it is a failure (drawn red).
    pub failed: bool,
    /// When it appeared, in real time since the app started.
    pub shown_at: Duration,
}

/// The toasts on screen, oldest first.
#[derive(Resource, Debug, Default)]
pub struct PanelToasts {
    /// Oldest first, at most five.
    pub toasts: VecDeque<Toast>,
}

/// Actions waiting to be applied.
#[derive(Resource, Debug, Default)]
pub struct PanelActions(pub Vec<PanelAction>);

/// Who last wrote each key ([`KvChanged::origin`]) since the panel's
/// plugin was added, by `(bucket, key)`.
#[derive(Resource, Debug, Default)]
pub struct PanelKvWrites {
    /// The origin of the newest change to each key.
    pub last: HashMap<(String, String), KvOrigin>,
}

/// The last [`CONSOLE_LINES`] guest log lines.
#[derive(Resource, Debug, Default)]
pub struct PanelConsole {
    /// Oldest first.
    pub lines: VecDeque<ModuleLogged>,
}

impl Plugin for HotWasmPanelPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<PanelState>()
            .init_resource::<PanelActions>()
            .init_resource::<PanelConsole>()
            .init_resource::<PanelFaults>()
            .init_resource::<PanelEvents>()
            .init_resource::<PanelToasts>()
            .init_resource::<PanelKvWrites>()
            .add_systems(PreStartup, record_watched_changes)
            .add_systems(
                Update,
                (
                    (
                        collect_console,
                        collect_faults,
                        collect_events,
                        collect_toasts,
                        notice_kv_changes,
                    )
                        .after(WasmSystems::Run),
                    (finish_step, apply_actions).chain().after(WasmSystems::Run),
                ),
            );
        if self.window {
            app.add_systems(
                Update,
                toggle_window.run_if(input_just_pressed(self.toggle)),
            )
            .add_systems(EguiPrimaryContextPass, (show_window, show_toasts));
        }
    }
}

/// The Events tab shows component and resource changes as watches got them.
fn record_watched_changes(runtime: Option<ResMut<WasmRuntime>>) {
    if let Some(mut runtime) = runtime {
        runtime.record_watched_changes(true);
    }
}

fn toggle_window(mut state: ResMut<PanelState>) {
    state.open = !state.open;
}

fn collect_console(
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
fn collect_faults(
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

/// Up to `max` characters of `bytes` as text, for one line.
fn preview(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut shown: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        shown.push('…');
    }
    shown.replace('\n', "⏎")
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

/// Records messages, key-value changes, component and resource changes
/// watches got, reloads and failures, in the order
/// the frame produced them, kind by kind.
#[expect(clippy::too_many_arguments, reason = "one reader per kind of event")]
fn collect_events(
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

/// A toast for each module that reached a new generation this frame (one
/// for all its instances) and each failure to load or start one; faults
/// while running go to the Faults tab only.
fn collect_toasts(
    mut reloaded: MessageReader<ModuleReloaded>,
    mut failed: MessageReader<ModuleFailed>,
    mut toasts: ResMut<PanelToasts>,
    runtime: Res<WasmRuntime>,
    time: Option<Res<Time<Real>>>,
) {
    let shown_at = time.map_or(Duration::ZERO, |time| time.elapsed());
    let mut landed: Vec<(&ScriptRef, usize)> = Vec::new();
    for reload in reloaded.read() {
        let script = &reload.script;
        let same = |(seen, _): &&mut (&ScriptRef, usize)| {
            (seen.module, seen.generation) == (script.module, script.generation)
        };
        match landed.iter_mut().find(same) {
            Some((_, instances)) => *instances += 1,
            None => landed.push((script, 1)),
        }
    }
    let mut new: Vec<Toast> = landed
        .into_iter()
        .map(|(script, instances)| {
            let plural = if instances == 1 { "" } else { "s" };
            let took = runtime
                .module(script.module)
                .and_then(ModuleStatus::last_reload)
                .filter(|start| start.generation == script.generation)
                .map_or(String::new(), |start| format!(" in {:.0?}", start.took));
            Toast {
                text: format!(
                    "{} → gen {}{took} ({instances} instance{plural})",
                    script.path, script.generation
                ),
                failed: false,
                shown_at,
            }
        })
        .collect();
    for failure in failed.read() {
        if failure.stage == FailureStage::Run {
            continue;
        }
        let cause = failure.cause.lines().next().unwrap_or_default();
        new.push(Toast {
            text: format!(
                "{} gen {} failed at {}: {cause}",
                failure.path, failure.generation, failure.stage
            ),
            failed: true,
            shown_at,
        });
    }
    for toast in new {
        if toasts.toasts.len() == 5 {
            toasts.toasts.pop_front();
        }
        toasts.toasts.push_back(toast);
    }
}

/// Draws the toasts in the window's bottom-right corner; forgets old ones.
fn show_toasts(
    mut toasts: ResMut<PanelToasts>,
    time: Res<Time<Real>>,
    mut contexts: Query<&mut EguiContext, With<PrimaryEguiContext>>,
) {
    let now = time.elapsed();
    toasts
        .toasts
        .retain(|toast| now.saturating_sub(toast.shown_at) < TOAST_TIME);
    if toasts.toasts.is_empty() {
        return;
    }
    let Ok(mut context) = contexts.single_mut() else {
        return;
    };
    egui::Area::new(egui::Id::new("hotwasm-toasts"))
        .anchor(egui::Align2::RIGHT_BOTTOM, [-12.0, -12.0])
        .show(context.get_mut(), |ui| {
            for toast in &toasts.toasts {
                egui::Frame::popup(ui.style()).show(ui, |ui| {
                    let color = if toast.failed {
                        egui::Color32::LIGHT_RED
                    } else {
                        egui::Color32::LIGHT_GREEN
                    };
                    ui.colored_label(color, &toast.text);
                });
            }
        });
}

/// Has the Key-value tab read its page again when its bucket changed.
fn notice_kv_changes(
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

/// Pauses the game again in the frame after a step was asked for (which
/// is the frame its virtual time moved), before the actions of this one.
fn finish_step(mut state: ResMut<PanelState>, time: Option<ResMut<Time<Virtual>>>) {
    if state.stepping {
        state.stepping = false;
        if let Some(mut time) = time {
            time.pause();
        }
    }
}

/// Applies what the panel's buttons asked for.
pub fn apply_actions(world: &mut World) {
    let actions = std::mem::take(&mut world.resource_mut::<PanelActions>().0);
    for action in actions {
        match action {
            PanelAction::Release(entity) => {
                world.resource_mut::<WasmRuntime>().release(entity);
            }
            PanelAction::Restart(entity) => {
                world.resource_mut::<WasmRuntime>().restart(entity);
            }
            PanelAction::Reload(module) => {
                let server = world.resource::<AssetServer>();
                if let Some(path) = server.get_path(module) {
                    server.reload(path.into_owned());
                }
            }
            PanelAction::Unload(module) => {
                world.resource_mut::<WasmRuntime>().unload(module);
            }
            PanelAction::PauseScript(entity, paused) => {
                world.resource_mut::<WasmRuntime>().pause(entity, paused);
            }
            PanelAction::PauseGame(paused) => {
                let mut time = world.resource_mut::<Time<Virtual>>();
                if paused {
                    time.pause();
                } else {
                    time.unpause();
                }
            }
            PanelAction::Step => {
                world.resource_mut::<PanelState>().stepping = true;
                world.resource_mut::<Time<Virtual>>().unpause();
            }
            PanelAction::Speed(speed) => {
                world
                    .resource_mut::<Time<Virtual>>()
                    .set_relative_speed(speed.max(0.0));
            }
            PanelAction::ClearConsole => world.resource_mut::<PanelConsole>().lines.clear(),
            PanelAction::ClearFaults => world.resource_mut::<PanelFaults>().records.clear(),
            PanelAction::ClearEvents => world.resource_mut::<PanelEvents>().records.clear(),
            PanelAction::KvSave {
                bucket,
                key,
                read,
                value,
            } => save_kv_edit(world, &bucket, &key, read, &value),
            PanelAction::KvDelete { bucket, key } => {
                let deleted =
                    world
                        .resource_mut::<KvStore>()
                        .delete_as(KvOrigin::Tool, &bucket, &key);
                report_kv(deleted, &bucket, &key);
            }
            PanelAction::KvIncrement { bucket, key, delta } => {
                let added = world.resource_mut::<KvStore>().increment_as(
                    KvOrigin::Tool,
                    &bucket,
                    &key,
                    delta,
                );
                report_kv(added.map(drop), &bucket, &key);
            }
        }
    }
}

/// Logs a key-value edit the store refused.
/// Saves an edit of `bucket/key` if the key still holds `read`; says in
/// the tab why not otherwise.
fn save_kv_edit(world: &mut World, bucket: &str, key: &str, read: Option<Vec<u8>>, value: &[u8]) {
    let mut store = world.resource_mut::<KvStore>();
    let saved = store.compare_and_swap_as(KvOrigin::Tool, bucket, key, read.as_deref(), value);
    let now = store.get(bucket, key).ok().flatten();
    let notice = match saved {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "Not saved: {bucket}/{key} changed since it was read. Its value now is above; \
             Save again to overwrite it with your edit."
        )),
        Err(error) => Some(format!("Not saved: {error}")),
    };
    let browser = &mut world.resource_mut::<PanelState>().kv;
    if browser.bucket.as_deref() == Some(bucket) && browser.key.as_deref() == Some(key) {
        browser.read = now;
        browser.notice = notice;
    }
}

fn report_kv(result: Result<(), crate::kv::KvError>, bucket: &str, key: &str) {
    if let Err(error) = result {
        warn!("debug panel: the edit of {bucket}/{key} was refused: {error}");
    }
}

/// The window, in the primary egui context, when open.
fn show_window(world: &mut World) {
    if !world.resource::<PanelState>().open {
        return;
    }
    let Ok(context) = world
        .query_filtered::<&mut EguiContext, With<PrimaryEguiContext>>()
        .single(world)
    else {
        return;
    };
    let mut context = context.clone();
    let mut open = true;
    egui::Window::new("bevy_hotwasm")
        .open(&mut open)
        .default_pos([560.0, 90.0])
        .default_size([720.0, 400.0])
        .show(context.get_mut(), |ui| ui_for_panel(world, ui));
    world.resource_mut::<PanelState>().open = open;
}

/// The whole panel: a tab bar and the chosen tab.
pub fn ui_for_panel(world: &mut World, ui: &mut egui::Ui) {
    let mut tab = world.resource::<PanelState>().tab;
    ui.horizontal(|ui| {
        for each in PanelTab::ALL {
            ui.selectable_value(&mut tab, each, each.label());
        }
    });
    world.resource_mut::<PanelState>().tab = tab;
    ui.separator();
    match tab {
        PanelTab::Modules => ui_for_modules(world, ui),
        PanelTab::Instances => ui_for_instances(world, ui),
        PanelTab::Faults => ui_for_faults(world, ui),
        PanelTab::Console => ui_for_console(world, ui),
        PanelTab::KeyValue => ui_for_key_value(world, ui),
        PanelTab::Events => ui_for_events(world, ui),
        PanelTab::Diagnostics => ui_for_diagnostics(world, ui),
        PanelTab::Time => ui_for_time(world, ui),
    }
}

/// What a script is doing, in a word or two.
fn script_state(status: &ScriptStatus, module: Option<&ModuleStatus>) -> &'static str {
    let unloaded = module.is_some_and(ModuleStatus::is_unloaded);
    if status.is_quarantined() {
        "quarantined"
    } else if status.is_paused() {
        "paused"
    } else if status.generation().is_some() {
        "running"
    } else if status.last_fault().is_some() {
        "restarting"
    } else if status.last_failure().is_some() {
        "failed"
    } else if unloaded {
        "unloaded"
    } else {
        "loading"
    }
}

/// A checkbox ticked while `item` is not in `hidden`; unticking hides it.
fn shown_checkbox<T: PartialEq + Copy>(
    ui: &mut egui::Ui,
    hidden: &mut Vec<T>,
    item: T,
    label: impl Into<egui::WidgetText>,
) {
    let mut shown = !hidden.contains(&item);
    if ui.checkbox(&mut shown, label).changed() {
        hidden.retain(|each| *each != item);
        if !shown {
            hidden.push(item);
        }
    }
}

/// A grid's heading row.
fn headings(ui: &mut egui::Ui, names: &[&str]) {
    for name in names {
        ui.strong(*name);
    }
    ui.end_row();
}

/// A filled circle the height of a line of text (egui's default fonts
/// have no `●`).
fn status_light(ui: &mut egui::Ui, color: egui::Color32) -> egui::Response {
    let size = ui.text_style_height(&egui::TextStyle::Body);
    let (rect, response) = ui.allocate_exact_size(egui::vec2(size, size), egui::Sense::hover());
    ui.painter().circle_filled(rect.center(), size * 0.3, color);
    response
}

/// A module's state, as a light and a word.
fn module_light(
    module: &ModuleStatus,
    running: usize,
    quarantined: usize,
) -> (egui::Color32, &'static str) {
    if module.is_unloaded() {
        (egui::Color32::GRAY, "unloaded")
    } else if quarantined > 0 {
        (egui::Color32::RED, "quarantined")
    } else if module.last_failure().is_some() && running > 0 {
        (egui::Color32::YELLOW, "failed update, kept old")
    } else if module.last_failure().is_some() {
        (egui::Color32::RED, "failed")
    } else if running > 0 {
        (egui::Color32::GREEN, "running")
    } else {
        (egui::Color32::GRAY, "loading")
    }
}

/// Every module: a status light, path, generation, instances, size and
/// content hash of the version loaded, last failure; a Reload button each.
/// Clicking a path shows below where the module came from, who signed it,
/// its limits and an Unload button.
pub fn ui_for_modules(world: &mut World, ui: &mut egui::Ui) {
    let mut selected = world.resource::<PanelState>().selected_module;
    let runtime = world.resource::<WasmRuntime>();
    let loaded = world.resource::<Assets<WasmModule>>();
    let mut modules: Vec<_> = runtime.modules().collect();
    modules.sort_by(|a, b| a.1.path().cmp(b.1.path()));
    // One pass over the scripts, not one per module: (instances, running,
    // quarantined).
    let mut counts = HashMap::<AssetId<WasmModule>, (usize, usize, usize)>::new();
    for (_, script) in runtime.scripts() {
        let count = counts.entry(script.module()).or_default();
        count.0 += 1;
        count.1 += usize::from(script.generation().is_some());
        count.2 += usize::from(script.is_quarantined());
    }
    let mut actions = Vec::new();
    solid_scroll_bars(ui);
    egui::ScrollArea::both()
        .id_salt("hotwasm-modules-scroll")
        .show(ui, |ui| {
            egui::Grid::new("hotwasm-modules")
                .striped(true)
                .num_columns(8)
                .show(ui, |ui| {
                    headings(
                        ui,
                        &[
                            "",
                            "module",
                            "generation",
                            "instances",
                            "size",
                            "content hash",
                            "last failure",
                            "",
                        ],
                    );
                    for (id, module) in modules {
                        let (instances, running, quarantined) =
                            counts.get(&id).copied().unwrap_or_default();
                        let (color, state) = module_light(module, running, quarantined);
                        status_light(ui, color).on_hover_text(state);
                        let path = egui::RichText::new(module.path()).monospace();
                        if ui.selectable_label(selected == Some(id), path).clicked() {
                            selected = Some(id);
                        }
                        let generation = match module.last_reload() {
                            // A newer version failed; an older one runs.
                            _ if (1..module.generation()).contains(&module.loaded_generation()) => {
                                format!(
                                    "{} (running {})",
                                    module.generation(),
                                    module.loaded_generation()
                                )
                            }
                            Some(start) if start.generation == module.generation() => {
                                format!("{} (in {:.0?})", start.generation, start.took)
                            }
                            _ => module.generation().to_string(),
                        };
                        ui.label(generation);
                        ui.label(instances.to_string());
                        match loaded.get(id) {
                            Some(wasm) => {
                                ui.label(bytes(wasm.size()));
                                ui.monospace(format!("{:016x}", wasm.content_hash()));
                            }
                            None => {
                                ui.label("–");
                                ui.label("–");
                            }
                        }
                        match module.last_failure() {
                            Some(failure) => {
                                ui.colored_label(egui::Color32::LIGHT_RED, failure.to_string())
                            }
                            None => ui.label("–"),
                        };
                        if ui.button(format!("Reload {}", module.path())).clicked() {
                            actions.push(PanelAction::Reload(id));
                        }
                        ui.end_row();
                    }
                });
        });
    if let Some(id) = selected
        && let Some(module) = runtime.module(id)
    {
        ui.separator();
        let limits = |wasm: &WasmModule| {
            let whose = if wasm.has_narrowed_limits() {
                "the game's, lowered by its .wasm.meta"
            } else {
                "the game's"
            };
            format!("{} ({whose})", describe_limits(wasm.limits()))
        };
        ui_for_module_details(ui, id, module, loaded.get(id), limits, &mut actions);
    }
    world.resource_mut::<PanelState>().selected_module = selected;
    world.resource_mut::<PanelActions>().0.extend(actions);
}

/// Where a module came from, who signed it, its limits; an Unload button.
fn ui_for_module_details(
    ui: &mut egui::Ui,
    id: AssetId<WasmModule>,
    module: &ModuleStatus,
    wasm: Option<&WasmModule>,
    limits: impl Fn(&WasmModule) -> String,
    actions: &mut Vec<PanelAction>,
) {
    ui.strong(module.path());
    match wasm {
        Some(wasm) => {
            ui.label(format!("from: {}", wasm.origin()));
            let trust = wasm.verified().map_or(
                "not checked (made from bytes)".to_owned(),
                ToString::to_string,
            );
            ui.label(format!("trust: {trust}"));
            ui.label(format!("limits: {}", limits(wasm)));
            ui_for_grant(ui, wasm.grant());
        }
        None => {
            ui.label("no version loaded");
        }
    }
    if module.is_unloaded() {
        ui.label("unloaded: its scripts wait for its next version (Reload starts them)");
    } else if ui.button(format!("Unload {}", module.path())).clicked() {
        actions.push(PanelAction::Unload(id));
    }
}

/// What a module may touch, a manifest line each, and what the game's
/// ceilings took from what it asked for.
fn ui_for_grant(ui: &mut egui::Ui, grant: &Grant) {
    if grant.is_everything() {
        ui.label("capabilities: all");
    } else {
        ui.label("capabilities:");
        let granted = grant.granted().to_string();
        if granted.is_empty() {
            ui.monospace("  none");
        }
        for line in granted.lines() {
            ui.monospace(format!("  {line}"));
        }
    }
    for line in grant.denied_by_ceiling() {
        ui.colored_label(
            egui::Color32::LIGHT_RED,
            format!("  not granted (above the game's ceiling): {line}"),
        );
    }
}

/// A module's limits in one line.
fn describe_limits(limits: &GuestLimits) -> String {
    let per_call = |limit: Option<u64>, unit: &str| {
        limit.map_or("no limit".to_owned(), |limit| {
            format!("{limit}{unit} a call")
        })
    };
    format!(
        "CPU {}, fuel {}, memory {}, tables {} elements",
        per_call(limits.cpu_budget_ms, " ms"),
        per_call(limits.fuel_per_call, ""),
        bytes(limits.max_memory_bytes),
        limits.max_table_elements
    )
}

/// Every script instance, a row each: entity, module, generation, state,
/// counters, memory, tasks, queued messages; a Release button for a
/// quarantined one, a Restart button for a running one. Clicking an entity
/// shows what it registered below, with a button to pause or resume it.
pub fn ui_for_instances(world: &mut World, ui: &mut egui::Ui) {
    let mut selected = world.resource::<PanelState>().selected_instance;
    let runtime = world.resource::<WasmRuntime>();
    let mut scripts: Vec<_> = runtime.scripts().collect();
    scripts.sort_by_key(|(entity, _)| *entity);
    let mut actions = Vec::new();
    solid_scroll_bars(ui);
    let row_height = ui.text_style_height(&egui::TextStyle::Body);
    let list_height = (ui.available_height() * 0.6).max(row_height * 4.0);
    egui::ScrollArea::both()
        .id_salt("hotwasm-instances-scroll")
        .max_height(list_height)
        .show_rows(ui, row_height, scripts.len(), |ui, rows| {
            egui::Grid::new("hotwasm-instances")
                .striped(true)
                .num_columns(10)
                .show(ui, |ui| {
                    headings(
                        ui,
                        &[
                            "entity",
                            "module",
                            "gen",
                            "state",
                            "",
                            "calls / faults / denied / restarts / put off",
                            "guest time",
                            "last 300 frames",
                            "memory",
                            "tasks / queued",
                        ],
                    );
                    for (entity, script) in &scripts[rows] {
                        let stats = script.stats();
                        let details = script.details();
                        let module_status = runtime.module(script.module());
                        let module = module_status.map_or("?", |module| module.path());
                        let label = egui::RichText::new(entity.to_string()).monospace();
                        if ui
                            .selectable_label(selected == Some(*entity), label)
                            .clicked()
                        {
                            selected = Some(*entity);
                        }
                        ui.monospace(module);
                        ui.label(
                            script
                                .generation()
                                .map_or("–".to_owned(), |g| g.to_string()),
                        );
                        ui.label(script_state(script, module_status));
                        if script.is_quarantined() {
                            if ui.button(format!("Release {entity}")).clicked() {
                                actions.push(PanelAction::Release(*entity));
                            }
                        } else if script.generation().is_some() {
                            if ui.button(format!("Restart {entity}")).clicked() {
                                actions.push(PanelAction::Restart(*entity));
                            }
                        } else {
                            ui.label("");
                        }
                        ui.label(format!(
                            "{} / {} / {} / {} / {}",
                            stats.calls,
                            stats.faults,
                            stats.denied_host_calls,
                            stats.restarts,
                            stats.postponed
                        ));
                        // Padded, so a changing time does not change the column's width.
                        ui.monospace(format!("{:>9.1?}", stats.last_frame_time));
                        sparkline(ui, script, runtime.runs());
                        ui.label(bytes(details.memory_bytes));
                        ui.label(format!(
                            "{} / {}",
                            details.tasks.len(),
                            script.queued_messages()
                        ));
                        ui.end_row();
                    }
                });
        });
    if let Some(entity) = selected
        && let Some(script) = runtime.script(entity)
    {
        ui.separator();
        ui_for_details(ui, entity, script, &mut actions);
    }
    world.resource_mut::<PanelState>().selected_instance = selected;
    world.resource_mut::<PanelActions>().0.extend(actions);
}

/// Scroll bars beside a table rather than over it: a floating bar covers
/// the buttons of the last row when the table is wider than the panel.
fn solid_scroll_bars(ui: &mut egui::Ui) {
    ui.spacing_mut().scroll = egui::style::ScrollStyle::solid();
}

/// A script's guest time per frame over the last [`RECENT_RUNS`] runs, as
/// bars scaled to its highest (frames it was not called in stay empty).
fn sparkline(ui: &mut egui::Ui, script: &ScriptStatus, runs: u64) {
    let height = ui.text_style_height(&egui::TextStyle::Body);
    let (rect, response) = ui.allocate_exact_size(egui::vec2(90.0, height), egui::Sense::hover());
    let first = runs.saturating_sub(RECENT_RUNS - 1);
    let highest = script
        .recent_guest_time()
        .map(|(_, time)| time)
        .max()
        .unwrap_or_default();
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 1.0, ui.visuals().extreme_bg_color);
    if highest.is_zero() {
        return;
    }
    let step = rect.width() / RECENT_RUNS as f32;
    let stroke = egui::Stroke::new(step.max(1.0), egui::Color32::LIGHT_GREEN);
    for (run, time) in script.recent_guest_time().filter(|(run, _)| *run >= first) {
        let x = rect.left() + (run - first) as f32 * step;
        let bar = rect.height() * time.as_secs_f32() / highest.as_secs_f32();
        painter.line_segment(
            [
                egui::pos2(x, rect.bottom()),
                egui::pos2(x, rect.bottom() - bar),
            ],
            stroke,
        );
    }
    response.on_hover_text(format!("highest {highest:.1?}"));
}

/// What one instance registered: its tasks, subscriptions and watches.
fn ui_for_details(
    ui: &mut egui::Ui,
    entity: Entity,
    script: &ScriptStatus,
    actions: &mut Vec<PanelAction>,
) {
    let details = script.details();
    let stats = script.stats();
    ui.strong(format!(
        "{entity}: {} every frame, memory {}, refused host requests {}, denied by its capabilities {}, queued messages {}",
        if details.every_frame {
            "called"
        } else {
            "not called"
        },
        bytes(details.memory_bytes),
        stats.refused_host_calls,
        stats.denied_host_calls,
        script.queued_messages(),
    ));
    if stats.total_fuel > 0 {
        ui.label(format!(
            "fuel: {} in its last frame, {} a frame on average",
            stats.last_frame_fuel,
            stats.average_frame_fuel()
        ));
    }
    ui.horizontal(|ui| {
        let paused = script.is_paused();
        let pause = if paused { "Resume" } else { "Pause" };
        if ui.button(format!("{pause} {entity}")).clicked() {
            actions.push(PanelAction::PauseScript(entity, !paused));
        }
        if paused {
            ui.label(format!(
                "paused: not called; {} watch events held, {} dropped",
                script.held_events(),
                stats.dropped_events
            ));
        }
    });
    egui::ScrollArea::vertical()
        .id_salt("hotwasm-instance-details")
        .show(ui, |ui| {
            let tasks: Vec<String> = details.tasks.iter().map(describe_task).collect();
            for (heading, lines) in [
                ("tasks", &tasks),
                ("subscriptions", &details.subscriptions),
                ("watches", &details.watches),
            ] {
                ui.label(format!("{heading} ({})", lines.len()));
                for line in lines {
                    ui.monospace(format!("  {line}"));
                }
            }
        });
}

/// A task, in one line: `task 3 due at 12.0s, every 500ms`.
fn describe_task(task: &TaskDetails) -> String {
    let every = task
        .interval
        .map_or(String::new(), |interval| format!(", every {interval:.1?}"));
    format!("task {} due at {:.1?}{every}", task.id, task.due)
}

/// A size in bytes, in KiB or MiB when large.
fn bytes(count: usize) -> String {
    match count {
        0..1024 => format!("{count} B"),
        1024..1_048_576 => format!("{:.1} KiB", count as f64 / 1024.0),
        _ => format!("{:.1} MiB", count as f64 / 1_048_576.0),
    }
}

/// Failures, newest first, repeats counted: a heading each (count, module,
/// instance, stage, fault kind) that opens on the whole cause and the
/// guest's backtrace, selectable and with a Copy button. A checkbox pauses
/// the game on the next fault.
pub fn ui_for_faults(world: &mut World, ui: &mut egui::Ui) {
    let mut pause = world.resource::<PanelState>().pause_on_fault;
    let mut actions = Vec::new();
    ui.horizontal(|ui| {
        ui.checkbox(&mut pause, "Pause the game on a fault");
        if ui.button("Clear faults").clicked() {
            actions.push(PanelAction::ClearFaults);
        }
    });
    let faults = world.resource::<PanelFaults>();
    if faults.records.is_empty() {
        ui.label("No faults or failures.");
    }
    egui::ScrollArea::vertical().show(ui, |ui| {
        for record in faults.records.iter().rev() {
            let failure = &record.failure;
            let on = failure
                .entity
                .map_or(String::new(), |entity| format!(" on {entity}"));
            let kind = failure
                .fault
                .as_ref()
                .map_or("failed".to_owned(), |fault| match fault {
                    FaultKind::Trap { .. } => "trap".to_owned(),
                    fault => fault.to_string(),
                });
            let heading = format!(
                "×{} {} gen {}{on}: {} {kind}",
                record.count, failure.path, failure.generation, failure.stage
            );
            let id = ui.make_persistent_id((&failure.path, failure.stage, &failure.cause));
            egui::CollapsingHeader::new(
                egui::RichText::new(heading).color(egui::Color32::LIGHT_RED),
            )
            .id_salt(id)
            .show(ui, |ui| {
                let mut text = failure.cause.clone();
                if let Some(FaultKind::Trap {
                    backtrace: Some(backtrace),
                    ..
                }) = &failure.fault
                    && !text.contains(backtrace.as_str())
                {
                    text = format!("{text}\n{backtrace}");
                }
                if ui.button("Copy").clicked() {
                    ui.ctx().copy_text(text.clone());
                }
                ui.add(
                    egui::TextEdit::multiline(&mut text.as_str())
                        .code_editor()
                        .desired_width(f32::INFINITY),
                );
            });
        }
    });
    world.resource_mut::<PanelState>().pause_on_fault = pause;
    world.resource_mut::<PanelActions>().0.extend(actions);
}

/// Guest log lines, newest last, filtered by text; Clear forgets them.
pub fn ui_for_console(world: &mut World, ui: &mut egui::Ui) {
    let mut state = world.resource_mut::<PanelState>();
    let mut filter = std::mem::take(&mut state.console_filter);
    let mut hidden = std::mem::take(&mut state.console_hidden_levels);
    let mut module = state.console_module.take();
    let mut clear_on_reload = state.clear_console_on_reload;
    let console = world.resource::<PanelConsole>();
    let mut clear = false;
    ui.horizontal(|ui| {
        for level in [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ] {
            let count = console
                .lines
                .iter()
                .filter(|line| line.level == level)
                .count();
            shown_checkbox(ui, &mut hidden, level, format!("{level} {count}"));
        }
    });
    ui.horizontal(|ui| {
        let mut paths: Vec<&str> = console
            .lines
            .iter()
            .map(|line| &*line.script.path)
            .collect();
        paths.sort_unstable();
        paths.dedup();
        egui::ComboBox::from_label("module")
            .selected_text(module.as_deref().unwrap_or("(all)"))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut module, None, "(all)");
                for path in paths {
                    ui.selectable_value(&mut module, Some(path.to_owned()), path);
                }
            });
        ui.label("Filter");
        ui.text_edit_singleline(&mut filter);
        ui.checkbox(&mut clear_on_reload, "Clear on reload");
        clear = ui.button("Clear").clicked();
    });
    let shown: Vec<String> = console
        .lines
        .iter()
        .filter(|line| !hidden.contains(&line.level))
        .filter(|line| {
            module
                .as_deref()
                .is_none_or(|path| *line.script.path == *path)
        })
        .map(|line| format!("{} [{}] {}", line.level, line.script, line.message))
        .filter(|line| line.contains(filter.as_str()))
        .collect();
    let row_height = ui.text_style_height(&egui::TextStyle::Monospace);
    egui::ScrollArea::vertical()
        .stick_to_bottom(true)
        .show_rows(ui, row_height, shown.len(), |ui, rows| {
            for line in &shown[rows] {
                ui.monospace(line);
            }
        });
    let mut state = world.resource_mut::<PanelState>();
    state.console_filter = filter;
    state.console_hidden_levels = hidden;
    state.console_module = module;
    state.clear_console_on_reload = clear_on_reload;
    if clear {
        world
            .resource_mut::<PanelActions>()
            .0
            .push(PanelAction::ClearConsole);
    }
}

/// The key-value store: a bucket menu, a page of its keys, and the chosen
/// key's value as text (editable: Save), JSON or hex, with Delete and +1,
/// who wrote it last and which scripts watch it.
/// Edits are [`KvOrigin::Tool`] writes, so watching guests see them.
pub fn ui_for_key_value(world: &mut World, ui: &mut egui::Ui) {
    let mut browser = std::mem::take(&mut world.resource_mut::<PanelState>().kv);
    let mut actions = Vec::new();
    let store = world.resource::<KvStore>();
    let (writes, runtime) = (
        world.resource::<PanelKvWrites>(),
        world.resource::<WasmRuntime>(),
    );
    if let Some(status) = store.shared_status() {
        ui_for_shared_status(ui, &status);
    }
    let buckets: Vec<&str> = store.buckets().collect();
    if browser.bucket.is_none() {
        browser.bucket = buckets.first().map(|bucket| (*bucket).to_owned());
    }
    ui.horizontal(|ui| {
        let shown = browser.bucket.clone().unwrap_or_default();
        egui::ComboBox::from_label("bucket")
            .selected_text(if shown.is_empty() {
                "(no buckets)"
            } else {
                &shown
            })
            .show_ui(ui, |ui| {
                for bucket in &buckets {
                    if ui.selectable_label(shown == *bucket, *bucket).clicked() {
                        browser = KvBrowser {
                            bucket: Some((*bucket).to_owned()),
                            ..default()
                        };
                    }
                }
            });
        if ui.button("Refresh").clicked() {
            browser.page = None;
        }
    });
    let Some(bucket) = browser.bucket.clone() else {
        world.resource_mut::<PanelState>().kv = browser;
        return;
    };
    if browser.page.is_none() {
        browser.page = store.list_keys(&bucket, browser.cursor).ok();
    }
    let value = browser
        .key
        .as_ref()
        .and_then(|key| store.get(&bucket, key).ok().flatten());
    ui.columns(2, |columns| {
        let page = browser.page.clone().unwrap_or(KeyPage {
            keys: Vec::new(),
            cursor: None,
        });
        let start = browser.cursor.unwrap_or(0);
        columns[0].horizontal(|ui| {
            if ui
                .add_enabled(start > 0, egui::Button::new("◀ Previous"))
                .clicked()
            {
                let previous = start.saturating_sub(KEYS_PER_PAGE as u64);
                browser.cursor = (previous > 0).then_some(previous);
                browser.page = None;
            }
            ui.label(format!(
                "keys {}–{}",
                start + 1,
                start + page.keys.len() as u64
            ));
            if ui
                .add_enabled(page.cursor.is_some(), egui::Button::new("Next ▶"))
                .clicked()
            {
                browser.cursor = page.cursor;
                browser.page = None;
            }
        });
        let row_height = columns[0].text_style_height(&egui::TextStyle::Body);
        egui::ScrollArea::vertical()
            .id_salt("hotwasm-kv-keys")
            .show_rows(&mut columns[0], row_height, page.keys.len(), |ui, rows| {
                for key in &page.keys[rows] {
                    let chosen = browser.key.as_ref() == Some(key);
                    if ui.selectable_label(chosen, key).clicked() && !chosen {
                        browser.key = Some(key.clone());
                        browser.notice = None;
                        browser.begin_edit(store.get(&bucket, key).ok().flatten());
                    }
                }
            });
        let ui = &mut columns[1];
        let Some(key) = browser.key.clone() else {
            ui.label("Choose a key.");
            return;
        };
        let last_write = writes.last.get(&(bucket.clone(), key.clone()));
        ui.label(format!(
            "last write: {}",
            last_write.map_or("before the panel started".to_owned(), describe_origin)
        ));
        let watchers: Vec<String> = runtime
            .scripts()
            .filter(|(_, script)| {
                let watches = &script.details().key_watches;
                watches.iter().any(|watch| watch.covers(&bucket, &key))
            })
            .map(|(entity, script)| {
                let module = runtime.module(script.module());
                format!("{entity} ({})", module.map_or("?", ModuleStatus::path))
            })
            .collect();
        ui.label(match watchers.as_slice() {
            [] => "watched by no script".to_owned(),
            watchers => format!("watched by {}", watchers.join(", ")),
        });
        ui.horizontal(|ui| {
            ui.monospace(&key);
            ui.selectable_value(&mut browser.view, ValueView::Text, "Text");
            ui.selectable_value(&mut browser.view, ValueView::Json, "JSON");
            ui.selectable_value(&mut browser.view, ValueView::Hex, "Hex");
        });
        // An untouched edit follows the value as others change it.
        if !browser.is_edited() && browser.read != value {
            browser.begin_edit(value.clone());
        }
        let Some(value) = value else {
            ui.label("(not set)");
            return;
        };
        let text = std::str::from_utf8(&value).is_ok();
        match browser.view {
            ValueView::Text if text => {
                ui.add(egui::TextEdit::multiline(&mut browser.edit).code_editor());
            }
            ValueView::Text => {
                ui.label(format!(
                    "Binary, {} bytes: not text, so not editable here (see Hex).",
                    value.len()
                ));
            }
            ValueView::Json => {
                let pretty = serde_json::from_slice::<serde_json::Value>(&value)
                    .and_then(|json| serde_json::to_string_pretty(&json))
                    .unwrap_or_else(|error| format!("not JSON: {error}"));
                ui.monospace(pretty);
            }
            ValueView::Hex => {
                let hex: Vec<String> = value.iter().map(|byte| format!("{byte:02x}")).collect();
                ui.monospace(hex.join(" "));
            }
        }
        ui.horizontal(|ui| {
            let (bucket, key) = (bucket.clone(), key.clone());
            let editable = text && browser.is_edited();
            let save = ui
                .add_enabled(editable, egui::Button::new("Save"))
                .clicked();
            let delete = ui.button("Delete").clicked();
            let add_one = ui.button("+1").clicked();
            if save {
                actions.push(PanelAction::KvSave {
                    bucket,
                    key,
                    read: browser.read.clone(),
                    value: browser.edit.clone().into_bytes(),
                });
            } else if delete {
                actions.push(PanelAction::KvDelete { bucket, key });
            } else if add_one {
                actions.push(PanelAction::KvIncrement {
                    bucket,
                    key,
                    delta: 1,
                });
            }
        });
        if let Some(notice) = &browser.notice {
            ui.colored_label(egui::Color32::LIGHT_RED, notice);
        }
    });
    world.resource_mut::<PanelState>().kv = browser;
    world.resource_mut::<PanelActions>().0.extend(actions);
}

impl KvBrowser {
    /// Starts editing `value` as read now: as text when it is UTF-8 (a
    /// binary value is never turned into text, and cannot be saved here).
    fn begin_edit(&mut self, value: Option<Vec<u8>>) {
        self.edit = value
            .as_deref()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .unwrap_or_default()
            .to_owned();
        self.read = value;
    }

    /// Whether the text differs from the value it was read from (a
    /// binary value is never edited).
    fn is_edited(&self) -> bool {
        let read = (self.read.as_deref()).and_then(|bytes| std::str::from_utf8(bytes).ok());
        read.unwrap_or_default() != self.edit
    }
}

/// A shared store's connection, one line: red while it is down.
fn ui_for_shared_status(ui: &mut egui::Ui, status: &SharedStatus) {
    ui.horizontal_wrapped(|ui| {
        ui.label(format!("Shared on {}:", status.url));
        if status.connected {
            ui.colored_label(egui::Color32::LIGHT_GREEN, "connected");
        } else {
            ui.colored_label(egui::Color32::LIGHT_RED, "disconnected");
        }
        ui.label(describe_shared_status(status));
    });
    ui.separator();
}

/// What a shared store's status says besides whether it is connected.
fn describe_shared_status(status: &SharedStatus) -> String {
    let mut said = format!(
        "revision {}, {} writes waiting for the server",
        status.last_revision, status.queued_writes
    );
    if status.behind > 0 {
        said += &format!(", {} changes behind", status.behind);
    }
    if status.skipped_changes > 0 {
        said += &format!(
            ", {} changes replaced before this game saw them",
            status.skipped_changes
        );
    }
    said
}

/// Who wrote a key, in a few words.
fn describe_origin(origin: &KvOrigin) -> String {
    match origin {
        KvOrigin::Host => "the game".to_owned(),
        KvOrigin::Guest(entity) => format!("the script on {entity}"),
        KvOrigin::External => "a file edited outside the game".to_owned(),
        KvOrigin::Tool => "a tool (this panel)".to_owned(),
        KvOrigin::Remote { revision, skipped } => {
            let mut said = format!("another process sharing the store (revision {revision})");
            if *skipped > 0 {
                said += &format!(", after {skipped} changes replaced before this game saw them");
            }
            said
        }
    }
}

/// The timeline: messages, key-value changes (CloudEvents JSON), reloads
/// and failures, newest last, filtered by kind and text; Clear forgets them.
pub fn ui_for_events(world: &mut World, ui: &mut egui::Ui) {
    let mut state = world.resource_mut::<PanelState>();
    let mut filter = std::mem::take(&mut state.events_filter);
    let mut hidden = std::mem::take(&mut state.hidden_events);
    let mut clear = false;
    ui.horizontal(|ui| {
        for kind in EventKind::ALL {
            shown_checkbox(ui, &mut hidden, kind, kind.label());
        }
        ui.label("Filter");
        ui.text_edit_singleline(&mut filter);
        clear = ui.button("Clear events").clicked();
    });
    let events = world.resource::<PanelEvents>();
    let shown: Vec<&EventRecord> = events
        .records
        .iter()
        .filter(|record| !hidden.contains(&record.kind) && record.text.contains(filter.as_str()))
        .collect();
    let row_height = ui.text_style_height(&egui::TextStyle::Monospace);
    egui::ScrollArea::vertical()
        .stick_to_bottom(true)
        .show_rows(ui, row_height, shown.len(), |ui, rows| {
            for record in &shown[rows] {
                ui.monospace(format!(
                    "#{} frame {} {}: {}",
                    record.number,
                    record.frame,
                    record.kind.label(),
                    record.text
                ));
            }
        });
    let mut state = world.resource_mut::<PanelState>();
    state.events_filter = filter;
    state.hidden_events = hidden;
    if clear {
        world
            .resource_mut::<PanelActions>()
            .0
            .push(PanelAction::ClearEvents);
    }
}

/// The plugin's diagnostics ([`WasmDiagnostics`]) over the frames Bevy's
/// [`DiagnosticsStore`] keeps: the latest value, the average and a line.
pub fn ui_for_diagnostics(world: &mut World, ui: &mut egui::Ui) {
    let Some(store) = world.get_resource::<DiagnosticsStore>() else {
        ui.label("No diagnostics store.");
        return;
    };
    let plotted: [(DiagnosticPath, &str); 4] = [
        (WasmDiagnostics::GUEST_TIME, "guest time per frame (ms)"),
        (WasmDiagnostics::FAULTS, "faults per frame"),
        (
            WasmDiagnostics::POSTPONED,
            "scripts put off per frame (frame budget spent)",
        ),
        (WasmDiagnostics::QUARANTINED, "scripts quarantined"),
    ];
    for (path, label) in plotted {
        let Some(diagnostic) = store.get(&path) else {
            continue;
        };
        let values: Vec<f64> = diagnostic.values().copied().collect();
        let latest = values.last().copied().unwrap_or(0.0);
        let max = values.iter().copied().fold(0.0, f64::max);
        let average = diagnostic.average().unwrap_or(0.0);
        ui.label(format!(
            "{label}: latest {latest:.3}, average {average:.3}, highest {max:.3} over {} frames",
            values.len()
        ));
        line_plot(ui, &values, max);
    }
}

/// `values` as a line, 0 at the bottom and `max` at the top.
fn line_plot(ui: &mut egui::Ui, values: &[f64], max: f64) {
    let size = egui::vec2(ui.available_width().min(600.0), 48.0);
    let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    if values.len() < 2 {
        return;
    }
    let step = rect.width() / (values.len() - 1) as f32;
    let scale = if max > 0.0 {
        rect.height() / max as f32
    } else {
        0.0
    };
    let points = values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            egui::pos2(
                rect.left() + index as f32 * step,
                rect.bottom() - *value as f32 * scale,
            )
        })
        .collect();
    let stroke = egui::Stroke::new(1.5, egui::Color32::LIGHT_GREEN);
    painter.add(egui::Shape::line(points, stroke));
}

/// The game's virtual time: elapsed, paused or not, speed.
pub fn ui_for_time(world: &mut World, ui: &mut egui::Ui) {
    let time = world.resource::<Time<Virtual>>();
    let (paused, mut speed) = (time.is_paused(), time.relative_speed());
    ui.label(format!("game time {:.1?}", time.elapsed()));
    let mut actions = Vec::new();
    ui.horizontal(|ui| {
        if ui.button(if paused { "Resume" } else { "Pause" }).clicked() {
            actions.push(PanelAction::PauseGame(!paused));
        }
        if ui
            .add_enabled(paused, egui::Button::new("Step one frame"))
            .clicked()
        {
            actions.push(PanelAction::Step);
        }
        if ui
            .add(egui::Slider::new(&mut speed, 0.0..=4.0).text("speed"))
            .changed()
        {
            actions.push(PanelAction::Speed(speed));
        }
    });
    ui.separator();
    ui.strong("next due tasks");
    let runtime = world.resource::<WasmRuntime>();
    let mut due: Vec<(&TaskDetails, Entity, &str)> = runtime
        .scripts()
        .flat_map(|(entity, script)| {
            let module = runtime
                .module(script.module())
                .map_or("?", |module| module.path());
            script
                .details()
                .tasks
                .iter()
                .map(move |task| (task, entity, module))
        })
        .collect();
    due.sort_by_key(|(task, ..)| task.due);
    if due.is_empty() {
        ui.label("No tasks pending.");
    }
    for (task, entity, module) in due.into_iter().take(NEXT_TASKS) {
        ui.monospace(format!("{entity} {module}: {}", describe_task(task)));
    }
    world.resource_mut::<PanelActions>().0.extend(actions);
}
