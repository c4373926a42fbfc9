//! The `products` table, read with the products service's own statements
//! (components/products/src/storage.rs) and shown as its `Product` (components/products/src/api.rs).

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Serialize, Serializer};
use sqlx::{PgPool, SqlitePool};

pub mod postgres;
pub mod sqlite;
pub mod sqlx_sqlite;

/// The service's statements (the same text on SQLite and Postgres), the columns in its order.
const FIND: &str = "SELECT id, name, description, price_cents, stock, created_at, updated_at \
                    FROM products WHERE id = $1";
const COUNT: &str = "SELECT COUNT(*) AS total FROM products WHERE 1 = 1";
const LIST: &str = "SELECT id, name, description, price_cents, stock, created_at, updated_at \
                    FROM products WHERE 1 = 1 ORDER BY id ASC LIMIT $1 OFFSET $2";

/// A product as the API shows it: the fields in the service's order.
#[derive(Debug, Clone, Serialize)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub stock: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An amount stored as cents, shown as a string with two decimals (`"12.50"`), as
/// `shop_guest::money::Money` serializes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money(pub i64);

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let cents = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", cents / 100, cents % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An instant in UTC to the microsecond, shown fixed width with `Z`
/// (`2026-11-25T13:00:00.123456Z`), as `shop_guest::time::Timestamp` reads and shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(DateTime<Utc>);

/// The one text format of timestamps.
const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

impl Timestamp {
    /// Parses RFC 3339 text (any offset, any fraction), or SQLite's offset-less forms, into
    /// UTC cut to microseconds.
    pub fn parse(text: &str) -> Option<Self> {
        let instant = match DateTime::parse_from_rfc3339(text) {
            Ok(instant) => instant.with_timezone(&Utc),
            Err(_) => NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
                .ok()?
                .and_utc(),
        };
        let micros = instant.timestamp_micros();
        Some(Self(
            DateTime::from_timestamp_micros(micros).unwrap_or(instant),
        ))
    }

    /// Postgres' binary `TIMESTAMP` (microseconds since 2000-01-01, no zone), read as UTC as
    /// the host hands it to the guests.
    pub fn from_postgres_micros(micros: i64) -> Option<Self> {
        const UNIX_TO_2000_MICROS: i64 = 946_684_800_000_000;
        let unix = micros.checked_add(UNIX_TO_2000_MICROS)?;
        DateTime::from_timestamp_micros(unix).map(Self)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format(FORMAT))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The error of a read, reported (a 500 and a log line), never matched.
pub type ReadError = Box<dyn std::error::Error + Send + Sync>;

/// The products table on one database, through one driver: where the reads go.
#[derive(Clone)]
pub enum Catalogue {
    /// SQLite through its C API (rusqlite): a read-only connection per worker thread, the read
    /// done on that thread (the fastest native way to read the file).
    Sqlite(sqlite::Reader),
    /// SQLite through sqlx's pool (its worker thread per connection, a channel each way).
    SqlxSqlite(SqlitePool),
    /// Postgres through sqlx's pool.
    Postgres(PgPool),
}

impl Catalogue {
    /// One product by id.
    pub async fn find(&self, id: i64) -> Result<Option<Product>, ReadError> {
        match self {
            Self::Sqlite(reader) => reader.find(id),
            Self::SqlxSqlite(pool) => Ok(sqlx_sqlite::find(pool, id).await?),
            Self::Postgres(pool) => Ok(postgres::find(pool, id).await?),
        }
    }

    /// How many products there are (the service's count with no filter).
    pub async fn count(&self) -> Result<u64, ReadError> {
        let total = match self {
            Self::Sqlite(reader) => reader.count()?,
            Self::SqlxSqlite(pool) => sqlx_sqlite::count(pool).await?,
            Self::Postgres(pool) => postgres::count(pool).await?,
        };
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// One page of products in id order (the service's list with no filter and no ordering).
    pub async fn list(&self, limit: i64, offset: i64) -> Result<Vec<Product>, ReadError> {
        match self {
            Self::Sqlite(reader) => reader.list(limit, offset),
            Self::SqlxSqlite(pool) => Ok(sqlx_sqlite::list(pool, limit, offset).await?),
            Self::Postgres(pool) => Ok(postgres::list(pool, limit, offset).await?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_places() {
        assert_eq!(Money(1999).to_string(), "19.99");
        assert_eq!(Money(500).to_string(), "5.00");
        assert_eq!(Money(5).to_string(), "0.05");
        assert_eq!(Money(0).to_string(), "0.00");
        assert_eq!(Money(-150).to_string(), "-1.50");
        assert_eq!(serde_json::to_string(&Money(1250)).unwrap(), "\"12.50\"");
    }

    #[test]
    fn timestamps_are_fixed_width() {
        let shown = |text: &str| Timestamp::parse(text).map(|t| t.to_string());
        assert_eq!(
            shown("2026-11-25T13:00:00Z").as_deref(),
            Some("2026-11-25T13:00:00.000000Z")
        );
        assert_eq!(
            shown("2026-11-25T14:00:00.123456789+01:00").as_deref(),
            Some("2026-11-25T13:00:00.123456Z")
        );
        assert_eq!(
            shown("2026-11-25 13:00:00").as_deref(),
            Some("2026-11-25T13:00:00.000000Z")
        );
        assert_eq!(shown("yesterday"), None);
    }

    #[test]
    fn postgres_timestamps_count_from_2000() {
        let shown = |micros| Timestamp::from_postgres_micros(micros).map(|t| t.to_string());
        assert_eq!(shown(0).as_deref(), Some("2000-01-01T00:00:00.000000Z"));
        assert_eq!(
            shown(848_926_800_123_456).as_deref(),
            Some("2026-11-25T13:00:00.123456Z")
        );
        assert_eq!(shown(i64::MAX), None);
    }
}
