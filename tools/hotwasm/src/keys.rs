//! `hotwasm keygen`, `sign` and `verify`: ed25519 keys and module
//! signatures for bevy_hotwasm's trust policy, without OpenSSL.
//!
//! Keys are the files OpenSSL uses (`openssl genpkey -algorithm ed25519`
//! private keys in PKCS#8 PEM, `openssl pkey -pubout` public keys), so either
//! tool can make them. `sign` writes `<module>.sig`: a `key: <fingerprint>`
//! line and the signature in base64. `verify` accepts that and OpenSSL's raw
//! 64-byte signatures (`openssl pkeyutl -sign -rawin`), as the game does.
//! `sign` and `verify` print what the module asks for (its
//! `hotwasm:capabilities` section), which the signature covers.

use std::path::{Path, PathBuf};

use bevy::asset::io::AssetSourceId;
use bevy_hotwasm::capabilities::find_section;
use bevy_hotwasm::trust::{Signatures, private_key_pem, sign_module, signature_path};
use bevy_hotwasm::{Capabilities, TrustPolicy, TrustedKey};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePublicKey};

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))
}

fn write(path: &Path, contents: &[u8]) -> Result<(), String> {
    std::fs::write(path, contents)
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// Writes a new key pair: `<prefix>.key.pem` (secret) and `<prefix>.pub.pem`.
pub fn keygen(prefix: &str) -> Result<(), String> {
    let mut seed = [0; 32];
    getrandom::fill(&mut seed).map_err(|error| format!("no randomness: {error}"))?;
    let key = SigningKey::from_bytes(&seed);
    let private = private_key_pem(&key);
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|error| error.to_string())?;
    let (private_path, public_path) = (
        PathBuf::from(format!("{prefix}.key.pem")),
        PathBuf::from(format!("{prefix}.pub.pem")),
    );
    if let Some(dir) = private_path.parent() {
        std::fs::create_dir_all(dir).map_err(|error| error.to_string())?;
    }
    write(&private_path, private.as_bytes())?;
    write(&public_path, public.as_bytes())?;
    let fingerprint = TrustedKey::from_bytes(public.as_bytes())
        .map_err(|error| error.to_string())?
        .fingerprint();
    println!(
        "wrote {} (keep it secret) and {} (fingerprint {fingerprint})",
        private_path.display(),
        public_path.display()
    );
    Ok(())
}

/// The private key in `path` (PKCS#8 PEM, as `keygen` and OpenSSL write it).
pub fn signing_key(path: &Path) -> Result<SigningKey, String> {
    let pem = String::from_utf8(read(path)?)
        .map_err(|_| format!("{} is not PEM text", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|error| format!("{} is not an ed25519 private key: {error}", path.display()))
}

/// Signs `module` with the private key: writes `<module>.sig`.
pub fn sign(private_key: &Path, module: &Path) -> Result<(), String> {
    let key = signing_key(private_key)?;
    let bytes = read(module)?;
    let requested = requested(module, &bytes)?;
    let signature = sign_module(&key, &bytes);
    write(&signature_path(module), signature.as_bytes())?;
    println!("wrote {}", signature_path(module).display());
    println!("{requested}");
    Ok(())
}

/// What `module` asks for, as a sentence and its manifest.
fn requested(module: &Path, bytes: &[u8]) -> Result<String, String> {
    let Some(section) = find_section(bytes) else {
        return Ok(format!(
            "{} asks for no capabilities: signed, it gets none (see CapabilityPolicy)",
            module.display()
        ));
    };
    let manifest = String::from_utf8(section)
        .map_err(|_| format!("{}: its capability manifest is not UTF-8", module.display()))?;
    let capabilities = Capabilities::parse(&manifest)
        .map_err(|error| format!("{}: its capability manifest: {error}", module.display()))?;
    Ok(format!("{} asks for:\n{capabilities}", module.display()))
}

/// Checks `<module>.sig` against `module` and the public key, as the game does.
pub fn verify(public_key: &Path, module: &Path) -> Result<(), String> {
    let key = TrustedKey::from_bytes(&read(public_key)?)
        .map_err(|error| format!("{}: {error}", public_key.display()))?;
    let signature = read(&signature_path(module))?;
    let policy = TrustPolicy::new()
        .with_key(public_key.display().to_string(), key)
        .with_signatures(AssetSourceId::Default, Signatures::Required);
    let bytes = read(module)?;
    policy
        .verify(&AssetSourceId::Default, &bytes, Some(&signature))
        .map_err(|error| format!("{}: {error}", module.display()))?;
    println!("{}: good signature", module.display());
    println!("{}", requested(module, &bytes)?);
    Ok(())
}
