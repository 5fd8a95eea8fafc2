//! `hotwasm:script/log`: guest log lines.

use bevy::log::Level;
use wasmtime::component::HasData;

use super::bindings::hotwasm::script::log::{Host, Level as WitLevel};
use super::{GuestOutput, HostState};

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

/// The marker `log` is linked with: its host is a [`LogView`].
pub(super) struct Log;

impl HasData for Log {
    type Data<'a> = LogView<'a>;
}

/// What `log` sees of an instance's state: where its lines go.
pub(crate) struct LogView<'a> {
    output: &'a GuestOutput,
}

impl LogView<'_> {
    pub fn of(state: &mut HostState) -> LogView<'_> {
        LogView {
            output: &state.output,
        }
    }
}

impl Host for LogView<'_> {
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
