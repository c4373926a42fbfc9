//! One storage API over both engines: `spin:sqlite` when the component's `database`
//! variable names a SQLite label, `spin:postgres@4` when it holds a `postgres://` URL.
//!
//! SQL uses numbered parameters `$1..$n` on both engines (numbered in order of first
//! appearance); rows are read by column name into engine-neutral values.

use std::cell::Cell;
use std::rc::Rc;

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use shop_database_address::DatabaseAddress;
use spin_sdk::{pg4, sqlite3};

use crate::error::ApiError;
use crate::migrations::{self, Migration};
use crate::time::Timestamp;

/// Which database engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `spin:sqlite/sqlite@3.0.0`, opened by label.
    Sqlite,
    /// `spin:postgres/postgres@4.0.0`, opened by URL.
    Postgres,
}

impl Engine {
    /// The engine an address names: a `postgres://` (or `postgresql://`) URL, else a SQLite label.
    pub fn for_address(address: &str) -> Self {
        match DatabaseAddress::parse(address) {
            DatabaseAddress::Postgres(_) => Engine::Postgres,
            DatabaseAddress::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// The case-insensitive `LIKE` operator (SQLite's `LIKE` already folds ASCII case).
    pub fn ilike(self) -> &'static str {
        match self {
            Engine::Sqlite => "LIKE",
            Engine::Postgres => "ILIKE",
        }
    }

    /// The statement that starts a write transaction (SQLite takes the write lock at once,
    /// so that two writers never deadlock upgrading their locks).
    fn begin(self) -> &'static str {
        match self {
            Engine::Sqlite => "BEGIN IMMEDIATE",
            Engine::Postgres => "BEGIN",
        }
    }
}

/// A `LIKE` pattern matching `text` anywhere, with `%`, `_` and `\` escaped:
/// use it as `column LIKE $1 ESCAPE '\'`.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The most lines (of a cart, an order) one statement built from them takes; more go in further
/// statements of the same transaction. A user's cart may hold any number of products: one
/// statement for all of them would pass the host's 64 KiB bound on a statement's text, or
/// SQLite's depth of an expression (a chain of `OR`s) past a few hundred.
pub const LINES_PER_STATEMENT: usize = 64;

/// A statement built piece by piece (optional filters, optional columns), numbering its
/// parameters `$1..$n` as they are bound. Bind in the order the placeholders appear in the
/// text: SQLite numbers `$n` parameters by first appearance, not by their digits.
#[derive(Debug, Clone, Default)]
pub struct Statement {
    sql: String,
    params: Vec<Param>,
}

impl Statement {
    /// Starts with fixed SQL text.
    pub fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            params: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Binds a parameter and answers its placeholder (`$3`), to use once or several times.
    pub fn bind(&mut self, param: impl Into<Param>) -> String {
        self.params.push(param.into());
        format!("${}", self.params.len())
    }

    /// Binds a parameter and appends its placeholder.
    pub fn push_bind(&mut self, param: impl Into<Param>) -> &mut Self {
        let placeholder = self.bind(param);
        self.sql.push_str(&placeholder);
        self
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The bound parameters, in placeholder order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }
}

/// A statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Any integer (bound as a 64-bit integer: every integer column is `BIGINT`).
    Int(i64),
    /// Text.
    Text(String),
    /// A boolean (an integer 0/1 on SQLite).
    Bool(bool),
    /// An instant: fixed-width RFC 3339 text on SQLite, a `TIMESTAMPTZ` on Postgres.
    Timestamp(Timestamp),
    /// SQL `NULL`.
    Null,
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Param::Int(value)
    }
}

impl From<i32> for Param {
    fn from(value: i32) -> Self {
        Param::Int(i64::from(value))
    }
}

impl From<u32> for Param {
    fn from(value: u32) -> Self {
        Param::Int(i64::from(value))
    }
}

impl From<bool> for Param {
    fn from(value: bool) -> Self {
        Param::Bool(value)
    }
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Param::Text(value)
    }
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Param::Text(value.to_owned())
    }
}

