//! What the runtime measures and records of its scripts, for Bevy's
//! `LogDiagnosticsPlugin`, a debug panel or a game's own tools.
//!
//! [`WasmDiagnostics`] (also at the crate root) names the Bevy diagnostics.
//! The rest is what a [`ScriptStatus`](crate::ScriptStatus) and a
//! [`ModuleStatus`](crate::ModuleStatus) hand out in detail: what an
//! instance registered ([`InstanceDetails`], its [`TaskDetails`] and
//! [`KeyWatch`]es), the last hot reload ([`ReloadTiming`]) and how many
//! runs of guest time are kept ([`RECENT_RUNS`]); and the log target of
//! guest output ([`GUEST_LOG_TARGET`]).

use bevy::diagnostic::{Diagnostic, DiagnosticPath, Diagnostics, RegisterDiagnostic};
use bevy::prelude::*;

use crate::runtime::WasmRuntime;

pub use crate::host::{InstanceDetails, KeyWatch, TaskDetails};
pub use crate::messages::GUEST_LOG_TARGET;
pub use crate::runtime::{RECENT_RUNS, ReloadTiming};

/// Bevy diagnostics of the runtime, measured after every run of
/// [`WasmSystems::Run`](crate::WasmSystems::Run) when Bevy's
/// `DiagnosticsPlugin` (part of `DefaultPlugins`) is on.
pub struct WasmDiagnostics;

impl WasmDiagnostics {
    /// Milliseconds spent in guest code in the frame, all scripts together.
    pub const GUEST_TIME: DiagnosticPath = DiagnosticPath::const_new("hotwasm/guest_time_ms");
    /// Guest calls that faulted in the frame.
    pub const FAULTS: DiagnosticPath = DiagnosticPath::const_new("hotwasm/faults");
    /// Scripts with work due that the frame put off to the next, its guest
    /// time budget spent ([`Sandbox::frame_budget`](crate::Sandbox::frame_budget)).
    pub const POSTPONED: DiagnosticPath = DiagnosticPath::const_new("hotwasm/postponed");
    /// Scripts quarantined.
    pub const QUARANTINED: DiagnosticPath = DiagnosticPath::const_new("hotwasm/quarantined");

    /// Registers the diagnostics.
    pub(crate) fn register(app: &mut App) {
        app.register_diagnostic(Diagnostic::new(Self::GUEST_TIME).with_suffix("ms"))
            .register_diagnostic(Diagnostic::new(Self::FAULTS))
            .register_diagnostic(Diagnostic::new(Self::POSTPONED))
            .register_diagnostic(Diagnostic::new(Self::QUARANTINED));
    }

    /// Measures the last run of the scripts.
    pub(crate) fn measure(runtime: Res<WasmRuntime>, mut diagnostics: Diagnostics) {
        diagnostics.add_measurement(&Self::GUEST_TIME, || {
            runtime.last_frame_guest_time().as_secs_f64() * 1000.0
        });
        diagnostics.add_measurement(&Self::FAULTS, || runtime.last_frame_faults() as f64);
        diagnostics.add_measurement(&Self::POSTPONED, || runtime.last_frame_postponed() as f64);
        diagnostics.add_measurement(&Self::QUARANTINED, || runtime.quarantined() as f64);
    }
}
