//! The app's Postgres pools, one per distinct address, and the reset of a session that a
//! request may have changed before its connection serves another request.

use std::str::FromStr as _;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Executor as _, Postgres};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::telemetry::{metrics, StatementCounters};

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
async fn acquire(
    pool: &PgPool,
    address: &str,
    heal: Option<&Heal>,
) -> Result<PoolConnection<Postgres>, sqlx::Error> {
    match pool.acquire().await {
        Err(error) if is_bad_password(&error) => match heal {
            Some(heal) if heal(address.to_owned()).await => pool.acquire().await,
            _ => Err(error),
        },
        other => other,
    }
}

/// How long a connection a request gave back stays with its service before it goes back to
/// sqlx's pool (which closes what sits idle there).
const KEPT_IDLE: Duration = Duration::from_secs(10);

/// One address's pool, with what is known of its role from the moment it was made, and the
/// connections requests gave back clean.
///
/// sqlx's pool checks every connection given back to it with a round trip to the server (its
/// "ping"), a wake-up of the server's backend for every request of every service. A connection
/// whose request left nothing in its session (or whose reset succeeded) is therefore kept
/// here, out of sqlx's hands, for the next request of the same service; one whose request
/// ended in the middle of a statement is closed instead (`connection.rs`), which is the case
/// that ping guards against. Requests wait for a permit of the service's own (as many as its
/// connections), not in sqlx's pool, which never gets the kept connections back and so could
/// not hand them on.
pub(crate) struct ServicePool {
    /// The `postgres://` URL: the service's role and database.
    pub(crate) address: Box<str>,
    pub(crate) pool: PgPool,
    /// Whether the role may take session advisory locks, which decides how it is reset.
    pub(crate) session_locks: SessionLocks,
    /// Its statement counters, labelled with the role.
    pub(crate) statements: StatementCounters,
    /// One per connection a request may hold at once.
    permits: Arc<Semaphore>,
    /// How long a request waits for a permit.
    acquire_timeout: Duration,
    /// Connections given back, newest last, with when.
    kept: Mutex<Kept>,
}

/// Connections given back to a service, newest last, with when.
type Kept = Vec<(PoolConnection<Postgres>, Instant)>;

/// A request's right to hold one of its service's connections, given back with it.
pub(crate) type Permit = OwnedSemaphorePermit;

impl ServicePool {
    fn new(
        address: &str,
        pool: PgPool,
        session_locks: SessionLocks,
        connections: u32,
        acquire_timeout: Duration,
    ) -> Self {
        let role = url::Url::parse(address)
            .map(|url| url.username().to_owned())
            .unwrap_or_default();
        Self {
            address: address.into(),
            pool,
            session_locks,
            statements: metrics().statements("postgres", &role),
            permits: Arc::new(Semaphore::new(connections as usize)),
            acquire_timeout,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// A connection for a request, and its permit: the connection given back last, or one of
    /// sqlx's pool (healing a refused password once through `heal`).
    pub(crate) async fn acquire(
        &self,
        heal: Option<&Heal>,
    ) -> Result<(PoolConnection<Postgres>, Permit), sqlx::Error> {
        let permit =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
                .map_err(|_| sqlx::Error::PoolClosed)?;
        // A connection is given back before its permit: with a permit, either one is kept or
        // sqlx's pool, which counts the kept ones as taken, has room for one more.
        let conn = match self.take_kept() {
            Some(conn) => conn,
            None => acquire(&self.pool, &self.address, heal).await?,
        };
        Ok((conn, permit))
    }

    /// The connections given back, newest last, with when.
    fn kept(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a connection whose session holds nothing of its request for the next request
    /// (whose permit the caller then drops), and lets go of those idle too long, under one
    /// lock.
    pub(crate) fn give_back(&self, conn: PoolConnection<Postgres>) {
        let stale = {
            let mut kept = self.kept();
            kept.push((conn, Instant::now()));
            take_stale(&mut kept)
        };
        // Given back to sqlx's pool outside the lock.
        drop(stale);
    }

    /// Gives the connections kept longer than [`KEPT_IDLE`] back to sqlx's pool, which closes
    /// those that stay idle there.
    fn let_go_of_idle(&self) {
        let stale = take_stale(&mut self.kept());
        drop(stale);
    }

    /// Lets go of idle kept connections every [`KEPT_IDLE`] while the pool lives, so that a
    /// service that gets no more requests holds no connection of the server's for long.
    fn let_go_of_idle_in_background(service: &Arc<Self>) {
        let service = Arc::downgrade(service);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEPT_IDLE).await;
                match service.upgrade() {
                    Some(service) => service.let_go_of_idle(),
                    None => return,
                }
            }
        });
    }

    /// The connection given back last, if one was lately.
    fn take_kept(&self) -> Option<PoolConnection<Postgres>> {
        let mut kept = self.kept();
        let (conn, since) = kept.pop()?;
        if since.elapsed() > KEPT_IDLE {
            // Idle too long (the server may have let it go), and all the others are older.
            let stale = std::mem::take(&mut *kept);
            drop(kept);
            drop((conn, stale));
            return None;
        }
        Some(conn)
    }

    /// A connection for the host's own statement (the health check, a cancel), taken and
    /// given back as a request's is: sqlx's pool alone may have none to give while the service
    /// keeps them.
    pub(crate) async fn borrow(&self) -> Result<Borrowed<'_>, sqlx::Error> {
        let (conn, permit) = self.acquire(None).await?;
        Ok(Borrowed {
            service: self,
            conn: Some(conn),
            permit: Some(permit),
        })
    }

    /// Checks that the database answers a `SELECT 1`. A kept connection the server let go of
    /// since (a restart, an idle timeout) does not make it fail: that one is closed and the
    /// server asked again through a new one.
    pub(crate) async fn check(&self) -> Result<(), sqlx::Error> {
        let mut borrowed = self.borrow().await?;
        if borrowed.conn().execute("SELECT 1").await.is_ok() {
            return Ok(());
        }
        let permit = borrowed.close();
        let conn = acquire(&self.pool, &self.address, None).await?;
        let mut borrowed = Borrowed {
            service: self,
            conn: Some(conn),
            permit,
        };
        match borrowed.conn().execute("SELECT 1").await {
            Ok(_) => Ok(()),
            Err(error) => {
                borrowed.close();
                Err(error)
            }
        }
    }

    /// How many connections sit idle: in sqlx's pool or kept here.
    pub(crate) fn num_idle(&self) -> usize {
        self.pool.num_idle() + self.kept().len()
    }
}

