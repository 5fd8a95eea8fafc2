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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use tokio::sync::mpsc as tokio_mpsc;

use super::{Backend, KvError, SharedStatus, Swap, names};

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
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            bucket: "hotwasm".to_owned(),
            connect_timeout: Duration::from_secs(10),
            max_queued_writes: 10_000,
        }
    }
}

/// A write for the server, in the order the game made them.
enum Command {
    Put {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Sets `key` to `value` if the server holds `expected` for it.
    Swap {
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        reply: mpsc::Sender<Result<Swapped, String>>,
    },
}

/// What a compare-and-swap on the server did.
enum Swapped {
    /// Swapped, at this revision.
    At(u64),
    /// The server holds this instead (`None`: unset).
    Holds(Option<Vec<u8>>),
}

/// The longest a compare-and-swap waits for the server: the one store
/// operation that waits on the network, since no replica can say what
/// another process is writing now.
const SWAP_TIMEOUT: Duration = Duration::from_secs(5);

/// What the backend's thread hands the store.
enum Received {
    /// A key changed on the server (`None`: deleted), in the order of
    /// revisions: by another process, or by this one's `set` or `delete`
    /// (`own`) coming back.
    Change {
        bucket: String,
        key: String,
        value: Option<Vec<u8>>,
        revision: u64,
        own: bool,
    },
    /// The server refused this process's write of `key`, or it could not
    /// be sent.
    Failed { nats_key: String, reason: String },
}

type Replica = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// What the backend's thread tells the game about the connection.
#[derive(Default)]
struct StatusCell {
    connected: AtomicBool,
    last_revision: AtomicU64,
    queued_writes: AtomicUsize,
}

/// How often the backend's thread looks at the connection's state.
const STATUS_INTERVAL: Duration = Duration::from_millis(100);

pub(super) struct NatsBackend {
    url: String,
    status: Arc<StatusCell>,
    max_queued_writes: usize,
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
}

impl NatsBackend {
    /// Connects to `url`, reads the bucket's current values and starts the
    /// thread that keeps them current.
    pub fn connect(url: &str, options: &NatsOptions) -> Result<Self, KvError> {
        let unreachable = |reason: String| KvError::Remote {
            url: url.to_owned(),
            reason,
        };
        let (commands, command_rx) = tokio_mpsc::unbounded_channel();
        let (received_tx, received) = tokio_mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (url_owned, bucket) = (url.to_owned(), options.bucket.clone());
        let status = Arc::new(StatusCell::default());
        let thread_status = status.clone();
        std::thread::Builder::new()
            .name("hotwasm-nats".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(format!("no tokio runtime: {error}")));
                        return;
                    }
                };
                let channels = Channels {
                    ready: ready_tx,
                    commands: command_rx,
                    received: received_tx,
                    status: thread_status,
                };
                runtime.block_on(run(url_owned, bucket, channels));
            })
            .map_err(|error| unreachable(format!("no thread for it: {error}")))?;
        let replica = ready_rx
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
            replica,
            pending: HashMap::new(),
            swapped_at: HashMap::new(),
            commands,
            received,
        })
    }

    /// Refuses a write when too many wait for the server already.
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

    fn send(&self, command: Command) {
        self.status.queued_writes.fetch_add(1, Ordering::Relaxed);
        // The thread ends only with the backend; a send to it cannot fail
        // before then.
        let _ = self.commands.send(command);
    }
}

/// The backend's thread: connects, hands over the current values, then
/// sends the game's writes and passes other processes' changes on.
/// The backend thread's ends of its channels.
struct Channels {
    ready: mpsc::Sender<Result<Replica, String>>,
    commands: tokio_mpsc::UnboundedReceiver<Command>,
    received: tokio_mpsc::UnboundedSender<Received>,
    status: Arc<StatusCell>,
}

