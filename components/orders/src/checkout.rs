//! Checkout, the saga of ARCHITECTURE.md decision 5: claim the user's checkout (one at a
//! time per user, in the orders database), reserve every line of the cart in the products
//! service under the order's key (all or nothing), write the order with the prices reserved,
//! clear the cart, and end the claim. A failure after the reservation releases it; a retry with
//! the same `Idempotency-Key` reserves under the same key, so it takes stock once and answers
//! the same order. A second placement of the same cart waits for the claim and then finds the
//! cart emptied: one cart makes at most one order, with or without a key, on every host.
//!
//! A request can die at any step (its deadline, a crash). Its claim then outlives the checkout
//! expiry, and the next checkout or order list settles it: the claim is marked abandoned (after
//! which no order can be written under it), then either the order it wrote keeps the stock and
//! the cart loses the ordered lines, or there is no order and the reservation goes back.

use std::time::{Duration, Instant};

use shop_guest::auth::User;
use shop_guest::error::ApiError;
use shop_guest::storage::{Db, StorageError};
use shop_guest::time::Timestamp;

use crate::clients;
use crate::domain::{self, IdempotencyKey, Order, OrderKey, OrderLine, OrderStatus};
use crate::status;
use crate::storage::StaleCheckout;
use crate::storage::{self, NewOrder};

/// Places `user`'s cart as an order, or answers the order an earlier request with the same
/// idempotency key placed.
pub fn place_order(
    user: User,
    idempotency_key: Option<IdempotencyKey>,
    shipping_address: Option<String>,
) -> Result<Order, ApiError> {
    let db = Db::open(crate::SERVICE)?;
    let expiry = checkout_expiry();
    settle_stale_checkouts(&db, expiry);
    // 1. A retry of a checkout that already made its order answers that order.
    if let Some(order) = placed_before(&db, user, idempotency_key.as_ref())? {
        return Ok(order);
    }
    // 2. The key the stock is reserved under, and the user's checkout claimed for it.
    let order_key = match &idempotency_key {
        Some(key) => OrderKey::for_retry(user.id, key),
        None => OrderKey::random()?,
    };
    if let Some(order) = claim(&db, user, &order_key, idempotency_key.as_ref(), expiry)? {
        return Ok(order);
    }
    let outcome = place_claimed(
        &db,
        user,
        &order_key,
        idempotency_key.as_ref(),
        shipping_address,
    );
    match &outcome {
        // The claim is the settler's now, or it stays so that the settler clears the cart.
        Err(Placing::ClaimLost | Placing::Holding(_)) | Ok((_, Cart::NotCleared)) => {}
        _ => {
            if let Err(error) = storage::end_checkout(&db, user.id, &order_key) {
                eprintln!(
                    "the checkout {} of user {} was not ended (it ends at its expiry): {error}",
                    order_key.as_str(),
                    user.id
                );
            }
        }
    }
    match outcome {
        Ok((order, _)) => Ok(order),
        Err(Placing::Refused(error) | Placing::Holding(error)) => Err(error),
        Err(Placing::ClaimLost) => Err(ApiError::ServiceUnavailable(
            "The checkout took too long and was undone; try again.".to_owned(),
        )),
    }
}

/// How a claimed checkout did not end in an order.
enum Placing {
    /// A 4xx or a failure; nothing is held.
    Refused(ApiError),
    /// The checkout ran past its expiry and was abandoned: its stock is given back.
    ClaimLost,
    /// A failure after the reservation, which could not be given back now: the claim stays
    /// for its settler.
    Holding(ApiError),
}

impl From<ApiError> for Placing {
    fn from(error: ApiError) -> Self {
        Placing::Refused(error)
    }
}

/// Whether the ordered lines left the cart.
enum Cart {
    Cleared,
    NotCleared,
}

/// The saga's steps once the user's checkout is claimed under `order_key`.
fn place_claimed(
    db: &Db,
    user: User,
    order_key: &OrderKey,
    idempotency_key: Option<&IdempotencyKey>,
    shipping_address: Option<String>,
) -> Result<(Order, Cart), Placing> {
    // 3. The cart, and where to ship it.
    let cart = clients::cart_lines(user.id)?;
    if cart.is_empty() {
        return Err(ApiError::BadRequest("Your cart is empty.".to_owned()).into());
    }
    let shipping_address = match shipping_address {
        Some(address) => address,
        None => domain::default_address(clients::profile_address(user.id)?)?,
    };
    // 4. Every line's stock at once, or none (then nothing else happens).
    let lines = clients::reserve(order_key, &cart)?;
    // 5. The order, at the reserved prices; any failure from here on gives the stock back.
    let placed = record_order(
        db,
        user,
        order_key,
        idempotency_key,
        &shipping_address,
        &lines,
    );
    let order = match placed {
        Ok(Some(order)) => order,
        Ok(None) => {
            release_after_failure(order_key);
            return Err(Placing::ClaimLost);
        }
        Err(Recording::AlreadyPlaced) => {
            return Ok((answer_concurrent_retry(db, order_key)?, Cart::Cleared))
        }
        Err(Recording::Failed(error)) => {
            // A concurrent retry may hold this very reservation in an order it wrote while
            // this write failed (e.g. waiting for the lock it held): that order keeps it.
            if idempotency_key.is_some() {
                if let Ok(Some(order)) = storage::find_by_order_key(db, order_key) {
                    return Ok((status::settle_stock(db, order), Cart::Cleared));
                }
            }
            if !release_after_failure(order_key) {
                // The claim stays: its settler gives the stock back once it expires.
                return Err(Placing::Holding(error));
            }
            return Err(error.into());
        }
    };
    // 6. The cart loses what was ordered; the order stands even if the cart cannot answer (the
    // claim then stays, and its settler clears the cart once it expires).
    if let Err(reason) = clients::clear_ordered(user.id, &lines) {
        eprintln!(
            "order {} was placed but the cart of user {} was not cleared yet: {reason}",
            order.id, user.id
        );
        return Ok((order, Cart::NotCleared));
    }
    Ok((order, Cart::Cleared))
}

