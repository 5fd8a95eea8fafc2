//! Ticks every 100 ms of game time, says once when 250 ms have passed, and
//! answers a few commands. Tasks and subscriptions belong to a generation:
//! `init` registers them again after every hot reload, while the tick count
//! carries over through `save-state`.
//!
//! Messages it handles: `ticker/cancel` stops the ticks, `ticker/flood`
//! schedules tasks until the host refuses one. On start it sends `ping` with
//! the payload `from ticker`.

use std::time::Duration;

use hotwasm_sdk::{Cx, Error, Script, TaskId, info};

#[derive(Default)]
struct Ticker {
    ticks: u64,
    ticking: Option<TaskId>,
}

impl Script for Ticker {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        let started = hotwasm_sdk::now();
        let ticking = cx.every(Duration::from_millis(100), |me, _, tick| {
            me.ticks += 1;
            let generation = hotwasm_sdk::generation();
            info!("tick {} gen={generation} missed={}", me.ticks, tick.missed);
            Ok(())
        })?;
        self.ticking = Some(ticking);
        cx.after(Duration::from_millis(250), move |_, _| {
            info!(
                "once after {}ms",
                (hotwasm_sdk::now() - started).as_millis()
            );
            Ok(())
        })?;
        cx.on_message("ticker/cancel", |me, cx, _| {
            if let Some(ticking) = me.ticking.take() {
                cx.cancel(ticking)?;
                info!("cancelled after {} ticks", me.ticks);
            }
            Ok(())
        })?;
        cx.on_message("ticker/flood", |_, cx, _| {
            let mut scheduled = 0;
            loop {
                match cx.after(Duration::from_secs(3600), |_, _| Ok(())) {
                    Ok(_) => scheduled += 1,
                    Err(error) => {
                        info!("scheduled {scheduled} more tasks, then: {error:?}");
                        return Ok(());
                    }
                }
            }
        })?;
        hotwasm_sdk::send("ping", b"from ticker")
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        hotwasm_sdk::save_u64(self.ticks)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), Error> {
        self.ticks = hotwasm_sdk::restore_u64(state)?;
        Ok(())
    }
}

hotwasm_sdk::export_script!(Ticker);
