//! Admission control: how many connections, requests and password hashes the host takes on at
//! once. Past a bound a client gets a fast 503 (or its connection closed) instead of a share of
//! a memory that would grow with the flood: every request holds a guest instance until it
//! ends, and a password hash holds 19 MiB of Argon2id memory on top of that.
//!
//! The bounds are semaphores, as in wasmtime's `serve`: a connection holds its permit until it
//! closes, a request until its guest instance is gone (the body it streams included).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::Method;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The requests that hash a password with Argon2id (m = 19 MiB, t = 2, p = 1: about 30 ms of one
/// core each, see `components/accounts/src/password.rs`): registering, and logging in, which
/// hashes for an unknown user too so as not to tell. The host names them because nothing in
/// spin.toml can say that a route is expensive; keep the list in step with the accounts routes
/// that call `password::hash` or `password::verify` (the profile takes no password).
pub const PASSWORD_HASHING_ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/accounts/register/"),
    ("POST", "/api/accounts/login/"),
];

/// The most password hashes at once, by default (`--max-concurrent-hashing`): one per core, 2
/// to 4. Each hash is single-threaded and CPU-bound, so more than the cores adds memory (19 MiB
/// of Argon2id each) and latency but no throughput: on 2 cores, 2 hashes are 38 MiB at most.
pub fn default_max_concurrent_hashing() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores.clamp(2, 4)).unwrap_or(2)
}

/// How long a password-hashing request may wait for one of those permits before its 503 (never
/// longer than the request deadline). Two cores hash about 30 logins a second (40 at once took
/// 1.3 s), so 5 s clears a queue of some 150: a burst waits its turn, and a flood past what the
/// cores can hash is told to retry while its clients still wait, instead of queueing without end.
pub const HASHING_WAIT: Duration = Duration::from_secs(5);

/// The most client connections at once, by default (`--max-connections`). An idle connection
/// costs hyper's buffers only (at most `--max-header-size` each while a head comes in: 64 MiB for
/// all of them at worst); keep it under the open-files limit, which the host checks at start.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;

/// The body of every answer to a request or connection past a bound (API.md: 503).
pub const OVERLOADED_BODY: &str = r#"{"detail":"Service overloaded, retry shortly."}"#;

/// What the host admits at once, and the warnings it gives when it turns clients away.
pub struct Admission {
    connections: Arc<Semaphore>,
    requests: Arc<Semaphore>,
    hashing: Arc<Semaphore>,
    max_connections: usize,
    max_requests: usize,
    max_hashing: usize,
    hashing_wait: Duration,
    refused_connections: Throttle,
    refused_requests: Throttle,
}

/// A request let in: its permits, held until its guest instance is gone.
pub struct Admitted {
    _request: OwnedSemaphorePermit,
    _hashing: Option<OwnedSemaphorePermit>,
    /// What else the request holds until then (its client's share, its body's memory).
    _held: Vec<Box<dyn Send + Sync>>,
}

impl Admitted {
    /// Holds `what` until the request's guest instance is gone.
    pub fn holding(mut self, what: impl Send + Sync + 'static) -> Self {
        self._held.push(Box::new(what));
        self
    }
}

/// The methods the host passes to a guest: RFC 9110's, as written there (method names are
/// case-sensitive: `post` is another method, not `POST`), less `CONNECT` (a tunnel, never a
/// route's). `TRACE` goes to the route's guest, which answers 405 with the `Allow` header of
/// the route's methods. Anything else is answered 405 before a guest or a bound sees it, so that every
/// method-based decision (the hashing bound, the registration throttle, the guests' routers)
/// sees canonical methods only.
pub const KNOWN_METHODS: &[Method] = &[
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
];

/// Whether `method` is one of [`KNOWN_METHODS`].
pub fn is_known_method(method: &Method) -> bool {
    KNOWN_METHODS.contains(method)
}

/// A request turned away: every bound answers the same 503, the log says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded;

impl Admission {
    /// Bounds of `max_connections` connections, `max_requests` requests in guests and
    /// `max_hashing` of them hashing a password; a hashing request waits for its permit
    /// [`HASHING_WAIT`] at most, and never past `request_timeout`.
    pub fn new(
        max_connections: usize,
        max_requests: usize,
        max_hashing: usize,
        request_timeout: Duration,
    ) -> Self {
        Self {
            connections: Arc::new(Semaphore::new(max_connections)),
            requests: Arc::new(Semaphore::new(max_requests)),
            hashing: Arc::new(Semaphore::new(max_hashing)),
            max_connections,
            max_requests,
            max_hashing,
            hashing_wait: HASHING_WAIT.min(request_timeout),
            refused_connections: Throttle::default(),
            refused_requests: Throttle::default(),
        }
    }

