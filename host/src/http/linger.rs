//! A lingering close for HTTP connections.
//!
//! When the shop answers before it has read a request's body (a 413 on an oversized body),
//! the client is usually still writing. Closing the socket then, with unread bytes in its
//! receive buffer, makes the kernel send a reset, and the client sees `EPIPE` or
//! `ECONNRESET` instead of the answer already sent to it. As Apache's and nginx's lingering
//! close do, [`LingeringStream`] first shuts down its write side (the client sees the end of
//! the answer), then reads and discards what the client still sends, for a bounded time and
//! amount, before the socket is closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// The longest a closing connection waits for its client to stop sending.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// The most a closing connection reads and throws away: above the 1 MiB body limit with room
/// for a client that sends a few MiB before it reads the answer.
pub const LINGER_BYTES: usize = 8 * 1024 * 1024;

/// A TCP connection whose `poll_shutdown` closes lingering (see the module's documentation).
#[derive(Debug)]
pub struct LingeringStream {
    stream: TcpStream,
    /// Set once the write side is shut down: what is left of the lingering.
    linger: Option<Linger>,
    /// The most it reads and throws away while closing.
    max_discard: usize,
}

#[derive(Debug)]
struct Linger {
    deadline: Pin<Box<Sleep>>,
    discarded: usize,
}

impl LingeringStream {
    /// Wraps an accepted connection, lingering over at most [`LINGER_BYTES`].
    pub fn new(stream: TcpStream) -> Self {
        Self::with_limit(stream, LINGER_BYTES)
    }

    /// Wraps an accepted connection that reads and throws away at most `max_discard` bytes
    /// while it closes: the admin listener's, whose refused uploads are larger.
    pub fn with_limit(stream: TcpStream, max_discard: usize) -> Self {
        Self {
            stream,
            linger: None,
            max_discard,
        }
    }
}

impl AsyncRead for LingeringStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// Shuts down the write side, then discards what the client still sends until it closes
    /// its side, its limit (by default [`LINGER_BYTES`]) is read or [`LINGER_TIME`] has passed. hyper calls this
    /// once a connection is done, before it drops the socket.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            this.linger = Some(Linger {
                deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
                discarded: 0,
            });
        }
        let Some(linger) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if linger.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut this.stream).poll_read(cx, &mut buf)) {
                // The client closed its side: nothing more can arrive.
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Ok(()) => {
                    linger.discarded += buf.filled().len();
                    if linger.discarded >= this.max_discard {
                        return Poll::Ready(Ok(()));
                    }
                }
                // A reset from the client: the answer is lost or already read, either way the
                // write side was closed cleanly.
                Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// The server answers without reading a body the client is still sending, and closes: the
    /// client's writes all succeed and it reads the answer.
    #[tokio::test]
    async fn a_client_still_writing_reads_the_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut stream = LingeringStream::new(stream);
            let mut head = [0u8; 16];
            stream.read_exact(&mut head).await.unwrap();
            stream.write_all(b"answer").await.unwrap();
            stream.shutdown().await.unwrap();
        });
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let body = vec![b'x'; 3 * 1024 * 1024];
        client.write_all(&body).await.unwrap();
        client.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"answer");
        server.await.unwrap();
    }

    /// A client that neither sends nor closes holds the connection for [`LINGER_TIME`] only.
    #[tokio::test]
    async fn lingering_is_bounded_in_time() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let mut stream = LingeringStream::new(stream);
        let started = std::time::Instant::now();
        stream.shutdown().await.unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= LINGER_TIME && waited < LINGER_TIME * 2,
            "{waited:?}"
        );
    }
}
