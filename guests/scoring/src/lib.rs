//! Points, combo and high score. Enemies leave the arena only by dying, so
//! a kill is an enemy's `Team` removed. Kills less than [`COMBO_WINDOW`]
//! apart raise the combo; each scores [`POINTS_PER_KILL`] times the combo.
//! The message `player-hit` (from the game) ends the combo and costs
//! [`HIT_PENALTY`]. The high score lives in the key-value store (bucket
//! `scores`, key `high`, as text), raised with compare-and-swap so two
//! games sharing a save never lower it. Every change goes out on `score`
//! as `score combo high` for the HUD, and every kill on `kill`.

use std::time::Duration;

use game_types::Team;
use hotwasm_sdk::kv::atomics::{self, Cas, CasError};
use hotwasm_sdk::{ComponentChanges, Cx, Error, Script, Watch};

// What scoring may touch (the book's Capabilities chapter): the game
// refuses it everything else, e.g. writing a component or spawning.
hotwasm_sdk::capabilities!(
    "
    component.watch    game_types::Team     # a kill is an enemy's Team removed
    messages.subscribe player-hit
    messages.send      kill score
    kv.read            scores/high
    kv.atomics         scores/high
    "
);

/// What one kill is worth before the combo.
const POINTS_PER_KILL: u64 = 10;
/// The longest pause between two kills of one combo.
const COMBO_WINDOW: Duration = Duration::from_millis(1500);
/// What touching an enemy costs.
const HIT_PENALTY: u64 = 25;

#[derive(Default)]
struct Scoring {
    score: u64,
    combo: u64,
    last_kill: Option<Duration>,
    high: u64,
}

impl Script for Scoring {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        self.high = read_high()?;
        cx.watch(
            Watch::component::<Team>(ComponentChanges::REMOVED),
            |me, _, event| me.killed(event.virtual_time),
        )?;
        cx.on_message("player-hit", |me, _, _| {
            me.combo = 0;
            me.score = me.score.saturating_sub(HIT_PENALTY);
            me.announce()
        })?;
        self.announce()
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        Some(
            [self.score, self.combo]
                .iter()
                .flat_map(|n| n.to_le_bytes())
                .collect(),
        )
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), Error> {
        let state: [u8; 16] = state.try_into().map_err(|_| "expected 16 bytes of state")?;
        let (score, combo) = state.split_at(8);
        self.score = u64::from_le_bytes(score.try_into().unwrap_or_default());
        self.combo = u64::from_le_bytes(combo.try_into().unwrap_or_default());
        Ok(())
    }
}

impl Scoring {
    fn killed(&mut self, at: Duration) -> Result<(), Error> {
        let in_combo = self
            .last_kill
            .is_some_and(|last| at.saturating_sub(last) <= COMBO_WINDOW);
        self.combo = if in_combo { self.combo + 1 } else { 1 };
        self.last_kill = Some(at);
        self.score += POINTS_PER_KILL * self.combo;
        if self.score > self.high {
            self.high = raise_high(self.score)?;
        }
        hotwasm_sdk::send("kill", self.combo.to_string().as_bytes())?;
        self.announce()
    }

    fn announce(&self) -> Result<(), Error> {
        let line = format!("{} {} {}", self.score, self.combo, self.high);
        hotwasm_sdk::send("score", line.as_bytes())
    }
}

fn read_high() -> Result<u64, Error> {
    let scores = hotwasm_sdk::kv::store::open("scores")?;
    Ok(parse(scores.get("high")?.as_deref()))
}

/// Raises the stored high score to `score` unless someone raised it past
/// that meanwhile; returns the high score now stored.
fn raise_high(score: u64) -> Result<u64, Error> {
    let scores = hotwasm_sdk::kv::store::open("scores")?;
    loop {
        let cas = Cas::new(&scores, "high")?;
        let stored = parse(cas.current()?.as_deref());
        if stored >= score {
            return Ok(stored);
        }
        match atomics::swap(cas, score.to_string().as_bytes()) {
            Ok(()) => return Ok(score),
            Err(CasError::CasFailed(_)) => continue,
            Err(CasError::StoreError(error)) => return Err(error.into()),
        }
    }
}

fn parse(text: Option<&[u8]>) -> u64 {
    text.and_then(|text| String::from_utf8_lossy(text).trim().parse().ok())
        .unwrap_or(0)
}

hotwasm_sdk::export_script!(Scoring);
