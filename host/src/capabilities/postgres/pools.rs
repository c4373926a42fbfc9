//! The app's Postgres pools, one per distinct address, and the reset of a session that a
//! request may have changed before its connection serves another request.

use std::str::FromStr as _;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Result;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Executor as _;

/// How many distinct addresses may get a pool: guests choose addresses, so this is bounded.
const MAX_ADDRESSES: usize = 32;
/// How long a guest waits for a free pooled connection (or a new one) before failing, unless
/// `shop up --postgres-acquire-timeout` says otherwise: short, so that a server that is down
/// costs a request a second and a 503, not its whole deadline.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// The Postgres pools, one per distinct address, made on first use and kept.
///
/// Looking a pool up takes no lock: pools live in write-once slots filled in order.
pub struct PostgresPools {
    max_connections: u32,
    acquire_timeout: Duration,
    slots: [OnceLock<(Box<str>, PgPool)>; MAX_ADDRESSES],
    /// Serialises the making of new pools (never taken to look one up).
    making: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PostgresPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pools = self.slots.iter().map_while(|slot| slot.get());
        f.debug_struct("PostgresPools")
            .field("max_connections", &self.max_connections)
            .field("pools", &pools.count())
            .finish()
    }
}

impl PostgresPools {
    /// No pools yet; each pool made later holds at most `max_connections_per_pool` connections.
    pub fn new(max_connections_per_pool: u32) -> Self {
        Self {
            max_connections: max_connections_per_pool.max(1),
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            slots: std::array::from_fn(|_| OnceLock::new()),
            making: tokio::sync::Mutex::new(()),
        }
    }

    /// How long a request waits for a pooled connection (or for a new one to connect) before
    /// its statement fails, and the guest answers 503: past it the server is down or swamped.
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Checks that the pool of `address` answers a `SELECT 1`, if it has been made.
    pub async fn check_address(&self, address: &str) -> Result<()> {
        match self.find(address) {
            Some(pool) => sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map(drop)
                .map_err(Into::into),
            None => Ok(()),
        }
    }

    /// The pool of `address` (a `postgres://` URL), connecting it the first time.
    pub async fn pool(&self, address: &str) -> Result<PgPool, sqlx::Error> {
        if let Some(pool) = self.find(address) {
            return Ok(pool.clone());
        }
        let _making = self.making.lock().await;
        if let Some(pool) = self.find(address) {
            return Ok(pool.clone());
        }
        let Some(slot) = self.slots.iter().find(|slot| slot.get().is_none()) else {
            return Err(sqlx::Error::Configuration(
                format!("too many distinct Postgres addresses (at most {MAX_ADDRESSES})").into(),
            ));
        };
        // The server stops what a guest's statement, lock wait or idle transaction would hold
        // past its request's deadline, even when the host is gone. A guest may lower them for
        // its session; RESET ALL when its connection goes back brings these defaults back.
        let timeout = format!(
            "{}ms",
            crate::capabilities::bounds::get()
                .request_timeout
                .as_millis()
        );
        let options = PgConnectOptions::from_str(address)?.options([
            ("statement_timeout", timeout.as_str()),
            ("lock_timeout", timeout.as_str()),
            ("idle_in_transaction_session_timeout", timeout.as_str()),
            // The reset's ROLLBACK outside a transaction would warn in the log every request.
            ("client_min_messages", "error"),
        ]);
        // One direct attempt first: a wrong address or a server that is down fails at once,
        // where the pool would retry until its acquire timeout.
        let probe = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options);
        let probe = tokio::time::timeout(self.acquire_timeout, probe)
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        let _ = sqlx::Connection::close(probe).await;
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            // A returned connection is checked as it goes back; checking it again on every
            // acquire would add a round trip to every request.
            .test_before_acquire(false)
            // Several hosts share one server's connection limit: give back what sits idle.
            .idle_timeout(Some(std::time::Duration::from_secs(30)))
            .connect_lazy_with(options);
        let _ = slot.set((address.into(), pool.clone()));
        Ok(pool)
    }

    /// The pool of `address`, if it has been made.
    pub(crate) fn find(&self, address: &str) -> Option<&PgPool> {
        // Slots fill in order: the first empty one ends the search.
        self.slots
            .iter()
            .map_while(|slot| slot.get())
            .find(|(known, _)| **known == *address)
            .map(|(_, pool)| pool)
    }
}

/// A transaction left open rolled back, then what `DISCARD ALL` does but `DEALLOCATE ALL`:
/// sqlx's statement cache stays valid. Settings (`SET`, `set_config`), cursors, `LISTEN`,
/// advisory locks, temporary tables and cached sequence values go. One round trip, run after
/// every request's connection is given back (off the request's path).
const RESET_SESSION: &str = "ROLLBACK; CLOSE ALL; RESET ALL; UNLISTEN *; \
                             SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// Resets a connection before it returns to its pool; `false` (close it) when that fails.
pub(crate) async fn reset_session(conn: &mut sqlx::PgConnection) -> bool {
    match conn.execute(RESET_SESSION).await {
        Ok(_) => true,
        Err(error) => {
            tracing::debug!(%error, "resetting a pooled Postgres connection failed; closing it");
            false
        }
    }
}
