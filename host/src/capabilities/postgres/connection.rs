//! A guest's connection resource: one pooled connection kept for the resource's whole life,
//! rolled back or reset in the background when the resource goes away (as far as its
//! statements may have left something), or closed (and its statement cancelled on the server)
//! when its request ended in the middle of a statement.
//!
//! The statements themselves run in `host.rs`, which knows the interface's types: this module
//! is what the bindings name as the `connection` resource, so it does not use them.

use std::collections::VecDeque;
use std::time::Instant;

use crate::capabilities::postgres::pools::{reset_session, roll_back, Heal, SessionLocks};
use crate::capabilities::postgres::transactions::closes_transaction;

use crate::telemetry::{metrics, StatementCounters};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use sqlx::Postgres;

/// A guest's open Postgres connection: the resource behind `spin:postgres`'s `connection`.
pub struct Connection {
    /// The pool of the component's own database, where the connection comes from.
    pub(crate) pool: PgPool,
    /// That database's address, and what sets its role's password back if it was changed.
    pub(crate) address: String,
    pub(crate) heal: Option<Heal>,
    /// Taken from the pool on the first statement, kept until the resource is dropped.
    pub(crate) conn: Option<PoolConnection<Postgres>>,
    /// Set once a statement may have opened a transaction, cleared by a successful COMMIT.
    pub(crate) transaction_may_be_open: bool,
    /// Set once a statement may have left state in the session (by its words). Where the role
    /// may take session advisory locks, every connection gets the whole reset anyway (words
    /// cannot be trusted to tell: `SELECT "pg_advisory_lock"(1)` hides in quotes); where it may
    /// not, what a missed word leaves reaches only the service's own later requests.
    pub(crate) session_may_change: bool,
    /// The statement running now and when it started: still set when the resource goes means
    /// its request ended in the middle of it (a deadline, a client gone).
    pub(crate) in_flight: Option<(String, Instant)>,
    /// The database's statement counters, labelled with the address's role.
    pub(crate) statements: StatementCounters,
    /// Whether its role may take session advisory locks, which decides how it is reset.
    pub(crate) session_locks: SessionLocks,
}

impl Connection {
    /// A connection that takes one from `pool` on its first statement.
    pub(crate) fn new(
        pool: PgPool,
        address: String,
        heal: Option<Heal>,
        session_locks: SessionLocks,
    ) -> Self {
        let role = url::Url::parse(&address)
            .map(|url| url.username().to_owned())
            .unwrap_or_default();
        Self {
            statements: metrics().statements("postgres", &role),
            session_locks,
            pool,
            address,
            heal,
            conn: None,
            transaction_may_be_open: false,
            session_may_change: false,
            in_flight: None,
        }
    }

    /// Notes that `statement` succeeded: one that ends the transaction leaves none open.
    pub(crate) fn after_success(&mut self, statement: &str) {
        if closes_transaction(statement) {
            self.transaction_may_be_open = false;
        }
    }
}

/// The backends this host cancelled lately, newest last: statements that many requests left
/// at the same moment look alike, and each cancel must stop a different one.
static CANCELLED: tokio::sync::Mutex<VecDeque<i32>> =
    tokio::sync::Mutex::const_new(VecDeque::new());

/// How many cancelled backends are remembered.
const CANCELLED_KEPT: usize = 256;

/// Cancels, on the server, the statement a request left running when it ended: the service's
/// own backend that runs that text and started before it, not one this host cancelled lately
/// (cancels run one at a time, so that two never pick the same). Its role may cancel only its
/// own backends, so at worst this stops an identical statement of the same service that has
/// run at least as long.
async fn cancel_on_server(pool: PgPool, statement: String, started: Instant) {
    let mut cancelled = CANCELLED.lock().await;
    let ran_for = started.elapsed().as_secs_f64();
    let recent: Vec<i32> = cancelled.iter().copied().collect();
    let stopped = sqlx::query_scalar::<_, i32>(
        "SELECT pid FROM (\
           SELECT pid FROM pg_stat_activity \
           WHERE usename = current_user AND datname = current_database() \
           AND pid <> pg_backend_pid() AND state = 'active' AND query = $1 \
           AND query_start <= clock_timestamp() - make_interval(secs => $2) \
           AND NOT (pid = ANY($3)) \
           ORDER BY query_start LIMIT 1) AS running WHERE pg_cancel_backend(pid)",
    )
    .bind(&statement)
    .bind(ran_for * 0.9)
    .bind(&recent)
    .fetch_optional(&pool)
    .await;
    match stopped {
        Ok(Some(pid)) => {
            if cancelled.len() >= CANCELLED_KEPT {
                cancelled.pop_front();
            }
            cancelled.push_back(pid);
            tracing::debug!(pid, "a statement outlived its request");
        }
        Ok(None) => tracing::debug!("a statement outlived its request; none left to cancel"),
        Err(error) => tracing::warn!(%error, "cannot cancel a statement that outlived its request"),
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Without a runtime the pool cannot take it back: close it instead.
            drop(conn.detach());
            return;
        };
        if let Some((statement, started)) = self.in_flight.take() {
            // The connection is in the middle of a statement: it serves no one again, and the
            // server stops the statement (its own statement_timeout would, later).
            drop(conn.detach());
            let pool = self.pool.clone();
            runtime.spawn(cancel_on_server(pool, statement, started));
            return;
        }
        let revoked = self.session_locks == SessionLocks::Revoked;
        if revoked && !self.session_may_change && !self.transaction_may_be_open {
            // Nothing of the request stays in the session: back to the pool as it is.
            return;
        }
        let whole = !revoked || self.session_may_change;
        runtime.spawn(async move {
            let mut conn = conn;
            // What one request left in its session (a transaction, settings, advisory locks,
            // cursors, temporary tables) must not reach the next request. Where the role can
            // take no session advisory lock, a transaction left open is all another service
            // could meet (its transaction advisory locks): a ROLLBACK ends it.
            let reset = if whole {
                reset_session(&mut conn).await
            } else {
                roll_back(&mut conn).await
            };
            if !reset {
                conn.close_on_drop();
            }
        });
    }
}
