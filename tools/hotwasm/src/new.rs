//! `hotwasm new`: a guest crate in the game, ready for `hotwasm build`.
//!
//! A Rust guest is a crate of its own (its own `[workspace]`, so the game's
//! workspace, if any, stays as it is) with the profiles guests want. A Zig
//! guest gets a `main.zig` and the bindings of the `hotwasm:script` world
//! this command was made with.

use std::fs;
use std::path::{Path, PathBuf};

use crate::project::{CONFIG_FILE, DEFAULT_CONFIG, Project, module_name};

/// The `hotwasm-sdk` release a new Rust guest depends on (this command's
/// own version: they are released together).
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The language of a new guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewLang {
    Rust,
    Zig,
}

/// The bindings every Zig guest builds with, made by `wit-bindgen c` from
/// the `hotwasm:script` world (`scripts/zig-bindings.sh` in the repository).
const ZIG_BINDINGS: [(&str, &[u8]); 5] = [
    ("hotwasm.zig", include_bytes!("../zig-bindings/hotwasm.zig")),
    ("script.c", include_bytes!("../zig-bindings/script.c")),
    ("script.h", include_bytes!("../zig-bindings/script.h")),
    (
        "script_component_type.o",
        include_bytes!("../zig-bindings/script_component_type.o"),
    ),
    ("wit.sha256", include_bytes!("../zig-bindings/wit.sha256")),
];

/// Makes guest `name` under the game at or above `start` (writing a
/// `hotwasm.toml` in `start` when there is none); the folder made and the
/// project.
pub fn new_guest(start: &Path, name: &str, lang: NewLang) -> Result<(PathBuf, Project), String> {
    check_name(name)?;
    let project = match Project::find(start) {
        Ok(project) => project,
        Err(_) => {
            write(&start.join(CONFIG_FILE), DEFAULT_CONFIG.as_bytes())?;
            Project::open(start)?
        }
    };
    if project.guests.contains_key(&module_name(name)) {
        return Err(format!("a guest named {name} is already there"));
    }
    let dir = project.new_guests_dir.join(name);
    if dir.exists() {
        return Err(format!("{} is already there", dir.display()));
    }
    match lang {
        NewLang::Rust => {
            write(&dir.join("Cargo.toml"), rust_manifest(name).as_bytes())?;
            write(&dir.join("src/lib.rs"), rust_script(name).as_bytes())?;
            write(&dir.join(".gitignore"), b"/target\n/Cargo.lock\n")?;
        }
        NewLang::Zig => {
            write(&dir.join("src/main.zig"), zig_script(name).as_bytes())?;
            for (file, bytes) in ZIG_BINDINGS {
                write(&dir.join("bindings").join(file), bytes)?;
            }
        }
    }
    // Opened again: the project now has the new guest.
    let project = Project::open(&project.root)?;
    Ok((dir, project))
}

/// A crate name cargo accepts and a module file name Bevy loads as is.
fn check_name(name: &str) -> Result<(), String> {
    let starts_well = name.starts_with(|c: char| c.is_ascii_lowercase());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    match starts_well && rest_ok {
        true => Ok(()),
        false => Err(format!(
            "`{name}` cannot name a guest: use lower-case letters, digits, `-` and `_`, starting with a letter"
        )),
    }
}

/// `enemy-ai` as a Rust type name: `EnemyAi`.
fn type_name(name: &str) -> String {
    let words = name.split(['-', '_']).filter(|word| !word.is_empty());
    let capitalised = words.map(|word| {
        let (first, rest) = word.split_at(1);
        first.to_ascii_uppercase() + rest
    });
    capitalised.collect()
}

fn rust_manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
hotwasm-sdk = "{SDK_VERSION}"

# A guest builds on its own, with these profiles: `hotwasm build` uses
# release, `hotwasm watch` and `hotwasm build --dev` use dev.
[workspace]

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = "debuginfo"

[profile.dev]
opt-level = 1
debug = false
panic = "abort"
"#
    )
}

