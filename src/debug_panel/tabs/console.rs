//! The Console tab: guest log lines, filtered by level, module and text.

use bevy::log::Level;
use bevy::prelude::*;
use bevy_egui::egui;

use crate::debug_panel::actions::{PanelAction, PanelActions};
use crate::debug_panel::records::PanelConsole;
use crate::debug_panel::state::PanelState;
use crate::debug_panel::widgets::shown_checkbox;

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
