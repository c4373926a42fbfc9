//! One function per entry point (HTTP endpoints, then the exported WIT functions): read the
//! request, check who may, call storage, answer.

use shop_guest::auth;
use shop_guest::error::ApiError;
use shop_guest::history::{self, Action, Actor};
use shop_guest::json::{Fields, Presence};
use shop_guest::paging::{Page, PageRequest};
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing;
use shop_guest::storage::{Db, StorageError};
use shop_guest::time::Timestamp;
use spin_sdk::http::Response;

use crate::domain::{
    self, CatalogueEntry, NewProduct, OrderKey, OrderLines, ProductChanges, ProductListQuery,
    ReserveError, ReservedLine, StockLine,
};
use crate::{clients, reservations, storage};

/// GET /api/products/: a filtered, ordered page of products.
pub fn list(request: &ApiRequest) -> Result<Response, ApiError> {
    let query = request.query();
    let ProductListQuery { filter, ordering } = ProductListQuery::from_query(&query)?;
    let pages = PageRequest::from_query(&query)?;
    let db = Db::open(crate::SERVICE)?;
    // Two queries, as DRF makes: a COUNT that can use an index, then one page. A window
    // function (`COUNT(*) OVER ()`) would build every matching row for each page.
    let count = storage::count(&db, &filter)?;
    let window = pages.window_for(count)?;
    let products = storage::list(&db, &filter, &ordering, window)?;
    response::ok(&Page::new(request, window, count, products)?)
}

/// GET /api/products/{id}/
pub fn retrieve(id: &str) -> Result<Response, ApiError> {
    let id = routing::id(id)?;
    let db = Db::open(crate::SERVICE)?;
    let product = storage::find(&db, id)?.ok_or_else(ApiError::not_found)?;
    response::ok(&product)
}

/// POST /api/products/ (staff): 201 with the new product, recorded in the history.
pub fn create(request: &ApiRequest) -> Result<Response, ApiError> {
    let staff = auth::require_staff(request, &clients::Accounts)?;
    let changes = ProductChanges::read(Fields::from_request(request)?, Presence::Required)?;
    let new = NewProduct::from_changes(changes)?;
    let actor = Actor::of(request, staff);
    let db = Db::open(crate::SERVICE)?;
    let product = db.transaction(|db| {
        let now = Timestamp::now();
        let product = storage::insert(db, &new, now)?;
        let changes = domain::created(&product);
        storage::HISTORY.record(db, product.id, Action::Create, &changes, &actor, now)?;
        Ok::<_, StorageError>(product)
    })?;
    response::created(&product)
}

/// PUT (`partial = false`) or PATCH (`partial = true`) /api/products/{id}/ (staff); the fields
/// that changed are recorded in the history (nothing when none did).
pub fn update(request: &ApiRequest, id: &str, partial: bool) -> Result<Response, ApiError> {
    let staff = auth::require_staff(request, &clients::Accounts)?;
    let id = routing::id(id)?;
    let db = Db::open(crate::SERVICE)?;
    let changes = match Fields::from_request(request)
        .and_then(|fields| ProductChanges::read(fields, Presence::for_update(partial)))
    {
        Ok(changes) => changes,
        // As DRF does, a missing product is a 404 whatever the body holds.
        Err(error) if storage::exists(&db, id)? => return Err(error),
        Err(_) => return Err(ApiError::not_found()),
    };
    let actor = Actor::of(request, staff);
    let product = db.transaction(|db| {
        let Some(before) = storage::find_for_update(db, id)? else {
            return Ok(None);
        };
        let now = Timestamp::now();
        let Some(after) = storage::update(db, id, &changes, now)? else {
            return Ok(None);
        };
        let changed = domain::updated(&before, &after);
        if !changed.is_empty() {
            storage::HISTORY.record(db, id, Action::Update, &changed, &actor, now)?;
        }
        Ok::<_, StorageError>(Some(after))
    })?;
    response::ok(&product.ok_or_else(ApiError::not_found)?)
}

/// DELETE /api/products/{id}/ (staff): 204 with no body; the product as it was is recorded in
/// the history.
pub fn destroy(request: &ApiRequest, id: &str) -> Result<Response, ApiError> {
    let staff = auth::require_staff(request, &clients::Accounts)?;
    let id = routing::id(id)?;
    let actor = Actor::of(request, staff);
    let db = Db::open(crate::SERVICE)?;
    let deleted = db.transaction(|db| {
        let Some(product) = storage::delete(db, id)? else {
            return Ok(false);
        };
        let changes = domain::deleted(&product);
        storage::HISTORY.record(db, id, Action::Delete, &changes, &actor, Timestamp::now())?;
        Ok::<_, StorageError>(true)
    })?;
    if deleted {
        Ok(response::no_content())
    } else {
        Err(ApiError::not_found())
    }
}

/// GET /api/products/history/ (staff): a page of the changes staff made, newest first
/// (`?object_id=` for one product's).
pub fn history(request: &ApiRequest) -> Result<Response, ApiError> {
    history::list_page(
        request,
        &clients::Accounts,
        crate::SERVICE,
        storage::HISTORY,
    )
}

/// `shop:products/catalogue.get-products`: the products among `ids` that exist, in that order.
pub fn get_products(ids: &[i64]) -> Result<Vec<CatalogueEntry>, String> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let db = Db::open(crate::SERVICE).map_err(|e| e.to_string())?;
    storage::catalogue_entries(&db, ids).map_err(|e| e.to_string())
}

/// `shop:products/inventory.reserve`: every line's stock under `order_key`, or nothing.
pub fn reserve(
    order_key: String,
    lines: Vec<StockLine>,
) -> Result<Vec<ReservedLine>, ReserveError> {
    let key = OrderKey::parse(order_key).map_err(ReserveError::Invalid)?;
    let lines = OrderLines::parse(lines).map_err(ReserveError::Invalid)?;
    let db = Db::open(crate::SERVICE)?;
    reservations::reserve(&db, &key, &lines, Timestamp::now())
}

/// `shop:products/inventory.release`: gives back what `order_key` holds, exactly once.
pub fn release(order_key: String) -> Result<bool, String> {
    // No reservation can be held under a key that `reserve` refuses.
    let Ok(key) = OrderKey::parse(order_key) else {
        return Ok(false);
    };
    let db = Db::open(crate::SERVICE).map_err(|e| e.to_string())?;
    reservations::release(&db, &key, Timestamp::now()).map_err(|e| e.to_string())
}

/// GET /livez under Spin: 200 while the component answers; no database is touched, so that a
/// database outage takes the pods out of rotation (readiness) without restarting them.
pub fn live() -> Result<Response, ApiError> {
    #[derive(serde::Serialize)]
    struct Live {
        status: &'static str,
    }
    response::ok(&Live { status: "ok" })
}

/// GET /healthz under Spin: 200 when the products database answers.
pub fn health() -> Result<Response, ApiError> {
    let db = Db::open(crate::SERVICE)?;
    db.query("SELECT 1 AS one", &[])?;
    #[derive(serde::Serialize)]
    struct Health {
        status: &'static str,
    }
    response::ok(&Health { status: "ok" })
}
