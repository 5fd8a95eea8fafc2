//! The directory backend: `<root>/<bucket>/<key>`, one file per key,
//! names encoded by [`super::names`], written atomically and durably, and
//! watched for edits made from outside the game.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bevy::log::warn;
use crossbeam_channel::Receiver;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::backend::Backend;
use super::names::{self, decode, encode};
use super::{KvChanged, KvError, KvOrigin};
use crate::files::{content_hash, create_dir_durably, replace_file, sync_dir};
use crate::stamps::EventStamp;

/// Temporary files start with this; encoded names never do (`.` is encoded).
const TEMP_PREFIX: char = '.';

/// How many of the game's own deletes are remembered to tell the watcher's
/// echo of one from an edit (the echo comes within a frame or two).
pub(super) const RECENT_DELETES: usize = 4096;

type Entry = (String, String);

pub(super) struct DirectoryBackend {
    root: PathBuf,
    /// A hash of what the game last wrote or saw at each (bucket, key) that
    /// exists: an event whose file still matches is an echo of our own
    /// write, not an edit. Deleted keys leave it, so it is bounded by the
    /// keys that exist.
    known: HashMap<Entry, u64>,
    /// The game's latest deletes, oldest first, at most [`RECENT_DELETES`]:
    /// an event for one of them whose file is still gone is an echo.
    deleted: RecentDeletes,
    edits: Receiver<notify::Result<notify::Event>>,
    /// Kept alive for as long as the store; dropping it stops the events.
    _watcher: Option<RecommendedWatcher>,
}

/// A bounded set of deleted entries that forgets the oldest first. Removing
/// one leaves its place in `order` stale (skipped when it comes up), so
/// every operation is O(1).
#[derive(Default)]
struct RecentDeletes {
    /// Each entry's latest insertion.
    entries: HashMap<Entry, u64>,
    /// Insertions, oldest first, stale ones included; at most
    /// [`RECENT_DELETES`].
    order: VecDeque<(u64, Entry)>,
    inserted: u64,
}

impl RecentDeletes {
    fn insert(&mut self, entry: Entry) {
        self.inserted += 1;
        self.entries.insert(entry.clone(), self.inserted);
        self.order.push_back((self.inserted, entry));
        while self.order.len() > RECENT_DELETES {
            if let Some((insertion, oldest)) = self.order.pop_front()
                && self.entries.get(&oldest) == Some(&insertion)
            {
                self.entries.remove(&oldest);
            }
        }
    }

    fn remove(&mut self, entry: &Entry) {
        self.entries.remove(entry);
    }

    fn contains(&self, entry: &Entry) -> bool {
        self.entries.contains_key(entry)
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KvError + '_ {
    move |source| KvError::Io {
        path: path.to_owned(),
        source,
    }
}

impl DirectoryBackend {
    pub fn open(root: &Path) -> Result<Self, KvError> {
        create_dir_durably(root).map_err(io_error(root))?;
        rename_legacy_names(root)?;
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
            deleted: RecentDeletes::default(),
            edits,
            _watcher: watcher,
        })
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join(encode(bucket))
    }

    fn key_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.bucket_dir(bucket).join(encode(key))
    }

    /// The (bucket, key) a path inside the root stands for.
    fn entry_of(&self, path: &Path) -> Option<Entry> {
        let relative = path.strip_prefix(&self.root).ok()?;
        let mut parts = relative.iter();
        let bucket = decode(parts.next()?.to_str()?)?;
        let name = parts.next()?.to_str()?;
        if parts.next().is_some() || names::check_bucket(&bucket).is_err() {
            return None;
        }
        Some((bucket, decode(name)?))
    }

    /// How many entries its bookkeeping holds: the keys the game wrote or
    /// saw that exist, and its latest deletes.
    #[cfg(test)]
    pub(super) fn bookkeeping_len(&self) -> usize {
        self.known.len() + self.deleted.order.len() + self.deleted.entries.len()
    }
}

/// Renames the files and directories of a store written in the old
/// encoding (upper-case letters and `.` kept) to their portable names, once.
fn rename_legacy_names(root: &Path) -> Result<(), KvError> {
    for dir in subdirectories(root)? {
        let Some(name) = dir.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        let bucket_dir = match (decode(name), names::legacy_bucket(name)) {
            (Some(_), _) | (None, None) => dir.clone(),
            (None, Some(bucket)) => rename_once(&dir, &root.join(encode(&bucket)))?,
        };
        for file in fs::read_dir(&bucket_dir).map_err(io_error(&bucket_dir))? {
            let file = file.map_err(io_error(&bucket_dir))?.path();
            let Some(name) = file.file_name().and_then(|name| name.to_str()) else {
                continue;
            };
            if decode(name).is_none()
                && let Some(key) = names::legacy_key(name)
            {
                rename_once(&file, &bucket_dir.join(encode(&key)))?;
            }
        }
    }
    Ok(())
}

