//! Signed modules from local files: the trust policy checks each module's
//! `.wasm.sig` in the loader, before anything is compiled, and a refused
//! update never replaces the running generation.

use bevy::asset::io::AssetSourceId;
use bevy::prelude::*;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::trust::{
    ModuleOrigin, SignatureError, Signatures, Verified, private_key_pem, sign_module,
};
use bevy_hotwasm::{FailureStage, ModuleTrust};
use ed25519_dalek::SigningKey;
use hotwasm_test_support::*;

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn trusted(key: &SigningKey) -> TrustedKey {
    TrustedKey::from_bytes(key.verifying_key().as_bytes()).unwrap()
}

/// An app whose local modules must be signed by one of `keys`.
fn signed_app(assets: &AssetDir, keys: &[(&str, &SigningKey)]) -> App {
    let mut trust =
        TrustPolicy::new().with_signatures(AssetSourceId::Default, Signatures::Required);
    for (id, key) in keys {
        trust = trust.with_key(*id, trusted(key));
    }
    let plugin = HotWasmPlugin { trust, ..default() };
    app_with_fake_watcher(assets, plugin)
}

/// Writes `module` and its signature by `key`, before the app starts.
fn write_signed(assets: &AssetDir, module: &[u8], key: &SigningKey) {
    assets.write("counter.wasm.sig", sign_module(key, module).as_bytes());
    assets.write("counter.wasm", module);
}

/// Saves `module` and its signature by `key` while the app runs: one
/// update, both changes reported before the next frame.
fn save_signed(app: &App, assets: &AssetDir, module: &[u8], key: &SigningKey) {
    assets.save(app, "counter.wasm.sig", sign_module(key, module).as_bytes());
    assets.save(app, "counter.wasm", module);
}

/// Who the module `entity` runs was signed by, and where it came from.
fn signer(app: &App, entity: Entity) -> (Option<Verified>, ModuleOrigin) {
    let handle = &app.world().get::<WasmScript>(entity).unwrap().0;
    let module = app.world().resource::<Assets<WasmModule>>().get(handle);
    let module = module.expect("running");
    (module.verified().cloned(), module.origin().clone())
}

fn signed_by(key_id: &str, key: &SigningKey) -> (Option<Verified>, ModuleOrigin) {
    let verified = Verified::Signed {
        key_id: key_id.to_owned(),
        fingerprint: trusted(key).fingerprint(),
    };
    (Some(verified), ModuleOrigin::File)
}

fn start(app: &mut App) -> Entity {
    let entity = spawn_script(app, "counter.wasm");
    update_until(app, "the module to run or be refused", |app| {
        generation(app, entity).is_some() || !seen(app).failed.is_empty()
    });
    entity
}

#[test]
fn an_unsigned_module_is_refused_where_signatures_are_required() {
    let assets = AssetDir::new();
    assets.write("counter.wasm", &guest_bytes("counter"));
    let mut app = signed_app(&assets, &[("release", &signing_key(1))]);

    let entity = start(&mut app);

    assert_eq!(generation(&app, entity), None);
    assert!(matches!(
        seen(&app).refused[..],
        [SignatureError::Unsigned { .. }]
    ));
    let failure = &seen(&app).failed[0];
    assert_eq!(failure.stage, FailureStage::Verify);
    assert!(
        failure.cause.contains("counter.wasm") && failure.cause.contains("not signed"),
        "{}",
        failure.cause
    );
}

#[test]
fn a_tampered_update_never_replaces_the_trusted_module() {
    let assets = AssetDir::new();
    let key = signing_key(1);
    let original = guest_bytes("counter");
    write_signed(&assets, &original, &key);
    let mut app = signed_app(&assets, &[("release", &key)]);
    let entity = start(&mut app);
    assert_eq!(generation(&app, entity), Some(1));

    // New bytes, old signature: refused, generation 1 keeps running.
    assets.save(&app, "counter.wasm", &rebuilt(&original, 1));
    update_until(&mut app, "the refusal", |app| !seen(app).refused.is_empty());
    let tampered = SignatureError::BadSignature {
        key_id: Some("release".into()),
    };
    assert!(seen(&app).refused.iter().all(|error| *error == tampered));
    run_frames(&mut app, 5);
    assert_eq!(generation(&app, entity), Some(1));

    // Its signature arrives: the signature file is a dependency, so the
    // module reloads.
    assets.save(
        &app,
        "counter.wasm.sig",
        sign_module(&key, &rebuilt(&original, 1)).as_bytes(),
    );
    // (The refused version counted as generation 2.)
    update_until(&mut app, "the signed update", |app| {
        generation(app, entity).is_some_and(|generation| generation > 2)
    });
}

#[test]
fn keys_rotate_and_a_revoked_key_is_refused() {
    let assets = AssetDir::new();
    let (old, new) = (signing_key(1), signing_key(2));
    let original = guest_bytes("counter");
    write_signed(&assets, &original, &old);
    let mut app = signed_app(&assets, &[("2025", &old), ("2026", &new)]);
    let entity = start(&mut app);
    assert_eq!(generation(&app, entity), Some(1));
    assert_eq!(signer(&app, entity), signed_by("2025", &old));

    save_signed(&app, &assets, &rebuilt(&original, 1), &new);
    update_until(&mut app, "the update signed with the new key", |app| {
        generation(app, entity) == Some(2)
    });
    assert_eq!(signer(&app, entity), signed_by("2026", &new));
    // One save, one reload: the refusal below is the only change after it.
    run_frames(&mut app, 5);
    assert_eq!(generation(&app, entity), Some(2));

    // Revoke the old key while the game runs.
    app.world()
        .resource::<ModuleTrust>()
        .write()
        .remove_key("2025");
    save_signed(&app, &assets, &rebuilt(&original, 2), &old);
    update_until(&mut app, "the refusal", |app| !seen(app).refused.is_empty());
    let revoked = SignatureError::RevokedKey {
        key_id: "2025".to_owned(),
    };
    assert!(seen(&app).refused.iter().all(|error| *error == revoked));
    run_frames(&mut app, 5);
    assert_eq!(generation(&app, entity), Some(2));
}

