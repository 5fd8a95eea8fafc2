//! How long a saved module takes to run: from writing the file to the new
//! generation having restored its state and run `init`, through Bevy's real
//! file watcher, with Bevy's default debounce and with a short one.
//!
//! ```sh
//! cargo bench --bench reload
//! ```

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use hotwasm_test_support::*;

fn file_write_to_new_generation(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_reload");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(5));
    for debounce_ms in [300, 50] {
        let name = format!("file_write_to_new_generation/debounce_{debounce_ms}ms");
        group.bench_function(name, |b| {
            let counter = guest_bytes("counter");
            let debounce = Some(Duration::from_millis(debounce_ms));
            let (assets, mut app, _) = start_scripts("counter.wasm", &counter, 1, debounce);
            let mut build = 0u8;
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    build = build.wrapping_add(1);
                    let reloads = seen(&app).reloaded.len();
                    let start = Instant::now();
                    assets.write("counter.wasm", &rebuilt(&counter, build));
                    update_until(&mut app, "the reload", |app| {
                        seen(app).reloaded.len() > reloads
                    });
                    total += start.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, file_write_to_new_generation);
criterion_main!(benches);
