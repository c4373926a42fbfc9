//! The host side of `spin:postgres`: the guest's view, the linker seam, and the host
//! functions that run a guest's statements on its connection.

use crate::capabilities::bounds::ResultBudget;
use crate::capabilities::outbound::check_address_allowed;
use crate::capabilities::postgres::bindings::spin::postgres::postgres::{
    self as wit, Column, ParameterValue, RowSet,
};
use crate::capabilities::postgres::codec::{bind, row_values, Kind};
use crate::capabilities::postgres::connection::Connection;
use crate::capabilities::postgres::error::error;
use crate::capabilities::postgres::pools::PostgresPools;
use crate::capabilities::postgres::transactions::{effects, Effects};
use crate::telemetry::statement_span;

use anyhow::Result;
use futures_util::TryStreamExt as _;
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Column as _, Executor as _, Postgres, SqlSafeStr as _, Statement as _};
use tracing::Instrument as _;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

/// The `db.system` of the statements' spans, in OpenTelemetry's words.
const ENGINE: &str = "postgresql";

/// What a guest's `spin:postgres` calls reach: its store's resources, the pools, its permissions.
pub struct PostgresView<'a> {
    /// The store's resource table, where the guest's connections live.
    pub table: &'a mut ResourceTable,
    /// The app's Postgres pools.
    pub pools: &'a PostgresPools,
    /// The one address the component may open: the URL its own `<id>_database` variable names.
    pub database: Option<&'a str>,
    /// The component's `allowed_outbound_hosts`, as in spin.toml.
    pub allowed_outbound_hosts: &'a [String],
}

/// Adds `spin:postgres/postgres@4.0.0` to `linker`, reaching each store's view through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> PostgresView<'_>,
) -> Result<()> {
    wit::add_to_linker::<T, PostgresData>(linker, get).map_err(anyhow::Error::from)
}

struct PostgresData;

impl HasData for PostgresData {
    type Data<'a> = PostgresView<'a>;
}

/// The statements of a guest's connection: the half of `Connection` that speaks the
/// interface's types (see `connection.rs`).
impl Connection {
    /// The pooled connection, taken on first use, and what `statement` may do to it (open a
    /// transaction, leave session state), noted before it runs.
    async fn connection(
        &mut self,
        statement: &str,
    ) -> Result<(&mut PoolConnection<Postgres>, Effects), wit::Error> {
        let effects = effects(statement);
        self.service.statements.count(effects.kind);
        self.transaction_may_be_open |= effects.opens_transaction;
        self.session_may_change |= effects.may_change_session;
        match &mut self.conn {
            Some(conn) => Ok((conn, effects)),
            slot @ None => {
                let (conn, permit) = self
                    .service
                    .acquire(self.heal.as_ref())
                    .await
                    .map_err(error)?;
                self.permit = Some(permit);
                Ok((slot.insert(conn), effects))
            }
        }
    }
    async fn query(
        &mut self,
        statement: &str,
        params: &[ParameterValue],
    ) -> Result<RowSet, wit::Error> {
        check_call(statement, params)?;
        self.in_flight = Some((statement.to_owned(), std::time::Instant::now()));
        let result = self.query_unwatched(statement, params).await;
        self.in_flight = None;
        let too_large = matches!(
            &result,
            Err(wit::Error::QueryFailed(wit::QueryError::Text(message)))
                if message.starts_with(TOO_LARGE)
        );
        if too_large {
            // Its read buffer grew to the answer's size: let it go, rather than keep it.
            self.close_connection();
        }
        self.close_if_broken(&result);
        result
    }

