//! The Key-value tab: a store's buckets, a page of keys, and one key's
//! value, who wrote it, who watches it, and edits to it.

use bevy::prelude::*;
use bevy_egui::egui;

use crate::debug_panel::actions::{PanelAction, PanelActions};
use crate::debug_panel::records::PanelKvWrites;
use crate::debug_panel::state::{KvBrowser, PanelState, ValueView};
use crate::kv::{KEYS_PER_PAGE, KeyPage, KvOrigin, KvStore, SharedStatus};
use crate::runtime::{ModuleStatus, WasmRuntime};

/// The key-value store: a bucket menu, a page of its keys, and the chosen
/// key's value as text (editable: Save), JSON or hex, with Delete and +1,
/// who wrote it last and which scripts watch it.
/// Edits are [`KvOrigin::Tool`] writes, so watching guests see them.
pub fn ui_for_key_value(world: &mut World, ui: &mut egui::Ui) {
    let mut browser = std::mem::take(&mut world.resource_mut::<PanelState>().kv);
    let mut actions = Vec::new();
    let store = world.resource::<KvStore>();
    let (writes, runtime) = (
        world.resource::<PanelKvWrites>(),
        world.resource::<WasmRuntime>(),
    );
    if let Some(status) = store.shared_status() {
        ui_for_shared_status(ui, &status);
    }
    ui_for_bucket_menu(ui, store, &mut browser);
    let Some(bucket) = browser.bucket.clone() else {
        world.resource_mut::<PanelState>().kv = browser;
        return;
    };
    if browser.page.is_none() {
        browser.page = store.list_keys(&bucket, browser.cursor).ok();
    }
    let value = browser
        .key
        .as_ref()
        .and_then(|key| store.get(&bucket, key).ok().flatten());
    ui.columns(2, |columns| {
        ui_for_key_page(&mut columns[0], store, &bucket, &mut browser);
        let ui = &mut columns[1];
        let Some(key) = browser.key.clone() else {
            ui.label("Choose a key.");
            return;
        };
        ui_for_writer_and_watchers(ui, writes, runtime, &bucket, &key);
        ui_for_value(ui, &bucket, &key, value, &mut browser, &mut actions);
    });
    world.resource_mut::<PanelState>().kv = browser;
    world.resource_mut::<PanelActions>().0.extend(actions);
}

/// The bucket menu (choosing one starts the tab afresh on it) and Refresh,
/// which reads the page again; the first bucket while none is chosen.
fn ui_for_bucket_menu(ui: &mut egui::Ui, store: &KvStore, browser: &mut KvBrowser) {
    let buckets: Vec<&str> = store.buckets().collect();
    if browser.bucket.is_none() {
        browser.bucket = buckets.first().map(|bucket| (*bucket).to_owned());
    }
    ui.horizontal(|ui| {
        let shown = browser.bucket.clone().unwrap_or_default();
        egui::ComboBox::from_label("bucket")
            .selected_text(if shown.is_empty() {
                "(no buckets)"
            } else {
                &shown
            })
            .show_ui(ui, |ui| {
                for bucket in &buckets {
                    if ui.selectable_label(shown == *bucket, *bucket).clicked() {
                        *browser = KvBrowser {
                            bucket: Some((*bucket).to_owned()),
                            ..default()
                        };
                    }
                }
            });
        if ui.button("Refresh").clicked() {
            browser.page = None;
        }
    });
}

/// The page of the bucket's keys read last; choosing a key begins an edit
/// of its value.
fn ui_for_key_page(ui: &mut egui::Ui, store: &KvStore, bucket: &str, browser: &mut KvBrowser) {
    let page = browser.page.clone().unwrap_or(KeyPage {
        keys: Vec::new(),
        cursor: None,
    });
    ui_for_page_buttons(ui, &page, browser);
    let row_height = ui.text_style_height(&egui::TextStyle::Body);
    egui::ScrollArea::vertical()
        .id_salt("hotwasm-kv-keys")
        .show_rows(ui, row_height, page.keys.len(), |ui, rows| {
            for key in &page.keys[rows] {
                let chosen = browser.key.as_ref() == Some(key);
                if ui.selectable_label(chosen, key).clicked() && !chosen {
                    browser.key = Some(key.clone());
                    browser.notice = None;
                    browser.begin_edit(store.get(bucket, key).ok().flatten());
                }
            }
        });
}

