//! The host side of the interface: what a guest's calls reach ([`SqliteView`]), adding it to a
//! linker, and the `spin:sqlite` functions on a connection resource.

use anyhow::Result;
use tracing::Instrument as _;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::capabilities::sqlite::bindings::spin::sqlite::sqlite::{
    self as wit, QueryResult, RowResult, Value,
};
use crate::capabilities::sqlite::connection::Connection;
use crate::capabilities::sqlite::databases::SqliteDatabases;
use crate::capabilities::sqlite::raw::{self, NotInline, SqlError};
use crate::capabilities::sqlite::statement::StatementShape;
use crate::telemetry::statement_span;

/// What a guest's `spin:sqlite` calls reach: its store's resources and the databases it may open.
pub struct SqliteView<'a> {
    /// The store's resource table, where the guest's connections live.
    pub table: &'a mut ResourceTable,
    /// The app's databases.
    pub databases: &'a SqliteDatabases,
    /// The labels the component may open (its `sqlite_databases`).
    pub allowed: &'a [String],
    /// When the request must be over: no statement of it runs past this.
    pub deadline: std::time::Instant,
}

/// Adds `spin:sqlite/sqlite@3.0.0` to `linker`, reaching each store's view through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> SqliteView<'_>,
) -> Result<()> {
    wit::add_to_linker::<T, SqliteData>(linker, get).map_err(anyhow::Error::from)
}

/// The [`HasData`] of `spin:sqlite`: a store's [`SqliteView`].
struct SqliteData;

impl HasData for SqliteData {
    type Data<'a> = SqliteView<'a>;
}

impl Connection {
    /// Runs `statement` on the resource's pooled connection (taking one on the first call): on
    /// this thread when it only reads and needs no wait, else on a blocking thread; then
    /// updates the counters the guest may ask for.
    async fn execute(
        &mut self,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, wit::Error> {
        crate::capabilities::bounds::get()
            .check_call(&statement, parameters.iter().map(value_size))
            .map_err(wit::Error::Io)?;
        let shape = StatementShape::scan(&statement).map_err(wit::Error::Io)?;
        self.pool.count(shape.kind());
        let parameters: Vec<raw::Value> = parameters.into_iter().map(to_raw).collect();
        let conn = match &mut self.conn {
            Some(conn) => conn,
            slot @ None => slot.insert(self.pool.acquire().await.map_err(to_wit_error)?),
        };
        // A writer waits for its turn here, in line, not in SQLite's sleeping busy handler.
        if shape.takes_write_lock {
            conn.take_write_turn(self.deadline)
                .await
                .map_err(to_wit_error)?;
        }
        // With the write turn, nothing else of the host holds the lock: writes, BEGIN and
        // COMMIT run inline too (a lock another process holds sends them to a blocking thread).
        let writer = conn.has_write_turn();
        let inline = writer || (!shape.controls_transaction && !shape.modifies_rows);
        let ran = if inline {
            conn.run_inline(&statement, &parameters, writer)
        } else {
            Err(NotInline::Blocking)
        };
        let ran = match ran {
            Ok(result) => Ok(result),
            Err(NotInline::Failed(error)) => Err(to_wit_error(error)),
            Err(NotInline::Blocking) => self.run_blocking(statement, parameters).await,
        };
        // The turn passes on once the statement left no transaction open, failed or not.
        if let Some(conn) = &mut self.conn {
            conn.end_write_turn_if_done();
        }
        let result = ran?;
        // The pooled connection served other resources before: its counters reflect this
        // resource only after a statement of this resource that sets them.
        if let (Some(conn), true) = (&self.conn, shape.modifies_rows) {
            self.changes = conn.changes();
            if shape.may_insert && self.changes > 0 {
                self.last_insert_rowid = conn.last_insert_rowid();
            }
        }
        Ok(QueryResult {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|values| RowResult {
                    values: values.into_iter().map(from_raw).collect(),
                })
                .collect(),
        })
    }

    /// Runs `statement` on a blocking thread, where it may wait for locks. Should the guest's
    /// request end meanwhile, the connection goes back to the pool when the statement is done.
    async fn run_blocking(
        &mut self,
        statement: String,
        parameters: Vec<raw::Value>,
    ) -> Result<raw::QueryResult, wit::Error> {
        let Some(mut conn) = self.conn.take() else {
            return Err(wit::Error::InvalidConnection);
        };
        // Should this call be dropped (its request timed out, its client left), the guard
        // stops the statement at SQLite's next look, and the connection goes back to its pool.
        let cancelled = CancelOnDrop::default();
        let watch = raw::Watch {
            deadline: Some(self.deadline),
            cancelled: cancelled.0.clone(),
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = conn.run(&statement, &parameters, watch);
            (conn, result)
        })
        .await
        .map_err(|err| wit::Error::Io(format!("the statement failed: {err}")))?;
        cancelled.disarm();
        self.conn = Some(conn);
        result.map_err(to_wit_error)
    }
}

