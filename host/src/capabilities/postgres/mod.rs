//! Host side of `spin:postgres/postgres@4.0.0` on sqlx Postgres pools.
//!
//! One pool per distinct address, made on first use and kept. A guest's connection resource
//! takes one pooled connection on its first statement and keeps it for its whole life (so a
//! `BEGIN ... COMMIT` over several calls is one transaction); when the resource goes away with
//! a transaction possibly open, it is rolled back in the background before the connection
//! returns to the pool.
//!
//! Every statement is prepared first: sqlx caches prepared statements per connection, so after
//! the first use this costs no round trip, and it gives the parameter types to encode the
//! guest's values with (a `db-null` is then a NULL of the right type) and the columns even
//! when no row comes back. Values travel in Postgres' binary format, converted here.

pub mod bindings;
pub mod migrate;
pub mod provision;

use crate::capabilities::outbound::check_address_allowed;
use crate::civil::{civil_from_days, days_from_civil};

use std::fmt::Write as _;
use std::str::FromStr as _;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Result;
use futures_util::TryStreamExt as _;
use sqlx::error::BoxDynError;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnectOptions, PgDatabaseError, PgPool, PgPoolOptions, PgRow,
    PgSeverity, PgTypeInfo, PgTypeKind, PgValueFormat, PgValueRef,
};
use sqlx::{
    Arguments as _, Column as _, Either, Encode, Executor as _, Postgres, Row as _, Statement as _,
    TypeInfo as _, ValueRef as _,
};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use bindings::spin::postgres::postgres::{
    self as wit, Column, DbDataType, DbError, DbValue, Interval, ParameterValue, QueryError,
    RangeBoundKind, RowSet,
};

/// How many distinct addresses may get a pool: guests choose addresses, so this is bounded.
const MAX_ADDRESSES: usize = 32;
/// How long a guest waits for a free pooled connection (or a new one) before failing, unless
/// `shop up --postgres-acquire-timeout` says otherwise: short, so that a server that is down
/// costs a request a second and a 503, not its whole deadline.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// The Postgres pools, one per distinct address, made on first use and kept.
///
/// Looking a pool up takes no lock: pools live in write-once slots filled in order.
pub struct PostgresPools {
    max_connections: u32,
    acquire_timeout: Duration,
    slots: [OnceLock<(Box<str>, PgPool)>; MAX_ADDRESSES],
    /// Serialises the making of new pools (never taken to look one up).
    making: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PostgresPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pools = self.slots.iter().map_while(|slot| slot.get());
        f.debug_struct("PostgresPools")
            .field("max_connections", &self.max_connections)
            .field("pools", &pools.count())
            .finish()
    }
}

impl PostgresPools {
    /// No pools yet; each pool made later holds at most `max_connections_per_pool` connections.
    pub fn new(max_connections_per_pool: u32) -> Self {
        Self {
            max_connections: max_connections_per_pool.max(1),
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            slots: std::array::from_fn(|_| OnceLock::new()),
            making: tokio::sync::Mutex::new(()),
        }
    }

    /// How long a request waits for a pooled connection (or for a new one to connect) before
    /// its statement fails, and the guest answers 503: past it the server is down or swamped.
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Checks that the pool of `address` answers a `SELECT 1`, if it has been made.
    pub async fn check_address(&self, address: &str) -> Result<()> {
        match self.find(address) {
            Some(pool) => sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map(drop)
                .map_err(Into::into),
            None => Ok(()),
        }
    }

    /// The pool of `address` (a `postgres://` URL), connecting it the first time.
    pub async fn pool(&self, address: &str) -> Result<PgPool, sqlx::Error> {
        if let Some(pool) = self.find(address) {
            return Ok(pool.clone());
        }
        let _making = self.making.lock().await;
        if let Some(pool) = self.find(address) {
            return Ok(pool.clone());
        }
        let Some(slot) = self.slots.iter().find(|slot| slot.get().is_none()) else {
            return Err(sqlx::Error::Configuration(
                format!("too many distinct Postgres addresses (at most {MAX_ADDRESSES})").into(),
            ));
        };
        let options = PgConnectOptions::from_str(address)?;
        // One direct attempt first: a wrong address or a server that is down fails at once,
        // where the pool would retry until its acquire timeout.
        let probe = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options);
        let probe = tokio::time::timeout(self.acquire_timeout, probe)
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        let _ = sqlx::Connection::close(probe).await;
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            // A returned connection is checked as it goes back; checking it again on every
            // acquire would add a round trip to every request.
            .test_before_acquire(false)
            // Several hosts share one server's connection limit: give back what sits idle.
            .idle_timeout(Some(std::time::Duration::from_secs(30)))
            .connect_lazy_with(options);
        let _ = slot.set((address.into(), pool.clone()));
        Ok(pool)
    }

    fn find(&self, address: &str) -> Option<&PgPool> {
        // Slots fill in order: the first empty one ends the search.
        self.slots
            .iter()
            .map_while(|slot| slot.get())
            .find(|(known, _)| **known == *address)
            .map(|(_, pool)| pool)
    }
}

/// What `DISCARD ALL` does but `DEALLOCATE ALL`: sqlx's statement cache stays valid. Settings
/// (`SET`, `set_config`), cursors, `LISTEN`, advisory locks, temporary tables and cached
/// sequence values go. Its simple-query batch runs in one implicit transaction.
const RESET_SESSION: &str = "CLOSE ALL; RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); \
                             DISCARD TEMP; DISCARD SEQUENCES";

/// Resets a connection before it returns to its pool; `false` (close it) when that fails.
async fn reset_session(conn: &mut sqlx::PgConnection) -> bool {
    match conn.execute(RESET_SESSION).await {
        Ok(_) => true,
        Err(error) => {
            tracing::debug!(%error, "resetting a pooled Postgres connection failed; closing it");
            false
        }
    }
}

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

/// A guest's open Postgres connection: the resource behind `spin:postgres`'s `connection`.
pub struct Connection {
    pool: PgPool,
    /// Taken from the pool on the first statement, kept until the resource is dropped.
    conn: Option<PoolConnection<Postgres>>,
    /// Set once a statement may have opened a transaction, cleared by a successful COMMIT.
    transaction_may_be_open: bool,
    /// Set once a statement may have left state in the session: it is reset before the
    /// connection serves another request. Plain queries and DML (every request of the shop)
    /// leave none, and cost no reset.
    session_may_change: bool,
}

