//! The guest SDK's view of the game's types agrees with the game's: the
//! type paths guests name, the JSON `bevy_reflect` writes and guests' serde
//! reads (the shared `game-types` crate, compiled for both), and how an
//! entity prints.

use bevy::prelude::*;
use bevy::reflect::serde::TypedReflectSerializer;
use bevy::reflect::{GetTypeRegistration, TypePath, TypeRegistry};
use game_types::{
    Boost, Health, PlayerPosition, Position, Powerup, Spawner, Speed, Target, Team, Velocity,
};
use serde::de::DeserializeOwned;

/// The JSON the game writes for `value`, read back as the guest reads it.
fn through_the_boundary<T>(value: &T) -> T
where
    T: Reflect + GetTypeRegistration + DeserializeOwned,
{
    let mut registry = TypeRegistry::default();
    registry.register::<T>();
    registry.register::<Position>();
    registry.register::<Team>();
    let json = serde_json::to_string(&TypedReflectSerializer::new(value, &registry)).unwrap();
    serde_json::from_str(&json).unwrap_or_else(|error| panic!("{json}: {error}"))
}

#[test]
fn guests_name_the_games_types_by_their_type_paths() {
    fn same<T: TypePath + hotwasm_sdk::Component>() {
        assert_eq!(<T as hotwasm_sdk::Component>::TYPE_PATH, T::type_path());
    }
    same::<Position>();
    same::<Target>();
    same::<Speed>();
    same::<Health>();
    same::<Team>();
    same::<Spawner>();
    same::<Velocity>();
    same::<Powerup>();
    fn same_resource<T: TypePath + hotwasm_sdk::Resource>() {
        assert_eq!(<T as hotwasm_sdk::Resource>::TYPE_PATH, T::type_path());
    }
    same_resource::<PlayerPosition>();
    same_resource::<Boost>();
}

#[test]
fn the_json_the_game_writes_is_the_json_guests_read() {
    let position = Position { x: 1.5, y: -2.0 };
    assert_eq!(through_the_boundary(&position), position);
    assert_eq!(through_the_boundary(&Speed(3.25)), Speed(3.25));
    let velocity = Velocity { x: -0.5, y: 8.0 };
    assert_eq!(through_the_boundary(&velocity), velocity);
    assert_eq!(
        through_the_boundary(&Powerup::RapidFire),
        Powerup::RapidFire
    );
    let player = PlayerPosition { x: 3.0, y: 4.5 };
    assert_eq!(through_the_boundary(&player), player);
    let boost = Boost {
        fire_rate: 3.0,
        secs_left: 0.25,
    };
    assert_eq!(through_the_boundary(&boost), boost);
    for health in [
        Health {
            hp: 7,
            shield: None,
        },
        Health {
            hp: 7,
            shield: Some(2),
        },
    ] {
        assert_eq!(through_the_boundary(&health), health);
    }
    for team in [
        Team::Player,
        Team::Enemy { wave: 4 },
        Team::Neutral("traders".into()),
    ] {
        assert_eq!(through_the_boundary(&team), team);
    }
    let spawner = Spawner {
        at: position,
        team: Team::Enemy { wave: 2 },
        every_secs: 0.5,
        tags: vec!["north".into(), "fast".into()],
    };
    assert_eq!(through_the_boundary(&spawner), spawner);
}

#[test]
fn entities_print_the_way_bevy_prints_them() {
    let mut world = World::new();
    let mut entities = vec![Entity::PLACEHOLDER];
    for _ in 0..3 {
        let first = world.spawn_empty().id();
        entities.push(first);
        entities.push(world.spawn_empty().id());
        // A reused index gets the next generation.
        world.despawn(first);
    }
    for entity in entities {
        let guest = hotwasm_sdk::Entity::from_bits(entity.to_bits());
        assert_eq!(guest.to_string(), entity.to_string());
        assert_eq!(guest.index(), entity.index_u32());
        assert_eq!(guest.generation(), entity.generation().to_bits());
    }
}
