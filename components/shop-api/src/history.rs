//! The history entry every service lists at `GET /api/<service>/history/` (API.md, "History"):
//! one type and one schema for products, orders and accounts. The type, its table and its list
//! live in `shop_guest::history`, which records them; this is where the services' HTTP types
//! and operations find them.

pub use shop_guest::history::{Action, Changes, HistoryEntry};

/// The history lists' filter (with [`shop_guest::openapi::PageQuery`] for the paging).
#[cfg(feature = "openapi")]
#[allow(dead_code)] // only its parameters are read
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only the entries of this object (a product's, an order's or a user's id); blank: all.
    /// Anything but digits is a 400.
    #[param(required = false, schema_with = object_id)]
    pub object_id: String,
}

/// An object's id as the filter takes it: digits (an id nothing has matches nothing), or blank.
#[cfg(feature = "openapi")]
fn object_id() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .max_length(Some(20))
        .pattern(Some("^[0-9]*$"))
        .examples(["7"])
}
