//! `hotwasm watch`: the edit loop. Leave the game running; every save in a
//! guest's folder rebuilds that guest with the quick profile and installs
//! its module, so the game reloads it. A save in a shared folder (the SDK,
//! shared types, the WIT) rebuilds every watched guest. A failed build
//! leaves the old module, which the game keeps running.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Component, Path};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};

use crate::build::Build;
use crate::project::Guest;

/// Editors save in several steps; a burst is over after this long without one.
const QUIET_PERIOD: Duration = Duration::from_millis(150);

/// The folders watched and what a change in each rebuilds.
pub struct Watch<'a> {
    pub build: Build<'a>,
    /// The guests this run rebuilds.
    pub watched: Vec<Guest>,
}

impl Watch<'_> {
    /// Watches until the watcher is gone (Ctrl-C ends the process).
    pub fn run(mut self, build_first: bool) -> Result<(), String> {
        let (sender, events) = mpsc::channel();
        let mut watcher = RecommendedWatcher::new(sender, notify::Config::default())
            .map_err(|error| format!("cannot start the file watcher: {error}"))?;
        let folders = self.watched.iter().map(|guest| &guest.dir);
        for folder in folders.chain(&self.build.project.shared) {
            if folder.is_dir() {
                watcher
                    .watch(folder, RecursiveMode::Recursive)
                    .map_err(|error| format!("cannot watch {}: {error}", folder.display()))?;
            }
        }
        let names = Vec::from_iter(self.watched.iter().map(|guest| guest.module.as_str()));
        println!(
            "watching {} guests ({}); builds with --profile {}; Ctrl-C to stop",
            names.len(),
            names.join(", "),
            self.build.project.profile(true)
        );
        if build_first {
            let every = self.watched.clone();
            self.rebuild(&every);
        }
        while let Some(guests) = self.next_burst(&events) {
            self.rebuild(&guests);
        }
        Ok(())
    }

    fn rebuild(&mut self, guests: &[Guest]) {
        let outcomes = self.build.run(guests);
        for line in outcomes
            .iter()
            .flat_map(|outcome| outcome.lines(&self.build.out))
        {
            println!("{line}");
        }
    }

    /// The watched guests a change to `path` rebuilds: a guest's own files
    /// rebuild it; a shared folder's rebuild them all; build output, editor
    /// and hidden files nothing.
    fn guests_rebuilt_by(&self, path: &Path) -> BTreeSet<String> {
        let relevant = |root: &Path| {
            let relative = path.strip_prefix(root).ok()?;
            is_source(relative).then_some(())
        };
        let shared = &self.build.project.shared;
        if shared.iter().any(|dir| relevant(dir).is_some()) {
            return self
                .watched
                .iter()
                .map(|guest| guest.module.clone())
                .collect();
        }
        let own = self
            .watched
            .iter()
            .filter(|guest| relevant(&guest.dir).is_some());
        own.map(|guest| guest.module.clone()).collect()
    }

    /// The guests one watcher event rebuilds. A watcher error is printed and
    /// rebuilds nothing: the watch goes on.
    fn guests_touched(&self, event: notify::Result<Event>) -> BTreeSet<String> {
        match event {
            Err(error) => {
                eprintln!("hotwasm watch: watcher error: {error}");
                BTreeSet::new()
            }
            // Opening a file is an access event: cargo's own reads must not loop.
            Ok(event) if event.kind.is_access() => BTreeSet::new(),
            Ok(event) => event
                .paths
                .iter()
                .flat_map(|path| self.guests_rebuilt_by(path))
                .collect(),
        }
    }

    /// Waits for a relevant change, then collects changes until none has come
    /// for [`QUIET_PERIOD`]; the guests they touch. `None` once the watcher is gone.
    fn next_burst(&self, events: &Receiver<notify::Result<Event>>) -> Option<Vec<Guest>> {
        let mut modules = BTreeSet::new();
        while modules.is_empty() {
            modules = self.guests_touched(events.recv().ok()?);
        }
        let mut quiet_until = Instant::now() + QUIET_PERIOD;
        // A timeout ends the burst; so does a closed channel (the next call returns `None`).
        while let Ok(event) =
            events.recv_timeout(quiet_until.saturating_duration_since(Instant::now()))
        {
            let more = self.guests_touched(event);
            if !more.is_empty() {
                modules.extend(more);
                quiet_until = Instant::now() + QUIET_PERIOD;
            }
        }
        let touched = self
            .watched
            .iter()
            .filter(|guest| modules.contains(&guest.module));
        Some(touched.cloned().collect())
    }
}

