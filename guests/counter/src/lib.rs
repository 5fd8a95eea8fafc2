//! Counts how many times it has been started, and keeps the count across hot
//! reloads through `save-state` / `restore-state`.

use hotwasm_sdk::{Cx, Error, Script, info};

#[derive(Default)]
struct Counter {
    starts: u64,
}

impl Script for Counter {
    fn init(&mut self, _: &mut Cx<Self>) -> Result<(), Error> {
        self.starts += 1;
        info!("starts={}", self.starts);
        Ok(())
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        hotwasm_sdk::save_u64(self.starts)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), Error> {
        self.starts = hotwasm_sdk::restore_u64(state)?;
        Ok(())
    }
}

hotwasm_sdk::export_script!(Counter);
