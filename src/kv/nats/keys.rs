//! NATS keys: the store's bucket and key escaped into one NATS key, and
//! back, and the JetStream bucket names NATS takes.

use crate::kv::names;

/// The NATS key of `key` in `bucket`: each escaped, joined by `.`. NATS
/// keys allow `[-/_=.A-Za-z0-9]` and `.` separates tokens, so every byte
/// but `[-/_A-Za-z0-9]` becomes `=` and two hex digits (`.` is `=2E`).
pub fn nats_key(bucket: &str, key: &str) -> String {
    let escape = |text| names::escape_with(text, b'=', |_, byte| stays(byte));
    format!("{}.{}", escape(bucket), escape(key))
}

/// Whether a byte stands for itself in a NATS key.
fn stays(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-/_".contains(&byte)
}

/// The store's bucket and key of a NATS key [`nats_key`] made; `None` for
/// a key it did not make.
pub(super) fn store_key(nats_key: &str) -> Option<(String, String)> {
    let (bucket, key) = nats_key.split_once('.')?;
    let unescape = |text| names::unescape_with(text, b'=', stays);
    Some((unescape(bucket)?, unescape(key)?))
}

/// Refuses a JetStream bucket name NATS would refuse.
pub(super) fn check_bucket_name(name: &str) -> Result<(), String> {
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || b"-_".contains(&byte);
    if !name.is_empty() && name.bytes().all(allowed) {
        return Ok(());
    }
    Err(format!(
        "NatsOptions::bucket {name:?} is not a JetStream bucket name ([A-Za-z0-9_-], not empty)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_keys_are_reversible_and_use_only_what_nats_allows() {
        for (bucket, key) in [
            ("tuning", "enemy_speed"),
            ("a.b", "x=1 ü/../y"),
            ("B-_9", "."),
        ] {
            let nats = nats_key(bucket, key);
            assert!(
                nats.bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"-/_=.".contains(&byte)),
                "{nats}"
            );
            assert_eq!(nats.matches('.').count(), 1, "{nats}");
            assert_eq!(store_key(&nats), Some((bucket.to_owned(), key.to_owned())));
        }
        assert_eq!(nats_key("a.b", "c"), "a=2Eb.c");
        assert_eq!(store_key("no-dot"), None);
        assert_eq!(store_key("a.b=Z"), None);
    }
}
