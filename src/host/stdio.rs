//! A guest's WASI stdout and stderr, turned into log lines.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bevy::log::Level;
use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::log::{GuestLine, MAX_LINE_BYTES};

/// Lines an instance produced since the runtime last took them.
///
/// Shared by the instance's `log` import and its stdout / stderr streams, so
/// every line comes out in the order the guest wrote it.
#[derive(Clone, Default)]
pub(crate) struct GuestOutput(Arc<Mutex<OutputBuffer>>);

struct OutputBuffer {
    lines: Vec<GuestLine>,
    /// Bytes after the last newline, per stream (stdout, stderr).
    unfinished: [Vec<u8>; 2],
    /// The most lines kept between two [`GuestOutput::take_lines`].
    max_lines: usize,
    /// Lines dropped past `max_lines` since the last take.
    dropped: u64,
}

impl Default for OutputBuffer {
    fn default() -> Self {
        Self {
            lines: Vec::new(),
            unfinished: Default::default(),
            max_lines: usize::MAX,
            dropped: 0,
        }
    }
}

impl OutputBuffer {
    fn finish_line(&mut self, stream: StdioStream) {
        let bytes = std::mem::take(&mut self.unfinished[stream as usize]);
        let text = String::from_utf8_lossy(&bytes);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        self.keep(GuestLine::new(stream.level(), text.to_owned()));
    }

    fn keep(&mut self, line: GuestLine) {
        if self.lines.len() < self.max_lines {
            self.lines.push(line);
        } else {
            self.dropped += 1;
        }
    }
}

impl GuestOutput {
    fn lock(&self) -> std::sync::MutexGuard<'_, OutputBuffer> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Output that keeps at most `max_lines` lines per call; the rest are
    /// dropped and counted.
    pub fn with_max_lines(max_lines: u32) -> Self {
        let output = Self::default();
        output.lock().max_lines = max_lines as usize;
        output
    }

    pub fn push(&self, line: GuestLine) {
        self.lock().keep(line);
    }

    /// How many lines were dropped since the last call, and resets it.
    pub fn take_dropped(&self) -> u64 {
        std::mem::take(&mut self.lock().dropped)
    }

    fn write(&self, stream: StdioStream, mut bytes: &[u8]) {
        let mut buffer = self.lock();
        while !bytes.is_empty() {
            let unfinished = &mut buffer.unfinished[stream as usize];
            let room = MAX_LINE_BYTES - unfinished.len();
            match bytes.iter().take(room).position(|&b| b == b'\n') {
                Some(newline) => {
                    unfinished.extend_from_slice(&bytes[..newline]);
                    bytes = &bytes[newline + 1..];
                    buffer.finish_line(stream);
                }
                None => {
                    let taken = bytes.len().min(room);
                    unfinished.extend_from_slice(&bytes[..taken]);
                    bytes = &bytes[taken..];
                    if unfinished.len() == MAX_LINE_BYTES {
                        buffer.finish_line(stream);
                    }
                }
            }
        }
    }

    /// Everything written since the last call, unfinished lines included:
    /// a guest call's output is complete when the call returns.
    pub fn take_lines(&self) -> Vec<GuestLine> {
        let mut buffer = self.lock();
        for stream in [StdioStream::Stdout, StdioStream::Stderr] {
            if !buffer.unfinished[stream as usize].is_empty() {
                buffer.finish_line(stream);
            }
        }
        std::mem::take(&mut buffer.lines)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StdioStream {
    Stdout = 0,
    Stderr = 1,
}

impl StdioStream {
    fn level(self) -> Level {
        match self {
            StdioStream::Stdout => Level::INFO,
            StdioStream::Stderr => Level::WARN,
        }
    }
}

/// One of a guest's output streams; never blocks, never fails.
#[derive(Clone)]
pub(crate) struct GuestStdio {
    output: GuestOutput,
    stream: StdioStream,
}

impl GuestStdio {
    pub fn new(output: GuestOutput, stream: StdioStream) -> Self {
        Self { output, stream }
    }
}

impl IsTerminal for GuestStdio {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStdio {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestStdio {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.output.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStdio {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestStdio {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.output.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(output: &GuestOutput) -> Vec<(Level, String)> {
        output
            .take_lines()
            .into_iter()
            .map(|line| (line.level, line.message))
            .collect()
    }

    #[test]
    fn stdout_is_split_into_lines_and_stderr_warns() {
        let output = GuestOutput::default();
        output.write(StdioStream::Stdout, b"one\r\ntw");
        output.write(StdioStream::Stderr, b"oops\n");
        output.write(StdioStream::Stdout, b"o\nthree");
        assert_eq!(
            messages(&output),
            vec![
                (Level::INFO, "one".into()),
                (Level::WARN, "oops".into()),
                (Level::INFO, "two".into()),
                (Level::INFO, "three".into()),
            ]
        );
        assert!(messages(&output).is_empty());
    }

    #[test]
    fn a_line_without_newlines_is_cut_into_bounded_pieces() {
        let output = GuestOutput::default();
        output.write(StdioStream::Stdout, &vec![b'x'; MAX_LINE_BYTES * 2 + 10]);
        let lines = messages(&output);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|(_, text)| text.len() <= MAX_LINE_BYTES));
    }
}
