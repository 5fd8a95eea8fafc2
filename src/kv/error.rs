//! Why the key-value store refused or failed an operation: [`KvError`].

use std::path::PathBuf;

use thiserror::Error;

/// Why the store refused or failed an operation. Every variant names what it
/// was about.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KvError {
    /// A bucket name outside `[A-Za-z0-9_.-]`, empty, `.`/`..`, or too long.
    #[error("bucket name {bucket:?} is not allowed: {reason}")]
    InvalidBucket {
        /// The bucket name.
        bucket: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An empty key, or one that could escape its bucket directory (a `.` or
    /// `..` segment between slashes, a NUL or a backslash).
    #[error("key {key:?} is not allowed: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key longer than [`MAX_KEY_BYTES`](super::MAX_KEY_BYTES).
    #[error("key of {len} bytes is longer than the limit of {max}")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value larger than [`MAX_VALUE_BYTES`](super::MAX_VALUE_BYTES).
    #[error("value of {len} bytes for key {key:?} is larger than the limit of {max}")]
    ValueTooLarge {
        /// The key.
        key: String,
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Creating the bucket would exceed [`MAX_BUCKETS`](super::MAX_BUCKETS).
    #[error("bucket {bucket:?} would be bucket number {}, over the limit of {max}", max + 1)]
    TooManyBuckets {
        /// The bucket that was to be created.
        bucket: String,
        /// The limit.
        max: usize,
    },
    /// `increment` on a value that is not a decimal integer.
    #[error("value of {bucket}/{key} is not a decimal integer, so it cannot be incremented")]
    NotANumber {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// `increment` would overflow a signed 64-bit integer.
    #[error("incrementing {bucket}/{key} would overflow")]
    Overflow {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// The write would take the store past its ceiling
    /// ([`KvStore::with_max_bytes`](super::KvStore::with_max_bytes)), whoever writes.
    #[error("writing {bucket}/{key} would take the store past its ceiling of {max} bytes")]
    StoreFull {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The ceiling.
        max: u64,
    },
    /// A module's write would take it past one of its key-value totals
    /// ([`GuestLimits`](crate::GuestLimits)).
    #[error("module {module} writing {bucket}/{key} would keep more than {total}")]
    ModuleTotal {
        /// The module's asset path.
        module: String,
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Which total, e.g. `10000 keys in one bucket (GuestLimits::max_kv_keys_per_bucket)`.
        total: String,
    },
    /// A guest's `increment` or compare-and-swap on a shared store that
    /// the server has not answered, while this frame's wait for the server
    /// is spent (`NatsOptions::max_frame_wait`). The swap goes on: the same
    /// call made again, in this frame or a later one, gets its answer, and
    /// is never made twice. Retry it.
    #[error(
        "busy: the server has not answered a compare-and-swap of {bucket}/{key} yet, and this \
         frame's wait for it is spent: make the same call again, now or in a later frame, for \
         its answer (it is not made twice)"
    )]
    Busy {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// Other processes changed the key every time an `increment` tried.
    #[error("key {key:?} in bucket {bucket} changed under each of {tries} tries to increment it")]
    Contended {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// How many times it tried.
        tries: usize,
    },
    /// The server of a shared store could not be reached or refused it.
    #[error("key-value server {url}: {reason}")]
    Remote {
        /// The server.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The disk failed.
    #[error("key-value store I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}
