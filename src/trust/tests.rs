use super::*;
use ed25519_dalek::{Signer, SigningKey};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn trusted(signing: &SigningKey) -> TrustedKey {
    TrustedKey::from_bytes(signing.verifying_key().as_bytes()).unwrap()
}

fn named(signing: &SigningKey, module: &[u8]) -> Vec<u8> {
    sign_module(signing, module).into_bytes()
}

fn mods() -> AssetSourceId<'static> {
    AssetSourceId::from("mods")
}

#[test]
fn signatures_verify_in_every_accepted_form() {
    let (old, new) = (key(1), key(2));
    let policy = TrustPolicy::new()
        .with_key("old", trusted(&old))
        .with_key("new", trusted(&new));
    let module = b"\0asm module bytes";
    let raw = new.sign(module).to_bytes();
    for signature in [
        raw.to_vec(),
        BASE64.encode(raw).into_bytes(),
        named(&new, module),
    ] {
        assert_eq!(
            policy.verify(&mods(), module, Some(&signature)),
            Ok(Verified::signed("new", &trusted(&new)))
        );
    }
    assert_eq!(
        policy.verify(&mods(), module, Some(&named(&old, module))),
        Ok(Verified::signed("old", &trusted(&old)))
    );
}

#[test]
fn each_refusal_has_its_own_kind() {
    let (trusted_key, stranger) = (key(1), key(3));
    let mut policy = TrustPolicy::new().with_key("release", trusted(&trusted_key));
    let module = b"\0asm module bytes";

    assert!(matches!(
        policy.verify(&mods(), module, None),
        Err(SignatureError::Unsigned { .. })
    ));
    assert_eq!(
        policy.verify(
            &mods(),
            b"\0asm tampered",
            Some(&named(&trusted_key, module))
        ),
        Err(SignatureError::BadSignature {
            key_id: Some("release".into())
        })
    );
    assert_eq!(
        policy.verify(&mods(), module, Some(&named(&stranger, module))),
        Err(SignatureError::UnknownKey {
            fingerprint: fingerprint(&stranger.verifying_key())
        })
    );
    assert_eq!(
        policy.verify(&mods(), module, Some(&stranger.sign(module).to_bytes())),
        Err(SignatureError::BadSignature { key_id: None })
    );
    assert!(matches!(
        policy.verify(&mods(), module, Some(b"not a signature")),
        Err(SignatureError::Malformed(_))
    ));

    // Revoked: the same signature now names an unknown key.
    policy.remove_key("release");
    assert!(matches!(
        policy.verify(&mods(), module, Some(&named(&trusted_key, module))),
        Err(SignatureError::UnknownKey { .. })
    ));
    // Embedded bytes need no signature.
    policy.trust_embedded(module);
    assert_eq!(policy.verify(&mods(), module, None), Ok(Verified::Embedded));
}

#[test]
fn keys_read_from_raw_hex_base64_and_pem() {
    let signing = key(7);
    let raw = *signing.verifying_key().as_bytes();
    let expected = trusted(&signing);
    let pem = ed25519_dalek::pkcs8::EncodePublicKey::to_public_key_pem(
        &signing.verifying_key(),
        ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF,
    )
    .unwrap();
    for form in [
        raw.to_vec(),
        hex(&raw).into_bytes(),
        BASE64.encode(raw).into_bytes(),
        pem.into_bytes(),
    ] {
        assert_eq!(TrustedKey::from_bytes(&form).unwrap(), expected);
    }
    assert!(TrustedKey::from_bytes(b"-----BEGIN PUBLIC KEY-----\nnope\n").is_err());
    assert!(TrustedKey::from_bytes(b"abc").is_err());
}