/// Which keys of the bucket `page` holds, between Previous and Next.
fn ui_for_page_buttons(ui: &mut egui::Ui, page: &KeyPage, browser: &mut KvBrowser) {
    let start = browser.cursor.unwrap_or(0);
    ui.horizontal(|ui| {
        if ui
            .add_enabled(start > 0, egui::Button::new("◀ Previous"))
            .clicked()
        {
            let previous = start.saturating_sub(KEYS_PER_PAGE as u64);
            browser.cursor = (previous > 0).then_some(previous);
            browser.page = None;
        }
        ui.label(format!(
            "keys {}–{}",
            start + 1,
            start + page.keys.len() as u64
        ));
        if ui
            .add_enabled(page.cursor.is_some(), egui::Button::new("Next ▶"))
            .clicked()
        {
            browser.cursor = page.cursor;
            browser.page = None;
        }
    });
}

/// Who wrote the key last (as far as the panel saw) and which scripts
/// watch it.
fn ui_for_writer_and_watchers(
    ui: &mut egui::Ui,
    writes: &PanelKvWrites,
    runtime: &WasmRuntime,
    bucket: &str,
    key: &str,
) {
    let last_write = writes.last.get(&(bucket.to_owned(), key.to_owned()));
    ui.label(format!(
        "last write: {}",
        last_write.map_or("before the panel started".to_owned(), describe_origin)
    ));
    let watchers: Vec<String> = runtime
        .scripts()
        .filter(|(_, script)| {
            let watches = &script.details().key_watches;
            watches.iter().any(|watch| watch.covers(bucket, key))
        })
        .map(|(entity, script)| {
            let module = runtime.module(script.module());
            format!("{entity} ({})", module.map_or("?", ModuleStatus::path))
        })
        .collect();
    ui.label(match watchers.as_slice() {
        [] => "watched by no script".to_owned(),
        watchers => format!("watched by {}", watchers.join(", ")),
    });
}

/// The key and its value (`None`: unset) in the chosen view, its buttons,
/// and why the last Save did not save.
fn ui_for_value(
    ui: &mut egui::Ui,
    bucket: &str,
    key: &str,
    value: Option<Vec<u8>>,
    browser: &mut KvBrowser,
    actions: &mut Vec<PanelAction>,
) {
    ui.horizontal(|ui| {
        ui.monospace(key);
        ui.selectable_value(&mut browser.view, ValueView::Text, "Text");
        ui.selectable_value(&mut browser.view, ValueView::Json, "JSON");
        ui.selectable_value(&mut browser.view, ValueView::Hex, "Hex");
    });
    // An untouched edit follows the value as others change it.
    if !browser.is_edited() && browser.read != value {
        browser.begin_edit(value.clone());
    }
    let Some(value) = value else {
        ui.label("(not set)");
        return;
    };
    let text = std::str::from_utf8(&value).is_ok();
    ui_for_value_view(ui, &value, text, browser);
    let editable = text && browser.is_edited();
    ui_for_value_buttons(ui, bucket, key, editable, browser, actions);
    if let Some(notice) = &browser.notice {
        ui.colored_label(egui::Color32::LIGHT_RED, notice);
    }
}

