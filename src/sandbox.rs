//! What guest code may use, and what happens when it uses too much: CPU
//! budgets (epoch interruption, optional fuel), memory and table limits,
//! and the restart / quarantine policy for instances that fault.
//!
//! [`Sandbox`] and [`GuestLimits`] are also at the crate root; the rest of
//! the sandbox is here: how a fault is told ([`FaultKind`]) and handled
//! ([`FaultPolicy`]), per-call host quotas ([`HostQuotas`]), what may wait
//! for a script ([`QueueLimits`]), what a `.wasm.meta` may lower
//! ([`MetaLimits`], [`RaisedLimit`]), the defaults, the fixed bounds on
//! every instance ([`MAX_TASKS`], [`MAX_WATCHES`], [`MAX_SUBSCRIPTIONS`],
//! [`MAX_TOPIC_BYTES`], [`MAX_PAYLOAD_BYTES`], [`MAX_PREFETCHED`],
//! [`MAX_OPEN_BUCKETS`], [`MAX_CAS_HANDLES`]), and [`SpawnedBy`], the mark
//! on every entity a guest spawned.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::{Trap, WasmBacktrace};

// The host enforces these bounds where it implements each import; they are
// part of the sandbox a game reads about.
pub use crate::host::{
    MAX_CAS_HANDLES, MAX_OPEN_BUCKETS, MAX_PAYLOAD_BYTES, MAX_PREFETCHED, MAX_SUBSCRIPTIONS,
    MAX_TASKS, MAX_TOPIC_BYTES, MAX_WATCHES, SpawnedBy,
};

/// How the engine meters and bounds guest code; set on
/// [`HotWasmPlugin::sandbox`](crate::HotWasmPlugin::sandbox).
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// Interrupt a guest call that runs past its CPU budget
    /// ([`GuestLimits::cpu_budget_ms`]), measured with wasmtime's epochs: a
    /// thread ticks the engine every millisecond. On by default.
    pub epoch_interruption: bool,
    /// Meter guest code with fuel ([`GuestLimits::fuel_per_call`]): a
    /// deterministic budget, the same on every machine (for tests and
    /// replays), at some cost per instruction. Off by default.
    pub fuel: bool,
    /// The most stack guest code may use, in bytes; a guest that recurses
    /// deeper traps with a stack overflow (wasmtime's `max_wasm_stack`).
    /// Guests run on the thread running `Update`, whose own stack must be
    /// larger.
    pub max_wasm_stack: usize,
    /// What every module may use: the ceiling its `.wasm.meta` may lower
    /// but never lift ([`MetaLimits`]).
    pub limits: GuestLimits,
    /// Modules given other limits than [`Sandbox::limits`], by asset path
    /// (e.g. `modules/physics.wasm`): in place of `limits`, their ceiling.
    /// The way to give one module more, in the game's own code; a mod's
    /// `.wasm.meta` cannot.
    pub module_limits: HashMap<String, GuestLimits>,
    /// The most guest time in one frame, all scripts together; `None`: no
    /// bound. Checked before each script's batch: once spent, the scripts
    /// not yet called keep their due work (tasks, messages, watch events,
    /// the frame hook) for the next frame, which begins with the first of
    /// them, so no script starves; a frame's guest time stays under this
    /// plus one call's [`GuestLimits::cpu_budget_ms`], unless the frame's
    /// starts and hot swaps alone take longer. Postponed calls are
    /// counted ([`WasmRuntime::last_frame_postponed`](crate::WasmRuntime::last_frame_postponed),
    /// [`ScriptStats::postponed`](crate::ScriptStats::postponed)). Starts
    /// and hot swaps are not postponed, but their time counts. Scripts
    /// still run in entity order within a frame; which one a frame begins
    /// with depends on time only once the budget is spent.
    ///
    /// Default 50 ms: a debug build of the arena spends 0.6 ms a frame in
    /// its guests on average and 7 ms at most, so the budget never bites
    /// in normal play,
    /// while ten runaway scripts can no longer make every frame take ten
    /// calls' budgets (2 s at the default 200 ms).
    pub frame_budget: Option<Duration>,
    /// When a faulting instance restarts, and when it stops for good.
    pub faults: FaultPolicy,
    /// How much one guest call may make the host do.
    pub host: HostQuotas,
    /// How much may wait for one script between its calls.
    pub queues: QueueLimits,
}

