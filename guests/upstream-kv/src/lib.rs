//! A script that uses nothing of bevy_hotwasm but `wasi:keyvalue`, the way
//! code written for any wasi-keyvalue host would: at start it counts its
//! launches (`atomics.increment`), publishes them as a score, copies
//! `tuning/greeting` into `upstream/greeting`, appends to a log with
//! compare-and-swap, records how many `tuning` keys it could list, and
//! what `get-many` gave for a key it set and one it did not.

mod bindings {
    wit_bindgen::generate!({ world: "script", path: "../../wit", generate_all });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

struct UpstreamKv;

fn text(error: store::Error) -> String {
    match error {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message,
    }
}

/// Appends `line` to the value of `key` with a compare-and-swap retry loop.
fn append(bucket: &store::Bucket, key: &str, line: &str) -> Result<(), String> {
    let mut cas = atomics::Cas::new(bucket, key).map_err(text)?;
    loop {
        let mut log = cas.current().map_err(text)?.unwrap_or_default();
        log.extend_from_slice(line.as_bytes());
        match atomics::swap(cas, &log) {
            Ok(()) => return Ok(()),
            Err(atomics::CasError::CasFailed(retry)) => cas = retry,
            Err(atomics::CasError::StoreError(error)) => return Err(text(error)),
        }
    }
}

fn start() -> Result<(), store::Error> {
    let stats = store::open("stats")?;
    let launches = atomics::increment(&stats, "upstream/launches", 1)?;

    let scores = store::open("scores")?;
    scores.set("player/upstream", launches.to_string().as_bytes())?;

    let tuning = store::open("tuning")?;
    if let Some(greeting) = tuning.get("greeting")? {
        stats.set("upstream/greeting", &greeting)?;
    }
    let mut listed = 0;
    let mut cursor = None;
    loop {
        let page = tuning.list_keys(cursor.as_deref())?;
        listed += page.keys.len();
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    batch::set_many(
        &stats,
        &[
            (
                "upstream/tuning-keys".into(),
                listed.to_string().into_bytes(),
            ),
            ("upstream/alive".into(), b"yes".to_vec()),
        ],
    )?;
    let keys = ["upstream/alive".into(), "upstream/nothing".into()];
    let got: Vec<String> = batch::get_many(&stats, &keys)?
        .into_iter()
        .map(|pair| match pair {
            Some((key, value)) => format!("{key}={}", String::from_utf8_lossy(&value)),
            None => "not set".to_owned(),
        })
        .collect();
    stats.set("upstream/got", got.join(", ").as_bytes())?;
    if stats.exists("upstream/stale")? {
        stats.delete("upstream/stale")?;
    }
    Ok(())
}

impl bindings::Guest for UpstreamKv {
    fn init() -> Result<(), String> {
        start().map_err(text)?;
        let stats = store::open("stats").map_err(text)?;
        append(&stats, "upstream/log", "started\n")
    }

    fn save_state() -> Option<Vec<u8>> {
        None
    }

    fn restore_state(_: Vec<u8>) -> Result<(), String> {
        Ok(())
    }

    fn handle_batch(_: bindings::hotwasm::script::types::Batch) -> Vec<(u32, Vec<u8>)> {
        Vec::new()
    }

    fn handle_frame(_: u64, _: bindings::hotwasm::script::types::Frame) -> Vec<(u32, Vec<u8>)> {
        Vec::new()
    }

    fn handle_requests(
        _: u64,
        requests: Vec<bindings::hotwasm::script::types::Request>,
        _: Vec<u8>,
    ) -> Vec<Result<Vec<u8>, bindings::hotwasm::script::types::RequestError>> {
        (requests.iter())
            .map(|_| Err(bindings::hotwasm::script::types::RequestError::NoHandler))
            .collect()
    }
}

bindings::export!(UpstreamKv with_types_in bindings);
