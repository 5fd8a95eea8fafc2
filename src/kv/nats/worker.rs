//! The backend's thread and its channel protocol: the store's commands in,
//! the server's changes out, and the loop between them and the server.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use tokio::sync::mpsc as tokio_mpsc;

use super::keys::store_key;

/// A write for the server, in the order the game made them.
pub(super) enum Command {
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

/// What a compare-and-swap on the server did.
pub(super) enum Swapped {
    /// Swapped, at this revision.
    At(u64),
    /// The server holds this instead (`None`: unset).
    Holds(Option<Vec<u8>>),
}

/// What the backend's thread hands the store.
pub(super) enum Received {
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

pub(super) type Replica = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// What the backend's thread tells the game about the connection.
#[derive(Default)]
pub(super) struct StatusCell {
    pub(super) connected: AtomicBool,
    pub(super) last_revision: AtomicU64,
    pub(super) queued_writes: AtomicUsize,
    pub(super) skipped_changes: AtomicU64,
    /// Changes the server had for the watch when it delivered the last.
    pub(super) behind: AtomicU64,
    /// The largest message the server takes, headers included.
    pub(super) max_payload: AtomicUsize,
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

/// The longest the client waits between attempts to reach the server
/// again: a game back online within a second of its server.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// How often the backend's thread looks at the connection's state.
const STATUS_INTERVAL: Duration = Duration::from_millis(100);

/// The store's ends of the backend thread's channels.
pub(super) struct Ends {
    /// The current values once the thread has them, or why it could not
    /// get them.
    pub(super) ready: mpsc::Receiver<Result<Replica, String>>,
    /// The store's writes and swaps, in the order the game made them.
    pub(super) commands: tokio_mpsc::UnboundedSender<Command>,
    /// What the thread hands the store.
    pub(super) received: tokio_mpsc::UnboundedReceiver<Received>,
}

/// Starts the backend's thread for the JetStream `bucket` on the server at
/// `url`, telling the connection's state in `status`.
pub(super) fn spawn(url: String, bucket: String, status: Arc<StatusCell>) -> std::io::Result<Ends> {
    let (commands, command_rx) = tokio_mpsc::unbounded_channel();
    let (received_tx, received) = tokio_mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = mpsc::channel();
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
                status,
            };
            runtime.block_on(run(url, bucket, channels));
        })?;
    Ok(Ends {
        ready: ready_rx,
        commands,
        received,
    })
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
