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
        let bridge = Box::new(Bridge::<M> {
            cursor: MessageCursor::default(),
        });
        (self.world_mut().get_resource_or_init::<GameMessages>())
            .bridges
            .insert(topic, bridge);
        self
    }
}

/// The registered message types, by topic.
#[derive(Resource, Default)]
pub(crate) struct GameMessages {
    bridges: HashMap<String, Box<dyn Bridging>>,
}

impl GameMessages {
    /// Every message the game wrote since the last time, as its topic and
    /// bytes, in the order written (type by type).
    pub(super) fn read_new(&mut self, world: &World) -> Vec<(&str, Vec<Vec<u8>>)> {
        (self.bridges.iter_mut())
            .map(|(topic, bridge)| {
                let read = bridge.read_new(world, topic);
                (topic.as_str(), read)
            })
            .filter(|(_, read)| !read.is_empty())
            .collect()
    }

    /// Passes over what is there now: what scripts wrote this run, which
    /// the other scripts get as sent messages.
    pub(super) fn skip(&mut self, world: &World) {
        for bridge in self.bridges.values_mut() {
            bridge.skip(world);
        }
    }

    /// Writes a script's `bytes` on `topic` as the game's message, when
    /// `topic` is a registered type's: `None` when it is not.
    pub(super) fn write(
        &self,
        world: &mut World,
        topic: &str,
        bytes: &[u8],
    ) -> Option<Result<(), String>> {
        Some(self.bridges.get(topic)?.write(world, bytes))
    }
}

/// One message type, type-erased.
trait Bridging: Send + Sync {
    fn read_new(&mut self, world: &World, topic: &str) -> Vec<Vec<u8>>;
    fn skip(&mut self, world: &World);
    fn write(&self, world: &mut World, bytes: &[u8]) -> Result<(), String>;
}

struct Bridge<M: Message> {
    cursor: MessageCursor<M>,
}

impl<M> Bridging for Bridge<M>
where
    M: Message + Serialize + DeserializeOwned,
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

    fn write(&self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        let message: M = encoding::from_bytes(bytes)?;
        world.write_message(message);
        Ok(())
    }
}
