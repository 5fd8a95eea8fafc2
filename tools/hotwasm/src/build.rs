//! `hotwasm build`: guests to components, installed where the game loads them.
//!
//! Rust guests are built by cargo for `wasm32-wasip2`, one cargo run per
//! cargo workspace; Zig guests by [`crate::zig`]. Each module is installed
//! in one step ([`crate::install`]), so a running game reloads it whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bevy_hotwasm::trust::{sign_module, signature_path};
use ed25519_dalek::SigningKey;

use crate::install::{Installed, install_atomically};
use crate::lint::lint;
use crate::project::{Guest, Lang, Project};
use crate::zig;

/// The Rust guests' compilation target.
pub const TARGET: &str = "wasm32-wasip2";

/// Builds of a project's guests: one `hotwasm build`, or every rebuild of
/// one `hotwasm watch`.
pub struct Build<'a> {
    pub project: &'a Project,
    /// Where the modules go.
    pub out: PathBuf,
    /// The quick profile (`watch`, `--dev`) instead of the release one.
    pub quick: bool,
    /// Signs each module with this key (`--sign`): its `.sig` is written
    /// before the module, so the game never reads new bytes with an old
    /// signature.
    pub sign: Option<SigningKey>,
    /// What cargo said of each guest's folder, asked once: `watch` would
    /// otherwise ask again on every save.
    places: BTreeMap<PathBuf, Places>,
    /// Whether rustc has been found to have the [`TARGET`].
    target_found: bool,
}

/// What became of one guest.
pub struct Outcome {
    pub module: String,
    pub result: Result<Installed, String>,
    pub seconds: f64,
    /// What the guest's sources get wrong ([`lint`]).
    pub warnings: Vec<String>,
}

impl Outcome {
    /// The lines printed for it: what became of it, then its warnings.
    pub fn lines(&self, out: &Path) -> Vec<String> {
        let warnings = self
            .warnings
            .iter()
            .map(|warning| format!("warning: {warning}"));
        std::iter::once(self.line(out)).chain(warnings).collect()
    }

    /// What became of it.
    fn line(&self, out: &Path) -> String {
        let (module, seconds) = (&self.module, self.seconds);
        let file = out.join(format!("{module}.wasm"));
        let file = file.display();
        match &self.result {
            Ok(Installed::Replaced { size }) => {
                let kilobytes = size.div_ceil(1024);
                format!("{module}: built in {seconds:.1} s ({kilobytes} KB) -> {file}")
            }
            Ok(Installed::Unchanged) => format!("{module}: built in {seconds:.1} s, unchanged"),
            Err(error) => format!("{module}: {error}; the game keeps running the old module"),
        }
    }
}

impl<'a> Build<'a> {
    pub fn new(project: &'a Project, out: PathBuf, quick: bool, sign: Option<SigningKey>) -> Self {
        Build {
            project,
            out,
            quick,
            sign,
            places: BTreeMap::new(),
            target_found: false,
        }
    }