impl From<Timestamp> for Param {
    fn from(value: Timestamp) -> Self {
        Param::Timestamp(value)
    }
}

impl<T: Into<Param>> From<Option<T>> for Param {
    fn from(value: Option<T>) -> Self {
        value.map_or(Param::Null, Into::into)
    }
}

impl Param {
    fn to_sqlite(&self) -> sqlite3::Value {
        match self {
            Param::Int(value) => sqlite3::Value::Integer(*value),
            Param::Text(value) => sqlite3::Value::Text(value.clone()),
            Param::Bool(value) => sqlite3::Value::Integer(i64::from(*value)),
            Param::Timestamp(value) => sqlite3::Value::Text(value.to_string()),
            Param::Null => sqlite3::Value::Null,
        }
    }

    fn to_postgres(&self) -> pg4::ParameterValue {
        match self {
            Param::Int(value) => pg4::ParameterValue::Int64(*value),
            Param::Text(value) => pg4::ParameterValue::Str(value.clone()),
            Param::Bool(value) => pg4::ParameterValue::Boolean(*value),
            Param::Timestamp(value) => {
                let t = value.as_datetime();
                pg4::ParameterValue::Datetime((
                    t.year(),
                    to_u8(t.month()),
                    to_u8(t.day()),
                    to_u8(t.hour()),
                    to_u8(t.minute()),
                    to_u8(t.second()),
                    t.nanosecond(),
                ))
            }
            Param::Null => pg4::ParameterValue::DbNull,
        }
    }
}

/// Calendar fields are small; saturate rather than wrap if chrono ever says otherwise.
fn to_u8(value: u32) -> u8 {
    u8::try_from(value).unwrap_or(u8::MAX)
}

/// A value read from a row, the same whichever engine produced it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
    Timestamp(Timestamp),
    Other(String),
}

impl Value {
    fn from_sqlite(value: sqlite3::Value) -> Self {
        match value {
            sqlite3::Value::Integer(v) => Value::Int(v),
            sqlite3::Value::Real(v) => Value::Real(v),
            sqlite3::Value::Text(v) => Value::Text(v),
            sqlite3::Value::Blob(v) => Value::Bytes(v),
            sqlite3::Value::Null => Value::Null,
        }
    }

    fn from_postgres(value: pg4::DbValue) -> Self {
        match value {
            pg4::DbValue::Boolean(v) => Value::Bool(v),
            pg4::DbValue::Int8(v) => Value::Int(i64::from(v)),
            pg4::DbValue::Int16(v) => Value::Int(i64::from(v)),
            pg4::DbValue::Int32(v) => Value::Int(i64::from(v)),
            pg4::DbValue::Int64(v) => Value::Int(v),
            pg4::DbValue::Floating32(v) => Value::Real(f64::from(v)),
            pg4::DbValue::Floating64(v) => Value::Real(v),
            pg4::DbValue::Str(v) | pg4::DbValue::Decimal(v) | pg4::DbValue::Uuid(v) => {
                Value::Text(v)
            }
            pg4::DbValue::Binary(v) => Value::Bytes(v),
            pg4::DbValue::Datetime((year, month, day, hour, minute, second, nanos)) => {
                NaiveDate::from_ymd_opt(year, month.into(), day.into())
                    .and_then(|date| {
                        date.and_hms_nano_opt(hour.into(), minute.into(), second.into(), nanos)
                    })
                    .map(|t| Value::Timestamp(Timestamp::from_datetime(t.and_utc())))
                    .unwrap_or_else(|| {
                        Value::Other(format!("invalid datetime {year}-{month}-{day}"))
                    })
            }
            pg4::DbValue::Timestamp(seconds) => DateTime::from_timestamp(seconds, 0)
                .map(|t| Value::Timestamp(Timestamp::from_datetime(t)))
                .unwrap_or_else(|| Value::Other(format!("invalid timestamp {seconds}"))),
            pg4::DbValue::DbNull => Value::Null,
            other => Value::Other(format!("{other:?}")),
        }
    }
}

