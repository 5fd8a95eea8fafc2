//! Watches key-value data and logs every change it sees: `tuning/speed`
//! (a designer's live-tuned value) and every `scores` key under `player/`.
//! The message `watcher/unwatch` stops the scores watch; `watcher/component`
//! and `watcher/resource` watch the type whose path is the payload;
//! `watcher/set-score` writes the payload as its own score `player/watcher`,
//! which a second watch reports only when someone else writes it;
//! `watcher/cloudevents` makes every watch also log the event's CloudEvents
//! JSON (`cloudevent {...}`). Watches belong to a generation, so `init`
//! makes them again after a hot reload.

use hotwasm_sdk::{ComponentChanges, Cx, Error, Event, Script, Watch, WatchId, info};

#[derive(Default)]
struct Watcher {
    scores: Option<WatchId>,
    cloudevents: bool,
}

/// Logs the event as CloudEvents JSON when asked to.
fn log_cloud_event(me: &Watcher, event: &Event) {
    if me.cloudevents {
        info!("cloudevent {}", event.cloud_event().to_json());
    }
}

fn value(event: &Event) -> String {
    String::from_utf8_lossy(event.data).into_owned()
}

/// Logs a refused watch instead of failing the handler.
fn log_refusal(watched: Result<WatchId, Error>) {
    if let Err(error) = watched {
        info!("refused: {error:?}");
    }
}

impl Script for Watcher {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        cx.watch(Watch::key("tuning", "speed"), |me, _, event| {
            log_cloud_event(me, event);
            let generation = hotwasm_sdk::generation();
            let (kind, source, subject) = (event.event_type(), event.source, event.subject);
            let value = value(event);
            info!(
                "{kind} {source} {subject} = {value:?} (id {}, gen {generation})",
                event.id
            );
            Ok(())
        })?;
        let scores = cx.watch(Watch::prefix("scores", "player/"), |me, _, event| {
            log_cloud_event(me, event);
            info!("score {} = {:?}", event.subject, value(event));
            Ok(())
        })?;
        self.scores = Some(scores);
        let mine = Watch::key("scores", "player/watcher").except_own();
        cx.watch(mine, |_, _, event| {
            info!("someone else set my score to {:?}", value(event));
            Ok(())
        })?;
        cx.on_message("watcher/set-score", |_, _, message| {
            let scores = hotwasm_sdk::kv::store::open("scores")?;
            Ok(scores.set("player/watcher", message.payload)?)
        })?;
        cx.on_message("watcher/cloudevents", |me, _, _| {
            me.cloudevents = true;
            Ok(())
        })?;
        cx.on_message("watcher/unwatch", |me, cx, _| {
            if let Some(scores) = me.scores.take() {
                cx.unwatch(scores)?;
                info!("stopped watching scores");
            }
            Ok(())
        })?;
        cx.on_message("watcher/component", |_, cx, message| {
            let type_path = String::from_utf8_lossy(message.payload);
            let all =
                ComponentChanges::ADDED | ComponentChanges::CHANGED | ComponentChanges::REMOVED;
            log_refusal(
                cx.watch(Watch::component_path(&type_path, all), |me, _, event| {
                    log_cloud_event(me, event);
                    let (kind, source, subject) = (event.event_type(), event.source, event.subject);
                    info!("{kind} {source} {subject} {}", value(event));
                    Ok(())
                }),
            );
            Ok(())
        })?;
        cx.on_message("watcher/resource", |_, cx, message| {
            let type_path = String::from_utf8_lossy(message.payload);
            log_refusal(cx.watch(Watch::resource_path(&type_path), |me, _, event| {
                log_cloud_event(me, event);
                info!("{} {} {}", event.event_type(), event.source, value(event));
                Ok(())
            }));
            Ok(())
        })?;
        log_refusal(cx.watch(Watch::prefix("../etc", ""), |_, _, _| Ok(())));
        Ok(())
    }
}

hotwasm_sdk::export_script!(Watcher);
