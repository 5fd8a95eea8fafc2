//! Drifts its entity east at 10 units a second, every frame: one typed
//! component read and write per frame (the per-frame benchmark's guest).

use game_types::Position;
use hotwasm_sdk::{Cx, Error, Frame, Script, me};

#[derive(Default)]
struct Drift;

impl Script for Drift {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        cx.every_frame(true)?;
        cx.prefetch::<(Position,)>()
    }

    fn update(&mut self, _: &mut Cx<Self>, frame: Frame) -> Result<(), Error> {
        me().update(|position: &mut Position| position.x += 10.0 * frame.delta_secs())
    }
}

hotwasm_sdk::export_script!(Drift);
