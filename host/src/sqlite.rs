//! Host side of `spin:sqlite/sqlite@3.0.0`.
//!
//! Each label of the runtime config is one SQLite file behind an sqlx pool (WAL, a busy
//! timeout, foreign keys on). A guest's connection resource takes one pooled connection on
//! its first statement and keeps it for its whole life, so a `BEGIN IMMEDIATE ... COMMIT`
//! spread over several `execute` calls runs on one database connection. When the resource
//! goes away (the guest drops it or its store ends) with a transaction possibly still open,
//! the transaction is rolled back in the background before the connection returns to the
//! pool.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures_util::TryStreamExt as _;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous, SqliteValueRef,
};
use sqlx::{
    Arguments as _, Column as _, Decode, Either, Executor as _, Row as _, Sqlite, Statement as _,
    TypeInfo as _, ValueRef as _,
};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::bindings::spin::sqlite::sqlite::{self as wit, QueryResult, RowResult, Value};

/// Connections per database file: WAL lets readers run beside the one writer.
const POOL_SIZE: u32 = 16;
/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a guest waits for a free pooled connection before its statement fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The app's SQLite databases: one pool per label.
#[derive(Debug)]
pub struct SqliteDatabases {
    pools: HashMap<String, SqlitePool>,
}

impl SqliteDatabases {
    /// Opens (creating if missing, with their folders) the database file of every label.
    pub async fn open(paths: HashMap<String, PathBuf>) -> Result<Self> {
        let mut pools = HashMap::with_capacity(paths.len());
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
                .max_connections(POOL_SIZE)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                // A returned connection is checked when it goes back; checking it again on
                // every acquire would cost a round trip to its worker thread per request.
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .with_context(|| {
                    format!(
                        "cannot open SQLite database `{label}` at {}",
                        path.display()
                    )
                })?;
            pools.insert(label, pool);
        }
        Ok(Self { pools })
    }

    /// The pool of database `label`, if the runtime config declares it.
    pub fn pool(&self, label: &str) -> Option<&SqlitePool> {
        self.pools.get(label)
    }

    /// Checks that every database answers a `SELECT 1`.
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

/// What a guest's `spin:sqlite` calls reach: its store's resources and the databases it may open.
pub struct SqliteView<'a> {
    /// The store's resource table, where the guest's connections live.
    pub table: &'a mut ResourceTable,
    /// The app's databases.
    pub databases: &'a SqliteDatabases,
    /// The labels the component may open (its `sqlite_databases`).
    pub allowed: &'a [String],
}

/// Adds `spin:sqlite/sqlite@3.0.0` to `linker`, reaching each store's view through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> SqliteView<'_>,
) -> Result<()> {
    wit::add_to_linker::<T, SqliteData>(linker, get).map_err(anyhow::Error::from)
}

struct SqliteData;

impl HasData for SqliteData {
    type Data<'a> = SqliteView<'a>;
}

/// A guest's open SQLite connection: the resource behind `spin:sqlite`'s `connection`.
pub struct Connection {
    pool: SqlitePool,
    /// Taken from the pool on the first statement, kept until the resource is dropped.
    conn: Option<PoolConnection<Sqlite>>,
    /// Set once a statement may have opened a transaction, cleared by a successful COMMIT.
    transaction_may_be_open: bool,
    last_insert_rowid: i64,
    changes: u64,
}

impl Connection {
    fn new(pool: SqlitePool) -> Self {
        Self {
            pool,
            conn: None,
            transaction_may_be_open: false,
            last_insert_rowid: 0,
            changes: 0,
        }
    }

