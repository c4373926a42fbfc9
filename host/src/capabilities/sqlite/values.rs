//! Conversions between the interface's values and errors and sqlx's: a guest's parameters into
//! arguments, a row's values as SQLite stored them, and sqlx's errors into the guest's `error`.

use libsqlite3_sys as ffi;
use sqlx::sqlite::{SqliteArguments, SqliteRow, SqliteValueRef};
use sqlx::{Arguments as _, Column as _, Decode, Row as _, Sqlite, TypeInfo as _, ValueRef as _};

use crate::capabilities::sqlite::bindings::spin::sqlite::sqlite::{self as wit, Value};

/// A guest's parameters as sqlx arguments, in order.
pub(super) fn arguments(parameters: Vec<Value>) -> Result<SqliteArguments<'static>, wit::Error> {
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

/// The names of a row's columns, in order.
pub(super) fn column_names(row: &SqliteRow) -> Vec<String> {
    row.columns()
        .iter()
        .map(|column| column.name().to_owned())
        .collect()
}

/// A row's values, in column order.
pub(super) fn row_values(row: &SqliteRow) -> Result<Vec<Value>, wit::Error> {
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

/// The type SQLite stored a value as.
enum StorageClass {
    Integer,
    Real,
    Text,
    Blob,
}

/// The guest's `error` for a failed sqlx call, naming what the host refused, if it did.
pub(super) fn io_error(error: sqlx::Error) -> wit::Error {
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
