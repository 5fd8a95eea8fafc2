//! Answers every `ping` with a `pong` carrying the same payload, and counts
//! messages on `count` (and one on `count-once`), changes to the `bench`
//! bucket (and one of the `once` bucket) and changes to the
//! component type named by a `count-component` message, without answering
//! (the benchmarks' sink). `report` logs the count. For the ECS benchmarks:
//! `read-component` (`<entity bits> <type path> <times>`) reads one component
//! that many times, `sum-field` (`<type path> <field>`) sums a field over
//! every entity with the component, `move-position` (`<entity bits>
//! <times>`) moves an entity's `Position` that many times with a typed
//! get and update, and `sum-positions` sums `Position::x` over every entity
//! with a typed query.
//!
//! It answers the game's requests: `echo/double` (a number, doubled),
//! `echo/pings` (the pings so far), `echo/generation` (its generation),
//! `echo/fail` (always its own error), `echo/bytes` (a string of that many
//! `x`), and `echo/count` (counts, like `count`). It reads the game's
//! `EnemyKilled` messages and writes one back 100 further east (not for
//! one already east of 100, so two echoes do not play catch forever).

use game_types::{EnemyKilled, Position};
use hotwasm_sdk::ecs::raw;
use hotwasm_sdk::{ComponentChanges, Cx, Entity, Error, Script, Watch, WatchId, info};

#[derive(Default)]
struct Echo {
    pings: u64,
    counted: u64,
    /// The watch of the `once` bucket, which stops at its first change.
    once: Option<WatchId>,
}

impl Script for Echo {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        cx.on_message("ping", |me, _, message| {
            me.pings += 1;
            let sender = match message.sender {
                Some(bits) => format!("entity {}", Entity::from_bits(bits)),
                None => "the host".to_owned(),
            };
            let text = String::from_utf8_lossy(message.payload);
            info!("ping {} from {sender}: {text}", me.pings);
            hotwasm_sdk::send("pong", message.payload)
        })?;
        cx.on_message("count", |me, _, _| {
            me.counted += 1;
            Ok(())
        })?;
        // Counts one message, then no more: later ones in the same batch
        // find no handler.
        cx.on_message("count-once", |me, cx, _| {
            me.counted += 1;
            cx.unsubscribe("count-once")
        })?;
        cx.watch(Watch::prefix("bench", ""), |me, _, _| {
            me.counted += 1;
            Ok(())
        })?;
        // Counts one change of the `once` bucket, then unwatches it: later
        // ones in the same batch reach no handler.
        self.once = Some(cx.watch(Watch::prefix("once", ""), |me, cx, _| {
            me.counted += 1;
            match me.once.take() {
                Some(id) => cx.unwatch(id),
                None => Ok(()),
            }
        })?);
        cx.on_message("count-component", |_, cx, message| {
            let type_path = String::from_utf8_lossy(message.payload);
            let changes = ComponentChanges::ADDED | ComponentChanges::CHANGED;
            cx.watch(Watch::component_path(&type_path, changes), |me, _, _| {
                me.counted += 1;
                Ok(())
            })?;
            Ok(())
        })?;
        cx.on_message("read-component", |me, _, message| {
            let text = String::from_utf8_lossy(message.payload);
            let words: Vec<&str> = text.split(' ').collect();
            let [entity, type_path, times] = words[..] else {
                return Err("read-component takes `<entity bits> <type path> <times>`".into());
            };
            let entity = entity.parse().unwrap_or(0);
            for _ in 0..times.parse().unwrap_or(0) {
                me.counted += raw::get_component(entity, type_path)?.len() as u64;
            }
            Ok(())
        })?;
        cx.on_message("move-position", |_, _, message| {
            let text = String::from_utf8_lossy(message.payload);
            let (entity, times) = text
                .split_once(' ')
                .ok_or("move-position takes `<entity bits> <times>`")?;
            let entity = Entity::from_bits(entity.parse().unwrap_or(0));
            for _ in 0..times.parse().unwrap_or(0) {
                entity.update(|position: &mut Position| position.x += 1.0)?;
            }
            Ok(())
        })?;
        cx.on_message("sum-field", |me, _, message| {
            let text = String::from_utf8_lossy(message.payload);
            let (type_path, field) = text.split_once(' ').ok_or("sum-field takes two words")?;
            let values = raw::query_field(type_path, field)?;
            me.counted += values.iter().map(|(_, value)| *value as u64).sum::<u64>();
            Ok(())
        })?;
        cx.on_message("sum-positions", |me, _, _| {
            for row in hotwasm_sdk::ecs::query::<(Position,)>() {
                let (_, (position,)) = row?;
                me.counted += position.x as u64;
            }
            Ok(())
        })?;
        cx.on_request("echo/double", |_, _, n: u64| Ok(n * 2))?;
        cx.on_request("echo/pings", |me, _, (): ()| Ok(me.pings))?;
        cx.on_request("echo/generation", |_, _, (): ()| {
            Ok(hotwasm_sdk::generation())
        })?;
        cx.on_request("echo/fail", |_, _, (): ()| -> Result<(), Error> {
            Err("no, on purpose".into())
        })?;
        cx.on_request("echo/bytes", |_, _, n: usize| Ok("x".repeat(n)))?;
        cx.on_request("echo/count", |me, _, (): ()| {
            me.counted += 1;
            Ok(me.counted)
        })?;
        cx.on_game_message(|_, _, killed: EnemyKilled| {
            if killed.at.x >= 100.0 {
                return Ok(());
            }
            let at = Position {
                x: killed.at.x + 100.0,
                ..killed.at
            };
            hotwasm_sdk::game::write(&EnemyKilled { at })
        })?;
        cx.on_message("report", |me, _, _| {
            info!("counted {}", me.counted);
            Ok(())
        })
    }
}

hotwasm_sdk::export_script!(Echo);
