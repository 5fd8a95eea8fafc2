//! Watches key-value data and logs every change it sees: `tuning/speed`
//! (a designer's live-tuned value) and every `scores` key under `player/`.
//! The message `watcher/unwatch` stops the scores watch; `watcher/component`
//! and `watcher/resource` watch the type whose path is the payload;
//! `watcher/set-score` writes the payload as its own score `player/watcher`,
//! which a second watch reports only when someone else writes it. Watches
//! belong to a generation, so `init` makes them again after a hot reload.

use hotwasm_sdk::{ComponentChanges, Event, Message, Script, WatchId, info};

#[derive(Default)]
struct Watcher {
    scores: Option<WatchId>,
}

fn value(event: &Event) -> String {
    String::from_utf8_lossy(event.data).into_owned()
}

impl Script for Watcher {
    fn init(&mut self) -> Result<(), String> {
        hotwasm_sdk::watch_key("tuning", "speed", |_: &mut Watcher, event: &Event| {
            info!(
                "{} {} {} = {:?} (id {}, gen {})",
                event.event_type(),
                event.source,
                event.subject,
                value(event),
                event.id,
                hotwasm_sdk::generation()
            );
        })
        .map_err(|e| format!("{e:?}"))?;
        let scores =
            hotwasm_sdk::watch_prefix("scores", "player/", |_: &mut Watcher, event: &Event| {
                info!("score {} = {:?}", event.subject, value(event));
            });
        self.scores = Some(scores.map_err(|e| format!("{e:?}"))?);
        hotwasm_sdk::watch_key_except_own(
            "scores",
            "player/watcher",
            |_: &mut Watcher, event: &Event| {
                info!("someone else set my score to {:?}", value(event));
            },
        )
        .map_err(|e| format!("{e:?}"))?;
        hotwasm_sdk::on_message("watcher/set-score", |_: &mut Watcher, message: &Message| {
            let written = hotwasm_sdk::kv::store::open("scores")
                .and_then(|scores| scores.set("player/watcher", &message.payload));
            if let Err(error) = written {
                info!("could not set my score: {error:?}");
            }
        })
        .map_err(|e| format!("{e:?}"))?;
        hotwasm_sdk::on_message("watcher/unwatch", |me: &mut Watcher, _| {
            if let Some(scores) = me.scores.take() {
                let _ = hotwasm_sdk::unwatch(scores);
                info!("stopped watching scores");
            }
        })
        .map_err(|e| format!("{e:?}"))?;
        hotwasm_sdk::on_message("watcher/component", |_: &mut Watcher, message: &Message| {
            let type_path = String::from_utf8_lossy(&message.payload);
            let watched = hotwasm_sdk::watch_component(
                &type_path,
                ComponentChanges::ADDED | ComponentChanges::CHANGED | ComponentChanges::REMOVED,
                |_: &mut Watcher, event: &Event| {
                    info!(
                        "{} {} {} {}",
                        event.event_type(),
                        event.source,
                        event.subject,
                        value(event)
                    );
                },
            );
            if let Err(error) = watched {
                info!("refused: {error:?}");
            }
        })
        .map_err(|e| format!("{e:?}"))?;
        hotwasm_sdk::on_message("watcher/resource", |_: &mut Watcher, message: &Message| {
            let type_path = String::from_utf8_lossy(&message.payload);
            let watched =
                hotwasm_sdk::watch_resource(&type_path, |_: &mut Watcher, event: &Event| {
                    info!("{} {} {}", event.event_type(), event.source, value(event));
                });
            if let Err(error) = watched {
                info!("refused: {error:?}");
            }
        })
        .map_err(|e| format!("{e:?}"))?;
        if let Err(error) = hotwasm_sdk::watch_prefix("../etc", "", |_: &mut Watcher, _: &Event| {})
        {
            info!("refused: {error:?}");
        }
        Ok(())
    }
}

hotwasm_sdk::export_script!(Watcher);
