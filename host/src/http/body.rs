//! A request's body, read whole before the request takes a slot: a client that sends its body
//! a byte every few seconds then holds a connection (bounded per client and in all), never a
//! guest instance. The body must arrive within `--body-read-timeout` of the head, and every
//! body being read or waiting for its guest counts against one memory budget
//! (`--max-body-buffer`), so that many large bodies at once cost a bounded memory too.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::CONNECTION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::responses::{json, overloaded, payload_too_large, ResponseBody};

/// The body a guest reads: the bytes read before it was admitted.
pub type GuestBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// The memory bodies may hold at once.
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
}

/// Memory a read body holds, given back when it is dropped (with its request).
pub struct BodyMemory {
    _permit: Option<OwnedSemaphorePermit>,
}

/// Why a body was not read: each is answered by the host, the connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRefusal {
    /// Not all there within the timeout: 408.
    TooSlow,
    /// Over the limit: 413.
    TooLarge,
    /// The budget is spent: 503.
    Overloaded,
    /// The client went away or broke the framing: nobody reads the answer.
    Broken,
}

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Reads `request`'s body, at most `limit` bytes within `timeout`, and gives the request
    /// back with the bytes as its body.
    pub async fn read(
        &self,
        request: Request<Incoming>,
        limit: usize,
        timeout: Duration,
    ) -> Result<(Request<GuestBody>, BodyMemory), BodyRefusal> {
        let (parts, mut body) = request.into_parts();
        let mut memory: Option<OwnedSemaphorePermit> = None;
        let mut bytes = BytesMut::new();
        let read = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|_| BodyRefusal::Broken)?;
                let Ok(data) = frame.into_data() else {
                    continue; // trailers: not for the guests
                };
                if bytes.len() + data.len() > limit {
                    return Err(BodyRefusal::TooLarge);
                }
                if !data.is_empty() {
                    let size = u32::try_from(data.len()).map_err(|_| BodyRefusal::TooLarge)?;
                    let permit = self
                        .bytes
                        .clone()
                        .try_acquire_many_owned(size)
                        .map_err(|_| BodyRefusal::Overloaded)?;
                    match memory.as_mut() {
                        Some(held) => held.merge(permit),
                        None => memory = Some(permit),
                    }
                }
                bytes.extend_from_slice(&data);
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, read).await {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => return Err(refusal),
            Err(_elapsed) => return Err(BodyRefusal::TooSlow),
        }
        let body = Full::new(bytes.freeze())
            .map_err(|never: Infallible| -> hyper::Error { match never {} })
            .boxed_unsync();
        Ok((
            Request::from_parts(parts, body),
            BodyMemory { _permit: memory },
        ))
    }
}

impl BodyRefusal {
    /// The host's answer, in the contract's shape; the connection closes (lingering), as the
    /// rest of the body is not read.
    pub fn response(self) -> Response<ResponseBody> {
        let mut response = match self {
            Self::TooSlow => json(
                StatusCode::REQUEST_TIMEOUT,
                r#"{"detail":"The request body did not arrive in time."}"#,
            ),
            Self::TooLarge => return payload_too_large(),
            Self::Overloaded => overloaded(),
            Self::Broken => json(
                StatusCode::BAD_REQUEST,
                r#"{"detail":"The request body could not be read."}"#,
            ),
        };
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        response
    }

    /// The reason the request line of the log gives.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooSlow => "slow body",
            Self::TooLarge => "body too large",
            Self::Overloaded => "overloaded",
            Self::Broken => "broken body",
        }
    }
}
