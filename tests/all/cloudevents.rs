//! Change events as other tools read them: the CloudEvents JSON of
//! key-value, component and resource changes, parsed by the
//! `cloudevents-sdk` crate, the same from the watching guest (the SDK's
//! `Event::cloud_event`) and from the game (`KvChanged::cloud_event`,
//! `WatchedChange::cloud_event`).

use std::time::{Duration, SystemTime};

use bevy::prelude::*;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::watch::{CloudEvent, WatchedChange};
use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, Data, Event};
use hotwasm_test_support::*;

/// A generic component: its type path has `<` and `>`.
#[derive(Component, Reflect, Default)]
#[reflect(Component)]
struct Wrapper<T>(T);

/// Every `WatchedChange` written.
#[derive(Resource, Default)]
struct Watched(Vec<WatchedChange>);

fn collect_watched(mut changes: MessageReader<WatchedChange>, mut watched: ResMut<Watched>) {
    watched.0.extend(changes.read().cloned());
}

/// The `watcher` guest over a store in `store_dir`, logging every event it
/// gets as CloudEvents JSON, and watching the component or resource
/// `type_path` (`watcher/component` or `watcher/resource`) if given; the
/// game records what the watches got.
fn watcher(store_dir: &std::path::Path, watched: Option<(&str, &str)>) -> (AssetDir, App, Entity) {
    let (assets, mut app, entities) =
        start_scripts("watcher.wasm", &guest_bytes("watcher"), 1, None);
    app.insert_resource(KvStore::open_dir(store_dir).unwrap())
        .register_type::<Health>()
        .register_type::<Weather>()
        .register_type::<Wrapper<u32>>()
        .init_resource::<Watched>()
        .add_systems(Update, collect_watched.after(WasmSystems::Run));
    app.world_mut()
        .resource_mut::<WasmRuntime>()
        .record_watched_changes(true);
    let watcher = entities[0];
    let mut ask = |topic: &str, payload: &str| {
        app.world_mut()
            .write_message(HostMessage::to_entity(watcher, topic, payload));
    };
    ask("watcher/cloudevents", "");
    if let Some((kind, type_path)) = watched {
        ask(&format!("watcher/{kind}"), type_path);
    }
    app.update();
    (assets, app, watcher)
}

/// `json` read by the CloudEvents SDK, after checking what it does not:
/// every extension attribute's name is 1 to 20 lowercase letters or digits,
/// and `source` is a URI reference.
fn parse(json: &str) -> Event {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).unwrap();
    for name in object.keys() {
        let fits = (1..=20).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        assert!(
            fits || name == "data_base64",
            "attribute name {name:?} in {json}"
        );
    }
    let event: Event = serde_json::from_str(json).unwrap_or_else(|error| panic!("{error}: {json}"));
    assert!(is_absolute_path(event.source()), "source of {json}");
    event
}

/// Whether `text` is an absolute path, one of RFC 3986's URI references:
/// `/` segments of `pchar`s (unreserved, sub-delims, `:`, `@`, or `%` and
/// two hex digits).
fn is_absolute_path(text: &str) -> bool {
    let Some(path) = text.strip_prefix('/') else {
        return false;
    };
    let mut bytes = path.bytes();
    while let Some(byte) = bytes.next() {
        let fits = match byte {
            b'%' => {
                let hex = |digit: Option<u8>| digit.is_some_and(|d| d.is_ascii_hexdigit());
                hex(bytes.next()) && hex(bytes.next())
            }
            _ => byte.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&byte),
        };
        if !fits {
            return false;
        }
    }
    true
}

/// The events the guest logged as CloudEvents JSON, in order.
fn guest_events(app: &App, watcher: Entity) -> Vec<Event> {
    seen(app)
        .lines_of(watcher)
        .iter()
        .filter_map(|line| line.strip_prefix("cloudevent "))
        .map(parse)
        .collect()
}

/// The game's `events` read back by the SDK, checked to be what the guest
/// on `watcher` got.
fn same_for_guest<'a>(
    app: &App,
    watcher: Entity,
    events: impl Iterator<Item = CloudEvent<'a>>,
) -> Vec<Event> {
    let game: Vec<Event> = events.map(|event| parse(&event.to_json())).collect();
    assert_eq!(
        guest_events(app, watcher),
        game,
        "the guest's and the game's"
    );
    game
}

fn virtual_elapsed(app: &App) -> Duration {
    app.world().resource::<Time<Virtual>>().elapsed()
}

/// The `virtualtime` extension attribute, as the duration it writes.
fn virtual_time(event: &Event) -> Duration {
    let Some(ExtensionValue::String(seconds)) = event.extension("virtualtime") else {
        panic!("no virtualtime string in {event}");
    };
    let (whole, nanos) = seconds.split_once('.').expect("seconds.nanoseconds");
    assert_eq!(nanos.len(), 9, "{seconds}");
    Duration::new(whole.parse().unwrap(), nanos.parse().unwrap())
}

/// The event's `time`, checked to lie between `before` and now.
fn assert_time_since(event: &Event, before: SystemTime) {
    let time = SystemTime::from(*event.time().expect("a time"));
    assert!(
        before <= time && time <= SystemTime::now(),
        "time {time:?} not between {before:?} and now"
    );
}