/// One result row; values are read by column name.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Rc<[String]>,
    values: Vec<Value>,
}

impl Row {
    fn value(&self, column: &str) -> Result<&Value, StorageError> {
        self.columns
            .iter()
            .position(|name| name == column)
            .and_then(|index| self.values.get(index))
            .ok_or_else(|| StorageError::decode(column, "no such column"))
    }

    /// An integer column (any width).
    pub fn int(&self, column: &str) -> Result<i64, StorageError> {
        self.opt_int(column)?
            .ok_or_else(|| StorageError::decode(column, "NULL where an integer was expected"))
    }

    /// An integer column that may be `NULL`.
    pub fn opt_int(&self, column: &str) -> Result<Option<i64>, StorageError> {
        match self.value(column)? {
            Value::Int(v) => Ok(Some(*v)),
            Value::Null => Ok(None),
            other => Err(StorageError::decode(
                column,
                &format!("expected an integer, got {other:?}"),
            )),
        }
    }

    /// A text column.
    pub fn text(&self, column: &str) -> Result<String, StorageError> {
        self.opt_text(column)?
            .ok_or_else(|| StorageError::decode(column, "NULL where text was expected"))
    }

    /// A text column that may be `NULL`.
    pub fn opt_text(&self, column: &str) -> Result<Option<String>, StorageError> {
        match self.value(column)? {
            Value::Text(v) => Ok(Some(v.clone())),
            Value::Null => Ok(None),
            other => Err(StorageError::decode(
                column,
                &format!("expected text, got {other:?}"),
            )),
        }
    }

    /// A boolean column (an integer 0/1 on SQLite).
    pub fn bool(&self, column: &str) -> Result<bool, StorageError> {
        match self.value(column)? {
            Value::Bool(v) => Ok(*v),
            Value::Int(v) => Ok(*v != 0),
            other => Err(StorageError::decode(
                column,
                &format!("expected a boolean, got {other:?}"),
            )),
        }
    }

    /// A timestamp column (RFC 3339 text on SQLite, `TIMESTAMPTZ` on Postgres).
    pub fn timestamp(&self, column: &str) -> Result<Timestamp, StorageError> {
        self.opt_timestamp(column)?
            .ok_or_else(|| StorageError::decode(column, "NULL where a timestamp was expected"))
    }

    /// A timestamp column that may be `NULL`.
    pub fn opt_timestamp(&self, column: &str) -> Result<Option<Timestamp>, StorageError> {
        match self.value(column)? {
            Value::Timestamp(v) => Ok(Some(*v)),
            Value::Text(text) => Timestamp::parse(text)
                .map(Some)
                .ok_or_else(|| StorageError::decode(column, &format!("not a timestamp: {text:?}"))),
            Value::Null => Ok(None),
            other => Err(StorageError::decode(
                column,
                &format!("expected a timestamp, got {other:?}"),
            )),
        }
    }

    /// A binary column.
    pub fn bytes(&self, column: &str) -> Result<Vec<u8>, StorageError> {
        match self.value(column)? {
            Value::Bytes(v) => Ok(v.clone()),
            Value::Text(v) => Ok(v.clone().into_bytes()),
            other => Err(StorageError::decode(
                column,
                &format!("expected bytes, got {other:?}"),
            )),
        }
    }

    /// A floating-point column (never money: money is integer cents).
    pub fn real(&self, column: &str) -> Result<f64, StorageError> {
        match self.value(column)? {
            Value::Real(v) => Ok(*v),
            other => Err(StorageError::decode(
                column,
                &format!("expected a real, got {other:?}"),
            )),
        }
    }
}

