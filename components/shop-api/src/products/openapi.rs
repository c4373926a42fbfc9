//! The products service's operations in the OpenAPI document, over its `api` types (the
//! docs component merges them with the other services').

use shop_guest::openapi::{
    BadRequest, BodyErrors, Forbidden, NotFound, OptionalBodies, PageQuery, Unauthorized,
};
use shop_guest::paging::Page;
use utoipa::OpenApi;

use super::api::{Product, ProductPatch, ProductWrite};
use crate::history::{Action, Changes, HistoryEntry, HistoryQuery};

/// PATCH bodies are optional.
const OPTIONAL_BODIES: OptionalBodies = OptionalBodies { put: &[] };

/// The products service's part of the document.
#[derive(OpenApi)]
#[openapi(
    paths(list, create, history, retrieve, update, partial_update, destroy),
    components(schemas(Product, ProductWrite, ProductPatch, HistoryEntry, Action, Changes)),
    modifiers(&OPTIONAL_BODIES),
    tags((name = "products", description = "The catalogue: products, prices and stock."))
)]
pub struct ProductsApi;

/// The list's filters and ordering. Each parameter is read from its last value when given more
/// than once; one past its bounds is a 400 naming it. The patterns' whitespace is the set Rust's
/// `char::is_whitespace` knows, which is what the service splits and trims at.
#[allow(dead_code)] // only its parameters are read
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Words to find, case-insensitively, in the name or the description (all must match):
    /// commas and whitespace separate them. At most 200 characters and 10 terms (a repeated
    /// term counts, but is looked for once).
    #[param(
        required = false,
        max_length = 200,
        pattern = r"^[,\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*(?:[^,\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+[,\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+){0,9}(?:[^,\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+[,\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*)?$"
    )]
    pub search: String,
    /// Only products at this price or above (a decimal number, at most 100 characters; empty:
    /// no bound).
    #[param(
        required = false,
        max_length = 100,
        pattern = r"^\s*([+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?)?\s*$"
    )]
    pub min_price: String,
    /// Only products at this price or below (a decimal number, at most 100 characters; empty:
    /// no bound).
    #[param(
        required = false,
        max_length = 100,
        pattern = r"^\s*([+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?)?\s*$"
    )]
    pub max_price: String,
    /// `true` for products in stock only (`false` for those out of stock).
    #[param(required = false)]
    pub in_stock: bool,
    /// Comma-separated keys among `name`, `price`, `created_at` and `stock`, each optionally
    /// prefixed by `-` for descending; unknown keys are ignored. At most 100 characters and 4
    /// keys (blank ones between commas are not counted); a key given again, in either
    /// direction, is dropped, the first kept (`price,-price` sorts as `price`).
    #[param(
        required = false,
        example = "-price",
        max_length = 100,
        pattern = r"^(?:[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*,)*(?:[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*|[^,]*[^,\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^,]*(?:,[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*)*(?:,[^,]*[^,\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^,]*(?:,[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*)*){0,3})$"
    )]
    pub ordering: String,
}

#[utoipa::path(
    get, path = "/api/products/", tag = "products", operation_id = "products_list",
    summary = "List products",
    description = "A filtered, ordered page of the catalogue. Anyone may list.",
    params(PageQuery, ProductQuery),
    responses(
        (status = 200, description = "A page of products.", body = Page<Product>),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
    )
)]
#[allow(dead_code)]
fn list() {}

#[utoipa::path(
    post, path = "/api/products/", tag = "products", operation_id = "products_create",
    summary = "Create a product (staff only)",
    description = "**Staff only.** Adds a product to the catalogue.",
    request_body(content = ProductWrite, content_type = "application/json"),
    security(("jwtAuth" = [])),
    responses(
        (status = 201, description = "The new product.", body = Product),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn create() {}

#[utoipa::path(
    get, path = "/api/products/history/", tag = "products", operation_id = "products_history",
    summary = "The changes staff made to products (staff only)",
    description = "**Staff only.** Every product create, update (price and stock included: only \
                   the fields that changed) and delete made through the API, newest first, with \
                   the staff user who made it and the values before and after. Recorded in the \
                   transaction of the change: a change that failed left no entry.",
    params(PageQuery, HistoryQuery),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "A page of history entries.", body = Page<HistoryEntry>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
#[allow(dead_code)]
fn history() {}

#[utoipa::path(
    get, path = "/api/products/{id}/", tag = "products", operation_id = "products_retrieve",
    summary = "Get a product",
    params(("id" = i64, Path, minimum = 1, description = "The product's id.")),
    responses(
        (status = 200, description = "The product.", body = Product),
        (status = 404, response = NotFound),
    )
)]
#[allow(dead_code)]
fn retrieve() {}

#[utoipa::path(
    put, path = "/api/products/{id}/", tag = "products", operation_id = "products_update",
    summary = "Replace a product (staff only)",
    description = "**Staff only.** `name` and `price` are required; omitted optional fields \
                   keep their values.",
    params(("id" = i64, Path, minimum = 1, description = "The product's id.")),
    request_body(content = ProductWrite, content_type = "application/json"),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The product as it is now.", body = Product),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn update() {}

#[utoipa::path(
    patch, path = "/api/products/{id}/", tag = "products",
    operation_id = "products_partial_update",
    summary = "Change some fields of a product (staff only)",
    description = "**Staff only.** Any subset of the product's fields.",
    params(("id" = i64, Path, minimum = 1, description = "The product's id.")),
    request_body(content = ProductPatch, content_type = "application/json"),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The product as it is now.", body = Product),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn partial_update() {}

#[utoipa::path(
    delete, path = "/api/products/{id}/", tag = "products", operation_id = "products_destroy",
    summary = "Delete a product (staff only)",
    description = "**Staff only.** Orders keep their snapshot of the product.",
    params(("id" = i64, Path, minimum = 1, description = "The product's id.")),
    security(("jwtAuth" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
#[allow(dead_code)]
fn destroy() {}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    #[test]
    fn the_description_follows_the_api_conventions() {
        let document = super::ProductsApi::openapi();
        assert!(!document.paths.paths.is_empty());
        assert_eq!(
            shop_guest::openapi::convention_problems(&document),
            Vec::<String>::new()
        );
    }
}
