//! The `ecs` imports as a guest calls them, on a host state with a world
//! lent to it: protected entities, the reach of `despawn`, prefetched
//! components, and types that cannot be built from JSON.

use super::prefetch::ABSENT;
use super::*;
use crate::capabilities::{Capabilities, Grant};
use crate::host::fixture::{HEALTH, Health, host, host_granted};
use crate::kv::KvStore;

/// A component `ReflectComponent::insert` cannot build: no `FromReflect`,
/// no `Default`, no `FromWorld`.
#[derive(Component, Reflect)]
#[reflect(Component, from_reflect = false)]
struct Opaque {
    level: u32,
}

const OPAQUE: &str = "bevy_hotwasm::host::ecs::tests::Opaque";

/// A component with its own serde, as a type shared with guests has:
/// prefetched copies of it skip the registry.
#[derive(Component, Reflect, Default, serde::Serialize, serde::Deserialize)]
#[reflect(Component, Serialize, Deserialize)]
struct Served {
    speed: f32,
}

const SERVED: &str = "bevy_hotwasm::host::ecs::tests::Served";

fn world(host: &mut HostState) -> &mut World {
    host.world.as_deref_mut().expect("lent")
}

/// What the `ecs` imports see of `host`, as in a guest's call.
fn ecs(host: &mut HostState) -> EcsView<'_> {
    EcsView::of(host)
}

#[test]
fn resource_entities_cannot_be_despawned_or_changed() {
    let mut host = host();
    let holder = resource_entity(world(&mut host), std::any::TypeId::of::<KvStore>())
        .expect("the store is a resource");
    let bits = holder.to_bits();
    let refused = Host::despawn(&mut ecs(&mut host), bits).unwrap_err();
    assert!(
        matches!(&refused, Error::Protected(message) if message.contains("holds a resource")),
        "{refused:?}"
    );
    let health = r#"{"hp":1,"name":"x"}"#.as_bytes().to_vec();
    let type_path = HEALTH.to_owned();
    assert!(matches!(
        Host::set_component(&mut ecs(&mut host), bits, type_path, health),
        Err(Error::Protected(_))
    ));
    // A parent whose child holds a resource is protected as a whole.
    let parent = world(&mut host).spawn_empty().id();
    world(&mut host).entity_mut(holder).insert(ChildOf(parent));
    assert!(matches!(
        Host::despawn(&mut ecs(&mut host), parent.to_bits()),
        Err(Error::Protected(message)) if message.contains("descendant")
    ));
    assert!(world(&mut host).contains_resource::<KvStore>());
    assert!(world(&mut host).get_entity(parent).is_ok());
}

#[test]
fn despawn_reaches_only_what_the_grant_names() {
    let granted = |manifest: &str| {
        let capabilities = Capabilities::parse(manifest).expect("a manifest");
        host_granted(Grant::as_requested(capabilities))
    };
    let stranger = |host: &mut HostState| world(host).spawn_empty().id();
    let marked = |host: &mut HostState| world(host).spawn(Health::default()).id();
    // Whether it was despawned; a refusal must leave it in the world.
    let despawn = |host: &mut HostState, entity: Entity| {
        let result = Host::despawn(&mut ecs(host), entity.to_bits());
        let gone = world(host).get_entity(entity).is_err();
        assert_eq!(gone, result.is_ok(), "{result:?}");
        result
    };

    let mut host = granted("despawn marked:bevy_hotwasm::host::fixture::*");
    let target = marked(&mut host);
    assert!(despawn(&mut host, target).is_ok());
    let target = stranger(&mut host);
    let refused = despawn(&mut host, target);
    assert!(
        matches!(&refused, Err(Error::Denied(message)) if *message == format!("denied: despawn {target}")),
        "{refused:?}"
    );
    let own = host.identity.entity;
    assert!(
        despawn(&mut host, own).is_err(),
        "not its own without `own`"
    );
    assert_eq!(host.access.take_denied().0, 2);

    let mut host = granted("despawn own spawned\nspawn *");
    let target = marked(&mut host);
    assert!(
        despawn(&mut host, target).is_err(),
        "not marked: not granted"
    );
    let spawned = Entity::from_bits(Host::spawn(&mut ecs(&mut host), Vec::new()).unwrap());
    assert!(despawn(&mut host, spawned).is_ok());
    let own = host.identity.entity;
    assert!(despawn(&mut host, own).is_ok());

    let mut host = granted("despawn *");
    let target = stranger(&mut host);
    assert!(despawn(&mut host, target).is_ok());
    let mut host = granted("spawn *");
    let spawned = Entity::from_bits(Host::spawn(&mut ecs(&mut host), Vec::new()).unwrap());
    assert!(
        despawn(&mut host, spawned).is_err(),
        "spawning is not despawning"
    );
}