impl Connection {
    fn new(pool: PgPool) -> Self {
        Self {
            pool,
            conn: None,
            transaction_may_be_open: false,
            session_may_change: false,
        }
    }

    /// The pooled connection, taken on first use; `statement` may open a transaction.
    async fn connection(
        &mut self,
        statement: &str,
    ) -> Result<&mut PoolConnection<Postgres>, wit::Error> {
        if opens_transaction(statement) {
            self.transaction_may_be_open = true;
        }
        if may_change_session(statement) {
            self.session_may_change = true;
        }
        match &mut self.conn {
            Some(conn) => Ok(conn),
            slot @ None => Ok(slot.insert(self.pool.acquire().await.map_err(error)?)),
        }
    }

    fn after_success(&mut self, statement: &str) {
        if closes_transaction(statement) {
            self.transaction_may_be_open = false;
        }
    }

    async fn query(
        &mut self,
        statement: &str,
        params: &[ParameterValue],
    ) -> Result<RowSet, wit::Error> {
        let conn = self.connection(statement).await?;
        let prepared = (&mut **conn).prepare(statement).await.map_err(error)?;
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
        {
            let mut results = (&mut **conn).fetch(prepared.query_with(arguments));
            while let Some(row) = results.try_next().await.map_err(error)? {
                rows.push(row_values(&row, &kinds)?);
            }
        }
        self.after_success(statement);
        Ok(RowSet { columns, rows })
    }

    async fn execute(
        &mut self,
        statement: &str,
        params: &[ParameterValue],
    ) -> Result<u64, wit::Error> {
        let conn = self.connection(statement).await?;
        let prepared = (&mut **conn).prepare(statement).await.map_err(error)?;
        let arguments = bind(&prepared, params)?;
        let done = (&mut **conn)
            .execute(prepared.query_with(arguments))
            .await
            .map_err(error)?;
        self.after_success(statement);
        Ok(done.rows_affected())
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
        let (rollback, reset) = (self.transaction_may_be_open, self.session_may_change);
        if !rollback && !reset {
            return; // dropping it returns it to the pool
        }
        runtime.spawn(async move {
            let mut conn = conn;
            // Outside a transaction ROLLBACK only warns; if it fails the connection is broken
            // and the pool's check on return closes it.
            if rollback {
                if let Err(error) = (&mut *conn).execute("ROLLBACK").await {
                    tracing::warn!(%error, "rolling back a dropped Postgres connection failed; closing it");
                    conn.close_on_drop();
                    return;
                }
            }
            // What one request set on its session must not reach the next request.
            if reset && !reset_session(&mut conn).await {
                conn.close_on_drop();
            }
        });
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
        let pool = match self.pools.find(&address) {
            Some(pool) => pool.clone(),
            None => match self.pools.pool(&address).await {
                Ok(pool) => pool,
                Err(e) => return Ok(Err(wit::Error::ConnectionFailed(e.to_string()))),
            },
        };
        Ok(self
            .table
            .push(Connection::new(pool))
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
        Ok(connection.query(&statement, &params).await)
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
        Ok(connection.execute(&statement, &params).await)
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

fn error(error: sqlx::Error) -> wit::Error {
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

// ---------------------------------------------------------------------------------------------
// Transactions

/// Whether `statement` may open a transaction (BEGIN, START TRANSACTION, SAVEPOINT anywhere
/// outside quotes and comments): at worst this costs one needless ROLLBACK at drop.
fn opens_transaction(statement: &str) -> bool {
    let mut opens = false;
    for_each_word(statement, |word, _| {
        if ["BEGIN", "START", "SAVEPOINT"]
            .iter()
            .any(|k| word.eq_ignore_ascii_case(k))
        {
            opens = true;
        }
    });
    opens
}

/// Whether `statement` may leave state in the session for a later request: anything but a query,
/// DML or transaction control (SET, RESET, LISTEN, PREPARE, DECLARE, CREATE ..., DO, LOCK), or a
/// statement naming a temporary object or a function that sets session state. A function of the
/// service's own that does so unseen reaches only the service's own later requests: the pool is
/// the service's role's alone.
fn may_change_session(statement: &str) -> bool {
    const PLAIN: [&str; 15] = [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "VALUES",
        "TABLE",
        "BEGIN",
        "START",
        "COMMIT",
        "END",
        "ROLLBACK",
        "ABORT",
        "SAVEPOINT",
        "RELEASE",
    ];
    const SESSION: [&str; 7] = [
        "TEMP",
        "TEMPORARY",
        "set_config",
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
    ];
    let mut changes = false;
    let mut first = true;
    for_each_word(statement, |word, _| {
        let is = |k: &&str| word.eq_ignore_ascii_case(k);
        if first {
            first = false;
            changes |= !PLAIN.iter().any(is);
        }
        changes |= SESSION.iter().any(is);
    });
    changes
}

/// Whether `statement` is exactly COMMIT, END, ROLLBACK or ABORT (with an optional WORK or
/// TRANSACTION), which ends any transaction when it succeeds.
fn closes_transaction(statement: &str) -> bool {
    let mut words = 0;
    let mut closes = true;
    let only_words = for_each_word(statement, |word, index| {
        words += 1;
        let is = |k: &str| word.eq_ignore_ascii_case(k);
        closes &= match index {
            0 => is("COMMIT") || is("END") || is("ROLLBACK") || is("ABORT"),
            1 => is("WORK") || is("TRANSACTION"),
            _ => false,
        };
    });
    only_words && closes && words > 0
}

/// Calls `f` with each word (and its index) outside quotes, dollar quotes and comments;
/// returns whether the statement held nothing but words, whitespace and semicolons.
fn for_each_word(sql: &str, mut f: impl FnMut(&str, usize)) -> bool {
    let bytes = sql.as_bytes();
    let mut only_words = true;
    let mut index = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b if b.is_ascii_whitespace() || b == b';' => i += 1,
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    // E'...' strings may escape a quote with a backslash: skipping the byte
                    // after any backslash only ever makes the scan more conservative.
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                only_words = false;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |end| i + end + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |end| i + 2 + end + 2);
            }
            b'$' => {
                // `$n` parameter, or `$tag$ ... $tag$` dollar quoting.
                let start = i;
                i += 1;
                while i < bytes.len() && is_word_byte(bytes[i]) && bytes[i] != b'$' {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'$')
                    && !bytes[start + 1..i].first().is_some_and(u8::is_ascii_digit)
                {
                    let tag = &sql[start..=i];
                    i = sql[i + 1..]
                        .find(tag)
                        .map_or(bytes.len(), |end| i + 1 + end + tag.len());
                }
                only_words = false;
            }
            b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                let start = i;
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                f(&sql[start..i], index);
                index += 1;
            }
            _ => {
                i += 1;
                only_words = false;
            }
        }
    }
    only_words
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

