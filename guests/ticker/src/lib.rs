//! Ticks every 100 ms of game time, says once when 250 ms have passed, and
//! answers a few commands. Tasks and subscriptions belong to a generation:
//! `init` registers them again after every hot reload, while the tick count
//! carries over through `save-state`.
//!
//! Messages it handles: `ticker/cancel` stops the ticks, `ticker/flood`
//! schedules tasks until the host refuses one. On start it sends `ping` with
//! the payload `from ticker`.

use std::time::Duration;

use hotwasm_sdk::{Script, TaskId, Tick, info};

#[derive(Default)]
struct Ticker {
    ticks: u64,
    ticking: Option<TaskId>,
}

fn describe(error: impl std::fmt::Debug) -> String {
    format!("{error:?}")
}

impl Script for Ticker {
    fn init(&mut self) -> Result<(), String> {
        let started = hotwasm_sdk::now();
        let ticking =
            hotwasm_sdk::every(Duration::from_millis(100), |me: &mut Ticker, tick: Tick| {
                me.ticks += 1;
                info!(
                    "tick {} gen={} missed={}",
                    me.ticks,
                    hotwasm_sdk::generation(),
                    tick.missed
                );
            });
        self.ticking = Some(ticking.map_err(describe)?);
        hotwasm_sdk::after(Duration::from_millis(250), move |_: &mut Ticker| {
            info!(
                "once after {}ms",
                (hotwasm_sdk::now() - started).as_millis()
            );
        })
        .map_err(describe)?;
        hotwasm_sdk::on_message("ticker/cancel", |me: &mut Ticker, _| {
            if let Some(ticking) = me.ticking.take() {
                match hotwasm_sdk::cancel(ticking) {
                    Ok(()) => info!("cancelled after {} ticks", me.ticks),
                    Err(error) => info!("cancel failed: {error:?}"),
                }
            }
        })
        .map_err(describe)?;
        hotwasm_sdk::on_message("ticker/flood", |_: &mut Ticker, _| {
            let mut scheduled = 0;
            loop {
                match hotwasm_sdk::after(Duration::from_secs(3600), |_: &mut Ticker| {}) {
                    Ok(_) => scheduled += 1,
                    Err(error) => {
                        info!("scheduled {scheduled} more tasks, then: {error:?}");
                        break;
                    }
                }
            }
        })
        .map_err(describe)?;
        hotwasm_sdk::send("ping", b"from ticker").map_err(describe)?;
        Ok(())
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        hotwasm_sdk::save_u64(self.ticks)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), String> {
        self.ticks = hotwasm_sdk::restore_u64(state)?;
        Ok(())
    }
}

hotwasm_sdk::export_script!(Ticker);
