//! The binary encoding of typed data between the game and its scripts
//! (questions and answers, the game's own messages): postcard, serde's
//! compact format, which the guest SDK speaks too. It is not
//! self-describing, so a value must use every byte it is given: bytes of
//! another type left over are an error, never a silent misreading.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// `value` in the binary encoding.
pub(super) fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(value).map_err(|error| error.to_string())
}

/// A `T` from exactly `bytes`.
pub(super) fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|error| error.to_string())?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(format!(
            "{} bytes left over: the bytes are of another type",
            rest.len()
        ))
    }
}
