//! The `carts` and `cart_items` tables (migrations/cart/), the same SQL on SQLite and Postgres.
//! Every change is one statement the unique keys make safe under concurrency: no read of a
//! quantity is ever written back.

use shop_guest::storage::{Db, Param, Row, Statement, StorageError, LINES_PER_STATEMENT};
use shop_guest::time::Timestamp;

use crate::domain::{Cart, CartItem};

const CART_COLUMNS: &str = "id, created_at, updated_at";

fn cart(row: &Row) -> Result<Cart, StorageError> {
    Ok(Cart {
        id: row.int("id")?,
        created_at: row.timestamp("created_at")?,
        updated_at: row.timestamp("updated_at")?,
    })
}

fn cart_item(row: &Row) -> Result<CartItem, StorageError> {
    line(row, "id")
}

/// A line from a row whose line id is in column `id_column`.
fn line(row: &Row, id_column: &str) -> Result<CartItem, StorageError> {
    Ok(CartItem {
        id: row.int(id_column)?,
        product_id: row.int("product_id")?,
        quantity: row.int("quantity")?,
    })
}

fn expect_row(row: Option<Row>, what: &str) -> Result<Row, StorageError> {
    row.ok_or_else(|| StorageError::Query(format!("{what} returned no row")))
}

/// The user's cart, made empty (stamped `now`) on first use. Two first uses at once make one
/// cart: the unique `user_id` turns the second insert into nothing.
pub fn cart_of(db: &Db, user_id: i64, now: Timestamp) -> Result<Cart, StorageError> {
    let select = format!("SELECT {CART_COLUMNS} FROM carts WHERE user_id = $1");
    if let Some(row) = db.query_one(&select, &[Param::Int(user_id)])? {
        return cart(&row);
    }
    make_cart(db, user_id, now)?;
    cart(&expect_row(
        db.query_one(&select, &[Param::Int(user_id)])?,
        "the cart's SELECT",
    )?)
}

/// The user's cart, made on first use as [`cart_of`] makes it, and its lines, oldest first: one
/// statement where the cart and then its lines took two.
pub fn cart_with_lines(
    db: &Db,
    user_id: i64,
    now: Timestamp,
) -> Result<(Cart, Vec<CartItem>), StorageError> {
    // One row per line, or one row with no line (NULLs) for an empty cart.
    const SELECT: &str = "SELECT carts.id, carts.created_at, carts.updated_at, \
         cart_items.id AS line_id, cart_items.product_id, cart_items.quantity \
         FROM carts LEFT JOIN cart_items ON cart_items.cart_id = carts.id \
         WHERE carts.user_id = $1 ORDER BY cart_items.created_at, cart_items.id";
    let mut rows = db.query(SELECT, &[Param::Int(user_id)])?;
    if rows.is_empty() {
        make_cart(db, user_id, now)?;
        rows = db.query(SELECT, &[Param::Int(user_id)])?;
    }
    let first = rows
        .first()
        .ok_or_else(|| StorageError::Query("the cart's SELECT returned no row".to_owned()))?;
    let found = cart(first)?;
    let mut lines = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.opt_int("line_id")?.is_some() {
            lines.push(line(row, "line_id")?);
        }
    }
    Ok((found, lines))
}

/// Makes the user's empty cart, stamped `now`, unless the user has one.
fn make_cart(db: &Db, user_id: i64, now: Timestamp) -> Result<(), StorageError> {
    db.execute(
        "INSERT INTO carts (user_id, created_at, updated_at) VALUES ($1, $2, $2) \
         ON CONFLICT (user_id) DO NOTHING",
        &[Param::Int(user_id), now.into()],
    )?;
    Ok(())
}

/// Stamps the cart as changed `now` and answers it.
pub fn touch(db: &Db, cart_id: i64, now: Timestamp) -> Result<Cart, StorageError> {
    let row = db.query_one(
        &format!("UPDATE carts SET updated_at = $1 WHERE id = $2 RETURNING {CART_COLUMNS}"),
        &[now.into(), Param::Int(cart_id)],
    )?;
    cart(&expect_row(row, "the cart's UPDATE")?)
}

