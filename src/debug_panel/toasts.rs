//! Toasts: a few seconds' notice of each reload that landed and each
//! module that failed to load or start, in a corner of the window.

use std::collections::VecDeque;
use std::time::Duration;

use bevy::prelude::*;
use bevy_egui::{EguiContext, PrimaryEguiContext, egui};

use crate::messages::{FailureStage, ModuleFailed, ModuleReloaded, ScriptRef};
use crate::runtime::{ModuleStatus, WasmRuntime};

/// How long a toast stays on screen.
pub const TOAST_TIME: Duration = Duration::from_secs(4);

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

/// A toast for each module that reached a new generation this frame (one
/// for all its instances) and each failure to load or start one; faults
/// while running go to the Faults tab only.
pub(super) fn collect_toasts(
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
        if matches!(failure.stage, FailureStage::Run | FailureStage::Request) {
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
pub(super) fn show_toasts(
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
