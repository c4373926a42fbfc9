//! The `reservations` table: stock held for orders under their keys, taken from `products` and
//! given back to it in the same transaction as the rows that record it. Never a read then a
//! write of stock: each move is one conditional `UPDATE`.

use shop_guest::storage::{Db, Engine, Param, Row, Statement, StorageError, LINES_PER_STATEMENT};
use shop_guest::time::Timestamp;

use crate::domain::{OrderKey, OrderLines, ReserveError, ReservedLine, Shortage, StockLine};

fn reserved_line(row: &Row) -> Result<ReservedLine, StorageError> {
    Ok(ReservedLine {
        product_id: row.int("product_id")?,
        name: row.text("name")?,
        price_cents: row.int("price_cents")?,
        quantity: row.int("quantity")?,
    })
}

/// Takes the stock of every line under `key`, in one transaction, or nothing. A key whose
/// reservation is held takes nothing more and answers the lines held; a key whose
/// reservation was released reserves anew.
pub fn reserve(
    db: &Db,
    key: &OrderKey,
    lines: &OrderLines,
    now: Timestamp,
) -> Result<Vec<ReservedLine>, ReserveError> {
    match db.transaction(|db| reserve_in_transaction(db, key, lines, now)) {
        // A reservation of the same key committed first (the primary key refused this one's
        // rows, and the rollback gave back what this one took): its lines are the answer.
        Err(ReserveError::Storage(error)) if error.is_unique_violation() => {
            let held = held_lines(db, key)?;
            if held.is_empty() {
                Err(ReserveError::Storage(error))
            } else {
                Ok(held)
            }
        }
        outcome => outcome,
    }
}

fn reserve_in_transaction(
    db: &Db,
    key: &OrderKey,
    lines: &OrderLines,
    now: Timestamp,
) -> Result<Vec<ReservedLine>, ReserveError> {
    lock_key(db, key)?;
    let (held, released) = lines_of_key(db, key)?;
    if !held.is_empty() {
        return Ok(held);
    }
    if released {
        // A released reservation (its order failed or was cancelled) makes way for the new one.
        db.execute(
            "DELETE FROM reservations WHERE order_key = $1 AND released = TRUE",
            &[key.as_str().into()],
        )?;
    }
    // Products are locked in id order, so that two orders never wait for each other in a cycle.
    let mut by_product: Vec<(usize, &StockLine)> = lines.lines().iter().enumerate().collect();
    by_product.sort_by_key(|(_, line)| line.product_id);
    let mut reserved = match db.engine() {
        // One statement takes every line's stock and records it: the best seller's row, which
        // every buyer waits for, is locked until the COMMIT that follows, not across a round
        // trip per later line. A cart of many products takes a statement per so many lines,
        // still in id order.
        Engine::Postgres => {
            let mut reserved = Vec::with_capacity(by_product.len());
            for chunk in by_product.chunks(LINES_PER_STATEMENT) {
                reserved.extend(take_and_record(db, key, chunk, now)?);
            }
            reserved
        }
        Engine::Sqlite => {
            let mut reserved = Vec::with_capacity(by_product.len());
            for (line_number, line) in by_product {
                let taken = take_stock(db, line, now)?;
                db.execute(
                    "INSERT INTO reservations (order_key, product_id, line_number, quantity, \
                     name, price_cents, released, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7)",
                    &[
                        key.as_str().into(),
                        Param::Int(taken.product_id),
                        Param::Int(stored_line_number(line_number)),
                        Param::Int(taken.quantity),
                        taken.name.as_str().into(),
                        Param::Int(taken.price_cents),
                        now.into(),
                    ],
                )?;
                reserved.push((line_number, taken));
            }
            reserved
        }
    };
    reserved.sort_by_key(|(line_number, _)| *line_number);
    Ok(reserved.into_iter().map(|(_, line)| line).collect())
}

/// A line's position in the order, as stored.
fn stored_line_number(line_number: usize) -> i64 {
    i64::try_from(line_number).unwrap_or(i64::MAX)
}

/// Postgres: takes the units of every line of `by_product` (at most [`LINES_PER_STATEMENT`])
/// and records them under `key` in one statement, locking the products in the order of
/// `by_product` (by id: `locked` hands the UPDATE each row only once it and every row before it
/// are locked); otherwise says why not, for the first line short, as [`take_stock`] does (the
/// caller's transaction then rolls back what was taken).
fn take_and_record(
    db: &Db,
    key: &OrderKey,
    by_product: &[(usize, &StockLine)],
    now: Timestamp,
) -> Result<Vec<(usize, ReservedLine)>, ReserveError> {
    let mut statement =
        Statement::new("WITH wanted (product_id, quantity, line_number) AS (VALUES ");
    for (index, (line_number, line)) in by_product.iter().enumerate() {
        statement.push(if index == 0 { "(" } else { ", (" });
        // Typed here: the server infers a VALUES list's parameters as text.
        statement.push_bind(line.product_id).push("::bigint, ");
        statement.push_bind(line.quantity).push("::bigint, ");
        statement
            .push_bind(stored_line_number(*line_number))
            .push("::bigint)");
    }
    let now = statement.bind(now);
    statement.push(&format!(
        "), locked AS (SELECT id FROM products WHERE id IN (SELECT product_id FROM wanted) \
         ORDER BY id FOR UPDATE), \
         taken AS (UPDATE products p SET stock = p.stock - w.quantity, updated_at = {now} \
         FROM wanted w, locked l WHERE p.id = w.product_id AND l.id = p.id \
         AND p.stock >= w.quantity \
         RETURNING p.id, w.quantity, w.line_number, p.name, p.price_cents) \
         INSERT INTO reservations (order_key, product_id, line_number, quantity, name, \
         price_cents, released, created_at) \
         SELECT "
    ));
    statement.push_bind(key.as_str());
    statement.push(&format!(
        ", id, line_number, quantity, name, price_cents, FALSE, {now} FROM taken \
         RETURNING line_number, name, price_cents"
    ));
    let mut taken = db.query_statement(&statement)?;
    by_product
        .iter()
        .map(|&(line_number, line)| {
            let stored = stored_line_number(line_number);
            let row = taken
                .iter()
                .position(|row| row.int("line_number").is_ok_and(|n| n == stored))
                .map(|index| taken.swap_remove(index));
            Ok((line_number, taken_or_shortage(db, line, row)?))
        })
        .collect()
}

