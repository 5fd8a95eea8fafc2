//! `guest-watch`: the edit loop for this repository's guests.
//!
//! Leave the game running and, in a second terminal, run
//! `cargo run -p guest-watch` from anywhere in the repository (it needs
//! `rustup target add wasm32-wasip2`; `-- --help` lists the options). Every
//! save under `guests/` or `wit/` rebuilds the guests it touches with one
//! `cargo build --profile guest-dev --target wasm32-wasip2` and replaces
//! `assets/modules/<guest>.wasm` in one step, so the game reloads it. A failed
//! build leaves the old module, which the game keeps running.
//!
//! The modules it writes are development builds, quick to compile but not
//! reproducible. Before committing, run `scripts/build-guests.sh` so that
//! `assets/modules/` holds the reproducible release builds CI checks.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};
use std::{env, fs};

use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};

const USAGE: &str = "usage: guest-watch [--build-first] [GUEST...]
  GUEST          watch only these guests, as `enemy-ai` or `enemy_ai` (default: all)
  --build-first  build the watched guests once at start
";
/// The cargo profile of the development builds (in the root `Cargo.toml`).
const PROFILE: &str = "guest-dev";
/// The guests' compilation target.
const TARGET: &str = "wasm32-wasip2";
/// Editors save in several steps; a burst is over after this long without one.
const QUIET_PERIOD: Duration = Duration::from_millis(150);

/// The repository and the guests this run rebuilds. A crate under `guests/`
/// goes by its directory name, the package name too (as in
/// `scripts/build-guests.sh`).
struct Workspace {
    root: PathBuf,
    target_dir: PathBuf,
    /// The non-`cdylib` crates under `guests/` (the SDK, shared types): any
    /// module may use them.
    libraries: BTreeSet<String>,
    /// The `cdylib` crates to rebuild: all of them, or those named on the command line.
    watched: BTreeSet<String>,
}

/// What [`install_atomically`] did.
#[derive(Debug, PartialEq, Eq)]
enum Installed {
    Replaced { size: usize },
    Unchanged,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("guest-watch: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up the watch, then rebuilds after every burst of changes until killed.
fn run() -> Result<(), String> {
    let (mut build_first, mut requested) = (false, Vec::new());
    for arg in env::args().skip(1) {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            "--build-first" => build_first = true,
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option `{flag}`\n{USAGE}"));
            }
            _ => requested.push(arg),
        }
    }
    let current = env::current_dir().map_err(|e| format!("no current directory: {e}"))?;
    let root = find_workspace_root(&current).ok_or_else(|| {
        let place = current.display();
        format!("no directory with Cargo.toml, guests/ and wit/ at or above {place}")
    })?;
    let (modules, libraries) = list_guest_crates(&root)?;
    let watched = select_guests(&modules, &requested)?;
    let target_dir = target_dir(&root);
    let workspace = Workspace {
        root,
        target_dir,
        libraries,
        watched,
    };

    let (sender, events) = mpsc::channel();
    let mut watcher = RecommendedWatcher::new(sender, notify::Config::default())
        .map_err(|e| format!("cannot start the file watcher: {e}"))?;
    for dir in ["guests", "wit"] {
        watcher
            .watch(&workspace.root.join(dir), RecursiveMode::Recursive)
            .map_err(|e| format!("cannot watch {dir}/: {e}"))?;
    }
    let (count, names) = (workspace.watched.len(), module_list(&workspace.watched));
    println!(
        "watching guests/ and wit/ for {count} guests ({names}); builds with --profile {PROFILE}; Ctrl-C to stop"
    );
    if build_first {
        workspace.rebuild(&workspace.watched);
    }
    while let Some(guests) = workspace.next_burst(&events) {
        workspace.rebuild(&guests);
    }
    Ok(())
}

