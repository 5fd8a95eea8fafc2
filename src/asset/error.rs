//! Why a module could not be loaded: [`WasmModuleLoaderError`], and what
//! it says of a component's imports when wasmtime refused it.

use std::sync::Arc;
use thiserror::Error;

use crate::capabilities::{ManifestError, NarrowingError};
use crate::trust::SignatureError;

/// Why a module could not be loaded. Every variant names the module.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WasmModuleLoaderError {
    /// The file could not be read.
    #[error("could not read module {path}: {source}")]
    Io {
        /// The module's asset path.
        path: String,
        /// What the reader reported.
        #[source]
        source: std::io::Error,
    },
    /// The module's signature was refused: it is unsigned where its source
    /// requires a signature, the signature is malformed, names an untrusted
    /// key, or does not match the bytes. Nothing was compiled.
    #[error("module {path} was refused: {error}")]
    Signature {
        /// The module's asset path.
        path: String,
        /// Why, by kind.
        #[source]
        error: SignatureError,
    },
    /// The bytes do not start with the WebAssembly magic number.
    #[error("module {path} is not WebAssembly: it does not start with the `\\0asm` magic bytes")]
    NotWasm {
        /// The module's asset path.
        path: String,
    },
    /// A core WebAssembly module, where a component is needed.
    #[error(
        "module {path} is a core WebAssembly module, not a component: build it for \
         `wasm32-wasip2`, or wrap it with `wasm-tools component new`"
    )]
    CoreModule {
        /// The module's asset path.
        path: String,
    },
    /// A component header, but wasmtime could not validate or compile it
    /// (truncated or corrupt bytes, an unsupported proposal, ...).
    #[error("module {path} is not a valid component: {error:#}{imports}")]
    Compile {
        /// The module's asset path.
        path: String,
        /// wasmtime's error (shared, so a failed load can be kept and cloned).
        #[source]
        error: Arc<wasmtime::Error>,
        /// The imports this host does not provide, when they explain the
        /// refusal (a component over the validator's limits); else empty.
        imports: String,
    },
    /// The component lacks an export of the `hotwasm:script` world.
    #[error(
        "module {path} does not export `{export}`: it was not built for the hotwasm:script world"
    )]
    MissingExport {
        /// The module's asset path.
        path: String,
        /// The missing export's WIT name.
        export: String,
    },
    /// The component imports something this host does not provide, or
    /// provides with another type.
    #[error("module {path} cannot be linked: {error:#}{world}")]
    UnsatisfiedImport {
        /// The module's asset path.
        path: String,
        /// wasmtime's error, which names the import.
        #[source]
        error: Arc<wasmtime::Error>,
        /// When the module was built for another version of the
        /// `hotwasm:script` world: which, and the one this host speaks.
        world: String,
    },
    /// The module's `hotwasm:capabilities` section, or the capabilities
    /// of its `.wasm.meta`, could not be read.
    #[error("module {path} has a capability manifest that cannot be read: {error}")]
    Capabilities {
        /// The module's asset path.
        path: String,
        /// Which line, and why.
        #[source]
        error: ManifestError,
    },
    /// Its `.wasm.meta` asks for capabilities beyond what the module is
    /// granted: a meta file may only narrow a grant.
    #[error("module {path} was refused: {error}")]
    WideningMeta {
        /// The module's asset path.
        path: String,
        /// What it asked for beyond the grant.
        #[source]
        error: NarrowingError,
    },
    /// An export of the `hotwasm:script` world has the wrong type.
    #[error("module {path} has an export of the wrong type: {error:#}")]
    ExportMismatch {
        /// The module's asset path.
        path: String,
        /// wasmtime's error, which names the export.
        #[source]
        error: Arc<wasmtime::Error>,
    },
}

impl Clone for WasmModuleLoaderError {
    /// The same error; an I/O error keeps its kind and its message.
    fn clone(&self) -> Self {
        match self {
            Self::Io { path, source } => Self::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Self::Signature { path, error } => Self::Signature {
                path: path.clone(),
                error: error.clone(),
            },
            Self::NotWasm { path } => Self::NotWasm { path: path.clone() },
            Self::CoreModule { path } => Self::CoreModule { path: path.clone() },
            Self::Compile {
                path,
                error,
                imports,
            } => Self::Compile {
                path: path.clone(),
                error: error.clone(),
                imports: imports.clone(),
            },
            Self::MissingExport { path, export } => Self::MissingExport {
                path: path.clone(),
                export: export.clone(),
            },
            Self::UnsatisfiedImport { path, error, world } => Self::UnsatisfiedImport {
                path: path.clone(),
                error: error.clone(),
                world: world.clone(),
            },
            Self::Capabilities { path, error } => Self::Capabilities {
                path: path.clone(),
                error: error.clone(),
            },
            Self::WideningMeta { path, error } => Self::WideningMeta {
                path: path.clone(),
                error: error.clone(),
            },
            Self::ExportMismatch { path, error } => Self::ExportMismatch {
                path: path.clone(),
                error: error.clone(),
            },
        }
    }
}

