//! Power-ups: every [`KILLS_PER_DROP`]th kill (the game's `EnemyKilled`
//! messages) drops a rapid-fire pick-up where that enemy fell. When the
//! player touches one the game asks whether it applies (`powerup/take`):
//! yes sets the gun's `Boost` resource for [`BOOST_SECS`]; no, while a
//! boost runs (boosts do not stack), and the pick-up stays. It watches
//! `Boost`, so it knows when the game has run a boost down, and says each
//! change on `boost`.

use game_types::{Boost, EnemyKilled, Powerup};
use hotwasm_sdk::{Cx, Error, Script, Watch, ecs};

const KILLS_PER_DROP: u64 = 5;
const BOOST_SECS: f32 = 5.0;
const BOOST_FIRE_RATE: f32 = 3.0;

// What powerups may touch: a signed build gets exactly this (README, Release builds).
hotwasm_sdk::capabilities!(
    "
    game-message.read  game_types::EnemyKilled
    messages.send      boost
    requests.answer    powerup/take
    spawn              game_types::Position game_types::Powerup
    resource.write     game_types::Boost
    resource.watch     game_types::Boost
    "
);

#[derive(Default)]
struct Powerups {
    kills: u64,
    boosted: bool,
}

impl Script for Powerups {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        cx.on_game_message(|me, _, killed: EnemyKilled| {
            me.kills += 1;
            if me.kills % KILLS_PER_DROP == 0 {
                ecs::spawn((killed.at, Powerup::RapidFire))?;
            }
            Ok(())
        })?;
        cx.on_request("powerup/take", |me, _, _: Powerup| {
            if me.boosted {
                return Ok(false);
            }
            ecs::set_resource(&Boost {
                fire_rate: BOOST_FIRE_RATE,
                secs_left: BOOST_SECS,
            })?;
            me.boosted = true;
            hotwasm_sdk::send("boost", b"on")?;
            Ok(true)
        })?;
        cx.watch(Watch::resource::<Boost>(), |me, _, event| {
            let boost: Boost = event.json()?;
            let boosted = boost.secs_left > 0.0;
            if boosted != me.boosted {
                me.boosted = boosted;
                hotwasm_sdk::send("boost", if boosted { b"on" } else { b"off" })?;
            }
            Ok(())
        })?;
        Ok(())
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        hotwasm_sdk::save_u64(self.kills)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), Error> {
        self.kills = hotwasm_sdk::restore_u64(state)?;
        Ok(())
    }
}

hotwasm_sdk::export_script!(Powerups);