fn subdirectories(root: &Path) -> Result<Vec<PathBuf>, KvError> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(root).map_err(io_error(root))? {
        let path = entry.map_err(io_error(root))?.path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    Ok(dirs)
}

/// Renames `from` to `to` durably unless `to` exists (then `from` stays,
/// with a warning); returns where it is now.
fn rename_once(from: &Path, to: &Path) -> Result<PathBuf, KvError> {
    if to.exists() {
        warn!(
            "{} was not renamed to {}, which exists: remove one",
            from.display(),
            to.display()
        );
        return Ok(from.to_owned());
    }
    fs::rename(from, to).map_err(io_error(from))?;
    if let Some(dir) = to.parent() {
        sync_dir(dir).map_err(io_error(dir))?;
    }
    Ok(to.to_owned())
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

    fn set(&mut self, bucket: &str, key: &str, value: &[u8]) -> Result<Option<u64>, KvError> {
        let replaced = self.value_len(bucket, key)?;
        let dir = self.bucket_dir(bucket);
        create_dir_durably(&dir).map_err(io_error(&dir))?;
        let name = encode(key);
        let path = dir.join(&name);
        let temp = dir.join(format!("{TEMP_PREFIX}{name}.tmp"));
        // Known before the rename, so the watcher's event for it is an echo.
        let entry = (bucket.to_owned(), key.to_owned());
        self.deleted.remove(&entry);
        self.known.insert(entry, content_hash(value));
        replace_file(&temp, &path, value).map_err(io_error(&path))?;
        Ok(replaced)
    }

    fn delete(&mut self, bucket: &str, key: &str) -> Result<Option<u64>, KvError> {
        let Some(deleted) = self.value_len(bucket, key)? else {
            return Ok(None);
        };
        let path = self.key_path(bucket, key);
        let entry = (bucket.to_owned(), key.to_owned());
        self.known.remove(&entry);
        self.deleted.insert(entry);
        match fs::remove_file(&path) {
            Ok(()) => {
                let dir = self.bucket_dir(bucket);
                sync_dir(&dir).map_err(io_error(&dir))?;
                Ok(Some(deleted))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error(&path)(error)),
        }
    }

    fn keys(&self, bucket: &str) -> Result<Vec<String>, KvError> {
        let dir = self.bucket_dir(bucket);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error(&dir)(error)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(&dir))?;
            if let Some(key) = entry.file_name().to_str().and_then(decode) {
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
            let bucket = entry.file_name().to_str().and_then(decode);
            if let Some(bucket) = bucket
                && entry.path().is_dir()
                && names::check_bucket(&bucket).is_ok()
            {
                buckets.push(bucket);
            }
        }
        Ok(buckets)
    }

    fn value_len(&self, bucket: &str, key: &str) -> Result<Option<u64>, KvError> {
        let path = self.key_path(bucket, key);
        match fs::metadata(&path) {
            Ok(metadata) => Ok(Some(metadata.len())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error(&path)(error)),
        }
    }

    fn total_bytes(&self) -> Result<u64, KvError> {
        let mut total = 0;
        for bucket in self.buckets()? {
            for key in self.keys(&bucket)? {
                total += self.value_len(&bucket, &key)?.unwrap_or(0);
            }
        }
        Ok(total)
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
            let entry = (bucket, key);
            if !self.is_edit(&entry, value.as_deref()) {
                continue;
            }
            let (bucket, key) = entry;
            out.push(KvChanged {
                stamp: EventStamp::UNPUBLISHED,
                bucket,
                key,
                value,
                origin: KvOrigin::External,
            });
        }
    }
}

impl DirectoryBackend {
    /// Whether `entry` now holding `value` (`None`: its file is gone) is an
    /// edit from outside rather than the echo of the game's own write or
    /// delete; the bookkeeping learns it either way.
    fn is_edit(&mut self, entry: &Entry, value: Option<&[u8]>) -> bool {
        match value {
            Some(value) => {
                let hash = content_hash(value);
                self.deleted.remove(entry);
                self.known.insert(entry.clone(), hash) != Some(hash)
            }
            None => {
                let was_known = self.known.remove(entry).is_some();
                was_known || !self.deleted.contains(entry)
            }
        }
    }
}
