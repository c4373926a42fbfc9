//! Status changes of stored orders: the flow's rule (domain.rs) applied with a conditional
//! update, and the stock a cancellation puts back, exactly once.

use shop_guest::error::ApiError;
use shop_guest::history::Actor;
use shop_guest::storage::Db;
use shop_guest::time::Timestamp;

use crate::clients;
use crate::domain::{self, Order, OrderStatus};
use crate::storage;

/// Moves `order` to `to` if the flow allows it from the status it has in the database, and
/// answers the order as it is then; a refused change is a 409. A cancellation then gives the
/// order's stock back. A change by staff (`by`) goes into the history with the change.
pub fn change_status(
    db: &Db,
    order: Order,
    to: OrderStatus,
    by: Option<&Actor>,
) -> Result<Order, ApiError> {
    let id = order.id;
    let mut current = settle_stock(db, order);
    // A change lost to a concurrent one is judged again against the status that won. Every
    // change moves forward in a flow without cycles, so this ends within that many rounds.
    for _ in 0..=OrderStatus::ALL.len() {
        domain::check_change(current.status, to)?;
        if storage::change_status(db, id, current.status, to, Timestamp::now(), by)? {
            let changed = storage::find(db, id)?.ok_or_else(ApiError::not_found)?;
            return Ok(settle_stock(db, changed));
        }
        current = storage::find(db, id)?.ok_or_else(ApiError::not_found)?;
    }
    Err(ApiError::Conflict(
        "The order changed meanwhile; try again.".to_owned(),
    ))
}

/// Gives a cancelled order's stock back if that has not happened yet, and records it. When
/// the products service cannot answer, the order stays owed (`stock_released` false) and the
/// next look at it tries again: release is idempotent per order key.
pub fn settle_stock(db: &Db, mut order: Order) -> Order {
    if !domain::owes_stock(&order) {
        return order;
    }
    match clients::release(&order.order_key) {
        Ok(_) => match storage::mark_stock_released(db, order.id) {
            Ok(()) => order.stock_released = true,
            Err(error) => eprintln!(
                "order {}: stock released but not recorded: {error}",
                order.id
            ),
        },
        Err(reason) => eprintln!(
            "order {}: stock not released yet (will retry): {reason}",
            order.id
        ),
    }
    order
}