/// The default [`Sandbox::frame_budget`]: 50 ms.
pub const DEFAULT_FRAME_BUDGET: Duration = Duration::from_millis(50);

/// wasmtime's default stack limit for guest code: 512 KiB.
pub const DEFAULT_MAX_WASM_STACK: usize = 512 * 1024;

impl Default for Sandbox {
    fn default() -> Self {
        Self {
            epoch_interruption: true,
            fuel: false,
            max_wasm_stack: DEFAULT_MAX_WASM_STACK,
            limits: GuestLimits::default(),
            module_limits: HashMap::new(),
            frame_budget: Some(DEFAULT_FRAME_BUDGET),
            faults: FaultPolicy::default(),
            host: HostQuotas::default(),
            queues: QueueLimits::default(),
        }
    }
}

/// The default most messages waiting for one script
/// ([`QueueLimits::max_messages`]).
pub const MAX_QUEUED_MESSAGES: usize = 65_536;
/// The default most bytes (topics and payloads) waiting for one script
/// ([`QueueLimits::max_message_bytes`]).
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// The default most watch events held for a paused script
/// ([`QueueLimits::max_held_events`]).
pub const MAX_HELD_EVENTS: usize = 65_536;
/// The default most bytes (subjects and data) of watch events held for a
/// paused script ([`QueueLimits::max_held_event_bytes`]).
pub const MAX_HELD_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// How much may wait for one script between its calls, whether it runs,
/// loads, is paused or is quarantined; more is dropped with a warning (and
/// dropped watch events are counted in
/// [`ScriptStats::dropped_events`](crate::ScriptStats::dropped_events)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Messages for the script. Default [`MAX_QUEUED_MESSAGES`] (65 536).
    pub max_messages: usize,
    /// Their topics' and payloads' bytes. Default [`MAX_QUEUED_BYTES`] (16 MiB).
    pub max_message_bytes: usize,
    /// Watch events held while the script is paused. Default
    /// [`MAX_HELD_EVENTS`] (65 536).
    pub max_held_events: usize,
    /// Their subjects' and data's bytes. Default
    /// [`MAX_HELD_EVENT_BYTES`] (16 MiB).
    pub max_held_event_bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            max_messages: MAX_QUEUED_MESSAGES,
            max_message_bytes: MAX_QUEUED_BYTES,
            max_held_events: MAX_HELD_EVENTS,
            max_held_event_bytes: MAX_HELD_EVENT_BYTES,
        }
    }
}

/// How much one guest call (one frame's batch, an `init`, ...) may make the
/// host do. Past a quota the import returns an error to the guest (log
/// lines are dropped); the host counts it ([`ScriptStats::refused_host_calls`](crate::ScriptStats::refused_host_calls))
/// and warns at most once every few seconds per instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostQuotas {
    /// Log lines (the `log` import, stdout and stderr). Default 1000.
    pub log_lines: u32,
    /// Messages sent. Default 1000.
    pub messages: u32,
    /// Key-value writes (set, delete, increment, swap). Default 1000.
    pub kv_writes: u32,
    /// Entities spawned. Default 1000.
    pub spawns: u32,
    /// Bytes handed to the host in message payloads, key-value values and
    /// ECS JSON. Default 16 MiB.
    pub bytes: u64,
}

impl Default for HostQuotas {
    fn default() -> Self {
        Self {
            log_lines: 1000,
            messages: 1000,
            kv_writes: 1000,
            spawns: 1000,
            bytes: 16 * 1024 * 1024,
        }
    }
}