// ---------------------------------------------------------------------------------------------
// Parameters: the guest's values, encoded for the parameter types Postgres described

// The error is the interface's own `error`, which the guest receives as it is.
#[allow(clippy::result_large_err)]
fn bind(
    prepared: &sqlx::postgres::PgStatement<'_>,
    params: &[ParameterValue],
) -> Result<PgArguments, wit::Error> {
    let types = match prepared.parameters() {
        Some(Either::Left(types)) => types,
        _ => &[],
    };
    if types.len() != params.len() {
        return Err(wit::Error::BadParameter(format!(
            "the statement takes {} parameters, {} were given",
            types.len(),
            params.len()
        )));
    }
    let mut arguments = PgArguments::default();
    arguments.reserve(params.len(), params.len() * 8);
    for (index, (value, ty)) in params.iter().zip(types).enumerate() {
        arguments
            .add(Param { value, ty })
            .map_err(|e| wit::Error::BadParameter(format!("parameter ${}: {e}", index + 1)))?;
    }
    Ok(arguments)
}

/// One guest value, to be encoded as the type Postgres expects for its parameter.
struct Param<'a> {
    value: &'a ParameterValue,
    ty: &'a PgTypeInfo,
}

impl sqlx::Type<Postgres> for Param<'_> {
    fn type_info() -> PgTypeInfo {
        // Never used: `produces` names the described type of each parameter.
        PgTypeInfo::with_name("unknown")
    }
}

impl<'q> Encode<'q, Postgres> for Param<'_> {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, BoxDynError> {
        if let ParameterValue::DbNull = self.value {
            return Ok(sqlx::encode::IsNull::Yes);
        }
        let out: &mut Vec<u8> = buf;
        encode(self.value, self.ty, out)?;
        Ok(sqlx::encode::IsNull::No)
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(self.ty.clone())
    }
}

/// A type's name as Postgres' catalog spells it (`int8`, `char`, `my_enum`).
fn type_name(ty: &PgTypeInfo) -> String {
    // sqlx shows built-in types upper-cased (`INT8`, `"CHAR"`) and others as named.
    const FIRST_USER_OID: u32 = 16_384;
    let name = ty.name();
    match ty.oid() {
        Some(oid) if oid.0 < FIRST_USER_OID => name.trim_matches('"').to_ascii_lowercase(),
        _ => name.to_owned(),
    }
}

fn oid(ty: &PgTypeInfo) -> u32 {
    ty.oid().map_or(0, |oid| oid.0)
}

// Type OIDs from Postgres' pg_type catalog, stable for built-in types.
const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const NAME: u32 = 19;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const JSON: u32 = 114;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const UNKNOWN: u32 = 705;
const INT4_ARRAY: u32 = 1007;
const TEXT_ARRAY: u32 = 1009;
const BPCHAR_ARRAY: u32 = 1014;
const VARCHAR_ARRAY: u32 = 1015;
const INT8_ARRAY: u32 = 1016;
const BPCHAR: u32 = 1042;
const VARCHAR: u32 = 1043;
const DATE: u32 = 1082;
const TIME: u32 = 1083;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const INTERVAL: u32 = 1186;
const NUMERIC_ARRAY: u32 = 1231;
const NUMERIC: u32 = 1700;
const UUID: u32 = 2950;
const JSONB: u32 = 3802;
const INT4RANGE: u32 = 3904;
const NUMRANGE: u32 = 3906;
const INT8RANGE: u32 = 3926;

fn is_text_type(ty: &PgTypeInfo) -> bool {
    matches!(oid(ty), TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN)
        || matches!(ty.kind(), PgTypeKind::Enum(_))
        || ty.name().eq_ignore_ascii_case("citext")
}

