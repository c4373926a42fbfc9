//! One function per entry point (HTTP endpoints, then the exported WIT functions): read the
//! request, check who may, call storage, answer.

use shop_guest::auth;
use shop_guest::error::ApiError;
use shop_guest::json::{Fields, Presence};
use shop_guest::paging::{Page, PageRequest};
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing;
use shop_guest::storage::Db;
use shop_guest::time::Timestamp;
use spin_sdk::http::Response;

use crate::domain::{
    CatalogueEntry, NewProduct, OrderKey, OrderLines, ProductChanges, ProductListQuery,
    ReserveError, ReservedLine, StockLine,
};
use crate::{reservations, storage};

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

/// POST /api/products/ (staff): 201 with the new product.
pub fn create(request: &ApiRequest) -> Result<Response, ApiError> {
    auth::require_staff(request)?;
    let changes = ProductChanges::read(Fields::from_request(request)?, Presence::Required)?;
    let new = NewProduct::from_changes(changes)?;
    let db = Db::open(crate::SERVICE)?;
    let product = storage::insert(&db, &new, Timestamp::now())?;
    response::created(&product)
}

/// PUT (`partial = false`) or PATCH (`partial = true`) /api/products/{id}/ (staff).
pub fn update(request: &ApiRequest, id: &str, partial: bool) -> Result<Response, ApiError> {
    auth::require_staff(request)?;
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
    let product =
        storage::update(&db, id, &changes, Timestamp::now())?.ok_or_else(ApiError::not_found)?;
    response::ok(&product)
}

/// DELETE /api/products/{id}/ (staff): 204 with no body.
pub fn destroy(request: &ApiRequest, id: &str) -> Result<Response, ApiError> {
    auth::require_staff(request)?;
    let id = routing::id(id)?;
    let db = Db::open(crate::SERVICE)?;
    if storage::delete(&db, id)? {
        Ok(response::no_content())
    } else {
        Err(ApiError::not_found())
    }
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
