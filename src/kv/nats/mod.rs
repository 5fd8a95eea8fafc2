//! The store on a NATS JetStream key-value bucket, shared by every process
//! connected to it (feature `nats`).
//!
//! Frames never wait on the network: reads are answered from a replica in
//! this process, kept current by one watch of the whole JetStream bucket
//! (started with history, so it begins with the current values); writes
//! change the replica at once and go to the server from the backend's own
//! thread. Changes made by other processes arrive through the watch and
//! become [`KvChanged`](super::KvChanged) messages with
//! [`KvOrigin::Remote`](super::KvOrigin::Remote); this process's own
//! writes come back through the watch too and are told apart by the
//! revision the server gave them, so they are not reported twice.
//!
//! All of the store's buckets live in one JetStream bucket
//! ([`NatsOptions::bucket`]), one stream: a change's revision orders it
//! among every bucket's changes. A NATS key is the store's bucket and key,
//! each escaped ([`nats_key`]), joined by `.`.

mod keys;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc as tokio_mpsc;

pub use self::keys::nats_key;
use self::keys::{check_bucket_name, store_key};
use self::worker::{Command, Received, Replica, StatusCell, Swapped};
use super::backend::{Backend, Swap};
use super::{KvChanged, KvError, KvOrigin, SharedStatus};
use crate::stamps::EventStamp;

/// How to reach the server, and where the store lives on it.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    /// The JetStream key-value bucket holding every bucket of the store
    /// (`[A-Za-z0-9_-]`), created if missing. Default `hotwasm`.
    pub bucket: String,
    /// How long [`KvStore::connect_nats`](super::KvStore::connect_nats)
    /// waits for the server and the current values. Default 10 s.
    pub connect_timeout: Duration,
    /// How many writes may wait for the server (while it is slow or
    /// unreachable) before more are refused with
    /// [`KvError::Remote`](super::KvError::Remote). Default 10 000.
    pub max_queued_writes: usize,
    /// How long the game's exit waits for writes still waiting for the
    /// server ([`KvStore::wait_for_writes`](super::KvStore::wait_for_writes));
    /// those it cannot send by then are lost, and the log says how many.
    /// Default 2 s.
    pub exit_wait: Duration,
    /// The most time all scripts' `increment` and compare-and-swap calls
    /// together may wait for the server in one frame. Past it (and for a
    /// call that would wait longer), a call answers at once with
    /// [`KvError::Busy`](super::KvError::Busy), a guest's `error::other`
    /// starting `busy:`: the swap goes on, and the same call made again,
    /// in the same frame or a later one, gets its answer; it is never made
    /// twice. The game's own calls wait up to 5 s. Default 4 ms.
    pub max_frame_wait: Duration,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            bucket: "hotwasm".to_owned(),
            connect_timeout: Duration::from_secs(10),
            max_queued_writes: 10_000,
            exit_wait: Duration::from_secs(2),
            max_frame_wait: Duration::from_millis(4),
        }
    }
}

/// A guest's swap sent to the server, its answer not yet taken.
struct Unanswered {
    expected: Option<Vec<u8>>,
    value: Vec<u8>,
    answer: crossbeam_channel::Receiver<Result<Swapped, String>>,
}

/// The answer to a guest's swap that this frame cannot wait for.
fn busy(bucket: &str, key: &str) -> KvError {
    KvError::Busy {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    }
}

/// The longest a compare-and-swap waits for the server: the one store
/// operation that waits on the network, since no replica can say what
/// another process is writing now.
const SWAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Room left in a message for its headers (the message id, the operation)
/// when a value is checked against the server's `max_payload`.
const HEADER_ROOM: usize = 256;

