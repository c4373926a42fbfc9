//! The reads through sqlx's Postgres pool, on the products service's own schema (its role's
//! URL sets `search_path`, as the host's pool for the service does).

use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::{PgPool, Row, ValueRef as _};

use super::{Money, Product, Timestamp, COUNT, FIND, LIST};

/// A `TIMESTAMP` column, decoded from Postgres' binary form (sqlx's chrono feature would do it,
/// at the cost of a feature across the workspace's sqlx).
fn timestamp(row: &PgRow, column: &str) -> Result<Timestamp, sqlx::Error> {
    let decode_error = |message: String| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: message.into(),
    };
    let value = row.try_get_raw(column)?;
    if value.is_null() || value.format() != PgValueFormat::Binary {
        return Err(decode_error("not a binary TIMESTAMP".to_owned()));
    }
    let bytes = value.as_bytes().map_err(|e| decode_error(e.to_string()))?;
    let micros = <[u8; 8]>::try_from(bytes)
        .map(i64::from_be_bytes)
        .map_err(|_| decode_error(format!("{} bytes for a TIMESTAMP", bytes.len())))?;
    Timestamp::from_postgres_micros(micros)
        .ok_or_else(|| decode_error(format!("{micros} µs since 2000 is out of range")))
}

fn product(row: &PgRow) -> Result<Product, sqlx::Error> {
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
pub async fn find(pool: &PgPool, id: i64) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query(FIND)
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(product)
        .transpose()
}

/// How many products there are.
pub async fn count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query(COUNT).fetch_one(pool).await?.try_get("total")
}

/// One page of products in id order.
pub async fn list(pool: &PgPool, limit: i64, offset: i64) -> Result<Vec<Product>, sqlx::Error> {
    sqlx::query(LIST)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?
        .iter()
        .map(product)
        .collect()
}
