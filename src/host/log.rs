//! `hotwasm:script/log`: guest log lines.

use bevy::log::Level;

use super::HostState;
use super::bindings::hotwasm::script::log::{Host, Level as WitLevel};

/// Longest log line the host keeps, in bytes; longer lines are cut.
pub(crate) const MAX_LINE_BYTES: usize = 4096;

/// One line a guest logged, through `log` or its stdout / stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestLine {
    /// The line's level (stdout is `INFO`, stderr is `WARN`).
    pub level: Level,
    /// The text, without a trailing newline, at most 4096 bytes.
    pub message: String,
}

impl GuestLine {
    /// A line, cut at a character boundary if it is too long.
    pub(crate) fn new(level: Level, mut message: String) -> Self {
        if message.len() > MAX_LINE_BYTES {
            let mut end = MAX_LINE_BYTES - '…'.len_utf8();
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        Self { level, message }
    }
}

impl From<WitLevel> for Level {
    fn from(level: WitLevel) -> Self {
        match level {
            WitLevel::Trace => Level::TRACE,
            WitLevel::Debug => Level::DEBUG,
            WitLevel::Info => Level::INFO,
            WitLevel::Warn => Level::WARN,
            WitLevel::Error => Level::ERROR,
        }
    }
}

impl Host for HostState {
    fn log(&mut self, level: WitLevel, message: String) {
        self.output.push(GuestLine::new(level.into(), message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_at_a_char_boundary() {
        let line = GuestLine::new(Level::INFO, "é".repeat(MAX_LINE_BYTES));
        assert!(line.message.len() <= MAX_LINE_BYTES);
        assert!(line.message.ends_with('…'));
        assert!(line.message.trim_end_matches('…').chars().all(|c| c == 'é'));
    }
}