/// Takes the connections kept longer than [`KEPT_IDLE`] out of `kept` (the oldest are first).
fn take_stale(kept: &mut Kept) -> Kept {
    let now = Instant::now();
    let stale = kept
        .iter()
        .take_while(|(_, since)| now.duration_since(*since) > KEPT_IDLE)
        .count();
    kept.drain(..stale).collect()
}

/// A connection the host borrowed from a service, with its permit: given back to the service
/// when dropped, unless closed.
pub(crate) struct Borrowed<'a> {
    service: &'a ServicePool,
    /// Held until closed or dropped.
    conn: Option<PoolConnection<Postgres>>,
    permit: Option<Permit>,
}

impl Borrowed<'_> {
    /// The connection, to run statements on.
    pub(crate) fn conn(&mut self) -> &mut sqlx::PgConnection {
        self.conn
            .as_deref_mut()
            .expect("a borrowed connection is held until it is closed")
    }

    /// Closes the connection (it failed: it serves no one again), handing its permit over.
    pub(crate) fn close(mut self) -> Option<Permit> {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
        self.permit.take()
    }
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        // The connection goes back before the permit (dropped after this) lets another take it.
        if let Some(conn) = self.conn.take() {
            self.service.give_back(conn);
        }
    }
}

/// The Postgres pools, one per distinct address, made on first use and kept.
///
/// Looking a pool up takes no lock: pools live in write-once slots filled in order.
pub struct PostgresPools {
    max_connections: u32,
    acquire_timeout: Duration,
    slots: [OnceLock<Arc<ServicePool>>; MAX_ADDRESSES],
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
            Some(service) => service.check().await.map_err(Into::into),
            None => Ok(()),
        }
    }

    /// The pool of `address` (a `postgres://` URL), connecting it the first time.
    pub(crate) async fn pool(&self, address: &str) -> Result<Arc<ServicePool>, sqlx::Error> {
        if let Some(service) = self.find(address) {
            return Ok(service.clone());
        }
        let _making = self.making.lock().await;
        if let Some(service) = self.find(address) {
            return Ok(service.clone());
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
            // Requests wait for the service's permits (`ServicePool`), one per connection.
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            // A returned connection is checked as it goes back; checking it again on every
            // acquire would add a round trip to every request.
            .test_before_acquire(false)
            // Several hosts share one server's connection limit: give back what sits idle.
            .idle_timeout(Some(std::time::Duration::from_secs(30)))
            .connect_lazy_with(options);
        let service = Arc::new(ServicePool::new(
            address,
            pool,
            session_locks,
            self.max_connections,
            self.acquire_timeout,
        ));
        ServicePool::let_go_of_idle_in_background(&service);
        let _ = slot.set(service.clone());
        Ok(service)
    }

    /// The pool of `address`, if it has been made.
    pub(crate) fn find(&self, address: &str) -> Option<&Arc<ServicePool>> {
        // Slots fill in order: the first empty one ends the search.
        self.slots
            .iter()
            .map_while(|slot| slot.get())
            .find(|service| *service.address == *address)
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
