//! A game's guests, as its `hotwasm.toml` lists them.
//!
//! ```toml
//! out = "assets/modules"   # where built modules go
//! guests = ["guests/*"]    # guest folders; `dir/*` is every folder in `dir`
//! ```
//!
//! A folder with a `Cargo.toml` whose library is a `cdylib` is a Rust guest;
//! one with `src/main.zig` is a Zig guest. Any other crate found there (an
//! SDK fork, shared types) is shared: a change to it rebuilds every guest.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file that marks a game's root for this command.
pub const CONFIG_FILE: &str = "hotwasm.toml";

/// What `hotwasm new` writes when the game has no `hotwasm.toml` yet.
pub const DEFAULT_CONFIG: &str = r#"# The hotwasm command's view of this game (https://docs.rs/hotwasm-cli).
# Where `hotwasm build` and `hotwasm watch` put the modules the game loads.
out = "assets/modules"
# The guests: folders of guest crates; `dir/*` is every folder in `dir`.
guests = ["guests/*"]
"#;

/// `hotwasm.toml` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default = "default_out")]
    out: PathBuf,
    #[serde(default = "default_guests")]
    guests: Vec<String>,
    /// The cargo profile of `hotwasm build` (and `--release`).
    #[serde(default = "default_release_profile")]
    release_profile: String,
    /// The cargo profile of `hotwasm watch` and `hotwasm build --dev`.
    #[serde(default = "default_dev_profile")]
    dev_profile: String,
    /// More folders whose change rebuilds every guest (a WIT folder, say).
    #[serde(default)]
    shared: Vec<PathBuf>,
    /// The Zig guests' bindings folder, when they share one (else each
    /// guest's `bindings/`).
    zig_bindings: Option<PathBuf>,
}

fn default_out() -> PathBuf {
    "assets/modules".into()
}

fn default_guests() -> Vec<String> {
    vec!["guests/*".into()]
}

fn default_release_profile() -> String {
    "release".into()
}

fn default_dev_profile() -> String {
    "dev".into()
}

/// Which compiler builds a guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lang {
    /// cargo, for `wasm32-wasip2`.
    Rust {
        /// The crate's package name, for `cargo build -p`.
        package: String,
    },
    /// zig, then the component made by this command.
    Zig,
}

/// One guest crate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guest {
    /// The module's file name without `.wasm`: the crate's name with `_` for `-`.
    pub module: String,
    /// Its folder.
    pub dir: PathBuf,
    /// How it is built.
    pub lang: Lang,
}

/// A game's root and its guests.
#[derive(Debug)]
pub struct Project {
    /// The folder holding `hotwasm.toml`.
    pub root: PathBuf,
    /// Where modules go (absolute).
    pub out: PathBuf,
    /// Every guest, by module name.
    pub guests: BTreeMap<String, Guest>,
    /// Folders whose change rebuilds every guest: shared crates among the
    /// guest folders, and the `shared` setting.
    pub shared: Vec<PathBuf>,
    /// The profile of release builds.
    pub release_profile: String,
    /// The profile of quick builds.
    pub dev_profile: String,
    /// The Zig guests' shared bindings folder, if set.
    pub zig_bindings: Option<PathBuf>,
    /// Where `hotwasm new` puts a guest: the folder of the first `dir/*`
    /// pattern in `guests` (`guests/` when there is none).
    pub new_guests_dir: PathBuf,
}

impl Project {
    /// The project whose `hotwasm.toml` is at or above `start`.
    pub fn find(start: &Path) -> Result<Self, String> {
        let Some(root) = start
            .ancestors()
            .find(|dir| dir.join(CONFIG_FILE).is_file())
        else {
            return Err(format!(
                "no {CONFIG_FILE} at or above {}: run `hotwasm new <name>` in your game's folder (it writes one)",
                start.display()
            ));
        };
        Self::open(root)
    }

    /// The project at `root`, which holds `hotwasm.toml`.
    pub fn open(root: &Path) -> Result<Self, String> {
        let file = root.join(CONFIG_FILE);
        let text = fs::read_to_string(&file)
            .map_err(|error| format!("cannot read {}: {error}", file.display()))?;
        let config: Config = toml::from_str(&text)
            .map_err(|error| format!("{}: {}", file.display(), error.message()))?;
        let mut project = Project {
            root: root.to_path_buf(),
            out: root.join(&config.out),
            guests: BTreeMap::new(),
            shared: config.shared.iter().map(|dir| root.join(dir)).collect(),
            release_profile: config.release_profile,
            dev_profile: config.dev_profile,
            zig_bindings: config.zig_bindings.map(|dir| root.join(dir)),
            new_guests_dir: root.join(
                (config.guests.iter())
                    .find_map(|pattern| pattern.strip_suffix("/*"))
                    .unwrap_or("guests"),
            ),
        };
        for pattern in &config.guests {
            for dir in expand(root, pattern)? {
                project.add_folder(&dir)?;
            }
        }
        Ok(project)
    }

    /// Sorts one folder into a guest, a shared crate, or nothing.
    fn add_folder(&mut self, dir: &Path) -> Result<(), String> {
        let name = dir.file_name().and_then(|name| name.to_str()).unwrap_or("");
        let guest = if let Ok(manifest) = fs::read_to_string(dir.join("Cargo.toml")) {
            let Some(package) = cdylib_package(&manifest) else {
                self.shared.push(dir.to_path_buf());
                return Ok(());
            };
            Guest {
                module: module_name(&package),
                dir: dir.to_path_buf(),
                lang: Lang::Rust { package },
            }
        } else if dir.join("src/main.zig").is_file() {
            Guest {
                module: module_name(name),
                dir: dir.to_path_buf(),
                lang: Lang::Zig,
            }
        } else {
            if dir.join("script.h").is_file() {
                self.shared.push(dir.to_path_buf()); // Zig bindings
            }
            return Ok(());
        };
        if let Some(other) = self.guests.get(&guest.module) {
            return Err(format!(
                "two guests would both be {}.wasm: {} and {}",
                guest.module,
                other.dir.display(),
                guest.dir.display()
            ));
        }
        self.guests.insert(guest.module.clone(), guest);
        Ok(())
    }