/// The most imports [`describe_unprovided_imports`] names.
const NAMED_IMPORTS: usize = 3;

/// For a component wasmtime refused: how many instances it imports at its
/// top level, and which of them this host does not provide (every import
/// the host links is a `wasi:` or `hotwasm:` interface), so an error such
/// as the validator's instance limit still names what is missing. Empty
/// when every import is one the host may provide.
/// The version of the `hotwasm:script` world this host speaks (`wit/world.wit`).
const WORLD_VERSION: &str = "0.4.0";

/// When a component imports `hotwasm:script` interfaces of another
/// version: which, and the one this host speaks; else empty.
pub(super) fn describe_other_world(bytes: &[u8]) -> String {
    let other = (top_level_imports(bytes).into_iter())
        .filter_map(|name| name.strip_prefix("hotwasm:script/")?.split_once('@'))
        .map(|(_, version)| version)
        .find(|version| *version != WORLD_VERSION);
    match other {
        Some(version) => format!(
            " (it was built for hotwasm:script@{version}; this game speaks \
             hotwasm:script@{WORLD_VERSION}: rebuild it with the hotwasm-sdk \
             released with this bevy_hotwasm)"
        ),
        None => String::new(),
    }
}

pub(super) fn describe_unprovided_imports(bytes: &[u8]) -> String {
    let imports = top_level_imports(bytes);
    let mut unprovided: Vec<&str> = (imports.iter().copied())
        .filter(|name| !(name.starts_with("wasi:") || name.starts_with("hotwasm:")))
        .collect();
    if unprovided.is_empty() {
        return String::new();
    }
    let more = unprovided.len().saturating_sub(NAMED_IMPORTS);
    unprovided.truncate(NAMED_IMPORTS);
    let named = unprovided.join("`, `");
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        " (it imports {} items; this host provides none of `{named}`{more}: only \
         `wasi:` and `hotwasm:` interfaces)",
        imports.len()
    )
}

/// The names a component imports itself (not those of components or
/// modules nested in it), as far as its bytes can be read.
fn top_level_imports(bytes: &[u8]) -> Vec<&str> {
    use wasmparser::{Parser, Payload};
    let (mut names, mut depth) = (Vec::new(), 0usize);
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::ModuleSection { .. } | Payload::ComponentSection { .. }) => depth += 1,
            Ok(Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(Payload::ComponentImportSection(section)) if depth == 0 => {
                names.extend(section.into_iter().flatten().map(|import| import.name.name));
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asset::WasmModule;
    use crate::engine::WasmEngine;

    #[test]
    fn the_world_version_is_the_one_in_wit() {
        let world = include_str!("../../wit/world.wit");
        assert!(world.contains(&format!("\npackage hotwasm:script@{WORLD_VERSION};\n")));
    }

    #[test]
    fn a_module_built_for_another_world_version_says_which_and_what_the_game_speaks() {
        let counter = include_bytes!("../../assets/modules/counter.wasm");
        let old = replace_all(counter, b"@0.4.0", b"@0.3.0");
        let engine = WasmEngine::build(Default::default(), &Default::default()).unwrap();
        let Err(error) = WasmModule::from_bytes(&engine, "modules/old.wasm", &old) else {
            panic!("a module built for hotwasm:script@0.3.0 loaded");
        };
        let said = error.to_string();
        assert!(
            said.starts_with("module modules/old.wasm cannot be linked: "),
            "{said}"
        );
        assert!(
            said.ends_with(
                " (it was built for hotwasm:script@0.3.0; this game speaks \
                 hotwasm:script@0.4.0: rebuild it with the hotwasm-sdk released with this \
                 bevy_hotwasm)"
            ),
            "{said}"
        );
        assert_eq!(
            describe_other_world(counter),
            "",
            "the same version says nothing"
        );
    }

    fn replace_all(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        let mut at = 0;
        while let Some(found) = out[at..]
            .windows(from.len())
            .position(|window| window == from)
        {
            out[at + found..at + found + from.len()].copy_from_slice(to);
            at += found + from.len();
        }
        out
    }

    #[test]
    fn a_component_over_the_validators_limits_is_refused_naming_its_imports() {
        let imports: String = (0..10_000)
            .map(|n| format!("(import \"mod:missing/thing-{n}\" (instance))\n"))
            .collect();
        let bytes = wat::parse_str(format!("(component {imports})")).unwrap();
        let engine = WasmEngine::build(Default::default(), &Default::default()).unwrap();
        let Err(WasmModuleLoaderError::Compile {
            path,
            error,
            imports,
        }) = WasmModule::from_bytes(&engine, "modules/many.wasm", &bytes)
        else {
            panic!("expected a compile error");
        };
        assert_eq!(path, "modules/many.wasm");
        assert!(format!("{error:#}").contains("exceeds limit"), "{error:#}");
        assert!(
            imports.contains(
                "it imports 10000 items; this host provides none of `mod:missing/thing-0`, \
                 `mod:missing/thing-1`, `mod:missing/thing-2` and 9997 more"
            ),
            "{imports}"
        );
    }
}
