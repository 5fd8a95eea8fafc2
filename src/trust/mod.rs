//! Who may sign modules, and which modules must be signed.
//!
//! A signature is ed25519 over the module's exact bytes, stored beside it as
//! `<name>.wasm.sig`. The loader checks it before compiling anything, so a
//! tampered update never replaces a trusted module.
//!
//! [`TrustPolicy`], [`TrustedKey`] and [`ModuleTrust`] are also at the
//! crate root; here are the rest: signing ([`sign_module`],
//! [`private_key_pem`], [`signature_path`]), the rules per asset source
//! ([`Signatures`]), the errors ([`KeyError`], [`SignatureError`]), and a
//! loaded module's provenance: who signed it ([`Verified`]) and where its
//! bytes came from ([`ModuleOrigin`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bevy::asset::io::AssetSourceId;
use bevy::prelude::Resource;
use ed25519_dalek::pkcs8::spki::SubjectPublicKeyInfoRef;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{Document, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use crate::source::ModuleOrigin;

/// The line a text signature may start with to name its key, followed by
/// the key's [fingerprint](TrustedKey::fingerprint).
pub const SIGNATURE_KEY_PREFIX: &str = "key:";

/// Whether a module must be signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signatures {
    /// A module without a `.sig` loads; one with a `.sig` must verify.
    Optional,
    /// A module loads only with a signature by a trusted key.
    Required,
}

/// A trusted ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedKey {
    key: VerifyingKey,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustedKey({})", self.fingerprint())
    }
}

/// Why a public key could not be trusted. Each says what to do instead.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// A private key was given where its public half belongs.
    #[error(
        "this is a private key: give its public half instead \
         (`openssl pkey -in key.pem -pubout -out key.pub.pem`), and keep this one secret"
    )]
    PrivateKey,
    /// A public key of another algorithm.
    #[error("this is {algorithm} key: only ed25519 keys are supported")]
    NotEd25519 {
        /// The algorithm, e.g. `an RSA`, `an EC (P-256 or another curve)`.
        algorithm: String,
    },
    /// 32 bytes that are not a point on the ed25519 curve.
    #[error("not an ed25519 public key: its 32 bytes are not a point on the curve")]
    InvalidPoint,
    /// A small-order point, which would verify forged signatures.
    #[error("a small-order ed25519 key, which anyone could forge signatures for: refused")]
    WeakKey,
    /// Neither PEM, DER, raw bytes, hex nor base64 of a key.
    #[error("not an ed25519 public key: {0}")]
    Malformed(String),
}

/// Why a module's signature was refused. Every variant says what to fix.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// No `.sig` beside the module, where its source requires one.
    #[error(
        "it is not signed, and modules from {source_name} must be: put its signature in \
         `.wasm.sig` (for local files in development builds of the game, \
         `TrustPolicy::allow_unsigned_local(cfg!(debug_assertions))` allows unsigned ones)"
    )]
    Unsigned {
        /// The asset source, e.g. `the default source` or `source "mods"`.
        source_name: String,
    },
    /// The `.sig` file is neither 64 raw bytes nor base64 text of them.
    #[error("its signature file is malformed: {0}")]
    Malformed(String),
    /// The signature names a key that is not trusted and never was.
    #[error("it is signed by key {fingerprint}, which is not trusted")]
    UnknownKey {
        /// The fingerprint the signature names.
        fingerprint: String,
    },
    /// The signature is by a key that was trusted and has been revoked
    /// ([`TrustPolicy::remove_key`]).
    #[error("it is signed by revoked key {key_id:?}: sign it again with a trusted key")]
    RevokedKey {
        /// The id the key was trusted under.
        key_id: String,
    },
    /// The signature's `key:` line names one trusted key, but another
    /// trusted key made it.
    #[error(
        "its signature file's `key:` line names key {named:?}, but key {signed_by:?} signed it: \
         fix the line or sign it again"
    )]
    KeyMismatch {
        /// The key the `key:` line names.
        named: String,
        /// The trusted key that made the signature.
        signed_by: String,
    },
    /// The signature does not match the bytes: they were changed after
    /// signing, or signed by a key that is not trusted.
    #[error("its signature does not match its bytes {}", match key_id {
        Some(id) => format!("for key {id:?}: the module was changed after it was signed"),
        None => "for any trusted key: it was changed after signing, or signed by an untrusted key".to_owned(),
    })]
    BadSignature {
        /// The trusted key the signature named, when it named one.
        key_id: Option<String>,
    },
}