/// The nearest directory at or above `start` that holds `Cargo.toml`, `guests/` and `wit/`.
fn find_workspace_root(start: &Path) -> Option<PathBuf> {
    let is_root = |dir: &Path| {
        dir.join("Cargo.toml").is_file() && dir.join("guests").is_dir() && dir.join("wit").is_dir()
    };
    let root = start.ancestors().find(|dir| is_root(dir))?;
    Some(root.to_path_buf())
}

/// The crates under `guests/` as (modules, libraries), by the rule of
/// `scripts/build-guests.sh`: a manifest saying `crate-type = ["cdylib"]` is a module.
fn list_guest_crates(root: &Path) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let guests_dir = root.join("guests");
    let entries = fs::read_dir(&guests_dir)
        .map_err(|e| format!("cannot list {}: {e}", guests_dir.display()))?;
    let (mut modules, mut libraries) = (BTreeSet::new(), BTreeSet::new());
    for entry in entries.flatten() {
        let Ok(manifest) = fs::read_to_string(entry.path().join("Cargo.toml")) else {
            continue; // not a crate
        };
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue; // cargo package names are ASCII
        };
        if manifest.contains(r#"crate-type = ["cdylib"]"#) {
            modules.insert(name);
        } else {
            libraries.insert(name);
        }
    }
    Ok((modules, libraries))
}

