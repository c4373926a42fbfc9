//! The `products` and `product_history` tables (migrations/products/), the same SQL on SQLite
//! and Postgres.

use shop_guest::history::HistoryTable;
use shop_guest::money::Money;
use shop_guest::paging::PageWindow;
use shop_guest::storage::{contains_pattern, Db, Engine, Param, Row, Statement, StorageError};
use shop_guest::time::Timestamp;

use std::collections::HashMap;

use crate::domain::{
    CatalogueEntry, NewProduct, Product, ProductChanges, ProductFilter, SortBy, SortKey,
};

const COLUMNS: &str = "id, name, description, price_cents, stock, created_at, updated_at";

/// The changes staff made to products.
pub const HISTORY: HistoryTable = HistoryTable("product_history");

fn product(row: &Row) -> Result<Product, StorageError> {
    Ok(Product {
        id: row.int("id")?,
        name: row.text("name")?,
        description: row.text("description")?,
        price: Money::from_cents(row.int("price_cents")?),
        stock: row.int("stock")?,
        created_at: row.timestamp("created_at")?,
        updated_at: row.timestamp("updated_at")?,
    })
}

/// One product by id.
pub fn find(db: &Db, id: i64) -> Result<Option<Product>, StorageError> {
    db.query_one(
        &format!("SELECT {COLUMNS} FROM products WHERE id = $1"),
        &[Param::Int(id)],
    )?
    .as_ref()
    .map(product)
    .transpose()
}

/// One product by id, locked until the end of the transaction `db` is in, so that what a
/// change records as before is what it changed (SQLite's `BEGIN IMMEDIATE` already holds
/// every writer off; Postgres locks the row).
pub fn find_for_update(db: &Db, id: i64) -> Result<Option<Product>, StorageError> {
    let lock = match db.engine() {
        Engine::Postgres => " FOR UPDATE",
        Engine::Sqlite => "",
    };
    db.query_one(
        &format!("SELECT {COLUMNS} FROM products WHERE id = $1{lock}"),
        &[Param::Int(id)],
    )?
    .as_ref()
    .map(product)
    .transpose()
}

/// Whether a product exists.
pub fn exists(db: &Db, id: i64) -> Result<bool, StorageError> {
    Ok(db
        .query_one(
            "SELECT 1 AS found FROM products WHERE id = $1",
            &[Param::Int(id)],
        )?
        .is_some())
}

/// `WHERE ...` for the list filters.
fn push_filter(statement: &mut Statement, db: &Db, filter: &ProductFilter) {
    statement.push(" WHERE 1 = 1");
    let like = db.engine().ilike();
    for term in &filter.search_terms {
        let pattern = statement.bind(contains_pattern(term));
        statement.push(&format!(
            " AND (name {like} {pattern} ESCAPE '\\' OR description {like} {pattern} ESCAPE '\\')"
        ));
    }
    if let Some(cents) = filter.min_price_cents {
        statement.push(" AND price_cents >= ").push_bind(cents);
    }
    if let Some(cents) = filter.max_price_cents {
        statement.push(" AND price_cents <= ").push_bind(cents);
    }
    match filter.in_stock {
        Some(true) => {
            statement.push(" AND stock > 0");
        }
        Some(false) => {
            statement.push(" AND stock = 0");
        }
        None => {}
    }
}

/// How many products match the filter.
pub fn count(db: &Db, filter: &ProductFilter) -> Result<u64, StorageError> {
    let mut statement = Statement::new("SELECT COUNT(*) AS total FROM products");
    push_filter(&mut statement, db, filter);
    let total = match db.query_statement(&statement)?.first() {
        Some(row) => row.int("total")?,
        None => 0,
    };
    Ok(u64::try_from(total).unwrap_or(0))
}