/// The frame's `components` split into each component's JSON, `None`
/// for one the entity does not have.
fn unframe(mut framed: &[u8]) -> Vec<Option<String>> {
    let mut copies = Vec::new();
    while let Some((length, rest)) = framed.split_first_chunk::<4>() {
        let length = u32::from_le_bytes(*length);
        if length == ABSENT {
            copies.push(None);
            framed = rest;
        } else {
            let (json, rest) = rest.split_at(length as usize);
            copies.push(Some(String::from_utf8(json.to_vec()).unwrap()));
            framed = rest;
        }
    }
    copies
}

#[test]
fn prefetched_components_come_framed_and_changes_are_written_back() {
    let mut host = host();
    host.registry.write().register::<Opaque>();
    host.registry.write().register::<Served>();
    let health = HEALTH.to_owned();
    assert_eq!(host.read_prefetched(), None, "nothing asked for");
    let unknown = Host::prefetch(
        &mut ecs(&mut host),
        vec![health.clone(), "no::Such".to_owned()],
    );
    assert!(matches!(unknown, Err(Error::UnknownType(path)) if path == "no::Such"));
    let too_many = Host::prefetch(
        &mut ecs(&mut host),
        vec![health.clone(); MAX_PREFETCHED + 1],
    );
    assert!(matches!(too_many, Err(Error::CallLimit(_))), "{too_many:?}");
    assert_eq!(host.read_prefetched(), None, "refused asks change nothing");

    let own = host.identity.entity;
    world(&mut host)
        .entity_mut(own)
        .insert((Opaque { level: 2 }, Served { speed: 1.5 }));
    let asked = vec![health.clone(), OPAQUE.to_owned(), SERVED.to_owned()];
    Host::prefetch(&mut ecs(&mut host), asked).unwrap();
    let copies = unframe(&host.read_prefetched().expect("asked for three"));
    assert_eq!(
        copies,
        [
            None,
            Some(r#"{"level":2}"#.to_owned()),
            Some(r#"{"speed":1.5}"#.to_owned())
        ]
    );

    let refused = host.write_prefetched(vec![
        (1, br#"{"level":5}"#.to_vec()),
        (0, br#"{"hp":9,"name":"new"}"#.to_vec()),
        (2, br#"{"speed":4.0}"#.to_vec()),
        (0, b"not json".to_vec()),
        (2, br#"{"speed":"fast"}"#.to_vec()),
        (7, b"{}".to_vec()),
    ]);
    assert_eq!(world(&mut host).get::<Opaque>(own).unwrap().level, 5);
    assert_eq!(world(&mut host).get::<Served>(own).unwrap().speed, 4.0);
    let inserted = world(&mut host).get::<Health>(own);
    assert_eq!(
        inserted.map(|health| health.hp),
        Some(9),
        "absent: inserted"
    );
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        refused[0].starts_with(&health),
        "names the type: {}",
        refused[0]
    );
    assert!(refused[1].starts_with(SERVED), "{}", refused[1]);
    assert!(refused[2].contains("7 of 3"), "{}", refused[2]);

    world(&mut host).entity_mut(own).remove::<Served>();
    let copies = unframe(&host.read_prefetched().expect("still asked for"));
    assert_eq!(copies[2], None, "removed since: absent");
    let refused = host.write_prefetched(vec![(2, br#"{"speed":2.0}"#.to_vec())]);
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(
        world(&mut host)
            .get::<Served>(own)
            .map(|served| served.speed),
        Some(2.0),
        "absent with its own serde: inserted"
    );
}

#[test]
fn a_type_that_cannot_be_built_from_json_is_refused_not_inserted() {
    let mut host = host();
    host.registry.write().register::<Opaque>();
    let entity = world(&mut host).spawn_empty().id();
    let json = br#"{"level":3}"#.to_vec();
    let refused = Host::set_component(
        &mut ecs(&mut host),
        entity.to_bits(),
        OPAQUE.to_owned(),
        json.clone(),
    )
    .unwrap_err();
    assert!(
        matches!(&refused, Error::UnsupportedType(message) if message.contains("FromReflect")),
        "{refused:?}"
    );
    let entities = world(&mut host).entities().len();
    assert!(matches!(
        Host::spawn(&mut ecs(&mut host), vec![(OPAQUE.to_owned(), json)]),
        Err(Error::UnsupportedType(_))
    ));
    assert_eq!(
        world(&mut host).entities().len(),
        entities,
        "spawned nothing"
    );
    assert!(world(&mut host).get::<Opaque>(entity).is_none());
}
