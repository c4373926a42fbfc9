//! A guest's connection resource: one pooled connection kept for the resource's whole life,
//! rolled back and reset in the background when the resource goes away.
//!
//! The statements themselves run in `host.rs`, which knows the interface's types: this module
//! is what the bindings name as the `connection` resource, so it does not use them.

use crate::capabilities::postgres::pools::reset_session;
use crate::capabilities::postgres::transactions::closes_transaction;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use sqlx::{Executor as _, Postgres};

/// A guest's open Postgres connection: the resource behind `spin:postgres`'s `connection`.
pub struct Connection {
    /// The pool of the component's own database, where the connection comes from.
    pub(crate) pool: PgPool,
    /// Taken from the pool on the first statement, kept until the resource is dropped.
    pub(crate) conn: Option<PoolConnection<Postgres>>,
    /// Set once a statement may have opened a transaction, cleared by a successful COMMIT.
    pub(crate) transaction_may_be_open: bool,
    /// Set once a statement may have left state in the session: it is reset before the
    /// connection serves another request. Plain queries and DML (every request of the shop)
    /// leave none, and cost no reset.
    pub(crate) session_may_change: bool,
}

impl Connection {
    /// A connection that takes one from `pool` on its first statement.
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            conn: None,
            transaction_may_be_open: false,
            session_may_change: false,
        }
    }

    /// Notes that `statement` succeeded: one that ends the transaction leaves none open.
    pub(crate) fn after_success(&mut self, statement: &str) {
        if closes_transaction(statement) {
            self.transaction_may_be_open = false;
        }
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
        let (rollback, reset) = (self.transaction_may_be_open, self.session_may_change);
        if !rollback && !reset {
            return; // dropping it returns it to the pool
        }
        runtime.spawn(async move {
            let mut conn = conn;
            // Outside a transaction ROLLBACK only warns; if it fails the connection is broken
            // and the pool's check on return closes it.
            if rollback {
                if let Err(error) = (&mut *conn).execute("ROLLBACK").await {
                    tracing::warn!(%error, "rolling back a dropped Postgres connection failed; closing it");
                    conn.close_on_drop();
                    return;
                }
            }
            // What one request set on its session must not reach the next request.
            if reset && !reset_session(&mut conn).await {
                conn.close_on_drop();
            }
        });
    }
}