/// What one instance may use ([`Sandbox::limits`], [`Sandbox::module_limits`]).
/// A module's `.wasm.meta` may lower them ([`MetaLimits`]), never raise them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GuestLimits {
    /// The most wall-clock time one call into the guest may take, in
    /// milliseconds, with epoch interruption on; `None`: no limit (no
    /// deadline is set, so a runaway loop runs until the game stops). Time in
    /// host imports the guest calls counts too. Default 200 ms: generous
    /// for one frame's work even with a debug build of the game (a guest
    /// reading thousands of components as JSON through `ecs::query`), and
    /// it still ends a runaway loop within a few frames.
    pub cpu_budget_ms: Option<u64>,
    /// The most fuel (roughly, Wasm instructions) one call may burn, with
    /// fuel on; `None`: no limit. Default 1 000 000 000.
    pub fuel_per_call: Option<u64>,
    /// The most linear memory an instance may have, in bytes. Default 64 MiB.
    pub max_memory_bytes: usize,
    /// The most elements a table may have. Default 100 000.
    pub max_table_elements: usize,
    /// The most keys the module's instances, all together, may keep in the
    /// key-value store: keys they wrote last and that still exist (a key
    /// someone else writes over, or deletes, stops counting). Default
    /// 100 000.
    pub max_kv_keys: u64,
    /// The most bytes of values the module may keep in the store, counted
    /// like [`GuestLimits::max_kv_keys`]. Default 256 MiB.
    pub max_kv_bytes: u64,
    /// [`GuestLimits::max_kv_keys`] in any one bucket. Default 10 000.
    pub max_kv_keys_per_bucket: u64,
    /// [`GuestLimits::max_kv_bytes`] in any one bucket. Default 64 MiB.
    pub max_kv_bytes_per_bucket: u64,
    /// The most entities the module's instances, all together, may have
    /// spawned that are still alive (each carries a
    /// [`SpawnedBy`]; a despawn gives the quota back).
    /// Default 10 000.
    pub max_spawned_entities: u64,
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            cpu_budget_ms: Some(200),
            fuel_per_call: Some(1_000_000_000),
            max_memory_bytes: 64 * 1024 * 1024,
            max_table_elements: 100_000,
            max_kv_keys: 100_000,
            max_kv_bytes: 256 * 1024 * 1024,
            max_kv_keys_per_bucket: 10_000,
            max_kv_bytes_per_bucket: 64 * 1024 * 1024,
            max_spawned_entities: 10_000,
        }
    }
}

/// What a module's `.wasm.meta` asks of its limits
/// ([`WasmModuleSettings::limits`](crate::WasmModuleSettings::limits)):
/// each field may lower the game's ([`Sandbox::limits`], or the module's
/// entry in [`Sandbox::module_limits`]); one left out, or `None`, keeps
/// the game's. A `.wasm.meta` is not signed and a mod ships its own, so a
/// field above the game's is held to the game's, with a warning naming
/// the module, the field, what it asked and the ceiling: the module still
/// loads, within the game's limits.
///
/// ```ron
/// settings: (limits: Some((cpu_budget_ms: Some(5), max_memory_bytes: Some(8388608)))),
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetaLimits {
    /// At most [`GuestLimits::cpu_budget_ms`]; `None` keeps the game's
    /// (a meta file cannot ask for no limit).
    pub cpu_budget_ms: Option<u64>,
    /// At most [`GuestLimits::fuel_per_call`].
    pub fuel_per_call: Option<u64>,
    /// At most [`GuestLimits::max_memory_bytes`].
    pub max_memory_bytes: Option<u64>,
    /// At most [`GuestLimits::max_table_elements`].
    pub max_table_elements: Option<u64>,
    /// At most [`GuestLimits::max_kv_keys`].
    pub max_kv_keys: Option<u64>,
    /// At most [`GuestLimits::max_kv_bytes`].
    pub max_kv_bytes: Option<u64>,
    /// At most [`GuestLimits::max_kv_keys_per_bucket`].
    pub max_kv_keys_per_bucket: Option<u64>,
    /// At most [`GuestLimits::max_kv_bytes_per_bucket`].
    pub max_kv_bytes_per_bucket: Option<u64>,
    /// At most [`GuestLimits::max_spawned_entities`].
    pub max_spawned_entities: Option<u64>,
}