    /// The guests named (as `enemy-ai`, `enemy_ai` or a folder path), or
    /// all of them when none is.
    pub fn select(&self, names: &[String]) -> Result<Vec<Guest>, String> {
        if self.guests.is_empty() {
            return Err(format!(
                "{} lists no guests yet: `hotwasm new <name>` makes one",
                self.root.join(CONFIG_FILE).display()
            ));
        }
        if names.is_empty() {
            return Ok(self.guests.values().cloned().collect());
        }
        names.iter().map(|name| self.guest(name)).collect()
    }

    fn guest(&self, name: &str) -> Result<Guest, String> {
        if let Some(guest) = self.guests.get(&module_name(name)) {
            return Ok(guest.clone());
        }
        let as_path = fs::canonicalize(name).ok();
        let by_path = self
            .guests
            .values()
            .find(|guest| as_path.is_some() && fs::canonicalize(&guest.dir).ok() == as_path);
        by_path.cloned().ok_or_else(|| {
            let known = Vec::from_iter(self.guests.keys().map(String::as_str)).join(", ");
            format!("unknown guest `{name}`; the guests are: {known}")
        })
    }

    /// The profile for a quick (`dev`) or a release build.
    pub fn profile(&self, quick: bool) -> &str {
        match quick {
            true => &self.dev_profile,
            false => &self.release_profile,
        }
    }
}

/// A module's name: `-` becomes `_`, as cargo names a library's file.
pub fn module_name(crate_name: &str) -> String {
    crate_name.replace('-', "_")
}

/// The folders `pattern` names under `root`: `dir/*` is every folder in
/// `dir` (sorted), anything else one folder.
fn expand(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let Some(parent) = pattern.strip_suffix("/*") else {
        return Ok(vec![root.join(pattern)]);
    };
    let dir = root.join(parent);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(Vec::new()); // no guests yet
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The package name of a manifest whose library is a `cdylib`, else `None`.
fn cdylib_package(manifest: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Manifest {
        package: Option<Package>,
        lib: Option<Lib>,
    }
    #[derive(Deserialize)]
    struct Package {
        name: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "kebab-case")]
    struct Lib {
        crate_type: Option<Vec<String>>,
    }
    let manifest: Manifest = toml::from_str(manifest).ok()?;
    let crate_types = manifest.lib?.crate_type?;
    crate_types
        .iter()
        .any(|kind| kind == "cdylib")
        .then_some(manifest.package?.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    const CDYLIB: &str = "[package]\nname = \"enemy-ai\"\n[lib]\ncrate-type = [\"cdylib\"]\n";

    #[test]
    fn guests_are_sorted_into_rust_zig_and_shared_crates() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join(CONFIG_FILE), DEFAULT_CONFIG);
        write(&root.join("guests/enemy-ai/Cargo.toml"), CDYLIB);
        write(
            &root.join("guests/types/Cargo.toml"),
            "[package]\nname = \"types\"\n",
        );
        write(&root.join("guests/zig-hello/src/main.zig"), "");
        write(&root.join("guests/zig-bindings/script.h"), "");
        write(&root.join("guests/notes/README.md"), "");

        let project = Project::find(&root.join("guests/enemy-ai")).unwrap();
        assert_eq!(project.out, root.join("assets/modules"));
        let modules = Vec::from_iter(project.guests.keys().map(String::as_str));
        assert_eq!(modules, ["enemy_ai", "zig_hello"]);
        let package = "enemy-ai".to_string();
        assert_eq!(project.guests["enemy_ai"].lang, Lang::Rust { package });
        assert_eq!(project.guests["zig_hello"].lang, Lang::Zig);
        let shared = [root.join("guests/types"), root.join("guests/zig-bindings")];
        assert_eq!(project.shared, shared);
    }

    #[test]
    fn a_guest_is_named_as_crate_module_or_folder_and_an_unknown_one_lists_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join(CONFIG_FILE), DEFAULT_CONFIG);
        write(&root.join("guests/enemy-ai/Cargo.toml"), CDYLIB);
        let project = Project::open(root).unwrap();
        for name in ["enemy-ai", "enemy_ai"] {
            assert_eq!(
                project.select(&[name.into()]).unwrap()[0].module,
                "enemy_ai"
            );
        }
        let folder = root.join("guests/enemy-ai").display().to_string();
        assert_eq!(project.select(&[folder]).unwrap()[0].module, "enemy_ai");
        let unknown = project.select(&["boss".into()]).unwrap_err();
        assert_eq!(unknown, "unknown guest `boss`; the guests are: enemy_ai");
    }

    #[test]
    fn a_misspelt_setting_or_a_missing_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Project::find(dir.path()).unwrap_err();
        assert!(missing.contains("run `hotwasm new <name>`"), "{missing}");
        write(&dir.path().join(CONFIG_FILE), "outt = \"x\"\n");
        let misspelt = Project::find(dir.path()).unwrap_err();
        assert!(misspelt.contains("unknown field `outt`"), "{misspelt}");
    }
}