pub(super) struct NatsBackend {
    url: String,
    status: Arc<StatusCell>,
    max_queued_writes: usize,
    exit_wait: Duration,
    max_frame_wait: Duration,
    /// Per key, a guest's swap sent to the server whose answer it did not
    /// wait for: the same call made again collects it.
    unanswered: HashMap<(String, String), Unanswered>,
    /// Answers to unanswered swaps that a different call of their key
    /// found landed: the store records them.
    abandoned: Vec<(String, String, Vec<u8>, Option<u64>)>,
    replica: Replica,
    /// Per key, this process's writes sent and not yet come back through
    /// the watch: until they have, older changes from elsewhere are not
    /// applied (the server has them before these writes).
    pending: HashMap<(String, String), usize>,
    /// Per key, the revision a compare-and-swap found or made: changes up
    /// to it are already in the replica.
    swapped_at: HashMap<(String, String), u64>,
    commands: tokio_mpsc::UnboundedSender<Command>,
    received: tokio_mpsc::UnboundedReceiver<Received>,
    /// Changes the server no longer held, not yet told with a reported
    /// change.
    unreported_skips: u64,
}

impl NatsBackend {
    /// Connects to `url`, reads the bucket's current values and starts the
    /// thread that keeps them current.
    pub fn connect(url: &str, options: &NatsOptions) -> Result<Self, KvError> {
        let unreachable = |reason: String| KvError::Remote {
            url: url.to_owned(),
            reason,
        };
        check_bucket_name(&options.bucket).map_err(unreachable)?;
        let status = Arc::new(StatusCell::default());
        let ends = worker::spawn(url.to_owned(), options.bucket.clone(), status.clone())
            .map_err(|error| unreachable(format!("no thread for it: {error}")))?;
        let replica = ends
            .ready
            .recv_timeout(options.connect_timeout)
            .map_err(|_| {
                unreachable(format!(
                    "no answer with the current values in {:?}",
                    options.connect_timeout
                ))
            })?
            .map_err(unreachable)?;
        Ok(Self {
            url: url.to_owned(),
            status,
            max_queued_writes: options.max_queued_writes,
            exit_wait: options.exit_wait,
            max_frame_wait: options.max_frame_wait,
            unanswered: HashMap::new(),
            abandoned: Vec::new(),
            replica,
            pending: HashMap::new(),
            swapped_at: HashMap::new(),
            commands: ends.commands,
            received: ends.received,
            unreported_skips: 0,
        })
    }

    /// Refuses a write when too many wait for the server already.
    /// Puts what the server said of a swap of `value` into the replica:
    /// the newest this process knows.
    fn apply_swap(&mut self, bucket: &str, key: &str, value: &[u8], swapped: Swapped) -> Swap {
        if let Swapped::At(revision) = swapped {
            self.swapped_at
                .insert((bucket.to_owned(), key.to_owned()), revision);
        }
        let keys = self.replica.entry(bucket.to_owned()).or_default();
        match swapped {
            Swapped::At(_) => Swap::Done(
                (keys.insert(key.to_owned(), value.to_vec())).map(|old| old.len() as u64),
            ),
            Swapped::Holds(current) => {
                match &current {
                    Some(current) => keys.insert(key.to_owned(), current.clone()),
                    None => keys.remove(key),
                };
                Swap::Holds(current)
            }
        }
    }

    fn check_queue(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        let queued = self.status.queued_writes.load(Ordering::Relaxed);
        if queued < self.max_queued_writes {
            return Ok(());
        }
        Err(KvError::Remote {
            url: self.url.clone(),
            reason: format!(
                "{queued} writes wait for the server (NatsOptions::max_queued_writes): \
                 {bucket}/{key} not written"
            ),
        })
    }

    /// Refuses a value the server would refuse for its size, stored under
    /// `nats_key` (the NATS key of `key` in `bucket`).
    fn check_payload(
        &self,
        bucket: &str,
        key: &str,
        nats_key: &str,
        value: &[u8],
    ) -> Result<(), KvError> {
        let max = self.status.max_payload.load(Ordering::Relaxed);
        let needed = value.len() + nats_key.len() + HEADER_ROOM;
        if needed <= max {
            return Ok(());
        }
        Err(KvError::Remote {
            url: self.url.clone(),
            reason: format!(
                "{bucket}/{key} not written: a value of {} bytes does not fit the server's \
                 max_payload of {max} bytes with its key and headers (raise it in the \
                 server's configuration file, e.g. max_payload: 8MB)",
                value.len()
            ),
        })
    }

    fn send(&self, command: Command) {
        self.status.queued_writes.fetch_add(1, Ordering::Relaxed);
        // The thread ends only with the backend; a send to it cannot fail
        // before then.
        let _ = self.commands.send(command);
    }
}

