//! A per-frame behaviour: every frame, moves its entity towards its
//! `Target` at its `Speed`. The book's guest example.

use game_types::{Position, Speed, Target};
use hotwasm_sdk::{Cx, Error, Frame, Script, me};

#[derive(Default)]
struct Mover;

impl Script for Mover {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        cx.every_frame(true)?;
        cx.prefetch::<(Position, Target, Speed)>()
    }

    fn update(&mut self, _: &mut Cx<Self>, frame: Frame) -> Result<(), Error> {
        let (target, speed) = (me().get::<Target>()?, me().get::<Speed>()?);
        me().update(|position: &mut Position| {
            position.move_towards(target, speed.0 * frame.delta_secs())
        })
    }
}

hotwasm_sdk::export_script!(Mover);
