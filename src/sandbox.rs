//! What guest code may use, and what happens when it uses too much: CPU
//! budgets (epoch interruption, optional fuel), memory and table limits,
//! and the restart / quarantine policy for instances that fault.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::{ResourceLimiter, Trap, WasmBacktrace};

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
    /// Limits for every module without its own (see [`WasmModuleSettings`](crate::WasmModuleSettings)).
    pub limits: GuestLimits,
    /// When a faulting instance restarts, and when it stops for good.
    pub faults: FaultPolicy,
}

/// wasmtime's default stack limit for guest code: 512 KiB.
pub const DEFAULT_MAX_WASM_STACK: usize = 512 * 1024;

impl Default for Sandbox {
    fn default() -> Self {
        Self {
            epoch_interruption: true,
            fuel: false,
            max_wasm_stack: DEFAULT_MAX_WASM_STACK,
            limits: GuestLimits::default(),
            faults: FaultPolicy::default(),
        }
    }
}

/// What one instance may use. A module's `.wasm.meta` can give its own
/// (loader settings, [`WasmModuleSettings`](crate::WasmModuleSettings)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GuestLimits {
    /// The most wall-clock time one call into the guest may take, in
    /// milliseconds, with epoch interruption on; `None`: no limit. Time in
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
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            cpu_budget_ms: Some(200),
            fuel_per_call: Some(1_000_000_000),
            max_memory_bytes: 64 * 1024 * 1024,
            max_table_elements: 100_000,
        }
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
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Self::OutOfCpu,
            Some(Trap::OutOfFuel) => Self::OutOfFuel,
            Some(Trap::StackOverflow) => Self::StackOverflow,
            _ => Self::Trap {
                message: match error.downcast_ref::<Trap>() {
                    Some(trap) => trap.to_string(),
                    None => format!("{error:#}"),
                },
                backtrace: error
                    .downcast_ref::<WasmBacktrace>()
                    .map(|backtrace| backtrace.to_string()),
            },
        }
    }
}

/// Enforces [`GuestLimits`] on one instance's memories and tables, and
/// remembers whether it had to.
pub(crate) struct Limiter {
    max_memory_bytes: usize,
    max_table_elements: usize,
    /// A growth was refused since the last [`Limiter::take_hit`].
    hit: bool,
}

impl Limiter {
    pub fn new(limits: &GuestLimits) -> Self {
        Self {
            max_memory_bytes: limits.max_memory_bytes,
            max_table_elements: limits.max_table_elements,
            hit: false,
        }
    }

    pub fn take_hit(&mut self) -> bool {
        std::mem::take(&mut self.hit)
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.hit = true;
            wasmtime::bail!(
                "memory limit of {} bytes reached (wanted {desired})",
                self.max_memory_bytes
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            self.hit = true;
            wasmtime::bail!(
                "table limit of {} elements reached (wanted {desired})",
                self.max_table_elements
            );
        }
        Ok(true)
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
}