async fn run(url: String, bucket: String, channels: Channels) {
    let Channels {
        ready,
        mut commands,
        received,
        status,
    } = channels;
    let started = async {
        let client = async_nats::ConnectOptions::new()
            .name("bevy_hotwasm")
            .connect(url.as_str())
            .await
            .map_err(|error| format!("cannot connect: {error}"))?;
        let context = jetstream::new(client.clone());
        let store = match context.get_key_value(bucket.as_str()).await {
            Ok(store) => store,
            Err(_) => context
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    history: 1,
                    ..Default::default()
                })
                .await
                .map_err(|error| format!("cannot create bucket {bucket}: {error}"))?,
        };
        let last = (store.stream.clone().info().await)
            .map_err(|error| format!("cannot read bucket {bucket}: {error}"))?
            .state
            .last_sequence;
        let mut watch = (store.watch_with_history(">").await)
            .map_err(|error| format!("cannot watch bucket {bucket}: {error}"))?;
        // The current values: the newest entry of every key, up to the
        // revision the bucket was at.
        let mut replica = Replica::new();
        let mut applied = 0;
        while applied < last {
            let Some(entry) = watch.next().await else {
                return Err(format!("bucket {bucket}'s watch ended"));
            };
            let Ok(entry) = entry else { continue };
            applied = applied.max(entry.revision);
            if let Some((bucket, key)) = store_key(&entry.key) {
                match entry.operation {
                    kv::Operation::Put => {
                        replica
                            .entry(bucket)
                            .or_default()
                            .insert(key, entry.value.to_vec());
                    }
                    kv::Operation::Delete | kv::Operation::Purge => {
                        if let Some(keys) = replica.get_mut(&bucket) {
                            keys.remove(&key);
                        }
                    }
                }
            }
        }
        Ok((client, store, watch, replica, applied))
    };
    let (client, store, mut watch, mut applied) = match started.await {
        Ok((client, store, watch, replica, applied)) => {
            status.connected.store(true, Ordering::Relaxed);
            status.last_revision.store(applied, Ordering::Relaxed);
            if ready.send(Ok(replica)).is_err() {
                return;
            }
            (client, store, watch, applied)
        }
        Err(reason) => {
            let _ = ready.send(Err(reason));
            return;
        }
    };
    // Revisions the server gave this process's puts and swaps, and keys it
    // deleted: their echoes through the watch are its own.
    let mut own_revisions = HashSet::new();
    let mut swap_revisions = HashSet::new();
    let mut own_deletes: BTreeMap<String, usize> = BTreeMap::new();
    let mut look = tokio::time::interval(STATUS_INTERVAL);
    loop {
        // A write is sent and acknowledged before the watch is read again,
        // so its echo always finds its revision noted.
        tokio::select! {
            _ = look.tick() => {
                let connected = client.connection_state() == async_nats::connection::State::Connected;
                status.connected.store(connected, Ordering::Relaxed);
            }
            command = commands.recv() => {
                let Some(command) = command else { return };
                let failed = match command {
                    Command::Put { key, value } => match store.put(&key, value.into()).await {
                        Ok(revision) => {
                            own_revisions.insert(revision);
                            None
                        }
                        Err(error) => Some((format!("set {key}: {error}"), key)),
                    },
                    Command::Delete { key } => match store.delete(&key).await {
                        Ok(()) => {
                            *own_deletes.entry(key).or_default() += 1;
                            None
                        }
                        Err(error) => Some((format!("delete {key}: {error}"), key)),
                    },
                    Command::Swap { key, expected, value, reply } => {
                        let swapped = swap(&store, &key, expected.as_deref(), value).await;
                        if let Ok(Swapped::At(revision)) = &swapped {
                            swap_revisions.insert(*revision);
                        }
                        // The store gave up waiting: nothing to tell.
                        let _ = reply.send(swapped);
                        None
                    }
                };
                status.queued_writes.fetch_sub(1, Ordering::Relaxed);
                if let Some((reason, nats_key)) = failed
                    && received.send(Received::Failed { nats_key, reason }).is_err()
                {
                    return;
                }
            }
            entry = watch.next() => {
                let Some(entry) = entry else { return };
                // A missed heartbeat or a recreated consumer: the watch
                // carries on from the last revision it delivered.
                let Ok(entry) = entry else { continue };
                if entry.revision <= applied {
                    continue;
                }
                applied = entry.revision;
                status.last_revision.store(applied, Ordering::Relaxed);
                // A swap's answer already told the store.
                if swap_revisions.remove(&entry.revision) {
                    continue;
                }
                let (value, own) = match entry.operation {
                    kv::Operation::Put => {
                        let own = own_revisions.remove(&entry.revision);
                        (Some(entry.value.to_vec()), own)
                    }
                    kv::Operation::Delete | kv::Operation::Purge => {
                        let own = match own_deletes.get_mut(&entry.key) {
                            Some(count) => {
                                *count -= 1;
                                if *count == 0 {
                                    own_deletes.remove(&entry.key);
                                }
                                true
                            }
                            None => false,
                        };
                        (None, own)
                    }
                };
                let Some((bucket, key)) = store_key(&entry.key) else { continue };
                let revision = entry.revision;
                let change = Received::Change { bucket, key, value, revision, own };
                if received.send(change).is_err() {
                    return;
                }
            }
        }
    }
}

