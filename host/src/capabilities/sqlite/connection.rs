//! A guest's connection resource: the pooled connection it holds for its whole life (a
//! transaction spread over several `execute` calls runs on one database connection), and the
//! counters it answers for. Its statements run in `host.rs`, where the WIT types live.

use crate::capabilities::sqlite::pool::{GuestPool, PooledConnection};

/// A guest's open SQLite connection: the resource behind `spin:sqlite`'s `connection`. When it
/// goes, its pooled connection goes back to the pool with any transaction it left rolled back.
pub struct Connection {
    /// The database's guest pool, which the first statement takes a connection from.
    pub(super) pool: GuestPool,
    /// Taken from the pool on the first statement, kept until the resource is dropped.
    pub(super) conn: Option<PooledConnection>,
    /// The rowid of this resource's last successful INSERT, as `last-insert-rowid` answers.
    pub(super) last_insert_rowid: i64,
    /// The rows this resource's last INSERT, UPDATE or DELETE changed, as `changes` answers.
    pub(super) changes: u64,
    /// When its request must be over: its statements stop then.
    pub(super) deadline: std::time::Instant,
}

impl Connection {
    /// A resource on `pool`, holding no connection until its first statement.
    pub(super) fn new(pool: GuestPool, deadline: std::time::Instant) -> Self {
        Self {
            pool,
            conn: None,
            last_insert_rowid: 0,
            changes: 0,
            deadline,
        }
    }

    /// Whether the resource's connection is inside a transaction.
    #[cfg(test)]
    pub(super) fn in_transaction(&self) -> bool {
        self.conn.as_ref().is_some_and(|conn| conn.in_transaction())
    }
}
