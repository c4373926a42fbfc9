//! Host side of `spin:sqlite/sqlite@3.0.0`.
//!
//! Each label of the runtime config is one SQLite file behind an sqlx pool (WAL, a busy
//! timeout, foreign keys on). A guest's connection resource takes one pooled connection on
//! its first statement and keeps it for its whole life, so a `BEGIN IMMEDIATE ... COMMIT`
//! spread over several `execute` calls runs on one database connection. When the resource
//! goes away (the guest drops it or its store ends) with a transaction possibly still open,
//! the transaction is rolled back in the background before the connection returns to the
//! pool.
//!
//! Every pooled connection is confined to its own file when it is opened (see [`confine`]): no
//! other database can be attached (so no `ATTACH`, `VACUUM` or `VACUUM INTO`), no extension
//! can be loaded, and an authorizer refuses what would reach past the file or leave state on
//! the connection for a later resource (TEMP objects, PRAGMAs that set something). The host's
//! own statements (migrations, health checks) run on the same connections: they need nothing
//! the authorizer refuses, and a migration must not need it either.

pub mod bindings;
pub mod migrate;

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::PathBuf;
use std::ptr;
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures_util::TryStreamExt as _;
use libsqlite3_sys as ffi;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous, SqliteValueRef,
};
use sqlx::{
    Arguments as _, Column as _, Decode, Either, Executor as _, Row as _, Sqlite, Statement as _,
    TypeInfo as _, ValueRef as _,
};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use bindings::spin::sqlite::sqlite::{self as wit, QueryResult, RowResult, Value};

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
        Self::open_with_pool_size(paths, POOL_SIZE).await
    }

    /// [`Self::open`] with `pool_size` connections per database.
    async fn open_with_pool_size(paths: HashMap<String, PathBuf>, pool_size: u32) -> Result<Self> {
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
                .max_connections(pool_size)
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
            pools.insert(label, pool);
        }
        Ok(Self { pools })
    }

    /// The pool of database `label`, if the runtime config declares it.
    pub fn pool(&self, label: &str) -> Option<&SqlitePool> {
        self.pools.get(label)
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

/// PRAGMAs a guest may read, without an argument and on `main` only: each reads a value of
/// the guest's own database (its header, its size) or a fixed setting of the connection, and
/// does no work. Left out: those that write or work even without an argument (`optimize`,
/// `wal_checkpoint`, `integrity_check`, `shrink_memory`, ...) and those that show more than
/// the database (`database_list` names the host's path, `compile_options`, `function_list`).
const READABLE_PRAGMAS: &[&str] = &[
    "application_id",
    "data_version",
    "encoding",
    "foreign_keys",
    "freelist_count",
    "journal_mode",
    "page_count",
    "page_size",
    "schema_version",
    "user_version",
];

/// SQL functions a guest may not call. `load_extension` would load native code from a file
/// (also switched off on the connection); the others answer for the pooled connection's
/// earlier statements, which may be another resource's: the connection resource's
/// `last-insert-rowid` and `changes` answer for the resource itself. No other function of the
/// bundled SQLite touches files (`readfile`, `writefile` and `edit` are the CLI's).
const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "last_insert_rowid",
    "changes",
    "total_changes",
];

/// Confines a new pooled connection to its own database file: no attached database (which also
/// rules out `VACUUM` and `VACUUM INTO`), no extension loading, defensive mode (no SQL that
/// could corrupt the file, such as `writable_schema`), and [`authorize`] on every statement.
async fn confine(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    let (off, on): (c_int, c_int) = (0, 1);
    let no_result = ptr::null_mut::<c_int>();
    // SAFETY: `db` is an open connection, and while `handle` lives sqlx's worker thread makes no
    // call on it. `sqlite3_db_config` with these options takes an int and an int pointer
    // (NULL: the new value is not read back). The authorizer is a plain function with no
    // user data, so it outlives the connection and holds nothing that could dangle.
    let (attached, results) = unsafe {
        ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_ATTACHED, 0);
        let results = [
            ffi::sqlite3_db_config(
                db,
                ffi::SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION,
                off,
                no_result,
            ),
            ffi::sqlite3_db_config(
                db,
                ffi::SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER,
                off,
                no_result,
            ),
            ffi::sqlite3_db_config(db, ffi::SQLITE_DBCONFIG_DEFENSIVE, on, no_result),
            ffi::sqlite3_set_authorizer(db, Some(authorize), ptr::null_mut()),
        ];
        // A negative value reads the limit back.
        (
            ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_ATTACHED, -1),
            results,
        )
    };
    if attached != 0 || results.iter().any(|&result| result != ffi::SQLITE_OK) {
        return Err(sqlx::Error::Configuration(
            format!(
                "cannot confine a SQLite connection to its database \
                 (attached databases allowed: {attached}, results: {results:?})"
            )
            .into(),
        ));
    }
    Ok(())
}

