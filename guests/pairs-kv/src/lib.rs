//! A script whose `wasi:keyvalue` bindings have `get-many` in the shape
//! some SDKs ship (every key paired with its value, if set): at start it
//! writes two keys with `set-many`, reads them and a missing one back with
//! `get-many`, and writes what it got to `pairs/got`.

mod bindings {
    wit_bindgen::generate!({ world: "script", path: "wit", generate_all });
}

use bindings::wasi::keyvalue::{batch, store};

struct PairsKv;

fn text(error: store::Error) -> String {
    match error {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message,
    }
}

fn start() -> Result<(), store::Error> {
    let stats = store::open("stats")?;
    batch::set_many(
        &stats,
        &[
            ("pairs/a".into(), b"1".to_vec()),
            ("pairs/b".into(), b"2".to_vec()),
        ],
    )?;
    let keys = ["pairs/a".into(), "pairs/missing".into(), "pairs/b".into()];
    let got: Vec<String> = batch::get_many(&stats, &keys)?
        .into_iter()
        .map(|(key, value)| match value {
            Some(value) => format!("{key}={}", String::from_utf8_lossy(&value)),
            None => format!("{key} not set"),
        })
        .collect();
    stats.set("pairs/got", got.join(", ").as_bytes())
}

impl bindings::Guest for PairsKv {
    fn init() -> Result<(), String> {
        start().map_err(text)
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

bindings::export!(PairsKv with_types_in bindings);