    async fn execute(
        &mut self,
        statement: &str,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, wit::Error> {
        let shape = StatementShape::scan(statement).map_err(wit::Error::Io)?;
        let arguments = arguments(parameters)?;
        let conn = match &mut self.conn {
            Some(conn) => conn,
            slot @ None => slot.insert(self.pool.acquire().await.map_err(io_error)?),
        };
        if shape.opens_transaction {
            // Before running it: the transaction may be open even if a later part fails.
            self.transaction_may_be_open = true;
        }

        let mut columns = None;
        let mut rows = Vec::new();
        let mut done = None;
        {
            let mut results = (&mut **conn).fetch_many(sqlx::query_with(statement, arguments));
            while let Some(result) = results.try_next().await.map_err(io_error)? {
                match result {
                    Either::Left(result) => done = Some(result),
                    Either::Right(row) => {
                        if columns.is_none() {
                            columns = Some(column_names(&row));
                        }
                        rows.push(RowResult {
                            values: row_values(&row)?,
                        });
                    }
                }
            }
        }
        let columns = match columns {
            Some(columns) => columns,
            // No row to read the names from: the prepared statement (from the connection's
            // statement cache) describes them. Skipped for statements that return no rows.
            None if shape.may_return_rows => {
                let prepared = (&mut **conn).prepare(statement).await.map_err(io_error)?;
                prepared
                    .columns()
                    .iter()
                    .map(|column| column.name().to_owned())
                    .collect()
            }
            None => Vec::new(),
        };

        if shape.closes_transaction {
            self.transaction_may_be_open = false;
        }
        // The pooled connection served other resources before: its counters reflect this
        // resource only after a statement of this resource that sets them.
        if let (Some(done), true) = (done, shape.modifies_rows) {
            self.changes = done.rows_affected();
            if shape.may_insert && done.rows_affected() > 0 {
                self.last_insert_rowid = done.last_insert_rowid();
            }
        }
        Ok(QueryResult { columns, rows })
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

impl wit::Host for SqliteView<'_> {}

impl wit::HostConnection for SqliteView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, wit::Error>> {
        // As Spin: a label outside the component's `sqlite_databases` is denied, known or not.
        if !self.allowed.contains(&database) {
            return Ok(Err(wit::Error::AccessDenied));
        }
        let Some(pool) = self.databases.pool(&database) else {
            return Ok(Err(wit::Error::NoSuchDatabase));
        };
        Ok(self
            .table
            .push(Connection::new(pool.clone()))
            .map_err(|e| wit::Error::Io(format!("cannot open another connection: {e}"))))
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, wit::Error>> {
        let Ok(connection) = self.table.get_mut(&connection) else {
            return Ok(Err(wit::Error::InvalidConnection));
        };
        Ok(connection.execute(&statement, parameters).await)
    }

    async fn last_insert_rowid(
        &mut self,
        connection: Resource<Connection>,
    ) -> wasmtime::Result<i64> {
        Ok(self.table.get(&connection)?.last_insert_rowid)
    }

    async fn changes(&mut self, connection: Resource<Connection>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&connection)?.changes)
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

fn arguments(parameters: Vec<Value>) -> Result<SqliteArguments<'static>, wit::Error> {
    let mut arguments = SqliteArguments::default();
    arguments.reserve(parameters.len(), 0);
    for parameter in parameters {
        match parameter {
            Value::Integer(v) => arguments.add(v),
            Value::Real(v) => arguments.add(v),
            Value::Text(v) => arguments.add(v),
            Value::Blob(v) => arguments.add(v),
            Value::Null => arguments.add(None::<i64>),
        }
        .map_err(|e| wit::Error::Io(e.to_string()))?;
    }
    Ok(arguments)
}

fn column_names(row: &SqliteRow) -> Vec<String> {
    row.columns()
        .iter()
        .map(|column| column.name().to_owned())
        .collect()
}

fn row_values(row: &SqliteRow) -> Result<Vec<Value>, wit::Error> {
    let mut values = Vec::with_capacity(row.len());
    for index in 0..row.len() {
        values.push(value(row.try_get_raw(index).map_err(io_error)?)?);
    }
    Ok(values)
}

/// A value as SQLite stored it (its storage class, not the column's declared type).
fn value(raw: SqliteValueRef<'_>) -> Result<Value, wit::Error> {
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let class = match raw.type_info().name() {
        "INTEGER" => StorageClass::Integer,
        "REAL" => StorageClass::Real,
        "TEXT" => StorageClass::Text,
        _ => StorageClass::Blob,
    };
    let decoded = match class {
        StorageClass::Integer => <i64 as Decode<Sqlite>>::decode(raw).map(Value::Integer),
        StorageClass::Real => <f64 as Decode<Sqlite>>::decode(raw).map(Value::Real),
        StorageClass::Text => {
            <&str as Decode<Sqlite>>::decode(raw).map(|text| Value::Text(text.to_owned()))
        }
        StorageClass::Blob => {
            <&[u8] as Decode<Sqlite>>::decode(raw).map(|blob| Value::Blob(blob.to_vec()))
        }
    };
    decoded.map_err(|e| wit::Error::Io(format!("cannot read a value: {e}")))
}

enum StorageClass {
    Integer,
    Real,
    Text,
    Blob,
}

fn io_error(error: sqlx::Error) -> wit::Error {
    match &error {
        sqlx::Error::Database(db) => {
            // SQLITE_FULL, possibly as an extended code: the low byte is the primary code.
            let full = db
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(|code| code & 0xff == 13);
            if full {
                wit::Error::DatabaseFull
            } else {
                wit::Error::Io(db.message().to_owned())
            }
        }
        _ => wit::Error::Io(error.to_string()),
    }
}

/// What the host needs to know of a statement's text before and after running it.
///
/// A light scan of its words outside literals, identifiers and comments: it errs on the side of
/// "a transaction may be open", which at worst costs one needless ROLLBACK.
#[derive(Debug, Default, PartialEq)]
struct StatementShape {
    /// BEGIN or SAVEPOINT appears: a transaction may be open afterwards.
    opens_transaction: bool,
    /// The statement is exactly COMMIT, END or ROLLBACK (with an optional TRANSACTION).
    closes_transaction: bool,
    /// It may produce rows (a query, PRAGMA, or RETURNING), so its columns are worth describing.
    may_return_rows: bool,
    /// It is INSERT, UPDATE, DELETE or REPLACE (possibly after WITH): it sets `changes`.
    modifies_rows: bool,
    /// It inserts rows: it sets `last-insert-rowid`.
    may_insert: bool,
}

impl StatementShape {
    /// Scans `sql`; `Err` for a `$0` parameter, which SQLite accepts but sqlx cannot bind.
    fn scan(sql: &str) -> Result<Self, String> {
        let bytes = sql.as_bytes();
        let mut shape = Self::default();
        let mut first_word: Option<&str> = None;
        let mut words = 0usize;
        let mut only_words = true;
        let mut closing_words = true;
        let mut dml_word = false;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b if b.is_ascii_whitespace() || b == b';' => i += 1,
                b'\'' | b'"' | b'`' => {
                    i = skip_past(bytes, i + 1, b);
                    only_words = false;
                }
                b'[' => {
                    i = skip_past(bytes, i + 1, b']');
                    only_words = false;
                }
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    i = skip_past(bytes, i + 2, b'\n');
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    i = match sql[i + 2..].find("*/") {
                        Some(end) => i + 2 + end + 2,
                        None => bytes.len(),
                    };
                }
                b'$' | b'?' | b':' | b'@' => {
                    let start = i + 1;
                    i = start;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                    if b == b'$' && i > start && bytes[start..i].iter().all(|d| *d == b'0') {
                        return Err(format!(
                            "parameter {} is not valid: parameters are numbered from $1",
                            &sql[start - 1..i]
                        ));
                    }
                    while i < bytes.len() && is_word_byte(bytes[i]) {
                        i += 1;
                    }
                    only_words = false;
                }
                b if b.is_ascii_alphabetic() || b == b'_' => {
                    let start = i;
                    while i < bytes.len() && is_word_byte(bytes[i]) {
                        i += 1;
                    }
                    let word = &sql[start..i];
                    words += 1;
                    let is = |keyword: &str| word.eq_ignore_ascii_case(keyword);
                    if first_word.is_none() {
                        first_word = Some(word);
                        closing_words = is("COMMIT") || is("END") || is("ROLLBACK");
                    } else if !(words == 2 && is("TRANSACTION")) {
                        closing_words = false;
                    }
                    if is("BEGIN") || is("SAVEPOINT") {
                        shape.opens_transaction = true;
                    }
                    if is("RETURNING") {
                        shape.may_return_rows = true;
                    }
                    if is("INSERT") || is("REPLACE") {
                        shape.may_insert = true;
                        dml_word = true;
                    }
                    if is("UPDATE") || is("DELETE") {
                        dml_word = true;
                    }
                }
                _ => {
                    // Numbers, operators, punctuation: nothing the host needs.
                    i += 1;
                    only_words = false;
                }
            }
        }
        let first = |keywords: &[&str]| {
            first_word.is_some_and(|w| keywords.iter().any(|k| w.eq_ignore_ascii_case(k)))
        };
        shape.closes_transaction = only_words && closing_words && words <= 2;
        if first(&["SELECT", "VALUES", "PRAGMA", "EXPLAIN", "WITH"]) {
            shape.may_return_rows = true;
        }
        shape.modifies_rows =
            first(&["INSERT", "UPDATE", "DELETE", "REPLACE"]) || (first(&["WITH"]) && dml_word);
        shape.may_insert &= shape.modifies_rows;
        Ok(shape)
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The index just past the next `close` at or after `from` (a quote ends at its twin).
fn skip_past(bytes: &[u8], from: usize, close: u8) -> usize {
    match bytes[from.min(bytes.len())..]
        .iter()
        .position(|b| *b == close)
    {
        Some(offset) => from + offset + 1,
        None => bytes.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sql: &str) -> StatementShape {
        StatementShape::scan(sql).unwrap()
    }

    #[test]
    fn scan_finds_transactions() {
        assert!(shape("BEGIN IMMEDIATE").opens_transaction);
        assert!(shape("  begin;").opens_transaction);
        assert!(shape("SAVEPOINT a").opens_transaction);
        assert!(!shape("SELECT 'BEGIN' FROM t -- BEGIN").opens_transaction);
        assert!(!shape("SELECT \"begin\" FROM t /* begin */").opens_transaction);
        assert!(shape("COMMIT").closes_transaction);
        assert!(shape("commit transaction;").closes_transaction);
        assert!(shape("END").closes_transaction);
        assert!(shape("ROLLBACK").closes_transaction);
        assert!(!shape("ROLLBACK TO a").closes_transaction);
        assert!(!shape("ROLLBACK TRANSACTION TO SAVEPOINT a").closes_transaction);
        assert!(!shape("COMMIT; BEGIN").closes_transaction);
        assert!(!shape("SELECT 1").closes_transaction);
    }

    #[test]
    fn scan_classifies_statements() {
        let insert = shape("INSERT INTO t (a) VALUES ($1)");
        assert!(insert.modifies_rows && insert.may_insert && !insert.may_return_rows);
        let returning = shape("insert into t (a) values ($1) returning id");
        assert!(returning.may_return_rows && returning.may_insert);
        let update = shape("UPDATE t SET a = replace(a, 'x', 'y') WHERE id = $1");
        assert!(update.modifies_rows && update.may_insert); // harmless: rowid kept if unchanged
        let select = shape("SELECT replace(a, 'x', 'y') FROM t");
        assert!(select.may_return_rows && !select.modifies_rows && !select.may_insert);
        let with = shape("WITH x AS (SELECT 1) DELETE FROM t WHERE id IN x");
        assert!(with.modifies_rows && !with.may_insert);
        assert!(!shape("CREATE TABLE t (a)").may_return_rows);
    }

    #[test]
    fn scan_rejects_parameter_zero() {
        assert!(StatementShape::scan("SELECT $0").is_err());
        assert!(StatementShape::scan("SELECT $00abc").is_err());
        assert!(StatementShape::scan("SELECT $1, $10, '$0.00'").is_ok());
    }

    /// A fresh folder under the system's temp dir, removed at the end of the test.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("shop-sqlite-test-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn databases(dir: &TempDir) -> SqliteDatabases {
        let path = dir.0.join("nested/folder/products.db");
        let databases =
            SqliteDatabases::open(HashMap::from([("products".to_string(), path.clone())]))
                .await
                .unwrap();
        assert!(path.exists());
        databases
    }