/// Sets its flag when dropped while armed: a blocking statement's call that went away.
#[derive(Default)]
struct CancelOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>, bool);

impl CancelOnDrop {
    /// The call finished: nothing to stop.
    fn disarm(mut self) {
        self.1 = true;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// How many bytes a guest's value holds.
fn value_size(value: &Value) -> usize {
    match value {
        Value::Text(v) => v.len(),
        Value::Blob(v) => v.len(),
        _ => 8,
    }
}

/// A guest's value for SQLite.
fn to_raw(value: Value) -> raw::Value {
    match value {
        Value::Integer(v) => raw::Value::Integer(v),
        Value::Real(v) => raw::Value::Real(v),
        Value::Text(v) => raw::Value::Text(v),
        Value::Blob(v) => raw::Value::Blob(v),
        Value::Null => raw::Value::Null,
    }
}

/// A value SQLite answered, for the guest.
fn from_raw(value: raw::Value) -> Value {
    match value {
        raw::Value::Integer(v) => Value::Integer(v),
        raw::Value::Real(v) => Value::Real(v),
        raw::Value::Text(v) => Value::Text(v),
        raw::Value::Blob(v) => Value::Blob(v),
        raw::Value::Null => Value::Null,
    }
}

/// A statement's failure as the interface's `error`.
fn to_wit_error(error: SqlError) -> wit::Error {
    match error {
        SqlError::DatabaseFull => wit::Error::DatabaseFull,
        SqlError::Io(message) => wit::Error::Io(message),
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
        let Some(pool) = self.databases.guest_pool(&database) else {
            return Ok(Err(wit::Error::NoSuchDatabase));
        };
        Ok(self
            .table
            .push(Connection::new(pool.clone(), self.deadline))
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
        let span = statement_span("sqlite", &statement);
        Ok(connection
            .execute(statement, parameters)
            .instrument(span)
            .await)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

    use super::*;
    use crate::capabilities::sqlite::databases::tests::{databases, two_databases, TempDir};
    use crate::capabilities::sqlite::databases::POOL_SIZE;

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
            deadline: std::time::Instant::now() + Duration::from_secs(30),
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
        assert!(!view.table.get(&conn).unwrap().in_transaction());

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
        sqlx::query(sqlx::AssertSqlSafe(format!("ATTACH '{accounts}' AS a")))
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

    /// A read that overruns the inline budget is stopped and run again on a blocking thread:
    /// it answers in full, and the guest's thread keeps serving other work meanwhile (the
    /// test's runtime has one thread, which a ticker shares with the query).
    #[tokio::test]
    async fn a_long_read_moves_off_the_guests_thread_and_answers_in_full() {
        let dir = TempDir::new();
        let databases = databases(&dir).await;
        let mut table = ResourceTable::new();
        let allowed = vec!["products".to_string()];
        let mut view = view(&mut table, &databases, &allowed);
        let conn = open(&mut view).await;
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        let started = std::time::Instant::now();
        let count = integer(
            &mut view,
            &conn,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) \
             SELECT count(*) FROM c",
        )
        .await;
        let took = started.elapsed();
        ticker.abort();
        assert_eq!(count, 2_000_000);
        assert!(
            took > Duration::from_millis(40),
            "too quick to show anything: {took:?}"
        );
        let ticks = ticks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            u128::from(ticks) * 4 >= took.as_millis(),
            "the thread was blocked: {ticks} ticks of 1 ms in {took:?}"
        );
        wit::HostConnection::drop(&mut view, conn).await.unwrap();
    }

    /// A writer that must wait for another connection's write lock waits on a blocking thread:
    /// on a one-thread runtime the holder can still commit, and the waiter then goes on.
    #[tokio::test]
    async fn a_writer_waits_for_the_lock_without_blocking_the_holder() {
        let dir = TempDir::new();
        let databases = databases(&dir).await;
        let allowed = vec!["products".to_string()];
        let (mut first_table, mut second_table) = (ResourceTable::new(), ResourceTable::new());
        let mut first = view(&mut first_table, &databases, &allowed);
        let mut second = view(&mut second_table, &databases, &allowed);
        let holder = open(&mut first).await;
        let waiter = open(&mut second).await;
        exec(&mut first, &holder, "CREATE TABLE t (a)", vec![])
            .await
            .unwrap();
        exec(&mut first, &holder, "BEGIN IMMEDIATE", vec![])
            .await
            .unwrap();
        exec(&mut first, &holder, "INSERT INTO t VALUES (1)", vec![])
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let (waited, committed) = tokio::join!(
            exec(&mut second, &waiter, "INSERT INTO t VALUES (2)", vec![]),
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                exec(&mut first, &holder, "COMMIT", vec![]).await
            }
        );
        committed.unwrap();
        waited.unwrap();
        assert!(started.elapsed() < Duration::from_secs(4));
        // A read meanwhile would not have waited: WAL readers see the last commit.
        assert_eq!(
            integer(&mut second, &waiter, "SELECT count(*) FROM t").await,
            2
        );
        wit::HostConnection::drop(&mut first, holder).await.unwrap();
        wit::HostConnection::drop(&mut second, waiter)
            .await
            .unwrap();
    }

    /// Writers to one database wait in line for their turn, first come first served, for as
    /// long as their requests may: past SQLite's own busy timeout, which a writer waiting in
    /// SQLite's busy handler would have failed at. Readers do not wait.
    #[tokio::test]
    async fn writers_wait_in_line_past_the_busy_timeout_in_order() {
        let dir = TempDir::new();
        let databases = databases(&dir).await;
        let allowed = vec!["products".to_string()];
        let mut tables: Vec<ResourceTable> = (0..5).map(|_| ResourceTable::new()).collect();
        let mut views: Vec<SqliteView<'_>> = tables
            .iter_mut()
            .map(|table| view(table, &databases, &allowed))
            .collect();
        let mut conns = Vec::new();
        for view in &mut views {
            conns.push(open(view).await);
        }
        let (holder_view, rest) = views.split_first_mut().unwrap();
        let (reader_view, waiter_views) = rest.split_first_mut().unwrap();
        let holder = &conns[0];
        exec(holder_view, holder, "CREATE TABLE t (a)", vec![])
            .await
            .unwrap();
        exec(holder_view, holder, "BEGIN IMMEDIATE", vec![])
            .await
            .unwrap();
        exec(holder_view, holder, "INSERT INTO t VALUES (0)", vec![])
            .await
            .unwrap();
        let [first, second, third] = waiter_views else {
            unreachable!()
        };
        // Each waiter holds its connection before the line forms: the line is what is tested.
        for (view, conn) in [&mut *first, &mut *second, &mut *third]
            .into_iter()
            .zip(&conns[2..])
        {
            integer(view, conn, "SELECT 1").await;
        }
        let statements: Vec<String> = (1..=3)
            .map(|n| format!("INSERT INTO t VALUES ({n})"))
            .collect();
        let (one, two, three, read, committed) = tokio::join!(
            exec(first, &conns[2], &statements[0], vec![]),
            exec(second, &conns[3], &statements[1], vec![]),
            exec(third, &conns[4], &statements[2], vec![]),
            async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                integer(reader_view, &conns[1], "SELECT count(*) FROM t").await
            },
            async {
                tokio::time::sleep(raw::BUSY_TIMEOUT + Duration::from_millis(500)).await;
                exec(holder_view, holder, "COMMIT", vec![]).await
            }
        );
        committed.unwrap();
        for waited in [one, two, three] {
            waited.unwrap();
        }
        assert_eq!(read, 0, "a reader saw the last commit without waiting");
        let order = exec(
            reader_view,
            &conns[1],
            "SELECT a FROM t ORDER BY rowid",
            vec![],
        )
        .await
        .unwrap();
        let order: Vec<i64> = order
            .rows
            .iter()
            .map(|row| match row.values[0] {
                Value::Integer(n) => n,
                ref other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            order,
            vec![0, 1, 2, 3],
            "the writers took their turns in the order they came"
        );
    }

    /// Commits do not checkpoint (they would copy the WAL into the file and sync it on the
    /// request's thread): once the WAL passes its length, the pool checkpoints it on a blocking
    /// thread, and the next commit starts the WAL over.
    #[tokio::test]
    async fn the_wal_is_checkpointed_off_the_requests_path() {
        let dir = TempDir::new();
        let databases = databases(&dir).await;
        let allowed = vec!["products".to_string()];
        let mut table = ResourceTable::new();
        let mut view = view(&mut table, &databases, &allowed);
        let conn = open(&mut view).await;
        exec(&mut view, &conn, "CREATE TABLE t (a TEXT)", vec![])
            .await
            .unwrap();
        let frames = |view: &SqliteView<'_>| {
            view.table
                .get(&conn)
                .unwrap()
                .conn
                .as_ref()
                .unwrap()
                .wal_frames()
        };
        let row = || vec![Value::Text("x".repeat(6000))];
        let mut grown = 0;
        for _ in 0..2000 {
            exec(&mut view, &conn, "INSERT INTO t VALUES ($1)", row())
                .await
                .unwrap();
            grown = grown.max(frames(&view));
            if grown >= 1000 {
                break;
            }
        }
        assert!(grown >= 1000, "the WAL grew to {grown} frames only");
        let started = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            exec(&mut view, &conn, "INSERT INTO t VALUES ($1)", row())
                .await
                .unwrap();
            if frames(&view) < 100 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the WAL was not checkpointed: {} frames",
                frames(&view)
            );
        }
    }

    /// A writer whose request's deadline passes in the line fails as SQLite's busy statement
    /// does, holds no turn afterwards, and the holder and later writers go on.
    #[tokio::test]
    async fn a_writer_leaves_the_line_at_its_deadline() {
        let dir = TempDir::new();
        let databases = databases(&dir).await;
        let allowed = vec!["products".to_string()];
        let (mut first_table, mut second_table) = (ResourceTable::new(), ResourceTable::new());
        let mut first = view(&mut first_table, &databases, &allowed);
        let mut second = view(&mut second_table, &databases, &allowed);
        let holder = open(&mut first).await;
        exec(&mut first, &holder, "CREATE TABLE t (a)", vec![])
            .await
            .unwrap();
        exec(&mut first, &holder, "BEGIN IMMEDIATE", vec![])
            .await
            .unwrap();
        second.deadline = std::time::Instant::now() + Duration::from_millis(300);
        let late = open(&mut second).await;
        match exec(&mut second, &late, "INSERT INTO t VALUES (1)", vec![]).await {
            Err(wit::Error::Io(message)) => assert!(message.starts_with("database is locked")),
            other => panic!("the late writer was not refused: {other:?}"),
        }
        assert!(!second
            .table
            .get(&late)
            .unwrap()
            .conn
            .as_ref()
            .unwrap()
            .has_write_turn());
        exec(&mut first, &holder, "INSERT INTO t VALUES (2)", vec![])
            .await
            .unwrap();
        exec(&mut first, &holder, "COMMIT", vec![]).await.unwrap();
        assert!(!first
            .table
            .get(&holder)
            .unwrap()
            .conn
            .as_ref()
            .unwrap()
            .has_write_turn());
        second.deadline = std::time::Instant::now() + Duration::from_secs(30);
        let next = open(&mut second).await;
        exec(&mut second, &next, "INSERT INTO t VALUES (3)", vec![])
            .await
            .unwrap();
        assert_eq!(
            integer(&mut second, &next, "SELECT count(*) FROM t").await,
            2
        );
    }

    /// Parameters bind as they did through sqlx: `$n` and `?n` by number, `?` in order (across
    /// the statements of one call), numbers past the values as NULL, names refused.
    #[tokio::test]
    async fn parameters_bind_by_number_and_in_order() {
        let dir = TempDir::new();
        let databases = databases(&dir).await;
        let mut table = ResourceTable::new();
        let allowed = vec!["products".to_string()];
        let mut view = view(&mut table, &databases, &allowed);
        let conn = open(&mut view).await;
        // `Value` has no `PartialEq`: compared by their debug forms.
        let values = |result: QueryResult| -> String {
            let rows: Vec<Vec<Value>> = result.rows.into_iter().map(|row| row.values).collect();
            format!("{rows:?}")
        };
        let expected = |rows: Vec<Vec<Value>>| format!("{rows:?}");
        let (one, two) = (Value::Integer(1), Value::Text("two".into()));
        let result = exec(
            &mut view,
            &conn,
            "SELECT ? AS a, ?2 AS b, $1 AS c, ? AS d, $3 AS e",
            vec![one.clone(), two.clone()],
        )
        .await
        .unwrap();
        assert_eq!(result.columns, ["a", "b", "c", "d", "e"]);
        assert_eq!(
            values(result),
            expected(vec![vec![
                one.clone(),
                two.clone(),
                one.clone(),
                two.clone(),
                Value::Null
            ]])
        );

        let result = exec(
            &mut view,
            &conn,
            "CREATE TABLE m (a, b); INSERT INTO m VALUES (?, ?); SELECT a, b FROM m;",
            vec![two.clone(), Value::Blob(vec![0, 1])],
        )
        .await
        .unwrap();
        assert_eq!(result.columns, ["a", "b"]);
        assert_eq!(
            values(result),
            expected(vec![vec![two, Value::Blob(vec![0, 1])]])
        );

        let refused = exec(&mut view, &conn, "SELECT :name", vec![one])
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, wit::Error::Io(m) if m.contains(":name") && m.contains("not supported")),
            "{refused:?}"
        );
        let bad_text = exec(&mut view, &conn, "SELECT CAST(x'ff' AS TEXT)", vec![])
            .await
            .unwrap_err();
        assert!(
            matches!(&bad_text, wit::Error::Io(m) if m.contains("UTF-8")),
            "{bad_text:?}"
        );
        // Only blanks and comments: nothing to run, nothing to answer.
        let empty = exec(&mut view, &conn, "  -- nothing\n", vec![])
            .await
            .unwrap();
        assert!(empty.columns.is_empty() && empty.rows.is_empty());
        wit::HostConnection::drop(&mut view, conn).await.unwrap();
    }
}
