//! The `orders`, `order_items`, `checkouts` and `order_history` tables (migrations/orders/),
//! the same SQL on SQLite and Postgres.

use std::collections::HashMap;

use shop_guest::history::{Action, Actor, Changes, HistoryTable};
use shop_guest::money::Money;
use shop_guest::paging::PageWindow;
use shop_guest::storage::{Db, Param, Row, Statement, StorageError, LINES_PER_STATEMENT};
use shop_guest::time::Timestamp;

use crate::domain::{
    IdempotencyKey, Order, OrderFilter, OrderItem, OrderKey, OrderLine, OrderStatus,
};

const ORDER_COLUMNS: &str = "id, user_id, status, total_cents, shipping_address, order_key, \
                             stock_released, created_at, updated_at";
const ITEM_COLUMNS: &str = "id, order_id, product_id, product_name, quantity, price_cents";

/// The status changes staff made to orders.
pub const HISTORY: HistoryTable = HistoryTable("order_history");

/// An order row, without its items yet.
fn order(row: &Row) -> Result<Order, StorageError> {
    let status = row.text("status")?;
    Ok(Order {
        id: row.int("id")?,
        user_id: row.int("user_id")?,
        status: OrderStatus::parse(&status).ok_or_else(|| StorageError::Decode {
            column: "status".to_owned(),
            reason: format!("unknown status {status:?}"),
        })?,
        total_amount: Money::from_cents(row.int("total_cents")?),
        shipping_address: row.text("shipping_address")?,
        items: Vec::new(),
        created_at: row.timestamp("created_at")?,
        updated_at: row.timestamp("updated_at")?,
        order_key: row.text("order_key")?,
        stock_released: row.bool("stock_released")?,
    })
}

fn item(row: &Row) -> Result<OrderItem, StorageError> {
    Ok(OrderItem {
        id: row.int("id")?,
        product_id: row.int("product_id")?,
        product_name: row.text("product_name")?,
        quantity: row.int("quantity")?,
        price: Money::from_cents(row.int("price_cents")?),
    })
}

/// The orders of `rows`, each with its items (one query for all of them), in row order.
fn with_items(db: &Db, rows: &[Row]) -> Result<Vec<Order>, StorageError> {
    let mut orders: Vec<Order> = rows.iter().map(order).collect::<Result<_, _>>()?;
    if orders.is_empty() {
        return Ok(orders);
    }
    let mut statement = Statement::new(&format!(
        "SELECT {ITEM_COLUMNS} FROM order_items WHERE order_id IN ("
    ));
    for (index, order) in orders.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.push_bind(order.id);
    }
    statement.push(") ORDER BY order_id, id");
    let mut items: HashMap<i64, Vec<OrderItem>> = HashMap::new();
    for row in db.query_statement(&statement)? {
        items
            .entry(row.int("order_id")?)
            .or_default()
            .push(item(&row)?);
    }
    for order in &mut orders {
        order.items = items.remove(&order.id).unwrap_or_default();
    }
    Ok(orders)
}

/// The one order a query found, with its items.
fn one(db: &Db, rows: Vec<Row>) -> Result<Option<Order>, StorageError> {
    Ok(with_items(db, &rows)?.into_iter().next())
}

/// One order by id.
pub fn find(db: &Db, id: i64) -> Result<Option<Order>, StorageError> {
    let rows = db.query(
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"),
        &[Param::Int(id)],
    )?;
    one(db, rows)
}

/// The order a user placed with this idempotency key, if any.
pub fn find_by_idempotency_key(
    db: &Db,
    user_id: i64,
    key: &IdempotencyKey,
) -> Result<Option<Order>, StorageError> {
    let rows = db.query(
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND idempotency_key = $2"),
        &[Param::Int(user_id), key.as_str().into()],
    )?;
    one(db, rows)
}

/// The order holding the reservation of this order key, if any.
pub fn find_by_order_key(db: &Db, key: &OrderKey) -> Result<Option<Order>, StorageError> {
    let rows = db.query(
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_key = $1"),
        &[key.as_str().into()],
    )?;
    one(db, rows)
}

/// What a checkout writes: a pending order over the reserved lines.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    pub user_id: i64,
    pub total: Money,
    pub shipping_address: &'a str,
    pub order_key: &'a OrderKey,
    pub idempotency_key: Option<&'a IdempotencyKey>,
    pub lines: &'a [OrderLine],
}

