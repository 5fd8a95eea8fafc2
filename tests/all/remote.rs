//! Modules served over HTTP by a real server on 127.0.0.1: signed, polled
//! for changes, cached, and replaced by an embedded default when there is
//! nothing better. Every refusal is checked by its kind.

use std::path::Path;
use std::time::Duration;

use bevy::prelude::*;
use bevy_hotwasm::FailureStage;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::remote::{
    RemoteError, RemoteModuleStatus, RemoteModules, RemoteSource, ServedFrom,
};
use bevy_hotwasm::trust::{ModuleOrigin, SignatureError, Verified, sign_module};
use ed25519_dalek::SigningKey;
use hotwasm_test_support::http::{TestServer, dead_url, stalled_url};
use hotwasm_test_support::*;

const POLL: Duration = Duration::from_millis(50);
const COUNTER: &str = "remote://counter.wasm";

fn release_key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

/// Serves `module` as `counter.wasm`, signed by `key` (unsigned with `None`).
fn serve(server: &TestServer, module: &[u8], key: Option<&SigningKey>) {
    match key {
        Some(key) => server.put("counter.wasm.sig", sign_module(key, module).as_bytes()),
        None => server.remove("counter.wasm.sig"),
    }
    server.put("counter.wasm", module);
}

/// An app trusting the release key, with `source` registered as `remote`.
fn remote_app(assets: &AssetDir, source: RemoteSource) -> App {
    let key = TrustedKey::from_bytes(release_key().verifying_key().as_bytes()).unwrap();
    let plugin = HotWasmPlugin {
        trust: TrustPolicy::new().with_key("release", key),
        ..default()
    };
    app_with(assets, Some(TEST_DEBOUNCE), plugin, |app| {
        source.register(app, "remote")
    })
}

fn run_remote(app: &mut App) -> Entity {
    let handle = app.world().resource::<AssetServer>().load(COUNTER);
    let entity = app.world_mut().spawn(WasmScript(handle)).id();
    update_until(app, "the remote module to run or fail", |app| {
        generation(app, entity).is_some() || !seen(app).failed.is_empty()
    });
    entity
}

fn status(app: &App) -> RemoteModuleStatus {
    app.world()
        .resource::<RemoteModules>()
        .get(COUNTER)
        .unwrap()
}

/// The module `entity` runs.
fn running(app: &App, entity: Entity) -> &WasmModule {
    let handle = &app.world().get::<WasmScript>(entity).unwrap().0;
    app.world()
        .resource::<Assets<WasmModule>>()
        .get(handle)
        .unwrap()
}

/// The size of the module `entity` runs, to tell modules apart.
fn running_size(app: &App, entity: Entity) -> usize {
    running(app, entity).size()
}

/// What the module `entity` runs says of where it came from and who
/// signed it.
fn provenance(app: &App, entity: Entity) -> (ModuleOrigin, Option<Verified>) {
    let module = running(app, entity);
    (module.origin().clone(), module.verified().cloned())
}

fn signed_for_release() -> Option<Verified> {
    let key = TrustedKey::from_bytes(release_key().verifying_key().as_bytes()).unwrap();
    Some(Verified::Signed {
        key_id: "release".to_owned(),
        fingerprint: key.fingerprint(),
    })
}

/// A server serving the signed counter guest, and an app running it from
/// there at generation 1.
fn running_from_server() -> (TestServer, AssetDir, App, Entity) {
    let server = TestServer::start();
    serve(&server, &guest_bytes("counter"), Some(&release_key()));
    let assets = AssetDir::new();
    let mut app = remote_app(&assets, RemoteSource::new(server.url()).poll_interval(POLL));
    let entity = run_remote(&mut app);
    assert_eq!(generation(&app, entity), Some(1), "{:?}", seen(&app).failed);
    (server, assets, app, entity)
}

fn leak(bytes: Vec<u8>) -> &'static [u8] {
    Box::leak(bytes.into_boxed_slice())
}

#[test]
fn a_signed_remote_module_loads_and_reloads_when_the_server_changes() {
    let (server, _assets, mut app, entity) = running_from_server();
    let counter = guest_bytes("counter");
    let first = status(&app);
    assert_eq!(first.served_from, Some(ServedFrom::Server));
    assert_eq!(first.url, format!("{}/counter.wasm", server.url()));
    assert_eq!(
        provenance(&app, entity),
        (
            ModuleOrigin::Server(first.url.clone()),
            signed_for_release()
        )
    );
    assert_eq!(first.bytes_received, counter.len() as u64);
    assert!(first.last_success.is_some() && first.last_error.is_none());

    serve(&server, &rebuilt(&counter, 1), Some(&release_key()));
    update_until(&mut app, "the new version from the server", |app| {
        generation(app, entity) == Some(2)
    });
    assert_eq!(running_size(&app, entity), rebuilt(&counter, 1).len());
}

