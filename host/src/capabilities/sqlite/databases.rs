//! The app's SQLite databases: per label of the runtime config, the guests' pool of connections
//! and an sqlx pool for the host's own statements (migrations, health checks), every connection
//! confined to its file when it is opened.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::capabilities::sqlite::authorizer::confine;
use crate::capabilities::sqlite::pool::GuestPool;
use crate::capabilities::sqlite::raw::BUSY_TIMEOUT;

/// The guests' connections per database file: WAL lets readers run beside the one writer.
pub(super) const POOL_SIZE: u32 = 16;
/// The host's own connections per database file: migrations at start, health checks.
const HOST_POOL_SIZE: u32 = 2;
/// How long a host statement waits for a free pooled connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The app's SQLite databases, by label.
#[derive(Debug)]
pub struct SqliteDatabases {
    pools: HashMap<String, SqlitePool>,
    guests: HashMap<String, GuestPool>,
}

impl SqliteDatabases {
    /// Opens (creating if missing, with their folders) the database file of every label.
    pub async fn open(paths: HashMap<String, PathBuf>) -> Result<Self> {
        Self::open_with_pool_size(paths, POOL_SIZE).await
    }

    /// [`Self::open`] with `pool_size` guest connections per database.
    async fn open_with_pool_size(paths: HashMap<String, PathBuf>, pool_size: u32) -> Result<Self> {
        crate::capabilities::sqlite::raw::init_library().map_err(anyhow::Error::msg)?;
        let mut pools = HashMap::with_capacity(paths.len());
        let mut guests = HashMap::with_capacity(paths.len());
        for (label, path) in paths {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!(
                        "cannot create the folder {} of SQLite database `{label}`",
                        dir.display()
                    )
                })?;
            }
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(BUSY_TIMEOUT)
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(HOST_POOL_SIZE)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                // A returned connection is checked when it goes back; checking it again on
                // every acquire would cost a round trip to its worker thread per request.
                .test_before_acquire(false)
                // After sqlx's own PRAGMAs (WAL, busy timeout, foreign keys), before any use.
                .after_connect(|conn, _| Box::pin(confine(conn)))
                .connect_with(options)
                .await
                .with_context(|| {
                    format!(
                        "cannot open SQLite database `{label}` at {}",
                        path.display()
                    )
                })?;
            // Opened after the sqlx pool, which made the file and set WAL on it.
            guests.insert(label.clone(), GuestPool::new(&label, path, pool_size));
            pools.insert(label, pool);
        }
        Ok(Self { pools, guests })
    }

    /// The host's pool of database `label` (migrations, checks), if the runtime config
    /// declares it.
    pub fn pool(&self, label: &str) -> Option<&SqlitePool> {
        self.pools.get(label)
    }

    /// The guests' pool of database `label`, if the runtime config declares it.
    pub(super) fn guest_pool(&self, label: &str) -> Option<&GuestPool> {
        self.guests.get(label)
    }

    /// Checks that the database of `label` answers, if it is open.
    pub async fn check_label(&self, label: &str) -> Result<()> {
        match self.pools.get(label) {
            Some(pool) => sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map(drop)
                .map_err(Into::into),
            None => Ok(()),
        }
    }

    /// Checks that every database answers a `SELECT 1`.
    #[cfg(test)]
    pub async fn check(&self) -> Result<()> {
        for (label, pool) in &self.pools {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .with_context(|| format!("SQLite database `{label}` does not answer"))?;
        }
        Ok(())
    }
}

/// Databases in a temp folder, for this file's tests and the other SQLite modules' tests.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) use crate::capabilities::sqlite::temp_dir::TempDir;

    /// `products`, in a nested folder that opening it creates.
    pub(crate) async fn databases(dir: &TempDir) -> SqliteDatabases {
        let path = dir.0.join("nested/folder/products.db");
        let databases =
            SqliteDatabases::open(HashMap::from([("products".to_string(), path.clone())]))
                .await
                .unwrap();
        assert!(path.exists());
        databases
    }

    /// `products`, and `accounts` (another service's file, holding a `users` table), with
    /// `pool_size` connections each.
    pub(crate) async fn two_databases(dir: &TempDir, pool_size: u32) -> SqliteDatabases {
        let paths = HashMap::from([
            ("products".to_string(), dir.0.join("products.db")),
            ("accounts".to_string(), dir.0.join("accounts.db")),
        ]);
        let databases = SqliteDatabases::open_with_pool_size(paths, pool_size)
            .await
            .unwrap();
        let accounts = databases.pool("accounts").unwrap();
        sqlx::raw_sql("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('alice')")
            .execute(accounts)
            .await
            .unwrap();
        databases
    }

    #[tokio::test]
    async fn open_creates_the_folders_and_checks_answer() {
        let dir = TempDir::new();
        let databases = databases(&dir).await;
        assert!(databases.pool("products").is_some());
        assert!(databases.pool("orders").is_none());
        databases.check_label("products").await.unwrap();
        // A label the runtime config does not declare has nothing to check.
        databases.check_label("orders").await.unwrap();
        databases.check().await.unwrap();
    }

    #[tokio::test]
    async fn the_services_migrations_run_on_confined_connections() {
        let dir = TempDir::new();
        let migrations = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let services = ["accounts", "cart", "orders", "products"];
        let paths = services
            .iter()
            .map(|service| (service.to_string(), dir.0.join(format!("{service}.db"))))
            .collect();
        let databases = SqliteDatabases::open(paths).await.unwrap();
        for service in services {
            let pool = databases.pool(service).unwrap();
            let dir = migrations.join(service).join("sqlite");
            assert!(dir.is_dir(), "{dir:?}");
            // Twice: the second run reads what the first recorded.
            for _ in 0..2 {
                crate::capabilities::sqlite::migrate::migrate_sqlite(service, pool, &dir)
                    .await
                    .unwrap_or_else(|e| panic!("{service}: {e:#}"));
            }
        }
        databases.check().await.unwrap();
    }
}
