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

    // A `key:` line naming one trusted key on a signature by another.
    let other = key(4);
    policy.trust_key("other", trusted(&other));
    let mislabelled = sign_module(&trusted_key, module).replace(
        &fingerprint(&trusted_key.verifying_key()),
        &fingerprint(&other.verifying_key()),
    );
    assert_eq!(
        policy.verify(&mods(), module, Some(mislabelled.as_bytes())),
        Err(SignatureError::KeyMismatch {
            named: "other".into(),
            signed_by: "release".into()
        })
    );
    // Revoked: said so, in either form of signature.
    policy.remove_key("release");
    let revoked = Err(SignatureError::RevokedKey {
        key_id: "release".into(),
    });
    assert_eq!(
        policy.verify(&mods(), module, Some(&named(&trusted_key, module))),
        revoked
    );
    let raw = trusted_key.sign(module).to_bytes();
    assert_eq!(policy.verify(&mods(), module, Some(&raw)), revoked);
    // Trusted again: verifies again.
    policy.trust_key("release", trusted(&trusted_key));
    assert!(policy.verify(&mods(), module, Some(&raw)).is_ok());
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

#[test]
fn keys_that_cannot_be_trusted_say_what_they_are() {
    let private = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEICqRjWThkLRyr1nHKWuaCTpnMtOE+DVDBBkodkMJSgQy\n\
                   -----END PRIVATE KEY-----\n";
    let rsa = "-----BEGIN PUBLIC KEY-----\n\
               MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDhsH+uGshfbdMiG2ZzZI69DUlr\n\
               FlzO1WfD/OIH32sydKglhrlImxGjqDFrAFuoznIclCWC0sAA0bFjlc+xO376hV+k\n\
               fNUZcHNSjykMqddy2DqJgHhzYPxxfKb9AlRIJLbXocVG67bstS68r4P71cTWeJCg\n\
               djDkgpMbUYUolI3YCQIDAQAB\n\
               -----END PUBLIC KEY-----\n";
    let p256 = "-----BEGIN PUBLIC KEY-----\n\
                MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7gOUzLr9pq1v1WoT8k7RCvNmObNg\n\
                i+p9rtIzXLNWkiRYB4iql1gFXMog5h+cqYl1sqbto1J6m9g4UOIiUZmNZw==\n\
                -----END PUBLIC KEY-----\n";
    let read = |bytes: &[u8]| TrustedKey::from_bytes(bytes).unwrap_err();
    assert_eq!(read(private.as_bytes()), KeyError::PrivateKey);
    assert!(
        read(private.as_bytes())
            .to_string()
            .contains("openssl pkey -in key.pem -pubout")
    );
    let algorithm = |error| match error {
        KeyError::NotEd25519 { algorithm } => algorithm,
        other => panic!("{other:?}"),
    };
    assert_eq!(algorithm(read(rsa.as_bytes())), "an RSA");
    assert!(algorithm(read(p256.as_bytes())).starts_with("an EC"));
    // y = 2 decodes to no point; the identity and zero are of small order.
    let mut not_a_point = [0; 32];
    not_a_point[0] = 2;
    assert_eq!(read(&not_a_point), KeyError::InvalidPoint);
    let mut identity = [0; 32];
    identity[0] = 1;
    assert_eq!(read(&identity), KeyError::WeakKey);
    assert_eq!(read(&[0; 32]), KeyError::WeakKey);
}

#[test]
fn a_text_signature_may_start_with_a_byte_order_mark() {
    let signing = key(5);
    let policy = TrustPolicy::new().with_key("release", trusted(&signing));
    let module = b"\0asm module bytes";
    let with_bom = format!("\u{feff}{}", sign_module(&signing, module));
    assert!(
        policy
            .verify(&mods(), module, Some(with_bom.as_bytes()))
            .is_ok()
    );
}

#[test]
fn private_keys_are_written_in_pkcs8_version_1() {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let signing = key(6);
    let pem = private_key_pem(&signing);
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    // Version 1 has no public key inside: 48 bytes of DER, base64 in one line.
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    assert_eq!(BASE64.decode(body).unwrap().len(), 48);
    assert_eq!(SigningKey::from_pkcs8_pem(&pem).unwrap(), signing);
}