/// How a module passed the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    /// Signed by a trusted key.
    Signed {
        /// The id the key was trusted under ([`TrustPolicy::with_key`]).
        key_id: String,
        /// The key's fingerprint ([`TrustedKey::fingerprint`]).
        fingerprint: String,
    },
    /// Built into the game (an embedded default module).
    Embedded,
    /// Unsigned, from a source that allows it.
    Unsigned,
}

impl Verified {
    fn signed(key_id: &str, key: &TrustedKey) -> Self {
        Self::Signed {
            key_id: key_id.to_owned(),
            fingerprint: key.fingerprint(),
        }
    }
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signed {
                key_id,
                fingerprint,
            } => write!(f, "signed by {key_id} ({fingerprint})"),
            Self::Embedded => f.write_str("built into the game"),
            Self::Unsigned => f.write_str("unsigned (allowed)"),
        }
    }
}

/// Which keys are trusted and which sources must be signed.
///
/// By default nothing is trusted and every module must be signed, from
/// local files and from named sources (such as a remote one) alike. A game
/// lets its development builds load unsigned local files with
/// [`allow_unsigned_local`](Self::allow_unsigned_local)`(cfg!(debug_assertions))`:
/// written in the game's own code, `cfg!` follows the game's build profile
/// (not this crate's, which a game may compile with other settings), so
/// its release builds refuse unsigned modules. Set it on
/// [`HotWasmPlugin`](crate::HotWasmPlugin); change it while the game runs
/// through [`ModuleTrust`].
#[derive(Clone, Debug)]
pub struct TrustPolicy {
    keys: BTreeMap<String, TrustedKey>,
    /// Keys removed from `keys`, kept to say a signature is by a revoked key.
    revoked: BTreeMap<String, TrustedKey>,
    /// How many keys [`TrustPolicy::remove_key`] revoked, ever: the runtime
    /// stops the modules a key signed when this changes.
    revocations: u64,
    embedded: BTreeSet<[u8; 32]>,
    default_source: Signatures,
    named_sources: BTreeMap<String, Signatures>,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        Self {
            keys: BTreeMap::new(),
            revoked: BTreeMap::new(),
            revocations: 0,
            embedded: BTreeSet::new(),
            default_source: Signatures::Required,
            named_sources: BTreeMap::new(),
        }
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The object identifier of ed25519 keys (RFC 8410).
const ED25519_OID: &str = "1.3.101.112";

/// `text` without the UTF-8 byte-order mark some editors put first.
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// `key` as a PKCS#8 v1 PEM private key (no public key inside), the form
/// OpenSSL 3.0 reads (`openssl pkey -in key.pem`); `hotwasm keygen` writes
/// its keys with it.
pub fn private_key_pem(key: &SigningKey) -> String {
    let v1 = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    v1.to_pkcs8_pem(LineEnding::LF)
        .expect("a 32-byte ed25519 key always encodes")
        .to_string()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl TrustedKey {
    /// Reads a public key in any of the accepted forms: PEM
    /// (SubjectPublicKeyInfo, what `openssl pkey -pubout` writes), the raw
    /// 32 bytes, or those bytes as hex or base64 text.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let text = std::str::from_utf8(bytes).map(|text| without_bom(text).trim());
        if let Ok(pem) = text
            && pem.starts_with("-----BEGIN")
        {
            let (label, document) = Document::from_pem(pem)
                .map_err(|error| KeyError::Malformed(format!("PEM: {error}")))?;
            if label.ends_with("PRIVATE KEY") {
                return Err(KeyError::PrivateKey);
            }
            if label == "RSA PUBLIC KEY" {
                let algorithm = "an RSA".to_owned();
                return Err(KeyError::NotEd25519 { algorithm });
            }
            return Self::from_spki(document.as_bytes());
        }
        if let Ok(raw) = <&[u8; 32]>::try_from(bytes) {
            return Self::from_raw(raw);
        }
        let text = text.map_err(|_| {
            KeyError::Malformed(format!(
                "{} bytes that are neither 32 raw bytes nor text",
                bytes.len()
            ))
        })?;
        let decoded = unhex(text)
            .filter(|bytes| bytes.len() == 32)
            .or_else(|| BASE64.decode(text).ok())
            .ok_or_else(|| {
                KeyError::Malformed("text that is neither PEM, hex nor base64".to_owned())
            })?;
        match <&[u8; 32]>::try_from(decoded.as_slice()) {
            Ok(raw) => Self::from_raw(raw),
            // base64 of the DER form, as in a PEM body without its armour.
            Err(_) => Self::from_spki(&decoded),
        }
    }

    /// A key from its SubjectPublicKeyInfo DER, refusing other algorithms
    /// by name.
    fn from_spki(der: &[u8]) -> Result<Self, KeyError> {
        let info = SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|error| KeyError::Malformed(format!("{} bytes: {error}", der.len())))?;
        let algorithm = match info.algorithm.oid.to_string().as_str() {
            ED25519_OID => None,
            "1.2.840.113549.1.1.1" => Some("an RSA".to_owned()),
            "1.2.840.10045.2.1" => Some("an EC (P-256 or another curve)".to_owned()),
            "1.3.101.110" => Some("an X25519 (key exchange, not signing)".to_owned()),
            "1.3.101.113" => Some("an Ed448".to_owned()),
            other => Some(format!("an algorithm {other}")),
        };
        if let Some(algorithm) = algorithm {
            return Err(KeyError::NotEd25519 { algorithm });
        }
        let raw = info
            .subject_public_key
            .as_bytes()
            .and_then(|bytes| <&[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| KeyError::Malformed("an ed25519 key that is not 32 bytes".to_owned()))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: &[u8; 32]) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_bytes(raw).map_err(|_| KeyError::InvalidPoint)?;
        if key.is_weak() {
            return Err(KeyError::WeakKey);
        }
        Ok(Self { key })
    }