/// Writes `value` in the binary format of `ty`, or says why it cannot be one.
fn encode(value: &ParameterValue, ty: &PgTypeInfo, out: &mut Vec<u8>) -> Result<(), String> {
    let target = oid(ty);
    let mismatch = || {
        format!(
            "a {} value cannot be bound to a parameter of type {}",
            parameter_kind(value),
            type_name(ty)
        )
    };
    match value {
        ParameterValue::Boolean(v) if target == BOOL => out.push(u8::from(*v)),
        ParameterValue::Int8(v) => {
            encode_integer(i64::from(*v), target, out).ok_or_else(mismatch)?
        }
        ParameterValue::Int16(v) => {
            encode_integer(i64::from(*v), target, out).ok_or_else(mismatch)?
        }
        ParameterValue::Int32(v) => {
            encode_integer(i64::from(*v), target, out).ok_or_else(mismatch)?
        }
        ParameterValue::Int64(v) => encode_integer(*v, target, out).ok_or_else(mismatch)?,
        ParameterValue::Floating32(v) => match target {
            FLOAT4 => out.extend_from_slice(&v.to_be_bytes()),
            FLOAT8 => out.extend_from_slice(&f64::from(*v).to_be_bytes()),
            _ => return Err(mismatch()),
        },
        ParameterValue::Floating64(v) => match target {
            FLOAT8 => out.extend_from_slice(&v.to_be_bytes()),
            FLOAT4 if v.is_nan() || f64::from(*v as f32) == *v => {
                out.extend_from_slice(&(*v as f32).to_be_bytes())
            }
            FLOAT4 => return Err(format!("{v} does not fit a float4 exactly")),
            _ => return Err(mismatch()),
        },
        ParameterValue::Str(v) if is_text_type(ty) => out.extend_from_slice(v.as_bytes()),
        ParameterValue::Binary(v) if target == BYTEA => out.extend_from_slice(v),
        ParameterValue::Date(v) if target == DATE => {
            let days = days_from_date(*v)? - PG_EPOCH_DAYS;
            let days = i32::try_from(days).map_err(|_| "date out of range".to_string())?;
            out.extend_from_slice(&days.to_be_bytes());
        }
        ParameterValue::Time(v) if target == TIME => {
            out.extend_from_slice(&micros_from_time(*v)?.to_be_bytes())
        }
        ParameterValue::Datetime(v) if matches!(target, TIMESTAMP | TIMESTAMPTZ) => {
            out.extend_from_slice(&micros_from_datetime(*v)?.to_be_bytes())
        }
        ParameterValue::Timestamp(seconds) if matches!(target, TIMESTAMP | TIMESTAMPTZ) => {
            let micros = seconds
                .checked_sub(PG_EPOCH_DAYS * SECONDS_PER_DAY)
                .and_then(|s| s.checked_mul(1_000_000))
                .ok_or_else(|| format!("timestamp {seconds} out of range"))?;
            out.extend_from_slice(&micros.to_be_bytes());
        }
        ParameterValue::Uuid(v) if target == UUID => out.extend_from_slice(&parse_uuid(v)?),
        ParameterValue::Jsonb(v) if target == JSONB => {
            out.push(1); // jsonb's binary format version
            out.extend_from_slice(v);
        }
        ParameterValue::Jsonb(v) if target == JSON => out.extend_from_slice(v),
        ParameterValue::Decimal(v) if target == NUMERIC => encode_numeric(v, out)?,
        ParameterValue::Interval(v) if target == INTERVAL => {
            out.extend_from_slice(&v.micros.to_be_bytes());
            out.extend_from_slice(&v.days.to_be_bytes());
            out.extend_from_slice(&v.months.to_be_bytes());
        }
        ParameterValue::RangeInt32((low, high)) if target == INT4RANGE => {
            encode_range(low.as_ref(), high.as_ref(), out, |v: &i32, out| {
                out.extend_from_slice(&v.to_be_bytes());
                Ok(())
            })?
        }
        ParameterValue::RangeInt64((low, high)) if target == INT8RANGE => {
            encode_range(low.as_ref(), high.as_ref(), out, |v: &i64, out| {
                out.extend_from_slice(&v.to_be_bytes());
                Ok(())
            })?
        }
        ParameterValue::RangeDecimal((low, high)) if target == NUMRANGE => {
            encode_range(low.as_ref(), high.as_ref(), out, |v: &String, out| {
                encode_numeric(v, out)
            })?
        }
        ParameterValue::ArrayInt32(items) if matches!(target, INT4_ARRAY | INT8_ARRAY) => {
            let element = if target == INT4_ARRAY { INT4 } else { INT8 };
            encode_array(element, items, out, |v: &i32, out| {
                encode_integer(i64::from(*v), element, out).ok_or_else(|| "out of range".into())
            })?
        }
        ParameterValue::ArrayInt64(items) if matches!(target, INT4_ARRAY | INT8_ARRAY) => {
            let element = if target == INT4_ARRAY { INT4 } else { INT8 };
            encode_array(element, items, out, |v: &i64, out| {
                encode_integer(*v, element, out).ok_or_else(|| format!("{v} does not fit an int4"))
            })?
        }
        ParameterValue::ArrayDecimal(items) if target == NUMERIC_ARRAY => {
            encode_array(NUMERIC, items, out, |v: &String, out| {
                encode_numeric(v, out)
            })?
        }
        ParameterValue::ArrayStr(items)
            if matches!(target, TEXT_ARRAY | VARCHAR_ARRAY | BPCHAR_ARRAY) =>
        {
            let element = match target {
                TEXT_ARRAY => TEXT,
                VARCHAR_ARRAY => VARCHAR,
                _ => BPCHAR,
            };
            encode_array(element, items, out, |v: &String, out| {
                out.extend_from_slice(v.as_bytes());
                Ok(())
            })?
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// An integer as `target` (any integer, float or numeric type that holds it exactly).
fn encode_integer(v: i64, target: u32, out: &mut Vec<u8>) -> Option<()> {
    match target {
        INT2 => out.extend_from_slice(&i16::try_from(v).ok()?.to_be_bytes()),
        INT4 => out.extend_from_slice(&i32::try_from(v).ok()?.to_be_bytes()),
        INT8 => out.extend_from_slice(&v.to_be_bytes()),
        FLOAT4 if v.unsigned_abs() <= 1 << 24 => out.extend_from_slice(&(v as f32).to_be_bytes()),
        FLOAT8 if v.unsigned_abs() <= 1 << 53 => out.extend_from_slice(&(v as f64).to_be_bytes()),
        NUMERIC => encode_numeric(&v.to_string(), out).ok()?,
        _ => return None,
    }
    Some(())
}

fn parameter_kind(value: &ParameterValue) -> &'static str {
    match value {
        ParameterValue::Boolean(_) => "boolean",
        ParameterValue::Int8(_) => "int8",
        ParameterValue::Int16(_) => "int16",
        ParameterValue::Int32(_) => "int32",
        ParameterValue::Int64(_) => "int64",
        ParameterValue::Floating32(_) => "floating32",
        ParameterValue::Floating64(_) => "floating64",
        ParameterValue::Str(_) => "str",
        ParameterValue::Binary(_) => "binary",
        ParameterValue::Date(_) => "date",
        ParameterValue::Time(_) => "time",
        ParameterValue::Datetime(_) => "datetime",
        ParameterValue::Timestamp(_) => "timestamp",
        ParameterValue::Uuid(_) => "uuid",
        ParameterValue::Jsonb(_) => "jsonb",
        ParameterValue::Decimal(_) => "decimal",
        ParameterValue::RangeInt32(_) => "range-int32",
        ParameterValue::RangeInt64(_) => "range-int64",
        ParameterValue::RangeDecimal(_) => "range-decimal",
        ParameterValue::ArrayInt32(_) => "array-int32",
        ParameterValue::ArrayInt64(_) => "array-int64",
        ParameterValue::ArrayDecimal(_) => "array-decimal",
        ParameterValue::ArrayStr(_) => "array-str",
        ParameterValue::Interval(_) => "interval",
        ParameterValue::DbNull => "db-null",
    }
}

/// Appends a length-prefixed element written by `write`.
fn encode_element<T: ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    write: &mut impl FnMut(&T, &mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    write(value, out)?;
    let len = i32::try_from(out.len() - at - 4).map_err(|_| "value too large".to_string())?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn encode_array<T>(
    element: u32,
    items: &[Option<T>],
    out: &mut Vec<u8>,
    mut write: impl FnMut(&T, &mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let len = i32::try_from(items.len()).map_err(|_| "array too large".to_string())?;
    let dimensions: i32 = if items.is_empty() { 0 } else { 1 };
    out.extend_from_slice(&dimensions.to_be_bytes());
    out.extend_from_slice(&i32::from(items.iter().any(Option::is_none)).to_be_bytes());
    out.extend_from_slice(&element.to_be_bytes());
    if dimensions == 1 {
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes()); // lower bound
    }
    for item in items {
        match item {
            Some(value) => encode_element(value, out, &mut write)?,
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    Ok(())
}

const RANGE_EMPTY: u8 = 0x01;
const RANGE_LOWER_INCLUSIVE: u8 = 0x02;
const RANGE_UPPER_INCLUSIVE: u8 = 0x04;
const RANGE_LOWER_INFINITE: u8 = 0x08;
const RANGE_UPPER_INFINITE: u8 = 0x10;

fn encode_range<T>(
    low: Option<&(T, RangeBoundKind)>,
    high: Option<&(T, RangeBoundKind)>,
    out: &mut Vec<u8>,
    mut write: impl FnMut(&T, &mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let mut flags = 0;
    match low {
        None => flags |= RANGE_LOWER_INFINITE,
        Some((_, RangeBoundKind::Inclusive)) => flags |= RANGE_LOWER_INCLUSIVE,
        Some(_) => {}
    }
    match high {
        None => flags |= RANGE_UPPER_INFINITE,
        Some((_, RangeBoundKind::Inclusive)) => flags |= RANGE_UPPER_INCLUSIVE,
        Some(_) => {}
    }
    out.push(flags);
    for (bound, _) in [low, high].into_iter().flatten() {
        encode_element(bound, out, &mut write)?;
    }
    Ok(())
}

fn parse_uuid(text: &str) -> Result<[u8; 16], String> {
    let invalid = || format!("invalid UUID {text:?}");
    let mut bytes = [0u8; 16];
    let mut nibbles = 0;
    for c in text.chars().filter(|c| *c != '-') {
        let nibble = c.to_digit(16).ok_or_else(invalid)? as u8;
        if nibbles == 32 {
            return Err(invalid());
        }
        bytes[nibbles / 2] |= if nibbles % 2 == 0 {
            nibble << 4
        } else {
            nibble
        };
        nibbles += 1;
    }
    if nibbles != 32 {
        return Err(invalid());
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------------
// Dates and times: Postgres counts days and microseconds from 2000-01-01 (UTC)

/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const SECONDS_PER_DAY: i64 = 86_400;
const MICROS_PER_DAY: i64 = SECONDS_PER_DAY * 1_000_000;

fn days_from_date((year, month, day): (i32, u8, u8)) -> Result<i64, String> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if day == 0 || day > days_in_month {
        return Err(format!("invalid date {year:04}-{month:02}-{day:02}"));
    }
    Ok(days_from_civil(
        i64::from(year),
        u32::from(month),
        u32::from(day),
    ))
}

fn micros_from_time((hour, minute, second, nanos): (u8, u8, u8, u32)) -> Result<i64, String> {
    if hour > 23 || minute > 59 || second > 59 || nanos > 999_999_999 {
        return Err(format!(
            "invalid time {hour:02}:{minute:02}:{second:02}.{nanos:09}"
        ));
    }
    let seconds = i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    // Postgres keeps microseconds: finer digits are dropped.
    Ok(seconds * 1_000_000 + i64::from(nanos / 1000))
}

fn micros_from_datetime(
    (year, month, day, hour, minute, second, nanos): (i32, u8, u8, u8, u8, u8, u32),
) -> Result<i64, String> {
    let days = days_from_date((year, month, day))? - PG_EPOCH_DAYS;
    let time = micros_from_time((hour, minute, second, nanos))?;
    days.checked_mul(MICROS_PER_DAY)
        .and_then(|micros| micros.checked_add(time))
        .ok_or_else(|| format!("datetime in year {year} out of range"))
}

type Datetime = (i32, u8, u8, u8, u8, u8, u32);

fn datetime_from_micros(micros: i64) -> Option<Datetime> {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days + PG_EPOCH_DAYS);
    let (hour, minute, second, nanos) = time_from_micros(micros.rem_euclid(MICROS_PER_DAY))?;
    Some((
        i32::try_from(year).ok()?,
        month as u8,
        day as u8,
        hour,
        minute,
        second,
        nanos,
    ))
}

fn time_from_micros(micros: i64) -> Option<(u8, u8, u8, u32)> {
    if !(0..MICROS_PER_DAY).contains(&micros) {
        return None;
    }
    let seconds = micros / 1_000_000;
    Some((
        (seconds / 3600) as u8,
        (seconds / 60 % 60) as u8,
        (seconds % 60) as u8,
        (micros % 1_000_000) as u32 * 1000,
    ))
}

// ---------------------------------------------------------------------------------------------
// Numeric: base-10000 digits in binary, decimal strings in WIT

const NUMERIC_POSITIVE: u16 = 0x0000;
const NUMERIC_NEGATIVE: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Writes a decimal string (`-12.50`, `1e3`, `NaN`, `Infinity`) as a binary numeric.
fn encode_numeric(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let invalid = || format!("invalid decimal {text:?}");
    let trimmed = text.trim();
    let special = |sign: u16, out: &mut Vec<u8>| {
        for field in [0u16, 0, sign, 0] {
            out.extend_from_slice(&field.to_be_bytes());
        }
    };
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    if unsigned.eq_ignore_ascii_case("nan") && trimmed.len() == 3 {
        special(NUMERIC_NAN, out);
        return Ok(());
    }
    if unsigned.eq_ignore_ascii_case("infinity") || unsigned.eq_ignore_ascii_case("inf") {
        special(if negative { NUMERIC_NINF } else { NUMERIC_PINF }, out);
        return Ok(());
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => {
            let exponent: i64 = unsigned[at + 1..].parse().map_err(|_| invalid())?;
            (&unsigned[..at], exponent)
        }
        None => (unsigned, 0),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if integer.len() + fraction.len() == 0 || !all_digits(integer) || !all_digits(fraction) {
        return Err(invalid());
    }
    if exponent.unsigned_abs() > 200_000 {
        return Err(format!("decimal {text:?} is out of range"));
    }
    // Decimal digits, and how many of them stand before the point.
    let digits: Vec<u8> = integer
        .bytes()
        .chain(fraction.bytes())
        .map(|b| b - b'0')
        .collect();
    let point = integer.len() as i64 + exponent;
    let scale = (digits.len() as i64 - point).max(0);
    if scale > 0x3FFF {
        return Err(format!(
            "decimal {text:?} has too many digits after the point"
        ));
    }
    // Group into base-10000 digits aligned on the point: the digit at position `i` weighs
    // 10^(point - 1 - i), which falls in group floor((point - 1 - i) / 4).
    let first = digits.iter().position(|d| *d != 0);
    let last = digits.iter().rposition(|d| *d != 0);
    let mut groups: Vec<i16> = Vec::new();
    let mut weight = 0i64;
    if let (Some(first), Some(last)) = (first, last) {
        let top = (point - 1 - first as i64).div_euclid(4);
        let bottom = (point - 1 - last as i64).div_euclid(4);
        weight = top;
        groups = vec![0; (top - bottom + 1) as usize];
        for (i, digit) in digits.iter().enumerate().take(last + 1).skip(first) {
            let power = point - 1 - i as i64;
            let group = (top - power.div_euclid(4)) as usize;
            groups[group] += i16::from(*digit) * 10i16.pow(power.rem_euclid(4) as u32);
        }
    }
    let ndigits = i16::try_from(groups.len()).map_err(|_| invalid())?;
    let weight = i16::try_from(weight).map_err(|_| format!("decimal {text:?} is out of range"))?;
    let sign = if negative && !groups.is_empty() {
        NUMERIC_NEGATIVE
    } else {
        NUMERIC_POSITIVE
    };
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for group in groups {
        out.extend_from_slice(&group.to_be_bytes());
    }
    Ok(())
}

/// A binary numeric as a decimal string with its scale (`12.50`).
fn decode_numeric(bytes: &[u8]) -> Option<String> {
    let field = |i: usize| {
        Some(u16::from_be_bytes(
            bytes.get(i * 2..i * 2 + 2)?.try_into().ok()?,
        ))
    };
    let ndigits = usize::from(field(0)?);
    let weight = field(1)? as i16 as i64;
    let sign = field(2)?;
    let scale = usize::from(field(3)?);
    if bytes.len() != 8 + ndigits * 2 {
        return None;
    }
    match sign {
        NUMERIC_NAN => return Some("NaN".into()),
        NUMERIC_PINF => return Some("Infinity".into()),
        NUMERIC_NINF => return Some("-Infinity".into()),
        NUMERIC_POSITIVE | NUMERIC_NEGATIVE => {}
        _ => return None,
    }
    let digit = |group: i64| -> Option<u16> {
        if (0..ndigits as i64).contains(&group) {
            field(4 + group as usize)
        } else {
            Some(0)
        }
    };
    let mut text = String::with_capacity(ndigits * 4 + scale + 3);
    if sign == NUMERIC_NEGATIVE && ndigits > 0 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for group in 0..=weight {
            let d = digit(group)?;
            if group == 0 {
                let _ = write!(text, "{d}");
            } else {
                let _ = write!(text, "{d:04}");
            }
        }
    }
    if scale > 0 {
        text.push('.');
        let start = text.len();
        let mut group = weight + 1;
        while text.len() - start < scale {
            let _ = write!(text, "{:04}", digit(group)?);
            group += 1;
        }
        text.truncate(start + scale);
    }
    Some(text)
}

// ---------------------------------------------------------------------------------------------
// Results: binary column values as WIT values

/// How a column's values are read, from its type.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Bytea,
    Timestamp,
    Date,
    Time,
    Uuid,
    Json,
    Jsonb,
    Numeric,
    Interval,
    Int4Range,
    Int8Range,
    NumRange,
    Int4Array,
    Int8Array,
    NumericArray,
    TextArray,
    Other,
}

impl Kind {
    fn of(ty: &PgTypeInfo) -> Self {
        match oid(ty) {
            BOOL => Kind::Bool,
            INT2 => Kind::Int2,
            INT4 => Kind::Int4,
            INT8 => Kind::Int8,
            FLOAT4 => Kind::Float4,
            FLOAT8 => Kind::Float8,
            TEXT | VARCHAR | BPCHAR | NAME => Kind::Text,
            BYTEA => Kind::Bytea,
            TIMESTAMP | TIMESTAMPTZ => Kind::Timestamp,
            DATE => Kind::Date,
            TIME => Kind::Time,
            UUID => Kind::Uuid,
            JSON => Kind::Json,
            JSONB => Kind::Jsonb,
            NUMERIC => Kind::Numeric,
            INTERVAL => Kind::Interval,
            INT4RANGE => Kind::Int4Range,
            INT8RANGE => Kind::Int8Range,
            NUMRANGE => Kind::NumRange,
            INT4_ARRAY => Kind::Int4Array,
            INT8_ARRAY => Kind::Int8Array,
            NUMERIC_ARRAY => Kind::NumericArray,
            TEXT_ARRAY | VARCHAR_ARRAY | BPCHAR_ARRAY => Kind::TextArray,
            _ => Kind::Other,
        }
    }

    fn data_type(self, ty: &PgTypeInfo) -> DbDataType {
        match self {
            Kind::Bool => DbDataType::Boolean,
            Kind::Int2 => DbDataType::Int16,
            Kind::Int4 => DbDataType::Int32,
            Kind::Int8 => DbDataType::Int64,
            Kind::Float4 => DbDataType::Floating32,
            Kind::Float8 => DbDataType::Floating64,
            Kind::Text => DbDataType::Str,
            Kind::Bytea => DbDataType::Binary,
            Kind::Timestamp => DbDataType::Datetime,
            Kind::Date => DbDataType::Date,
            Kind::Time => DbDataType::Time,
            Kind::Uuid => DbDataType::Uuid,
            Kind::Json | Kind::Jsonb => DbDataType::Jsonb,
            Kind::Numeric => DbDataType::Decimal,
            Kind::Interval => DbDataType::Interval,
            Kind::Int4Range => DbDataType::RangeInt32,
            Kind::Int8Range => DbDataType::RangeInt64,
            Kind::NumRange => DbDataType::RangeDecimal,
            Kind::Int4Array => DbDataType::ArrayInt32,
            Kind::Int8Array => DbDataType::ArrayInt64,
            Kind::NumericArray => DbDataType::ArrayDecimal,
            Kind::TextArray => DbDataType::ArrayStr,
            Kind::Other => DbDataType::Other(type_name(ty)),
        }
    }
}

#[allow(clippy::result_large_err)]
fn row_values(row: &PgRow, kinds: &[Kind]) -> Result<Vec<DbValue>, wit::Error> {
    let mut values = Vec::with_capacity(kinds.len());
    for (index, kind) in kinds.iter().enumerate() {
        let raw = row.try_get_raw(index).map_err(error)?;
        values.push(value(raw, *kind).map_err(|e| {
            let name = row.columns().get(index).map_or("?", |c| c.name());
            wit::Error::ValueConversionFailed(format!("column {name}: {e}"))
        })?);
    }
    Ok(values)
}

fn value(raw: PgValueRef<'_>, kind: Kind) -> Result<DbValue, String> {
    if raw.is_null() {
        return Ok(DbValue::DbNull);
    }
    if raw.format() != PgValueFormat::Binary {
        return Err("value not in binary format".into());
    }
    let bytes = raw.as_bytes().map_err(|e| e.to_string())?;
    decode(bytes, kind).ok_or_else(|| format!("malformed {kind:?} value"))
}

fn be<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}

fn decode(bytes: &[u8], kind: Kind) -> Option<DbValue> {
    let unsupported = || DbValue::Unsupported(bytes.to_vec());
    Some(match kind {
        Kind::Bool => DbValue::Boolean(*be::<1>(bytes)?.first()? != 0),
        Kind::Int2 => DbValue::Int16(i16::from_be_bytes(be(bytes)?)),
        Kind::Int4 => DbValue::Int32(i32::from_be_bytes(be(bytes)?)),
        Kind::Int8 => DbValue::Int64(i64::from_be_bytes(be(bytes)?)),
        Kind::Float4 => DbValue::Floating32(f32::from_be_bytes(be(bytes)?)),
        Kind::Float8 => DbValue::Floating64(f64::from_be_bytes(be(bytes)?)),
        Kind::Text => DbValue::Str(std::str::from_utf8(bytes).ok()?.to_owned()),
        Kind::Bytea => DbValue::Binary(bytes.to_vec()),
        Kind::Timestamp => match i64::from_be_bytes(be(bytes)?) {
            // ±infinity have no date.
            i64::MAX | i64::MIN => unsupported(),
            micros => DbValue::Datetime(datetime_from_micros(micros)?),
        },
        Kind::Date => match i32::from_be_bytes(be(bytes)?) {
            i32::MAX | i32::MIN => unsupported(),
            days => {
                let (year, month, day) = civil_from_days(i64::from(days) + PG_EPOCH_DAYS);
                DbValue::Date((i32::try_from(year).ok()?, month as u8, day as u8))
            }
        },
        Kind::Time => DbValue::Time(time_from_micros(i64::from_be_bytes(be(bytes)?))?),
        Kind::Uuid => {
            let b: [u8; 16] = be(bytes)?;
            let mut text = String::with_capacity(36);
            for (i, byte) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    text.push('-');
                }
                let _ = write!(text, "{byte:02x}");
            }
            DbValue::Uuid(text)
        }
        Kind::Json => DbValue::Jsonb(bytes.to_vec()),
        Kind::Jsonb => match bytes.split_first() {
            Some((1, json)) => DbValue::Jsonb(json.to_vec()),
            _ => unsupported(),
        },
        Kind::Numeric => DbValue::Decimal(decode_numeric(bytes)?),
        Kind::Interval => DbValue::Interval(Interval {
            micros: i64::from_be_bytes(be(bytes.get(..8)?)?),
            days: i32::from_be_bytes(be(bytes.get(8..12)?)?),
            months: i32::from_be_bytes(be(bytes.get(12..)?)?),
        }),
        Kind::Int4Range => {
            DbValue::RangeInt32(decode_range(bytes, |b| Some(i32::from_be_bytes(be(b)?)))?)
        }
        Kind::Int8Range => {
            DbValue::RangeInt64(decode_range(bytes, |b| Some(i64::from_be_bytes(be(b)?)))?)
        }
        Kind::NumRange => DbValue::RangeDecimal(decode_range(bytes, decode_numeric)?),
        Kind::Int4Array => DbValue::ArrayInt32(decode_array(bytes, INT4, |b| {
            Some(i32::from_be_bytes(be(b)?))
        })?),
        Kind::Int8Array => DbValue::ArrayInt64(decode_array(bytes, INT8, |b| {
            Some(i64::from_be_bytes(be(b)?))
        })?),
        Kind::NumericArray => DbValue::ArrayDecimal(decode_array(bytes, NUMERIC, decode_numeric)?),
        Kind::TextArray => DbValue::ArrayStr(decode_array(bytes, 0, |b| {
            Some(std::str::from_utf8(b).ok()?.to_owned())
        })?),
        Kind::Other => unsupported(),
    })
}

/// Splits a length-prefixed element off the front of `bytes`: `Some(None)` for NULL.
fn take_element<'b>(bytes: &mut &'b [u8]) -> Option<Option<&'b [u8]>> {
    let len = i32::from_be_bytes(be(bytes.get(..4)?)?);
    *bytes = &bytes[4..];
    if len < 0 {
        return Some(None);
    }
    let (element, rest) = bytes.split_at_checked(len as usize)?;
    *bytes = rest;
    Some(Some(element))
}

