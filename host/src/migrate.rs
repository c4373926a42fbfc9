//! Applying each service's migrations at start, and giving each service its own Postgres schema.
//!
//! A component's migrations live in `migrations/<component id>/{sqlite,postgres}/` next to the
//! manifest, in sqlx's format. On Postgres each service gets the schema named after it, reached
//! through the connection option `-c search_path=<id>`, so the same unqualified SQL runs on
//! both engines and sqlx's `_sqlx_migrations` table is per service too.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, SqlitePool};

/// How long start-up waits for Postgres to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Query-string characters left as they are: RFC 3986's unreserved set.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Checks a `--database-url`: it must be a `postgres://` or `postgresql://` URL.
pub fn check_database_url(url: &str) -> Result<()> {
    if !shop_database_address::is_postgres_url(url) {
        bail!("--database-url must be a postgres:// or postgresql:// URL, got `{url}`");
    }
    PgConnectOptions::from_str(url)
        .map(drop)
        .map_err(|err| anyhow::anyhow!("--database-url `{url}` is not a valid Postgres URL: {err}"))
}

/// The URL of `base` with `-c search_path=<schema>` added to its `options` parameter.
pub fn with_search_path(base: &str, schema: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((head, query)) => (head, query),
        None => (base, ""),
    };
    let search_path = format!("-c search_path={schema}");
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match pairs.iter_mut().find(|(key, _)| key == "options") {
        Some((_, options)) => {
            options.push(' ');
            options.push_str(&search_path);
        }
        None => pairs.push(("options".to_string(), search_path)),
    }
    let query = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, QUERY_VALUE),
                utf8_percent_encode(v, QUERY_VALUE)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{head}?{query}")
}

/// The schema a URL's `options=-c search_path=...` selects, if any (its first entry).
pub fn search_path(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    let options = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "options")
        .map(|(_, value)| value.into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut words = options.split_whitespace();
    let mut found = None;
    while let Some(word) = words.next() {
        let setting = match word {
            "-c" => words.next().unwrap_or_default(),
            other => other.strip_prefix("-c").unwrap_or(other),
        };
        let setting = setting.strip_prefix("--").unwrap_or(setting);
        if let Some(value) = setting.strip_prefix("search_path=") {
            let first = value.split(',').next().unwrap_or_default().trim();
            let first = first.trim_matches('"');
            if !first.is_empty() {
                found = Some(first.to_string());
            }
        }
    }
    found
}

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
    match sqlx::query(&statement).execute(&mut *conn).await {
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

/// Applies `dir`'s migrations to a SQLite database.
pub async fn migrate_sqlite(component: &str, pool: &SqlitePool, dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        tracing::warn!(component, dir = %dir.display(), "no SQLite migrations");
        return Ok(());
    }
    let migrator = Migrator::new(dir)
        .await
        .with_context(|| format!("reading the migrations in {}", dir.display()))?;
    migrator.run(pool).await.with_context(|| {
        format!(
            "applying the SQLite migrations of component `{component}` from {}",
            dir.display()
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_options_to_a_bare_url() {
        assert_eq!(
            with_search_path("postgres://postgres@127.0.0.1:5432/test", "products"),
            "postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3Dproducts"
        );
    }

    #[test]
    fn merges_with_an_existing_query() {
        let url = with_search_path(
            "postgres://u@h/db?sslmode=disable&options=-c%20statement_timeout%3D5000",
            "carts",
        );
        assert_eq!(
            url,
            "postgres://u@h/db?sslmode=disable&options=-c%20statement_timeout%3D5000%20-c%20search_path%3Dcarts"
        );
        assert_eq!(search_path(&url).as_deref(), Some("carts"));
    }

    #[test]
    fn reads_the_search_path_back() {
        assert_eq!(
            search_path("postgres://h/db?options=-c%20search_path%3Dproducts").as_deref(),
            Some("products")
        );
        assert_eq!(
            search_path("postgres://h/db?options=-csearch_path%3Da,public").as_deref(),
            Some("a")
        );
        assert_eq!(search_path("postgres://h/db"), None);
        assert_eq!(search_path("postgres://h/db?sslmode=disable"), None);
    }

    #[test]
    fn accepts_only_postgres_urls() {
        assert!(check_database_url("postgres://postgres@127.0.0.1:5432/test").is_ok());
        assert!(check_database_url("postgresql://h/db").is_ok());
        assert!(check_database_url("mysql://h/db").is_err());
        assert!(check_database_url("products").is_err());
    }
}
