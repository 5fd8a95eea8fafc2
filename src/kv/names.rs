//! Key and bucket names: which the store allows ([`check_bucket`],
//! [`check_key`]), and their file names, which mean the same on every
//! filesystem a game ships to: lower-case ASCII letters, digits, `-` and `_`
//! stay, every other byte becomes `%XX` (upper-case hex). So `A` and `a` stay
//! apart where names are compared ignoring case (macOS, Windows), no name
//! ends in a dot or a space (Windows strips them), and a name Windows
//! reserves for a device (`CON`, `NUL`, `COM1`, ...) has its first letter
//! escaped (`%6Eul` for `nul`).
//!
//! Stores written before this encoding kept upper-case letters and bucket
//! names as they were; [`legacy_key`] and [`legacy_bucket`] read those names,
//! so opening an old store renames its files once.

use super::{KvError, MAX_BUCKET_NAME_BYTES, MAX_KEY_BYTES};

/// Bucket names become directory names, so only a safe alphabet is allowed.
pub(crate) fn check_bucket(bucket: &str) -> Result<(), KvError> {
    let refuse = |reason| {
        Err(KvError::InvalidBucket {
            bucket: bucket.to_owned(),
            reason,
        })
    };
    if bucket.is_empty() {
        return refuse("it is empty");
    }
    if bucket.len() > MAX_BUCKET_NAME_BYTES {
        return refuse("it is longer than 64 bytes");
    }
    if bucket == "." || bucket == ".." || bucket.contains(['/', '\\', '\0']) {
        return refuse("it would escape the store's directory");
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return refuse("only ASCII letters, digits, `_`, `-` and `.` are allowed");
    }
    Ok(())
}

/// Keys are encoded into file names, so any text is safe on disk; keys that
/// look like an attempt to leave the bucket are refused all the same.
pub(crate) fn check_key(key: &str) -> Result<(), KvError> {
    let refuse = |reason| {
        Err(KvError::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return refuse("it is empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::KeyTooLong {
            len: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    if key.contains(['\0', '\\'])
        || key
            .split('/')
            .any(|segment| segment == ".." || segment == ".")
    {
        return refuse("it would escape the bucket directory");
    }
    Ok(())
}

/// Device names Windows reserves, whatever the case or extension.
const RESERVED: [&str; 4] = ["con", "prn", "aux", "nul"];
/// Device names Windows reserves with a digit after them (`com1`, `lpt9`).
const RESERVED_NUMBERED: [&str; 2] = ["com", "lpt"];

fn stays(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'_'
}

/// `text` with each byte `keep` refuses (given its position) as `%XX`.
fn escape(text: &str, keep: impl Fn(usize, u8) -> bool) -> String {
    escape_with(text, b'%', keep)
}

/// `text` with each byte `keep` refuses (given its position) as `marker`
/// and two upper-case hex digits.
pub(super) fn escape_with(text: &str, marker: u8, keep: impl Fn(usize, u8) -> bool) -> String {
    let mut name = String::with_capacity(text.len());
    for (at, byte) in text.bytes().enumerate() {
        if keep(at, byte) {
            name.push(char::from(byte));
        } else {
            name.push(char::from(marker));
            name.push_str(&format!("{byte:02X}"));
        }
    }
    name
}

/// `text` (a key or a bucket name) as its file name.
pub(super) fn encode(text: &str) -> String {
    let reserved = is_reserved(text);
    escape(text, |at, byte| stays(byte) && !(reserved && at == 0))
}

/// Whether Windows reserves `text` as a device name, ignoring case.
fn is_reserved(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    RESERVED.contains(&lower.as_str())
        || RESERVED_NUMBERED.iter().any(|device| {
            lower
                .strip_prefix(device)
                .is_some_and(|digit| digit.len() == 1 && digit.as_bytes()[0].is_ascii_digit())
        })
}

/// The key or bucket name a file name encodes, or `None` for a name this
/// store did not write (a temporary file, an editor's backup, a name in the
/// old encoding).
pub(super) fn decode(name: &str) -> Option<String> {
    let text = unescape_with(name, b'%', stays)?;
    (!text.is_empty() && encode(&text) == name).then_some(text)
}

/// The key a file name wrote in the old encoding (upper-case letters kept).
pub(super) fn legacy_key(name: &str) -> Option<String> {
    let kept = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_';
    let key = unescape_with(name, b'%', kept)?;
    (!key.is_empty() && escape(&key, |_, byte| kept(byte)) == name).then_some(key)
}

/// The bucket an old store's directory name is: bucket names were their
/// own directory names.
pub(super) fn legacy_bucket(name: &str) -> Option<String> {
    check_bucket(name).is_ok().then(|| name.to_owned())
}

/// `name` with each `marker` and two hex digits turned into its byte, if
/// every other byte passes `literal`.
pub(super) fn unescape_with(
    name: &str,
    marker: u8,
    literal: impl Fn(u8) -> bool,
) -> Option<String> {
    let mut bytes = Vec::with_capacity(name.len());
    let mut rest = name.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == marker {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else if literal(byte) {
            bytes.push(byte);
            rest = tail;
        } else {
            return None;
        }
    }
    String::from_utf8(bytes).ok()
}
