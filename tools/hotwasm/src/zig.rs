//! Zig guests: `zig` builds a WASI preview1 core module from the guest's
//! `src/*.zig` and the C bindings `wit-bindgen c` made from the
//! `hotwasm:script` world; this command makes the component itself
//! (`wit-component` with wasmtime's preview1 adapter, both crates of this
//! command), so nothing else needs installing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};

use crate::project::Guest;

/// The Zig release the bindings and guests are written for.
pub const ZIG_VERSION: &str = "0.17";

const NO_ZIG: &str = "no zig: Zig guests need Zig 0.17 (https://ziglang.org/download/, or \
    `python3 -m pip install ziglang==0.17.1`); set ZIG to its command if it is not `zig` on PATH";

/// Builds a Zig guest's component in `work` (a scratch folder, emptied first).
pub fn build(guest: &Guest, bindings: &Path, work: &Path, quick: bool) -> Result<Vec<u8>, String> {
    if !bindings.join("script.h").is_file() {
        return Err(format!(
            "no Zig bindings in {} (script.h, script.c, script_component_type.o, hotwasm.zig): \
             `hotwasm new <name> --lang zig` writes them",
            bindings.display()
        ));
    }
    let zig = find_zig()?;
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work).map_err(|error| format!("cannot make {}: {error}", work.display()))?;
    copy_zig_files(&guest.dir.join("src"), work)?;
    copy_zig_files(bindings, work)?;

    let header = zig
        .command()
        .args(["translate-c", "-target", "wasm32-wasi", "-lc"])
        .arg(bindings.join("script.h"))
        .output()
        .map_err(|error| format!("cannot run zig: {error}"))?;
    if !header.status.success() {
        return Err(failed("zig translate-c", &header.stderr));
    }
    write(&work.join("script_h.zig"), &header.stdout)?;

    let optimize = if quick { "Debug" } else { "ReleaseSmall" };
    let core = zig
        .command()
        .current_dir(work)
        .args(["build-exe", "main.zig"])
        .arg(bindings.join("script.c"))
        .arg(bindings.join("script_component_type.o"))
        .arg("-I")
        .arg(bindings)
        .args(["-target", "wasm32-wasi", "-O", optimize, "-fno-entry"])
        .args(["-mexec-model=reactor", "-lc", "-femit-bin=core.wasm"])
        .output()
        .map_err(|error| format!("cannot run zig: {error}"))?;
    if !core.status.success() {
        return Err(failed("zig build-exe", &core.stderr));
    }
    let core = fs::read(work.join("core.wasm"))
        .map_err(|error| format!("zig wrote no core.wasm: {error}"))?;
    componentize(&core)
}

/// A WASI preview1 core module (with its `component-type` section) as a component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, String> {
    let encoder = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(core)
        .and_then(|encoder| {
            encoder.adapter(
                WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
        });
    encoder
        .and_then(|mut encoder| encoder.encode())
        .map_err(|error| format!("cannot make a component of it: {error:#}"))
}

/// How to run zig: `$ZIG` (words, e.g. `python3 -m ziglang`), else `zig`,
/// else the `ziglang` Python package.
struct Zig {
    words: Vec<String>,
}

impl Zig {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.words[0]);
        command.args(&self.words[1..]);
        command
    }

    fn version(&self) -> Option<String> {
        let output = self.command().arg("version").output().ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

fn find_zig() -> Result<Zig, String> {
    let words = |text: &str| Vec::from_iter(text.split_whitespace().map(str::to_owned));
    let candidates = match std::env::var("ZIG") {
        Ok(zig) if !zig.trim().is_empty() => vec![words(&zig)],
        _ => vec![words("zig"), words("python3 -m ziglang")],
    };
    for words in candidates {
        let zig = Zig { words };
        let Some(version) = zig.version() else {
            continue;
        };
        if !version.starts_with(ZIG_VERSION) {
            return Err(format!(
                "zig {version} found, but Zig guests are written for Zig {ZIG_VERSION} (`python3 -m pip install ziglang==0.17.1`, or set ZIG)"
            ));
        }
        return Ok(zig);
    }
    Err(NO_ZIG.into())
}

fn copy_zig_files(from: &Path, to: &Path) -> Result<(), String> {
    let entries =
        fs::read_dir(from).map_err(|error| format!("cannot read {}: {error}", from.display()))?;
    let zig_files = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "zig"));
    for file in zig_files {
        let name = PathBuf::from(file.file_name().unwrap_or_default());
        fs::copy(&file, to.join(name))
            .map_err(|error| format!("cannot copy {}: {error}", file.display()))?;
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|error| format!("cannot write {}: {error}", path.display()))
}

fn failed(step: &str, stderr: &[u8]) -> String {
    format!(
        "{step} failed:\n{}",
        String::from_utf8_lossy(stderr).trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_no_core_module_are_refused_with_the_reason() {
        let error = componentize(b"\0asm\x0d\0\x01\0").unwrap_err();
        assert!(
            error.starts_with("cannot make a component of it: "),
            "{error}"
        );
    }
}
