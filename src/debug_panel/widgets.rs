//! Helpers more than one tab uses: small egui widgets, and the one-line
//! text of a size or a task.

use bevy_egui::egui;

use crate::host::TaskDetails;

/// A checkbox ticked while `item` is not in `hidden`; unticking hides it.
pub(super) fn shown_checkbox<T: PartialEq + Copy>(
    ui: &mut egui::Ui,
    hidden: &mut Vec<T>,
    item: T,
    label: impl Into<egui::WidgetText>,
) {
    let mut shown = !hidden.contains(&item);
    if ui.checkbox(&mut shown, label).changed() {
        hidden.retain(|each| *each != item);
        if !shown {
            hidden.push(item);
        }
    }
}

/// A grid's heading row.
pub(super) fn headings(ui: &mut egui::Ui, names: &[&str]) {
    for name in names {
        ui.strong(*name);
    }
    ui.end_row();
}

/// Scroll bars beside a table rather than over it: a floating bar covers
/// the buttons of the last row when the table is wider than the panel.
pub(super) fn solid_scroll_bars(ui: &mut egui::Ui) {
    ui.spacing_mut().scroll = egui::style::ScrollStyle::solid();
}

/// A size in bytes, in KiB or MiB when large.
pub(super) fn bytes(count: usize) -> String {
    match count {
        0..1024 => format!("{count} B"),
        1024..1_048_576 => format!("{:.1} KiB", count as f64 / 1024.0),
        _ => format!("{:.1} MiB", count as f64 / 1_048_576.0),
    }
}

/// A task, in one line: `task 3 due at 12.0s, every 500ms`.
pub(super) fn describe_task(task: &TaskDetails) -> String {
    let every = task
        .interval
        .map_or(String::new(), |interval| format!(", every {interval:.1?}"));
    format!("task {} due at {:.1?}{every}", task.id, task.due)
}
