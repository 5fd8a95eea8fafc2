//! Answers every `ping` with a `pong` carrying the same payload, and counts
//! messages on `count`, changes to the `bench` bucket and changes to the
//! component type named by a `count-component` message, without answering
//! (the benchmarks' sink). `report` logs the count.

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
        hotwasm_sdk::on_message("report", |me: &mut Echo, _: &Message| {
            info!("counted {}", me.counted);
        })
        .map_err(describe)?;
        Ok(())
    }
}

hotwasm_sdk::export_script!(Echo);
