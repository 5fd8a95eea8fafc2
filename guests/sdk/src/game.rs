//! The game's own Bevy messages, typed: a type the game registered with
//! `app.add_script_message::<M>()`, mirrored in the guest with
//! [`game_message!`](crate::game_message), read with
//! [`Cx::on_game_message`](crate::Cx::on_game_message) and written with
//! [`write`]. They travel on the topic `bevy:<type path>` in the binary
//! encoding both sides speak (postcard).
//!
//! ```ignore
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct DamageDealt { amount: u32 }
//! hotwasm_sdk::game_message!(DamageDealt = "my_game::DamageDealt");
//!
//! cx.on_game_message(|me: &mut Mine, _, damage: DamageDealt| { me.taken += damage.amount; Ok(()) })?;
//! hotwasm_sdk::game::write(&DamageDealt { amount: 3 })?;
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// A Bevy message type of the game, mirrored in the guest;
/// [`game_message!`](crate::game_message) implements it.
pub trait GameMessage: Serialize + DeserializeOwned {
    /// The host type's `TypePath::type_path()`, e.g. `my_game::DamageDealt`.
    const TYPE_PATH: &'static str;
}

/// Implements [`GameMessage`] for types, like [`component!`](crate::component).
#[macro_export]
macro_rules! game_message {
    ($($ty:ident $(= $path:literal)?),* $(,)?) => {
        $crate::__typed!($crate::game::GameMessage: $($ty $(= $path)?),*);
    };
}

/// The topic `M` travels on.
pub fn topic<M: GameMessage>() -> String {
    format!("bevy:{}", M::TYPE_PATH)
}

/// Writes `message` as the game's Bevy message: systems after the scripts'
/// run read it in this frame, other scripts subscribed to it in the next.
/// Needs the `game-message.write` capability for its type.
pub fn write<M: GameMessage>(message: &M) -> Result<(), Error> {
    crate::send(&topic::<M>(), &crate::encoding::to_bytes(message)?)
}
