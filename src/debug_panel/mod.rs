//! The debug panel (feature `debug_panel`): what the runtime knows, in
//! egui, and buttons that act on it.
//!
//! Each part is a function, `ui_for_*(world, ui)`, that draws into any
//! [`egui::Ui`] from the same public data a game's own systems can read
//! ([`WasmRuntime`], [`ModuleLogged`], `Time<Virtual>`), so a game can put
//! one in its own UI. [`HotWasmPanelPlugin`] shows them all in one window
//! with tabs, toggled by a key. Buttons do not change the world while egui
//! holds it: they queue a [`PanelAction`], applied by a system after the UI.

use std::collections::VecDeque;

use bevy::input::common_conditions::input_just_pressed;
use bevy::platform::collections::HashMap;
use bevy::prelude::*;
use bevy_egui::{EguiContext, EguiPrimaryContextPass, PrimaryEguiContext, egui};

use crate::asset::WasmModule;
use crate::messages::ModuleLogged;
use crate::runtime::{ScriptStatus, WasmRuntime, WasmSystems};

/// How many guest log lines the console keeps.
pub const CONSOLE_LINES: usize = 1000;

/// The panel: its state and actions, and (with `window`) a window with a
/// tab for each `ui_for_*`, opened and closed with `toggle`.
///
/// Needs `bevy_egui`'s `EguiPlugin` for the window (add it after
/// `DefaultPlugins`). With `window: false` the plugin only keeps the
/// panel's state and applies its actions: for `ui_for_*` in a game's own
/// UI, or in tests.
pub struct HotWasmPanelPlugin {
    /// The key that opens and closes the window.
    pub toggle: KeyCode,
    /// Whether to show the panel's own window.
    pub window: bool,
}

impl Default for HotWasmPanelPlugin {
    fn default() -> Self {
        Self {
            toggle: KeyCode::F12,
            window: true,
        }
    }
}

/// The panel's tabs, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PanelTab {
    /// Every module: path, generation, state, last failure.
    #[default]
    Modules,
    /// Every script instance: state, counters, quarantine.
    Instances,
    /// Guest log lines.
    Console,
    /// The game's virtual time: pause, resume, speed.
    Time,
}

impl PanelTab {
    const ALL: [Self; 4] = [Self::Modules, Self::Instances, Self::Console, Self::Time];

    fn label(self) -> &'static str {
        match self {
            Self::Modules => "Modules",
            Self::Instances => "Instances",
            Self::Console => "Console",
            Self::Time => "Time",
        }
    }
}

/// Whether the window is open, its tab, and the console's filter.
#[derive(Resource, Debug, Default)]
pub struct PanelState {
    /// Whether the panel's window is shown.
    pub open: bool,
    /// The tab shown.
    pub tab: PanelTab,
    /// Only console lines containing this text are shown.
    pub console_filter: String,
}

/// Something a panel button asked for, applied after the UI pass.
#[derive(Clone, Debug, PartialEq)]
pub enum PanelAction {
    /// Lets a quarantined script start again ([`WasmRuntime::release`]).
    Release(Entity),
    /// Loads a module's file again, as if it had been saved.
    Reload(AssetId<WasmModule>),
    /// Pauses or resumes the game's virtual time.
    Pause(bool),
    /// Sets the virtual time's speed.
    Speed(f32),
    /// Forgets the console's lines.
    ClearConsole,
}

/// Actions waiting to be applied.
#[derive(Resource, Debug, Default)]
pub struct PanelActions(pub Vec<PanelAction>);

/// The last [`CONSOLE_LINES`] guest log lines.
#[derive(Resource, Debug, Default)]
pub struct PanelConsole {
    /// Oldest first.
    pub lines: VecDeque<ModuleLogged>,
}

