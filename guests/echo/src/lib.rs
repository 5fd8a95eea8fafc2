//! Answers every `ping` with a `pong` carrying the same payload, and counts
//! messages on `count`, changes to the `bench` bucket and changes to the
//! component type named by a `count-component` message, without answering
//! (the benchmarks' sink). `report` logs the count. For the ECS benchmarks:
//! `read-component` (`<entity bits> <type path> <times>`) reads one component
//! that many times, `sum-field` (`<type path> <field>`) sums a field over
//! every entity with the component.

use hotwasm_sdk::{Message, Script, info};

#[derive(Default)]
struct Echo {
    pings: u64,
    counted: u64,
}

fn describe(error: impl std::fmt::Debug) -> String {
    format!("{error:?}")
}

impl Script for Echo {
    fn init(&mut self) -> Result<(), String> {
        hotwasm_sdk::on_message("ping", |me: &mut Echo, message: &Message| {
            me.pings += 1;
            let sender = match message.sender {
                Some(entity) => format!("entity {entity}"),
                None => "the host".to_owned(),
            };
            let text = String::from_utf8_lossy(&message.payload);
            info!("ping {} from {sender}: {text}", me.pings);
            if let Err(error) = hotwasm_sdk::send("pong", &message.payload) {
                info!("pong refused: {error:?}");
            }
        })
        .map_err(describe)?;
        hotwasm_sdk::on_message("count", |me: &mut Echo, _: &Message| me.counted += 1)
            .map_err(describe)?;
        hotwasm_sdk::watch_prefix("bench", "", |me: &mut Echo, _: &hotwasm_sdk::Event| {
            me.counted += 1
        })
        .map_err(describe)?;
        hotwasm_sdk::on_message("count-component", |_: &mut Echo, message: &Message| {
            let type_path = String::from_utf8_lossy(&message.payload);
            let changes =
                hotwasm_sdk::ComponentChanges::ADDED | hotwasm_sdk::ComponentChanges::CHANGED;
            let watched = hotwasm_sdk::watch_component(
                &type_path,
                changes,
                |me: &mut Echo, _: &hotwasm_sdk::Event| me.counted += 1,
            );
            if let Err(error) = watched {
                info!("refused: {error:?}");
            }
        })
        .map_err(describe)?;
        hotwasm_sdk::on_message("read-component", |me: &mut Echo, message: &Message| {
            let text = String::from_utf8_lossy(&message.payload);
            let mut words = text.split(' ');
            let (Some(entity), Some(type_path), Some(times)) =
                (words.next(), words.next(), words.next())
            else {
                return;
            };
            let entity = entity.parse().unwrap_or(0);
            for _ in 0..times.parse().unwrap_or(0) {
                if let Ok(json) = hotwasm_sdk::ecs::get_component(entity, type_path) {
                    me.counted += json.len() as u64;
                }
            }
        })
        .map_err(describe)?;
        hotwasm_sdk::on_message("sum-field", |me: &mut Echo, message: &Message| {
            let text = String::from_utf8_lossy(&message.payload);
            if let Some((type_path, field)) = text.split_once(' ')
                && let Ok(values) = hotwasm_sdk::ecs::query_field(type_path, field)
            {
                me.counted += values.iter().map(|(_, value)| *value as u64).sum::<u64>();
            }
        })
        .map_err(describe)?;
        hotwasm_sdk::on_message("report", |me: &mut Echo, _: &Message| {
            info!("counted {}", me.counted);
        })
        .map_err(describe)?;
        Ok(())
    }
}

hotwasm_sdk::export_script!(Echo);