#[test]
fn a_served_module_with_a_wrong_or_missing_signature_is_refused() {
    let (server, _assets, mut app, entity) = running_from_server();
    let counter = guest_bytes("counter");

    // Signed by a stranger, then not signed at all.
    serve(
        &server,
        &rebuilt(&counter, 1),
        Some(&SigningKey::from_bytes(&[9; 32])),
    );
    update_until(&mut app, "the stranger's refusal", |app| {
        !seen(app).refused.is_empty()
    });
    serve(&server, &rebuilt(&counter, 2), None);
    update_until(&mut app, "the unsigned refusal", |app| {
        matches!(
            seen(app).refused.last(),
            Some(SignatureError::Unsigned { .. })
        )
    });

    assert!(matches!(
        seen(&app).refused[0],
        SignatureError::UnknownKey { .. }
    ));
    assert!(
        seen(&app)
            .failed
            .iter()
            .all(|f| f.stage == FailureStage::Verify)
    );
    assert!(matches!(
        status(&app).last_error,
        Some(RemoteError::Refused {
            error: SignatureError::Unsigned { .. },
            ..
        })
    ));
    run_frames(&mut app, 5);
    assert_eq!(
        generation(&app, entity),
        Some(1),
        "the trusted version runs on"
    );
    assert_eq!(running_size(&app, entity), counter.len());
}

#[test]
fn without_the_server_the_cache_keeps_the_game_running() {
    let cache = tempfile::tempdir().unwrap();
    let mut server = TestServer::start();
    let counter = guest_bytes("counter");
    serve(&server, &counter, Some(&release_key()));
    let url = server.url();
    let source = || {
        RemoteSource::new(&url)
            .poll_interval(POLL)
            .cache_dir(cache.path())
    };
    let assets = AssetDir::new();
    {
        let mut app = remote_app(&assets, source());
        let entity = run_remote(&mut app);
        assert_eq!(generation(&app, entity), Some(1));
        assert!(Path::new(&cache.path().join("counter.wasm.sig")).exists());

        // The server goes away: polls fail, the module runs on.
        server.stop();
        update_until(&mut app, "a failed poll", |app| {
            matches!(
                status(app).last_error,
                Some(RemoteError::Unreachable { .. })
            )
        });
        run_frames(&mut app, 5);
        assert_eq!(generation(&app, entity), Some(1));
    }

    // A restart without the server runs the cached copy.
    let mut app = remote_app(&assets, source());
    let entity = run_remote(&mut app);
    assert_eq!(generation(&app, entity), Some(1), "{:?}", seen(&app).failed);
    assert_eq!(running_size(&app, entity), counter.len());
    let restarted = status(&app);
    assert_eq!(restarted.served_from, Some(ServedFrom::Cache));
    assert_eq!(
        provenance(&app, entity),
        (ModuleOrigin::Cache, signed_for_release())
    );
    assert!(matches!(
        restarted.fallback_reason,
        Some(RemoteError::Unreachable { .. })
    ));
}

#[test]
fn with_nothing_else_the_embedded_default_runs_until_the_server_is_back() {
    let url = dead_url();
    let embedded = guest_bytes("hello");
    let assets = AssetDir::new();
    let source = RemoteSource::new(&url)
        .poll_interval(POLL)
        .fallback("counter.wasm", leak(embedded.clone()));
    let mut app = remote_app(&assets, source);

    let entity = run_remote(&mut app);
    assert_eq!(generation(&app, entity), Some(1), "{:?}", seen(&app).failed);
    assert_eq!(running_size(&app, entity), embedded.len());
    assert_eq!(status(&app).served_from, Some(ServedFrom::Embedded));
    let embedded_origin = (ModuleOrigin::Embedded, Some(Verified::Embedded));
    assert_eq!(provenance(&app, entity), embedded_origin);

    // The server comes up: the next poll picks it up.
    let server = TestServer::start_at(&url);
    let counter = guest_bytes("counter");
    serve(&server, &counter, Some(&release_key()));
    update_until(&mut app, "the server's module", |app| {
        generation(app, entity) == Some(2)
    });
    assert_eq!(running_size(&app, entity), counter.len());
    assert_eq!(status(&app).served_from, Some(ServedFrom::Server));
    assert!(matches!(
        provenance(&app, entity).0,
        ModuleOrigin::Server(_)
    ));
}

#[test]
fn an_unverified_first_download_falls_back_to_the_embedded_default() {
    let server = TestServer::start();
    serve(&server, &guest_bytes("counter"), None);
    let embedded = guest_bytes("hello");
    let assets = AssetDir::new();
    let source = RemoteSource::new(server.url())
        .poll_interval(POLL)
        .fallback("counter.wasm", leak(embedded.clone()));
    let mut app = remote_app(&assets, source);

    let entity = run_remote(&mut app);
    // The refused download fails first; the fallback loads after it.
    update_until(&mut app, "the embedded default to run", |app| {
        generation(app, entity).is_some()
    });

    assert_eq!(running_size(&app, entity), embedded.len());
    assert!(matches!(
        status(&app).fallback_reason,
        Some(RemoteError::Refused {
            error: SignatureError::Unsigned { .. },
            ..
        })
    ));
}