    fn view<'a>(
        table: &'a mut ResourceTable,
        databases: &'a SqliteDatabases,
        allowed: &'a [String],
    ) -> SqliteView<'a> {
        SqliteView {
            table,
            databases,
            allowed,
        }
    }

    use wit::HostConnection as _;

    async fn open(view: &mut SqliteView<'_>) -> Resource<Connection> {
        view.open("products".into()).await.unwrap().unwrap()
    }

    async fn exec(
        view: &mut SqliteView<'_>,
        conn: &Resource<Connection>,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<QueryResult, wit::Error> {
        let conn = Resource::new_borrow(conn.rep());
        view.execute(conn, sql.into(), params).await.unwrap()
    }

    #[tokio::test]
    async fn open_checks_access_and_labels() {
        let dir = TempDir::new();
        let databases = databases(&dir).await;
        databases.check().await.unwrap();
        assert!(databases.pool("products").is_some());
        let mut table = ResourceTable::new();
        let allowed = vec!["products".to_string(), "missing".to_string()];
        let mut view = view(&mut table, &databases, &allowed);
        assert!(matches!(
            view.open("orders".into()).await.unwrap(),
            Err(wit::Error::AccessDenied)
        ));
        assert!(matches!(
            view.open("missing".into()).await.unwrap(),
            Err(wit::Error::NoSuchDatabase)
        ));
        assert!(view.open("products".into()).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn values_round_trip_with_columns_and_counters() {
        let dir = TempDir::new();
        let databases = databases(&dir).await;
        let mut table = ResourceTable::new();
        let allowed = vec!["products".to_string()];
        let mut view = view(&mut table, &databases, &allowed);
        let conn = open(&mut view).await;
        exec(
            &mut view,
            &conn,
            "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, i INTEGER, r REAL, s TEXT, b BLOB, n INTEGER)",
            vec![],
        )
        .await
        .unwrap();

        let empty = exec(
            &mut view,
            &conn,
            "SELECT id, i, r AS real, s FROM t WHERE id = $1",
            vec![Value::Integer(1)],
        )
        .await
        .unwrap();
        assert_eq!(empty.columns, ["id", "i", "real", "s"]);
        assert!(empty.rows.is_empty());

        let inserted = exec(
            &mut view,
            &conn,
            "INSERT INTO t (i, r, s, b, n) VALUES ($1, $2, $3, $4, $5)",
            vec![
                Value::Integer(i64::MIN),
                Value::Real(1.5),
                Value::Text("é\u{0}x".into()),
                Value::Blob(vec![0, 1, 255]),
                Value::Null,
            ],
        )
        .await
        .unwrap();
        assert!(inserted.columns.is_empty() && inserted.rows.is_empty());
        let rowid = view
            .last_insert_rowid(Resource::new_borrow(conn.rep()))
            .await
            .unwrap();
        assert_eq!(rowid, 1);
        assert_eq!(
            view.changes(Resource::new_borrow(conn.rep()))
                .await
                .unwrap(),
            1
        );

        let rows = exec(
            &mut view,
            &conn,
            "SELECT i, r, s, b, n, $1 AS p FROM t",
            vec![Value::Text("p".into())],
        )
        .await
        .unwrap();
        assert_eq!(rows.columns, ["i", "r", "s", "b", "n", "p"]);
        let values = &rows.rows[0].values;
        assert!(matches!(values[0], Value::Integer(i64::MIN)));
        assert!(matches!(values[1], Value::Real(r) if r == 1.5));
        assert!(matches!(&values[2], Value::Text(s) if s == "é\u{0}x"));
        assert!(matches!(&values[3], Value::Blob(b) if b == &[0, 1, 255]));
        assert!(matches!(values[4], Value::Null));
        assert!(matches!(&values[5], Value::Text(s) if s == "p"));

        // A SELECT leaves the counters alone, as in SQLite.
        assert_eq!(
            view.changes(Resource::new_borrow(conn.rep()))
                .await
                .unwrap(),
            1
        );
        exec(
            &mut view,
            &conn,
            "INSERT INTO t (i) VALUES (1), (2)",
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(
            view.changes(Resource::new_borrow(conn.rep()))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            view.last_insert_rowid(Resource::new_borrow(conn.rep()))
                .await
                .unwrap(),
            3
        );
        exec(&mut view, &conn, "UPDATE t SET i = i + 1", vec![])
            .await
            .unwrap();
        assert_eq!(
            view.changes(Resource::new_borrow(conn.rep()))
                .await
                .unwrap(),
            3
        );
        assert_eq!(
            view.last_insert_rowid(Resource::new_borrow(conn.rep()))
                .await
                .unwrap(),
            3
        );

        let error = exec(&mut view, &conn, "SELECT * FROM nowhere", vec![])
            .await
            .unwrap_err();
        assert!(
            matches!(&error, wit::Error::Io(m) if m.contains("no such table")),
            "{error:?}"
        );
        let error = exec(&mut view, &conn, "SELECT $0", vec![Value::Null])
            .await
            .unwrap_err();
        assert!(matches!(error, wit::Error::Io(_)));
        wit::HostConnection::drop(&mut view, conn).await.unwrap();
    }

    #[tokio::test]
    async fn transaction_spans_calls_and_rolls_back_on_drop() {
        let dir = TempDir::new();
        let databases = databases(&dir).await;
        let mut table = ResourceTable::new();
        let allowed = vec!["products".to_string()];
        let mut view = view(&mut table, &databases, &allowed);
        let conn = open(&mut view).await;
        exec(
            &mut view,
            &conn,
            "CREATE TABLE t (a INTEGER UNIQUE)",
            vec![],
        )
        .await
        .unwrap();

        exec(&mut view, &conn, "BEGIN IMMEDIATE", vec![])
            .await
            .unwrap();
        exec(&mut view, &conn, "INSERT INTO t VALUES (1)", vec![])
            .await
            .unwrap();
        exec(&mut view, &conn, "COMMIT", vec![]).await.unwrap();
        assert!(!view.table.get(&conn).unwrap().transaction_may_be_open);

        exec(&mut view, &conn, "BEGIN IMMEDIATE", vec![])
            .await
            .unwrap();
        exec(&mut view, &conn, "INSERT INTO t VALUES (2)", vec![])
            .await
            .unwrap();
        let error = exec(&mut view, &conn, "INSERT INTO t VALUES (2)", vec![])
            .await
            .unwrap_err();
        assert!(
            matches!(&error, wit::Error::Io(m) if m.contains("UNIQUE constraint failed")),
            "{error:?}"
        );
        wit::HostConnection::drop(&mut view, conn).await.unwrap();

        // The rollback runs in the background and must free the write lock promptly.
        let pool = databases.pool("products").unwrap();
        tokio::time::timeout(
            Duration::from_secs(4),
            sqlx::query("INSERT INTO t VALUES (3)").execute(pool),
        )
        .await
        .expect("the dropped transaction still holds the write lock")
        .unwrap();
        let values: Vec<i64> = sqlx::query_scalar("SELECT a FROM t ORDER BY a")
            .fetch_all(pool)
            .await
            .unwrap();
        assert_eq!(values, [1, 3], "the uncommitted row 2 must be gone");

        // Every pooled connection is usable afterwards (none is left inside a transaction).
        for _ in 0..3 {
            let conn = open(&mut view).await;
            exec(&mut view, &conn, "BEGIN IMMEDIATE", vec![])
                .await
                .unwrap();
            exec(&mut view, &conn, "ROLLBACK", vec![]).await.unwrap();
            wit::HostConnection::drop(&mut view, conn).await.unwrap();
        }
    }
}