/// Whether a path inside a guest or shared folder is a source: not build
/// output (`target/`, `zig-out/`, `.zig-cache/`), not an editor's swap,
/// backup or temporary file, not hidden.
fn is_source(relative: &Path) -> bool {
    let mut names = relative.components().map(|part| match part {
        Component::Normal(name) => name.to_str(),
        _ => None,
    });
    names.all(|name| {
        name.is_some_and(|name| {
            !(name == "target"
                || name == "zig-out"
                || name.starts_with('.')
                || name.ends_with('~')
                || name.ends_with(".swp")
                || name.ends_with(".tmp"))
        })
    }) && relative != Path::new("")
        && relative.extension() != Some(OsStr::new("wasm"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::project::{Lang, Project};

    fn guest(root: &Path, folder: &str) -> Guest {
        Guest {
            module: folder.replace('-', "_"),
            dir: root.join("guests").join(folder),
            lang: Lang::Zig,
        }
    }

    /// The guests a change to `path` rebuilds, with three guests and two shared folders.
    fn rebuilt_by(path: &str) -> BTreeSet<String> {
        let root = PathBuf::from("/game");
        let watched = ["enemy-ai", "waves", "upstream-kv"].map(|name| guest(&root, name));
        let project = Project {
            out: root.join("assets/modules"),
            guests: BTreeMap::new(),
            shared: vec![root.join("wit"), root.join("guests/sdk")],
            release_profile: "release".into(),
            dev_profile: "dev".into(),
            zig_bindings: None,
            new_guests_dir: root.join("guests"),
            root: root.clone(),
        };
        let build = Build::new(&project, project.out.clone(), true, None);
        let watch = Watch {
            build,
            watched: watched.to_vec(),
        };
        watch.guests_rebuilt_by(&root.join(path))
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn a_guests_own_files_rebuild_that_guest() {
        assert_eq!(
            rebuilt_by("guests/enemy-ai/src/lib.rs"),
            names(&["enemy_ai"])
        );
        let nested = rebuilt_by("guests/upstream-kv/src/ai/chase.rs");
        assert_eq!(nested, names(&["upstream_kv"]));
        assert_eq!(rebuilt_by("guests/waves/Cargo.toml"), names(&["waves"]));
    }

    #[test]
    fn a_shared_folder_rebuilds_every_guest() {
        let every_guest = names(&["enemy_ai", "waves", "upstream_kv"]);
        for path in [
            "wit/world.wit",
            "wit/deps/keyvalue/store.wit",
            "guests/sdk/src/lib.rs",
        ] {
            assert_eq!(rebuilt_by(path), every_guest, "{path}");
        }
    }

    #[test]
    fn build_output_editor_files_and_other_paths_rebuild_nothing() {
        for path in [
            "guests/enemy-ai/target/wasm32-wasip2/dev/enemy_ai.wasm",
            "guests/sdk/target/debug/build.rs",
            "guests/enemy-ai/src/.lib.rs.swp",
            "guests/enemy-ai/src/lib.rs~",
            "guests/enemy-ai/src/lib.rs.tmp",
            "wit/.world.wit.swp",
            "guests/unknown/src/lib.rs",
            "src/main.rs",
        ] {
            assert_eq!(rebuilt_by(path), BTreeSet::new(), "{path}");
        }
    }
}
