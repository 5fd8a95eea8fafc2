//! The smallest script: says hello when it starts.
//!
//! Edit the greeting, run `scripts/build-guests.sh`, and a running
//! `cargo run --example hello` logs the new line without restarting.

use hotwasm_sdk::{Cx, Error, Script, info, me};

#[derive(Default)]
struct Hello;

impl Script for Hello {
    fn init(&mut self, _: &mut Cx<Self>) -> Result<(), Error> {
        info!(
            "Hello from {} (generation {})!",
            hotwasm_sdk::module_path(),
            hotwasm_sdk::generation()
        );
        // A std guest's stdout reaches the host's log too.
        println!("hello.wasm is running on entity {}", me());
        Ok(())
    }
}

hotwasm_sdk::export_script!(Hello);