/// `value` as the browser's view shows it: text in an editor (or, when it
/// is not text, its size), pretty JSON, or hex bytes.
fn ui_for_value_view(ui: &mut egui::Ui, value: &[u8], text: bool, browser: &mut KvBrowser) {
    match browser.view {
        ValueView::Text if text => {
            ui.add(egui::TextEdit::multiline(&mut browser.edit).code_editor());
        }
        ValueView::Text => {
            ui.label(format!(
                "Binary, {} bytes: not text, so not editable here (see Hex).",
                value.len()
            ));
        }
        ValueView::Json => {
            let pretty = serde_json::from_slice::<serde_json::Value>(value)
                .and_then(|json| serde_json::to_string_pretty(&json))
                .unwrap_or_else(|error| format!("not JSON: {error}"));
            ui.monospace(pretty);
        }
        ValueView::Hex => {
            let hex: Vec<String> = value.iter().map(|byte| format!("{byte:02x}")).collect();
            ui.monospace(hex.join(" "));
        }
    }
}

/// Save (enabled by an edit), Delete and +1, queued as actions on the key.
fn ui_for_value_buttons(
    ui: &mut egui::Ui,
    bucket: &str,
    key: &str,
    editable: bool,
    browser: &KvBrowser,
    actions: &mut Vec<PanelAction>,
) {
    ui.horizontal(|ui| {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let save = ui
            .add_enabled(editable, egui::Button::new("Save"))
            .clicked();
        let delete = ui.button("Delete").clicked();
        let add_one = ui.button("+1").clicked();
        if save {
            actions.push(PanelAction::KvSave {
                bucket,
                key,
                read: browser.read.clone(),
                value: browser.edit.clone().into_bytes(),
            });
        } else if delete {
            actions.push(PanelAction::KvDelete { bucket, key });
        } else if add_one {
            actions.push(PanelAction::KvIncrement {
                bucket,
                key,
                delta: 1,
            });
        }
    });
}

impl KvBrowser {
    /// Starts editing `value` as read now: as text when it is UTF-8 (a
    /// binary value is never turned into text, and cannot be saved here).
    fn begin_edit(&mut self, value: Option<Vec<u8>>) {
        self.edit = value
            .as_deref()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .unwrap_or_default()
            .to_owned();
        self.read = value;
    }

    /// Whether the text differs from the value it was read from (a
    /// binary value is never edited).
    fn is_edited(&self) -> bool {
        let read = (self.read.as_deref()).and_then(|bytes| std::str::from_utf8(bytes).ok());
        read.unwrap_or_default() != self.edit
    }
}

/// A shared store's connection, one line: red while it is down.
fn ui_for_shared_status(ui: &mut egui::Ui, status: &SharedStatus) {
    ui.horizontal_wrapped(|ui| {
        ui.label(format!("Shared on {}:", status.url));
        if status.connected {
            ui.colored_label(egui::Color32::LIGHT_GREEN, "connected");
        } else {
            ui.colored_label(egui::Color32::LIGHT_RED, "disconnected");
        }
        ui.label(describe_shared_status(status));
    });
    ui.separator();
}

/// What a shared store's status says besides whether it is connected.
fn describe_shared_status(status: &SharedStatus) -> String {
    let mut said = format!(
        "revision {}, {} writes waiting for the server",
        status.last_revision, status.queued_writes
    );
    if status.behind > 0 {
        said += &format!(", {} changes behind", status.behind);
    }
    if status.skipped_changes > 0 {
        said += &format!(
            ", {} changes replaced before this game saw them",
            status.skipped_changes
        );
    }
    said
}

/// Who wrote a key, in a few words.
fn describe_origin(origin: &KvOrigin) -> String {
    match origin {
        KvOrigin::Host => "the game".to_owned(),
        KvOrigin::Guest(entity) => format!("the script on {entity}"),
        KvOrigin::External => "a file edited outside the game".to_owned(),
        KvOrigin::Tool => "a tool (this panel)".to_owned(),
        KvOrigin::Remote { revision, skipped } => {
            let mut said = format!("another process sharing the store (revision {revision})");
            if *skipped > 0 {
                said += &format!(", after {skipped} changes replaced before this game saw them");
            }
            said
        }
    }
}
