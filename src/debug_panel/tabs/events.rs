//! The Events tab: a timeline of messages, key-value changes, watches,
//! reloads and failures.

use bevy::prelude::*;
use bevy_egui::egui;

use crate::debug_panel::actions::{PanelAction, PanelActions};
use crate::debug_panel::records::{EventRecord, PanelEvents};
use crate::debug_panel::state::EventKind;
use crate::debug_panel::state::PanelState;
use crate::debug_panel::widgets::shown_checkbox;

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
