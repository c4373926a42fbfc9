//! The host interfaces a guest imports besides WASI and `wasi:http`, one module each: its
//! app-level state and checks, its per-instance view, its `Host` impl and its bindings.

pub mod outbound;
pub mod postgres;
pub mod sql_scan;
pub mod sqlite;
pub mod variables;

use std::sync::Arc;

use anyhow::Result;

use crate::config::database_url::DatabaseAddress;
use postgres::PostgresPools;
use sqlite::SqliteDatabases;

/// The databases every request may reach, shared by all stores.
#[derive(Clone)]
pub struct Databases {
    /// The SQLite files, by label.
    pub sqlite: Arc<SqliteDatabases>,
    /// The Postgres pools, by address.
    pub postgres: Arc<PostgresPools>,
}

impl Databases {
    /// Checks that the database at `address` (a SQLite label or a `postgres://` URL) answers.
    pub async fn check_address(&self, address: &str) -> Result<()> {
        match DatabaseAddress::parse(address) {
            DatabaseAddress::Postgres(url) => self.postgres.check_address(url).await,
            DatabaseAddress::Sqlite(label) => self.sqlite.check_label(label).await,
        }
    }
}
