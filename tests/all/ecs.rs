//! Guests reading and writing the game's ECS by type path, through the
//! `inspector` guest, which logs what each request returned.

use bevy::prelude::*;
use bevy_hotwasm::prelude::*;
use hotwasm_test_support::*;

/// Changed healths, as a game system sees them.
#[derive(Resource, Default)]
struct SeenChanges(Vec<u32>);

fn see_changes(changed: Query<&Health, Changed<Health>>, mut seen: ResMut<SeenChanges>) {
    seen.0.extend(changed.iter().map(|health| health.hp));
}

fn inspector() -> (AssetDir, App, Entity) {
    let (assets, mut app, entities) =
        start_scripts("inspector.wasm", &guest_bytes("inspector"), 1, None);
    app.register_type::<Health>()
        .register_type::<Weather>()
        .init_resource::<SeenChanges>()
        .add_systems(Update, see_changes.after(WasmSystems::Run));
    (assets, app, entities[0])
}

/// Sends `payload` on `topic` to the inspector and returns what it logged.
fn ask(app: &mut App, inspector: Entity, topic: &str, payload: String) -> String {
    app.world_mut()
        .write_message(HostMessage::to_entity(inspector, topic, payload));
    app.update();
    seen(app).lines_of(inspector).last().unwrap().to_string()
}