    /// The key's fingerprint: the first 8 bytes of the SHA-256 of its raw
    /// 32 bytes, in hex. Signatures made by `hotwasm sign` name it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key)
    }
}

pub(crate) fn fingerprint(key: &VerifyingKey) -> String {
    hex(&sha256(key.as_bytes())[..8])
}

/// Where a module's signature lives: `<module>.sig` beside it
/// (`hello.wasm` → `hello.wasm.sig`).
pub fn signature_path(module: &Path) -> PathBuf {
    let mut path = module.as_os_str().to_owned();
    path.push(".sig");
    path.into()
}

/// The `.wasm.sig` text for `module` signed with `key`: a line naming the
/// key's fingerprint, then the signature in base64. `hotwasm sign` writes this;
/// the loader also accepts OpenSSL's raw 64 bytes.
pub fn sign_module(key: &ed25519_dalek::SigningKey, module: &[u8]) -> String {
    use ed25519_dalek::Signer as _;
    let fingerprint = fingerprint(&key.verifying_key());
    let signature = BASE64.encode(key.sign(module).to_bytes());
    format!("{SIGNATURE_KEY_PREFIX} {fingerprint}\n{signature}\n")
}

/// A signature file: 64 raw bytes, or base64 text of them, optionally after
/// a `key: <fingerprint>` line.
struct SignatureFile {
    signature: Signature,
    fingerprint: Option<String>,
}

