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

use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use tokio::sync::mpsc as tokio_mpsc;

use super::{Backend, KvError};

/// How to reach the server, and where the store lives on it.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    /// The JetStream key-value bucket holding every bucket of the store
    /// (`[A-Za-z0-9_-]`), created if missing. Default `hotwasm`.
    pub bucket: String,
    /// How long [`KvStore::connect_nats`](super::KvStore::connect_nats)
    /// waits for the server and the current values. Default 10 s.
    pub connect_timeout: Duration,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            bucket: "hotwasm".to_owned(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A write for the server, in the order the game made them.
enum Command {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// What the backend's thread hands the store.
enum Received {
    /// Another process changed a key (`None`: deleted it).
    Change {
        bucket: String,
        key: String,
        value: Option<Vec<u8>>,
        revision: u64,
    },
    /// The server refused a write, or it could not be sent.
    Failed(String),
}

type Replica = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

pub(super) struct NatsBackend {
    replica: Replica,
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
                runtime.block_on(run(url_owned, bucket, ready_tx, command_rx, received_tx));
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
            replica,
            commands,
            received,
        })
    }

    fn send(&self, command: Command) {
        // The thread ends only with the backend; a send to it cannot fail
        // before then.
        let _ = self.commands.send(command);
    }
}

/// The backend's thread: connects, hands over the current values, then
/// sends the game's writes and passes other processes' changes on.
async fn run(
    url: String,
    bucket: String,
    ready: mpsc::Sender<Result<Replica, String>>,
    mut commands: tokio_mpsc::UnboundedReceiver<Command>,
    received: tokio_mpsc::UnboundedSender<Received>,
) {
    let started = async {
        let client = async_nats::ConnectOptions::new()
            .name("bevy_hotwasm")
            .connect(url.as_str())
            .await
            .map_err(|error| format!("cannot connect: {error}"))?;
        let context = jetstream::new(client);
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
        Ok((store, watch, replica, applied))
    };
    let (store, mut watch, mut applied) = match started.await {
        Ok((store, watch, replica, applied)) => {
            if ready.send(Ok(replica)).is_err() {
                return;
            }
            (store, watch, applied)
        }
        Err(reason) => {
            let _ = ready.send(Err(reason));
            return;
        }
    };
    // Revisions the server gave this process's puts, and keys it deleted:
    // their echoes through the watch are not changes from elsewhere.
    let mut own_revisions = HashSet::new();
    let mut own_deletes: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        // A write is sent and acknowledged before the watch is read again,
        // so its echo always finds its revision noted.
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                let failed = match command {
                    Command::Put { key, value } => match store.put(&key, value.into()).await {
                        Ok(revision) => {
                            own_revisions.insert(revision);
                            None
                        }
                        Err(error) => Some(format!("set {key}: {error}")),
                    },
                    Command::Delete { key } => match store.delete(&key).await {
                        Ok(()) => {
                            *own_deletes.entry(key).or_default() += 1;
                            None
                        }
                        Err(error) => Some(format!("delete {key}: {error}")),
                    },
                };
                if let Some(failed) = failed
                    && received.send(Received::Failed(failed)).is_err()
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
                let value = match entry.operation {
                    kv::Operation::Put => {
                        if own_revisions.remove(&entry.revision) {
                            continue;
                        }
                        Some(entry.value.to_vec())
                    }
                    kv::Operation::Delete | kv::Operation::Purge => {
                        if let Some(count) = own_deletes.get_mut(&entry.key) {
                            *count -= 1;
                            if *count == 0 {
                                own_deletes.remove(&entry.key);
                            }
                            continue;
                        }
                        None
                    }
                };
                let Some((bucket, key)) = store_key(&entry.key) else { continue };
                let change = Received::Change { bucket, key, value, revision: entry.revision };
                if received.send(change).is_err() {
                    return;
                }
            }
        }
    }
}

/// The NATS key of `key` in `bucket`: each escaped, joined by `.`. NATS
/// keys allow `[-/_=.A-Za-z0-9]` and `.` separates tokens, so every byte
/// but `[-/_A-Za-z0-9]` becomes `=` and two hex digits (`.` is `=2E`).
pub fn nats_key(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 1);
    escape(bucket, &mut out);
    out.push('.');
    escape(key, &mut out);
    out
}

fn escape(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-/_".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("={byte:02X}"));
        }
    }
}

/// The store's bucket and key of a NATS key [`nats_key`] made; `None` for
/// a key it did not make.
fn store_key(nats_key: &str) -> Option<(String, String)> {
    let (bucket, key) = nats_key.split_once('.')?;
    Some((unescape(bucket)?, unescape(key)?))
}

fn unescape(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'=' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
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
        let old = (self.replica.entry(bucket.to_owned()).or_default())
            .insert(key.to_owned(), value.to_vec());
        self.send(Command::Put {
            key: nats_key(bucket, key),
            value: value.to_vec(),
        });
        Ok(old.map(|old| old.len() as u64))
    }

    fn delete(&mut self, bucket: &str, key: &str) -> Result<Option<u64>, KvError> {
        let old = self
            .replica
            .get_mut(bucket)
            .and_then(|keys| keys.remove(key));
        if old.is_some() {
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

    fn external_changes(&mut self, out: &mut Vec<super::KvChanged>) {
        while let Ok(received) = self.received.try_recv() {
            match received {
                Received::Change {
                    bucket,
                    key,
                    value,
                    revision,
                } => {
                    let keys = self.replica.entry(bucket.clone()).or_default();
                    match &value {
                        Some(value) => {
                            keys.insert(key.clone(), value.clone());
                        }
                        None => {
                            keys.remove(&key);
                        }
                    }
                    out.push(super::KvChanged {
                        stamp: super::EventStamp::UNPUBLISHED,
                        bucket,
                        key,
                        value,
                        origin: super::KvOrigin::Remote { revision },
                    });
                }
                Received::Failed(reason) => {
                    bevy::log::warn!("NATS key-value store: {reason}");
                }
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