/// The authorizer of guest connections: `SQLITE_DENY` (the statement fails to prepare, "not
/// authorized") for what [`guest_may`] refuses.
///
/// # Safety
///
/// For SQLite to call: each string is NULL or NUL-terminated, and valid for the call.
unsafe extern "C" fn authorize(
    _user_data: *mut c_void,
    action: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    arg3: *const c_char,
    _trigger_or_view: *const c_char,
) -> c_int {
    // SAFETY: as the function's contract says SQLite passes them.
    let (arg1, arg2, arg3) = unsafe { (c_text(arg1), c_text(arg2), c_text(arg3)) };
    if guest_may(action, arg1, arg2, arg3) {
        ffi::SQLITE_OK
    } else {
        ffi::SQLITE_DENY
    }
}

/// The bytes of a C string, `None` for NULL.
///
/// # Safety
///
/// `text` is NULL or a NUL-terminated string valid for `'a`.
unsafe fn c_text<'a>(text: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: as the function's contract says.
    (!text.is_null()).then(|| unsafe { CStr::from_ptr(text) }.to_bytes())
}

/// Whether a guest statement may do `action`, with SQLite's authorizer arguments (the third,
/// where it applies, names the database; ALTER TABLE names it first).
///
/// No allocation, no panic: this runs inside SQLite's prepare, called from C.
fn guest_may(action: c_int, arg1: Option<&[u8]>, arg2: Option<&[u8]>, arg3: Option<&[u8]>) -> bool {
    let is = |text: Option<&[u8]>, name: &str| {
        text.is_some_and(|text| text.eq_ignore_ascii_case(name.as_bytes()))
    };
    let database = if action == ffi::SQLITE_ALTER_TABLE {
        arg1
    } else {
        arg3
    };
    // Only `main` and `temp` exist (ATTACH is refused and the limit is 0). SQLite names the
    // database when a table of it is used (NULL, for example, for a function or a subquery).
    let on_main = database.is_none() || is(database, "main");
    match action {
        ffi::SQLITE_ATTACH | ffi::SQLITE_DETACH => false,
        // Would outlive the resource on the pooled connection.
        ffi::SQLITE_CREATE_TEMP_INDEX
        | ffi::SQLITE_CREATE_TEMP_TABLE
        | ffi::SQLITE_CREATE_TEMP_TRIGGER
        | ffi::SQLITE_CREATE_TEMP_VIEW => false,
        // Arg 2 is the PRAGMA's argument: with one, it sets something.
        ffi::SQLITE_PRAGMA => {
            arg2.is_none() && on_main && READABLE_PRAGMAS.iter().any(|name| is(arg1, name))
        }
        ffi::SQLITE_FUNCTION => !DENIED_FUNCTIONS.iter().any(|name| is(arg2, name)),
        // ALTER TABLE's own statements read and rewrite the temp schema's table to follow the
        // renamed table or column into temp triggers and views. That table is always empty
        // (nothing can be created in temp), and SQL cannot write it (it is read-only without
        // `writable_schema`), so a guest reading it learns nothing.
        ffi::SQLITE_READ | ffi::SQLITE_UPDATE
            if is(database, "temp") && is(arg1, "sqlite_temp_master") =>
        {
            true
        }
        _ => on_main,
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
            // Possibly an extended code: the low byte is the primary code.
            let primary = db
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .map(|code| code & 0xff);
            // The authorizer refused the statement (see `guest_may`): SQLITE_AUTH, except
            // for a function, which SQLite reports as a plain error.
            let refused = primary == Some(ffi::SQLITE_AUTH)
                || db.message().starts_with("not authorized to use function");
            match primary {
                Some(ffi::SQLITE_FULL) => wit::Error::DatabaseFull,
                _ if refused => wit::Error::Io(format!(
                    "refused by the host ({}): a component reaches only its own database, \
                     with no ATTACH, VACUUM, TEMP objects, extension loading, PRAGMA that sets \
                     something, or last_insert_rowid()/changes()/total_changes() (the \
                     connection's last-insert-rowid and changes answer those)",
                    db.message()
                )),
                _ => wit::Error::Io(db.message().to_owned()),
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

    /// `products`, and `accounts` (another service's file, holding a `users` table), with
    /// `pool_size` connections each.
    async fn two_databases(dir: &TempDir, pool_size: u32) -> SqliteDatabases {
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

    /// The message of a statement the host must refuse.
    async fn refused(view: &mut SqliteView<'_>, conn: &Resource<Connection>, sql: &str) -> String {
        match exec(view, conn, sql, vec![]).await {
            Err(wit::Error::Io(message)) => message,
            other => panic!("`{sql}` was not refused: {other:?}"),
        }
    }

    /// The single integer a query answers.
    async fn integer(view: &mut SqliteView<'_>, conn: &Resource<Connection>, sql: &str) -> i64 {
        let result = exec(view, conn, sql, vec![]).await.unwrap();
        match result.rows.as_slice() {
            [row] => match row.values.as_slice() {
                [Value::Integer(value)] => *value,
                other => panic!("`{sql}` answered {other:?}"),
            },
            other => panic!("`{sql}` answered {} rows", other.len()),
        }
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

    #[tokio::test]
    async fn a_guest_reaches_nothing_but_its_own_database() {
        let dir = TempDir::new();
        let databases = two_databases(&dir, POOL_SIZE).await;
        let accounts_path = dir.0.join("accounts.db");
        let accounts = accounts_path.display().to_string();

        // Without the host's confinement, the attach and the read would succeed.
        let mut plain = <SqliteConnection as sqlx::Connection>::connect_with(
            &SqliteConnectOptions::new().filename(dir.0.join("products.db")),
        )
        .await
        .unwrap();
        sqlx::query(&format!("ATTACH '{accounts}' AS a"))
            .execute(&mut plain)
            .await
            .unwrap();
        let name: String = sqlx::query_scalar("SELECT name FROM a.users")
            .fetch_one(&mut plain)
            .await
            .unwrap();
        assert_eq!(name, "alice");
        sqlx::Connection::close(plain).await.unwrap();

        let mut table = ResourceTable::new();
        let allowed = vec!["products".to_string()];
        let mut view = view(&mut table, &databases, &allowed);
        let conn = open(&mut view).await;
        exec(&mut view, &conn, "CREATE TABLE t (a INTEGER)", vec![])
            .await
            .unwrap();

        let new_file = dir.0.join("new.db");
        let new_file_sql = new_file.display().to_string();
        let escapes = [
            format!("ATTACH '{accounts}' AS a"),
            format!("ATTACH DATABASE '{new_file_sql}' AS b"),
            format!("VACUUM INTO '{new_file_sql}'"),
            "VACUUM".to_string(),
            "DETACH temp".to_string(),
            "SELECT load_extension('x')".to_string(),
            "PRAGMA foreign_keys = OFF".to_string(),
            "PRAGMA writable_schema = 1".to_string(),
            "PRAGMA main.journal_mode = DELETE".to_string(),
            "PRAGMA query_only(1)".to_string(),
            "PRAGMA temp.foreign_keys".to_string(),
            "PRAGMA database_list".to_string(),
            "PRAGMA optimize".to_string(),
            "SELECT * FROM pragma_table_info('t')".to_string(),
            "CREATE TEMP TABLE tt (a)".to_string(),
            "CREATE TABLE temp.tt (a)".to_string(),
            "CREATE TEMPORARY VIEW tv AS SELECT 1".to_string(),
            "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END".to_string(),
            "CREATE VIRTUAL TABLE temp.f USING fts5(a)".to_string(),
            "SELECT last_insert_rowid()".to_string(),
            "SELECT changes() + total_changes()".to_string(),
        ];
        for sql in &escapes {
            let message = refused(&mut view, &conn, sql).await;
            // SQLite's words: "not authorized", "access to ... is prohibited" for a read,
            // "authorization denied" for VACUUM (its own ATTACH is refused).
            assert!(
                message.contains("refused by the host"),
                "`{sql}`: {message}"
            );
            // The connection stays usable.
            assert_eq!(integer(&mut view, &conn, "SELECT count(*) FROM t").await, 0);
        }
        assert!(
            !new_file.exists(),
            "ATTACH or VACUUM INTO created {new_file:?}"
        );

        // The temp schema's table can be read (ALTER TABLE needs it) but it is always empty,
        // and SQL cannot write it.
        let temp = exec(&mut view, &conn, "SELECT * FROM temp.sqlite_master", vec![])
            .await
            .unwrap();
        assert!(temp.rows.is_empty());
        let message = refused(&mut view, &conn, "UPDATE temp.sqlite_master SET sql = ''").await;
        assert!(message.contains("may not be modified"), "{message}");
        let message = refused(&mut view, &conn, "UPDATE sqlite_master SET sql = ''").await;
        assert!(message.contains("may not be modified"), "{message}");

        // Another label stays closed to this component.
        assert!(matches!(
            view.open("accounts".into()).await.unwrap(),
            Err(wit::Error::AccessDenied)
        ));
        wit::HostConnection::drop(&mut view, conn).await.unwrap();
        databases.check().await.unwrap();
    }

    #[tokio::test]
    async fn a_guest_works_freely_in_its_own_database() {
        let dir = TempDir::new();
        let databases = two_databases(&dir, POOL_SIZE).await;
        let mut table = ResourceTable::new();
        let allowed = vec!["products".to_string()];
        let mut view = view(&mut table, &databases, &allowed);
        let conn = open(&mut view).await;
        for sql in [
            "CREATE TABLE p (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, n INTEGER)",
            "CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER NOT NULL REFERENCES p (id) \
             ON DELETE CASCADE, q INTEGER CHECK (q >= 1))",
            "CREATE INDEX c_p ON c (p)",
            "CREATE VIEW pc AS SELECT p.name, c.q FROM p JOIN c ON c.p = p.id",
            "CREATE TRIGGER c_counts AFTER INSERT ON c BEGIN \
             UPDATE p SET n = coalesce(n, 0) + 1 WHERE id = NEW.p; END",
            "CREATE VIRTUAL TABLE words USING fts5(w)",
            "BEGIN IMMEDIATE",
            "INSERT INTO c (p, q) SELECT id, 2 FROM p",
            "SAVEPOINT s",
            "RELEASE s",
            "COMMIT",
            "ANALYZE",
        ] {
            exec(&mut view, &conn, sql, vec![]).await.unwrap();
        }
        let inserted = exec(
            &mut view,
            &conn,
            "INSERT INTO p (name) VALUES ($1) RETURNING id",
            vec![Value::Text("tea".into())],
        )
        .await
        .unwrap();
        assert!(matches!(inserted.rows[0].values[..], [Value::Integer(1)]));
        exec(
            &mut view,
            &conn,
            "INSERT INTO c (p, q) VALUES (1, 3)",
            vec![],
        )
        .await
        .unwrap();
        let query = "WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < 3) \
                     SELECT (SELECT n FROM p WHERE id = 1) * 100 + sum(pc.q) \
                     + (SELECT max(x) FROM k) \
                     FROM pc JOIN p ON p.name = pc.name WHERE p.id IN (SELECT p FROM c)";
        assert_eq!(integer(&mut view, &conn, query).await, 100 + 3 + 3);
        assert_eq!(
            integer(&mut view, &conn, "SELECT count(*) FROM json_each('[1, 2]')").await,
            2
        );
        let error = exec(
            &mut view,
            &conn,
            "INSERT INTO c (p, q) VALUES (9, 1)",
            vec![],
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&error, wit::Error::Io(m) if m.contains("FOREIGN KEY")),
            "{error:?}"
        );
        for (pragma, expected) in [
            ("PRAGMA foreign_keys", 1),
            ("pragma Main.user_version", 0),
            ("PRAGMA freelist_count", 0),
        ] {
            assert_eq!(
                integer(&mut view, &conn, pragma).await,
                expected,
                "{pragma}"
            );
        }
        let mode = exec(&mut view, &conn, "PRAGMA journal_mode", vec![])
            .await
            .unwrap();
        assert!(matches!(&mode.rows[0].values[..], [Value::Text(m)] if m == "wal"));
        // ALTER TABLE rewrites the schema through SQLite's own statements, temp's included.
        for sql in [
            "ALTER TABLE c ADD COLUMN z TEXT",
            "ALTER TABLE c RENAME COLUMN z TO y",
            "ALTER TABLE c DROP COLUMN y",
            "ALTER TABLE p RENAME TO product",
            "DROP VIEW pc",
            "DROP TRIGGER c_counts",
            "DELETE FROM product",
            "DROP TABLE c",
            "DROP TABLE words",
        ] {
            exec(&mut view, &conn, sql, vec![])
                .await
                .unwrap_or_else(|e| panic!("`{sql}`: {e:?}"));
        }
        wit::HostConnection::drop(&mut view, conn).await.unwrap();
    }

    #[tokio::test]
    async fn nothing_outlives_a_connection_resource() {
        let dir = TempDir::new();
        // One connection: the second resource gets the first one's.
        let databases = two_databases(&dir, 1).await;
        let mut table = ResourceTable::new();
        let allowed = vec!["products".to_string()];
        let mut view = view(&mut table, &databases, &allowed);

        let first = open(&mut view).await;
        for sql in [
            "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
            "CREATE TABLE child (parent INTEGER REFERENCES parent (id))",
            "INSERT INTO parent VALUES (7)",
        ] {
            exec(&mut view, &first, sql, vec![]).await.unwrap();
        }
        for sql in [
            "PRAGMA foreign_keys = OFF",
            "PRAGMA query_only = ON",
            "PRAGMA busy_timeout = 0",
            "PRAGMA recursive_triggers = ON",
            "PRAGMA temp_store = MEMORY",
            "CREATE TEMP TABLE leftover (a)",
            "CREATE TEMP TRIGGER spy AFTER INSERT ON child BEGIN DELETE FROM parent; END",
            "CREATE TEMP VIEW peek AS SELECT * FROM parent",
        ] {
            refused(&mut view, &first, sql).await;
        }
        // And a transaction left open, rolled back when the resource goes.
        exec(&mut view, &first, "BEGIN IMMEDIATE", vec![])
            .await
            .unwrap();
        exec(&mut view, &first, "INSERT INTO parent VALUES (8)", vec![])
            .await
            .unwrap();
        wit::HostConnection::drop(&mut view, first).await.unwrap();

        let second = open(&mut view).await;
        assert_eq!(integer(&mut view, &second, "PRAGMA foreign_keys").await, 1);
        assert_eq!(
            integer(
                &mut view,
                &second,
                "SELECT count(*) FROM sqlite_temp_master"
            )
            .await,
            0
        );
        assert_eq!(
            integer(&mut view, &second, "SELECT count(*) FROM parent").await,
            1
        );
        // Writable, and foreign keys still enforced.
        exec(&mut view, &second, "INSERT INTO child VALUES (7)", vec![])
            .await
            .unwrap();
        let error = exec(&mut view, &second, "INSERT INTO child VALUES (9)", vec![])
            .await
            .unwrap_err();
        assert!(
            matches!(&error, wit::Error::Io(m) if m.contains("FOREIGN KEY")),
            "{error:?}"
        );
        wit::HostConnection::drop(&mut view, second).await.unwrap();
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