impl Backend for NatsBackend {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .replica
            .get(bucket)
            .and_then(|keys| keys.get(key))
            .cloned())
    }

    fn set(&mut self, bucket: &str, key: &str, value: &[u8]) -> Result<Option<u64>, KvError> {
        self.check_queue(bucket, key)?;
        let nats_key = nats_key(bucket, key);
        self.check_payload(bucket, key, &nats_key, value)?;
        let old = (self.replica.entry(bucket.to_owned()).or_default())
            .insert(key.to_owned(), value.to_vec());
        *self
            .pending
            .entry((bucket.to_owned(), key.to_owned()))
            .or_default() += 1;
        self.send(Command::Write {
            key: nats_key,
            value: Some(value.to_vec()),
        });
        Ok(old.map(|old| old.len() as u64))
    }

    fn delete(&mut self, bucket: &str, key: &str) -> Result<Option<u64>, KvError> {
        self.check_queue(bucket, key)?;
        let old = self
            .replica
            .get_mut(bucket)
            .and_then(|keys| keys.remove(key));
        if old.is_some() {
            *self
                .pending
                .entry((bucket.to_owned(), key.to_owned()))
                .or_default() += 1;
            self.send(Command::Write {
                key: nats_key(bucket, key),
                value: None,
            });
        }
        Ok(old.map(|old| old.len() as u64))
    }

    fn keys(&self, bucket: &str) -> Result<Vec<String>, KvError> {
        Ok(self
            .replica
            .get(bucket)
            .map(|keys| keys.keys().cloned().collect())
            .unwrap_or_default())
    }

    fn buckets(&self) -> Result<Vec<String>, KvError> {
        Ok(self.replica.keys().cloned().collect())
    }

    fn value_len(&self, bucket: &str, key: &str) -> Result<Option<u64>, KvError> {
        Ok(self.get(bucket, key)?.map(|value| value.len() as u64))
    }

    fn total_bytes(&self) -> Result<u64, KvError> {
        Ok((self.replica.values())
            .flat_map(|keys| keys.values())
            .map(|value| value.len() as u64)
            .sum())
    }

    fn exit_wait(&self) -> Duration {
        self.exit_wait
    }

    fn shared_status(&self) -> Option<SharedStatus> {
        Some(SharedStatus {
            url: self.url.clone(),
            connected: self.status.connected.load(Ordering::Relaxed),
            last_revision: self.status.last_revision.load(Ordering::Relaxed),
            queued_writes: self.status.queued_writes.load(Ordering::Relaxed),
            skipped_changes: self.status.skipped_changes.load(Ordering::Relaxed),
            behind: self.status.behind.load(Ordering::Relaxed),
        })
    }

    fn swap(
        &mut self,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        wait: Option<Duration>,
    ) -> Option<Result<Swap, KvError>> {
        let until = Instant::now() + wait.unwrap_or(SWAP_TIMEOUT);
        let left = || until.saturating_duration_since(Instant::now());
        let remote = |url: &str, reason: String| KvError::Remote {
            url: url.to_owned(),
            reason,
        };
        let id = (bucket.to_owned(), key.to_owned());
        if let Some(earlier) = self.unanswered.remove(&id) {
            let same_call = earlier.expected.as_deref() == expected && earlier.value == value;
            match earlier.answer.recv_timeout(left()) {
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    self.unanswered.insert(id, earlier);
                    return Some(Err(busy(bucket, key)));
                }
                // Skipped: its caller stopped waiting before it began.
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {}
                Ok(Err(reason)) if same_call => return Some(Err(remote(&self.url, reason))),
                Ok(Err(_)) => {}
                Ok(Ok(swapped)) => {
                    let outcome = self.apply_swap(bucket, key, &earlier.value, swapped);
                    if same_call {
                        return Some(Ok(outcome));
                    }
                    if let Swap::Done(old) = outcome {
                        (self.abandoned).push((id.0.clone(), id.1.clone(), earlier.value, old));
                    }
                }
            }
        }
        // Without the server no answer can come: refused at once rather
        // than after a frame-stalling wait.
        if !self.status.connected.load(Ordering::Relaxed) {
            let reason = format!(
                "not connected: a compare-and-swap or increment of {bucket}/{key} needs the server"
            );
            return Some(Err(remote(&self.url, reason)));
        }
        let nats_key = nats_key(bucket, key);
        if let Err(error) = self
            .check_queue(bucket, key)
            .and_then(|()| self.check_payload(bucket, key, &nats_key, value))
        {
            return Some(Err(error));
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Swap {
            key: nats_key,
            expected: expected.map(<[u8]>::to_vec),
            value: value.to_vec(),
            deadline: until,
            reply,
        });
        let swapped = match answer.recv_timeout(left()) {
            Ok(Ok(swapped)) => swapped,
            Ok(Err(reason)) => return Some(Err(remote(&self.url, reason))),
            // A guest's call: the answer waits for the same call again.
            Err(crossbeam_channel::RecvTimeoutError::Timeout) if wait.is_some() => {
                let earlier = Unanswered {
                    expected: expected.map(<[u8]>::to_vec),
                    value: value.to_vec(),
                    answer,
                };
                self.unanswered.insert(id, earlier);
                return Some(Err(busy(bucket, key)));
            }
            Err(_) => {
                let waited =
                    format!("no answer to a compare-and-swap of {key} in {SWAP_TIMEOUT:?}");
                return Some(Err(remote(&self.url, waited)));
            }
        };
        Some(Ok(self.apply_swap(bucket, key, value, swapped)))
    }

    fn max_frame_wait(&self) -> Duration {
        self.max_frame_wait
    }

    fn take_abandoned(&mut self, out: &mut Vec<(String, String, Vec<u8>, Option<u64>)>) {
        out.append(&mut self.abandoned);
    }

    fn external_changes(&mut self, out: &mut Vec<KvChanged>) {
        while let Ok(received) = self.received.try_recv() {
            match received {
                Received::Change {
                    bucket,
                    key,
                    value,
                    revision,
                    own,
                } => {
                    let id = (bucket, key);
                    // Older than what a compare-and-swap put in the replica.
                    let stale = match self.swapped_at.get(&id) {
                        Some(&at) if revision <= at => true,
                        Some(_) => {
                            self.swapped_at.remove(&id);
                            false
                        }
                        None => false,
                    };
                    let pending = self.pending.get(&id).copied().unwrap_or(0);
                    if own {
                        // The last of its own writes back: the replica takes
                        // the server's word (a change from elsewhere may
                        // have come after it).
                        if pending <= 1 {
                            self.pending.remove(&id);
                            if !stale {
                                self.apply(&id, value);
                            }
                        } else {
                            self.pending.insert(id, pending - 1);
                        }
                        continue;
                    }
                    if stale || pending > 0 {
                        // Older on the server than this process's write on
                        // its way there, which replaces it: neither applied
                        // nor reported.
                        continue;
                    }
                    self.apply(&id, value.clone());
                    let (bucket, key) = id;
                    let skipped = std::mem::take(&mut self.unreported_skips);
                    out.push(KvChanged {
                        stamp: EventStamp::UNPUBLISHED,
                        bucket,
                        key,
                        value,
                        origin: KvOrigin::Remote { revision, skipped },
                    });
                }
                Received::Skipped(skipped) => self.unreported_skips += skipped,
                Received::Failed { nats_key, reason } => {
                    bevy::log::warn!("NATS key-value store at {}: {reason}", self.url);
                    if let Some(id) = store_key(&nats_key)
                        && let Some(pending) = self.pending.get_mut(&id)
                    {
                        *pending -= 1;
                        if *pending == 0 {
                            self.pending.remove(&id);
                        }
                    }
                }
            }
        }
    }
}

impl NatsBackend {
    /// Sets (or with `None`, deletes) a key in the replica.
    fn apply(&mut self, (bucket, key): &(String, String), value: Option<Vec<u8>>) {
        let keys = self.replica.entry(bucket.clone()).or_default();
        match value {
            Some(value) => {
                keys.insert(key.clone(), value);
            }
            None => {
                keys.remove(key);
            }
        }
    }
}
