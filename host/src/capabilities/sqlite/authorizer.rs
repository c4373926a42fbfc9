//! What a guest's statement may reach: the limits and the authorizer every connection gets
//! when it is opened (the guests' and the host's own), which confine it to its own file.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

use libsqlite3_sys as ffi;
use sqlx::sqlite::SqliteConnection;

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

/// The SQL functions a guest may call: SQLite's core scalar, aggregate and window functions,
/// the date and time, math and JSON functions, and FTS5's auxiliary functions: what a service's
/// SQL plausibly needs. Anything else (an obscure function where the next memory-safety bug may
/// sit, such as `concat_ws` in CVE-2025-29087; `load_extension`; the FTS3 tokenizer; the
/// compile-option readers) is refused when the statement is prepared. Left out on purpose too:
/// `last_insert_rowid`, `changes` and `total_changes`, which answer for the pooled connection's
/// earlier statements, which may be another resource's (the connection resource's
/// `last-insert-rowid` and `changes` answer for the resource itself).
/// Sorted, for the binary search in [`function_allowed`].
const ALLOWED_FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "avg",
    "bm25",
    "ceil",
    "ceiling",
    "char",
    "coalesce",
    "concat",
    "cos",
    "cosh",
    "count",
    "cume_dist",
    "current_date",
    "current_time",
    "current_timestamp",
    "date",
    "datetime",
    "degrees",
    "dense_rank",
    "exp",
    "first_value",
    "floor",
    "format",
    "glob",
    "group_concat",
    "hex",
    "highlight",
    "ifnull",
    "iif",
    "instr",
    "json",
    "json_array",
    "json_array_length",
    "json_each",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_insert",
    "json_object",
    "json_patch",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_set",
    "json_tree",
    "json_type",
    "json_valid",
    "julianday",
    "lag",
    "last_value",
    "lead",
    "length",
    "like",
    "likelihood",
    "likely",
    "ln",
    "log",
    "log10",
    "log2",
    "lower",
    "ltrim",
    "match",
    "max",
    "min",
    "mod",
    "nth_value",
    "ntile",
    "nullif",
    "octet_length",
    "percent_rank",
    "pi",
    "pow",
    "power",
    "printf",
    "quote",
    "radians",
    "random",
    "rank",
    "replace",
    "round",
    "row_number",
    "rtrim",
    "sign",
    "sin",
    "sinh",
    "snippet",
    "sqrt",
    "strftime",
    "string_agg",
    "substr",
    "substring",
    "sum",
    "tan",
    "tanh",
    "time",
    "timediff",
    "total",
    "trim",
    "trunc",
    "typeof",
    "unicode",
    "unixepoch",
    "unlikely",
    "upper",
];

/// Functions SQLite's own ALTER TABLE statements call while they rewrite the schema (flagged
/// internal: SQL cannot call them itself).
const INTERNAL_PREFIXES: &[&str] = &["sqlite_rename_", "sqlite_drop_column"];