/// Writes a pending order and its items in one transaction, stamped `now`, if the user's
/// checkout under the order key is still live: `None` when it was abandoned (its request ran
/// past the checkout expiry, and its reservation is being given back). A taken order key or
/// idempotency key (a concurrent retry placed the order first) is a `UniqueViolation`.
pub fn insert(db: &Db, new: &NewOrder<'_>, now: Timestamp) -> Result<Option<Order>, StorageError> {
    db.transaction(|db| {
        // In the order's transaction: a settler that abandons the checkout either comes first
        // (and then no order is written) or waits for this one and finds the order.
        let live = db.execute(
            "UPDATE checkouts SET state = 'placing' \
             WHERE user_id = $1 AND order_key = $2 AND state = 'placing'",
            &[Param::Int(new.user_id), new.order_key.as_str().into()],
        )?;
        if live == 0 {
            return Ok(None);
        }
        let row = db
            .query_one(
                &format!(
                    "INSERT INTO orders (user_id, status, total_cents, shipping_address, \
                     order_key, idempotency_key, stock_released, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {ORDER_COLUMNS}"
                ),
                &[
                    Param::Int(new.user_id),
                    OrderStatus::Pending.as_str().into(),
                    Param::Int(new.total.cents()),
                    new.shipping_address.into(),
                    new.order_key.as_str().into(),
                    new.idempotency_key.map(IdempotencyKey::as_str).into(),
                    Param::Bool(false),
                    now.into(),
                ],
            )?
            .ok_or_else(|| StorageError::Query("INSERT returned no row".to_owned()))?;
        let mut placed = order(&row)?;
        placed.items = insert_items(db, placed.id, new.lines)?;
        Ok(Some(placed))
    })
}

/// Writes the order's items, one statement per [`LINES_PER_STATEMENT`] lines (one row per line,
/// in line order), and answers them as written, in that order.
fn insert_items(
    db: &Db,
    order_id: i64,
    lines: &[OrderLine],
) -> Result<Vec<OrderItem>, StorageError> {
    let mut items = Vec::with_capacity(lines.len());
    for chunk in lines.chunks(LINES_PER_STATEMENT) {
        items.extend(insert_item_rows(db, order_id, chunk)?);
    }
    Ok(items)
}

/// [`insert_items`] for at most [`LINES_PER_STATEMENT`] lines, in one statement.
fn insert_item_rows(
    db: &Db,
    order_id: i64,
    lines: &[OrderLine],
) -> Result<Vec<OrderItem>, StorageError> {
    let mut statement = Statement::new(
        "INSERT INTO order_items (order_id, product_id, product_name, quantity, price_cents) \
         VALUES ",
    );
    let order = statement.bind(order_id);
    for (index, line) in lines.iter().enumerate() {
        statement.push(if index == 0 { "(" } else { ", (" });
        statement.push(&order).push(", ");
        statement.push_bind(line.product_id).push(", ");
        statement.push_bind(line.product_name.as_str()).push(", ");
        statement.push_bind(line.quantity).push(", ");
        statement.push_bind(line.price.cents()).push(")");
    }
    statement.push(&format!(" RETURNING {ITEM_COLUMNS}"));
    let mut items = db
        .query_statement(&statement)?
        .iter()
        .map(item)
        .collect::<Result<Vec<_>, _>>()?;
    if items.len() != lines.len() {
        return Err(StorageError::Query(format!(
            "INSERT of {} items returned {} rows",
            lines.len(),
            items.len()
        )));
    }
    // RETURNING promises no order; ids rise in the order the rows were written.
    items.sort_by_key(|item| item.id);
    Ok(items)
}

/// A checkout that outlived the checkout expiry, or is being settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleCheckout {
    pub user_id: i64,
    pub order_key: OrderKey,
}

