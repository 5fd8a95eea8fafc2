//! The Diagnostics tab: the plugin's diagnostics over recent frames,
//! plotted.

use bevy::diagnostic::{DiagnosticPath, DiagnosticsStore};
use bevy::prelude::*;
use bevy_egui::egui;

use crate::diagnostics::WasmDiagnostics;

/// The plugin's diagnostics ([`WasmDiagnostics`]) over the frames Bevy's
/// [`DiagnosticsStore`] keeps: the latest value, the average and a line.
pub fn ui_for_diagnostics(world: &mut World, ui: &mut egui::Ui) {
    let Some(store) = world.get_resource::<DiagnosticsStore>() else {
        ui.label("No diagnostics store.");
        return;
    };
    let plotted: [(DiagnosticPath, &str); 4] = [
        (WasmDiagnostics::GUEST_TIME, "guest time per frame (ms)"),
        (WasmDiagnostics::FAULTS, "faults per frame"),
        (
            WasmDiagnostics::POSTPONED,
            "scripts put off per frame (frame budget spent)",
        ),
        (WasmDiagnostics::QUARANTINED, "scripts quarantined"),
    ];
    for (path, label) in plotted {
        let Some(diagnostic) = store.get(&path) else {
            continue;
        };
        let values: Vec<f64> = diagnostic.values().copied().collect();
        let latest = values.last().copied().unwrap_or(0.0);
        let max = values.iter().copied().fold(0.0, f64::max);
        let average = diagnostic.average().unwrap_or(0.0);
        ui.label(format!(
            "{label}: latest {latest:.3}, average {average:.3}, highest {max:.3} over {} frames",
            values.len()
        ));
        line_plot(ui, &values, max);
    }
}

/// `values` as a line, 0 at the bottom and `max` at the top.
fn line_plot(ui: &mut egui::Ui, values: &[f64], max: f64) {
    let size = egui::vec2(ui.available_width().min(600.0), 48.0);
    let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    if values.len() < 2 {
        return;
    }
    let step = rect.width() / (values.len() - 1) as f32;
    let scale = if max > 0.0 {
        rect.height() / max as f32
    } else {
        0.0
    };
    let points = values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            egui::pos2(
                rect.left() + index as f32 * step,
                rect.bottom() - *value as f32 * scale,
            )
        })
        .collect();
    let stroke = egui::Stroke::new(1.5, egui::Color32::LIGHT_GREEN);
    painter.add(egui::Shape::line(points, stroke));
}
