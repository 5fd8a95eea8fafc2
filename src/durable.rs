//! Writing a file so that a crash leaves the old version or the new one,
//! never half of one.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Replaces `target` with `bytes`: written to `temp` (in the same
/// directory), synced, renamed over `target`, and the directory synced so
/// the rename itself is durable.
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
