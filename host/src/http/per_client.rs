//! Bounds per client address, so that one client cannot take the whole host: its open
//! connections, its requests in guests at once, and how often it may register an account.
//!
//! A client is its address as the host reports it to the guests (`spin-client-addr`: the peer,
//! or what a trusted proxy forwarded), an IPv6 one taken by its /64 (one subscriber's network:
//! a /128 would give a single customer 2^64 fresh budgets). The connections of a trusted proxy
//! are not counted against it: it carries everyone's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The most connections one client address may hold open, by default
/// (`--max-connections-per-client`): a quarter of `--max-connections`' default, far above a
/// browser's six, and an office behind one NAT address still fits.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: u32 = 256;

/// The most requests one client address may have in guests at once, by default
/// (`--max-requests-per-client`): a quarter of `--max-concurrent-requests`' default. Its
/// further requests wait their turn (they cost no guest memory while they wait).
pub const DEFAULT_MAX_REQUESTS_PER_CLIENT: u32 = 64;

/// How many accounts one client address may register a minute, by default
/// (`--registrations-per-client`); a burst of as many is allowed at once.
pub const DEFAULT_REGISTRATIONS_PER_MINUTE: u32 = 20;

/// How long a request over its client's share waits for one of that client's own requests to
/// end before its 429.
pub const CLIENT_WAIT: Duration = Duration::from_secs(5);

/// The most client addresses whose registrations are remembered; past it, addresses whose
/// budget is full again are forgotten first.
const MAX_REMEMBERED: usize = 65_536;

/// A client as the bounds count it: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of `ip` (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let network = u128::from(v6) & (u128::MAX << 64);
                    Self(IpAddr::V6(network.into()))
                }
            },
        }
    }
}

/// The per-client bounds of one listener.
pub struct PerClient {
    max_connections: usize,
    max_requests: usize,
    registrations_per_minute: u32,
    wait: Duration,
    clients: Mutex<HashMap<ClientKey, Arc<ClientState>>>,
    registrations: Mutex<HashMap<ClientKey, Bucket>>,
}

/// What one client holds now.
struct ClientState {
    connections: Mutex<usize>,
    requests: Arc<Semaphore>,
}

/// A connection counted against its client, given back when dropped.
pub struct ClientConnection {
    bounds: Arc<PerClient>,
    key: ClientKey,
    state: Arc<ClientState>,
}

/// A request counted against its client: held until its guest instance is gone.
pub struct ClientRequest {
    _permit: OwnedSemaphorePermit,
    _held: ClientHold,
}

/// Keeps a client's entry alive while something of it is counted, and forgets the client when
/// the last goes.
struct ClientHold {
    bounds: Arc<PerClient>,
    key: ClientKey,
    state: Arc<ClientState>,
}

/// A token bucket: `tokens` left at `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl PerClient {
    /// Bounds of `max_connections` connections and `max_requests` requests per client, and
    /// `registrations_per_minute` registrations.
    pub fn new(max_connections: usize, max_requests: usize, registrations_per_minute: u32) -> Self {
        Self {
            max_connections: max_connections.max(1),
            max_requests: max_requests.max(1),
            registrations_per_minute: registrations_per_minute.max(1),
            wait: CLIENT_WAIT,
            clients: Mutex::default(),
            registrations: Mutex::default(),
        }
    }

    /// How long a request over its client's share waits (by default [`CLIENT_WAIT`]).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    fn state(&self, key: ClientKey) -> Arc<ClientState> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .entry(key)
            .or_insert_with(|| {
                Arc::new(ClientState {
                    connections: Mutex::new(0),
                    requests: Arc::new(Semaphore::new(self.max_requests)),
                })
            })
            .clone()
    }

    /// Counts a new connection from `ip`, or `None` when that client holds its share already.
    pub fn connection(self: &Arc<Self>, ip: IpAddr) -> Option<ClientConnection> {
        let key = ClientKey::of(ip);
        let state = self.state(key);
        {
            let mut open = state
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *open >= self.max_connections {
                drop(open);
                self.forget_if_idle(key, &state);
                return None;
            }
            *open += 1;
        }
        Some(ClientConnection {
            bounds: self.clone(),
            key,
            state,
        })
    }

    /// Lets a request of client `ip` in: at once under its share, else when one of its own
    /// requests ends, waiting [`CLIENT_WAIT`] (or [`PerClient::with_wait`]'s) at most (`None`
    /// then).
    pub async fn request(self: &Arc<Self>, ip: IpAddr) -> Option<ClientRequest> {
        let key = ClientKey::of(ip);
        let held = ClientHold {
            bounds: self.clone(),
            key,
            state: self.state(key),
        };
        let permit = held.state.requests.clone().acquire_owned();
        match tokio::time::timeout(self.wait, permit).await {
            Ok(Ok(permit)) => Some(ClientRequest {
                _permit: permit,
                _held: held,
            }),
            _ => None,
        }
    }

    /// Counts a registration from `ip`: `Ok` when its budget allows, else `Err` with the
    /// seconds until it does.
    pub fn register(&self, ip: IpAddr) -> Result<(), u64> {
        let key = ClientKey::of(ip);
        let burst = f64::from(self.registrations_per_minute);
        let per_second = burst / 60.0;
        let now = Instant::now();
        let mut buckets = self
            .registrations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_REMEMBERED && !buckets.contains_key(&key) {
            // Those whose budget has refilled are as good as new: forget them.
            buckets.retain(|_, bucket| refilled(*bucket, now, per_second, burst) < burst);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = refilled(*bucket, now, per_second, burst);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            let wait = ((1.0 - tokens) / per_second).ceil();
            Err((wait as u64).max(1))
        }
    }

    /// Drops a client's entry when nothing of it is counted any more.
    fn forget_if_idle(&self, key: ClientKey, state: &Arc<ClientState>) {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = *state
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            == 0
            && state.requests.available_permits() == self.max_requests;
        // The map's reference and the caller's: nobody else holds the state (one who just
        // took it from the map holds a reference too, under this lock).
        if idle && Arc::strong_count(state) == 2 {
            clients.remove(&key);
        }
    }

    /// How many clients hold something now (for the tests).
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A bucket's tokens at `now`, refilled at `per_second` up to `burst`.
fn refilled(bucket: Bucket, now: Instant, per_second: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * per_second).min(burst)
}

