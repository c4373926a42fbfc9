//! Each service's SQLite migrations, embedded at build time (see `build.rs`), so that a service
//! under `spin up`, which applies no migrations, creates its own schema from the same files
//! `shop up` applies. They run on first need: when a statement meets a missing table or
//! column, [`apply`] brings the database up to date under SQLite's write lock (concurrent first
//! requests wait for one of them to do it) and the statement is retried once. The ledger is
//! sqlx's `_sqlx_migrations`, with the same checksums, so `shop migrate` and this code agree on
//! what has been applied.

use std::time::{Duration, Instant};

use crate::storage::{Db, StorageError};

/// One migration file, split into statements.
#[derive(Debug)]
pub(crate) struct Migration {
    /// The file's version (its name's leading number).
    pub version: i64,
    /// SHA-384 of the file, in upper-case hex (as SQLite's `hex()` writes it).
    pub checksum: &'static str,
    /// The file's statements, in order.
    pub statements: &'static [&'static str],
    /// The ledger row that records it.
    pub record: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// sqlx's ledger table, exactly as sqlx creates it.
const LEDGER: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// How long a first request waits for another one's migration (or any writer) to finish.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Whether a SQLite error says the schema lacks something the code uses.
pub(crate) fn is_missing_schema(error: &StorageError) -> bool {
    match error {
        StorageError::Query(message) => {
            let message = message.to_ascii_lowercase();
            message.contains("no such table") || message.contains("no such column")
        }
        _ => false,
    }
}

/// Applies the migrations of `migrations` that the database lacks, inside the transaction
/// `db` is in, or else in one of its own that holds the write lock.
pub(crate) fn apply(
    db: &Db,
    migrations: &[Migration],
    in_transaction: bool,
) -> Result<(), StorageError> {
    if in_transaction {
        return apply_pending(db, migrations);
    }
    begin_immediate(db)?;
    match apply_pending(db, migrations).and_then(|()| db.execute("COMMIT", &[]).map(drop)) {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = db.execute("ROLLBACK", &[]);
            Err(error)
        }
    }
}

/// Takes SQLite's write lock, waiting out other writers (a runtime may set no busy timeout).
fn begin_immediate(db: &Db) -> Result<(), StorageError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match db.execute("BEGIN IMMEDIATE", &[]) {
            Ok(_) => return Ok(()),
            Err(StorageError::Unavailable(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Runs, in order, every migration the ledger does not list; refuses a database whose ledger
/// shows a failed migration or one whose file has changed since.
fn apply_pending(db: &Db, migrations: &[Migration]) -> Result<(), StorageError> {
    db.execute(LEDGER, &[])?;
    let applied = db.query(
        "SELECT version, hex(checksum) AS checksum, success FROM _sqlx_migrations",
        &[],
    )?;
    let mut done = Vec::with_capacity(applied.len());
    for row in &applied {
        let version = row.int("version")?;
        if !row.bool("success")? {
            return Err(StorageError::Query(format!(
                "migration {version} failed earlier and left the database dirty: repair it, \
                 then run `shop migrate`"
            )));
        }
        let checksum = row.text("checksum")?;
        if let Some(ours) = migrations.iter().find(|m| m.version == version) {
            if !ours.checksum.eq_ignore_ascii_case(&checksum) {
                return Err(StorageError::Query(format!(
                    "migration {version} was changed after it was applied to this database"
                )));
            }
        }
        done.push(version);
    }
    for migration in migrations.iter().filter(|m| !done.contains(&m.version)) {
        for statement in migration.statements {
            db.execute(statement, &[])?;
        }
        db.execute(migration.record, &[])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_has_its_files_embedded_in_order() {
        for service in ["products", "accounts", "cart", "orders"] {
            let migrations = sqlite(service);
            assert!(!migrations.is_empty(), "{service} has no migrations");
            assert!(migrations.windows(2).all(|w| w[0].version < w[1].version));
            for migration in migrations {
                assert_eq!(migration.checksum.len(), 96, "SHA-384 in hex");
                assert!(migration.record.contains(&migration.version.to_string()));
                assert!(migration.statements.iter().all(|s| !s.trim().is_empty()));
            }
        }
        assert!(sqlite("nope").is_empty());
    }

    #[test]
    fn products_migration_creates_its_table_and_indexes() {
        let first = &sqlite("products")[0];
        assert_eq!(first.statements.len(), 3);
        assert!(first.statements[0].starts_with("CREATE TABLE products"));
        assert!(first.record.contains("'create products'"));
    }

    #[test]
    fn missing_schema_is_recognised() {
        let missing = StorageError::Query("no such table: products".into());
        assert!(is_missing_schema(&missing));
        let column = StorageError::Query("error: no such column: stock_released".into());
        assert!(is_missing_schema(&column));
        assert!(!is_missing_schema(&StorageError::Query(
            "syntax error".into()
        )));
        assert!(!is_missing_schema(&StorageError::Unavailable(
            "no such table".into()
        )));
    }
}
