//! A tuning tool for a running game whose store is shared on a NATS
//! server: sets values in its `tuning` bucket, or lists them. Another
//! process — `cargo run -p arena -- --nats
//! nats://127.0.0.1:4222` — sees each change as a watch event in its
//! guests within milliseconds.
//!
//! ```sh
//! cargo run --example tune --features nats -- enemy_speed 200   # set one
//! cargo run --example tune --features nats                      # list them
//! cargo run --example tune --features nats -- --nats nats://host:4222 spawn_rate 2
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use bevy_hotwasm::KvStore;
use bevy_hotwasm::kv::NatsOptions;

/// The server the arena's README command starts.
const DEFAULT_URL: &str = "nats://127.0.0.1:4222";
/// The bucket the arena's guests read their tuning from.
const BUCKET: &str = "tuning";
/// How long to wait for the server to acknowledge a write.
const ACKNOWLEDGED_WITHIN: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut args: Vec<String>) -> Result<(), String> {
    let mut url = DEFAULT_URL.to_owned();
    if args.first().is_some_and(|arg| arg == "--nats") {
        args.remove(0);
        if args.is_empty() {
            return Err("--nats needs a URL".to_owned());
        }
        url = args.remove(0);
    }
    let mut store =
        KvStore::connect_nats(&url, NatsOptions::default()).map_err(|error| error.to_string())?;
    match args.as_slice() {
        [] => {
            let keys = (store.list_keys(BUCKET, None)).map_err(|error| error.to_string())?;
            for key in keys.keys {
                let value = store.get(BUCKET, &key).ok().flatten().unwrap_or_default();
                println!("{key} = {}", String::from_utf8_lossy(&value));
            }
            Ok(())
        }
        [key, value] => {
            (store.set(BUCKET, key, value.as_bytes())).map_err(|error| error.to_string())?;
            // The store sends writes from its own thread: the tool waits
            // for the server's acknowledgement before it exits.
            let started = Instant::now();
            while store
                .shared_status()
                .is_some_and(|status| status.queued_writes > 0)
            {
                if started.elapsed() > ACKNOWLEDGED_WITHIN {
                    return Err(format!("{url} did not acknowledge {BUCKET}/{key} in time"));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            println!("{BUCKET}/{key} = {value} on {url}");
            Ok(())
        }
        _ => Err("usage: tune [--nats URL] [KEY VALUE]".to_owned()),
    }
}
