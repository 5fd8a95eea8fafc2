//! Mistakes a guest's source shows that its build does not: said once per
//! build, beside the build's line.

use std::fs;
use std::path::Path;

use crate::project::{Guest, Lang};

/// What `guest`'s sources say it gets wrong, a sentence each.
pub fn lint(guest: &Guest) -> Vec<String> {
    if !matches!(guest.lang, Lang::Rust { .. }) {
        return Vec::new();
    }
    let mut sources = String::new();
    read_rust_files(&guest.dir.join("src"), &mut sources);
    let mut said = Vec::new();
    // `update` runs only in frames the script asked for: without
    // `every_frame(true)` it never runs, and nothing else says so.
    if implements_update(&sources) && !sources.contains("every_frame(") {
        said.push(format!(
            "{}: implements Script::update but never calls cx.every_frame(true), so update never runs",
            guest.module
        ));
    }
    said
}

/// Whether the sources define `fn update(` with the frame argument the
/// `Script` trait's `update` takes.
fn implements_update(sources: &str) -> bool {
    sources.match_indices("fn update(").any(|(at, _)| {
        let signature = &sources[at..];
        let end = signature.find('{').unwrap_or(signature.len());
        signature[..end].contains("Frame")
    })
}

/// Appends every `.rs` file under `dir` to `into`.
fn read_rust_files(dir: &Path, into: &mut String) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|entry| entry.path()) {
        if path.is_dir() {
            read_rust_files(&path, into);
        } else if path.extension().is_some_and(|ext| ext == "rs")
            && let Ok(text) = fs::read_to_string(&path)
        {
            into.push_str(&text);
            into.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest_with(source: &str) -> (tempfile::TempDir, Guest) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("src/ai")).unwrap();
        fs::write(dir.path().join("src/ai/mod.rs"), source).unwrap();
        let guest = Guest {
            module: "spin".into(),
            dir: dir.path().to_path_buf(),
            lang: Lang::Rust {
                package: "spin".into(),
            },
        };
        (dir, guest)
    }

    const UPDATE: &str =
        "fn update(&mut self, _: &mut Cx<Self>, frame: Frame) -> Result<(), Error> {";

    #[test]
    fn an_update_that_never_asked_for_frames_is_named() {
        let (_dir, guest) = guest_with(UPDATE);
        let said = lint(&guest);
        let expected = "spin: implements Script::update but never calls cx.every_frame(true), \
                        so update never runs";
        assert_eq!(said, [expected]);
    }

    #[test]
    fn an_update_with_frames_asked_for_or_another_update_is_fine() {
        let asked = format!("cx.every_frame(true)?;\n{UPDATE}");
        assert!(lint(&guest_with(&asked).1).is_empty());
        let other = "fn update(&mut self, value: u32) {";
        assert!(lint(&guest_with(other).1).is_empty());
    }
}
