//! Giving each service its own Postgres schema and applying its migrations there, at start.
//!
//! A component's migrations live in `migrations/<component id>/postgres/` next to the manifest,
//! in sqlx's format. Each service gets the schema named after it, reached through the
//! connection option `-c search_path=<id>`, so the same unqualified SQL runs on both engines and
//! sqlx's `_sqlx_migrations` table is per service too.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;

use crate::config::database_url::search_path;

/// How long start-up waits for Postgres to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a Postgres URL points, for error messages: `host:port/database`.
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{} (user `{}`)",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username()),
        options.get_username()
    )
}

/// Opens one connection to `url`, with an error that says where and what to do.
pub async fn connect_postgres(url: &str) -> Result<PgConnection> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|err| anyhow::anyhow!("invalid Postgres URL: {err}"))?;
    let connect = PgConnection::connect_with(&options);
    let outcome = tokio::time::timeout(CONNECT_TIMEOUT, connect).await;
    let where_ = describe(&options);
    match outcome {
        Ok(Ok(conn)) => Ok(conn),
        // A certificate refused in the handshake comes as an I/O error of kind InvalidData.
        Ok(Err(sqlx::Error::Tls(err))) => bail!(
            "cannot make a TLS connection to Postgres at {where_} ({}{}): {err}. {}",
            ssl_mode_name(options.get_ssl_mode()),
            ssl_root_cert(url)
                .map(|file| format!(", sslrootcert={file}"))
                .unwrap_or_default(),
            crate::config::database_url::TLS_ADVICE
        ),
        Ok(Err(sqlx::Error::Io(err)))
            if err.kind() == std::io::ErrorKind::InvalidData
                && !matches!(options.get_ssl_mode(), sqlx::postgres::PgSslMode::Disable) =>
        {
            bail!(
                "cannot make a TLS connection to Postgres at {where_} ({}): {err}. {}",
                ssl_mode_name(options.get_ssl_mode()),
                crate::config::database_url::TLS_ADVICE
            )
        }
        Ok(Err(sqlx::Error::Io(err))) if ssl_root_cert(url).is_some() => bail!(
            "cannot connect to Postgres at {where_}: {err} (is sslrootcert={} readable?). Fix the \
             path, or start Postgres there",
            ssl_root_cert(url).unwrap_or_default()
        ),
        Ok(Err(err)) => bail!(
            "cannot connect to Postgres at {where_}: {err}. Start Postgres there (and create the database), or fix --database-url"
        ),
        Err(_) => bail!(
            "Postgres at {where_} did not answer within {}s. Check that it runs and is reachable, or fix --database-url",
            CONNECT_TIMEOUT.as_secs()
        ),
    }
}

/// libpq's name of an `sslmode`.
fn ssl_mode_name(mode: sqlx::postgres::PgSslMode) -> &'static str {
    use sqlx::postgres::PgSslMode;
    match mode {
        PgSslMode::Disable => "sslmode=disable",
        PgSslMode::Allow => "sslmode=allow",
        PgSslMode::Prefer => "sslmode=prefer",
        PgSslMode::Require => "sslmode=require",
        PgSslMode::VerifyCa => "sslmode=verify-ca",
        PgSslMode::VerifyFull => "sslmode=verify-full",
    }
}

/// The `sslrootcert` a URL names, if any.
fn ssl_root_cert(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "sslrootcert")
        .map(|(_, value)| value.into_owned())
}

/// Creates the schema of a `search_path` URL if needed, then applies `dir`'s migrations there.
pub async fn migrate_postgres(component: &str, url: &str, dir: &Path) -> Result<()> {
    let mut conn = connect_postgres(url).await?;
    if let Some(schema) = search_path(url) {
        // A service's own role may not create schemas: its schema is made for it (see
        // `provision`); only an older shared login gets here without one.
        create_schema(&mut conn, &schema)
            .await
            .with_context(|| format!("creating the Postgres schema of component `{component}`"))?;
    }
    if !dir.is_dir() {
        tracing::warn!(component, dir = %dir.display(), "no Postgres migrations");
        return Ok(());
    }
    let mut migrator = Migrator::new(dir)
        .await
        .with_context(|| format!("reading the migrations in {}", dir.display()))?;
    // Hosts starting together apply a service's migrations one at a time. sqlx's own locking
    // takes a session advisory lock, which provisioning revokes from the services' roles
    // (`provision.rs`): the lock here is a transaction advisory lock, held by a second
    // connection's transaction for the whole run.
    migrator.set_locking(false);
    let turn = HeldLock::take(url, lock_key(&format!("shop-migrations:{component}")))
        .await
        .with_context(|| format!("waiting for the migrations of component `{component}`"))?;
    migrator.run(&mut conn).await.with_context(|| {
        format!(
            "applying the Postgres migrations of component `{component}` from {}",
            dir.display()
        )
    })?;
    turn.release().await;
    conn.close().await.ok();
    Ok(())
}

/// A transaction advisory lock held by a transaction on a connection of its own, for as long as
/// some work elsewhere takes: that work is then serialized with every other holder's, across
/// hosts. Session advisory locks, which would need no transaction, are revoked from PUBLIC at
/// provisioning (`provision.rs`), and only a superuser operator keeps them.
pub(crate) struct HeldLock(PgConnection);

impl HeldLock {
    /// Connects to `url` and waits for the lock `key`.
    pub(crate) async fn take(url: &str, key: i64) -> Result<Self> {
        let mut conn = connect_postgres(url).await?;
        sqlx::query("BEGIN").execute(&mut conn).await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut conn)
            .await?;
        Ok(Self(conn))
    }

    /// Ends the transaction, and with it the lock.
    pub(crate) async fn release(mut self) {
        let _ = sqlx::query("COMMIT").execute(&mut self.0).await;
        let _ = self.0.close().await;
    }
}

/// A lock key for `name`, the same in every host (the first 8 bytes of its SHA-256).
fn lock_key(name: &str) -> i64 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(name.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Creates `schema` unless it exists, tolerant of another host creating it at the same moment.
async fn create_schema(conn: &mut PgConnection, schema: &str) -> Result<()> {
    // Looked up first: `CREATE SCHEMA IF NOT EXISTS` needs the CREATE right even when the
    // schema is there, and a service's role has none.
    let exists = sqlx::query("SELECT 1 FROM pg_namespace WHERE nspname = $1")
        .bind(schema)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    let statement = format!(
        "CREATE SCHEMA IF NOT EXISTS \"{}\"",
        schema.replace('"', "\"\"")
    );
    match sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
        .execute(&mut *conn)
        .await
    {
        Ok(_) => Ok(()),
        // Two creators racing: `IF NOT EXISTS` does not cover the catalogue's unique index.
        Err(sqlx::Error::Database(err))
            if matches!(err.code().as_deref(), Some("42P06") | Some("23505")) =>
        {
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}
