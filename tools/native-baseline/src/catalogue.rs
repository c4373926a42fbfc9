//! The `products` table, read with the products service's own statements
//! (components/products/src/storage.rs) and shown as its `Product` (components/products/src/api.rs).

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Serialize, Serializer};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

/// The columns the service selects, in its order.
const COLUMNS: &str = "id, name, description, price_cents, stock, created_at, updated_at";

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
pub struct Money(i64);

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
    fn parse(text: &str) -> Option<Self> {
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

fn timestamp(row: &SqliteRow, column: &str) -> Result<Timestamp, sqlx::Error> {
    let text: String = row.try_get(column)?;
    Timestamp::parse(&text).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("not a timestamp: {text:?}").into(),
    })
}

fn product(row: &SqliteRow) -> Result<Product, sqlx::Error> {
    Ok(Product {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        price: Money(row.try_get("price_cents")?),
        stock: row.try_get("stock")?,
        created_at: timestamp(row, "created_at")?,
        updated_at: timestamp(row, "updated_at")?,
    })
}

/// One product by id.
pub async fn find(pool: &SqlitePool, id: i64) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM products WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(product)
    .transpose()
}

/// How many products there are (the service's count with no filter).
pub async fn count(pool: &SqlitePool) -> Result<u64, sqlx::Error> {
    let total: i64 = sqlx::query("SELECT COUNT(*) AS total FROM products WHERE 1 = 1")
        .fetch_one(pool)
        .await?
        .try_get("total")?;
    Ok(u64::try_from(total).unwrap_or(0))
}

/// One page of products in id order (the service's list with no filter and no ordering).
pub async fn list(pool: &SqlitePool, limit: i64, offset: i64) -> Result<Vec<Product>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM products WHERE 1 = 1 ORDER BY id ASC LIMIT $1 OFFSET $2"
    )))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?
    .iter()
    .map(product)
    .collect()
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
}