#[test]
fn key_value_changes_read_the_same_from_the_guest_and_from_the_game() {
    let store_dir = tempfile::tempdir().unwrap();
    let (_assets, mut app, watcher) = watcher(store_dir.path(), None);
    let (before, published_at) = (SystemTime::now(), virtual_elapsed(&app) + FRAME_TIME);
    let mut store = app.world_mut().resource_mut::<KvStore>();
    // Not UTF-8: the bytes are what they are.
    store.set("tuning", "speed", &[0xff, 0x00, b'7']).unwrap();
    run_frames(&mut app, 2);
    app.world_mut()
        .resource_mut::<KvStore>()
        .delete("tuning", "speed")
        .unwrap();
    run_frames(&mut app, 2);

    let game = same_for_guest(
        &app,
        watcher,
        seen(&app).kv.iter().map(KvChanged::cloud_event),
    );
    let [set, deleted] = game.as_slice() else {
        panic!("a set and a delete: {game:?}");
    };
    assert_eq!(set.ty(), "dev.hotwasm.kv.set");
    assert_eq!(set.source(), "/kv/tuning");
    assert_eq!(set.subject(), Some("speed"));
    assert_eq!(set.id(), seen(&app).kv[0].stamp.id.to_string());
    assert_eq!(set.datacontenttype(), Some("application/octet-stream"));
    assert_eq!(set.data(), Some(&Data::Binary(vec![0xff, 0x00, b'7'])));
    assert_time_since(set, before);
    assert_eq!(virtual_time(set), published_at);

    assert_eq!(deleted.ty(), "dev.hotwasm.kv.delete");
    assert_eq!(deleted.subject(), Some("speed"));
    assert_eq!(deleted.datacontenttype(), None, "no data, no content type");
    assert_eq!(deleted.data(), None);
    assert!(virtual_time(deleted) > virtual_time(set));
    let id = |event: &Event| event.id().parse::<u64>().unwrap();
    assert_eq!(id(deleted), id(set) + 1, "ids count up");
}

#[test]
fn component_and_resource_changes_read_the_same_from_the_guest_and_from_the_game() {
    let store_dir = tempfile::tempdir().unwrap();
    let health = Some(("component", Health::type_path()));
    let (_assets, mut app, watcher) = watcher(store_dir.path(), health);
    let message = HostMessage::to_entity(watcher, "watcher/resource", Weather::type_path());
    app.world_mut().write_message(message);
    app.update();
    let before = SystemTime::now();
    let entity = app.world_mut().spawn(Health { hp: 5 }).id();
    run_frames(&mut app, 2);
    app.world_mut().get_mut::<Health>(entity).unwrap().hp = 4;
    run_frames(&mut app, 2);
    app.world_mut().entity_mut(entity).remove::<Health>();
    app.insert_resource(Weather { wind: 2.5 });
    run_frames(&mut app, 2);

    let watched = &app.world().resource::<Watched>().0;
    let game = same_for_guest(
        &app,
        watcher,
        watched.iter().map(WatchedChange::cloud_event),
    );
    let described: Vec<_> = game
        .iter()
        .map(|event| {
            let data = match event.data() {
                Some(Data::Json(json)) => Some(json.to_string()),
                None => None,
                Some(other) => panic!("ECS data is JSON, not {other:?}"),
            };
            let subject = event.subject().map(str::to_owned);
            (
                event.ty(),
                event.source(),
                subject,
                event.datacontenttype(),
                data,
            )
        })
        .collect();
    let component = &format!("/ecs/component/{}", Health::type_path());
    let resource = &format!("/ecs/resource/{}", Weather::type_path());
    let on = Some(entity.to_bits().to_string());
    let json = Some("application/json");
    assert_eq!(
        described,
        [
            (
                "dev.hotwasm.component.added",
                component,
                on.clone(),
                json,
                Some(r#"{"hp":5}"#.to_owned())
            ),
            (
                "dev.hotwasm.component.changed",
                component,
                on.clone(),
                json,
                Some(r#"{"hp":4}"#.to_owned())
            ),
            ("dev.hotwasm.component.removed", component, on, None, None),
            (
                "dev.hotwasm.resource.changed",
                resource,
                None,
                json,
                Some(r#"{"wind":2.5}"#.to_owned())
            ),
        ]
    );
    for event in &game {
        assert_time_since(event, before);
    }
}

#[test]
fn a_generic_types_source_is_a_uri_reference() {
    let type_path = Wrapper::<u32>::type_path();
    assert_eq!(type_path, "all::cloudevents::Wrapper<u32>");
    assert!(!is_absolute_path(&format!("/ecs/component/{type_path}")));
    let store_dir = tempfile::tempdir().unwrap();
    let (_assets, mut app, watcher) = watcher(store_dir.path(), Some(("component", type_path)));
    app.world_mut().spawn(Wrapper(7_u32));
    run_frames(&mut app, 2);
    let events = guest_events(&app, watcher);
    let sources: Vec<_> = events.iter().map(|event| event.source()).collect();
    assert_eq!(
        sources,
        ["/ecs/component/all::cloudevents::Wrapper%3Cu32%3E"]
    );
    assert_eq!(events[0].data(), Some(&Data::Json(7.into())));
}

#[test]
fn two_runs_on_one_store_never_give_one_source_the_same_id() {
    let store_dir = tempfile::tempdir().unwrap();
    let run = || {
        let (_assets, mut app, watcher) = watcher(store_dir.path(), None);
        for speed in [b"1", b"2"] {
            let mut store = app.world_mut().resource_mut::<KvStore>();
            store.set("tuning", "speed", speed).unwrap();
            run_frames(&mut app, 2);
        }
        let events = guest_events(&app, watcher);
        assert_eq!(events.len(), 2, "{events:?}");
        events
            .iter()
            .map(|event| (event.source().to_owned(), event.id().to_owned()))
            .collect::<Vec<_>>()
    };
    let (first, second) = (run(), run());
    for pair in &second {
        assert!(!first.contains(pair), "{pair:?} again in the second run");
    }
}
