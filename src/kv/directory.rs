//! The directory backend: `<root>/<bucket>/<encoded key>`, one file per key,
//! written atomically, and watched for edits made from outside the game.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bevy::log::warn;
use crossbeam_channel::Receiver;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::{Backend, KvChanged, KvError, KvOrigin};
use crate::files::content_hash;
use crate::files::replace_file;

/// Temporary files start with this; encoded keys never do (`.` is encoded).
const TEMP_PREFIX: char = '.';

pub(super) struct DirectoryBackend {
    root: PathBuf,
    /// What the game last wrote or saw at each (bucket, key): a hash of the
    /// bytes, or `None` for deleted. An event whose file still matches is an
    /// echo of our own write, not an edit.
    known: HashMap<(String, String), Option<u64>>,
    edits: Receiver<notify::Result<notify::Event>>,
    /// Kept alive for as long as the store; dropping it stops the events.
    _watcher: Option<RecommendedWatcher>,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KvError + '_ {
    move |source| KvError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Any key as a portable file name: ASCII letters, digits, `-` and `_`
/// stay; every other byte becomes `%XX`.
pub(super) fn encode_key(key: &str) -> String {
    let mut name = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name
}

/// The key a file name encodes, or `None` for a name this store did not
/// write (a temporary file, an editor's backup).
pub(super) fn decode_key(name: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(name.len());
    let mut rest = name.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            bytes.push(byte);
            rest = tail;
        } else {
            return None;
        }
    }
    let key = String::from_utf8(bytes).ok()?;
    (!key.is_empty() && encode_key(&key) == name).then_some(key)
}

impl DirectoryBackend {
    pub fn open(root: &Path) -> Result<Self, KvError> {
        fs::create_dir_all(root).map_err(io_error(root))?;
        let (sender, edits) = crossbeam_channel::unbounded();
        let on_event = move |event| {
            // The store is gone when sending fails; nobody is left to tell.
            let _ = sender.send(event);
        };
        let watcher = notify::recommended_watcher(on_event).and_then(|mut watcher| {
            watcher.watch(root, RecursiveMode::Recursive)?;
            Ok(watcher)
        });
        let watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                warn!(
                    "edits to {} made outside the game will not be seen: {error}",
                    root.display()
                );
                None
            }
        };
        Ok(Self {
            root: root.to_owned(),
            known: HashMap::new(),
            edits,
            _watcher: watcher,
        })
    }

    fn key_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(encode_key(key))
    }

    /// The (bucket, key) a path inside the root stands for.
    fn entry_of(&self, path: &Path) -> Option<(String, String)> {
        let relative = path.strip_prefix(&self.root).ok()?;
        let mut parts = relative.iter();
        let bucket = parts.next()?.to_str()?;
        let name = parts.next()?.to_str()?;
        if parts.next().is_some()
            || name.starts_with(TEMP_PREFIX)
            || super::check_bucket(bucket).is_err()
        {
            return None;
        }
        Some((bucket.to_owned(), decode_key(name)?))
    }
}

impl Backend for DirectoryBackend {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let path = self.key_path(bucket, key);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error(&path)(error)),
        }
    }

    fn set(&mut self, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        let dir = self.root.join(bucket);
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let path = dir.join(encode_key(key));
        let temp = dir.join(format!("{TEMP_PREFIX}{}.tmp", encode_key(key)));
        // Known before the rename, so the watcher's event for it is an echo.
        self.known.insert(
            (bucket.to_owned(), key.to_owned()),
            Some(content_hash(value)),
        );
        replace_file(&temp, &path, value).map_err(io_error(&path))
    }

    fn delete(&mut self, bucket: &str, key: &str) -> Result<bool, KvError> {
        let path = self.key_path(bucket, key);
        self.known.insert((bucket.to_owned(), key.to_owned()), None);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(io_error(&path)(error)),
        }
    }

    fn keys(&self, bucket: &str) -> Result<Vec<String>, KvError> {
        let dir = self.root.join(bucket);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error(&dir)(error)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(&dir))?;
            if let Some(key) = entry.file_name().to_str().and_then(decode_key) {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn buckets(&self) -> Result<Vec<String>, KvError> {
        let mut buckets = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io_error(&self.root))? {
            let entry = entry.map_err(io_error(&self.root))?;
            let name = entry.file_name();
            if let Some(name) = name.to_str()
                && entry.path().is_dir()
                && super::check_bucket(name).is_ok()
            {
                buckets.push(name.to_owned());
            }
        }
        Ok(buckets)
    }

    fn external_changes(&mut self, out: &mut Vec<KvChanged>) {
        let paths: Vec<PathBuf> = self
            .edits
            .try_iter()
            .filter_map(Result::ok)
            // Reads (the game's own included) open and close files too.
            .filter(|event| !event.kind.is_access())
            .flat_map(|event| event.paths)
            .collect();
        for path in paths {
            let Some((bucket, key)) = self.entry_of(&path) else {
                continue;
            };
            let value = match fs::read(&path) {
                Ok(bytes) => Some(bytes),
                Err(error) if error.kind() == io::ErrorKind::NotFound => None,
                Err(error) => {
                    warn!(
                        "could not read {} after it changed: {error}",
                        path.display()
                    );
                    continue;
                }
            };
            let hash = value.as_deref().map(content_hash);
            let entry = (bucket, key);
            if self.known.get(&entry) == Some(&hash) {
                continue;
            }
            self.known.insert(entry.clone(), hash);
            let (bucket, key) = entry;
            out.push(KvChanged {
                stamp: super::EventStamp::UNPUBLISHED,
                bucket,
                key,
                value,
                origin: KvOrigin::External,
            });
        }
    }
}