/// Starts the user's checkout under `order_key`: false when another checkout of the user is
/// in progress.
pub fn claim_checkout(
    db: &Db,
    user_id: i64,
    order_key: &OrderKey,
    now: Timestamp,
) -> Result<bool, StorageError> {
    let claimed = db.execute(
        "INSERT INTO checkouts (user_id, order_key, state, started_at) \
         VALUES ($1, $2, 'placing', $3)",
        &[Param::Int(user_id), order_key.as_str().into(), now.into()],
    );
    match claimed {
        Ok(_) => Ok(true),
        Err(StorageError::UniqueViolation(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Whether a checkout of the user is in progress (or not yet settled).
pub fn checkout_in_progress(db: &Db, user_id: i64) -> Result<bool, StorageError> {
    Ok(!db
        .query(
            "SELECT 1 AS one FROM checkouts WHERE user_id = $1",
            &[Param::Int(user_id)],
        )?
        .is_empty())
}

/// Up to `limit` checkouts started before `cutoff` or abandoned: their requests are over.
pub fn stale_checkouts(
    db: &Db,
    cutoff: Timestamp,
    limit: i64,
) -> Result<Vec<StaleCheckout>, StorageError> {
    let rows = db.query(
        "SELECT user_id, order_key FROM checkouts \
         WHERE started_at < $1 OR state = 'abandoned' ORDER BY started_at LIMIT $2",
        &[cutoff.into(), Param::Int(limit)],
    )?;
    rows.iter()
        .map(|row| {
            Ok(StaleCheckout {
                user_id: row.int("user_id")?,
                order_key: OrderKey::stored(row.text("order_key")?),
            })
        })
        .collect()
}

/// Marks a stale checkout abandoned, so that no order can be written under it any more;
/// false when it is not stale (or is gone): then it is not this caller's to settle.
pub fn abandon_checkout(
    db: &Db,
    stale: &StaleCheckout,
    cutoff: Timestamp,
) -> Result<bool, StorageError> {
    let changed = db.execute(
        "UPDATE checkouts SET state = 'abandoned' WHERE user_id = $1 AND order_key = $2 \
         AND (started_at < $3 OR state = 'abandoned')",
        &[
            Param::Int(stale.user_id),
            stale.order_key.as_str().into(),
            cutoff.into(),
        ],
    )?;
    Ok(changed > 0)
}

/// Ends the user's checkout under `order_key` (done, or settled).
pub fn end_checkout(db: &Db, user_id: i64, order_key: &OrderKey) -> Result<(), StorageError> {
    db.execute(
        "DELETE FROM checkouts WHERE user_id = $1 AND order_key = $2",
        &[Param::Int(user_id), order_key.as_str().into()],
    )?;
    Ok(())
}

/// `WHERE ...` for the list filters.
fn push_filter(statement: &mut Statement, filter: &OrderFilter) {
    statement.push(" WHERE 1 = 1");
    if let Some(user_id) = filter.user_id {
        statement.push(" AND user_id = ").push_bind(user_id);
    }
    if let Some(status) = filter.status {
        statement.push(" AND status = ").push_bind(status.as_str());
    }
}

/// How many orders match the filter.
pub fn count(db: &Db, filter: &OrderFilter) -> Result<u64, StorageError> {
    let mut statement = Statement::new("SELECT COUNT(*) AS total FROM orders");
    push_filter(&mut statement, filter);
    let total = match db.query_statement(&statement)?.first() {
        Some(row) => row.int("total")?,
        None => 0,
    };
    Ok(u64::try_from(total).unwrap_or(0))
}

/// One page of matching orders with their items, newest first.
pub fn list(db: &Db, filter: &OrderFilter, window: PageWindow) -> Result<Vec<Order>, StorageError> {
    let mut statement = Statement::new(&format!("SELECT {ORDER_COLUMNS} FROM orders"));
    push_filter(&mut statement, filter);
    statement.push(" ORDER BY created_at DESC, id DESC LIMIT ");
    statement.push_bind(window.limit());
    statement.push(" OFFSET ").push_bind(window.offset());
    let rows = db.query_statement(&statement)?;
    with_items(db, &rows)
}

/// Moves an order from `from` to `to` if it is still in `from` (so that of two concurrent
/// changes only one wins); answers whether it moved. A change made by staff (`by`) is recorded
/// in the history in the same transaction: an entry exactly when the order moved.
pub fn change_status(
    db: &Db,
    id: i64,
    from: OrderStatus,
    to: OrderStatus,
    now: Timestamp,
    by: Option<&Actor>,
) -> Result<bool, StorageError> {
    db.transaction(|db| {
        let changed = db.execute(
            "UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
            &[
                to.as_str().into(),
                now.into(),
                Param::Int(id),
                from.as_str().into(),
            ],
        )?;
        if changed == 0 {
            return Ok(false);
        }
        if let Some(actor) = by {
            let mut changes = Changes::new();
            changes.set("status", from, to);
            HISTORY.record(db, id, Action::Status, &changes, actor, now)?;
        }
        Ok(true)
    })
}

/// Records that a cancelled order's stock went back.
pub fn mark_stock_released(db: &Db, id: i64) -> Result<(), StorageError> {
    db.execute(
        "UPDATE orders SET stock_released = $1 WHERE id = $2",
        &[Param::Bool(true), Param::Int(id)],
    )?;
    Ok(())
}
