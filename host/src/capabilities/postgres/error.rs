//! sqlx's errors as the interface's `error`: a database error keeps its SQLSTATE, severity
//! and fields; a broken or unreachable server is a failed connection.

use crate::capabilities::postgres::bindings::spin::postgres::postgres::{
    self as wit, DbError, QueryError,
};

use std::fmt::Write as _;

use sqlx::postgres::{PgDatabaseError, PgSeverity};

/// A sqlx error as the interface's `error`, as the guest receives it.
pub(crate) fn error(error: sqlx::Error) -> wit::Error {
    match error {
        sqlx::Error::Database(db) => match db.try_downcast_ref::<PgDatabaseError>() {
            Some(pg) => wit::Error::QueryFailed(QueryError::DbError(db_error(pg))),
            None => wit::Error::QueryFailed(QueryError::Text(db.to_string())),
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Configuration(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => wit::Error::ConnectionFailed(error.to_string()),
        other => wit::Error::Other(other.to_string()),
    }
}

fn db_error(pg: &PgDatabaseError) -> DbError {
    let severity = match pg.severity() {
        PgSeverity::Panic => "PANIC",
        PgSeverity::Fatal => "FATAL",
        PgSeverity::Error => "ERROR",
        PgSeverity::Warning => "WARNING",
        PgSeverity::Notice => "NOTICE",
        PgSeverity::Debug => "DEBUG",
        PgSeverity::Info => "INFO",
        PgSeverity::Log => "LOG",
    };
    let mut extras = Vec::new();
    let fields = [
        ("hint", pg.hint()),
        ("where", pg.r#where()),
        ("schema", pg.schema()),
        ("table", pg.table()),
        ("column", pg.column()),
        ("data_type", pg.data_type()),
        ("constraint", pg.constraint()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            extras.push((name.to_owned(), value.to_owned()));
        }
    }
    let mut as_text = format!("{severity}: {}", pg.message());
    if let Some(detail) = pg.detail() {
        let _ = write!(as_text, " ({detail})");
    }
    DbError {
        as_text,
        severity: severity.to_owned(),
        code: pg.code().to_owned(),
        message: pg.message().to_owned(),
        detail: pg.detail().map(str::to_owned),
        extras,
    }
}
