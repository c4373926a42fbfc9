//! The reads through sqlx's SQLite pool (`--driver sqlx`): the host's own SQLite driver.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::{Money, Product, Timestamp, COUNT, FIND, LIST};

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
    sqlx::query(FIND)
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(product)
        .transpose()
}

/// How many products there are.
pub async fn count(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query(COUNT).fetch_one(pool).await?.try_get("total")
}

/// One page of products in id order.
pub async fn list(pool: &SqlitePool, limit: i64, offset: i64) -> Result<Vec<Product>, sqlx::Error> {
    sqlx::query(LIST)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?
        .iter()
        .map(product)
        .collect()
}
