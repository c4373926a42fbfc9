//! Checkout, the saga of ARCHITECTURE.md decision 5: reserve every line of the cart in the
//! products service under the order's key (all or nothing), write the order with the prices
//! reserved, then clear the cart. A failure after the reservation releases it; a retry with
//! the same `Idempotency-Key` reserves under the same key, so it takes stock once and answers
//! the same order.

use shop_guest::auth::User;
use shop_guest::error::ApiError;
use shop_guest::storage::{Db, StorageError};
use shop_guest::time::Timestamp;

use crate::domain::{self, IdempotencyKey, Order, OrderKey, OrderLine, OrderStatus};
use crate::services;
use crate::status;
use crate::storage::{self, NewOrder};

/// Places `user`'s cart as an order, or answers the order an earlier request with the same
/// idempotency key placed.
pub fn place_order(
    user: User,
    idempotency_key: Option<IdempotencyKey>,
    shipping_address: Option<String>,
) -> Result<Order, ApiError> {
    let db = Db::open(crate::SERVICE)?;
    // 1. A retry of a checkout that already made its order answers that order.
    if let Some(order) = placed_before(&db, user, idempotency_key.as_ref())? {
        return Ok(order);
    }
    // 2. The cart, and where to ship it.
    let cart = services::cart_lines(user.id)?;
    if cart.is_empty() {
        // A concurrent retry may have placed the order and cleared the cart since step 1
        // (it writes the order before it clears the cart, so the order is there to find).
        if let Some(order) = placed_before(&db, user, idempotency_key.as_ref())? {
            return Ok(order);
        }
        return Err(ApiError::BadRequest("Your cart is empty.".to_owned()));
    }
    let shipping_address = match shipping_address {
        Some(address) => address,
        None => domain::default_address(services::profile_address(user.id)?)
            .ok_or_else(domain::shipping_address_required)?,
    };
    // 3. The key the stock is reserved under.
    let order_key = match &idempotency_key {
        Some(key) => OrderKey::for_retry(user.id, key),
        None => OrderKey::random()?,
    };
    // 4. Every line's stock at once, or none (then nothing else happens).
    let lines = services::reserve(&order_key, &cart)?;
    // 5. The order, at the reserved prices; any failure from here on gives the stock back.
    let placed = record_order(
        &db,
        user,
        &order_key,
        idempotency_key.as_ref(),
        &shipping_address,
        &lines,
    );
    let order = match placed {
        Ok(order) => order,
        Err(Recording::AlreadyPlaced) => return answer_concurrent_retry(&db, &order_key),
        Err(Recording::Failed(error)) => {
            // A concurrent retry may hold this very reservation in an order it wrote while
            // this write failed (e.g. waiting for the lock it held): that order keeps it.
            if idempotency_key.is_some() {
                if let Ok(Some(order)) = storage::find_by_order_key(&db, &order_key) {
                    return Ok(status::settle_stock(&db, order));
                }
            }
            release_after_failure(&order_key);
            return Err(error);
        }
    };
    // 6. The cart loses what was ordered; the order stands even if the cart cannot answer.
    if let Err(reason) = services::clear_ordered(user.id, &lines) {
        eprintln!(
            "order {} was placed but the cart of user {} was not cleared: {reason}",
            order.id, user.id
        );
    }
    Ok(order)
}

/// The order the user already placed with this idempotency key, if any.
fn placed_before(
    db: &Db,
    user: User,
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<Option<Order>, ApiError> {
    let Some(key) = idempotency_key else {
        return Ok(None);
    };
    let order = storage::find_by_idempotency_key(db, user.id, key)?;
    Ok(order.map(|order| status::settle_stock(db, order)))
}

/// Why an order was not written.
enum Recording {
    /// A concurrent retry with the same key wrote it first.
    AlreadyPlaced,
    /// Anything else: the reservation must go back.
    Failed(ApiError),
}

/// Writes the pending order over the reserved lines.
fn record_order(
    db: &Db,
    user: User,
    order_key: &OrderKey,
    idempotency_key: Option<&IdempotencyKey>,
    shipping_address: &str,
    lines: &[OrderLine],
) -> Result<Order, Recording> {
    let total = domain::order_total(lines).ok_or_else(|| {
        Recording::Failed(ApiError::BadRequest(
            "The order total is too large.".to_owned(),
        ))
    })?;
    let new = NewOrder {
        user_id: user.id,
        total,
        shipping_address,
        order_key,
        idempotency_key,
        lines,
    };
    storage::insert(db, &new, Timestamp::now()).map_err(|error| match error {
        StorageError::UniqueViolation(_) => Recording::AlreadyPlaced,
        other => Recording::Failed(other.into()),
    })
}

/// A concurrent retry placed the order under this key first: its reservation is the one
/// this request was handed back, so it stays held, and the answer is that order.
fn answer_concurrent_retry(db: &Db, order_key: &OrderKey) -> Result<Order, ApiError> {
    let Some(order) = storage::find_by_order_key(db, order_key)? else {
        // No order holds the key after all: nothing must keep its stock.
        release_after_failure(order_key);
        return Err(ApiError::Internal(format!(
            "order key {} was taken but no order holds it",
            order_key.as_str()
        )));
    };
    if order.status == OrderStatus::Cancelled && order.stock_released {
        // Cancelled and released before this request reserved: this request took the stock
        // anew, and a cancelled order must hold none.
        release_after_failure(order_key);
    }
    Ok(status::settle_stock(db, order))
}

/// Gives back a reservation no order will hold; a failure is logged (the products service
/// cannot answer now) since the client's answer is the original error.
fn release_after_failure(order_key: &OrderKey) {
    if let Err(reason) = services::release(order_key.as_str()) {
        eprintln!(
            "the reservation {} could not be released: {reason}",
            order_key.as_str()
        );
    }
}
