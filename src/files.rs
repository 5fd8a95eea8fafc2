//! Files on disk: crash-safe replacement, and the content hash that tells
//! a repeat of the same bytes from a change.

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::Path;

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
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
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
