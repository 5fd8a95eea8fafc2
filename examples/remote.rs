//! Modules from a URL: a signed module downloaded from a server (here, a
//! tiny one on the loopback address), and a module whose server cannot be
//! reached running the copy built into the game instead (its embedded
//! fallback).
//!
//! ```sh
//! cargo run --example remote
//! ```
//!
//! A game registers each `RemoteSource` before `AssetPlugin` starts, then
//! loads `mods://hello.wasm` like any asset. The server's copy must be
//! signed by a key the game trusts (`<module>.sig` beside it); the embedded
//! copy is the game's own.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::remote::RemoteSource;
use bevy_hotwasm::trust::sign_module;
use ed25519_dalek::SigningKey;

const HELLO: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/modules/hello.wasm"
));
const COUNTER: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/modules/counter.wasm"
));

fn main() -> AppExit {
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = TrustedKey::from_bytes(key.verifying_key().as_bytes()).expect("32 bytes");
    let server = serve(vec![
        ("/v1/hello.wasm", HELLO.to_vec()),
        ("/v1/hello.wasm.sig", sign_module(&key, HELLO).into_bytes()),
    ]);
    // Nothing listens on a port just freed: that server is down.
    let down = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port");

    let mut app = App::new();
    // Before AssetPlugin: asset sources must exist when it starts.
    RemoteSource::new(format!("http://{server}/v1")).register(&mut app, "mods");
    RemoteSource::new(format!("http://{down}/v1"))
        .fallback("counter.wasm", COUNTER)
        .register(&mut app, "offline");
    app.add_plugins((
        MinimalPlugins,
        LogPlugin::default(),
        AssetPlugin::default(),
        HotWasmPlugin {
            trust: TrustPolicy::new().with_key("release", public),
            ..default()
        },
    ))
    .add_systems(
        Startup,
        |mut commands: Commands, assets: Res<AssetServer>| {
            commands.spawn(WasmScript(assets.load("mods://hello.wasm")));
            commands.spawn(WasmScript(assets.load("offline://counter.wasm")));
        },
    )
    .add_systems(Update, report.after(WasmSystems::Run))
    .run()
}

/// Says where each running module came from; quits once both run.
fn report(
    scripts: Query<(Entity, &WasmScript)>,
    runtime: Res<WasmRuntime>,
    modules: Res<Assets<WasmModule>>,
    mut exit: MessageWriter<AppExit>,
) {
    let running = |(entity, script): (Entity, &WasmScript)| {
        runtime.script(entity)?.generation()?;
        modules.get(&script.0)
    };
    let running: Vec<&WasmModule> = scripts.iter().filter_map(running).collect();
    if running.len() == 2 {
        for module in running {
            info!("{} runs, from {}", module.path(), module.origin());
        }
        exit.write(AppExit::Success);
    }
}

/// A server on the loopback address answering GET for `files`; its address.
fn serve(files: Vec<(&'static str, Vec<u8>)>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            answer(stream, &files);
        }
    });
    address
}

fn answer(mut stream: TcpStream, files: &[(&str, Vec<u8>)]) {
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // The headers, read to their end: closing with them unread would reset
    // the connection under the answer.
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|read| read > 2) {
        header.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = match files.iter().find(|(name, _)| *name == path) {
        Some((_, body)) => ("200 OK", body.as_slice()),
        None => ("404 Not Found", &b""[..]),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
}