impl Drop for ClientConnection {
    fn drop(&mut self) {
        {
            let mut open = self
                .state
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *open = open.saturating_sub(1);
        }
        self.bounds.forget_if_idle(self.key, &self.state);
    }
}

impl Drop for ClientHold {
    fn drop(&mut self) {
        // The permit (a field declared before this one) is back already.
        self.bounds.forget_if_idle(self.key, &self.state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2:aaaa::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:10.0.0.1")),
            ClientKey::of(ip("10.0.0.1"))
        );
        assert_ne!(ClientKey::of(ip("10.0.0.1")), ClientKey::of(ip("10.0.0.2")));
    }

    #[test]
    fn connections_are_capped_per_client_and_given_back() {
        let bounds = Arc::new(PerClient::new(2, 4, 10));
        let a = bounds.connection(ip("10.0.0.1")).unwrap();
        let _b = bounds.connection(ip("10.0.0.1")).unwrap();
        assert!(bounds.connection(ip("10.0.0.1")).is_none());
        // Another client is not held up.
        let other = bounds.connection(ip("10.0.0.2")).unwrap();
        drop(a);
        assert!(bounds.connection(ip("10.0.0.1")).is_some());
        drop(other);
        drop(_b);
        assert_eq!(bounds.clients(), 0, "idle clients are forgotten");
    }

    #[tokio::test]
    async fn a_client_over_its_share_waits_then_is_refused() {
        let wait = Duration::from_millis(400);
        let bounds = Arc::new(PerClient::new(8, 1, 10).with_wait(wait));
        let first = bounds.request(ip("10.0.0.1")).await.unwrap();
        assert!(bounds.request(ip("10.0.0.2")).await.is_some());
        let waiting = tokio::spawn({
            let bounds = bounds.clone();
            async move { bounds.request(ip("10.0.0.1")).await.is_some() }
        });
        tokio::time::sleep(wait / 2).await;
        drop(first);
        assert!(waiting.await.unwrap());
        let _held = bounds.request(ip("10.0.0.1")).await.unwrap();
        let started = std::time::Instant::now();
        assert!(bounds.request(ip("10.0.0.1")).await.is_none());
        assert!(started.elapsed() >= wait);
    }

    #[test]
    fn registrations_are_a_burst_then_a_rate() {
        let bounds = PerClient::new(8, 8, 3);
        for _ in 0..3 {
            assert!(bounds.register(ip("2001:db8::1")).is_ok());
        }
        // The same /64, another address: the same budget.
        let wait = bounds.register(ip("2001:db8::2")).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(bounds.register(ip("2001:db9::1")).is_ok());
        {
            let mut buckets = bounds.registrations.lock().unwrap();
            let bucket = buckets.get_mut(&ClientKey::of(ip("2001:db8::1"))).unwrap();
            bucket.at -= Duration::from_secs(20);
        }
        assert!(bounds.register(ip("2001:db8::1")).is_ok());
        assert!(bounds.register(ip("2001:db8::1")).is_err());
    }
}
