//! The databases every request may reach, shared by all stores: the SQLite files and the
//! Postgres pools.

use std::sync::Arc;

use anyhow::Result;

use crate::capabilities::postgres::PostgresPools;
use crate::capabilities::sqlite::SqliteDatabases;
use crate::config::component::ComponentConfig;
use crate::config::database_url::DatabaseAddress;
use crate::telemetry::PoolUsage;

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

    /// How full the pool of `component`'s own database is, once it has one.
    pub fn pool_usage(&self, component: &ComponentConfig) -> Option<PoolUsage> {
        if let Some(pool) = component
            .sqlite_databases
            .first()
            .and_then(|label| self.sqlite.pool(label))
        {
            return Some(PoolUsage {
                engine: "sqlite",
                size: pool.size(),
                idle: pool.num_idle(),
            });
        }
        let service = self
            .postgres
            .find(component.postgres_database.as_deref()?)?;
        Some(PoolUsage {
            engine: "postgres",
            size: service.pool.size(),
            idle: service.num_idle(),
        })
    }
}