/// What can go wrong talking to the database, as callers need to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached or opened (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint refused the write (callers usually answer 400 or 409).
    #[error("unique constraint violated: {0}")]
    UniqueViolation(String),
    /// The statement failed otherwise (a bug: 500).
    #[error("query failed: {0}")]
    Query(String),
    /// A column held something other than the code expects (a bug: 500).
    #[error("unexpected value in column `{column}`: {reason}")]
    Decode {
        /// The column read.
        column: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl StorageError {
    fn decode(column: &str, reason: &str) -> Self {
        StorageError::Decode {
            column: column.to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// Whether a unique constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StorageError::UniqueViolation(_))
    }

    fn from_sqlite(error: sqlite3::Error) -> Self {
        match error {
            sqlite3::Error::NoSuchDatabase => StorageError::Unavailable("no such database".into()),
            sqlite3::Error::AccessDenied => StorageError::Unavailable("access denied".into()),
            sqlite3::Error::InvalidConnection => {
                StorageError::Unavailable("invalid connection".into())
            }
            sqlite3::Error::DatabaseFull => StorageError::Unavailable("database full".into()),
            sqlite3::Error::Io(message) => {
                let lower = message.to_ascii_lowercase();
                if lower.contains("unique constraint failed") {
                    StorageError::UniqueViolation(message)
                } else if ["database is locked", "busy", "unable to open", "disk i/o"]
                    .iter()
                    .any(|sign| lower.contains(sign))
                {
                    StorageError::Unavailable(message)
                } else {
                    StorageError::Query(message)
                }
            }
        }
    }

    fn from_postgres(error: pg4::PgError) -> Self {
        match error {
            pg4::PgError::ConnectionFailed(message) => StorageError::Unavailable(message),
            pg4::PgError::QueryFailed(pg4::QueryError::DbError(db)) => {
                if db.code == "23505" {
                    StorageError::UniqueViolation(db.message)
                } else if db.code.starts_with("08")
                    || db.code.starts_with("53")
                    || db.code.starts_with("57P")
                {
                    StorageError::Unavailable(db.as_text)
                } else {
                    StorageError::Query(db.as_text)
                }
            }
            pg4::PgError::QueryFailed(pg4::QueryError::Text(message))
            | pg4::PgError::Other(message) => Self::from_postgres_text(message),
            pg4::PgError::BadParameter(message) | pg4::PgError::ValueConversionFailed(message) => {
                StorageError::Query(message)
            }
        }
    }

    /// Errors the host could only describe in words (e.g. a pool that cannot connect).
    fn from_postgres_text(message: String) -> Self {
        let lower = message.to_ascii_lowercase();
        if lower.contains("23505") || lower.contains("duplicate key") {
            StorageError::UniqueViolation(message)
        } else if [
            "connect",
            "timed out",
            "closed",
            "refused",
            "broken pipe",
            "unreachable",
        ]
        .iter()
        .any(|sign| lower.contains(sign))
        {
            StorageError::Unavailable(message)
        } else {
            StorageError::Query(message)
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable(reason) => {
                eprintln!("database unavailable: {reason}");
                ApiError::ServiceUnavailable(
                    "Service unavailable: database unreachable.".to_owned(),
                )
            }
            StorageError::UniqueViolation(_) => {
                ApiError::Conflict("The record conflicts with an existing one.".to_owned())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

enum Connection {
    Sqlite(sqlite3::Connection),
    Postgres(pg4::Connection),
}

/// An open connection to the component's own database.
pub struct Db {
    connection: Connection,
    /// The service's embedded SQLite migrations, applied when a statement finds the schema
    /// lacking (none for a database opened by address).
    migrations: &'static [Migration],
    /// Whether a transaction is open (a migration then runs inside it).
    in_transaction: Cell<bool>,
    /// Whether the migrations are being applied (their own statements are not retried).
    migrating: Cell<bool>,
}

impl Db {
    /// Opens `service`'s database, named by the variable `<service>_database` (a SQLite label or
    /// a `postgres://` URL). The variable carries the service's name so that, embedded in another
    /// component as a Spin dependency, a service still finds its own database.
    pub fn open(service: &str) -> Result<Self, StorageError> {
        let variable = format!("{service}_database");
        let address = spin_sdk::variables::get(&variable).map_err(|e| {
            StorageError::Unavailable(format!("the `{variable}` variable is not set: {e}"))
        })?;
        let mut db = Self::open_address(&address)?;
        db.migrations = migrations::sqlite(service);
        Ok(db)
    }

    /// Opens a SQLite label or a `postgres://` URL.
    pub fn open_address(address: &str) -> Result<Self, StorageError> {
        let connection = match Engine::for_address(address) {
            Engine::Sqlite => Connection::Sqlite(
                sqlite3::Connection::open(address).map_err(StorageError::from_sqlite)?,
            ),
            Engine::Postgres => Connection::Postgres(
                pg4::Connection::open(address).map_err(StorageError::from_postgres)?,
            ),
        };
        Ok(Self {
            connection,
            migrations: &[],
            in_transaction: Cell::new(false),
            migrating: Cell::new(false),
        })
    }

    /// The engine behind this connection (for the rare SQL that differs).
    pub fn engine(&self) -> Engine {
        match self.connection {
            Connection::Sqlite(_) => Engine::Sqlite,
            Connection::Postgres(_) => Engine::Postgres,
        }
    }

    /// Runs a statement that returns no rows; answers how many rows it changed.
    pub fn execute(&self, sql: &str, params: &[Param]) -> Result<u64, StorageError> {
        match &self.connection {
            Connection::Sqlite(connection) => {
                self.run_sqlite(connection, sql, params)?;
                Ok(connection.changes())
            }
            Connection::Postgres(connection) => {
                let values: Vec<pg4::ParameterValue> =
                    params.iter().map(Param::to_postgres).collect();
                connection
                    .execute(sql, &values)
                    .map_err(StorageError::from_postgres)
            }
        }
    }

    /// Runs a statement that returns rows (`SELECT`, or a write with `RETURNING`).
    pub fn query(&self, sql: &str, params: &[Param]) -> Result<Vec<Row>, StorageError> {
        match &self.connection {
            Connection::Sqlite(connection) => {
                let result = self.run_sqlite(connection, sql, params)?;
                let columns: Rc<[String]> = result.columns.into();
                Ok(result
                    .rows
                    .into_iter()
                    .map(|row| Row {
                        columns: Rc::clone(&columns),
                        values: row.values.into_iter().map(Value::from_sqlite).collect(),
                    })
                    .collect())
            }
            Connection::Postgres(connection) => {
                let values: Vec<pg4::ParameterValue> =
                    params.iter().map(Param::to_postgres).collect();
                let result = connection
                    .query(sql, &values)
                    .map_err(StorageError::from_postgres)?;
                let columns: Rc<[String]> = result
                    .columns
                    .into_iter()
                    .map(|column| column.name)
                    .collect();
                Ok(result
                    .rows
                    .into_iter()
                    .map(|row| Row {
                        columns: Rc::clone(&columns),
                        values: row.into_iter().map(Value::from_postgres).collect(),
                    })
                    .collect())
            }
        }
    }

    /// Runs a statement on SQLite; where the schema lacks what it uses, applies the service's
    /// embedded migrations and runs it once more (a database `spin up` has not migrated).
    fn run_sqlite(
        &self,
        connection: &sqlite3::Connection,
        sql: &str,
        params: &[Param],
    ) -> Result<sqlite3::QueryResult, StorageError> {
        let values: Vec<sqlite3::Value> = params.iter().map(Param::to_sqlite).collect();
        match connection.execute(sql, &values) {
            Ok(result) => Ok(result),
            Err(error) => {
                let error = StorageError::from_sqlite(error);
                if self.migrations.is_empty()
                    || self.migrating.get()
                    || !migrations::is_missing_schema(&error)
                {
                    return Err(error);
                }
                self.migrating.set(true);
                let migrated = migrations::apply(self, self.migrations, self.in_transaction.get());
                self.migrating.set(false);
                migrated?;
                connection
                    .execute(sql, &values)
                    .map_err(StorageError::from_sqlite)
            }
        }
    }

    /// Runs a built statement that returns rows.
    pub fn query_statement(&self, statement: &Statement) -> Result<Vec<Row>, StorageError> {
        self.query(statement.sql(), statement.params())
    }

    /// Runs a built statement that returns no rows; answers the rows it changed.
    pub fn execute_statement(&self, statement: &Statement) -> Result<u64, StorageError> {
        self.execute(statement.sql(), statement.params())
    }

    /// The first row a statement returns, if any.
    pub fn query_one(&self, sql: &str, params: &[Param]) -> Result<Option<Row>, StorageError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs `body` in a transaction: committed if it returns `Ok`, rolled back otherwise.
    pub fn transaction<T, E>(&self, body: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        self.execute(self.engine().begin(), &[])?;
        self.in_transaction.set(true);
        let outcome = body(self);
        self.in_transaction.set(false);
        match outcome {
            Ok(value) => match self.execute("COMMIT", &[]) {
                Ok(_) => Ok(value),
                Err(error) => {
                    let _ = self.execute("ROLLBACK", &[]);
                    Err(error.into())
                }
            },
            Err(error) => {
                // The body's error is the one to report; a failed rollback ends with the connection.
                let _ = self.execute("ROLLBACK", &[]);
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_their_parameters() {
        let mut statement = Statement::new("SELECT * FROM t WHERE a = ");
        statement.push_bind(1i64).push(" AND (b LIKE ");
        let pattern = statement.bind("x");
        statement.push(&format!("{pattern} OR c LIKE {pattern})"));
        assert_eq!(
            statement.sql(),
            "SELECT * FROM t WHERE a = $1 AND (b LIKE $2 OR c LIKE $2)"
        );
        assert_eq!(
            statement.params(),
            &[Param::Int(1), Param::Text("x".into())]
        );
    }

    #[test]
    fn engines_by_address() {
        assert_eq!(Engine::for_address("products"), Engine::Sqlite);
        assert_eq!(
            Engine::for_address("postgres://u@h:5432/db"),
            Engine::Postgres
        );
        assert_eq!(Engine::for_address("postgresql://u@h/db"), Engine::Postgres);
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(contains_pattern("é"), "%é%");
    }

    #[test]
    fn rows_read_by_name_across_engines() {
        let row = Row {
            columns: vec![
                "id".to_owned(),
                "at".to_owned(),
                "pg_at".to_owned(),
                "n".to_owned(),
            ]
            .into(),
            values: vec![
                Value::from_postgres(pg4::DbValue::Int32(7)),
                Value::from_sqlite(sqlite3::Value::Text("2026-11-25T13:00:00.123456Z".into())),
                Value::from_postgres(pg4::DbValue::Datetime((
                    2026,
                    11,
                    25,
                    13,
                    0,
                    0,
                    123_456_000,
                ))),
                Value::Null,
            ],
        };
        assert_eq!(row.int("id").unwrap(), 7);
        assert_eq!(
            row.timestamp("at").unwrap(),
            row.timestamp("pg_at").unwrap()
        );
        assert_eq!(row.opt_int("n").unwrap(), None);
        assert!(row.int("n").is_err());
        assert!(row.text("id").is_err());
        assert!(row.int("missing").is_err());
    }

    #[test]
    fn timestamps_bind_per_engine() {
        let t = Timestamp::parse("2026-11-25T13:00:00.123456Z").unwrap();
        assert!(matches!(
            Param::from(t).to_sqlite(),
            sqlite3::Value::Text(text) if text == "2026-11-25T13:00:00.123456Z"
        ));
        assert!(matches!(
            Param::from(t).to_postgres(),
            pg4::ParameterValue::Datetime((2026, 11, 25, 13, 0, 0, 123_456_000))
        ));
    }

    #[test]
    fn errors_are_classified() {
        let unique = StorageError::from_sqlite(sqlite3::Error::Io(
            "UNIQUE constraint failed: users.username".into(),
        ));
        assert!(unique.is_unique_violation());
        let down = StorageError::from_postgres(pg4::PgError::ConnectionFailed("refused".into()));
        let api: ApiError = down.into();
        assert_eq!(api.status(), 503);
        assert!(api
            .detail()
            .unwrap()
            .starts_with("Service unavailable: database"));
    }
}
