//! `hotwasm`: the command for bevy_hotwasm script authors.
//!
//! ```text
//! hotwasm keygen keys/release                                # keys/release.key.pem + keys/release.pub.pem
//! hotwasm sign keys/release.key.pem assets/modules/hello.wasm
//! hotwasm verify keys/release.pub.pem assets/modules/hello.wasm
//! ```
//!
//! From this repository: `cargo run -p hotwasm-cli -- <command>`;
//! anywhere: `cargo install --path tools/hotwasm`.

mod keys;

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage:
  hotwasm keygen <out prefix>               a new ed25519 key pair: <prefix>.key.pem, <prefix>.pub.pem
  hotwasm sign <private key> <module>       writes <module>.sig
  hotwasm verify <public key> <module>      checks <module>.sig as the game does";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args[..] {
        ["keygen", prefix] => keys::keygen(prefix),
        ["sign", key, module] => keys::sign(Path::new(key), Path::new(module)),
        ["verify", key, module] => keys::verify(Path::new(key), Path::new(module)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hotwasm: {error}");
            ExitCode::FAILURE
        }
    }
}