impl Plugin for HotWasmPanelPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<PanelState>()
            .init_resource::<PanelActions>()
            .init_resource::<PanelConsole>()
            .add_systems(
                Update,
                (collect_console.after(WasmSystems::Run), apply_actions),
            );
        if self.window {
            app.add_systems(
                Update,
                toggle_window.run_if(input_just_pressed(self.toggle)),
            )
            .add_systems(EguiPrimaryContextPass, show_window);
        }
    }
}

fn toggle_window(mut state: ResMut<PanelState>) {
    state.open = !state.open;
}

fn collect_console(mut logged: MessageReader<ModuleLogged>, mut console: ResMut<PanelConsole>) {
    for line in logged.read() {
        if console.lines.len() == CONSOLE_LINES {
            console.lines.pop_front();
        }
        console.lines.push_back(line.clone());
    }
}

/// Applies what the panel's buttons asked for.
pub fn apply_actions(world: &mut World) {
    let actions = std::mem::take(&mut world.resource_mut::<PanelActions>().0);
    for action in actions {
        match action {
            PanelAction::Release(entity) => {
                world.resource_mut::<WasmRuntime>().release(entity);
            }
            PanelAction::Reload(module) => {
                let server = world.resource::<AssetServer>();
                if let Some(path) = server.get_path(module) {
                    server.reload(path.into_owned());
                }
            }
            PanelAction::Pause(paused) => {
                let mut time = world.resource_mut::<Time<Virtual>>();
                if paused {
                    time.pause();
                } else {
                    time.unpause();
                }
            }
            PanelAction::Speed(speed) => {
                world
                    .resource_mut::<Time<Virtual>>()
                    .set_relative_speed(speed.max(0.0));
            }
            PanelAction::ClearConsole => world.resource_mut::<PanelConsole>().lines.clear(),
        }
    }
}

/// The window, in the primary egui context, when open.
fn show_window(world: &mut World) {
    if !world.resource::<PanelState>().open {
        return;
    }
    let Ok(context) = world
        .query_filtered::<&mut EguiContext, With<PrimaryEguiContext>>()
        .single(world)
    else {
        return;
    };
    let mut context = context.clone();
    let mut open = true;
    egui::Window::new("bevy_hotwasm")
        .open(&mut open)
        .default_pos([560.0, 90.0])
        .default_size([680.0, 400.0])
        .show(context.get_mut(), |ui| ui_for_panel(world, ui));
    world.resource_mut::<PanelState>().open = open;
}

/// The whole panel: a tab bar and the chosen tab.
pub fn ui_for_panel(world: &mut World, ui: &mut egui::Ui) {
    let mut tab = world.resource::<PanelState>().tab;
    ui.horizontal(|ui| {
        for each in PanelTab::ALL {
            ui.selectable_value(&mut tab, each, each.label());
        }
    });
    world.resource_mut::<PanelState>().tab = tab;
    ui.separator();
    match tab {
        PanelTab::Modules => ui_for_modules(world, ui),
        PanelTab::Instances => ui_for_instances(world, ui),
        PanelTab::Console => ui_for_console(world, ui),
        PanelTab::Time => ui_for_time(world, ui),
    }
}

/// What a script is doing, in a word or two.
fn script_state(status: &ScriptStatus) -> &'static str {
    if status.is_quarantined() {
        "quarantined"
    } else if status.generation().is_some() {
        "running"
    } else if status.last_fault().is_some() {
        "restarting"
    } else if status.last_failure().is_some() {
        "failed"
    } else {
        "loading"
    }
}