/// Takes `line.quantity` units if the product has them; otherwise says why not (the caller's
/// transaction then rolls back whatever earlier lines took).
fn take_stock(db: &Db, line: &StockLine, now: Timestamp) -> Result<ReservedLine, ReserveError> {
    let taken = db.query_one(
        "UPDATE products SET stock = stock - $1, updated_at = $2 \
         WHERE id = $3 AND stock >= $1 RETURNING name, price_cents",
        &[
            Param::Int(line.quantity),
            now.into(),
            Param::Int(line.product_id),
        ],
    )?;
    taken_or_shortage(db, line, taken)
}

/// The line taken, from the row that took it (its name and price); without one, why not.
fn taken_or_shortage(
    db: &Db,
    line: &StockLine,
    taken: Option<Row>,
) -> Result<ReservedLine, ReserveError> {
    if let Some(row) = taken {
        return Ok(ReservedLine {
            product_id: line.product_id,
            name: row.text("name")?,
            price_cents: row.int("price_cents")?,
            quantity: line.quantity,
        });
    }
    let product = db.query_one(
        "SELECT name, stock FROM products WHERE id = $1",
        &[Param::Int(line.product_id)],
    )?;
    match product {
        None => Err(ReserveError::UnknownProduct(line.product_id)),
        Some(row) => Err(ReserveError::InsufficientStock(Shortage {
            product_id: line.product_id,
            name: row.text("name")?,
            requested: line.quantity,
            available: row.int("stock")?,
        })),
    }
}

/// Puts back the stock held under `key`, exactly once: `true` when stock went back now,
/// `false` when nothing was held.
pub fn release(db: &Db, key: &OrderKey, now: Timestamp) -> Result<bool, StorageError> {
    db.transaction(|db| {
        lock_key(db, key)?;
        // The conditional UPDATE is what makes it once: of two concurrent releases, the
        // second finds no row still held.
        let rows = db.query(
            "UPDATE reservations SET released = TRUE \
             WHERE order_key = $1 AND released = FALSE RETURNING product_id, quantity",
            &[key.as_str().into()],
        )?;
        let mut freed = rows
            .iter()
            .map(|row| Ok((row.int("product_id")?, row.int("quantity")?)))
            .collect::<Result<Vec<(i64, i64)>, StorageError>>()?;
        freed.sort_unstable();
        for (product_id, quantity) in &freed {
            // A product deleted meanwhile takes its units with it: no row, nothing to give back.
            db.execute(
                "UPDATE products SET stock = stock + $1, updated_at = $2 WHERE id = $3",
                &[Param::Int(*quantity), now.into(), Param::Int(*product_id)],
            )?;
        }
        Ok(!freed.is_empty())
    })
}

/// The lines held under `key`, in the order they were asked, and whether released lines of
/// it are left too.
fn lines_of_key(db: &Db, key: &OrderKey) -> Result<(Vec<ReservedLine>, bool), StorageError> {
    let mut released = false;
    let mut held = Vec::new();
    for row in db.query(
        "SELECT product_id, name, price_cents, quantity, released FROM reservations \
         WHERE order_key = $1 ORDER BY line_number",
        &[key.as_str().into()],
    )? {
        if row.bool("released")? {
            released = true;
        } else {
            held.push(reserved_line(&row)?);
        }
    }
    Ok((held, released))
}

/// The lines held under `key`, in the order they were asked.
fn held_lines(db: &Db, key: &OrderKey) -> Result<Vec<ReservedLine>, StorageError> {
    db.query(
        "SELECT product_id, name, price_cents, quantity FROM reservations \
         WHERE order_key = $1 AND released = FALSE ORDER BY line_number",
        &[key.as_str().into()],
    )?
    .iter()
    .map(reserved_line)
    .collect()
}

/// Serializes the transactions of one key until they end. On Postgres this is a transaction
/// advisory lock on the key's hash, so that a second reservation of the key waits for the first
/// and then sees its rows (even one asking for other products, which no row lock would stop).
/// On SQLite `BEGIN IMMEDIATE` already serializes every writer.
fn lock_key(db: &Db, key: &OrderKey) -> Result<(), StorageError> {
    if db.engine() == Engine::Postgres {
        db.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[key.as_str().into()],
        )?;
    }
    Ok(())
}