fn parse_signature(bytes: &[u8]) -> Result<SignatureFile, SignatureError> {
    if let Ok(raw) = <&[u8; 64]>::try_from(bytes) {
        return Ok(SignatureFile {
            signature: Signature::from_bytes(raw),
            fingerprint: None,
        });
    }
    let malformed = |why: String| SignatureError::Malformed(why);
    let text = std::str::from_utf8(bytes).map_err(|_| {
        malformed(format!(
            "{} bytes that are neither 64 raw bytes nor text",
            bytes.len()
        ))
    })?;
    let mut fingerprint = None;
    let mut body = String::new();
    for line in without_bom(text)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
    {
        match line.strip_prefix(SIGNATURE_KEY_PREFIX) {
            Some(named) => fingerprint = Some(named.trim().to_ascii_lowercase()),
            None => body.push_str(line),
        }
    }
    let decoded = BASE64
        .decode(&body)
        .map_err(|error| malformed(format!("not base64: {error}")))?;
    let raw = <&[u8; 64]>::try_from(decoded.as_slice()).map_err(|_| {
        malformed(format!(
            "{} bytes where an ed25519 signature has 64",
            decoded.len()
        ))
    })?;
    Ok(SignatureFile {
        signature: Signature::from_bytes(raw),
        fingerprint,
    })
}

/// How a source is named in messages.
fn source_name(source: &AssetSourceId) -> String {
    match source {
        AssetSourceId::Default => "the default asset source".to_owned(),
        AssetSourceId::Name(name) => format!("asset source {name:?}"),
    }
}

impl TrustPolicy {
    /// A policy that trusts nothing yet (see the type's defaults).
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `key` under `id` (a name for people: `"release-2026"`). Several
    /// keys at once make rotation work: sign with the new key, ship both,
    /// then remove the old one.
    pub fn with_key(mut self, id: impl Into<String>, key: TrustedKey) -> Self {
        self.trust_key(id, key);
        self
    }

    /// Trusts `key` under `id`, replacing a key with the same id.
    pub fn trust_key(&mut self, id: impl Into<String>, key: TrustedKey) {
        let id = id.into();
        self.revoked.remove(&id);
        self.keys.insert(id, key);
    }

    /// Stops trusting the key `id` (revocation). A module signed by it is
    /// refused as [`SignatureError::RevokedKey`] from now on, and modules
    /// running under it stop at the next run of the scripts: their
    /// instances are dropped (as [`WasmRuntime::unload`](crate::WasmRuntime::unload)
    /// does) and each is loaded again, so a module with a fallback (a
    /// remote module's cache or embedded copy) runs that if it passes, and
    /// one without waits, refused, for a version signed by a trusted key.
    pub fn remove_key(&mut self, id: &str) -> Option<TrustedKey> {
        let key = self.keys.remove(id)?;
        self.revoked.insert(id.to_owned(), key.clone());
        self.revocations += 1;
        Some(key)
    }

    /// Whether the key `id` was revoked ([`TrustPolicy::remove_key`]) and
    /// not trusted again since.
    pub fn is_revoked(&self, id: &str) -> bool {
        self.revoked.contains_key(id)
    }

    /// How many revocations there have been.
    pub(crate) fn revocations(&self) -> u64 {
        self.revocations
    }

