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
        Ok(Err(err)) => bail!(
            "cannot connect to Postgres at {where_}: {err}. Start Postgres there (and create the database), or fix --database-url"
        ),
        Err(_) => bail!(
            "Postgres at {where_} did not answer within {}s. Check that it runs and is reachable, or fix --database-url",
            CONNECT_TIMEOUT.as_secs()
        ),
    }
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
    let migrator = Migrator::new(dir)
        .await
        .with_context(|| format!("reading the migrations in {}", dir.display()))?;
    migrator.run(&mut conn).await.with_context(|| {
        format!(
            "applying the Postgres migrations of component `{component}` from {}",
            dir.display()
        )
    })?;
    conn.close().await.ok();
    Ok(())
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
