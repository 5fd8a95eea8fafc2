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
use std::time::{Duration, Instant};

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

/// A write for the server, in the order the game made them.
enum Command {
    /// A set (`Some`) or delete (`None`) of `key`.
    Write { key: String, value: Option<Vec<u8>> },
    /// Sets `key` to `value` if the server holds `expected` for it; not
    /// tried after `deadline`, when the store has stopped waiting.
    Swap {
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        deadline: Instant,
        reply: crossbeam_channel::Sender<Result<Swapped, String>>,
    },
}

/// A set or delete on its way to the server, with the message id the
/// server recognises a resend of it by (JetStream drops a message whose id
/// it has seen in the last two minutes), so a write whose acknowledgement
/// was lost with the connection is sent again without being made twice.
struct Write {
    key: String,
    value: Option<Vec<u8>>,
    id: String,
}

/// What sending a write did.
enum Sent {
    /// The server has it, at this revision.
    Acknowledged(u64),
    /// The connection is down or the server did not answer: send it again
    /// when the connection is back.
    NotYet,
    /// The server refused it, or it cannot be sent: why.
    Refused(String),
}

/// What a compare-and-swap on the server did.
enum Swapped {
    /// Swapped, at this revision.
    At(u64),
    /// The server holds this instead (`None`: unset).
    Holds(Option<Vec<u8>>),
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
    /// This many changes, since the last this process saw, are gone from
    /// the server: each was replaced by a newer change of its key before
    /// this process could see it (the bucket keeps one value per key).
    Skipped(u64),
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
    skipped_changes: AtomicU64,
    /// Changes the server had for the watch when it delivered the last.
    behind: AtomicU64,
    /// The largest message the server takes, headers included.
    max_payload: AtomicUsize,
}

/// Room left in a message for its headers (the message id, the operation)
/// when a value is checked against the server's `max_payload`.
const HEADER_ROOM: usize = 256;

/// The longest the client waits between attempts to reach the server
/// again: a game back online within a second of its server.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// How often the backend's thread looks at the connection's state.
const STATUS_INTERVAL: Duration = Duration::from_millis(100);

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
            exit_wait: options.exit_wait,
            max_frame_wait: options.max_frame_wait,
            unanswered: HashMap::new(),
            abandoned: Vec::new(),
            replica,
            pending: HashMap::new(),
            swapped_at: HashMap::new(),
            commands,
            received,
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

/// The backend thread's ends of its channels.
struct Channels {
    ready: mpsc::Sender<Result<Replica, String>>,
    commands: tokio_mpsc::UnboundedReceiver<Command>,
    received: tokio_mpsc::UnboundedSender<Received>,
    status: Arc<StatusCell>,
}

/// The backend's thread: connects, hands over the current values, then
/// sends the game's writes and passes other processes' changes on.
async fn run(url: String, bucket: String, channels: Channels) {
    let Channels {
        ready,
        mut commands,
        received,
        status,
    } = channels;
    let (mut worker, mut watch) = match start(&url, &bucket, received, status).await {
        Ok((worker, watch, replica)) => {
            if ready.send(Ok(replica)).is_err() {
                return;
            }
            (worker, watch)
        }
        Err(reason) => {
            let _ = ready.send(Err(reason));
            return;
        }
    };
    // A write the server has not acknowledged, sent again once the
    // connection is back. Until it is acknowledged neither the next write
    // nor the watch is read: the writes reach the server in the game's
    // order, and a write's echo always finds its revision noted.
    let mut held: Option<Write> = None;
    let mut look = tokio::time::interval(STATUS_INTERVAL);
    loop {
        tokio::select! {
            _ = look.tick() => {
                if worker.look() && let Some(write) = held.take() {
                    held = worker.write(write).await;
                }
            }
            command = commands.recv(), if held.is_none() => {
                let Some(command) = command else { return };
                held = match command {
                    Command::Write { key, value } => {
                        let write = worker.identify(key, value);
                        worker.write(write).await
                    }
                    Command::Swap { key, expected, value, deadline, reply } => {
                        // The store gave up waiting for it: not tried.
                        if Instant::now() < deadline {
                            let swapped = swap(&worker.store, &key, expected.as_deref(), value).await;
                            let landed = match &swapped {
                                Ok(Swapped::At(revision)) => Some(*revision),
                                _ => None,
                            };
                            // Its echo is this process's own only if the
                            // store takes the answer; else the watch brings
                            // the change like any other.
                            if reply.send(swapped).is_ok() && let Some(revision) = landed {
                                worker.swap_revisions.insert(revision);
                            }
                        }
                        worker.status.queued_writes.fetch_sub(1, Ordering::Relaxed);
                        None
                    }
                };
            }
            entry = watch.next(), if held.is_none() => {
                match entry {
                    Some(Ok(entry)) => {
                        if !worker.pass_on(entry) {
                            return;
                        }
                    }
                    // A missed heartbeat or a recreated consumer: the watch
                    // carries on from the last revision it delivered.
                    Some(Err(_)) => {}
                    None => watch = worker.watch_again().await,
                }
            }
        }
    }
}

