//! `hotwasm new`, `build` and `watch` in a game outside this repository, as
//! a script author runs them: the built command, a temporary game folder,
//! real cargo builds for wasm32-wasip2. The game's `.cargo/config.toml`
//! points `hotwasm-sdk` at this repository's (it is not on crates.io here).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The command, run in `dir` with the guests' builds in a folder kept
/// between test runs.
fn hotwasm(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hotwasm"));
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests");
    command.current_dir(dir).env("CARGO_TARGET_DIR", target);
    command
}

fn run(dir: &Path, args: &[&str]) -> Output {
    hotwasm(dir).args(args).output().expect("hotwasm runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A game folder with `hotwasm.toml` and a new Rust guest `spin`.
fn game_with_spin() -> (tempfile::TempDir, PathBuf) {
    let game = tempfile::tempdir().unwrap();
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let repository = repository.canonicalize().unwrap();
    let patch = format!(
        "[patch.crates-io]\nhotwasm-sdk = {{ path = \"{0}/guests/sdk\" }}\nhotwasm-events = {{ path = \"{0}/guests/events\" }}\n",
        repository.display()
    );
    std::fs::create_dir_all(game.path().join(".cargo")).unwrap();
    std::fs::write(game.path().join(".cargo/config.toml"), patch).unwrap();
    let new = run(game.path(), &["new", "spin"]);
    assert!(new.status.success(), "{}", text(&new.stderr));
    assert!(text(&new.stdout).contains("next: `hotwasm build spin`"));
    let module = game.path().join("assets/modules/spin.wasm");
    (game, module)
}

/// The component-model header of a `.wasm` file.
const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

#[test]
fn a_new_guest_builds_into_the_games_assets() {
    let (game, module) = game_with_spin();
    let build = run(game.path(), &["build"]);
    assert!(build.status.success(), "{}", text(&build.stderr));
    assert!(
        text(&build.stdout).starts_with("spin: built in"),
        "{}",
        text(&build.stdout)
    );
    let bytes = std::fs::read(&module).unwrap();
    assert!(
        bytes.starts_with(COMPONENT),
        "a component, not a core module"
    );

    // Signed in the build, for a release: the signature is the one verify accepts.
    let keygen = run(game.path(), &["keygen", "keys/game"]);
    assert!(keygen.status.success(), "{}", text(&keygen.stderr));
    let signed = run(game.path(), &["build", "--sign", "keys/game.key.pem"]);
    assert!(signed.status.success(), "{}", text(&signed.stderr));
    let module_path = "assets/modules/spin.wasm";
    let verify = run(game.path(), &["verify", "keys/game.pub.pem", module_path]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));

    // From inside the guest, by its module name, into another folder.
    let guest = game.path().join("guests/spin/src");
    let elsewhere = run(&guest, &["build", "spin", "--dev", "--out", "../../../dev"]);
    assert!(elsewhere.status.success(), "{}", text(&elsewhere.stderr));
    assert!(game.path().join("dev/spin.wasm").is_file());
}

#[test]
fn watch_rebuilds_a_guest_when_its_source_is_saved() {
    let (game, module) = game_with_spin();
    let mut watch = hotwasm(game.path())
        .args(["watch", "--build-first"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut watch);
    let next_line = || {
        lines
            .recv_timeout(Duration::from_secs(300))
            .expect("a line in time")
    };
    assert!(next_line().starts_with("watching 1 guests (spin)"));
    assert!(next_line().starts_with("spin: built in"));
    let first = std::fs::read(&module).unwrap();

    let source = game.path().join("guests/spin/src/lib.rs");
    let script = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, script.replace("first frame", "the first frame")).unwrap();
    let rebuilt = next_line();
    let _ = watch.kill();
    assert!(rebuilt.starts_with("spin: built in"), "{rebuilt}");
    assert_ne!(
        std::fs::read(&module).unwrap(),
        first,
        "the new build is installed"
    );
}

/// `child`'s output lines, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

#[test]
fn what_is_missing_is_named_with_the_way_to_get_it() {
    let game = tempfile::tempdir().unwrap();
    let no_project = run(game.path(), &["build"]);
    assert_eq!(no_project.status.code(), Some(1));
    assert!(text(&no_project.stderr).contains("run `hotwasm new <name>`"));

    // A Rust without the wasm32-wasip2 standard library.
    let new = run(game.path(), &["new", "spin"]);
    assert!(new.status.success(), "{}", text(&new.stderr));
    let rustc = game.path().join("rustc-without-wasm");
    std::fs::write(&rustc, "#!/bin/sh\necho /nowhere\n").unwrap();
    make_executable(&rustc);
    let no_target = hotwasm(game.path())
        .arg("build")
        .env("RUSTC", &rustc)
        .output()
        .unwrap();
    assert_eq!(no_target.status.code(), Some(1));
    let said = text(&no_target.stdout);
    assert!(
        said.contains("run `rustup target add wasm32-wasip2`"),
        "{said}"
    );

    // A Zig guest without zig.
    let new = run(game.path(), &["new", "tick", "--lang", "zig"]);
    assert!(new.status.success(), "{}", text(&new.stderr));
    let no_zig = hotwasm(game.path())
        .args(["build", "tick"])
        .env("ZIG", "/nowhere/zig")
        .output()
        .unwrap();
    assert_eq!(no_zig.status.code(), Some(1));
    let said = text(&no_zig.stdout);
    assert!(said.contains("no zig: Zig guests need Zig 0.17"), "{said}");
    assert!(said.contains("pip install ziglang==0.17.1"), "{said}");
}

#[cfg(unix)]
fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Needs Zig 0.17 (`zig`, or `python3 -m pip install ziglang==0.17.1`; CI installs it).
#[test]
fn a_new_zig_guest_builds_to_a_component() {
    let game = tempfile::tempdir().unwrap();
    let new = run(game.path(), &["new", "tick", "--lang", "zig"]);
    assert!(new.status.success(), "{}", text(&new.stderr));
    let build = run(game.path(), &["build"]);
    assert!(
        build.status.success(),
        "{}{}",
        text(&build.stdout),
        text(&build.stderr)
    );
    let bytes = std::fs::read(game.path().join("assets/modules/tick.wasm")).unwrap();
    assert!(
        bytes.starts_with(COMPONENT),
        "a component, not a core module"
    );
}