/// The guests named on the command line, all of them if none is; a name may
/// spell `-` as `_`, as the module file does.
fn select_guests(
    modules: &BTreeSet<String>,
    requested: &[String],
) -> Result<BTreeSet<String>, String> {
    if modules.is_empty() {
        return Err(r#"no guests/*/Cargo.toml says crate-type = ["cdylib"]"#.into());
    }
    if requested.is_empty() {
        return Ok(modules.clone());
    }
    let known = module_list(modules);
    let find = |name: &String| {
        let found = modules
            .iter()
            .find(|module| module_stem(module) == module_stem(name));
        found
            .cloned()
            .ok_or_else(|| format!("unknown guest `{name}`; the guests are: {known}"))
    };
    requested.iter().map(find).collect()
}

/// `guests` for a message, as their modules are named: `enemy_ai, waves`.
fn module_list(guests: &BTreeSet<String>) -> String {
    Vec::from_iter(guests.iter().map(|guest| module_stem(guest))).join(", ")
}

/// A guest's module file name without `.wasm`: cargo turns `-` into `_`.
fn module_stem(guest: &str) -> String {
    guest.replace('-', "_")
}

/// Where cargo writes: `CARGO_TARGET_DIR` (a relative one is read from cargo's
/// working directory, the root) or `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Editors' swap, backup and temporary files, and hidden files: never sources.
fn is_editor_or_hidden(name: &str) -> bool {
    name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp") || name.ends_with(".tmp")
}

impl Workspace {
    /// The watched guests a change to `relative` (a path under the root)
    /// rebuilds: a module's sources or manifest rebuild that module; the WIT,
    /// the SDK and any other shared crate rebuild them all.
    fn guests_rebuilt_by(&self, relative: &Path) -> BTreeSet<String> {
        let Some(parts) = relative
            .iter()
            .map(OsStr::to_str)
            .collect::<Option<Vec<_>>>()
        else {
            return BTreeSet::new();
        };
        if parts
            .iter()
            .any(|part| *part == "target" || is_editor_or_hidden(part))
        {
            return BTreeSet::new();
        }
        match parts.as_slice() {
            ["wit", _, ..] => self.watched.clone(),
            ["guests", name, _, ..] if self.libraries.contains(*name) => self.watched.clone(),
            ["guests", name, "Cargo.toml"] | ["guests", name, "src", _, ..]
                if self.watched.contains(*name) =>
            {
                BTreeSet::from([name.to_string()])
            }
            _ => BTreeSet::new(),
        }
    }

    /// The guests one watcher event rebuilds. A watcher error is printed and
    /// rebuilds nothing: the watch goes on.
    fn guests_touched(&self, event: notify::Result<Event>) -> BTreeSet<String> {
        match event {
            Err(error) => {
                eprintln!("guest-watch: watcher error: {error}");
                BTreeSet::new()
            }
            // Opening a file is an access event: cargo's own reads must not loop.
            Ok(event) if event.kind.is_access() => BTreeSet::new(),
            Ok(event) => event
                .paths
                .iter()
                .filter_map(|path| path.strip_prefix(&self.root).ok())
                .flat_map(|relative| self.guests_rebuilt_by(relative))
                .collect(),
        }
    }

    /// Waits for a relevant change, then collects changes until none has come
    /// for [`QUIET_PERIOD`]; the guests they touch. `None` once the watcher is gone.
    fn next_burst(&self, events: &Receiver<notify::Result<Event>>) -> Option<BTreeSet<String>> {
        let mut guests = BTreeSet::new();
        while guests.is_empty() {
            guests = self.guests_touched(events.recv().ok()?);
        }
        let mut quiet_until = Instant::now() + QUIET_PERIOD;
        // A timeout ends the burst; so does a closed channel (the next call returns `None`).
        while let Ok(event) =
            events.recv_timeout(quiet_until.saturating_duration_since(Instant::now()))
        {
            let more = self.guests_touched(event);
            if !more.is_empty() {
                guests.extend(more);
                quiet_until = Instant::now() + QUIET_PERIOD;
            }
        }
        Some(guests)
    }

    /// Builds `guests` with one cargo run, its output straight to the
    /// terminal; whether it succeeded.
    fn cargo_build(&self, guests: &BTreeSet<String>) -> bool {
        // `cargo run` sets `CARGO` to the cargo (and toolchain) that started us.
        let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        command
            .current_dir(&self.root)
            .args(["build", "--profile", PROFILE, "--target", TARGET]);
        for guest in guests {
            command.args(["-p", guest.as_str()]);
        }
        match command.status() {
            Ok(status) => status.success(),
            Err(error) => {
                eprintln!("guest-watch: cannot run cargo: {error}");
                false
            }
        }
    }

    /// Builds `guests`, installs each one's module and prints a line per guest.
    fn rebuild(&self, guests: &BTreeSet<String>) {
        let started = Instant::now();
        let succeeded = self.cargo_build(guests);
        let seconds = started.elapsed().as_secs_f64();
        for module in guests.iter().map(|guest| module_stem(guest)) {
            if !succeeded {
                println!(
                    "{module}: build failed in {seconds:.1} s; the game keeps running the old module"
                );
                continue;
            }
            let file = format!("{module}.wasm");
            let built = self.target_dir.join(TARGET).join(PROFILE).join(&file);
            let installed = self.root.join("assets").join("modules").join(&file);
            match install_atomically(&built, &installed) {
                Ok(Installed::Replaced { size }) => {
                    let kilobytes = size.div_ceil(1024);
                    println!(
                        "{module}: built in {seconds:.1} s ({kilobytes} KB) -> assets/modules/{file}"
                    );
                }
                Ok(Installed::Unchanged) => println!("{module}: unchanged"),
                Err(error) => println!("{module}: built, but installing {file} failed: {error}"),
            }
        }
    }
}

/// Copies `built` over `destination` in one step: the bytes go to a temporary
/// file beside it, synced, then renamed over it, so a reader sees the old
/// module or the new one, never half of one. Identical bytes are left alone.
fn install_atomically(built: &Path, destination: &Path) -> io::Result<Installed> {
    let bytes = fs::read(built)?;
    if fs::read(destination).is_ok_and(|current| current == bytes) {
        return Ok(Installed::Unchanged);
    }
    let directory = destination.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(directory)?;
    let name = destination
        .file_name()
        .unwrap_or(OsStr::new("module"))
        .to_string_lossy();
    let temp = directory.join(format!(".{name}.tmp-{}", std::process::id()));
    // Closed right before the rename, so Bevy's debounced watcher reports the
    // temporary file's create and write under the destination's name and the
    // game reloads: Bevy 0.19 ignores a bare rename event.
    let installed = fs::File::create(&temp)
        .and_then(|mut file| file.write_all(&bytes).and_then(|()| file.sync_all()))
        .and_then(|()| fs::rename(&temp, destination));
    if installed.is_err() {
        let _ = fs::remove_file(&temp); // best effort: the first error is the one to report
    }
    installed.map(|()| Installed::Replaced { size: bytes.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    /// The guests a change to `path` rebuilds, with three guests and two shared crates.
    fn rebuilt_by(path: &str) -> BTreeSet<String> {
        let workspace = Workspace {
            root: PathBuf::new(),
            target_dir: PathBuf::new(),
            libraries: names(&["sdk", "game-types"]),
            watched: names(&["enemy-ai", "waves", "upstream-kv"]),
        };
        workspace.guests_rebuilt_by(Path::new(path))
    }

    #[test]
    fn a_guest_source_or_manifest_rebuilds_that_guest() {
        assert_eq!(
            rebuilt_by("guests/enemy-ai/src/lib.rs"),
            names(&["enemy-ai"])
        );
        assert_eq!(
            rebuilt_by("guests/upstream-kv/src/ai/chase.rs"),
            names(&["upstream-kv"])
        );
        assert_eq!(rebuilt_by("guests/waves/Cargo.toml"), names(&["waves"]));
    }

    #[test]
    fn wit_the_sdk_and_shared_crates_rebuild_every_guest() {
        let every_guest = names(&["enemy-ai", "waves", "upstream-kv"]);
        for path in [
            "wit/world.wit",
            "wit/deps/keyvalue/store.wit",
            "guests/sdk/src/lib.rs",
            "guests/sdk/Cargo.toml",
            "guests/game-types/src/lib.rs",
        ] {
            assert_eq!(rebuilt_by(path), every_guest, "{path}");
        }
    }

    #[test]
    fn build_output_editor_files_and_other_paths_rebuild_nothing() {
        for path in [
            "guests/enemy-ai/target/wasm32-wasip2/guest-dev/enemy_ai.wasm",
            "guests/sdk/target/debug/build.rs",
            "guests/enemy-ai/src/.lib.rs.swp",
            "guests/enemy-ai/src/lib.rs~",
            "guests/enemy-ai/src/lib.rs.tmp",
            "wit/.world.wit.swp",
            "guests/enemy-ai/README.md",
            "guests/unknown/src/lib.rs",
            "src/lib.rs",
        ] {
            assert_eq!(rebuilt_by(path), BTreeSet::new(), "{path}");
        }
    }

    #[test]
    fn a_guest_may_be_named_as_its_module_and_an_unknown_one_lists_them_all() {
        let modules = names(&["enemy-ai", "waves"]);
        let selected = select_guests(&modules, &["enemy_ai".to_string()]);
        assert_eq!(selected, Ok(names(&["enemy-ai"])));
        let unknown = select_guests(&modules, &["boss".to_string()]);
        let expected = "unknown guest `boss`; the guests are: enemy_ai, waves";
        assert_eq!(unknown, Err(expected.to_string()));
    }

    #[test]
    fn install_replaces_in_one_step_and_skips_identical_bytes() {
        let dir = env::temp_dir().join(format!("guest-watch-install-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let (built, destination) = (dir.join("enemy_ai.wasm"), dir.join("modules/enemy_ai.wasm"));
        let install = || install_atomically(&built, &destination).unwrap();

        fs::write(&built, b"first").unwrap();
        assert_eq!(install(), Installed::Replaced { size: 5 });
        assert_eq!(install(), Installed::Unchanged);
        fs::write(&built, b"second").unwrap();
        assert_eq!(install(), Installed::Replaced { size: 6 });
        assert_eq!(fs::read(&destination).unwrap(), b"second");
        let left: Vec<String> = fs::read_dir(dir.join("modules"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["enemy_ai.wasm"], "no temporary file is left behind");
        fs::remove_dir_all(&dir).unwrap();
    }
}
