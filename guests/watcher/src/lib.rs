//! Watches key-value data and logs every change it sees: `tuning/speed`
//! (a designer's live-tuned value) and every `scores` key under `player/`.
//! The message `watcher/unwatch` stops the scores watch. Watches belong to
//! a generation, so `init` makes them again after a hot reload.

use hotwasm_sdk::{Event, Script, WatchId, info};

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
        hotwasm_sdk::on_message("watcher/unwatch", |me: &mut Watcher, _| {
            if let Some(scores) = me.scores.take() {
                let _ = hotwasm_sdk::unwatch(scores);
                info!("stopped watching scores");
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
