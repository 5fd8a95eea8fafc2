//! Which modules the arena runs. A development build runs unsigned modules
//! from its assets; a release build only modules signed by a key it was
//! given (`--trust-key`), the way a shipped game would:
//!
//! ```sh
//! cargo run -p hotwasm-cli -- keygen keys/arena   # once; keys/arena.key.pem stays private
//! cargo run -p hotwasm-cli -- build waves enemy_ai scoring powerups \
//!     --out target/arena-release/modules --sign keys/arena.key.pem
//! cargo run -p arena --release -- --assets target/arena-release --trust-key keys/arena.pub.pem
//! ```

use std::path::Path;

use bevy_hotwasm::{TrustPolicy, TrustedKey};

/// What to tell someone whose release build was given no key: every
/// module would be refused.
pub const RELEASE_NEEDS_A_KEY: &str = "a release build of the arena runs signed modules only: \
    make a key once (`cargo run -p hotwasm-cli -- keygen keys/arena`), build the guests signed \
    (`cargo run -p hotwasm-cli -- build waves enemy_ai scoring powerups --out \
    target/arena-release/modules --sign keys/arena.key.pem`) and start it with \
    `--assets target/arena-release --trust-key keys/arena.pub.pem`";

/// The arena's trust rules: unsigned local modules unless `release`;
/// modules signed by `key` in any build.
pub fn arena_trust(release: bool, key: Option<TrustedKey>) -> TrustPolicy {
    let policy = TrustPolicy::new().allow_unsigned_local(!release);
    match key {
        Some(key) => policy.with_key("arena", key),
        None => policy,
    }
}

/// The public key in `path` (PEM, as `hotwasm keygen` writes it).
pub fn read_key(path: &Path) -> Result<TrustedKey, String> {
    let bytes = std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?;
    TrustedKey::from_bytes(&bytes).map_err(|error| format!("{}: {error}", path.display()))
}
