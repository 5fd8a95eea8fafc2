//! The Instances tab: every script instance, its counters and guest
//! time, and what one registered.

use bevy::prelude::*;
use bevy_egui::egui;

use crate::debug_panel::actions::{PanelAction, PanelActions};
use crate::debug_panel::state::PanelState;
use crate::debug_panel::widgets::{bytes, describe_task, headings, solid_scroll_bars};
use crate::runtime::{ModuleStatus, RECENT_RUNS, ScriptStatus, WasmRuntime};

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

/// What one instance registered: its tasks, subscriptions, answered topics
/// and watches.
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
                ("answers requests on", &details.answers),
                ("watches", &details.watches),
            ] {
                ui.label(format!("{heading} ({})", lines.len()));
                for line in lines {
                    ui.monospace(format!("  {line}"));
                }
            }
        });
}
