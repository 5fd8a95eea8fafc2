//! The debug panel (feature `debug_panel`): what the runtime knows, in
//! egui, and buttons that act on it.
//!
//! Each part is a function, `ui_for_*(world, ui)`, that draws into any
//! [`egui::Ui`] from the same public data a game's own systems can read
//! ([`WasmRuntime`](crate::WasmRuntime), its messages,
//! [`KvStore`](crate::KvStore), `DiagnosticsStore`,
//! `Time<Virtual>`), so a game can put one in its own UI.
//! [`HotWasmPanelPlugin`] shows them all in one window with tabs, toggled by
//! a key, and toasts for reloads. Buttons do not change the world while
//! egui holds it: they queue a [`PanelAction`], applied by a system after
//! the UI. With the window closed, the panel only records messages as they
//! come (bounded buffers); nothing is drawn or copied per frame.

mod actions;
mod records;
mod state;
mod tabs;
mod toasts;
mod widgets;

use bevy::input::common_conditions::input_just_pressed;
use bevy::prelude::*;
use bevy_egui::{EguiContext, EguiPlugin, EguiPrimaryContextPass, PrimaryEguiContext, egui};

use crate::runtime::WasmSystems;
use actions::finish_step;
use records::{
    collect_console, collect_events, collect_faults, notice_kv_changes, record_watched_changes,
};
use toasts::{collect_toasts, show_toasts};

pub use actions::{PanelAction, PanelActions, apply_actions};
pub use records::{
    CONSOLE_LINES, EVENT_RECORDS, EventRecord, FAULT_RECORDS, FaultRecord, PanelConsole,
    PanelEvents, PanelFaults, PanelKvWrites,
};
pub use state::{EventKind, KvBrowser, PanelState, PanelTab, ValueView};
pub use tabs::console::ui_for_console;
pub use tabs::diagnostics::ui_for_diagnostics;
pub use tabs::events::ui_for_events;
pub use tabs::faults::ui_for_faults;
pub use tabs::instances::ui_for_instances;
pub use tabs::key_value::ui_for_key_value;
pub use tabs::modules::ui_for_modules;
pub use tabs::time::{NEXT_TASKS, ui_for_time};
pub use toasts::{PanelToasts, TOAST_TIME, Toast};

/// The panel: its state and actions, and (with `window`) a window with a
/// tab for each `ui_for_*`, opened and closed with `toggle`.
///
/// Needs `bevy_egui`'s `EguiPlugin` for the window (add it after
/// `DefaultPlugins`, before or after this plugin: without it the app
/// panics as it starts, saying so). With `window: false` the plugin only
/// keeps the panel's state and applies its actions: for `ui_for_*` in a
/// game's own UI, or in tests.
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

impl Plugin for HotWasmPanelPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<PanelState>()
            .init_resource::<PanelActions>()
            .init_resource::<PanelConsole>()
            .init_resource::<PanelFaults>()
            .init_resource::<PanelEvents>()
            .init_resource::<PanelToasts>()
            .init_resource::<PanelKvWrites>()
            .add_systems(PreStartup, record_watched_changes)
            .add_systems(
                Update,
                (
                    (
                        collect_console,
                        collect_faults,
                        collect_events,
                        collect_toasts,
                        notice_kv_changes,
                    )
                        .after(WasmSystems::Run),
                    (finish_step, apply_actions).chain().after(WasmSystems::Run),
                ),
            );
        if self.window {
            app.add_systems(
                Update,
                toggle_window.run_if(input_just_pressed(self.toggle)),
            )
            .add_systems(EguiPrimaryContextPass, (show_window, show_toasts));
        }
    }

    // In `finish`, when every plugin is added, so EguiPlugin may come
    // before or after this one.
    fn finish(&self, app: &mut App) {
        assert!(
            !self.window || app.is_plugin_added::<EguiPlugin>(),
            "HotWasmPanelPlugin draws its window with bevy_egui: add bevy_egui's \
             EguiPlugin::default() to the app (before or after HotWasmPanelPlugin), or set \
             `window: false` to keep only the panel's state and actions"
        );
    }
}

fn toggle_window(mut state: ResMut<PanelState>) {
    state.open = !state.open;
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
        .default_size([720.0, 400.0])
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
        PanelTab::Faults => ui_for_faults(world, ui),
        PanelTab::Console => ui_for_console(world, ui),
        PanelTab::KeyValue => ui_for_key_value(world, ui),
        PanelTab::Events => ui_for_events(world, ui),
        PanelTab::Diagnostics => ui_for_diagnostics(world, ui),
        PanelTab::Time => ui_for_time(world, ui),
    }
}
