//! Power-ups: every [`KILLS_PER_DROP`]th kill (the `kill` messages scoring
//! sends) drops a rapid-fire pick-up somewhere in the arena; when the game
//! says the player took one (`powerup-taken`), the gun's `Boost` resource
//! is set for [`BOOST_SECS`]. It watches `Boost`, so it knows when the
//! game has run a boost down, and says so on `boost`.

use game_types::{ARENA_HALF_HEIGHT, ARENA_HALF_WIDTH, Boost, Position, Powerup};
use hotwasm_sdk::{Cx, Error, Script, Watch, ecs};

const KILLS_PER_DROP: u64 = 5;
const BOOST_SECS: f32 = 5.0;
const BOOST_FIRE_RATE: f32 = 3.0;

// What powerups may touch: a signed build gets exactly this (README, Release builds).
hotwasm_sdk::capabilities!(
    "
    messages.subscribe kill powerup-taken
    messages.send      boost
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
        cx.on_message("kill", |me, _, _| {
            me.kills += 1;
            if me.kills % KILLS_PER_DROP != 0 {
                return Ok(());
            }
            // Somewhere new each time, inside the middle of the arena.
            let turn = me.kills as f32 * 2.4;
            let at = Position {
                x: turn.cos() * ARENA_HALF_WIDTH * 0.6,
                y: turn.sin() * ARENA_HALF_HEIGHT * 0.6,
            };
            ecs::spawn((at, Powerup::RapidFire))?;
            Ok(())
        })?;
        cx.on_message("powerup-taken", |_, _, _| {
            ecs::set_resource(&Boost {
                fire_rate: BOOST_FIRE_RATE,
                secs_left: BOOST_SECS,
            })
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