/// The cart's lines, oldest first.
pub fn items(db: &Db, cart_id: i64) -> Result<Vec<CartItem>, StorageError> {
    db.query(
        "SELECT id, product_id, quantity FROM cart_items WHERE cart_id = $1 \
         ORDER BY created_at, id",
        &[Param::Int(cart_id)],
    )?
    .iter()
    .map(cart_item)
    .collect()
}

/// The lines of the user's cart, oldest first; none if the user has no cart.
pub fn items_of_user(db: &Db, user_id: i64) -> Result<Vec<CartItem>, StorageError> {
    db.query(
        "SELECT cart_items.id, cart_items.product_id, cart_items.quantity \
         FROM cart_items JOIN carts ON carts.id = cart_items.cart_id \
         WHERE carts.user_id = $1 ORDER BY cart_items.created_at, cart_items.id",
        &[Param::Int(user_id)],
    )?
    .iter()
    .map(cart_item)
    .collect()
}

/// Adds `quantity` units of a product to the cart (a new line, or more of an existing one) in
/// one atomic upsert, so that concurrent adds lose nothing; answers the line's new quantity.
pub fn add_units(
    db: &Db,
    cart_id: i64,
    product_id: i64,
    quantity: i64,
    now: Timestamp,
) -> Result<i64, StorageError> {
    let row = db.query_one(
        "INSERT INTO cart_items (cart_id, product_id, quantity, created_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (cart_id, product_id) \
         DO UPDATE SET quantity = cart_items.quantity + excluded.quantity \
         RETURNING quantity",
        &[
            Param::Int(cart_id),
            Param::Int(product_id),
            Param::Int(quantity),
            now.into(),
        ],
    )?;
    expect_row(row, "the line's upsert")?.int("quantity")
}

/// Sets the quantity of a line; `false` if the product is not in the cart.
pub fn set_quantity(
    db: &Db,
    cart_id: i64,
    product_id: i64,
    quantity: i64,
) -> Result<bool, StorageError> {
    Ok(db.execute(
        "UPDATE cart_items SET quantity = $1 WHERE cart_id = $2 AND product_id = $3",
        &[
            Param::Int(quantity),
            Param::Int(cart_id),
            Param::Int(product_id),
        ],
    )? > 0)
}

/// Removes a line; `false` if the product is not in the cart.
pub fn remove(db: &Db, cart_id: i64, product_id: i64) -> Result<bool, StorageError> {
    Ok(db.execute(
        "DELETE FROM cart_items WHERE cart_id = $1 AND product_id = $2",
        &[Param::Int(cart_id), Param::Int(product_id)],
    )? > 0)
}

/// Removes, in one statement per [`LINES_PER_STATEMENT`] lines, each of the user's lines of an
/// `ordered` product that still holds the `(product id, quantity)` units an order took (a line
/// changed since keeps what it holds); answers whether any went.
pub fn remove_ordered(db: &Db, user_id: i64, ordered: &[(i64, i64)]) -> Result<bool, StorageError> {
    let mut removed = false;
    for chunk in ordered.chunks(LINES_PER_STATEMENT) {
        removed |= remove_ordered_lines(db, user_id, chunk)?;
    }
    Ok(removed)
}

/// [`remove_ordered`] for at most [`LINES_PER_STATEMENT`] lines, in one statement.
fn remove_ordered_lines(
    db: &Db,
    user_id: i64,
    ordered: &[(i64, i64)],
) -> Result<bool, StorageError> {
    let mut statement = Statement::new(
        "DELETE FROM cart_items WHERE cart_id = (SELECT id FROM carts WHERE user_id = ",
    );
    statement.push_bind(user_id).push(") AND (");
    for (index, &(product_id, quantity)) in ordered.iter().enumerate() {
        if index > 0 {
            statement.push(" OR ");
        }
        statement.push("(product_id = ").push_bind(product_id);
        statement
            .push(" AND quantity = ")
            .push_bind(quantity)
            .push(")");
    }
    statement.push(")");
    Ok(db.execute_statement(&statement)? > 0)
}

/// Stamps the user's cart as changed `now`, if the user has one.
pub fn touch_user_cart(db: &Db, user_id: i64, now: Timestamp) -> Result<(), StorageError> {
    db.execute(
        "UPDATE carts SET updated_at = $1 WHERE user_id = $2",
        &[now.into(), Param::Int(user_id)],
    )?;
    Ok(())
}