/// How long a placement waits for another checkout of the same user before answering 409.
const CLAIM_WAIT: Duration = Duration::from_secs(5);
/// How often it looks again meanwhile.
const CLAIM_POLL: Duration = Duration::from_millis(15);
/// How many stale checkouts one request settles at most (the rest: the next requests).
const SETTLE_BATCH: i64 = 8;

/// The checkout expiry, from the `checkout_expiry_seconds` variable.
pub fn checkout_expiry() -> i64 {
    domain::checkout_expiry_seconds(
        spin_sdk::variables::get("checkout_expiry_seconds")
            .ok()
            .as_deref(),
    )
}

/// Claims the user's checkout for `order_key`, waiting while another one is in progress (a
/// double click, a retry): `Some(order)` when that other one was a retry with the same
/// idempotency key and made its order meanwhile.
fn claim(
    db: &Db,
    user: User,
    order_key: &OrderKey,
    idempotency_key: Option<&IdempotencyKey>,
    expiry: i64,
) -> Result<Option<Order>, ApiError> {
    let started = Instant::now();
    loop {
        // A read first: waiting must not take the database's write lock over and over.
        if !storage::checkout_in_progress(db, user.id)?
            && storage::claim_checkout(db, user.id, order_key, Timestamp::now())?
        {
            // A retry with the same key may have made its order and ended its claim just
            // before: that order is the answer (it writes the order before it ends the claim).
            return match placed_before(db, user, idempotency_key) {
                Ok(None) => Ok(None),
                found => {
                    let _ = storage::end_checkout(db, user.id, order_key);
                    found
                }
            };
        }
        if let Some(order) = placed_before(db, user, idempotency_key)? {
            return Ok(Some(order));
        }
        if started.elapsed() >= CLAIM_WAIT {
            return Err(ApiError::Conflict(
                "Another checkout of this cart is in progress; try again.".to_owned(),
            ));
        }
        // The other checkout may be a dead one: settle it once it has expired.
        settle_stale_checkouts(db, expiry);
        std::thread::sleep(CLAIM_POLL);
    }
}

/// Settles checkouts older than the expiry (their requests died): gives back their stock, or
/// clears the cart of the order they made. Failures are logged and left for the next request.
pub fn settle_stale_checkouts(db: &Db, expiry: i64) {
    let cutoff = Timestamp::from_datetime(
        Timestamp::now().as_datetime() - chrono::Duration::seconds(expiry),
    );
    let stale = match storage::stale_checkouts(db, cutoff, SETTLE_BATCH) {
        Ok(stale) => stale,
        Err(error) => {
            eprintln!("stale checkouts could not be read: {error}");
            return;
        }
    };
    for checkout in stale {
        if let Err(error) = settle(db, &checkout, cutoff) {
            eprintln!(
                "the stale checkout {} of user {} is not settled yet (will retry): {}",
                checkout.order_key.as_str(),
                checkout.user_id,
                error.detail().unwrap_or_default()
            );
        }
    }
}

fn settle(db: &Db, checkout: &StaleCheckout, cutoff: Timestamp) -> Result<(), ApiError> {
    // After this no order can be written under the key: what exists now is all there is.
    if !storage::abandon_checkout(db, checkout, cutoff)? {
        return Ok(());
    }
    match storage::find_by_order_key(db, &checkout.order_key)? {
        Some(order) => {
            let lines: Vec<OrderLine> = order
                .items
                .iter()
                .map(|item| OrderLine {
                    product_id: item.product_id,
                    product_name: item.product_name.clone(),
                    quantity: item.quantity,
                    price: item.price,
                })
                .collect();
            clients::clear_ordered(checkout.user_id, &lines)
                .map_err(|reason| ApiError::upstream("cart", &reason))?;
        }
        None => {
            clients::release(checkout.order_key.as_str())
                .map_err(|reason| ApiError::upstream("products", &reason))?;
        }
    }
    storage::end_checkout(db, checkout.user_id, &checkout.order_key)?;
    Ok(())
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

/// Writes the pending order over the reserved lines; `None`: the claim was abandoned.
fn record_order(
    db: &Db,
    user: User,
    order_key: &OrderKey,
    idempotency_key: Option<&IdempotencyKey>,
    shipping_address: &str,
    lines: &[OrderLine],
) -> Result<Option<Order>, Recording> {
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
/// Answers whether the stock is back.
fn release_after_failure(order_key: &OrderKey) -> bool {
    match clients::release(order_key.as_str()) {
        Ok(_) => true,
        Err(reason) => {
            eprintln!(
                "the reservation {} could not be released yet: {reason}",
                order_key.as_str()
            );
            false
        }
    }
}
