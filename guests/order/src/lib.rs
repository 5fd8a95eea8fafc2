//! Logs what it handles in a frame, in the order the SDK hands it over:
//! `task` (every 100 ms), `message` (topic `order`), `event` (key `k` of
//! bucket `order`), `update <frame number>` (every frame). The message
//! `order/stop` turns the per-frame hook off.

use std::time::Duration;

use hotwasm_sdk::{Cx, Error, Frame, Script, Watch, info};

#[derive(Default)]
struct Order;

impl Script for Order {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        cx.every(Duration::from_millis(100), |_, _, _| {
            info!("task");
            Ok(())
        })?;
        cx.on_message("order", |_, _, _| {
            info!("message");
            Ok(())
        })?;
        cx.watch(Watch::key("order", "k"), |_, _, _| {
            info!("event");
            Ok(())
        })?;
        cx.on_message("order/stop", |_, cx, _| cx.every_frame(false))?;
        cx.every_frame(true)
    }

    fn update(&mut self, _: &mut Cx<Self>, frame: Frame) -> Result<(), Error> {
        info!("update {}", frame.number);
        Ok(())
    }
}

hotwasm_sdk::export_script!(Order);
