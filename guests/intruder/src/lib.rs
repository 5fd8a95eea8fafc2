//! Tries everything a narrow grant forbids, for the capability tests, and
//! logs each attempt as `<attempt>: ok` or `<attempt>: <error>`.
//!
//! Built as is, it asks for little: its own `Position`, the `tuning`
//! bucket, topics under `intruder/`, two tasks. Built with `--features
//! granted` (`intruder_granted.wasm`) it asks for all it tries. The game
//! puts the bits of an entity the intruder did not spawn in
//! `tuning/victim`, for it to try to despawn.

use std::time::Duration;

use game_types::{Boost, EnemyKilled, Health, Position};
use hotwasm_sdk::{ComponentChanges, Cx, Entity, Error, Script, Watch, ecs, info, me};

#[cfg(not(feature = "granted"))]
hotwasm_sdk::capabilities!(
    "
    # What the intruder may do: everything else it tries is denied.
    component.read  game_types::Position
    component.write game_types::Position
    kv.read         tuning
    kv.write        intruder
    messages.send   intruder/*
    messages.subscribe intruder/*
    tasks 2
    "
);

#[cfg(feature = "granted")]
hotwasm_sdk::capabilities!(
    "
    component.read  game_types::*
    component.write game_types::*
    component.watch game_types::Health
    resource.read   game_types::Boost
    resource.write  game_types::Boost
    resource.watch  game_types::Boost
    spawn           game_types::Health
    despawn         *
    kv.read         tuning
    kv.write        intruder saves
    messages.send   *
    messages.subscribe *
    requests.answer game/gold
    game-message.write game_types::EnemyKilled
    tasks 3
    frame
    "
);

#[derive(Default)]
struct Intruder;

/// Logs how an attempt went.
fn attempt<T>(what: &str, result: Result<T, Error>) {
    match result {
        Ok(_) => info!("{what}: ok"),
        Err(error) => info!("{what}: {error}"),
    }
}

/// The entity the game named in `tuning/victim`.
fn victim() -> Result<Entity, Error> {
    let bucket = hotwasm_sdk::kv::store::open("tuning")?;
    let text = bucket.get("victim")?.ok_or("no tuning/victim")?;
    let bits = String::from_utf8_lossy(&text)
        .trim()
        .parse()
        .map_err(|_| "bad victim")?;
    Ok(Entity::from_bits(bits))
}

fn kv_set(bucket: &str, key: &str, value: &[u8]) -> Result<(), Error> {
    Ok(hotwasm_sdk::kv::store::open(bucket)?.set(key, value)?)
}

impl Script for Intruder {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        // Within the narrow grant.
        attempt("read own Position", me().get::<Position>());
        attempt(
            "write own Position",
            me().update::<Position, _>(|p| p.x += 1.0),
        );
        attempt("write intruder/note", kv_set("intruder", "note", b"hi"));
        attempt(
            "send intruder/hello",
            hotwasm_sdk::send("intruder/hello", b""),
        );
        // Beyond it.
        attempt("read own Health", me().get::<Health>());
        attempt("remove own Health", me().remove::<Health>());
        attempt(
            "write own Health",
            me().set(&Health {
                hp: 1,
                shield: None,
            }),
        );
        attempt(
            "watch Health",
            cx.watch(
                Watch::component::<Health>(ComponentChanges::CHANGED),
                |_, _, _| Ok(()),
            ),
        );
        attempt("read Boost", ecs::resource::<Boost>());
        attempt(
            "write Boost",
            ecs::set_resource(&Boost {
                fire_rate: 99.0,
                secs_left: 99.0,
            }),
        );
        attempt(
            "watch Boost",
            cx.watch(Watch::resource::<Boost>(), |_, _, _| Ok(())),
        );
        attempt(
            "spawn Health",
            ecs::spawn((Health {
                hp: 5,
                shield: None,
            },)),
        );
        attempt("despawn victim", victim().and_then(Entity::despawn));
        attempt("write saves/gold", kv_set("saves", "gold", b"1000000"));
        attempt("send game/gold", hotwasm_sdk::send("game/gold", b"1000000"));
        attempt(
            "subscribe game/gold",
            cx.on_message("game/gold", |_, _, _| Ok(())),
        );
        attempt(
            "answer game/gold",
            cx.on_request("game/gold", |_, _, (): ()| Ok(1_000_000u64)),
        );
        attempt(
            "write EnemyKilled",
            hotwasm_sdk::game::write(&EnemyKilled::default()),
        );
        for task in 1..=3 {
            attempt(
                &format!("task {task}"),
                cx.after(Duration::from_secs(3600), |_, _| Ok(())),
            );
        }
        attempt("every frame", cx.every_frame(true));
        Ok(())
    }
}

hotwasm_sdk::export_script!(Intruder);