#[test]
fn oversized_downloads_are_cut_off() {
    let server = TestServer::start();
    serve(&server, &guest_bytes("counter"), Some(&release_key()));
    let assets = AssetDir::new();
    let source = RemoteSource::new(server.url()).max_module_bytes(1000);
    let mut app = remote_app(&assets, source);

    let entity = run_remote(&mut app);

    assert_eq!(generation(&app, entity), None);
    assert_eq!(
        status(&app).last_error,
        Some(RemoteError::TooLarge {
            url: format!("{}/counter.wasm", server.url()),
            limit: 1000
        })
    );
    assert_eq!(seen(&app).failed[0].stage, FailureStage::Read);
    assert!(status(&app).bytes_received <= 1000 + 2048, "stopped early");
}

#[test]
fn a_server_that_never_answers_times_out() {
    let url = stalled_url();
    let assets = AssetDir::new();
    let source = RemoteSource::new(&url).timeout(Duration::from_millis(300));
    let mut app = remote_app(&assets, source);

    let entity = run_remote(&mut app);

    assert_eq!(generation(&app, entity), None);
    assert_eq!(
        status(&app).last_error,
        Some(RemoteError::TimedOut {
            url: format!("{url}/counter.wasm"),
            after: Duration::from_millis(300)
        })
    );
    assert_eq!(seen(&app).failed[0].stage, FailureStage::Read);
}

#[test]
fn an_answer_without_a_module_is_reported_with_its_own_status() {
    let server = TestServer::start();
    server.answer_with("counter.wasm", 304);
    let assets = AssetDir::new();
    let mut app = remote_app(&assets, RemoteSource::new(server.url()).poll_interval(POLL));
    let handle = app.world().resource::<AssetServer>().load(COUNTER);
    app.world_mut().spawn(WasmScript(handle));
    update_until(&mut app, "the download to fail", |app| {
        let modules = app.world().resource::<RemoteModules>();
        modules
            .get(COUNTER)
            .is_some_and(|status| status.last_error.is_some())
    });
    let error = status(&app).last_error.expect("failed");
    assert!(
        matches!(error, RemoteError::Status { status: 304, .. }),
        "{error:?}"
    );
}

/// `python3 -m http.server` serving `dir` on a free loopback port, stopped
/// when dropped; `None` where Python is not installed. Its request log
/// (`"GET /counter.wasm HTTP/1.1" 304 -`) is kept, line by line.
struct PythonServer {
    child: std::process::Child,
    url: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl PythonServer {
    fn start(dir: &Path) -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let log = std::sync::Arc::<std::sync::Mutex<Vec<String>>>::default();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let lines = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in stderr.lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        // Bounded: until it accepts connections, or gives up.
        let accepting = (0..500).any(|_| {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() || {
                std::thread::sleep(Duration::from_millis(10));
                false
            }
        });
        assert!(accepting, "python3 -m http.server did not start");
        Some(server)
    }

    /// How many requests for `/<file>` it answered with `status` (any
    /// status: `None`).
    fn answered(&self, file: &str, status: Option<u16>) -> usize {
        let request = format!("\"GET /{file} HTTP/1.1\" ");
        let status = status.map_or(String::new(), |status| format!("{status} "));
        let log = self.log.lock().unwrap();
        log.iter()
            .filter_map(|line| line.split_once(&request))
            .filter(|(_, after)| after.starts_with(&status))
            .count()
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `module` and its signature into `dir` with the modification time
/// `at`, as a second upload within the same second (or `cp -p`) would.
fn upload(dir: &Path, module: &[u8], at: std::time::SystemTime) {
    for (name, bytes) in [
        (
            "counter.wasm.sig",
            sign_module(&release_key(), module).into_bytes(),
        ),
        ("counter.wasm", module.to_vec()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(at).unwrap();
    }
}

#[test]
fn an_update_with_the_same_modification_second_on_a_server_without_etags_is_picked_up() {
    let served = tempfile::tempdir().unwrap();
    let counter = guest_bytes("counter");
    // A time the server's `Date` is past: a strong `Last-Modified`, which
    // the poller asks `If-Modified-Since` with.
    let second = std::time::SystemTime::now() - Duration::from_secs(5);
    upload(served.path(), &counter, second);
    let Some(server) = PythonServer::start(served.path()) else {
        eprintln!("SKIPPED: python3 is not installed");
        return;
    };
    let assets = AssetDir::new();
    let mut app = remote_app(&assets, RemoteSource::new(&server.url).poll_interval(POLL));
    let entity = run_remote(&mut app);
    assert_eq!(generation(&app, entity), Some(1), "{:?}", seen(&app).failed);
    // The module asked for conditionally, and the signature polled (so its
    // validators are known too) after it was downloaded.
    update_until(&mut app, "the poller to know both versions", |_| {
        server.answered("counter.wasm", Some(304)) > 0
            && server.answered("counter.wasm.sig", None) > 1
    });

    // The same `Last-Modified`: `If-Modified-Since` says nothing changed,
    // so only the poller's unconditional requests can see it.
    upload(served.path(), &rebuilt(&counter, 1), second);
    update_until(&mut app, "the second upload to run", |app| {
        generation(app, entity) == Some(2)
    });
    assert_eq!(running_size(&app, entity), counter.len() + 24);
}