/// A limit a `.wasm.meta` asked to raise above the game's, held to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaisedLimit {
    /// The [`GuestLimits`] field, e.g. `max_memory_bytes`.
    pub field: &'static str,
    /// What the meta file asked for.
    pub asked: u64,
    /// The game's ceiling, which the module got.
    pub ceiling: u64,
}

impl std::fmt::Display for RaisedLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            field,
            asked,
            ceiling,
        } = self;
        write!(f, "{field} {asked} is above the game's {ceiling}")
    }
}

/// Lowers limits field by field, noting each ask above the ceiling.
#[derive(Default)]
struct Narrowing(Vec<RaisedLimit>);

impl Narrowing {
    fn at_most(&mut self, field: &'static str, asked: Option<u64>, ceiling: u64) -> u64 {
        match asked {
            Some(asked) if asked > ceiling => {
                self.0.push(RaisedLimit {
                    field,
                    asked,
                    ceiling,
                });
                ceiling
            }
            Some(asked) => asked,
            None => ceiling,
        }
    }

    /// For a limit the game may leave off (`None`).
    fn optional(
        &mut self,
        field: &'static str,
        asked: Option<u64>,
        ceiling: Option<u64>,
    ) -> Option<u64> {
        match ceiling {
            Some(ceiling) => Some(self.at_most(field, asked, ceiling)),
            None => asked,
        }
    }

    fn size(&mut self, field: &'static str, asked: Option<u64>, ceiling: usize) -> usize {
        let lowered = self.at_most(field, asked, ceiling as u64);
        usize::try_from(lowered).unwrap_or(ceiling)
    }
}

impl GuestLimits {
    /// These limits lowered by what a `.wasm.meta` asks, never raised: the
    /// limits a module gets, and the fields it asked to raise (held to
    /// these).
    pub fn narrowed_by(&self, meta: &MetaLimits) -> (GuestLimits, Vec<RaisedLimit>) {
        let mut narrowing = Narrowing::default();
        let n = &mut narrowing;
        let limits = GuestLimits {
            cpu_budget_ms: n.optional("cpu_budget_ms", meta.cpu_budget_ms, self.cpu_budget_ms),
            fuel_per_call: n.optional("fuel_per_call", meta.fuel_per_call, self.fuel_per_call),
            max_memory_bytes: n.size(
                "max_memory_bytes",
                meta.max_memory_bytes,
                self.max_memory_bytes,
            ),
            max_table_elements: n.size(
                "max_table_elements",
                meta.max_table_elements,
                self.max_table_elements,
            ),
            max_kv_keys: n.at_most("max_kv_keys", meta.max_kv_keys, self.max_kv_keys),
            max_kv_bytes: n.at_most("max_kv_bytes", meta.max_kv_bytes, self.max_kv_bytes),
            max_kv_keys_per_bucket: n.at_most(
                "max_kv_keys_per_bucket",
                meta.max_kv_keys_per_bucket,
                self.max_kv_keys_per_bucket,
            ),
            max_kv_bytes_per_bucket: n.at_most(
                "max_kv_bytes_per_bucket",
                meta.max_kv_bytes_per_bucket,
                self.max_kv_bytes_per_bucket,
            ),
            max_spawned_entities: n.at_most(
                "max_spawned_entities",
                meta.max_spawned_entities,
                self.max_spawned_entities,
            ),
        };
        (limits, narrowing.0)
    }
}

impl Sandbox {
    /// The limits the game gives the module at `path`: its entry in
    /// [`Sandbox::module_limits`], or [`Sandbox::limits`].
    pub fn limits_for(&self, path: &str) -> &GuestLimits {
        self.module_limits.get(path).unwrap_or(&self.limits)
    }
}

/// When a faulting instance restarts, and when it is quarantined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultPolicy {
    /// This many faults within [`FaultPolicy::window`] quarantine an
    /// instance: it stops running, stays visible, and starts again when its
    /// module changes or [`WasmRuntime::release`](crate::WasmRuntime::release)
    /// is called. Default 3.
    pub max_faults: u32,
    /// How far back faults count, in game (virtual) time. Default 10 s.
    pub window: Duration,
    /// How long after its first fault an instance restarts; each further
    /// fault in the window doubles it. Game time. Default 100 ms.
    pub first_backoff: Duration,
    /// The longest backoff. Default 5 s.
    pub max_backoff: Duration,
}

