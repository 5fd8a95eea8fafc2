//! Counts how many times it has been started, and keeps the count across hot
//! reloads through `save-state` / `restore-state`.

use hotwasm_sdk::{Script, info};

#[derive(Default)]
struct Counter {
    starts: u64,
}

impl Script for Counter {
    fn init(&mut self) -> Result<(), String> {
        self.starts += 1;
        info!("starts={}", self.starts);
        Ok(())
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        Some(self.starts.to_le_bytes().to_vec())
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), String> {
        let bytes = state
            .try_into()
            .map_err(|_| format!("expected 8 bytes of counter state, got {}", state.len()))?;
        self.starts = u64::from_le_bytes(bytes);
        Ok(())
    }
}

hotwasm_sdk::export_script!(Counter);
