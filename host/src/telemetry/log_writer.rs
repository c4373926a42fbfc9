//! The process's log writer: lines are appended to a buffer in memory and written to stderr in
//! batches by one thread, every [`FLUSH_EVERY`], so that a request's log line costs a copy
//! under a short lock and no system call or thread wake-up. A warning or an error wakes the
//! thread at once: the operator reads those without the delay.
//!
//! Profiled on GET /api/products/{id}/ at 32 connections: with tracing-appender's writer (a
//! channel whose receiver is woken for every line, and a `write` per line) the log thread took
//! 13% of the host's samples and woke a core for every request.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// The most bytes the buffer holds: past it, lines are dropped (and counted, and the count
/// written once there is room), so a stderr that nobody reads never grows the host.
const MAX_BUFFERED: usize = 4 << 20;

struct Shared {
    buffer: Mutex<Vec<u8>>,
    /// The writer thread, to wake for a warning or an error.
    thread: std::sync::OnceLock<std::thread::Thread>,
    dropped: AtomicU64,
    stop: AtomicBool,
}

/// Where the log's formatter writes: the shared buffer.
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
}

/// Stops the writer thread when dropped, after it has written what the buffer holds.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer into the buffer, and the guard that keeps its thread writing `sink`.
pub fn batched<W: Write + Send + 'static>(sink: W) -> (BatchedWriter, FlushGuard) {
    let shared = Arc::new(Shared {
        buffer: Mutex::new(Vec::with_capacity(64 << 10)),
        thread: std::sync::OnceLock::new(),
        dropped: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let shared = shared.clone();
            move || write_batches(&shared, sink)
        })
        .ok();
    if let Some(thread) = &thread {
        let _ = shared.thread.set(thread.thread().clone());
    }
    (
        BatchedWriter {
            shared: shared.clone(),
        },
        FlushGuard { shared, thread },
    )
}

/// The writer thread: every [`FLUSH_EVERY`], whatever the buffer holds, in one write.
fn write_batches<W: Write>(shared: &Shared, mut sink: W) {
    let mut batch = Vec::with_capacity(64 << 10);
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        if !stopping {
            std::thread::park_timeout(FLUSH_EVERY);
        }
        std::mem::swap(
            &mut batch,
            &mut shared.buffer.lock().unwrap_or_else(PoisonError::into_inner),
        );
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                batch,
                "{dropped} log lines were dropped: stderr was not read"
            );
        }
        if !batch.is_empty() {
            // A failed write (a closed stderr) loses the batch: there is nowhere to say so.
            let _ = sink.write_all(&batch).and_then(|()| sink.flush());
            batch.clear();
        }
        if stopping {
            return;
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// One log line's writes into the buffer.
pub struct LineWriter<'a> {
    shared: &'a Shared,
    /// A warning or an error: wake the writer thread once the line is in.
    urgent: bool,
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if self.urgent {
            if let Some(thread) = self.shared.thread.get() {
                thread.unpark();
            }
        }
    }
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self
            .shared
            .buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if buffer.len() + bytes.len() > MAX_BUFFERED {
            drop(buffer);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
            urgent: *meta.level() <= tracing::Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read while the writer thread owns it.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_within_a_flush_and_all_of_them_at_the_end() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone());
        writer.make_writer().write_all(b"one\n").unwrap();
        writer.make_writer().write_all(b"two\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.0.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(*sink.0.lock().unwrap(), b"one\ntwo\n");
        writer.make_writer().write_all(b"three\n").unwrap();
        drop(guard);
        assert_eq!(*sink.0.lock().unwrap(), b"one\ntwo\nthree\n");
    }

    #[test]
    fn a_full_buffer_drops_lines_and_says_how_many() {
        // No writer thread: nothing empties the buffer until `write_batches` runs below.
        let shared = Shared {
            buffer: Mutex::new(Vec::new()),
            thread: std::sync::OnceLock::new(),
            dropped: AtomicU64::new(0),
            stop: AtomicBool::new(true),
        };
        let line = vec![b'x'; MAX_BUFFERED / 3];
        for _ in 0..5 {
            LineWriter {
                shared: &shared,
                urgent: false,
            }
            .write_all(&line)
            .unwrap();
        }
        assert_eq!(shared.buffer.lock().unwrap().len(), line.len() * 3);
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 2);
        let sink = Sink::default();
        write_batches(&shared, sink.clone());
        let written = sink.0.lock().unwrap();
        assert_eq!(
            written.len(),
            line.len() * 3 + "2 log lines were dropped: stderr was not read\n".len()
        );
        assert!(written.ends_with(b"2 log lines were dropped: stderr was not read\n"));
        assert!(shared.buffer.lock().unwrap().is_empty());
    }
}
