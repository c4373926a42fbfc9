//! What the products service reads and writes over HTTP, as types: the responses it serializes
//! and the request bodies it accepts. Its `openapi` module describes them in the OpenAPI
//! document.

use serde::Serialize;
use shop_guest::money::Money;
use shop_guest::openapi::MoneyInput;
use shop_guest::time::Timestamp;
use utoipa::{PartialSchema, ToSchema};

/// A product as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 7, "name": "Espresso cup", "description": "Porcelain, 90 ml.", "price": "12.50",
    "stock": 40, "created_at": "2026-11-25T13:00:00.000000Z",
    "updated_at": "2026-11-25T13:00:00.000000Z"
}))]
pub struct Product {
    #[schema(minimum = 1)]
    pub id: i64,
    /// 1 to 200 characters.
    pub name: String,
    pub description: String,
    pub price: Money,
    /// Units in stock.
    #[schema(minimum = 0, maximum = 2_147_483_647)]
    pub stock: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The body of `POST /api/products/` and `PUT /api/products/{id}/`: `name` and `price` are
/// required; unknown fields are ignored.
#[derive(ToSchema)]
#[schema(example = json!({"name": "Espresso cup", "description": "Porcelain, 90 ml.",
                          "price": "12.50", "stock": 40}))]
pub struct ProductWrite {
    /// 1 to 200 characters, not only spaces; no NUL characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub name: String,
    /// Any text, blank allowed (default blank); no NUL characters.
    #[schema(required = false, pattern = r"^[^\x00]*$")]
    pub description: String,
    #[schema(schema_with = MoneyInput::schema)]
    pub price: (),
    /// Units in stock (default 0).
    #[schema(required = false, minimum = 0, maximum = 2_147_483_647)]
    pub stock: i64,
}

/// The body of `PATCH /api/products/{id}/`: any subset of the fields of [`ProductWrite`].
#[derive(ToSchema)]
#[schema(example = json!({"price": "10.00", "stock": 12}))]
pub struct ProductPatch {
    /// 1 to 200 characters, not only spaces; no NUL characters.
    #[schema(
        required = false,
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub name: String,
    /// Any text, blank allowed; no NUL characters.
    #[schema(required = false, pattern = r"^[^\x00]*$")]
    pub description: String,
    #[schema(required = false, schema_with = MoneyInput::schema)]
    pub price: (),
    /// Units in stock.
    #[schema(required = false, minimum = 0, maximum = 2_147_483_647)]
    pub stock: i64,
}
