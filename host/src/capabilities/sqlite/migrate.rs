//! Applying a service's migrations (`migrations/<component id>/sqlite/`, sqlx's format) to its
//! SQLite database at start.

use std::path::Path;

use anyhow::{Context, Result};
use sqlx::migrate::Migrator;
use sqlx::SqlitePool;

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