    /// Closes the connection after a failure that was not the database's answer to the
    /// statement (the server gone, TLS, the protocol) or that ended its session (a FATAL
    /// error: the backend was terminated): it is given back to no one, and a next statement
    /// takes another. Kept connections are not checked as they go back (`pools.rs`), so this
    /// is what keeps a dead one from serving request after request.
    fn close_if_broken<T>(&mut self, result: &Result<T, wit::Error>) {
        let broken = match result {
            Err(wit::Error::ConnectionFailed(_)) => true,
            Err(wit::Error::QueryFailed(wit::QueryError::DbError(db))) => {
                db.severity == "FATAL" || db.severity == "PANIC"
            }
            _ => false,
        };
        if broken {
            self.close_connection();
        }
    }

    /// Lets the connection go (closed, not given back) with its permit.
    fn close_connection(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
            self.permit = None;
        }
    }

    async fn query_unwatched(
        &mut self,
        statement: &str,
        params: &[ParameterValue],
    ) -> Result<RowSet, wit::Error> {
        let (conn, effects) = self.connection(statement).await?;
        let prepared = (&mut **conn)
            .prepare(AssertSqlSafe(statement).into_sql_str())
            .await
            .map_err(error)?;
        let arguments = bind(&prepared, params)?;
        let kinds: Vec<Kind> = prepared
            .columns()
            .iter()
            .map(|column| Kind::of(column.type_info()))
            .collect();
        let columns = prepared
            .columns()
            .iter()
            .zip(&kinds)
            .map(|(column, kind)| Column {
                name: column.name().to_owned(),
                data_type: kind.data_type(column.type_info()),
            })
            .collect();
        let mut rows = Vec::new();
        let mut budget = ResultBudget::new();
        {
            let mut results = (&mut **conn).fetch(prepared.query_with(arguments));
            while let Some(row) = results.try_next().await.map_err(error)? {
                // The row's bytes as the server sent them, before any is converted.
                let bytes = (0..sqlx::Row::len(&row))
                    .map(|i| sqlx::Row::try_get_raw(&row, i).map_or(0, |raw| raw_size(&raw)))
                    .sum();
                budget.add_row(bytes).map_err(|why| {
                    wit::Error::QueryFailed(wit::QueryError::Text(format!("{TOO_LARGE}{why}")))
                })?;
                rows.push(row_values(&row, &kinds)?);
            }
        }
        self.after_success(effects);
        Ok(RowSet { columns, rows })
    }

    async fn execute(
        &mut self,
        statement: &str,
        params: &[ParameterValue],
    ) -> Result<u64, wit::Error> {
        check_call(statement, params)?;
        self.in_flight = Some((statement.to_owned(), std::time::Instant::now()));
        let result = self.execute_unwatched(statement, params).await;
        self.in_flight = None;
        self.close_if_broken(&result);
        result
    }

    async fn execute_unwatched(
        &mut self,
        statement: &str,
        params: &[ParameterValue],
    ) -> Result<u64, wit::Error> {
        let (conn, effects) = self.connection(statement).await?;
        let prepared = (&mut **conn)
            .prepare(AssertSqlSafe(statement).into_sql_str())
            .await
            .map_err(error)?;
        let arguments = bind(&prepared, params)?;
        let done = (&mut **conn)
            .execute(prepared.query_with(arguments))
            .await
            .map_err(error)?;
        self.after_success(effects);
        Ok(done.rows_affected())
    }
}

/// How a refusal for a result past the bounds starts.
const TOO_LARGE: &str = "refused by the host: ";

/// Checks a statement's text and parameters against the bounds before anything is sent.
#[allow(clippy::result_large_err)] // the interface's error, as every statement answers it
fn check_call(statement: &str, params: &[ParameterValue]) -> Result<(), wit::Error> {
    crate::capabilities::bounds::get()
        .check_call(statement, params.iter().map(parameter_size))
        .map_err(refused)
}

/// The guest's error for a call the host refuses.
fn refused(why: String) -> wit::Error {
    wit::Error::QueryFailed(wit::QueryError::Text(format!("{TOO_LARGE}{why}")))
}