/// One page of matching products, in the asked order (ties by id).
pub fn list(
    db: &Db,
    filter: &ProductFilter,
    ordering: &[SortBy],
    window: PageWindow,
) -> Result<Vec<Product>, StorageError> {
    let mut statement = Statement::new(&format!("SELECT {COLUMNS} FROM products"));
    push_filter(&mut statement, db, filter);
    statement.push(" ORDER BY ");
    for sort in ordering {
        let column = match sort.key {
            SortKey::Name => "name",
            SortKey::Price => "price_cents",
            SortKey::CreatedAt => "created_at",
            SortKey::Stock => "stock",
        };
        statement.push(column);
        statement.push(if sort.descending { " DESC, " } else { " ASC, " });
    }
    statement.push("id ASC LIMIT ").push_bind(window.limit());
    statement.push(" OFFSET ").push_bind(window.offset());
    let rows = db.query_statement(&statement)?;
    rows.iter().map(product).collect()
}

/// Adds a product, stamped `now`.
pub fn insert(db: &Db, new: &NewProduct, now: Timestamp) -> Result<Product, StorageError> {
    let row = db.query_one(
        &format!(
            "INSERT INTO products (name, description, price_cents, stock, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
        ),
        &[
            new.name.as_str().into(),
            new.description.as_str().into(),
            Param::Int(new.price.cents()),
            Param::Int(new.stock.units()),
            now.into(),
        ],
    )?;
    let row = row.ok_or_else(|| StorageError::Query("INSERT returned no row".to_owned()))?;
    product(&row)
}

/// Sets the given fields (only those: a concurrent stock change is not overwritten by a
/// rename) and `updated_at`; `None` if there is no such product.
pub fn update(
    db: &Db,
    id: i64,
    changes: &ProductChanges,
    now: Timestamp,
) -> Result<Option<Product>, StorageError> {
    // Placeholders are numbered in order of appearance (SQLite numbers `$n` that way).
    let mut statement = Statement::new("UPDATE products SET ");
    if let Some(name) = &changes.name {
        statement
            .push("name = ")
            .push_bind(name.as_str())
            .push(", ");
    }
    if let Some(description) = &changes.description {
        statement
            .push("description = ")
            .push_bind(description.as_str())
            .push(", ");
    }
    if let Some(price) = changes.price {
        statement
            .push("price_cents = ")
            .push_bind(price.cents())
            .push(", ");
    }
    if let Some(stock) = changes.stock {
        statement
            .push("stock = ")
            .push_bind(stock.units())
            .push(", ");
    }
    statement.push("updated_at = ").push_bind(now);
    statement.push(" WHERE id = ").push_bind(id);
    statement.push(&format!(" RETURNING {COLUMNS}"));
    db.query_statement(&statement)?
        .first()
        .map(product)
        .transpose()
}

/// Removes a product and answers it as it was; `None` if there was none.
pub fn delete(db: &Db, id: i64) -> Result<Option<Product>, StorageError> {
    db.query_one(
        &format!("DELETE FROM products WHERE id = $1 RETURNING {COLUMNS}"),
        &[Param::Int(id)],
    )?
    .as_ref()
    .map(product)
    .transpose()
}

/// Ids per `IN (...)` list: far below SQLite's limit on parameters.
const IDS_PER_QUERY: usize = 500;

/// The products among `ids` that exist, in the order of `ids` (an id asked twice is answered
/// twice); unknown ids are left out.
pub fn catalogue_entries(db: &Db, ids: &[i64]) -> Result<Vec<CatalogueEntry>, StorageError> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let mut statement =
            Statement::new("SELECT id, name, price_cents, stock FROM products WHERE id IN (");
        for (index, id) in chunk.iter().enumerate() {
            if index > 0 {
                statement.push(", ");
            }
            statement.push_bind(*id);
        }
        statement.push(")");
        for row in db.query_statement(&statement)? {
            let entry = CatalogueEntry {
                id: row.int("id")?,
                name: row.text("name")?,
                price_cents: row.int("price_cents")?,
                stock: row.int("stock")?,
            };
            found.insert(entry.id, entry);
        }
    }
    Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
}
