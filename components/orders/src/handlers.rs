//! One function per endpoint: read the request, check who may, call storage, answer.

use shop_guest::auth::{self, User};
use shop_guest::error::ApiError;
use shop_guest::history::{self, Actor};
use shop_guest::json::Fields;
use shop_guest::paging::{Page, PageRequest};
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing;
use shop_guest::storage::Db;
use spin_sdk::http::Response;

use crate::checkout;
use crate::clients;
use crate::domain::{self, CheckoutRequest, IdempotencyKey, Order, OrderFilter, OrderStatus};
use crate::status;
use crate::storage;

/// POST /api/orders/: 201 with the order made from the caller's cart (or, for a retry with
/// the same `Idempotency-Key`, the order the first request made).
pub fn create(request: &ApiRequest) -> Result<Response, ApiError> {
    let user = auth::require_user(request, &clients::Accounts)?;
    let body = CheckoutRequest::read(Fields::from_request(request)?)?;
    let key = IdempotencyKey::from_header(request.header("idempotency-key"))?;
    let order = checkout::place_order(user, key, body.shipping_address)?;
    response::created(&order)
}

/// GET /api/orders/: a page of the caller's orders (everyone's for staff), newest first.
pub fn list(request: &ApiRequest) -> Result<Response, ApiError> {
    let user = auth::require_user(request, &clients::Accounts)?;
    let query = request.query();
    let filter = OrderFilter::for_caller(user, &query)?;
    let pages = PageRequest::from_query(&query)?;
    let db = Db::open(crate::SERVICE)?;
    // A checkout that died mid-way holds stock until someone looks: listings are one such look.
    checkout::settle_stale_checkouts(&db, checkout::checkout_expiry());
    let count = storage::count(&db, &filter)?;
    let window = pages.window_for(count)?;
    let orders = storage::list(&db, &filter, window)?;
    response::ok(&Page::new(request, window, count, orders)?)
}

/// GET /api/orders/{id}/: the owner's or staff's; anyone else's is a 404.
pub fn retrieve(request: &ApiRequest, id: &str) -> Result<Response, ApiError> {
    let user = auth::require_user(request, &clients::Accounts)?;
    let id = routing::id(id)?;
    let db = Db::open(crate::SERVICE)?;
    let order = visible_order(&db, user, id)?;
    response::ok(&status::settle_stock(&db, order))
}

/// POST /api/orders/{id}/cancel/ (owner or staff): 200 with the cancelled order. A staff
/// member's cancellation (of their own order too) is recorded in the history; a customer's
/// own is not (the history is of the changes staff make).
pub fn cancel(request: &ApiRequest, id: &str) -> Result<Response, ApiError> {
    let user = auth::require_user(request, &clients::Accounts)?;
    let id = routing::id(id)?;
    let db = Db::open(crate::SERVICE)?;
    let order = visible_order(&db, user, id)?;
    let actor = user.is_staff.then(|| Actor::of(request, user));
    let cancelled = status::change_status(&db, order, OrderStatus::Cancelled, actor.as_ref())?;
    response::ok(&cancelled)
}

/// POST /api/orders/{id}/status/ (staff): 200 with the order in its new `status`, recorded in
/// the history.
pub fn set_status(request: &ApiRequest, id: &str) -> Result<Response, ApiError> {
    let staff = auth::require_staff(request, &clients::Accounts)?;
    let id = routing::id(id)?;
    let db = Db::open(crate::SERVICE)?;
    let order = storage::find(&db, id)?.ok_or_else(ApiError::not_found)?;
    let to = domain::read_status(Fields::from_request(request)?)?;
    let actor = Actor::of(request, staff);
    response::ok(&status::change_status(&db, order, to, Some(&actor))?)
}

/// GET /api/orders/history/ (staff): a page of the status changes staff made, newest first
/// (`?object_id=` for one order's).
pub fn history(request: &ApiRequest) -> Result<Response, ApiError> {
    history::list_page(
        request,
        &clients::Accounts,
        crate::SERVICE,
        storage::HISTORY,
    )
}

/// The order if `user` may see it; a 404 whether it is missing or someone else's.
fn visible_order(db: &Db, user: User, id: i64) -> Result<Order, ApiError> {
    storage::find(db, id)?
        .filter(|order| domain::visible_to(order, user))
        .ok_or_else(ApiError::not_found)
}