/// Sets `key` to `value` if the server holds `expected` for it: an update
/// checked against the revision read, so a write by another process in
/// between makes it fail rather than be overwritten.
async fn swap(
    store: &kv::Store,
    key: &str,
    expected: Option<&[u8]>,
    value: Vec<u8>,
) -> Result<Swapped, String> {
    let entry = (store.entry(key).await).map_err(|error| format!("read {key}: {error}"))?;
    let (current, revision) = match entry {
        Some(entry) if entry.operation == kv::Operation::Put => {
            (Some(entry.value.to_vec()), entry.revision)
        }
        // Deleted: the tombstone's revision is the one to update.
        Some(entry) => (None, entry.revision),
        None => (None, 0),
    };
    if current.as_deref() != expected {
        return Ok(Swapped::Holds(current));
    }
    match store.update(key, value.into(), revision).await {
        Ok(revision) => Ok(Swapped::At(revision)),
        Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
            let now = (store.get(key).await).map_err(|error| format!("read {key}: {error}"))?;
            Ok(Swapped::Holds(now.map(|now| now.to_vec())))
        }
        Err(error) => Err(format!("update {key}: {error}")),
    }
}

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
fn store_key(nats_key: &str) -> Option<(String, String)> {
    let (bucket, key) = nats_key.split_once('.')?;
    let unescape = |text| names::unescape_with(text, b'=', stays);
    Some((unescape(bucket)?, unescape(key)?))
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
        let old = (self.replica.entry(bucket.to_owned()).or_default())
            .insert(key.to_owned(), value.to_vec());
        *self
            .pending
            .entry((bucket.to_owned(), key.to_owned()))
            .or_default() += 1;
        self.send(Command::Put {
            key: nats_key(bucket, key),
            value: value.to_vec(),
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
            self.send(Command::Delete {
                key: nats_key(bucket, key),
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

    fn shared_status(&self) -> Option<SharedStatus> {
        Some(SharedStatus {
            url: self.url.clone(),
            connected: self.status.connected.load(Ordering::Relaxed),
            last_revision: self.status.last_revision.load(Ordering::Relaxed),
            queued_writes: self.status.queued_writes.load(Ordering::Relaxed),
        })
    }

    fn swap(
        &mut self,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Option<Result<Swap, KvError>> {
        if let Err(error) = self.check_queue(bucket, key) {
            return Some(Err(error));
        }
        let (reply, answer) = mpsc::channel();
        self.send(Command::Swap {
            key: nats_key(bucket, key),
            expected: expected.map(<[u8]>::to_vec),
            value: value.to_vec(),
            reply,
        });
        let remote = |reason: String| KvError::Remote {
            url: self.url.clone(),
            reason,
        };
        let swapped = match answer.recv_timeout(SWAP_TIMEOUT) {
            Ok(Ok(swapped)) => swapped,
            Ok(Err(reason)) => return Some(Err(remote(reason))),
            Err(_) => {
                let waited =
                    format!("no answer to a compare-and-swap of {key} in {SWAP_TIMEOUT:?}");
                return Some(Err(remote(waited)));
            }
        };
        // What the server said is the newest this process knows.
        if let Swapped::At(revision) = swapped {
            self.swapped_at
                .insert((bucket.to_owned(), key.to_owned()), revision);
        }
        let keys = self.replica.entry(bucket.to_owned()).or_default();
        Some(Ok(match swapped {
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
        }))
    }

    fn external_changes(&mut self, out: &mut Vec<super::KvChanged>) {
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
                    out.push(super::KvChanged {
                        stamp: super::EventStamp::UNPUBLISHED,
                        bucket,
                        key,
                        value,
                        origin: super::KvOrigin::Remote { revision },
                    });
                }
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