    /// A permit for a new connection, or `None` (logged once a second at most) when
    /// `max_connections` are open.
    pub fn connection(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.connections.clone().try_acquire_owned().ok();
        if permit.is_none() {
            if let Some(refused) = self.refused_connections.count() {
                tracing::warn!(
                    reason = "overloaded",
                    "overloaded: {refused} connection(s) turned away with a 503 since the last \
                     report, {} are open (--max-connections)",
                    self.max_connections
                );
            }
        }
        permit
    }

    /// Lets a request for `method` and `path` in, before its guest is instantiated: a
    /// password-hashing one waits (up to its wait) for a hashing permit first, so that waiting
    /// costs no guest memory; then every request takes a request permit if one is free now.
    pub async fn admit(&self, method: &Method, path: &str) -> Result<Admitted, Overloaded> {
        let hashing = if hashes_password(method, path) {
            let permit = self.hashing.clone().acquire_owned();
            match tokio::time::timeout(self.hashing_wait, permit).await {
                Ok(Ok(permit)) => Some(permit),
                // Timed out (the semaphore is never closed).
                _ => {
                    self.refused(format_args!(
                        "password-hashing requests waited {:?} for one of {} permits \
                         (--max-concurrent-hashing)",
                        self.hashing_wait, self.max_hashing
                    ));
                    return Err(Overloaded);
                }
            }
        } else {
            None
        };
        match self.requests.clone().try_acquire_owned() {
            Ok(request) => Ok(Admitted {
                _request: request,
                _hashing: hashing,
                _held: Vec::new(),
            }),
            Err(_) => {
                self.refused(format_args!(
                    "{} requests are in flight (--max-concurrent-requests)",
                    self.max_requests
                ));
                Err(Overloaded)
            }
        }
    }

    fn refused(&self, why: std::fmt::Arguments<'_>) {
        if let Some(refused) = self.refused_requests.count() {
            tracing::warn!(
                reason = "overloaded",
                "overloaded: {refused} request(s) answered 503 since the last report: {why}"
            );
        }
    }

    /// Warns when the open-files limit leaves less than `max_connections` for connections: past
    /// it, connections would wait in the listen backlog instead of being turned away.
    pub fn check_open_files_limit(&self) {
        // The databases, the log and the listener take a few dozen descriptors besides.
        const SPARE: usize = 64;
        let Some(limit) = open_files_limit() else {
            return;
        };
        if limit < self.max_connections + SPARE {
            tracing::warn!(
                "the open-files limit ({limit}) is below --max-connections ({}) and {SPARE} \
                 spare: raise it (`ulimit -n`, systemd's LimitNOFILE) or lower --max-connections",
                self.max_connections
            );
        }
    }
}

/// Whether a request hashes a password (see [`PASSWORD_HASHING_ROUTES`]). The method is
/// compared without regard to case: the host refuses other spellings before admission, and a
/// guest that upper-cases what it gets must never hash outside the bound if one slips through.
pub fn hashes_password(method: &Method, path: &str) -> bool {
    PASSWORD_HASHING_ROUTES
        .iter()
        .any(|(m, p)| method.as_str().eq_ignore_ascii_case(m) && path == *p)
}

/// The body of the answer to a connection past its client's share.
pub const TOO_MANY_CONNECTIONS_BODY: &str =
    r#"{"detail":"Too many connections from your address, retry shortly."}"#;

/// Answers a connection past `--max-connections` with a 503 and closes it at once, without a
/// task of its own: a flood of connections costs a few system calls each, and none waits in
/// the listen backlog.
pub fn turn_away(stream: TcpStream) {
    refuse_connection(stream, "503 Service Unavailable", OVERLOADED_BODY);
}

/// Answers a connection past `--max-connections-per-client` with a 429, as [`turn_away`].
pub fn turn_away_client(stream: TcpStream) {
    refuse_connection(stream, "429 Too Many Requests", TOO_MANY_CONNECTIONS_BODY);
}