#[test]
fn a_module_running_under_a_revoked_key_stops() {
    let assets = AssetDir::new();
    let key = signing_key(1);
    write_signed(&assets, &guest_bytes("counter"), &key);
    let mut app = signed_app(&assets, &[("2025", &key)]);
    let entity = start(&mut app);
    assert_eq!(generation(&app, entity), Some(1));

    app.world()
        .resource::<ModuleTrust>()
        .write()
        .remove_key("2025");
    update_until(&mut app, "the module loaded again and refused", |app| {
        !seen(app).refused.is_empty()
    });

    assert_eq!(generation(&app, entity), None, "its script stopped");
    let revoked = SignatureError::RevokedKey {
        key_id: "2025".to_owned(),
    };
    assert_eq!(seen(&app).refused, [revoked]);
    let lines = seen(&app).lines_of(entity).len();
    run_frames(&mut app, 10);
    assert_eq!(generation(&app, entity), None, "it stays stopped");
    assert_eq!(seen(&app).lines_of(entity).len(), lines, "nothing more ran");

    // Signed again by a trusted key, it runs again.
    let new_key = signing_key(2);
    (app.world().resource::<ModuleTrust>().write()).trust_key("2026", trusted(&new_key));
    save_signed(
        &app,
        &assets,
        &rebuilt(&guest_bytes("counter"), 1),
        &new_key,
    );
    update_until(&mut app, "the module signed by the new key", |app| {
        generation(app, entity).is_some()
    });
}

/// Whether the `openssl` command runs (tests that need it say when it
/// does not, and skip).
fn openssl_installed() -> bool {
    let Ok(version) = std::process::Command::new("openssl")
        .arg("version")
        .output()
    else {
        eprintln!("SKIPPED: the `openssl` command is not installed");
        return false;
    };
    assert!(version.status.success());
    true
}

#[test]
fn a_key_and_signature_made_by_the_openssl_command_line_verify() {
    if !openssl_installed() {
        return;
    }
    let assets = AssetDir::new();
    let module = assets.write("counter.wasm", &guest_bytes("counter"));
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = (keys.path().join("key.pem"), keys.path().join("pub.pem"));
    let openssl = |args: &[&std::ffi::OsStr]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "genpkey".as_ref(),
        "-algorithm".as_ref(),
        "ed25519".as_ref(),
        "-out".as_ref(),
        private.as_ref(),
    ]);
    openssl(&[
        "pkey".as_ref(),
        "-in".as_ref(),
        private.as_ref(),
        "-pubout".as_ref(),
        "-out".as_ref(),
        public.as_ref(),
    ]);
    let signature = assets.path().join("modules/counter.wasm.sig");
    openssl(&[
        "pkeyutl".as_ref(),
        "-sign".as_ref(),
        "-rawin".as_ref(),
        "-inkey".as_ref(),
        private.as_ref(),
        "-in".as_ref(),
        module.as_ref(),
        "-out".as_ref(),
        signature.as_ref(),
    ]);
    assert_eq!(
        std::fs::read(&signature).unwrap().len(),
        64,
        "raw signature"
    );

    let key = TrustedKey::from_bytes(&std::fs::read(&public).unwrap()).unwrap();
    let plugin = HotWasmPlugin {
        trust: TrustPolicy::new()
            .with_key("openssl", key)
            .with_signatures(AssetSourceId::Default, Signatures::Required),
        ..default()
    };
    let mut app = app_with(&assets, None, plugin, |_| {});
    let entity = start(&mut app);

    assert_eq!(generation(&app, entity), Some(1), "{:?}", seen(&app).failed);
}

#[test]
fn openssl_reads_our_keys_and_verifies_our_text_signatures() {
    if !openssl_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "openssl {args:?}: {stderr}");
    };
    let key = signing_key(9);
    std::fs::write(path("key.pem"), private_key_pem(&key)).unwrap();
    // OpenSSL 3.0 refuses PKCS#8 v2 private keys; ours are v1.
    openssl(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"]);
    let public = TrustedKey::from_bytes(&std::fs::read(path("pub.pem")).unwrap()).unwrap();
    assert_eq!(public, trusted(&key));

    // The book's command: the signature line, decoded, then verified.
    let module = guest_bytes("counter");
    std::fs::write(path("counter.wasm"), &module).unwrap();
    let signature = sign_module(&key, &module);
    let base64 = signature.lines().nth(1).unwrap();
    std::fs::write(path("counter.wasm.sig.b64"), base64).unwrap();
    openssl(&[
        "base64",
        "-d",
        "-A",
        "-in",
        "counter.wasm.sig.b64",
        "-out",
        "counter.raw",
    ]);
    openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "pub.pem",
        "-rawin",
        "-in",
        "counter.wasm",
        "-sigfile",
        "counter.raw",
    ]);
}
