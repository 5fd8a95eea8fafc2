//! The panel's own state: which tab is shown, the tabs' filters and
//! choices (the kinds of events shown), and where the Key-value tab is.

use bevy::log::Level;
use bevy::prelude::*;

use crate::asset::WasmModule;
use crate::kv::KeyPage;

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
    pub(super) const ALL: [Self; 8] = [
        Self::Modules,
        Self::Instances,
        Self::Faults,
        Self::Console,
        Self::Events,
        Self::KeyValue,
        Self::Time,
        Self::Diagnostics,
    ];

    pub(super) fn label(self) -> &'static str {
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

/// What an [`EventRecord`](super::EventRecord) records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A message a guest sent ([`ModuleMessage`](crate::ModuleMessage)) or the
    /// game sent to scripts ([`HostMessage`](crate::HostMessage)).
    Message,
    /// A key-value change ([`KvChanged`](crate::KvChanged)), as CloudEvents JSON.
    KeyValue,
    /// A component or resource change a script's watch got
    /// ([`WatchedChange`](crate::watch::WatchedChange)).
    Watch,
    /// A new generation running ([`ModuleReloaded`](crate::ModuleReloaded)).
    Reload,
    /// A failure ([`ModuleFailed`](crate::ModuleFailed)) or a quarantine
    /// ([`ScriptQuarantined`](crate::ScriptQuarantined)).
    Failure,
}

impl EventKind {
    pub(super) const ALL: [Self; 5] = [
        Self::Message,
        Self::KeyValue,
        Self::Watch,
        Self::Reload,
        Self::Failure,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Message => "messages",
            Self::KeyValue => "key-value",
            Self::Watch => "component watches",
            Self::Reload => "reloads",
            Self::Failure => "failures",
        }
    }
}