/// About how many bytes a parameter holds: its text or bytes, 8 for anything else of fixed
/// size, the sum of an array's elements.
fn parameter_size(param: &ParameterValue) -> usize {
    match param {
        ParameterValue::Str(v) | ParameterValue::Decimal(v) | ParameterValue::Uuid(v) => v.len(),
        ParameterValue::Binary(v) | ParameterValue::Jsonb(v) => v.len(),
        ParameterValue::ArrayStr(v) => v.iter().flatten().map(|s| s.len() + 8).sum(),
        ParameterValue::ArrayDecimal(v) => v.iter().flatten().map(|s| s.len() + 8).sum(),
        ParameterValue::ArrayInt32(v) => v.len() * 8,
        ParameterValue::ArrayInt64(v) => v.len() * 8,
        _ => 8,
    }
}

/// The bytes of a value as the server sent it.
fn raw_size(raw: &sqlx::postgres::PgValueRef<'_>) -> usize {
    use sqlx::ValueRef as _;
    if raw.is_null() {
        8
    } else {
        raw.as_bytes().map_or(8, <[u8]>::len)
    }
}

impl wit::Host for PostgresView<'_> {}

impl wit::HostConnection for PostgresView<'_> {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, wit::Error>> {
        // The URL is the login: another one, even to the same server, is another service's role
        // (or the operator's), so only the component's own is opened.
        if self.database != Some(address.as_str()) {
            return Ok(Err(wit::Error::ConnectionFailed(
                "refused by the host: a component may open only its own database, the URL its \
                 `<component>_database` variable names"
                    .into(),
            )));
        }
        if let Err(reason) = check_address_allowed(&address, self.allowed_outbound_hosts) {
            return Ok(Err(wit::Error::ConnectionFailed(reason)));
        }
        let service = match self.pools.find(&address) {
            Some(service) => service.clone(),
            None => match self.pools.pool(&address).await {
                Ok(service) => service,
                Err(e) => return Ok(Err(wit::Error::ConnectionFailed(e.to_string()))),
            },
        };
        Ok(self
            .table
            .push(Connection::new(service, self.pools.heal().cloned()))
            .map_err(|e| wit::Error::ConnectionFailed(format!("too many connections: {e}"))))
    }

    async fn query(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, wit::Error>> {
        let Ok(connection) = self.table.get_mut(&connection) else {
            return Ok(Err(wit::Error::ConnectionFailed(
                "no such connection".into(),
            )));
        };
        let span = statement_span(ENGINE, &statement);
        Ok(connection.query(&statement, &params).instrument(span).await)
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, wit::Error>> {
        let Ok(connection) = self.table.get_mut(&connection) else {
            return Ok(Err(wit::Error::ConnectionFailed(
                "no such connection".into(),
            )));
        };
        let span = statement_span(ENGINE, &statement);
        Ok(connection
            .execute(&statement, &params)
            .instrument(span)
            .await)
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::postgres::bindings::spin::postgres::postgres::{
        DbDataType, DbValue, HostConnection as _, Interval, QueryError, RangeBoundKind,
    };
    use std::time::Duration;

    const TEST_DATABASE: &str = "postgres://postgres@127.0.0.1:5432/test";

    #[tokio::test]
    async fn only_the_components_own_database_opens() {
        let own =
            "postgres://shop_products@127.0.0.1:5432/shop?options=-c%20search_path%3Dproducts";
        let mut guest = Guest::new(1);
        guest.database = Some(own.to_string());
        for other in [
            "postgres://postgres@127.0.0.1:5432/shop",
            "postgres://shop_accounts@127.0.0.1:5432/shop?options=-c%20search_path%3Daccounts",
            "postgres://shop_products@127.0.0.1:5432/shop",
            "postgres://shop_products@db.example.com:5432/shop?options=-c%20search_path%3Dproducts",
        ] {
            let refused = guest.view().open(other.into()).await.unwrap();
            assert!(
                matches!(&refused, Err(wit::Error::ConnectionFailed(m)) if m.contains("only its own database")),
                "{other}: {:?}",
                refused.map(|_| ())
            );
        }
        assert!(guest.pools.find(own).is_none() && guest.table.is_empty());
    }

    /// A fresh schema in the test database, or `None` (with a loud notice) without Postgres.
    async fn test_schema() -> Option<(String, String)> {
        use sqlx::Connection as _;
        let connect = sqlx::PgConnection::connect(TEST_DATABASE);
        let mut conn = match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                eprintln!(
                    "SKIPPED: Postgres at {TEST_DATABASE} is unreachable ({e}); not testing it"
                );
                return None;
            }
            Err(_) => {
                eprintln!("SKIPPED: Postgres at {TEST_DATABASE} does not answer; not testing it");
                return None;
            }
        };
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let schema = format!("shop_host_pg_test_{}_{n}", std::process::id());
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        )))
        .await
        .unwrap();
        let address = format!("{TEST_DATABASE}?options=-c%20search_path%3D{schema}");
        Some((schema, address))
    }

    async fn drop_schema(schema: &str) {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(TEST_DATABASE).await.unwrap();
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .await
        .unwrap();
    }

    struct Guest {
        table: ResourceTable,
        pools: PostgresPools,
        allowed: Vec<String>,
        /// The component's own database: the address the test opens.
        database: Option<String>,
    }

    impl Guest {
        fn new(max_connections: u32) -> Self {
            Self {
                table: ResourceTable::new(),
                pools: PostgresPools::new(max_connections),
                allowed: vec!["postgres://127.0.0.1:5432".into()],
                database: None,
            }
        }

        fn view(&mut self) -> PostgresView<'_> {
            PostgresView {
                table: &mut self.table,
                pools: &self.pools,
                database: self.database.as_deref(),
                allowed_outbound_hosts: &self.allowed,
            }
        }

        async fn open(&mut self, address: &str) -> Result<Resource<Connection>, wit::Error> {
            self.database = Some(address.to_string());
            self.view().open(address.into()).await.unwrap()
        }

        async fn query(
            &mut self,
            conn: &Resource<Connection>,
            sql: &str,
            params: Vec<ParameterValue>,
        ) -> Result<RowSet, wit::Error> {
            let conn = Resource::new_borrow(conn.rep());
            self.view().query(conn, sql.into(), params).await.unwrap()
        }

        async fn execute(
            &mut self,
            conn: &Resource<Connection>,
            sql: &str,
            params: Vec<ParameterValue>,
        ) -> Result<u64, wit::Error> {
            let conn = Resource::new_borrow(conn.rep());
            self.view().execute(conn, sql.into(), params).await.unwrap()
        }

        /// The server's process behind `conn`.
        async fn backend_pid(&mut self, conn: &Resource<Connection>) -> i32 {
            let rows = self
                .query(conn, "SELECT pg_backend_pid()", vec![])
                .await
                .unwrap();
            match rows.rows[0][0] {
                DbValue::Int32(pid) => pid,
                ref other => panic!("not a pid: {other:?}"),
            }
        }

        async fn close(&mut self, conn: Resource<Connection>) {
            wit::HostConnection::drop(&mut self.view(), conn)
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn values_round_trip() {
        let Some((schema, address)) = test_schema().await else {
            return;
        };
        let mut guest = Guest::new(2);
        let conn = guest.open(&address).await.unwrap();
        let datetime = (2026, 11, 25, 13, 0, 0, 123_456_000);
        let params = vec![
            ParameterValue::Boolean(true),
            ParameterValue::Int16(-2),
            ParameterValue::Int32(1 << 30),
            ParameterValue::Int64(i64::MIN),
            ParameterValue::Floating32(1.5),
            ParameterValue::Floating64(-2.25),
            ParameterValue::Str("héllo".into()),
            ParameterValue::Binary(vec![0, 1, 255]),
            ParameterValue::Datetime(datetime),
            ParameterValue::Datetime(datetime),
            ParameterValue::Date((1999, 12, 31)),
            ParameterValue::Time((23, 59, 58, 1_000)),
            ParameterValue::Decimal("-1234.5600".into()),
            ParameterValue::Jsonb(br#"{"a": [1, 2]}"#.to_vec()),
            ParameterValue::Jsonb(br#"{"b":true}"#.to_vec()),
            ParameterValue::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
            ParameterValue::Interval(Interval {
                micros: 1_500_000,
                days: 2,
                months: 3,
            }),
            ParameterValue::ArrayInt32(vec![Some(1), None, Some(-3)]),
            ParameterValue::ArrayStr(vec![Some("x".into()), None]),
            ParameterValue::ArrayDecimal(vec![Some("0.5".into())]),
            ParameterValue::RangeInt32((
                Some((1, RangeBoundKind::Inclusive)),
                Some((5, RangeBoundKind::Exclusive)),
            )),
            ParameterValue::RangeInt64((None, Some((9, RangeBoundKind::Exclusive)))),
            ParameterValue::RangeDecimal((Some(("1.5".into(), RangeBoundKind::Exclusive)), None)),
            ParameterValue::Timestamp(0),
            ParameterValue::Int64(7),
        ];
        let rows = guest
            .query(
                &conn,
                "SELECT $1::bool AS b, $2::int2, $3::int4, $4::int8, $5::float4, $6::float8, $7::text, \
                 $8::bytea, $9::timestamptz, $10::timestamp, $11::date, $12::time, $13::numeric, \
                 $14::jsonb, $15::json, $16::uuid, $17::interval, $18::int4[], $19::text[], \
                 $20::numeric[], $21::int4range, $22::int8range, $23::numrange, $24::timestamptz, \
                 $25::int4 AS narrowed, 'x'::varchar(3) AS v, 'a'::\"char\" AS other",
                params,
            )
            .await
            .unwrap();
        assert_eq!(rows.columns[0].name, "b");
        assert_eq!(rows.columns[24].name, "narrowed");
        let types: Vec<&DbDataType> = rows.columns.iter().map(|c| &c.data_type).collect();
        let expected_types = [
            DbDataType::Boolean,
            DbDataType::Int16,
            DbDataType::Int32,
            DbDataType::Int64,
            DbDataType::Floating32,
            DbDataType::Floating64,
            DbDataType::Str,
            DbDataType::Binary,
            DbDataType::Datetime,
            DbDataType::Datetime,
            DbDataType::Date,
            DbDataType::Time,
            DbDataType::Decimal,
            DbDataType::Jsonb,
            DbDataType::Jsonb,
            DbDataType::Uuid,
            DbDataType::Interval,
            DbDataType::ArrayInt32,
            DbDataType::ArrayStr,
            DbDataType::ArrayDecimal,
            DbDataType::RangeInt32,
            DbDataType::RangeInt64,
            DbDataType::RangeDecimal,
            DbDataType::Datetime,
            DbDataType::Int32,
            DbDataType::Str,
            DbDataType::Other("char".into()),
        ];
        assert_eq!(
            format!("{types:?}"),
            format!("{:?}", expected_types.iter().collect::<Vec<_>>())
        );
        let expected_values = [
            DbValue::Boolean(true),
            DbValue::Int16(-2),
            DbValue::Int32(1 << 30),
            DbValue::Int64(i64::MIN),
            DbValue::Floating32(1.5),
            DbValue::Floating64(-2.25),
            DbValue::Str("héllo".into()),
            DbValue::Binary(vec![0, 1, 255]),
            DbValue::Datetime(datetime),
            DbValue::Datetime(datetime),
            DbValue::Date((1999, 12, 31)),
            DbValue::Time((23, 59, 58, 1_000)),
            DbValue::Decimal("-1234.5600".into()),
            DbValue::Jsonb(br#"{"a": [1, 2]}"#.to_vec()),
            DbValue::Jsonb(br#"{"b":true}"#.to_vec()),
            DbValue::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
            DbValue::Interval(Interval {
                micros: 1_500_000,
                days: 2,
                months: 3,
            }),
            DbValue::ArrayInt32(vec![Some(1), None, Some(-3)]),
            DbValue::ArrayStr(vec![Some("x".into()), None]),
            DbValue::ArrayDecimal(vec![Some("0.5".into())]),
            DbValue::RangeInt32((
                Some((1, RangeBoundKind::Inclusive)),
                Some((5, RangeBoundKind::Exclusive)),
            )),
            DbValue::RangeInt64((None, Some((9, RangeBoundKind::Exclusive)))),
            DbValue::RangeDecimal((Some(("1.5".into(), RangeBoundKind::Exclusive)), None)),
            DbValue::Datetime((1970, 1, 1, 0, 0, 0, 0)),
            DbValue::Int32(7),
            DbValue::Str("x".into()),
            DbValue::Unsupported(vec![b'a']),
        ];
        assert_eq!(
            format!("{:?}", rows.rows[0]),
            format!("{expected_values:?}")
        );

        // Lossy or mismatched parameters are refused before reaching Postgres.
        for (sql, param) in [
            ("SELECT $1::int4", ParameterValue::Int64(1 << 40)),
            ("SELECT $1::int8", ParameterValue::Str("1".into())),
            ("SELECT $1::text", ParameterValue::Int64(1)),
            ("SELECT $1::numeric", ParameterValue::Decimal("1,5".into())),
        ] {
            let error = guest.query(&conn, sql, vec![param]).await.unwrap_err();
            assert!(
                matches!(error, wit::Error::BadParameter(_)),
                "{sql}: {error:?}"
            );
        }
        let error = guest
            .query(&conn, "SELECT $1::int8", vec![])
            .await
            .unwrap_err();
        assert!(matches!(error, wit::Error::BadParameter(_)), "{error:?}");
        guest.close(conn).await;
        drop_schema(&schema).await;
    }

    #[tokio::test]
    async fn nulls_columns_and_errors() {
        let Some((schema, address)) = test_schema().await else {
            return;
        };
        let mut guest = Guest::new(2);
        let conn = guest.open(&address).await.unwrap();
        guest
            .execute(
                &conn,
                "CREATE TABLE products (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
                 name TEXT NOT NULL UNIQUE, stock BIGINT, created_at TIMESTAMPTZ)",
                vec![],
            )
            .await
            .unwrap();

        // Zero rows: the columns come from the statement's description.
        let empty = guest
            .query(
                &conn,
                "SELECT id, name, stock FROM products WHERE id = $1",
                vec![ParameterValue::Int64(1)],
            )
            .await
            .unwrap();
        assert!(empty.rows.is_empty());
        let names: Vec<_> = empty.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name", "stock"]);
        assert!(matches!(
            [
                &empty.columns[0].data_type,
                &empty.columns[1].data_type,
                &empty.columns[2].data_type
            ],
            [DbDataType::Int64, DbDataType::Str, DbDataType::Int64]
        ));

        // A db-null is a NULL of each parameter's own type (BIGINT, TIMESTAMPTZ).
        let inserted = guest
            .execute(
                &conn,
                "INSERT INTO products (name, stock, created_at) VALUES ($1, $2, $3)",
                vec![
                    ParameterValue::Str("a".into()),
                    ParameterValue::DbNull,
                    ParameterValue::DbNull,
                ],
            )
            .await
            .unwrap();
        assert_eq!(inserted, 1);
        let rows = guest
            .query(
                &conn,
                "SELECT stock, created_at FROM products WHERE name = $1",
                vec![ParameterValue::Str("a".into())],
            )
            .await
            .unwrap();
        assert!(matches!(
            rows.rows[0][..],
            [DbValue::DbNull, DbValue::DbNull]
        ));

        // A unique violation reaches the guest with its SQLSTATE and constraint.
        let error = guest
            .execute(
                &conn,
                "INSERT INTO products (name) VALUES ($1)",
                vec![ParameterValue::Str("a".into())],
            )
            .await
            .unwrap_err();
        let wit::Error::QueryFailed(QueryError::DbError(db)) = &error else {
            panic!("expected a database error, got {error:?}");
        };
        assert_eq!(db.code, "23505");
        assert_eq!(db.severity, "ERROR");
        assert!(
            db.detail
                .as_deref()
                .unwrap_or("")
                .contains("already exists"),
            "{db:?}"
        );
        assert!(
            db.extras
                .iter()
                .any(|(k, v)| k == "constraint" && v == "products_name_key"),
            "{db:?}"
        );

        let error = guest
            .query(&conn, "SELECT * FROM nowhere", vec![])
            .await
            .unwrap_err();
        assert!(
            matches!(&error, wit::Error::QueryFailed(QueryError::DbError(db)) if db.code == "42P01"),
            "{error:?}"
        );
        assert_eq!(
            guest
                .execute(
                    &conn,
                    "UPDATE products SET stock = $1",
                    vec![ParameterValue::Int32(3)]
                )
                .await
                .unwrap(),
            1
        );
        guest.close(conn).await;
        drop_schema(&schema).await;
    }

    #[tokio::test]
    async fn transactions_span_calls_and_roll_back_on_drop() {
        let Some((schema, address)) = test_schema().await else {
            return;
        };
        // One pooled connection: every resource gets the one the previous resource left.
        let mut guest = Guest::new(1);
        let conn = guest.open(&address).await.unwrap();
        guest
            .execute(&conn, "CREATE TABLE t (a BIGINT)", vec![])
            .await
            .unwrap();
        guest.execute(&conn, "BEGIN", vec![]).await.unwrap();
        guest
            .execute(&conn, "INSERT INTO t VALUES (1)", vec![])
            .await
            .unwrap();
        guest.execute(&conn, "COMMIT", vec![]).await.unwrap();
        assert!(!guest.table.get(&conn).unwrap().transaction_may_be_open);

        guest.execute(&conn, "BEGIN", vec![]).await.unwrap();
        guest
            .execute(&conn, "INSERT INTO t VALUES (2)", vec![])
            .await
            .unwrap();
        guest.close(conn).await; // never committed

        let conn = guest.open(&address).await.unwrap();
        guest
            .execute(&conn, "INSERT INTO t VALUES (3)", vec![])
            .await
            .unwrap();
        guest.close(conn).await;

        // Seen from another connection: 2 was rolled back, 3 was committed on its own.
        let other = PostgresPools::new(1);
        let service = other.pool(&address).await.unwrap();
        other.check_address(&address).await.unwrap();
        let mut borrowed = service.borrow().await.unwrap();
        let values: Vec<i64> = sqlx::query_scalar("SELECT a FROM t ORDER BY a")
            .fetch_all(borrowed.conn())
            .await
            .unwrap();
        assert_eq!(values, [1, 3]);
        drop(borrowed);
        drop_schema(&schema).await;
    }

    #[tokio::test]
    async fn a_connection_given_back_serves_the_next_request_and_wakes_one_waiting() {
        let Some((schema, address)) = test_schema().await else {
            return;
        };
        // One connection for the service: a second request must wait for the first's.
        let mut guest = Guest::new(1);
        let conn = guest.open(&address).await.unwrap();
        let first = guest.backend_pid(&conn).await;
        let service = guest.pools.find(&address).unwrap().clone();
        let waiting = tokio::spawn({
            let service = service.clone();
            async move {
                let mut borrowed = service.borrow().await?;
                let pid = sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
                    .fetch_one(borrowed.conn())
                    .await;
                pid
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The first request ends: its connection (reset, as the role may take session locks)
        // goes to the waiting request, not through sqlx's pool.
        guest.close(conn).await;
        let second = waiting
            .await
            .unwrap()
            .expect("the waiting request gets the connection");
        assert_eq!(second, first, "the same backend serves the next request");
        // Kept by the service, not idle in sqlx's pool (which would ping it).
        assert_eq!(service.pool.num_idle(), 0);
        assert_eq!(service.num_idle(), 1);
        let conn = guest.open(&address).await.unwrap();
        assert_eq!(guest.backend_pid(&conn).await, first);
        guest.close(conn).await;
        drop_schema(&schema).await;
    }

    #[tokio::test]
    async fn a_connection_whose_backend_died_serves_no_later_request() {
        let Some((schema, address)) = test_schema().await else {
            return;
        };
        let mut guest = Guest::new(1);
        let conn = guest.open(&address).await.unwrap();
        let pid = guest.backend_pid(&conn).await;
        // The server ends the backend (an operator, a restart) while the request holds it.
        terminate_backend(pid).await;
        assert!(guest.query(&conn, "SELECT 1", vec![]).await.is_err());
        // Closed at once, with its permit: not given back as the request ends (no reset, for a
        // role without session locks, would find it dead).
        let resource = guest.table.get(&conn).unwrap();
        assert!(resource.conn.is_none() && resource.permit.is_none());
        guest.close(conn).await;
        // The next requests get a live connection, not the dead one back.
        for _ in 0..2 {
            let conn = guest.open(&address).await.unwrap();
            guest.query(&conn, "SELECT 1", vec![]).await.unwrap();
            guest.close(conn).await;
        }
        drop_schema(&schema).await;
    }

    /// Ends the server's backend `pid`, as an operator or a restart of the server would.
    async fn terminate_backend(pid: i32) {
        let mut other = <sqlx::PgConnection as sqlx::Connection>::connect(TEST_DATABASE)
            .await
            .unwrap();
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut other)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_health_check_answers_while_the_service_keeps_its_connections() {
        let Some((schema, address)) = test_schema().await else {
            return;
        };
        // One connection, which the service keeps once its request has ended.
        let mut guest = Guest::new(1);
        let conn = guest.open(&address).await.unwrap();
        let pid = guest.backend_pid(&conn).await;
        guest.close(conn).await;
        let service = guest.pools.find(&address).unwrap().clone();
        let kept = tokio::time::timeout(Duration::from_secs(5), async {
            while service.num_idle() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        kept.await.expect("the reset gives the connection back");
        assert_eq!(service.pool.num_idle(), 0, "sqlx's pool has none to give");
        // The check takes the kept one (waiting on sqlx's pool, it timed out: a 503).
        guest.pools.check_address(&address).await.unwrap();
        // A kept connection the server let go of does not fail the check: a new one answers.
        terminate_backend(pid).await;
        guest.pools.check_address(&address).await.unwrap();
        // And the requests go on.
        let conn = guest.open(&address).await.unwrap();
        assert_ne!(guest.backend_pid(&conn).await, pid);
        guest.close(conn).await;
        drop_schema(&schema).await;
    }

    #[tokio::test]
    async fn open_checks_the_address() {
        let mut guest = Guest::new(1);
        let error = guest
            .open("postgres://postgres@db.example.com:5432/test")
            .await
            .unwrap_err();
        assert!(
            matches!(&error, wit::Error::ConnectionFailed(m) if m.contains("not permitted")),
            "{error:?}"
        );
        guest.allowed.push("postgres://127.0.0.1:1".into());
        let error = guest
            .open("postgres://postgres@127.0.0.1:1/test")
            .await
            .unwrap_err();
        assert!(
            matches!(error, wit::Error::ConnectionFailed(_)),
            "{error:?}"
        );
        let error = guest
            .open("host=127.0.0.1 user=postgres")
            .await
            .unwrap_err();
        assert!(
            matches!(error, wit::Error::ConnectionFailed(_)),
            "{error:?}"
        );
    }
}
