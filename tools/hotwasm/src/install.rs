//! Putting a module where the game loads it, in one step.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// What [`install_atomically`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    Replaced { size: usize },
    Unchanged,
}

/// Writes `bytes` over `destination` in one step: to a temporary file beside
/// it, synced, then renamed over it, so a reader sees the old module or the
/// new one, never half of one. Identical bytes are left alone.
pub fn install_atomically(bytes: &[u8], destination: &Path) -> io::Result<Installed> {
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
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| fs::rename(&temp, destination));
    if installed.is_err() {
        let _ = fs::remove_file(&temp); // best effort: the first error is the one to report
    }
    installed.map(|()| Installed::Replaced { size: bytes.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_replaces_in_one_step_and_skips_identical_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let destination = dir.path().join("modules/enemy_ai.wasm");
        let install = |bytes: &[u8]| install_atomically(bytes, &destination).unwrap();

        assert_eq!(install(b"first"), Installed::Replaced { size: 5 });
        assert_eq!(install(b"first"), Installed::Unchanged);
        assert_eq!(install(b"second"), Installed::Replaced { size: 6 });
        assert_eq!(fs::read(&destination).unwrap(), b"second");
        let left: Vec<String> = fs::read_dir(dir.path().join("modules"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["enemy_ai.wasm"], "no temporary file is left behind");
    }
}
