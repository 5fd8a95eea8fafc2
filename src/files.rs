//! Files on disk: crash-safe replacement, and the content hash that tells
//! a repeat of the same bytes from a change.

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::Path;

/// Makes a directory's entries durable: a created, renamed or removed
/// file in it survives a power cut once this returns (on filesystems that
/// honour `fsync`).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(test)]
    synced::record(dir);
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents, each made durable in its parent.
pub(crate) fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|parent| !parent.as_os_str().is_empty());
    if let Some(parent) = parent {
        create_dir_durably(parent)?;
    }
    match std::fs::create_dir(dir) {
        Err(error) if error.kind() != io::ErrorKind::AlreadyExists => return Err(error),
        _ => {}
    }
    sync_dir(parent.unwrap_or(Path::new(".")))
}

/// Replaces `target` with `bytes`: written to `temp` (in the same
/// directory), synced, renamed over `target`, and the directory synced so
/// the rename itself is durable. A crash leaves the old version or the new
/// one, never half of one.
pub(crate) fn replace_file(temp: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(temp, target)?;
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => Ok(()),
    }
}

/// A hash of `bytes`, to tell a repeat of the same bytes from a change;
/// stable within one build of the game, not across builds.
pub(crate) fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// The directories synced on this thread, for tests to see that a change
/// was made durable without cutting the power.
#[cfg(test)]
pub(crate) mod synced {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        static SYNCED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn record(dir: &Path) {
        SYNCED.with_borrow_mut(|synced| synced.push(dir.to_owned()));
    }

    /// The directories synced since the last call.
    pub(crate) fn take() -> Vec<PathBuf> {
        SYNCED.take()
    }
}
