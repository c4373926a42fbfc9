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

/// Sets a service role's login back when it fails (the role changed its own password): given
/// the address that failed, answers whether it set something, after which one retry is worth it.
pub type Heal =
    std::sync::Arc<dyn Fn(String) -> futures_util::future::BoxFuture<'static, bool> + Send + Sync>;

/// Whether `error` is the server refusing the login's password (SQLSTATE 28P01).
fn is_bad_password(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "28P01")
}

/// A connection of `pool` (for `address`), healing a refused password once through `heal`.
pub(crate) async fn acquire(
    pool: &PgPool,
    address: &str,
    heal: Option<&Heal>,
) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, sqlx::Error> {
    match pool.acquire().await {
        Err(error) if is_bad_password(&error) => match heal {
            Some(heal) if heal(address.to_owned()).await => pool.acquire().await,
            _ => Err(error),
        },
        other => other,
    }
}

/// The Postgres pools, one per distinct address, made on first use and kept.
///
/// Looking a pool up takes no lock: pools live in write-once slots filled in order.
pub struct PostgresPools {
    max_connections: u32,
    acquire_timeout: Duration,
    slots: [OnceLock<(Box<str>, PgPool, SessionLocks)>; MAX_ADDRESSES],
    /// Serialises the making of new pools (never taken to look one up).
    making: tokio::sync::Mutex<()>,
    /// Sets a service role's password back, when the host provisioned the roles.
    heal: Option<Heal>,
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
            heal: None,
        }
    }

    /// Sets a service role's password back through `heal` when the server refuses it: a
    /// compromised service that changed its own password locks itself out only until then.
    pub fn with_heal(mut self, heal: Heal) -> Self {
        self.heal = Some(heal);
        self
    }

    /// What sets a service role's password back, if anything.
    pub(crate) fn heal(&self) -> Option<&Heal> {
        self.heal.as_ref()
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
        let mut probe = match tokio::time::timeout(self.acquire_timeout, probe).await {
            Err(_) => return Err(sqlx::Error::PoolTimedOut),
            Ok(Err(error)) if is_bad_password(&error) => match &self.heal {
                Some(heal) if heal(address.to_owned()).await => {
                    <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await?
                }
                _ => return Err(error),
            },
            Ok(outcome) => outcome?,
        };
        let session_locks = session_locks(&mut probe).await;
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
        let _ = slot.set((address.into(), pool.clone(), session_locks));
        Ok(pool)
    }

    /// The pool of `address`, if it has been made.
    pub(crate) fn find(&self, address: &str) -> Option<&PgPool> {
        // Slots fill in order: the first empty one ends the search.
        self.slots
            .iter()
            .map_while(|slot| slot.get())
            .find(|(known, _, _)| **known == *address)
            .map(|(_, pool, _)| pool)
    }

    /// Whether the role of `address` may take session advisory locks (unknown: may).
    pub(crate) fn session_locks(&self, address: &str) -> SessionLocks {
        self.slots
            .iter()
            .map_while(|slot| slot.get())
            .find(|(known, _, _)| **known == *address)
            .map_or(SessionLocks::Granted, |(_, _, locks)| *locks)
    }
}

/// A transaction left open rolled back, then what `DISCARD ALL` does but `DEALLOCATE ALL`:
/// sqlx's statement cache stays valid. Settings (`SET`, `set_config`), cursors, `LISTEN`,
/// advisory locks, temporary tables and cached sequence values go. One round trip, run after
/// every request's connection is given back (off the request's path).
const RESET_SESSION: &str = "ROLLBACK; CLOSE ALL; RESET ALL; UNLISTEN *; \
                             SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// Whether a service's role may take advisory locks that outlive a transaction: such a lock is
/// database-wide (another service's keys included) and survives the request that took it unless
/// the session is reset. Provisioning revokes those functions from PUBLIC where it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionLocks {
    /// The role may: every connection is reset after every request.
    Granted,
    /// It may not: what a request leaves reaches only the service's own later requests, so a
    /// connection is reset only where its statements may have left a transaction (ROLLBACK) or
    /// session state (the whole reset).
    Revoked,
}

/// What the role behind `conn` may do with session advisory locks.
async fn session_locks(conn: &mut sqlx::PgConnection) -> SessionLocks {
    let granted: Result<bool, _> = sqlx::query_scalar(
        "SELECT coalesce(bool_or(has_function_privilege(p.oid, 'EXECUTE')), false) \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'pg_catalog' AND p.proname IN ('pg_advisory_lock', \
         'pg_advisory_lock_shared', 'pg_try_advisory_lock', 'pg_try_advisory_lock_shared')",
    )
    .fetch_one(conn)
    .await;
    match granted {
        Ok(false) => SessionLocks::Revoked,
        _ => SessionLocks::Granted,
    }
}

/// Rolls back what a request left open; `false` (close it) when that fails.
pub(crate) async fn roll_back(conn: &mut sqlx::PgConnection) -> bool {
    conn.execute("ROLLBACK").await.is_ok()
}

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