/// Writes `status` and `body` on a fresh connection, and closes it.
fn refuse_connection(stream: TcpStream, status: &str, body: &str) {
    let Ok(mut stream) = stream.into_std() else {
        return;
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // The socket is non-blocking (tokio's): the answer fits the empty send buffer.
    let _ = stream.write_all(answer.as_bytes());
    // Whatever the client has sent already is read, so that closing sends a FIN and not a reset
    // that could destroy the answer before the client reads it.
    let mut scratch = [0u8; 8192];
    for _ in 0..8 {
        match stream.read(&mut scratch) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// The soft limit on this process's open files, from `/proc/self/limits` (Linux).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.strip_prefix("Max open files")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Counts what a warning is about, and says when it is time to give it: once a second at most.
#[derive(Default)]
struct Throttle {
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    last_said: Option<Instant>,
    unsaid: u64,
}

impl Throttle {
    /// Counts one more; returns how many to report when the last report is a second old.
    fn count(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.unsaid += 1;
        let now = Instant::now();
        if state
            .last_said
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            return None;
        }
        state.last_said = Some(now);
        Some(std::mem::take(&mut state.unsaid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_password_routes_hash() {
        assert!(hashes_password(&Method::POST, "/api/accounts/login/"));
        // Any spelling of POST is bounded, should one get past the edge's 405.
        let lower = Method::from_bytes(b"post").unwrap();
        assert!(hashes_password(&lower, "/api/accounts/register/"));
        assert!(!is_known_method(&lower));
        assert!(is_known_method(&Method::PATCH));
        assert!(is_known_method(&Method::TRACE));
        assert!(!is_known_method(&Method::CONNECT));
        assert!(hashes_password(&Method::POST, "/api/accounts/register/"));
        assert!(!hashes_password(&Method::OPTIONS, "/api/accounts/login/"));
        assert!(!hashes_password(
            &Method::POST,
            "/api/accounts/token/refresh/"
        ));
        assert!(!hashes_password(&Method::PATCH, "/api/accounts/profile/"));
        assert!(!hashes_password(&Method::GET, "/api/products/"));
    }

    #[test]
    fn a_warning_is_given_once_a_second_with_the_count() {
        let throttle = Throttle::default();
        assert_eq!(throttle.count(), Some(1));
        assert_eq!(throttle.count(), None);
        assert_eq!(throttle.count(), None);
        throttle.state.lock().unwrap().last_said = Some(Instant::now() - Duration::from_secs(2));
        assert_eq!(throttle.count(), Some(3));
    }

    #[tokio::test]
    async fn past_the_bound_a_request_is_refused_at_once_and_admitted_when_one_ends() {
        let admission = Admission::new(8, 1, 1, Duration::from_secs(10));
        let first = admission.admit(&Method::GET, "/api/products/").await;
        assert!(first.is_ok());
        let started = Instant::now();
        let second = admission.admit(&Method::GET, "/api/products/").await;
        assert_eq!(second.err(), Some(Overloaded));
        assert!(started.elapsed() < Duration::from_millis(100));
        drop(first);
        assert!(admission
            .admit(&Method::GET, "/api/products/")
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn a_login_waits_for_a_hashing_permit_then_is_refused() {
        // The wait is never longer than the request deadline: 300 ms here.
        let wait = Duration::from_millis(300);
        let admission = Arc::new(Admission::new(8, 8, 1, wait));
        let hashing = admission.admit(&Method::POST, "/api/accounts/login/").await;
        assert!(hashing.is_ok());
        // Other routes are not held up by the logins.
        assert!(admission
            .admit(&Method::GET, "/api/products/")
            .await
            .is_ok());
        // A second login waits, and gets the permit when the first is done.
        let waiting = tokio::spawn({
            let admission = admission.clone();
            async move {
                admission
                    .admit(&Method::POST, "/api/accounts/login/")
                    .await
                    .is_ok()
            }
        });
        tokio::time::sleep(wait / 3).await;
        drop(hashing);
        assert!(waiting.await.unwrap());
        // One that waits past the wait is refused.
        let held = admission
            .admit(&Method::POST, "/api/accounts/register/")
            .await;
        assert!(held.is_ok());
        let started = Instant::now();
        let refused = admission.admit(&Method::POST, "/api/accounts/login/").await;
        assert_eq!(refused.err(), Some(Overloaded));
        assert!(started.elapsed() >= wait, "{:?}", started.elapsed());
    }
}
