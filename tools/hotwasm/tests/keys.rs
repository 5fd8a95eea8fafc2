//! `hotwasm keygen`, `sign` and `verify`, run as a script author runs them:
//! the built command on real files, a committed guest as the module.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `hotwasm` with `args` in `dir`.
fn hotwasm(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hotwasm"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("hotwasm runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A copy of the committed `hello` guest in `dir`.
fn module_in(dir: &Path) -> PathBuf {
    let guest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/modules/hello.wasm");
    let module = dir.join("hello.wasm");
    std::fs::copy(&guest, &module).unwrap();
    module
}

#[test]
fn a_key_made_by_keygen_signs_a_module_that_verify_accepts() {
    let dir = tempfile::tempdir().unwrap();
    module_in(dir.path());

    let keygen = hotwasm(dir.path(), &["keygen", "keys/release"]);
    assert!(keygen.status.success(), "{}", text(&keygen.stderr));
    assert!(text(&keygen.stdout).contains("fingerprint"));
    let private = std::fs::read_to_string(dir.path().join("keys/release.key.pem")).unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    let public = std::fs::read_to_string(dir.path().join("keys/release.pub.pem")).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));

    let sign = hotwasm(dir.path(), &["sign", "keys/release.key.pem", "hello.wasm"]);
    assert!(sign.status.success(), "{}", text(&sign.stderr));
    assert!(dir.path().join("hello.wasm.sig").exists());

    let verify = hotwasm(
        dir.path(),
        &["verify", "keys/release.pub.pem", "hello.wasm"],
    );
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    assert!(text(&verify.stdout).contains("hello.wasm: good signature"));
}

#[test]
fn verify_refuses_a_changed_module_and_another_key_naming_the_module_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let module = module_in(dir.path());
    for prefix in ["release", "other"] {
        assert!(hotwasm(dir.path(), &["keygen", prefix]).status.success());
    }
    assert!(
        hotwasm(dir.path(), &["sign", "release.key.pem", "hello.wasm"])
            .status
            .success()
    );

    let other = hotwasm(dir.path(), &["verify", "other.pub.pem", "hello.wasm"]);
    assert_eq!(other.status.code(), Some(1));
    let error = text(&other.stderr);
    assert!(
        error.contains("hello.wasm: it is signed by key") && error.contains("not trusted"),
        "{error}"
    );

    let mut bytes = std::fs::read(&module).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&module, bytes).unwrap();
    let changed = hotwasm(dir.path(), &["verify", "release.pub.pem", "hello.wasm"]);
    assert_eq!(changed.status.code(), Some(1));
    let error = text(&changed.stderr);
    assert!(
        error.contains("hello.wasm: its signature does not match its bytes"),
        "{error}"
    );
}

#[test]
fn a_wrong_command_line_prints_the_usage() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = hotwasm(dir.path(), &["sing", "key", "module"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(text(&wrong.stderr).contains("hotwasm sign <private key> <module>"));
}
