//! A guest's stdout and stderr: into the host's log, one event per line, each named by its
//! component and stream, with control characters escaped (a guest cannot print a line that
//! looks like the host's own) and a bounded number of bytes per instance (a guest cannot flood
//! the log or the host's memory; the rest is dropped and counted).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// The most bytes one instance may write to one of its streams; past it lines are dropped.
pub const MAX_BYTES_PER_INSTANCE: usize = 64 * 1024;

/// The longest line logged as it is; a longer one is cut there.
const MAX_LINE: usize = 2048;

/// One of a guest's output streams, as the host's log.
#[derive(Clone)]
pub struct GuestOutput {
    state: Arc<Mutex<Output>>,
}

struct Output {
    component: Arc<str>,
    stream: &'static str,
    /// The line being written.
    line: Vec<u8>,
    /// The bytes taken so far (logged or dropped).
    written: usize,
    /// The bytes dropped past the bound.
    dropped: usize,
}

impl GuestOutput {
    /// The `stream` (`stdout` or `stderr`) of an instance of `component`.
    pub fn new(component: &str, stream: &'static str) -> Self {
        Self {
            state: Arc::new(Mutex::new(Output {
                component: component.into(),
                stream,
                line: Vec::new(),
                written: 0,
                dropped: 0,
            })),
        }
    }

    fn take(&self, bytes: &[u8]) {
        let mut out = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        out.take(bytes);
    }
}

impl Output {
    fn take(&mut self, bytes: &[u8]) {
        let room = MAX_BYTES_PER_INSTANCE.saturating_sub(self.written);
        let (kept, dropped) = bytes.split_at(bytes.len().min(room));
        self.written += kept.len();
        for &byte in kept {
            if byte == b'\n' {
                self.emit();
            } else if self.line.len() < MAX_LINE {
                self.line.push(byte);
            }
        }
        if !dropped.is_empty() {
            if self.dropped == 0 {
                self.emit();
                tracing::warn!(
                    component = %self.component,
                    stream = self.stream,
                    "the guest wrote more than {MAX_BYTES_PER_INSTANCE} bytes in one instance; the rest is dropped"
                );
            }
            self.dropped += dropped.len();
        }
    }

    /// Logs the line being written, if any.
    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let line = escape(&self.line);
        self.line.clear();
        tracing::info!(
            target: "guest",
            component = %self.component,
            stream = self.stream,
            "{line}"
        );
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.emit();
        if self.dropped > 0 {
            tracing::warn!(
                component = %self.component,
                stream = self.stream,
                dropped = self.dropped,
                "guest output dropped past the bound"
            );
        }
    }
}

/// `line` as text with every control character (and invalid UTF-8) escaped.
fn escape(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.take(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_escaped_cut_and_bounded() {
        let output = GuestOutput::new("docs", "stderr");
        let first = b"first\x1b[31m line\rforged\nsecond";
        output.take(first);
        let written = output.state.lock().unwrap().written;
        assert_eq!(written, first.len());
        assert_eq!(output.state.lock().unwrap().line, b"second");
        assert_eq!(escape(b"a\x1b[31m\rb\xff"), "a\\u{1b}[31m\\rb\u{fffd}");

        output.take(&vec![b'x'; 10 * MAX_BYTES_PER_INSTANCE]);
        let out = output.state.lock().unwrap();
        assert_eq!(out.written, MAX_BYTES_PER_INSTANCE);
        // The line cut at MAX_LINE was logged when the bound was passed.
        assert!(out.line.is_empty());
        assert_eq!(
            out.dropped,
            10 * MAX_BYTES_PER_INSTANCE - (MAX_BYTES_PER_INSTANCE - first.len())
        );
    }
}
