//! `hotwasm:script/messaging`: what an instance sends and subscribes to.

use std::collections::HashSet;

use super::HostState;
use super::bindings::hotwasm::script::messaging::{Error, Host};
use crate::messages::{MAX_SUBSCRIPTIONS, MessageError, check_message, check_topic};
use crate::sandbox::HostWork;

/// An instance's subscriptions and the messages it sent during a call.
#[derive(Default)]
pub(crate) struct Mailbox {
    pub sent: Vec<(String, Vec<u8>)>,
    subscriptions: HashSet<String>,
}

impl Mailbox {
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.subscriptions.contains(topic)
    }
}

impl From<MessageError> for Error {
    fn from(error: MessageError) -> Self {
        match error {
            MessageError::EmptyTopic => Error::EmptyTopic,
            MessageError::TopicTooLong { max, .. } => Error::TopicTooLong(max),
            MessageError::PayloadTooLarge { max, .. } => Error::PayloadTooLarge(max),
            MessageError::TooManySubscriptions { max } => Error::TooManySubscriptions(max),
        }
    }
}

impl Host for HostState {
    fn send(&mut self, topic: String, payload: Vec<u8>) -> Result<(), Error> {
        check_message(&topic, &payload)?;
        self.quota
            .take(HostWork::Message, topic.len() + payload.len())
            .map_err(Error::CallLimit)?;
        self.mailbox.sent.push((topic, payload));
        Ok(())
    }

    fn subscribe(&mut self, topic: String) -> Result<(), Error> {
        check_topic(&topic)?;
        let subscriptions = &mut self.mailbox.subscriptions;
        if !subscriptions.contains(&topic) && subscriptions.len() >= MAX_SUBSCRIPTIONS as usize {
            return Err(MessageError::TooManySubscriptions {
                max: MAX_SUBSCRIPTIONS,
            }
            .into());
        }
        subscriptions.insert(topic);
        Ok(())
    }

    fn unsubscribe(&mut self, topic: String) -> Result<(), Error> {
        check_topic(&topic)?;
        self.mailbox.subscriptions.remove(&topic);
        Ok(())
    }
}
