//! The Faults tab: failures, repeats counted, each with its whole cause.

use bevy::prelude::*;
use bevy_egui::egui;

use crate::debug_panel::actions::{PanelAction, PanelActions};
use crate::debug_panel::records::PanelFaults;
use crate::debug_panel::state::PanelState;
use crate::sandbox::FaultKind;

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