    /// The trusted keys by id.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &TrustedKey)> {
        self.keys.iter().map(|(id, key)| (id.as_str(), key))
    }

    /// Whether modules from the default asset source (local files) may be
    /// unsigned; a signature that is there must still verify. Pass
    /// `cfg!(debug_assertions)` from the game's code to allow it in the
    /// game's development builds only. The same as
    /// `with_signatures(AssetSourceId::Default, ..)`.
    pub fn allow_unsigned_local(self, allow: bool) -> Self {
        let rule = if allow {
            Signatures::Optional
        } else {
            Signatures::Required
        };
        self.with_signatures(AssetSourceId::Default, rule)
    }

    /// Sets whether modules from `source` must be signed.
    pub fn with_signatures(mut self, source: AssetSourceId, rule: Signatures) -> Self {
        match source {
            AssetSourceId::Default => self.default_source = rule,
            AssetSourceId::Name(name) => {
                self.named_sources.insert(name.to_string(), rule);
            }
        }
        self
    }

    /// Whether modules from `source` must be signed.
    pub fn signatures(&self, source: &AssetSourceId) -> Signatures {
        match source {
            AssetSourceId::Default => self.default_source,
            AssetSourceId::Name(name) => self
                .named_sources
                .get(name.as_ref())
                .copied()
                .unwrap_or(Signatures::Required),
        }
    }

    /// Trusts these exact bytes without a signature: they are built into
    /// the game (an embedded default module).
    pub fn trust_embedded(&mut self, module: &[u8]) {
        self.embedded.insert(sha256(module));
    }

    /// Takes `configured`'s keys and rules, keeping the embedded modules
    /// already trusted (remote sources register theirs before the plugin).
    pub(crate) fn configure(&mut self, configured: TrustPolicy) {
        let embedded = std::mem::take(&mut self.embedded);
        *self = configured;
        self.embedded.extend(embedded);
    }

    /// Checks `module` from `source` against the policy, with the contents
    /// of its `.sig` file when there is one.
    pub fn verify(
        &self,
        source: &AssetSourceId,
        module: &[u8],
        signature: Option<&[u8]>,
    ) -> Result<Verified, SignatureError> {
        if self.embedded.contains(&sha256(module)) {
            return Ok(Verified::Embedded);
        }
        let Some(signature) = signature else {
            return match self.signatures(source) {
                Signatures::Optional => Ok(Verified::Unsigned),
                Signatures::Required => Err(SignatureError::Unsigned {
                    source_name: source_name(source),
                }),
            };
        };
        let file = parse_signature(signature)?;
        let verifies = |key: &TrustedKey| key.key.verify_strict(module, &file.signature).is_ok();
        let signer = |keys: &BTreeMap<String, TrustedKey>| {
            keys.iter()
                .find(|(_, key)| verifies(key))
                .map(|(id, _)| id.clone())
        };
        let refusal = |named: Option<String>| match (signer(&self.keys), signer(&self.revoked)) {
            (Some(signed_by), _) => SignatureError::KeyMismatch {
                named: named.unwrap_or_default(),
                signed_by,
            },
            (None, Some(key_id)) => SignatureError::RevokedKey { key_id },
            (None, None) => SignatureError::BadSignature { key_id: named },
        };
        let Some(fingerprint) = file.fingerprint else {
            return self
                .keys
                .iter()
                .find(|(_, key)| verifies(key))
                .map(|(id, key)| Verified::signed(id, key))
                .ok_or_else(|| refusal(None));
        };
        let named = |keys: &'_ BTreeMap<String, TrustedKey>| {
            keys.iter()
                .find(|(_, key)| key.fingerprint() == fingerprint)
                .map(|(id, key)| (id.clone(), key.clone()))
        };
        match (named(&self.keys), named(&self.revoked)) {
            (Some((id, key)), _) if verifies(&key) => Ok(Verified::signed(&id, &key)),
            (Some((id, _)), _) => Err(refusal(Some(id))),
            (None, Some((key_id, key))) if verifies(&key) => {
                Err(SignatureError::RevokedKey { key_id })
            }
            (None, _) => Err(SignatureError::UnknownKey { fingerprint }),
        }
    }
}

/// The [`TrustPolicy`] in force, shared by the module loader and remote
/// sources: a resource. Changes apply to every module loaded afterwards.
#[derive(Resource, Clone, Default)]
pub struct ModuleTrust(Arc<RwLock<TrustPolicy>>);

impl ModuleTrust {
    /// The policy, to read.
    pub fn read(&self) -> RwLockReadGuard<'_, TrustPolicy> {
        // A panic while holding the lock cannot leave a policy half-changed:
        // every change is a single insert or remove.
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The policy, to change (add or revoke keys while the game runs).
    pub fn write(&self) -> RwLockWriteGuard<'_, TrustPolicy> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
