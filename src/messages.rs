//! Messages between the host and scripts: [`HostMessage`] in,
//! [`ModuleMessage`] out, and [`ScriptSender`] for other threads.

use std::sync::Arc;

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use thiserror::Error;

use crate::asset::WasmModule;

/// The longest topic, in bytes.
pub const MAX_TOPIC_BYTES: u32 = 256;
/// The largest payload, in bytes.
pub const MAX_PAYLOAD_BYTES: u32 = 64 * 1024;
/// The most topics one instance may subscribe to.
pub const MAX_SUBSCRIPTIONS: u32 = 256;
/// The most messages waiting for one instance; more are dropped with a
/// warning until it has taken them.
pub const MAX_QUEUED_MESSAGES: usize = 65_536;

/// A message for scripts, from the game.
///
/// Write it with a `MessageWriter<HostMessage>` from any system, or send it
/// from any thread with [`ScriptSender`]. Messages written before
/// [`WasmSystems::Run`](crate::WasmSystems::Run) in a frame are delivered in
/// that frame's run; those of one sender arrive in the order sent.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct HostMessage {
    /// Who gets it.
    pub to: Recipient,
    /// The topic, 1 to 256 bytes.
    pub topic: String,
    /// The payload, at most 64 KiB.
    pub payload: Vec<u8>,
}

impl HostMessage {
    /// A message for the script on `entity`, whether or not it subscribed
    /// to `topic`.
    pub fn to_entity(
        entity: Entity,
        topic: impl Into<String>,
        payload: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            to: Recipient::Entity(entity),
            topic: topic.into(),
            payload: payload.into(),
        }
    }

    /// A message for every script subscribed to `topic`.
    pub fn to_subscribers(topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            to: Recipient::Subscribers,
            topic: topic.into(),
            payload: payload.into(),
        }
    }
}

/// Who a [`HostMessage`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// The script on this entity. Queued while its module loads; dropped
    /// (with a debug log line) if the entity has no [`WasmScript`](crate::WasmScript).
    Entity(Entity),
    /// Every running script subscribed to the topic.
    Subscribers,
}

/// A message a guest sent. Every other instance subscribed to the topic gets
/// it too, in the next frame.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct ModuleMessage {
    /// The entity whose instance sent it.
    pub entity: Entity,
    /// The sender's module.
    pub module: AssetId<WasmModule>,
    /// The sender's module path.
    pub path: Arc<str>,
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Why a message was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    /// The topic is empty.
    #[error("a message topic must not be empty")]
    EmptyTopic,
    /// The topic is too long.
    #[error("a message topic may be at most {max} bytes, this one is {len}")]
    TopicTooLong {
        /// The topic's length.
        len: usize,
        /// [`MAX_TOPIC_BYTES`].
        max: u32,
    },
    /// The payload is too large.
    #[error("a message payload may be at most {max} bytes, this one is {len}")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// [`MAX_PAYLOAD_BYTES`].
        max: u32,
    },
    /// An instance subscribed to too many topics.
    #[error("an instance may subscribe to at most {max} topics")]
    TooManySubscriptions {
        /// [`MAX_SUBSCRIPTIONS`].
        max: u32,
    },
}

pub(crate) fn check_topic(topic: &str) -> Result<(), MessageError> {
    if topic.is_empty() {
        return Err(MessageError::EmptyTopic);
    }
    if topic.len() > MAX_TOPIC_BYTES as usize {
        return Err(MessageError::TopicTooLong {
            len: topic.len(),
            max: MAX_TOPIC_BYTES,
        });
    }
    Ok(())
}

pub(crate) fn check_message(topic: &str, payload: &[u8]) -> Result<(), MessageError> {
    check_topic(topic)?;
    if payload.len() > MAX_PAYLOAD_BYTES as usize {
        return Err(MessageError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

/// Sends [`HostMessage`]s to scripts from any thread: a network thread, an
/// async task, a file watcher callback.
///
/// A resource; clone it and move the clone where it is needed. Messages are
/// taken once per frame, before [`WasmSystems::Run`](crate::WasmSystems::Run)
/// hands them out, after the frame's `MessageWriter<HostMessage>` messages.
#[derive(Resource, Clone)]
pub struct ScriptSender(Sender<HostMessage>);

impl ScriptSender {
    /// Queues `message` for the next run of the scripts. Refuses (and
    /// returns) a message with a bad topic or payload.
    pub fn send(&self, message: HostMessage) -> Result<(), MessageError> {
        check_message(&message.topic, &message.payload)?;
        // The receiver lives as long as the app; after the app is gone there
        // is nobody left to deliver to, so a failed send is dropped.
        let _ = self.0.send(message);
        Ok(())
    }
}

/// The receiving end of [`ScriptSender`], drained by the runtime.
#[derive(Resource)]
pub(crate) struct ScriptReceiver(pub Receiver<HostMessage>);

/// A connected [`ScriptSender`] and its receiver.
pub(crate) fn script_channel() -> (ScriptSender, ScriptReceiver) {
    let (sender, receiver) = crossbeam_channel::unbounded();
    (ScriptSender(sender), ScriptReceiver(receiver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_payloads_are_bounded() {
        assert_eq!(check_message("", b""), Err(MessageError::EmptyTopic));
        assert!(matches!(
            check_message(&"t".repeat(257), b""),
            Err(MessageError::TopicTooLong { len: 257, max: 256 })
        ));
        assert!(check_message(&"t".repeat(256), &vec![0; 65_536]).is_ok());
        assert!(matches!(
            check_message("t", &vec![0; 65_537]),
            Err(MessageError::PayloadTooLarge { len: 65_537, .. })
        ));
    }
}