fn rust_script(name: &str) -> String {
    let (module, script) = (module_name(name), type_name(name));
    format!(
        r#"//! {name}: a bevy_hotwasm script. `hotwasm build` makes
//! assets/modules/{module}.wasm; `hotwasm watch` rebuilds it on every save
//! while the game runs, and the game swaps it in, keeping `frames`. The
//! game can ask it how many: `world.ask_script::<_, u64>(entity,
//! "{name}/frames", &())`.

use hotwasm_sdk::{{Cx, Error, Frame, Script, info}};

// What the script may touch, granted within the game's ceilings. A
// signature covers it; a signed module that asks for nothing gets nothing.
hotwasm_sdk::capabilities!(
    "
    messages.subscribe {name}/ping
    messages.send      {name}/pong
    requests.answer    {name}/frames
    frame
    "
);

#[derive(Default)]
struct {script} {{
    /// Frames this script has run, kept across hot reloads.
    frames: u64,
}}

impl Script for {script} {{
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {{
        let generation = hotwasm_sdk::generation();
        info!("{name} started: generation {{generation}}, {{}} frames so far", self.frames);
        cx.every_frame(true)?;
        cx.on_request("{name}/frames", |me, _, (): ()| Ok(me.frames))?;
        cx.on_message("{name}/ping", |me, _, message| {{
            info!("ping after {{}} frames", me.frames);
            hotwasm_sdk::send("{name}/pong", message.payload)
        }})
    }}

    fn update(&mut self, _: &mut Cx<Self>, _frame: Frame) -> Result<(), Error> {{
        self.frames += 1;
        if self.frames == 1 {{
            info!("first frame");
        }}
        Ok(())
    }}

    fn save_state(&self) -> Option<Vec<u8>> {{
        hotwasm_sdk::save_u64(self.frames)
    }}

    fn restore_state(&mut self, state: &[u8]) -> Result<(), Error> {{
        self.frames = hotwasm_sdk::restore_u64(state)?;
        Ok(())
    }}
}}

hotwasm_sdk::export_script!({script});
"#
    )
}

fn zig_script(name: &str) -> String {
    let module = module_name(name);
    format!(
        r#"//! {name}: a bevy_hotwasm script in Zig. `hotwasm build` makes
//! assets/modules/{module}.wasm; it counts its starts and keeps the count
//! across hot reloads. The exports are the `exports_script_*` functions
//! `bindings/script.h` declares; `bindings/hotwasm.zig` logs and keeps state.

const hotwasm = @import("hotwasm.zig");
const wit = hotwasm.wit;

var starts: u64 = 0;

export fn exports_script_init(err: *wit.script_string_t) bool {{
    _ = err;
    starts += 1;
    hotwasm.info("{name} started: start {{d}}", .{{starts}});
    return true;
}}

export fn exports_script_save_state(state: *wit.script_list_u8_t) bool {{
    return hotwasm.saveU64(state, starts);
}}

export fn exports_script_restore_state(state: *wit.script_list_u8_t, err: *wit.script_string_t) bool {{
    return hotwasm.restoreU64(state, err, &starts);
}}

export fn exports_script_handle_batch(batch: *wit.script_batch_t, changes: *wit.script_list_tuple2_u32_list_u8_t) void {{
    wit.script_batch_free(batch);
    changes.* = .{{ .ptr = null, .len = 0 }};
}}

export fn exports_script_handle_frame(now: wit.script_instant_t, frame: *wit.script_frame_t, changes: *wit.script_list_tuple2_u32_list_u8_t) void {{
    _ = now;
    wit.script_frame_free(frame);
    changes.* = .{{ .ptr = null, .len = 0 }};
}}

export fn exports_script_handle_requests(now: wit.script_instant_t, requests: *wit.script_list_request_t, request_bytes: *wit.script_list_u8_t, answers: *wit.script_list_result_list_u8_request_error_t) void {{
    _ = now;
    hotwasm.answerNone(requests, request_bytes, answers);
}}
"#
    )
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|error| format!("cannot make {}: {error}", dir.display()))?;
    }
    fs::write(path, bytes).map_err(|error| format!("cannot write {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::Lang;

    #[test]
    fn a_new_guest_is_listed_by_a_new_hotwasm_toml_and_named_once() {
        let dir = tempfile::tempdir().unwrap();
        let (guest, project) = new_guest(dir.path(), "enemy-ai", NewLang::Rust).unwrap();
        assert_eq!(guest, dir.path().join("guests/enemy-ai"));
        assert!(dir.path().join(CONFIG_FILE).is_file());
        let package = "enemy-ai".to_string();
        assert_eq!(project.guests["enemy_ai"].lang, Lang::Rust { package });
        let script = fs::read_to_string(guest.join("src/lib.rs")).unwrap();
        assert!(script.contains("struct EnemyAi"), "{script}");
        assert!(script.contains("export_script!(EnemyAi)"), "{script}");

        let again = new_guest(&guest, "enemy_ai", NewLang::Zig).unwrap_err();
        assert_eq!(again, "a guest named enemy_ai is already there");
        let (_, project) = new_guest(&guest.join("src"), "boss", NewLang::Zig).unwrap();
        assert_eq!(project.guests["boss"].lang, Lang::Zig);
        assert!(dir.path().join("guests/boss/bindings/script.h").is_file());
    }

    #[test]
    fn a_name_cargo_or_bevy_would_refuse_is_refused_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["Spin", "1st", "a b", "../up", ""] {
            let error = new_guest(dir.path(), name, NewLang::Rust).unwrap_err();
            assert!(error.contains("cannot name a guest"), "{name}: {error}");
        }
    }

    #[test]
    fn the_sdk_a_new_guest_asks_for_is_the_one_in_this_repository() {
        let sdk = include_str!("../../../guests/sdk/Cargo.toml");
        assert!(sdk.contains(&format!("\nversion = \"{SDK_VERSION}\"\n")));
    }
}
