//! A guest's connection resource: one pooled connection kept for the resource's whole life,
//! rolled back or reset in the background when the resource goes away (as far as its
//! statements may have left something), or closed (and its statement cancelled on the server)
//! when its request ended in the middle of a statement.
//!
//! The statements themselves run in `host.rs`, which knows the interface's types: this module
//! is what the bindings name as the `connection` resource, so it does not use them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::capabilities::postgres::pools::{
    reset_session, roll_back, Heal, Permit, ServicePool, SessionLocks,
};
use crate::capabilities::postgres::transactions::Effects;

use sqlx::pool::PoolConnection;
use sqlx::Postgres;

/// A guest's open Postgres connection: the resource behind `spin:postgres`'s `connection`.
pub struct Connection {
    /// The pool of the component's own database, where the connection comes from and goes
    /// back to; with its role's statement counters and whether it may take session locks.
    pub(crate) service: Arc<ServicePool>,
    /// What sets the role's password back if it was changed.
    pub(crate) heal: Option<Heal>,
    /// Taken from the pool on the first statement, kept until the resource is dropped.
    pub(crate) conn: Option<PoolConnection<Postgres>>,
    /// The permit that lets it hold `conn`, let go once `conn` is given back or closed.
    pub(crate) permit: Option<Permit>,
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
}

impl Connection {
    /// A connection that takes one from `service` on its first statement.
    pub(crate) fn new(service: Arc<ServicePool>, heal: Option<Heal>) -> Self {
        Self {
            service,
            heal,
            conn: None,
            permit: None,
            transaction_may_be_open: false,
            session_may_change: false,
            in_flight: None,
        }
    }

    /// Notes that a statement with `effects` succeeded: one that ends the transaction leaves
    /// none open.
    pub(crate) fn after_success(&mut self, effects: Effects) {
        if effects.closes_transaction {
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
async fn cancel_on_server(service: Arc<ServicePool>, statement: String, started: Instant) {
    let mut cancelled = CANCELLED.lock().await;
    let mut borrowed = match service.borrow().await {
        Ok(borrowed) => borrowed,
        Err(error) => {
            tracing::warn!(%error, "cannot cancel a statement that outlived its request");
            return;
        }
    };
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
    .fetch_optional(borrowed.conn())
    .await;
    if stopped.is_err() {
        borrowed.close();
    }
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
            runtime.spawn(cancel_on_server(self.service.clone(), statement, started));
            return;
        }
        let revoked = self.service.session_locks == SessionLocks::Revoked;
        if revoked && !self.session_may_change && !self.transaction_may_be_open {
            // Nothing of the request stays in the session: back to the service as it is.
            self.service.give_back(conn);
            return;
        }
        let whole = !revoked || self.session_may_change;
        let service = self.service.clone();
        // The permit stays taken until the reset is over.
        let permit = self.permit.take();
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
            if reset {
                service.give_back(conn);
            } else {
                conn.close_on_drop();
            }
            drop(permit);
        });
    }
}