/// Connects, opens (or creates) the bucket and reads its current values:
/// the newest entry of every key, up to the revision the bucket was at.
async fn start(
    url: &str,
    bucket: &str,
    received: tokio_mpsc::UnboundedSender<Received>,
    status: Arc<StatusCell>,
) -> Result<(Worker, kv::Watch, Replica), String> {
    let client = async_nats::ConnectOptions::new()
        .name("bevy_hotwasm")
        .reconnect_delay_callback(|attempts| {
            (Duration::from_millis(100) * attempts as u32).min(MAX_RECONNECT_DELAY)
        })
        .connect(url)
        .await
        .map_err(|error| format!("cannot connect: {error}"))?;
    let context = jetstream::new(client.clone());
    let store = match context.get_key_value(bucket).await {
        Ok(store) => store,
        Err(_) => context
            .create_key_value(kv::Config {
                bucket: bucket.to_owned(),
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
    let mut replica = Replica::new();
    let mut applied = 0;
    while applied < last {
        let Some(entry) = watch.next().await else {
            return Err(format!("bucket {bucket}'s watch ended"));
        };
        let Ok(entry) = entry else { continue };
        applied = applied.max(entry.revision);
        if let Some((bucket, key)) = store_key(&entry.key) {
            let keys = replica.entry(bucket).or_default();
            match entry.operation {
                kv::Operation::Put => {
                    keys.insert(key, entry.value.to_vec());
                }
                kv::Operation::Delete | kv::Operation::Purge => {
                    keys.remove(&key);
                }
            }
        }
    }
    replica.retain(|_, keys| !keys.is_empty());
    status.connected.store(true, Ordering::Relaxed);
    status.last_revision.store(applied, Ordering::Relaxed);
    status
        .max_payload
        .store(client.max_payload(), Ordering::Relaxed);
    let worker = Worker {
        ids: client.new_inbox(),
        written: 0,
        client,
        context,
        store,
        received,
        status,
        applied,
        own_revisions: HashSet::new(),
        swap_revisions: HashSet::new(),
        own_deletes: BTreeMap::new(),
    };
    Ok((worker, watch, replica))
}

/// The backend thread's state once connected.
struct Worker {
    client: async_nats::Client,
    context: jetstream::Context,
    store: kv::Store,
    received: tokio_mpsc::UnboundedSender<Received>,
    status: Arc<StatusCell>,
    /// The newest revision passed on.
    applied: u64,
    /// Unique to this connection: with a count, the writes' message ids.
    ids: String,
    written: u64,
    /// Revisions the server gave this process's puts and swaps, and keys
    /// it deleted: their echoes through the watch are its own.
    own_revisions: HashSet<u64>,
    swap_revisions: HashSet<u64>,
    own_deletes: BTreeMap<String, usize>,
}

impl Worker {
    /// Notes the connection's state; whether it is up.
    fn look(&self) -> bool {
        let connected = self.client.connection_state() == async_nats::connection::State::Connected;
        self.status.connected.store(connected, Ordering::Relaxed);
        self.status
            .max_payload
            .store(self.client.max_payload(), Ordering::Relaxed);
        connected
    }

    /// The write, with a message id no other write of this process has.
    fn identify(&mut self, key: String, value: Option<Vec<u8>>) -> Write {
        self.written += 1;
        let id = format!("{}.{}", self.ids, self.written);
        Write { key, value, id }
    }

    /// Sends `write` and waits for the server's answer: the write back
    /// when it has to be sent again.
    async fn write(&mut self, write: Write) -> Option<Write> {
        // Not sent while the connection is down: the client would wait
        // for an answer that cannot come.
        let sent = if self.look() {
            send(&self.context, &self.store, &write).await
        } else {
            Sent::NotYet
        };
        match sent {
            Sent::NotYet => return Some(write),
            Sent::Acknowledged(revision) => match write.value {
                Some(_) => {
                    self.own_revisions.insert(revision);
                }
                None => *self.own_deletes.entry(write.key).or_default() += 1,
            },
            Sent::Refused(reason) => {
                let verb = if write.value.is_some() {
                    "set"
                } else {
                    "delete"
                };
                let reason = format!("{verb} {}: {reason}", write.key);
                // The game has gone: nothing to tell.
                let _ = self.received.send(Received::Failed {
                    nats_key: write.key,
                    reason,
                });
            }
        }
        self.status.queued_writes.fetch_sub(1, Ordering::Relaxed);
        None
    }

    /// Passes a change from the watch on to the store, unless it was seen
    /// already or was a compare-and-swap's; `false` once the store is gone.
    fn pass_on(&mut self, entry: kv::Entry) -> bool {
        self.status.behind.store(entry.delta, Ordering::Relaxed);
        if entry.revision <= self.applied {
            return true;
        }
        // The bucket keeps one value per key: changes replaced while this
        // process could not see them (a watch resumed after a disconnect)
        // are gone from it.
        let skipped = entry.revision - self.applied - 1;
        self.applied = entry.revision;
        self.status
            .last_revision
            .store(self.applied, Ordering::Relaxed);
        if skipped > 0 {
            self.status
                .skipped_changes
                .fetch_add(skipped, Ordering::Relaxed);
            if self.received.send(Received::Skipped(skipped)).is_err() {
                return false;
            }
        }
        // A swap's answer already told the store.
        if self.swap_revisions.remove(&entry.revision) {
            return true;
        }
        let (value, own) = match entry.operation {
            kv::Operation::Put => {
                let own = self.own_revisions.remove(&entry.revision);
                (Some(entry.value.to_vec()), own)
            }
            kv::Operation::Delete | kv::Operation::Purge => {
                let own = match self.own_deletes.get_mut(&entry.key) {
                    Some(count) => {
                        *count -= 1;
                        if *count == 0 {
                            self.own_deletes.remove(&entry.key);
                        }
                        true
                    }
                    None => false,
                };
                (None, own)
            }
        };
        let Some((bucket, key)) = store_key(&entry.key) else {
            return true;
        };
        let revision = entry.revision;
        let change = Received::Change {
            bucket,
            key,
            value,
            revision,
            own,
        };
        self.received.send(change).is_ok()
    }

    /// A new watch from the revision after the last passed on, once the
    /// server will give one.
    async fn watch_again(&self) -> kv::Watch {
        loop {
            if let Ok(watch) = (self.store)
                .watch_from_revision(">", self.applied + 1)
                .await
            {
                return watch;
            }
            tokio::time::sleep(MAX_RECONNECT_DELAY).await;
        }
    }
}

/// Publishes a set or delete the way a JetStream key-value bucket stores
/// it (the bucket is in this account's own JetStream domain), with the
/// write's message id.
async fn send(context: &jetstream::Context, store: &kv::Store, write: &Write) -> Sent {
    use jetstream::context::PublishErrorKind;
    let prefix = store.put_prefix.as_ref().unwrap_or(&store.prefix);
    let subject = format!("{prefix}{}", write.key);
    let mut message = jetstream::message::PublishMessage::build().message_id(&write.id);
    message = match &write.value {
        Some(value) => message.payload(value.clone().into()),
        None => message.header("KV-Operation", "DEL"),
    };
    let answer = match context.send_publish(subject, message).await {
        Ok(ack) => ack.await,
        Err(error) => Err(error),
    };
    match answer {
        Ok(ack) => Sent::Acknowledged(ack.sequence),
        Err(error) => match error.kind() {
            // No answer, no connection, or no JetStream yet (a server
            // starting up): the write may yet be made.
            PublishErrorKind::TimedOut
            | PublishErrorKind::BrokenPipe
            | PublishErrorKind::StreamNotFound
            | PublishErrorKind::MaxAckPending => Sent::NotYet,
            _ => Sent::Refused(error.to_string()),
        },
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

/// Refuses a JetStream bucket name NATS would refuse.
fn check_bucket_name(name: &str) -> Result<(), String> {
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || b"-_".contains(&byte);
    if !name.is_empty() && name.bytes().all(allowed) {
        return Ok(());
    }
    Err(format!(
        "NatsOptions::bucket {name:?} is not a JetStream bucket name ([A-Za-z0-9_-], not empty)"
    ))
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
                    let skipped = std::mem::take(&mut self.unreported_skips);
                    out.push(super::KvChanged {
                        stamp: super::EventStamp::UNPUBLISHED,
                        bucket,
                        key,
                        value,
                        origin: super::KvOrigin::Remote { revision, skipped },
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
