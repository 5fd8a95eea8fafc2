//! The polling thread: asks the server, every poll interval, whether the
//! modules a source handed out changed, and tells the asset server which.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bevy::asset::io::{AssetSourceEvent, AssetWatcher};
use crossbeam_channel::RecvTimeoutError;

use super::fetch::{Fetched, Validators, received};
use super::{Remote, RemoteError, ServedFrom, Snapshot};
use crate::files::content_hash;
use crate::trust::signature_path;

/// Every how many polls a signature is asked for while the loader has the
/// server's verified copy of its module: re-signing a module without
/// changing it changes nothing that runs, so it need not cost a request
/// per module every poll.
const SIGNATURE_POLL_EVERY: u64 = 10;

/// Starts the thread that polls `remote` and sends a
/// [`AssetSourceEvent::ModifiedAsset`] for each module that changed; it
/// stops when Bevy drops the returned watcher.
pub(super) fn watch(
    remote: Arc<Remote>,
    events: async_channel::Sender<AssetSourceEvent>,
) -> Option<Box<dyn AssetWatcher>> {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    std::thread::Builder::new()
        .name(format!("hotwasm poll {}", remote.name))
        .spawn(move || {
            let mut poller = Poller::default();
            while let Err(RecvTimeoutError::Timeout) =
                stopped.recv_timeout(remote.settings.poll_interval)
            {
                for path in poller.changed(&remote) {
                    // Closed only when the asset server is gone.
                    let _ = events.send_blocking(AssetSourceEvent::ModifiedAsset(path));
                }
            }
        })
        .ok()
        .map(|_| Box::new(StopOnDrop(stop)) as Box<dyn AssetWatcher>)
}

/// Stops the polling thread when Bevy drops the watcher.
struct StopOnDrop(
    #[expect(dead_code, reason = "dropping it is the signal")] crossbeam_channel::Sender<()>,
);

impl AssetWatcher for StopOnDrop {}

/// What the polling thread last saw of each module and its signature.
#[derive(Default)]
struct Poller {
    seen: HashMap<PathBuf, Seen>,
    polls: u64,
}

impl Poller {
    /// The handed-out modules whose server copy (module or signature)
    /// changed since the last poll, or since they were handed out.
    fn changed(&mut self, remote: &Remote) -> Vec<PathBuf> {
        self.polls += 1;
        // Also the polls that ask without validators: a file copied with
        // its old time (`cp -p`, `rsync -t`) is no newer to
        // `If-Modified-Since`.
        let signatures_due = self.polls.is_multiple_of(SIGNATURE_POLL_EVERY);
        let polled: Vec<(PathBuf, Seen, bool)> = remote
            .lock_served()
            .iter()
            .map(|(path, snapshot)| {
                let seen = self
                    .seen
                    .remove(path)
                    .unwrap_or_else(|| Seen::handed_out(snapshot));
                // Only a new signature can turn a refused or fallen-back
                // module into the server's verified copy.
                let runs_server_copy = snapshot.from == ServedFrom::Server && snapshot.verified;
                (path.clone(), seen, signatures_due || !runs_server_copy)
            })
            .collect();
        let mut changed = Vec::new();
        for (path, mut seen, with_signature) in polled {
            match seen.poll(remote, &path, with_signature, signatures_due) {
                Ok(true) => changed.push(path.clone()),
                Ok(false) => {}
                Err(error) => remote.status.update(&remote.asset_path(&path), |status| {
                    status.last_error = Some(error);
                }),
            }
            self.seen.insert(path, seen);
        }
        changed
    }
}

/// What the polling thread last saw of one module and its signature.
#[derive(Default)]
struct Seen {
    module: Version,
    signature: Version,
}

impl Seen {
    /// A copy from the server is what the server has now; after a fallback
    /// anything the server answers is news.
    fn handed_out(snapshot: &Snapshot) -> Self {
        let version = |bytes: Option<&[u8]>| Version {
            validators: Validators::default(),
            hash: bytes.map(content_hash),
        };
        match snapshot.from {
            ServedFrom::Server => Self {
                module: version(Some(snapshot.module.as_slice())),
                signature: version(snapshot.signature.as_deref()),
            },
            ServedFrom::Cache | ServedFrom::Embedded => Self::default(),
        }
    }

    /// Whether the module at `path` changed: one request (conditional
    /// unless `unconditional`), and one for its signature when
    /// `with_signature` or the module changed.
    fn poll(
        &mut self,
        remote: &Remote,
        path: &Path,
        with_signature: bool,
        unconditional: bool,
    ) -> Result<bool, RemoteError> {
        let module_changed = self.module.poll(remote, path, unconditional)?;
        if !(module_changed || with_signature) {
            return Ok(false);
        }
        // After a module change this only records the signature's version:
        // the reload downloads both, so a failure here is not news.
        let signature_changed = self
            .signature
            .poll(remote, &signature_path(path), unconditional);
        if module_changed {
            return Ok(true);
        }
        signature_changed
    }
}

/// One file's version as the server last gave it: its validators and the
/// hash of its bytes (`None` before the first answer, or for a 404).
#[derive(Default)]
struct Version {
    validators: Validators,
    hash: Option<u64>,
}

impl Version {
    /// Asks the server for `file` unless it still has this version (asks
    /// in any case when `unconditional`); true when it has another.
    fn poll(
        &mut self,
        remote: &Remote,
        file: &Path,
        unconditional: bool,
    ) -> Result<bool, RemoteError> {
        let url = remote.url(file);
        let limit = remote.settings.max_module_bytes;
        let none = Validators::default();
        let validators = if unconditional {
            &none
        } else {
            &self.validators
        };
        let answer = remote.downloads.get(&url, validators, limit, |_| {});
        let hash = match received(&url, answer.recv_blocking())? {
            Fetched::NotModified => return Ok(false),
            Fetched::NotFound => {
                // Validators of a file that is gone would hide its return.
                self.validators = Validators::default();
                None
            }
            Fetched::Body(bytes, validators) => {
                self.validators = validators;
                Some(content_hash(&bytes))
            }
        };
        let changed = self.hash != hash;
        self.hash = hash;
        Ok(changed)
    }
}
