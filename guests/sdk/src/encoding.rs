//! The binary encoding of typed data between a script and its game
//! (questions and answers, the game's own messages): postcard, serde's
//! compact format, which the host speaks too. A value must use every byte
//! it is given: bytes of another type left over are an error.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// `value` in the binary encoding.
pub(crate) fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    postcard::to_allocvec(value).map_err(|error| Error::Encoding(error.to_string()))
}

/// A `T` from exactly `bytes`.
pub(crate) fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|error| Error::Encoding(error.to_string()))?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(Error::Encoding(format!(
            "{} bytes left over: the bytes are of another type",
            rest.len()
        )))
    }
}
