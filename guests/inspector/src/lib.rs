//! Reads and writes the game's ECS on request, and logs what it found:
//! `inspect/get` (`<entity bits> <type path>`), `inspect/set`
//! (`<entity bits> <type path> <json>`), `inspect/resource` (`<type path>`),
//! `inspect/set-resource` (`<type path> <json>`), `inspect/spawn` (one
//! `<type path> <json>` per line), `inspect/sum` (`<type path> <field>`: the
//! field summed over every entity with the component, in one call),
//! `inspect/query` (`<type path to read> [<type path it must have>]`, every
//! page), `inspect/despawn` (`<entity bits>`).

use hotwasm_sdk::{Message, Script, ecs, info};

#[derive(Default)]
struct Inspector;

fn words(message: &Message, count: usize) -> Vec<String> {
    String::from_utf8_lossy(&message.payload)
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

fn describe(error: impl std::fmt::Debug) -> String {
    format!("{error:?}")
}

impl Script for Inspector {
    fn init(&mut self) -> Result<(), String> {
        hotwasm_sdk::on_message("inspect/get", |_: &mut Inspector, message: &Message| {
            let [entity, type_path] = &words(message, 2)[..] else {
                return;
            };
            match ecs::get_component(bits(entity), type_path) {
                Ok(json) => info!("get {}", text(&json)),
                Err(error) => info!("get failed: {error:?}"),
            }
        })
        .map_err(describe)?;
        hotwasm_sdk::on_message("inspect/set", |_: &mut Inspector, message: &Message| {
            let [entity, type_path, json] = &words(message, 3)[..] else {
                return;
            };
            match ecs::set_component(bits(entity), type_path, json.as_bytes()) {
                Ok(()) => info!("set ok"),
                Err(error) => info!("set failed: {error:?}"),
            }
        })
        .map_err(describe)?;
        hotwasm_sdk::on_message(
            "inspect/resource",
            |_: &mut Inspector, message: &Message| match ecs::get_resource(
                &String::from_utf8_lossy(&message.payload),
            ) {
                Ok(json) => info!("resource {}", text(&json)),
                Err(error) => info!("resource failed: {error:?}"),
            },
        )
        .map_err(describe)?;
        hotwasm_sdk::on_message("inspect/sum", |_: &mut Inspector, message: &Message| {
            let [type_path, field] = &words(message, 2)[..] else {
                return;
            };
            match ecs::query_field(type_path, field) {
                Ok(values) => {
                    let sum: f64 = values.iter().map(|(_, value)| value).sum();
                    info!("sum {sum} over {}", values.len());
                }
                Err(error) => info!("sum failed: {error:?}"),
            }
        })
        .map_err(describe)?;
        hotwasm_sdk::on_message(
            "inspect/set-resource",
            |_: &mut Inspector, message: &Message| {
                let [type_path, json] = &words(message, 2)[..] else {
                    return;
                };
                match ecs::set_resource(type_path, json.as_bytes()) {
                    Ok(()) => info!("set-resource ok"),
                    Err(error) => info!("set-resource failed: {error:?}"),
                }
            },
        )
        .map_err(describe)?;
        hotwasm_sdk::on_message("inspect/spawn", |_: &mut Inspector, message: &Message| {
            let components: Vec<(String, Vec<u8>)> = String::from_utf8_lossy(&message.payload)
                .lines()
                .filter_map(|line| line.split_once(' '))
                .map(|(type_path, json)| (type_path.to_owned(), json.as_bytes().to_vec()))
                .collect();
            match ecs::spawn(&components) {
                Ok(entity) => info!("spawned {entity}"),
                Err(error) => info!("spawn failed: {error:?}"),
            }
        })
        .map_err(describe)?;
        hotwasm_sdk::on_message("inspect/query", |_: &mut Inspector, message: &Message| {
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
                    Err(error) => return info!("query failed: {error:?}"),
                }
            }
            let first = rows.first().map(|row| text(&row.values[0]));
            info!(
                "query {} rows in {pages} pages, first {first:?}",
                rows.len()
            );
        })
        .map_err(describe)?;
        hotwasm_sdk::on_message("inspect/despawn", |_: &mut Inspector, message: &Message| {
            match ecs::despawn(bits(&String::from_utf8_lossy(&message.payload))) {
                Ok(()) => info!("despawned"),
                Err(error) => info!("despawn failed: {error:?}"),
            }
        })
        .map_err(describe)?;
        Ok(())
    }
}

hotwasm_sdk::export_script!(Inspector);
