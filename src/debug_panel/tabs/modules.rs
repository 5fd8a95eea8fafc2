//! The Modules tab: every module, its state and version, and where one
//! came from, who signed it and what it may do.

use bevy::platform::collections::HashMap;
use bevy::prelude::*;
use bevy_egui::egui;

use crate::asset::WasmModule;
use crate::capabilities::Grant;
use crate::debug_panel::actions::{PanelAction, PanelActions};
use crate::debug_panel::state::PanelState;
use crate::debug_panel::widgets::{bytes, headings, solid_scroll_bars};
use crate::runtime::{ModuleStatus, WasmRuntime};
use crate::sandbox::GuestLimits;

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

/// A filled circle the height of a line of text (egui's default fonts
/// have no `●`).
fn status_light(ui: &mut egui::Ui, color: egui::Color32) -> egui::Response {
    let size = ui.text_style_height(&egui::TextStyle::Body);
    let (rect, response) = ui.allocate_exact_size(egui::vec2(size, size), egui::Sense::hover());
    ui.painter().circle_filled(rect.center(), size * 0.3, color);
    response
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
