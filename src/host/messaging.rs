//! `hotwasm:script/messaging`: what an instance sends and subscribes to,
//! and the limits every message obeys, from a guest or from the game.

use std::collections::HashSet;

use thiserror::Error;
use wasmtime::component::HasData;

use super::HostState;
use super::access::Access;
use super::bindings::hotwasm::script::messaging::{Error as WitError, Host};
use super::quota::{CallQuota, HostWork};
use crate::capabilities::Right;

/// What starts the topic of a game's Bevy message type registered for
/// scripts: `bevy:<type path>`.
pub(crate) const GAME_MESSAGE_PREFIX: &str = "bevy:";

/// The right a send (`write`) or a subscription on `topic` needs, and what
/// it is checked against: a game message's type path, or the topic.
fn right_for(topic: &str, write: bool) -> (Right, &str) {
    match (topic.strip_prefix(GAME_MESSAGE_PREFIX), write) {
        (Some(type_path), true) => (Right::GameMessageWrite, type_path),
        (Some(type_path), false) => (Right::GameMessageRead, type_path),
        (None, true) => (Right::Send, topic),
        (None, false) => (Right::Subscribe, topic),
    }
}

/// The longest topic, in bytes.
pub const MAX_TOPIC_BYTES: u32 = 256;
/// The largest payload, in bytes.
pub const MAX_PAYLOAD_BYTES: u32 = 64 * 1024;
/// The most topics one instance may subscribe to, and the most it may
/// answer requests on.
pub const MAX_SUBSCRIPTIONS: u32 = 256;

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

/// An instance's subscriptions, the topics it answers requests on, and
/// the messages it sent during a call.
#[derive(Default)]
pub(crate) struct Mailbox {
    pub sent: Vec<(String, Vec<u8>)>,
    subscriptions: HashSet<String>,
    answers: HashSet<String>,
    /// Subscribes and unsubscribes so far, to tell when they changed.
    changes: u64,
}

impl Mailbox {
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.subscriptions.contains(topic)
    }

    pub fn answers(&self, topic: &str) -> bool {
        self.answers.contains(topic)
    }

    /// The topics it answers requests on, sorted.
    pub fn answered_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.answers.iter().cloned().collect();
        topics.sort();
        topics
    }

    /// Counts up with every subscribe and unsubscribe.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The topics subscribed to, sorted.
    pub fn subscriptions(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.subscriptions.iter().cloned().collect();
        topics.sort();
        topics
    }
}

impl From<MessageError> for WitError {
    fn from(error: MessageError) -> Self {
        match error {
            MessageError::EmptyTopic => WitError::EmptyTopic,
            MessageError::TopicTooLong { max, .. } => WitError::TopicTooLong(max),
            MessageError::PayloadTooLarge { max, .. } => WitError::PayloadTooLarge(max),
            MessageError::TooManySubscriptions { max } => WitError::TooManySubscriptions(max),
        }
    }
}

/// The marker `messaging` is linked with: its host is a [`MessagingView`].
pub(super) struct Messaging;

impl HasData for Messaging {
    type Data<'a> = MessagingView<'a>;
}

/// What `messaging` sees of an instance's state: what it was granted, the
/// call's quota, and its mailbox.
pub(crate) struct MessagingView<'a> {
    access: &'a mut Access,
    quota: &'a mut CallQuota,
    mailbox: &'a mut Mailbox,
}

impl MessagingView<'_> {
    pub fn of(state: &mut HostState) -> MessagingView<'_> {
        MessagingView {
            access: &mut state.access,
            quota: &mut state.quota,
            mailbox: &mut state.mailbox,
        }
    }
}

impl Host for MessagingView<'_> {
    fn send(&mut self, topic: String, payload: Vec<u8>) -> Result<(), WitError> {
        check_message(&topic, &payload)?;
        let (right, reached) = right_for(&topic, true);
        self.access
            .check(right, reached)
            .map_err(WitError::Denied)?;
        self.quota
            .take(HostWork::Message, topic.len() + payload.len())
            .map_err(WitError::CallLimit)?;
        self.mailbox.sent.push((topic, payload));
        Ok(())
    }

    fn subscribe(&mut self, topic: String) -> Result<(), WitError> {
        check_topic(&topic)?;
        let (right, reached) = right_for(&topic, false);
        self.access
            .check(right, reached)
            .map_err(WitError::Denied)?;
        add_topic(&mut self.mailbox.subscriptions, topic)?;
        self.mailbox.changes += 1;
        Ok(())
    }

    fn unsubscribe(&mut self, topic: String) -> Result<(), WitError> {
        check_topic(&topic)?;
        self.mailbox.subscriptions.remove(&topic);
        self.mailbox.changes += 1;
        Ok(())
    }

    fn answer(&mut self, topic: String) -> Result<(), WitError> {
        check_topic(&topic)?;
        self.access
            .check(Right::Answer, &topic)
            .map_err(WitError::Denied)?;
        add_topic(&mut self.mailbox.answers, topic)?;
        self.mailbox.changes += 1;
        Ok(())
    }

    fn stop_answering(&mut self, topic: String) -> Result<(), WitError> {
        check_topic(&topic)?;
        self.mailbox.answers.remove(&topic);
        self.mailbox.changes += 1;
        Ok(())
    }
}

/// Adds `topic` to an instance's subscriptions or answered topics, at most
/// [`MAX_SUBSCRIPTIONS`] of each.
fn add_topic(topics: &mut HashSet<String>, topic: String) -> Result<(), MessageError> {
    if !topics.contains(&topic) && topics.len() >= MAX_SUBSCRIPTIONS as usize {
        return Err(MessageError::TooManySubscriptions {
            max: MAX_SUBSCRIPTIONS,
        });
    }
    topics.insert(topic);
    Ok(())
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