impl Default for FaultPolicy {
    fn default() -> Self {
        Self {
            max_faults: 3,
            window: Duration::from_secs(10),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl FaultPolicy {
    /// The backoff before restarting after the `faults`-th recent fault.
    pub(crate) fn backoff(&self, faults: u32) -> Duration {
        let doublings = faults.saturating_sub(1).min(20);
        (self.first_backoff * 2u32.pow(doublings)).min(self.max_backoff)
    }
}

/// Why a guest call was stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// The guest trapped (`unreachable`, a Rust panic, a bad memory access,
    /// ...): wasmtime's message and, where it has one, the guest backtrace.
    Trap {
        /// What wasmtime said.
        message: String,
        /// The guest's call stack, one frame per line.
        backtrace: Option<String>,
    },
    /// The call ran past its CPU budget and was interrupted.
    OutOfCpu,
    /// The call burnt its fuel.
    OutOfFuel,
    /// The instance tried to grow its memory or a table past its limit.
    OutOfMemory,
    /// The guest's stack overflowed ([`Sandbox::max_wasm_stack`]).
    StackOverflow,
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Trap { message, .. } => write!(f, "trap: {message}"),
            Self::OutOfCpu => f.write_str("out of CPU budget"),
            Self::OutOfFuel => f.write_str("out of fuel"),
            Self::OutOfMemory => f.write_str("out of memory"),
            Self::StackOverflow => f.write_str("stack overflow"),
        }
    }
}

impl FaultKind {
    /// Classifies the error of a guest call that did not return; `limit_hit`
    /// says whether the instance's limiter refused a memory or table growth.
    pub(crate) fn of(error: &wasmtime::Error, limit_hit: bool) -> Self {
        if limit_hit {
            return Self::OutOfMemory;
        }
        let trap = error.downcast_ref::<Trap>();
        match trap {
            Some(Trap::Interrupt) => Self::OutOfCpu,
            Some(Trap::OutOfFuel) => Self::OutOfFuel,
            Some(Trap::StackOverflow) => Self::StackOverflow,
            _ => Self::Trap {
                message: trap.map_or_else(|| format!("{error:#}"), ToString::to_string),
                backtrace: error
                    .downcast_ref::<WasmBacktrace>()
                    .map(|backtrace| backtrace.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let policy = FaultPolicy::default();
        let backoffs: Vec<u64> = (1..=8)
            .map(|faults| policy.backoff(faults).as_millis() as u64)
            .collect();
        assert_eq!(backoffs, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[test]
    fn a_meta_file_lowers_limits_and_cannot_raise_them() {
        let game = GuestLimits {
            max_memory_bytes: 16 << 20,
            max_kv_keys: 100,
            ..GuestLimits::default()
        };
        let asks_more = MetaLimits {
            max_memory_bytes: Some(1 << 30),
            max_kv_keys: Some(1_000_000),
            max_spawned_entities: Some(5),
            ..MetaLimits::default()
        };
        let (limits, raised) = game.narrowed_by(&asks_more);
        assert_eq!(limits.max_memory_bytes, 16 << 20, "held to the game's");
        assert_eq!(limits.max_kv_keys, 100, "held to the game's");
        assert_eq!(limits.max_spawned_entities, 5, "lowered");
        assert_eq!(
            limits.cpu_budget_ms, game.cpu_budget_ms,
            "left out: the game's"
        );
        let fields: Vec<_> = raised.iter().map(|raised| raised.field).collect();
        assert_eq!(fields, ["max_memory_bytes", "max_kv_keys"]);
        assert_eq!(
            raised[0].to_string(),
            "max_memory_bytes 1073741824 is above the game's 16777216"
        );

        let unlimited = GuestLimits {
            cpu_budget_ms: None,
            ..game
        };
        let (limits, raised) = unlimited.narrowed_by(&MetaLimits {
            cpu_budget_ms: Some(5),
            ..MetaLimits::default()
        });
        assert_eq!((limits.cpu_budget_ms, raised.len()), (Some(5), 0));
    }
}