    /// Builds `guests` and installs each module; an outcome per guest.
    pub fn run(&mut self, guests: &[Guest]) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let mut rust = Vec::new();
        for guest in guests {
            match guest.lang {
                Lang::Rust { .. } => rust.push(guest),
                Lang::Zig => outcomes.push(self.zig(guest)),
            }
        }
        if !rust.is_empty() {
            outcomes.extend(self.rust(&rust));
        }
        outcomes.sort_by(|a, b| a.module.cmp(&b.module));
        for outcome in outcomes.iter_mut().filter(|outcome| outcome.result.is_ok()) {
            let guest = guests.iter().find(|guest| guest.module == outcome.module);
            outcome.warnings = guest.map(lint).unwrap_or_default();
        }
        outcomes
    }

    fn profile(&self) -> &str {
        self.project.profile(self.quick)
    }

    fn zig(&self, guest: &Guest) -> Outcome {
        let started = Instant::now();
        let bindings = match &self.project.zig_bindings {
            Some(dir) => dir.clone(),
            None => guest.dir.join("bindings"),
        };
        let work = self
            .project
            .root
            .join("target/hotwasm-zig")
            .join(&guest.module);
        let result = zig::build(guest, &bindings, &work, self.quick)
            .and_then(|component| self.install_bytes(&guest.module, &component));
        Outcome {
            module: guest.module.clone(),
            result,
            seconds: started.elapsed().as_secs_f64(),
            warnings: Vec::new(),
        }
    }

    /// Builds the Rust guests, one cargo run per cargo workspace.
    fn rust(&mut self, guests: &[&Guest]) -> Vec<Outcome> {
        let fail_all = |error: String| {
            let failed = |guest: &&Guest| Outcome {
                module: guest.module.clone(),
                result: Err(error.clone()),
                seconds: 0.0,
                warnings: Vec::new(),
            };
            guests.iter().map(failed).collect()
        };
        if !self.target_found {
            match check_rust_target() {
                Ok(()) => self.target_found = true,
                Err(error) => return fail_all(error),
            }
        }
        let mut workspaces: BTreeMap<PathBuf, (PathBuf, Vec<&Guest>)> = BTreeMap::new();
        for guest in guests {
            match self.places_of(&guest.dir) {
                Ok(places) => {
                    let entry = workspaces.entry(places.workspace_root.clone());
                    entry
                        .or_insert((places.target_directory.clone(), Vec::new()))
                        .1
                        .push(guest);
                }
                Err(error) => return fail_all(error),
            }
        }
        let mut outcomes = Vec::new();
        for (target_dir, members) in workspaces.into_values() {
            let started = Instant::now();
            let built = self.cargo_build(&members);
            let seconds = started.elapsed().as_secs_f64();
            for guest in members {
                let module = &guest.module;
                let file = target_dir
                    .join(TARGET)
                    .join(profile_dir(self.profile()))
                    .join(format!("{module}.wasm"));
                let result = built
                    .clone()
                    .and_then(|()| self.install_file(module, &file));
                outcomes.push(Outcome {
                    module: module.clone(),
                    result,
                    seconds,
                    warnings: Vec::new(),
                });
            }
        }
        outcomes
    }

    /// What cargo says of `dir`, asked the first time only.
    fn places_of(&mut self, dir: &Path) -> Result<&Places, String> {
        if !self.places.contains_key(dir) {
            let places = cargo_metadata(dir)?;
            self.places.insert(dir.to_path_buf(), places);
        }
        Ok(&self.places[dir])
    }

    /// One cargo run for guests of one workspace, its output straight to the terminal.
    fn cargo_build(&self, guests: &[&Guest]) -> Result<(), String> {
        let first = guests[0];
        let mut command = cargo();
        // From the guest's folder, so the game's `.cargo/config.toml` applies.
        command.current_dir(&first.dir).args([
            "build",
            "--target",
            TARGET,
            "--profile",
            self.profile(),
        ]);
        for guest in guests {
            if let Lang::Rust { package } = &guest.lang {
                command.args(["-p", package]);
            }
        }
        let status = command
            .status()
            .map_err(|error| format!("cannot run cargo: {error}"))?;
        match status.success() {
            true => Ok(()),
            false => Err("build failed (cargo's errors above)".into()),
        }
    }

    fn install_file(&self, module: &str, built: &Path) -> Result<Installed, String> {
        let bytes = std::fs::read(built)
            .map_err(|error| format!("cargo built no {}: {error}", built.display()))?;
        self.install_bytes(module, &bytes)
    }

    fn install_bytes(&self, module: &str, bytes: &[u8]) -> Result<Installed, String> {
        let destination = self.out.join(format!("{module}.wasm"));
        let cannot_write = |path: &Path, error| format!("cannot write {}: {error}", path.display());
        if let Some(key) = &self.sign {
            let signature = signature_path(&destination);
            let signed = sign_module(key, bytes);
            install_atomically(signed.as_bytes(), &signature)
                .map_err(|error| cannot_write(&signature, error))?;
        }
        install_atomically(bytes, &destination).map_err(|error| cannot_write(&destination, error))
    }
}

/// cargo: the one that started us (`cargo run`), else the one on `PATH`.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The folder cargo writes a profile's output to.
fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

/// A Rust guest's workspace and target folder, as cargo sees them.
struct Places {
    workspace_root: PathBuf,
    target_directory: PathBuf,
}

fn cargo_metadata(dir: &Path) -> Result<Places, String> {
    let output = cargo()
        .current_dir(dir)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .map_err(|error| format!("cannot run cargo: {error}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "cargo cannot read {}: {}",
            dir.display(),
            stderr.trim()
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|error| format!("cargo metadata said something unexpected: {error}"))?;
    let path = |key: &str| metadata[key].as_str().map(PathBuf::from);
    match (path("workspace_root"), path("target_directory")) {
        (Some(workspace_root), Some(target_directory)) => Ok(Places {
            workspace_root,
            target_directory,
        }),
        _ => Err("cargo metadata named no workspace or target folder".into()),
    }
}

/// Whether rustc has the standard library for [`TARGET`]: cargo's own
/// error for a missing one does not say how to get it.
fn check_rust_target() -> Result<(), String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(output) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return Ok(()); // no rustc to ask: cargo will say
    };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let library = Path::new(&sysroot).join("lib/rustlib").join(TARGET);
    match !output.status.success() || library.is_dir() {
        true => Ok(()),
        false => Err(format!(
            "Rust cannot build for {TARGET} yet: run `rustup target add {TARGET}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_builds_into_the_folder_cargo_names_after_it() {
        assert_eq!(profile_dir("dev"), "debug");
        assert_eq!(profile_dir("release"), "release");
        assert_eq!(profile_dir("guest-dev"), "guest-dev");
    }
}