/// A one-dimensional array (or an empty one); `element` 0 accepts any element type.
fn decode_array<T>(
    mut bytes: &[u8],
    element: u32,
    read: impl Fn(&[u8]) -> Option<T>,
) -> Option<Vec<Option<T>>> {
    let dimensions = i32::from_be_bytes(be(bytes.get(..4)?)?);
    let element_oid = u32::from_be_bytes(be(bytes.get(8..12)?)?);
    if element != 0 && element_oid != element {
        return None;
    }
    if dimensions == 0 {
        return Some(Vec::new());
    }
    if dimensions != 1 {
        return None;
    }
    let len = usize::try_from(i32::from_be_bytes(be(bytes.get(12..16)?)?)).ok()?;
    bytes = bytes.get(20..)?;
    let mut items = Vec::with_capacity(len.min(bytes.len() / 4));
    for _ in 0..len {
        items.push(match take_element(&mut bytes)? {
            Some(element) => Some(read(element)?),
            None => None,
        });
    }
    Some(items)
}

type Bound<T> = Option<(T, RangeBoundKind)>;

fn decode_range<T>(
    bytes: &[u8],
    read: impl Fn(&[u8]) -> Option<T>,
) -> Option<(Bound<T>, Bound<T>)> {
    let (&flags, mut rest) = bytes.split_first()?;
    if flags & RANGE_EMPTY != 0 {
        return Some((None, None));
    }
    let mut bound = |infinite: u8, inclusive: u8| -> Option<Bound<T>> {
        if flags & infinite != 0 {
            return Some(None);
        }
        let value = read(take_element(&mut rest)??)?;
        let kind = if flags & inclusive != 0 {
            RangeBoundKind::Inclusive
        } else {
            RangeBoundKind::Exclusive
        };
        Some(Some((value, kind)))
    };
    let low = bound(RANGE_LOWER_INFINITE, RANGE_LOWER_INCLUSIVE)?;
    let high = bound(RANGE_UPPER_INFINITE, RANGE_UPPER_INCLUSIVE)?;
    Some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit::HostConnection as _;

    const TEST_DATABASE: &str = "postgres://postgres@127.0.0.1:5432/test";

    #[test]
    fn numeric_text_round_trips() {
        let cases = [
            ("0", "0"),
            ("-0.00", "0.00"),
            ("1", "1"),
            ("-1.50", "-1.50"),
            ("12345.6789", "12345.6789"),
            ("0.0001", "0.0001"),
            ("0.00001234", "0.00001234"),
            ("100000000", "100000000"),
            ("9999.9999", "9999.9999"),
            ("10000", "10000"),
            ("1e3", "1000"),
            ("1.5e-3", "0.0015"),
            ("+7", "7"),
            (
                "123456789012345678901234567890.123456789",
                "123456789012345678901234567890.123456789",
            ),
            ("NaN", "NaN"),
            ("-Infinity", "-Infinity"),
        ];
        for (input, expected) in cases {
            let mut bytes = Vec::new();
            encode_numeric(input, &mut bytes).unwrap();
            assert_eq!(decode_numeric(&bytes).as_deref(), Some(expected), "{input}");
        }
        for bad in ["", "-", "1.2.3", "abc", "1e", "0x10", "1 2"] {
            assert!(encode_numeric(bad, &mut Vec::new()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dates_and_times_convert() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), PG_EPOCH_DAYS);
        for days in [-800_000, -1, 0, 59, 60, 10_957, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        let micros = micros_from_datetime((2026, 11, 25, 13, 0, 0, 123_456_789)).unwrap();
        assert_eq!(
            datetime_from_micros(micros),
            Some((2026, 11, 25, 13, 0, 0, 123_456_000))
        );
        assert_eq!(
            datetime_from_micros(-1),
            Some((1999, 12, 31, 23, 59, 59, 999_999_000))
        );
        assert!(days_from_date((2025, 2, 29)).is_err());
        assert!(days_from_date((2024, 2, 29)).is_ok());
        assert!(micros_from_time((24, 0, 0, 0)).is_err());
        assert_eq!(
            parse_uuid("00112233-4455-6677-8899-AABBCCDDEEFF").unwrap()[15],
            0xff
        );
        assert!(parse_uuid("0011").is_err());
    }

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

    #[test]
    fn statements_that_leave_session_state_are_recognised() {
        for plain in [
            "SELECT id, name FROM products WHERE id = $1",
            "INSERT INTO orders (a) VALUES ($1) RETURNING id",
            "UPDATE products SET stock = stock - $1 WHERE id = $2 AND stock >= $1",
            "WITH x AS (SELECT 1) DELETE FROM t WHERE id IN (SELECT * FROM x)",
            "BEGIN",
            "COMMIT",
            "SELECT 'SET search_path TO x; set_config' AS text -- TEMP",
            "",
        ] {
            assert!(!may_change_session(plain), "{plain}");
        }
        for stateful in [
            "SET search_path TO accounts",
            "set statement_timeout = 1",
            "RESET ALL",
            "LISTEN channel",
            "PREPARE p AS SELECT 1",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "CREATE TEMP TABLE t (a int)",
            "SELECT * INTO TEMPORARY t FROM products",
            "SELECT set_config('application_name', 'x', false)",
            "SELECT pg_advisory_lock(1)",
            "DO $$ BEGIN PERFORM 1; END $$",
            "  /* c */ Set role postgres",
        ] {
            assert!(may_change_session(stateful), "{stateful}");
        }
    }

    #[test]
    fn transaction_statements_are_recognised() {
        assert!(opens_transaction("BEGIN"));
        assert!(opens_transaction(
            "start transaction isolation level serializable"
        ));
        assert!(opens_transaction("SAVEPOINT s"));
        assert!(!opens_transaction("SELECT 'begin', \"begin\" -- begin"));
        assert!(!opens_transaction(
            "SELECT $$ BEGIN $$, $tag$ begin $tag$, $1"
        ));
        assert!(closes_transaction("COMMIT"));
        assert!(closes_transaction("rollback work;"));
        assert!(closes_transaction("END TRANSACTION"));
        assert!(!closes_transaction("ROLLBACK TO SAVEPOINT s"));
        assert!(!closes_transaction("COMMIT AND CHAIN"));
        assert!(!closes_transaction("SELECT 1"));
        assert!(!closes_transaction(""));
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
        conn.execute(&*format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
        let address = format!("{TEST_DATABASE}?options=-c%20search_path%3D{schema}");
        Some((schema, address))
    }

    async fn drop_schema(schema: &str) {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(TEST_DATABASE).await.unwrap();
        conn.execute(&*format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
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
        let pool = other.pool(&address).await.unwrap();
        other.check_address(&address).await.unwrap();
        let values: Vec<i64> = sqlx::query_scalar("SELECT a FROM t ORDER BY a")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(values, [1, 3]);
        pool.close().await;
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
