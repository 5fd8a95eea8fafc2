//! The Time tab: the game's virtual time, its buttons, and the tasks due
//! next.

use bevy::prelude::*;
use bevy_egui::egui;

use crate::debug_panel::actions::{PanelAction, PanelActions};
use crate::debug_panel::widgets::describe_task;
use crate::host::TaskDetails;
use crate::runtime::WasmRuntime;

/// How many of the soonest tasks the Time tab lists.
pub const NEXT_TASKS: usize = 10;

/// The game's virtual time: elapsed, paused or not, speed.
pub fn ui_for_time(world: &mut World, ui: &mut egui::Ui) {
    let time = world.resource::<Time<Virtual>>();
    let (paused, mut speed) = (time.is_paused(), time.relative_speed());
    ui.label(format!("game time {:.1?}", time.elapsed()));
    let mut actions = Vec::new();
    ui.horizontal(|ui| {
        if ui.button(if paused { "Resume" } else { "Pause" }).clicked() {
            actions.push(PanelAction::PauseGame(!paused));
        }
        if ui
            .add_enabled(paused, egui::Button::new("Step one frame"))
            .clicked()
        {
            actions.push(PanelAction::Step);
        }
        if ui
            .add(egui::Slider::new(&mut speed, 0.0..=4.0).text("speed"))
            .changed()
        {
            actions.push(PanelAction::Speed(speed));
        }
    });
    ui.separator();
    ui.strong("next due tasks");
    let runtime = world.resource::<WasmRuntime>();
    let mut due: Vec<(&TaskDetails, Entity, &str)> = runtime
        .scripts()
        .flat_map(|(entity, script)| {
            let module = runtime
                .module(script.module())
                .map_or("?", |module| module.path());
            script
                .details()
                .tasks
                .iter()
                .map(move |task| (task, entity, module))
        })
        .collect();
    due.sort_by_key(|(task, ..)| task.due);
    if due.is_empty() {
        ui.label("No tasks pending.");
    }
    for (task, entity, module) in due.into_iter().take(NEXT_TASKS) {
        ui.monospace(format!("{entity} {module}: {}", describe_task(task)));
    }
    world.resource_mut::<PanelActions>().0.extend(actions);
}
