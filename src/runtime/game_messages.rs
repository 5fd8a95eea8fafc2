//! The game's own Bevy messages, for scripts: a type registered with
//! [`ScriptMessageApp::add_script_message`] travels on the topic
//! `bevy:<type path>` in the binary encoding (postcard). What the game's systems write before
//! [`WasmSystems::Run`](crate::WasmSystems::Run) reaches the scripts
//! subscribed to it in the same frame; what a script writes is written as
//! the Bevy message at once, for systems after the run, and reaches the
//! other subscribed scripts the next frame, like any message.

use bevy::ecs::message::{MessageCursor, Messages};
use bevy::platform::collections::HashMap;
use bevy::prelude::*;
use bevy::reflect::TypePath;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::encoding;
use crate::host::GAME_MESSAGE_PREFIX;

/// Registers the game's message types scripts may read and write.
pub trait ScriptMessageApp {
    /// Lets scripts read and write the Bevy message `M` (registering it
    /// with `add_message` too): postcard both ways, the type named by its type
    /// path. A guest subscribes with `cx.on_game_message::<M>` and writes
    /// with `hotwasm_sdk::game::write`; its capabilities name the type
    /// (`game-message.read`, `game-message.write`).
    ///
    /// ```no_run
    /// # use bevy::prelude::*;
    /// # use bevy_hotwasm::prelude::*;
    /// #[derive(Message, TypePath, serde::Serialize, serde::Deserialize)]
    /// struct DamageDealt { amount: u32 }
    ///
    /// App::new().add_script_message::<DamageDealt>();
    /// ```
    fn add_script_message<M>(&mut self) -> &mut Self
    where
        M: Message + TypePath + Serialize + DeserializeOwned;
}

impl ScriptMessageApp for App {
    fn add_script_message<M>(&mut self) -> &mut Self
    where
        M: Message + TypePath + Serialize + DeserializeOwned,
    {
        self.add_message::<M>();
        let topic = format!("{GAME_MESSAGE_PREFIX}{}", M::type_path());
        let mut types = self.world_mut().get_resource_or_init::<GameMessages>();
        let reader = Box::new(Reader::<M> {
            cursor: MessageCursor::default(),
        });
        types.readers.insert(topic.clone(), reader);
        types.writers.insert(topic, write::<M>);
        self
    }
}

/// Writes a script's `bytes` as the game's message `M`.
type WriteFn = fn(&mut World, &[u8]) -> Result<(), String>;

/// The registered message types, by topic.
#[derive(Resource, Default)]
pub(crate) struct GameMessages {
    /// What the game wrote of each type is read through these.
    readers: HashMap<String, Box<dyn Reading>>,
    writers: HashMap<String, WriteFn>,
}

impl GameMessages {
    /// Hands `deliver` every message the game wrote since the last time,
    /// its topic and bytes, type by type in the order written.
    pub(super) fn read_new(world: &mut World, mut deliver: impl FnMut(&str, &[u8])) {
        Self::with_readers(world, |world, readers| {
            for (topic, reader) in readers {
                for bytes in reader.read_new(world, topic) {
                    deliver(topic, &bytes);
                }
            }
        });
    }

    /// Passes over what is there now: what scripts wrote this run, which
    /// the other scripts get as sent messages.
    pub(super) fn skip(world: &mut World) {
        Self::with_readers(world, |world, readers| {
            for reader in readers.values_mut() {
                reader.skip(world);
            }
        });
    }

    /// The writer of `topic`, when it is a registered type's.
    pub(super) fn writer(&self, topic: &str) -> Option<WriteFn> {
        self.writers.get(topic).copied()
    }

    /// Runs `read` with the readers out of the world (not the resource:
    /// moving it would cost more), when there are any.
    fn with_readers(
        world: &mut World,
        read: impl FnOnce(&World, &mut HashMap<String, Box<dyn Reading>>),
    ) {
        let Some(mut types) = world.get_resource_mut::<GameMessages>() else {
            return;
        };
        if types.readers.is_empty() {
            return;
        }
        let mut readers = std::mem::take(&mut types.bypass_change_detection().readers);
        read(world, &mut readers);
        world
            .resource_mut::<GameMessages>()
            .bypass_change_detection()
            .readers = readers;
    }
}

/// Reads one message type, type-erased.
trait Reading: Send + Sync {
    fn read_new(&mut self, world: &World, topic: &str) -> Vec<Vec<u8>>;
    fn skip(&mut self, world: &World);
}

struct Reader<M: Message> {
    cursor: MessageCursor<M>,
}

impl<M> Reading for Reader<M>
where
    M: Message + Serialize,
{
    fn read_new(&mut self, world: &World, topic: &str) -> Vec<Vec<u8>> {
        let Some(messages) = world.get_resource::<Messages<M>>() else {
            return Vec::new();
        };
        (self.cursor.read(messages))
            .filter_map(|message| match encoding::to_bytes(message) {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    warn!("a {topic} message could not be encoded: {error}");
                    None
                }
            })
            .collect()
    }

    fn skip(&mut self, world: &World) {
        if let Some(messages) = world.get_resource::<Messages<M>>() {
            self.cursor.read(messages).for_each(drop);
        }
    }
}

fn write<M: Message + DeserializeOwned>(world: &mut World, bytes: &[u8]) -> Result<(), String> {
    let message: M = encoding::from_bytes(bytes)?;
    world.write_message(message);
    Ok(())
}