#[test]
fn a_guest_reads_and_writes_components_and_resources_as_json() {
    let (_assets, mut app, inspector) = inspector();
    let entity = app.world_mut().spawn(Health { hp: 3 }).id();
    app.insert_resource(Weather { wind: 2.5 });
    let health = Health::type_path();
    app.update();
    app.world_mut().resource_mut::<SeenChanges>().0.clear();

    assert_eq!(
        ask(
            &mut app,
            inspector,
            "inspect/get",
            format!("{} {health}", entity.to_bits())
        ),
        r#"get {"hp":3}"#
    );
    let set = format!(r#"{} {health} {{"hp":7}}"#, entity.to_bits());
    assert_eq!(ask(&mut app, inspector, "inspect/set", set), "set ok");
    assert_eq!(app.world().get::<Health>(entity), Some(&Health { hp: 7 }));
    assert_eq!(
        app.world().resource::<SeenChanges>().0,
        [7],
        "systems see the write as a change"
    );
    assert_eq!(
        ask(
            &mut app,
            inspector,
            "inspect/resource",
            Weather::type_path().to_string()
        ),
        r#"resource {"wind":2.5}"#
    );
    assert_eq!(
        ask(
            &mut app,
            inspector,
            "inspect/despawn",
            entity.to_bits().to_string()
        ),
        "despawned"
    );
    assert!(app.world().get_entity(entity).is_err());
}

#[test]
fn a_guest_sums_a_field_over_every_entity_in_one_call() {
    let (_assets, mut app, inspector) = inspector();
    app.world_mut()
        .spawn_batch((1..=100).map(|hp| Health { hp }));
    app.world_mut().spawn(Weather::default());

    let sum = ask(
        &mut app,
        inspector,
        "inspect/sum",
        format!("{} hp", Health::type_path()),
    );

    assert_eq!(sum, "sum 5050 over 100");
}

#[test]
fn bad_requests_are_errors_for_the_guest() {
    let (_assets, mut app, inspector) = inspector();
    let entity = app.world_mut().spawn(Health { hp: 3 }).id();
    let health = Health::type_path();
    let bits = entity.to_bits();
    let cases = [
        (
            "inspect/get",
            format!("{bits} nope::Missing"),
            "UnknownType",
        ),
        (
            "inspect/get",
            format!("{bits} {}", Weather::type_path()),
            "not a component",
        ),
        ("inspect/get", format!("12345678 {health}"), "NoSuchEntity"),
        (
            "inspect/set",
            format!(r#"{bits} {health} {{"hp":"many"}}"#),
            "InvalidJson",
        ),
        ("inspect/sum", format!("{health} mana"), "InvalidField"),
        ("inspect/resource", Weather::type_path().to_string(), "no"),
    ];
    for (topic, payload, error) in cases {
        let answer = ask(&mut app, inspector, topic, payload.clone());
        assert!(
            answer.contains("failed") && answer.contains(error),
            "{topic} {payload}: {answer}"
        );
    }
    assert_eq!(
        generation(&app, inspector),
        Some(1),
        "errors are results, not traps"
    );
}

#[test]
fn a_guest_spawns_entities_and_sets_resources() {
    let (_assets, mut app, inspector) = inspector();
    let health = Health::type_path();
    let weather = Weather::type_path();

    let spawned = ask(
        &mut app,
        inspector,
        "inspect/spawn",
        format!("{health} {{\"hp\":9}}"),
    );
    let bits: u64 = spawned.strip_prefix("spawned ").unwrap().parse().unwrap();
    let entity = Entity::from_bits(bits);
    assert_eq!(app.world().get::<Health>(entity), Some(&Health { hp: 9 }));

    // One refused component and nothing is spawned.
    let before = app.world().entities().count_spawned();
    let refused = ask(
        &mut app,
        inspector,
        "inspect/spawn",
        format!("{health} {{\"hp\":1}}\n{health} {{\"hp\":\"lots\"}}"),
    );
    assert!(refused.contains("InvalidJson"), "{refused}");
    assert_eq!(app.world().entities().count_spawned(), before);

    // Inserted when missing, replaced when present; systems see both.
    for wind in ["1.5", "4"] {
        let set = format!("{weather} {{\"wind\":{wind}}}");
        assert_eq!(
            ask(&mut app, inspector, "inspect/set-resource", set),
            "set-resource ok"
        );
        assert_eq!(
            app.world().resource::<Weather>().wind,
            wind.parse::<f32>().unwrap()
        );
    }
    let not_a_resource = ask(
        &mut app,
        inspector,
        "inspect/set-resource",
        format!("{health} {{\"hp\":1}}"),
    );
    assert!(
        not_a_resource.contains("not a resource"),
        "{not_a_resource}"
    );
}

#[test]
fn a_guest_queries_thousands_of_entities_in_pages() {
    let (_assets, mut app, inspector) = inspector();
    app.register_type::<Name>();
    app.world_mut()
        .spawn_batch((1..=2500).map(|hp| Health { hp }));
    for hp in [7000, 8000, 9000] {
        app.world_mut().spawn((Health { hp }, Name::new("boss")));
    }
    app.world_mut().spawn(Name::new("no health"));
    let health = Health::type_path();

    assert_eq!(
        ask(&mut app, inspector, "inspect/query", health.to_string()),
        r#"query 2503 rows in 3 pages, first Some("{\"hp\":1}")"#
    );
    assert_eq!(
        ask(
            &mut app,
            inspector,
            "inspect/query",
            format!("{health} {}", Name::type_path())
        ),
        r#"query 3 rows in 1 pages, first Some("{\"hp\":7000}")"#
    );
    let unknown = ask(
        &mut app,
        inspector,
        "inspect/query",
        format!("{health} nope::Missing"),
    );
    assert!(unknown.contains("UnknownType"), "{unknown}");
}

/// A second component for the filters, unknown to the guest but by path.
#[derive(Component, Reflect, Default)]
#[reflect(Component)]
struct Tag;

/// The entities a filtered query logged, as a set of their bits.
fn filtered(app: &mut App, inspector: Entity, filter: String) -> Vec<u64> {
    let line = ask(app, inspector, "inspect/filter", filter);
    let (_, entities) = line.split_once(" rows: ").expect(&line);
    let mut bits: Vec<u64> = entities.split(' ').filter_map(|b| b.parse().ok()).collect();
    bits.sort();
    bits
}

#[test]
fn queries_filter_with_without_added_and_changed_like_bevys() {
    let (_assets, mut app, inspector) = inspector();
    app.register_type::<Tag>();
    let (health, tag) = (Health::type_path(), Tag::type_path());
    let plain = app.world_mut().spawn(Health { hp: 1 }).id();
    let tagged = app.world_mut().spawn((Health { hp: 2 }, Tag)).id();
    let both = {
        let mut both = vec![plain.to_bits(), tagged.to_bits()];
        both.sort();
        both
    };

    // Both were added after the guest's previous call ended; not since.
    assert_eq!(
        filtered(&mut app, inspector, format!("{health} added:{health}")),
        both
    );
    assert_eq!(
        filtered(&mut app, inspector, format!("{health} added:{health}")),
        [0u64; 0]
    );
    assert_eq!(
        filtered(&mut app, inspector, format!("{health} without:{tag}")),
        [plain.to_bits()]
    );
    assert_eq!(
        filtered(&mut app, inspector, format!("{health} with:{tag}")),
        [tagged.to_bits()]
    );
    app.world_mut().get_mut::<Health>(plain).unwrap().hp = 10;
    assert_eq!(
        filtered(&mut app, inspector, format!("{health} changed:{health}")),
        [plain.to_bits()]
    );
    assert_eq!(
        filtered(&mut app, inspector, format!("{health} changed:{health}")),
        [0u64; 0]
    );
}

#[test]
fn a_guest_removes_components_and_spawns_children_that_go_with_their_parent() {
    let (_assets, mut app, inspector) = inspector();
    let health = Health::type_path();
    let parent = app.world_mut().spawn(Health { hp: 1 }).id();

    let removed = ask(
        &mut app,
        inspector,
        "inspect/remove",
        format!("{} {health}", parent.to_bits()),
    );
    assert_eq!(removed, "remove done");
    assert_eq!(app.world().get::<Health>(parent), None);
    let again = ask(
        &mut app,
        inspector,
        "inspect/remove",
        format!("{} {health}", parent.to_bits()),
    );
    assert_eq!(
        again, "remove done",
        "removing what is not there is no error"
    );
    let gone = ask(
        &mut app,
        inspector,
        "inspect/remove",
        format!("{} {health}", u64::MAX),
    );
    assert!(gone.contains("NoSuchEntity"), "{gone}");

    let spawned = ask(
        &mut app,
        inspector,
        "inspect/spawn-child",
        format!("{}\n{health} {{\"hp\":5}}", parent.to_bits()),
    );
    let child = Entity::from_bits(
        spawned
            .strip_prefix("spawn-child ")
            .unwrap()
            .parse()
            .unwrap(),
    );
    assert_eq!(
        app.world().get::<ChildOf>(child).map(ChildOf::parent),
        Some(parent)
    );
    assert_eq!(app.world().get::<Health>(child), Some(&Health { hp: 5 }));

    let despawned = ask(
        &mut app,
        inspector,
        "inspect/despawn",
        parent.to_bits().to_string(),
    );
    assert_eq!(despawned, "despawned");
    assert!(
        app.world().get_entity(child).is_err(),
        "the child went with its parent"
    );
}

/// A change another script makes later in the same frame, after the
/// inspector's call, is one the inspector's next `changed` query sees.
#[test]
fn a_change_made_after_a_call_in_the_same_frame_is_seen_by_the_next() {
    let assets = AssetDir::new();
    assets.write("inspector.wasm", &guest_bytes("inspector"));
    assets.write("echo.wasm", &guest_bytes("echo"));
    let mut app = app(&assets, None);
    app.register_type::<game_types::Position>();
    // Spawned first, so it runs first in a frame.
    let inspector = spawn_script(&mut app, "inspector.wasm");
    let echo = spawn_script(&mut app, "echo.wasm");
    update_until(&mut app, "both to start", |app| {
        generation(app, inspector).is_some() && generation(app, echo).is_some()
    });
    let target = app.world_mut().spawn(game_types::Position::default()).id();
    let position = <game_types::Position as TypePath>::type_path();
    let changed = format!("{position} changed:{position}");
    filtered(&mut app, inspector, changed.clone());

    // In one frame: the inspector looks (nothing new), then echo moves it.
    app.world_mut().write_message(HostMessage::to_entity(
        inspector,
        "inspect/filter",
        changed.clone(),
    ));
    app.world_mut().write_message(HostMessage::to_entity(
        echo,
        "move-position",
        format!("{} 1", target.to_bits()),
    ));
    app.update();
    assert_eq!(
        app.world().get::<game_types::Position>(target).unwrap().x,
        1.0
    );
    assert_eq!(filtered(&mut app, inspector, changed), [target.to_bits()]);
}
