//! `hotwasm`: the command for bevy_hotwasm script authors, in any game.
//!
//! ```text
//! hotwasm new spin                 # guests/spin: a Rust guest (and hotwasm.toml if the game has none)
//! hotwasm build                    # every guest, release profile -> assets/modules/<guest>.wasm
//! hotwasm watch                    # rebuild a guest with the quick profile on every save
//! hotwasm keygen keys/release      # keys/release.key.pem + keys/release.pub.pem
//! hotwasm sign keys/release.key.pem assets/modules/spin.wasm
//! hotwasm verify keys/release.pub.pem assets/modules/spin.wasm
//! ```
//!
//! `cargo install hotwasm-cli` installs it; from the bevy_hotwasm
//! repository, `cargo run -p hotwasm-cli -- <command>`. The game's
//! `hotwasm.toml` (at or above the current folder) says where its guests
//! are and where modules go.

#![forbid(unsafe_code)]

mod build;
mod install;
mod keys;
mod lint;
mod new;
mod project;
mod watch;
mod zig;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::build::Build;
use crate::new::NewLang;
use crate::project::Project;
use crate::watch::Watch;

const USAGE: &str = "usage:
  hotwasm new <name> [--lang rust|zig]      a guest crate in the game (guests/<name>)
  hotwasm build [<guest>...] [--out <dir>] [--release|--dev] [--sign <private key>]
                                            guests to components in the game's assets
  hotwasm watch [<guest>...] [--build-first]
                                            rebuild a guest quickly on every save
  hotwasm keygen <out prefix>               a new ed25519 key pair: <prefix>.key.pem, <prefix>.pub.pem
  hotwasm sign <private key> <module>       writes <module>.sig
  hotwasm verify <public key> <module>      checks <module>.sig as the game does";

/// A command line this command does not take.
struct Usage(String);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            eprintln!("hotwasm: {error}");
            ExitCode::FAILURE
        }
        Err(Usage(problem)) => {
            eprintln!("hotwasm: {problem}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<Result<(), String>, Usage> {
    let (command, rest) = args
        .split_first()
        .ok_or_else(|| Usage("which command?".into()))?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    Ok(match (command.as_str(), &rest[..]) {
        ("-h" | "--help" | "help", _) => {
            println!("{USAGE}");
            Ok(())
        }
        ("new", rest) => new(rest)?,
        ("build", rest) => build(rest)?,
        ("watch", rest) => watch(rest)?,
        ("keygen", [prefix]) => keys::keygen(prefix),
        ("sign", [key, module]) => keys::sign(Path::new(key), Path::new(module)),
        ("verify", [key, module]) => keys::verify(Path::new(key), Path::new(module)),
        (other, _) => return Err(Usage(format!("cannot read `{other}` with these arguments"))),
    })
}

fn current_dir() -> Result<PathBuf, String> {
    std::env::current_dir().map_err(|error| format!("no current folder: {error}"))
}

fn new(args: &[&str]) -> Result<Result<(), String>, Usage> {
    let (name, lang) = match args {
        [name] => (*name, NewLang::Rust),
        [name, "--lang", "rust"] => (*name, NewLang::Rust),
        [name, "--lang", "zig"] => (*name, NewLang::Zig),
        _ => {
            return Err(Usage(
                "new takes a name and, optionally, --lang rust|zig".into(),
            ));
        }
    };
    Ok(current_dir().and_then(|start| {
        let (dir, project) = new::new_guest(&start, name, lang)?;
        let module = project::module_name(name);
        println!("made {}", dir.display());
        println!(
            "next: `hotwasm build {name}` writes {}, which the game loads with\n  \
             commands.spawn(WasmScript(assets.load(\"modules/{module}.wasm\")));",
            project.out.join(format!("{module}.wasm")).display()
        );
        if lang == NewLang::Zig {
            println!(
                "Zig guests need Zig {} on PATH (or ZIG=\"python3 -m ziglang\")",
                zig::ZIG_VERSION
            );
        }
        Ok(())
    }))
}

fn build(args: &[&str]) -> Result<Result<(), String>, Usage> {
    let (mut quick, mut out, mut key, mut names) = (false, None, None, Vec::new());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match *arg {
            "--dev" => quick = true,
            "--release" => quick = false,
            "--out" => {
                let dir = args
                    .next()
                    .ok_or_else(|| Usage("--out takes a folder".into()))?;
                out = Some(PathBuf::from(dir));
            }
            "--sign" => {
                let path = args
                    .next()
                    .ok_or_else(|| Usage("--sign takes a private key".into()))?;
                key = Some(PathBuf::from(path));
            }
            flag if flag.starts_with('-') => return Err(Usage(format!("unknown option `{flag}`"))),
            name => names.push(name.to_string()),
        }
    }
    Ok(current_dir().and_then(|start| {
        let project = Project::find(&start)?;
        let guests = project.select(&names)?;
        let out = out.map_or_else(|| project.out.clone(), |dir| start.join(dir));
        let sign = key
            .map(|path| keys::signing_key(&start.join(path)))
            .transpose()?;
        let mut build = Build::new(&project, out, quick, sign);
        let outcomes = build.run(&guests);
        for line in outcomes
            .iter()
            .flat_map(|outcome| outcome.lines(&build.out))
        {
            println!("{line}");
        }
        let failed = outcomes
            .iter()
            .filter(|outcome| outcome.result.is_err())
            .count();
        match failed {
            0 => Ok(()),
            n => Err(format!("{n} of {} guests did not build", outcomes.len())),
        }
    }))
}

fn watch(args: &[&str]) -> Result<Result<(), String>, Usage> {
    let (mut build_first, mut names) = (false, Vec::new());
    for arg in args {
        match *arg {
            "--build-first" => build_first = true,
            flag if flag.starts_with('-') => return Err(Usage(format!("unknown option `{flag}`"))),
            name => names.push(name.to_string()),
        }
    }
    Ok(current_dir().and_then(|start| {
        let project = Project::find(&start)?;
        let watched = project.select(&names)?;
        let build = Build::new(&project, project.out.clone(), true, None);
        Watch { build, watched }.run(build_first)
    }))
}