/// Whether a guest statement may call the function `name`.
fn function_allowed(name: Option<&[u8]>) -> bool {
    let Some(name) = name else {
        return false;
    };
    // No allocation here (this runs inside SQLite's prepare): compare case-insensitively
    // against the sorted lower-case list.
    let found = ALLOWED_FUNCTIONS
        .binary_search_by(|allowed| {
            let allowed = allowed.as_bytes();
            allowed
                .iter()
                .copied()
                .cmp(name.iter().map(u8::to_ascii_lowercase))
        })
        .is_ok();
    found
        || INTERNAL_PREFIXES.iter().any(|prefix| {
            name.len() >= prefix.len()
                && name[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        })
}

/// The limits every connection gets: a value (string or blob, the largest statement any
/// function may build) of at most `--max-value-bytes`, statement text of at most
/// `--max-sql-bytes`, at most 64 arguments to a function, and at most 250,000 virtual machine
/// operations in one prepared statement. Each is a bound on memory the host holds.
fn limits() -> [(c_int, c_int); 4] {
    let bounds = crate::capabilities::bounds::get();
    let clamp = |bytes: usize| c_int::try_from(bytes).unwrap_or(c_int::MAX);
    [
        (ffi::SQLITE_LIMIT_LENGTH, clamp(bounds.max_value_bytes)),
        (ffi::SQLITE_LIMIT_SQL_LENGTH, clamp(bounds.max_sql_bytes)),
        (ffi::SQLITE_LIMIT_FUNCTION_ARG, 64),
        (ffi::SQLITE_LIMIT_VDBE_OP, 250_000),
    ]
}

/// Confines a new sqlx connection (the host's own: migrations, health checks) as
/// [`confine_handle`] does a guest's.
pub(super) async fn confine(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is an open connection, and while `handle` lives sqlx's worker thread makes
    // no call on it.
    unsafe { confine_handle(db) }.map_err(|message| sqlx::Error::Configuration(message.into()))
}

/// Confines a connection to its own database file: no attached database (which also rules out
/// `VACUUM` and `VACUUM INTO`), no extension loading, defensive mode (no SQL that could corrupt
/// the file, such as `writable_schema`), and [`authorize`] on every statement.
///
/// # Safety
///
/// `db` is an open connection that nothing else uses during the call.
pub(super) unsafe fn confine_handle(db: *mut ffi::sqlite3) -> Result<(), String> {
    let (off, on): (c_int, c_int) = (0, 1);
    let no_result = ptr::null_mut::<c_int>();
    // SAFETY: as the function's contract says. `sqlite3_db_config` with these options takes an
    // int and an int pointer (NULL: the new value is not read back). The authorizer is a plain
    // function with no user data, so it outlives the connection and holds nothing that could
    // dangle.
    let (attached, results) = unsafe {
        ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_ATTACHED, 0);
        for (limit, value) in limits() {
            ffi::sqlite3_limit(db, limit, value);
        }
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
    // SAFETY: as above; a negative value reads a limit back.
    let limits_hold = limits()
        .iter()
        .all(|&(limit, value)| unsafe { ffi::sqlite3_limit(db, limit, -1) } <= value);
    if attached != 0 || !limits_hold || results.iter().any(|&result| result != ffi::SQLITE_OK) {
        return Err(format!(
            "cannot confine a SQLite connection to its database \
             (attached databases allowed: {attached}, results: {results:?})"
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
        ffi::SQLITE_FUNCTION => function_allowed(arg2),
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

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::Connection as _;

    use super::*;

    #[test]
    fn guest_may_read_but_not_set_or_escape() {
        let may = |action, arg1: Option<&str>, arg2: Option<&str>, arg3: Option<&str>| {
            guest_may(
                action,
                arg1.map(str::as_bytes),
                arg2.map(str::as_bytes),
                arg3.map(str::as_bytes),
            )
        };
        assert!(may(ffi::SQLITE_READ, Some("t"), Some("a"), Some("main")));
        assert!(may(ffi::SQLITE_INSERT, Some("t"), None, Some("MAIN")));
        assert!(may(ffi::SQLITE_FUNCTION, None, Some("json_each"), None));
        assert!(may(ffi::SQLITE_PRAGMA, Some("user_version"), None, None));
        assert!(may(
            ffi::SQLITE_PRAGMA,
            Some("Page_Count"),
            None,
            Some("main")
        ));
        assert!(may(ffi::SQLITE_ALTER_TABLE, Some("main"), Some("t"), None));
        assert!(may(
            ffi::SQLITE_READ,
            Some("sqlite_temp_master"),
            Some("sql"),
            Some("temp")
        ));

        assert!(!may(ffi::SQLITE_ATTACH, Some("x.db"), None, None));
        assert!(!may(ffi::SQLITE_DETACH, Some("temp"), None, None));
        assert!(!may(
            ffi::SQLITE_CREATE_TEMP_TABLE,
            Some("t"),
            None,
            Some("temp")
        ));
        assert!(!may(ffi::SQLITE_INSERT, Some("t"), None, Some("temp")));
        assert!(!may(ffi::SQLITE_ALTER_TABLE, Some("temp"), Some("t"), None));
        assert!(!may(
            ffi::SQLITE_PRAGMA,
            Some("user_version"),
            Some("1"),
            None
        ));
        assert!(!may(
            ffi::SQLITE_PRAGMA,
            Some("user_version"),
            None,
            Some("temp")
        ));
        assert!(!may(ffi::SQLITE_PRAGMA, Some("database_list"), None, None));
        assert!(!may(
            ffi::SQLITE_FUNCTION,
            None,
            Some("LOAD_EXTENSION"),
            None
        ));
        assert!(!may(ffi::SQLITE_FUNCTION, None, Some("changes"), None));
        assert!(!may(
            ffi::SQLITE_UPDATE,
            Some("sqlite_master"),
            Some("sql"),
            Some("temp")
        ));
    }

    #[test]
    fn only_listed_functions_are_allowed() {
        assert!(ALLOWED_FUNCTIONS.windows(2).all(|pair| pair[0] < pair[1]));
        for name in [
            "count",
            "COUNT",
            "json_object",
            "Lower",
            "strftime",
            "bm25",
            "upper",
        ] {
            assert!(function_allowed(Some(name.as_bytes())), "{name}");
        }
        assert!(function_allowed(Some(b"sqlite_rename_column")));
        for name in [
            "concat_ws",
            "load_extension",
            "randomblob",
            "zeroblob",
            "fts3_tokenizer",
            "sqlite_compileoption_get",
            "changes",
            "total_changes",
            "last_insert_rowid",
            "upperx",
            "",
        ] {
            assert!(!function_allowed(Some(name.as_bytes())), "{name}");
        }
        assert!(!function_allowed(None));
    }

    #[tokio::test]
    async fn a_confined_connection_keeps_to_its_database() {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").unwrap();
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        confine(&mut conn).await.unwrap();
        for sql in [
            "ATTACH ':memory:' AS a",
            "PRAGMA user_version = 1",
            "CREATE TEMP TABLE t (a)",
            "SELECT changes()",
            "SELECT concat_ws(',', 'a', 'b')",
            "SELECT randomblob(16)",
        ] {
            let error = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
            assert!(
                error.to_string().contains("not authorized"),
                "`{sql}`: {error}"
            );
        }
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(version, 0);
        sqlx::query("CREATE TABLE t (a)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
}
