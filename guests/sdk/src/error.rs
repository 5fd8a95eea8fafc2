//! One error type for every SDK call, so `?` works everywhere.

use std::fmt;

use crate::bindings::hotwasm::script::ecs::Error as EcsError;
use crate::bindings::hotwasm::script::messaging::Error as MessagingError;
use crate::bindings::hotwasm::script::scheduler::Error as SchedulerError;
use crate::bindings::hotwasm::script::watch::Error as WatchError;
use crate::bindings::wasi::keyvalue::store::Error as KvError;

/// Why an SDK call, or the script itself, failed.
///
/// Every host interface's error converts into it, so `?` works on every SDK
/// call in `init`, `update` and handlers; a script's own failures are
/// [`Error::Script`], made from a `String` or `&str`. The host logs an error
/// a handler returns, naming the module and the handler; it is not a trap.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Error {
    /// The scheduler refused (`hotwasm:script/scheduler`).
    Scheduler(SchedulerError),
    /// Messaging refused (`hotwasm:script/messaging`).
    Messaging(MessagingError),
    /// A watch was refused (`hotwasm:script/watch`).
    Watch(WatchError),
    /// The game's ECS refused (`hotwasm:script/ecs`).
    Ecs(EcsError),
    /// The key-value store refused (`wasi:keyvalue`).
    KeyValue(KvError),
    /// A value's JSON does not fit the type it was read into, or a value
    /// could not be written as JSON.
    Json(String),
    /// A value's bytes in the binary encoding (a request, an answer, one
    /// of the game's messages) do not fit the type, or it could not be
    /// encoded.
    Encoding(String),
    /// The script's own error.
    Script(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scheduler(error) => match error {
                SchedulerError::ZeroInterval => f.write_str("a repeating task needs an interval"),
                SchedulerError::TooManyTasks(cap) => {
                    write!(
                        f,
                        "already {cap} tasks pending, the most an instance may have"
                    )
                }
                SchedulerError::UnknownTask(id) => write!(f, "no pending task {id}"),
                SchedulerError::Denied(why) => f.write_str(why),
            },
            Self::Messaging(error) => match error {
                MessagingError::EmptyTopic => f.write_str("a topic must not be empty"),
                MessagingError::TopicTooLong(max) => {
                    write!(f, "a topic may be at most {max} bytes")
                }
                MessagingError::PayloadTooLarge(max) => {
                    write!(f, "a payload may be at most {max} bytes")
                }
                MessagingError::TooManySubscriptions(max) => {
                    write!(f, "an instance may subscribe to at most {max} topics")
                }
                MessagingError::CallLimit(why) => write!(f, "refused: {why}"),
                MessagingError::Denied(why) => f.write_str(why),
            },
            Self::Watch(error) => match error {
                WatchError::InvalidBucket(why) | WatchError::InvalidKey(why) => f.write_str(why),
                WatchError::UnknownType(path) => write!(f, "no type {path} is registered"),
                WatchError::UnsupportedType(why) => f.write_str(why),
                WatchError::TooManyWatches(cap) => {
                    write!(f, "already {cap} watches, the most an instance may have")
                }
                WatchError::UnknownWatch(id) => write!(f, "no watch {id}"),
                WatchError::Denied(why) => f.write_str(why),
            },
            Self::Ecs(error) => match error {
                EcsError::UnknownType(path) => write!(f, "no type {path} is registered"),
                EcsError::NoSuchEntity(bits) => {
                    write!(f, "no entity {}", crate::Entity::from_bits(*bits))
                }
                EcsError::UnsupportedType(why)
                | EcsError::Missing(why)
                | EcsError::InvalidJson(why)
                | EcsError::InvalidField(why)
                | EcsError::Protected(why)
                | EcsError::Denied(why) => f.write_str(why),
                EcsError::CallLimit(why) => write!(f, "refused: {why}"),
            },
            Self::KeyValue(error) => match error {
                KvError::NoSuchStore => f.write_str("no such key-value store"),
                KvError::AccessDenied => f.write_str("key-value access denied"),
                KvError::Other(why) => f.write_str(why),
            },
            Self::Json(why) | Self::Encoding(why) | Self::Script(why) => f.write_str(why),
        }
    }
}

impl Error {
    /// Whether the module was not granted the capability the call needed
    /// (the message, `denied: …`, names it; a key-value call says only
    /// `access-denied`).
    pub fn is_denied(&self) -> bool {
        matches!(
            self,
            Self::Scheduler(SchedulerError::Denied(_))
                | Self::Messaging(MessagingError::Denied(_))
                | Self::Watch(WatchError::Denied(_))
                | Self::Ecs(EcsError::Denied(_))
                | Self::KeyValue(KvError::AccessDenied)
        )
    }

    /// Whether a key-value `increment` or compare-and-swap on a store
    /// shared with other processes was answered `busy:`: the server has not
    /// answered yet and this frame's wait for it is spent. The swap goes
    /// on; make the same call again (now or in a later frame) for its
    /// answer: it is not made twice.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::KeyValue(KvError::Other(why)) if why.starts_with("busy:"))
    }
}

impl std::error::Error for Error {}

macro_rules! from_wit {
    ($($wit:ty => $variant:ident),* $(,)?) => {
        $(impl From<$wit> for Error {
            fn from(error: $wit) -> Self {
                Self::$variant(error)
            }
        })*
    };
}

from_wit!(
    SchedulerError => Scheduler,
    MessagingError => Messaging,
    WatchError => Watch,
    EcsError => Ecs,
    KvError => KeyValue,
);

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Self::Json(error.to_string())
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self::Script(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self::Script(message.to_owned())
    }
}
