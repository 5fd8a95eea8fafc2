//! What the debug panel costs (feature `debug_panel`):
//!
//! - `panel/<tab>`: one egui pass drawing the panel on that tab, without a
//!   window, over 1 000 running script instances, a bucket of 10 000 keys
//!   and full console and event buffers (the target: under 2 ms);
//! - `panel/frame_*`: a game frame of those 1 000 instances with the
//!   panel's plugin added and its window closed, against one without it.
//!
//! ```sh
//! cargo bench --features debug_panel --bench panel
//! ```

use bevy::prelude::*;
use bevy_hotwasm::KvStore;
use bevy_hotwasm::debug_panel::{HotWasmPanelPlugin, PanelState, PanelTab, ui_for_panel};
use criterion::{Criterion, criterion_group, criterion_main};
use hotwasm_test_support::*;

const INSTANCES: usize = 1000;
const KEYS: usize = 10_000;

/// An app running `hello` on [`INSTANCES`] entities, with (or without) the
/// panel's plugin, and a `tuning` bucket of [`KEYS`] keys.
fn panel_app(with_panel: bool) -> (AssetDir, App) {
    let assets = AssetDir::new();
    assets.write("hello.wasm", &guest_bytes("hello"));
    let mut app = game_with_fake_watcher(&assets, unsigned_plugin(), |app| {
        if with_panel {
            app.add_plugins(HotWasmPanelPlugin {
                window: false,
                ..default()
            });
        }
    });
    let entities: Vec<Entity> = (0..INSTANCES)
        .map(|_| spawn_script(&mut app, "hello.wasm"))
        .collect();
    update_until(&mut app, "every instance to start", |app| {
        entities
            .iter()
            .all(|&entity| generation(app, entity).is_some())
    });
    let mut store = app.world_mut().resource_mut::<KvStore>();
    for key in 0..KEYS {
        store
            .set("tuning", &format!("key/{key:05}"), b"1.5")
            .unwrap();
    }
    app.update();
    (assets, app)
}

fn panel(c: &mut Criterion) {
    let mut group = c.benchmark_group("panel");
    let (_assets, mut app) = panel_app(true);
    app.world_mut().resource_mut::<PanelState>().kv.key = Some("key/00000".to_owned());
    let context = egui::Context::default();
    let input = || egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1280.0, 720.0),
        )),
        ..default()
    };
    for tab in [
        PanelTab::Modules,
        PanelTab::Instances,
        PanelTab::Faults,
        PanelTab::Console,
        PanelTab::Events,
        PanelTab::KeyValue,
        PanelTab::Time,
        PanelTab::Diagnostics,
    ] {
        app.world_mut().resource_mut::<PanelState>().tab = tab;
        let name = format!("{tab:?}").to_lowercase();
        group.bench_function(format!("{name}_tab_1000_instances_10000_keys"), |b| {
            b.iter(|| {
                let output = context.run_ui(input(), |ui| ui_for_panel(app.world_mut(), ui));
                std::hint::black_box(output.shapes.len());
            });
        });
    }
    drop(app);

    for with_panel in [true, false] {
        let (_assets, mut app) = panel_app(with_panel);
        let name = if with_panel {
            "frame_1000_instances_panel_closed"
        } else {
            "frame_1000_instances_no_panel"
        };
        group.bench_function(name, |b| b.iter(|| app.update()));
    }
    group.finish();
}

criterion_group!(benches, panel);
criterion_main!(benches);
