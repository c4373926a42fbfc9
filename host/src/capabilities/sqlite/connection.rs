//! A guest's connection resource: the pooled connection it holds for its whole life, and the
//! rollback when it goes away. Its statements run in `host.rs`, where the WIT types live.

use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqlitePool;
use sqlx::{Executor as _, Sqlite};

/// A guest's open SQLite connection: the resource behind `spin:sqlite`'s `connection`.
pub struct Connection {
    /// The database's pool, which the first statement takes a connection from.
    pub(super) pool: SqlitePool,
    /// Taken from the pool on the first statement, kept until the resource is dropped.
    pub(super) conn: Option<PoolConnection<Sqlite>>,
    /// Set once a statement may have opened a transaction, cleared by a successful COMMIT.
    pub(super) transaction_may_be_open: bool,
    /// The rowid of this resource's last successful INSERT, as `last-insert-rowid` answers.
    pub(super) last_insert_rowid: i64,
    /// The rows this resource's last INSERT, UPDATE or DELETE changed, as `changes` answers.
    pub(super) changes: u64,
}

impl Connection {
    /// A resource on `pool`, holding no connection until its first statement.
    pub(super) fn new(pool: SqlitePool) -> Self {
        Self {
            pool,
            conn: None,
            transaction_may_be_open: false,
            last_insert_rowid: 0,
            changes: 0,
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
        if !self.transaction_may_be_open {
            return; // dropping it returns it to the pool
        }
        runtime.spawn(async move {
            let mut conn = conn;
            if let Err(error) = (&mut *conn).execute("ROLLBACK").await {
                let no_transaction = error
                    .as_database_error()
                    .is_some_and(|e| e.message().contains("no transaction is active"));
                if !no_transaction {
                    tracing::warn!(%error, "rolling back a dropped SQLite connection failed; closing it");
                    conn.close_on_drop();
                }
            }
        });
    }
}