/// Every module: path, generation, instances, last failure; a Reload
/// button each.
pub fn ui_for_modules(world: &mut World, ui: &mut egui::Ui) {
    let runtime = world.resource::<WasmRuntime>();
    let mut modules: Vec<_> = runtime.modules().collect();
    modules.sort_by(|a, b| a.1.path().cmp(b.1.path()));
    // One pass over the scripts, not one per module.
    let mut instances = HashMap::<AssetId<WasmModule>, usize>::new();
    for (_, script) in runtime.scripts() {
        *instances.entry(script.module()).or_default() += 1;
    }
    let mut actions = Vec::new();
    egui::Grid::new("hotwasm-modules")
        .striped(true)
        .num_columns(5)
        .show(ui, |ui| {
            for heading in ["module", "generation", "instances", "last failure", ""] {
                ui.strong(heading);
            }
            ui.end_row();
            for (id, module) in modules {
                ui.monospace(module.path());
                ui.label(module.generation().to_string());
                ui.label(instances.get(&id).copied().unwrap_or(0).to_string());
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
    world.resource_mut::<PanelActions>().0.extend(actions);
}

/// Every script instance, a row each: entity, module, generation, state,
/// counters; a Release button for a quarantined one.
pub fn ui_for_instances(world: &mut World, ui: &mut egui::Ui) {
    let runtime = world.resource::<WasmRuntime>();
    let mut scripts: Vec<_> = runtime.scripts().collect();
    scripts.sort_by_key(|(entity, _)| *entity);
    let mut actions = Vec::new();
    let row_height = ui.text_style_height(&egui::TextStyle::Body);
    egui::ScrollArea::vertical().show_rows(ui, row_height, scripts.len(), |ui, rows| {
        egui::Grid::new("hotwasm-instances")
            .striped(true)
            .num_columns(9)
            .show(ui, |ui| {
                for heading in [
                    "entity",
                    "module",
                    "gen",
                    "state",
                    "calls",
                    "faults",
                    "restarts",
                    "guest time",
                    "",
                ] {
                    ui.strong(heading);
                }
                ui.end_row();
                for (entity, script) in &scripts[rows] {
                    let stats = script.stats();
                    let module = runtime
                        .module(script.module())
                        .map_or("?", |module| module.path());
                    ui.monospace(entity.to_string());
                    ui.monospace(module);
                    ui.label(
                        script
                            .generation()
                            .map_or("–".to_owned(), |g| g.to_string()),
                    );
                    ui.label(script_state(script));
                    ui.label(stats.calls.to_string());
                    ui.label(stats.faults.to_string());
                    ui.label(stats.restarts.to_string());
                    ui.label(format!("{:.1?}", stats.last_frame_time));
                    if script.is_quarantined() && ui.button(format!("Release {entity}")).clicked() {
                        actions.push(PanelAction::Release(*entity));
                    }
                    ui.end_row();
                }
            });
    });
    world.resource_mut::<PanelActions>().0.extend(actions);
}

/// Guest log lines, newest last, filtered by text; Clear forgets them.
pub fn ui_for_console(world: &mut World, ui: &mut egui::Ui) {
    let mut filter = std::mem::take(&mut world.resource_mut::<PanelState>().console_filter);
    let mut clear = false;
    ui.horizontal(|ui| {
        ui.label("Filter");
        ui.text_edit_singleline(&mut filter);
        clear = ui.button("Clear").clicked();
    });
    let console = world.resource::<PanelConsole>();
    let shown: Vec<String> = console
        .lines
        .iter()
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
    world.resource_mut::<PanelState>().console_filter = filter;
    if clear {
        world
            .resource_mut::<PanelActions>()
            .0
            .push(PanelAction::ClearConsole);
    }
}

/// The game's virtual time: elapsed, paused or not, speed.
pub fn ui_for_time(world: &mut World, ui: &mut egui::Ui) {
    let time = world.resource::<Time<Virtual>>();
    let (paused, mut speed) = (time.is_paused(), time.relative_speed());
    ui.label(format!("game time {:.1?}", time.elapsed()));
    let mut actions = Vec::new();
    ui.horizontal(|ui| {
        if ui.button(if paused { "Resume" } else { "Pause" }).clicked() {
            actions.push(PanelAction::Pause(!paused));
        }
        if ui
            .add(egui::Slider::new(&mut speed, 0.0..=4.0).text("speed"))
            .changed()
        {
            actions.push(PanelAction::Speed(speed));
        }
    });
    world.resource_mut::<PanelActions>().0.extend(actions);
}
