//! Reads and writes the game's ECS on request, and logs what it found:
//! `inspect/get` (`<entity bits> <type path>`), `inspect/set`
//! (`<entity bits> <type path> <json>`), `inspect/resource` (`<type path>`),
//! `inspect/set-resource` (`<type path> <json>`), `inspect/spawn` (one
//! `<type path> <json>` per line), `inspect/sum` (`<type path> <field>`: the
//! field summed over every entity with the component, in one call),
//! `inspect/query` (`<type path to read> [<type path it must have>]`, every
//! page), `inspect/despawn` (`<entity bits>`), `inspect/remove` (`<entity
//! bits> <type path>`), `inspect/spawn-child` (`<parent bits>`, then one
//! `<type path> <json>` per line), `inspect/filter` (`<type path to read>`
//! then filters `with:<type path>`, `without:…`, `added:…`, `changed:…`:
//! logs the entities of the first page, in query order).

use hotwasm_sdk::ecs::raw as ecs;
use hotwasm_sdk::{Cx, Error, Message, Script, info};

#[derive(Default)]
struct Inspector;

fn words(message: &Message, count: usize) -> Vec<String> {
    String::from_utf8_lossy(message.payload)
        .splitn(count, ' ')
        .map(str::to_owned)
        .collect()
}

fn bits(word: &str) -> u64 {
    word.parse().unwrap_or(u64::MAX)
}

fn text(json: &[u8]) -> String {
    String::from_utf8_lossy(json).into_owned()
}

/// Logs what a request gave, `<what> <answer>`, or `<what> failed: <error>`.
fn answer<T>(what: &str, result: Result<T, ecs::Error>, show: impl FnOnce(T) -> String) {
    match result {
        Ok(value) => info!("{what} {}", show(value)),
        Err(error) => info!("{what} failed: {error:?}"),
    }
}

impl Script for Inspector {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        cx.on_message("inspect/get", |_, _, message| {
            if let [entity, type_path] = &words(message, 2)[..] {
                answer("get", ecs::get_component(bits(entity), type_path), |json| {
                    text(&json)
                });
            }
            Ok(())
        })?;
        cx.on_message("inspect/set", |_, _, message| {
            if let [entity, type_path, json] = &words(message, 3)[..] {
                let set = ecs::set_component(bits(entity), type_path, json.as_bytes());
                answer("set", set, |()| "ok".to_owned());
            }
            Ok(())
        })?;
        cx.on_message("inspect/resource", |_, _, message| {
            let type_path = String::from_utf8_lossy(message.payload);
            answer("resource", ecs::get_resource(&type_path), |json| {
                text(&json)
            });
            Ok(())
        })?;
        cx.on_message("inspect/sum", |_, _, message| {
            if let [type_path, field] = &words(message, 2)[..] {
                answer("sum", ecs::query_field(type_path, field), |values| {
                    let sum: f64 = values.iter().map(|(_, value)| value).sum();
                    format!("{sum} over {}", values.len())
                });
            }
            Ok(())
        })?;
        cx.on_message("inspect/set-resource", |_, _, message| {
            if let [type_path, json] = &words(message, 2)[..] {
                let set = ecs::set_resource(type_path, json.as_bytes());
                answer("set-resource", set, |()| "ok".to_owned());
            }
            Ok(())
        })?;
        cx.on_message("inspect/spawn", |_, _, message| {
            let components: Vec<(String, Vec<u8>)> = String::from_utf8_lossy(message.payload)
                .lines()
                .filter_map(|line| line.split_once(' '))
                .map(|(type_path, json)| (type_path.to_owned(), json.as_bytes().to_vec()))
                .collect();
            match ecs::spawn(&components) {
                Ok(entity) => info!("spawned {entity}"),
                Err(error) => info!("spawn failed: {error:?}"),
            }
            Ok(())
        })?;
        cx.on_message("inspect/query", |_, _, message| {
            let words = words(message, 2);
            let (read, having) = (&words[..1], &words[1..]);
            let (mut rows, mut pages, mut cursor) = (Vec::new(), 0, 0);
            loop {
                match ecs::query(having, read, cursor) {
                    Ok(page) => {
                        pages += 1;
                        rows.extend(page.rows);
                        match page.next {
                            Some(next) => cursor = next,
                            None => break,
                        }
                    }
                    Err(error) => {
                        info!("query failed: {error:?}");
                        return Ok(());
                    }
                }
            }
            let first = rows.first().map(|row| text(&row.values[0]));
            info!(
                "query {} rows in {pages} pages, first {first:?}",
                rows.len()
            );
            Ok(())
        })?;
        cx.on_message("inspect/despawn", |_, _, message| {
            match ecs::despawn(bits(&String::from_utf8_lossy(message.payload))) {
                Ok(()) => info!("despawned"),
                Err(error) => info!("despawn failed: {error:?}"),
            }
            Ok(())
        })?;
        cx.on_message("inspect/remove", |_, _, message| {
            let words = words(message, 2);
            let type_path = words.get(1).map_or("", String::as_str);
            answer(
                "remove",
                ecs::remove_component(bits(&words[0]), type_path),
                |()| "done".to_owned(),
            );
            Ok(())
        })?;
        cx.on_message("inspect/spawn-child", |_, _, message| {
            let text = String::from_utf8_lossy(message.payload);
            let mut lines = text.lines();
            let parent = bits(lines.next().unwrap_or_default());
            let components: Vec<(String, Vec<u8>)> = lines
                .filter_map(|line| line.split_once(' '))
                .map(|(type_path, json)| (type_path.to_owned(), json.as_bytes().to_vec()))
                .collect();
            answer(
                "spawn-child",
                ecs::spawn_child(parent, &components),
                |child| child.to_string(),
            );
            Ok(())
        })?;
        cx.on_message("inspect/filter", |_, _, message| {
            let text = String::from_utf8_lossy(message.payload);
            let mut words = text.split(' ').map(str::to_owned);
            let read: Vec<String> = words.next().into_iter().collect();
            let mut filter = ecs::QueryFilter {
                having: Vec::new(),
                without: Vec::new(),
                added: Vec::new(),
                changed: Vec::new(),
            };
            for word in words {
                let Some((kind, type_path)) = word.split_once(':') else {
                    continue;
                };
                let list = match kind {
                    "with" => &mut filter.having,
                    "without" => &mut filter.without,
                    "added" => &mut filter.added,
                    _ => &mut filter.changed,
                };
                list.push(type_path.to_owned());
            }
            answer("filter", ecs::query_filtered(&filter, &read, 0), |page| {
                let entities: Vec<String> =
                    page.rows.iter().map(|row| row.entity.to_string()).collect();
                format!("{} rows: {}", entities.len(), entities.join(" "))
            });
            Ok(())
        })
    }
}

hotwasm_sdk::export_script!(Inspector);
