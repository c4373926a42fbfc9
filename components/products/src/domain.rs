//! The catalogue's types: only valid values can be built.

use std::collections::HashSet;

use shop_guest::error::ApiError;
use shop_guest::history::Changes;
use shop_guest::json::{FieldValue, Fields, Presence, TextRules};
use shop_guest::money::{self, Money};
use shop_guest::query::{ListParams, TermRules};
use shop_guest::request::Query;
use shop_guest::storage::StorageError;

pub use shop_api::products::api::Product;

/// A product name: 1 to 200 characters once trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    /// The most characters a name may have.
    pub const MAX_CHARS: usize = 200;

    /// Reads a name field (DRF `CharField(max_length=200)`).
    pub fn from_field(value: &FieldValue<'_>) -> Result<Self, Vec<String>> {
        value.text(TextRules::required(Self::MAX_CHARS)).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Units in stock: 0 to 2,147,483,647.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock(i64);

impl Stock {
    /// The most units a product may have (a 32-bit signed integer, as the API promises).
    pub const MAX: i64 = 2_147_483_647;

    /// Reads a stock field (DRF `IntegerField(min_value=0, max_value=2147483647)`).
    pub fn from_field(value: &FieldValue<'_>) -> Result<Self, Vec<String>> {
        value.integer(0, Self::MAX).map(Self)
    }

    /// The number of units.
    pub fn units(&self) -> i64 {
        self.0
    }
}

/// The fields a write sets; `None` leaves the field as it is (or at its default on create).
#[derive(Debug, Clone, Default)]
pub struct ProductChanges {
    pub name: Option<ProductName>,
    pub description: Option<String>,
    pub price: Option<Money>,
    pub stock: Option<Stock>,
}

impl ProductChanges {
    /// Reads a body: `name` and `price` must be present unless `presence` is `Optional`
    /// (PATCH); unknown fields are ignored; every field's messages are reported together.
    pub fn read(mut fields: Fields<'_>, presence: Presence) -> Result<Self, ApiError> {
        let changes = Self {
            name: fields.read("name", presence, ProductName::from_field),
            description: fields.optional("description", |v| v.text(TextRules::blank_allowed())),
            price: fields.read("price", presence, Money::from_field),
            stock: fields.optional("stock", Stock::from_field),
        };
        fields.finish()?;
        Ok(changes)
    }
}

/// A complete new product.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub name: ProductName,
    pub description: String,
    pub price: Money,
    pub stock: Stock,
}

impl NewProduct {
    /// A new product from a create body: `description` defaults to "", `stock` to 0.
    pub fn from_changes(changes: ProductChanges) -> Result<Self, ApiError> {
        match (changes.name, changes.price) {
            (Some(name), Some(price)) => Ok(Self {
                name,
                description: changes.description.unwrap_or_default(),
                price,
                stock: changes.stock.unwrap_or(Stock(0)),
            }),
            // `ProductChanges::read` with `Presence::Required` already reported these.
            (name, _) => {
                let field = if name.is_none() { "name" } else { "price" };
                Err(ApiError::field(field, shop_guest::json::REQUIRED))
            }
        }
    }
}

/// A product's fields as a history entry records them (the API's own form).
fn history_fields(product: &Product) -> [(&'static str, serde_json::Value); 4] {
    [
        ("name", product.name.as_str().into()),
        ("description", product.description.as_str().into()),
        ("price", product.price.to_string().into()),
        ("stock", product.stock.into()),
    ]
}

/// The history of a new product: every field, from nothing.
pub fn created(product: &Product) -> Changes {
    let mut changes = Changes::new();
    for (field, value) in history_fields(product) {
        changes.set(field, serde_json::Value::Null, value);
    }
    changes
}

/// The history of an update: only the fields whose values differ.
pub fn updated(before: &Product, after: &Product) -> Changes {
    let mut changes = Changes::new();
    for ((field, old), (_, new)) in history_fields(before)
        .into_iter()
        .zip(history_fields(after))
    {
        changes.set_if_changed(field, old, new);
    }
    changes
}

/// The history of a deleted product: every field, to nothing.
pub fn deleted(product: &Product) -> Changes {
    let mut changes = Changes::new();
    for (field, value) in history_fields(product) {
        changes.set(field, value, serde_json::Value::Null);
    }
    changes
}

/// What `GET /api/products/` asks for besides the page, every parameter within its bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductListQuery {
    pub filter: ProductFilter,
    pub ordering: Vec<SortBy>,
}

impl ProductListQuery {
    /// Reads the filters and the ordering; every parameter past its bound or invalid is named
    /// in one 400 (`{"search": ["Ensure this field has no more than 10 terms."]}`).
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        let mut params = ListParams::new(query);
        let filter = ProductFilter::read(&mut params);
        let ordering = read_ordering(&mut params);
        params.finish()?;
        Ok(Self { filter, ordering })
    }
}

/// The list filters of `GET /api/products/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductFilter {
    /// Every term must appear, case-insensitively, in the name or the description.
    pub search_terms: Vec<String>,
    /// `price >= min_price`, in cents.
    pub min_price_cents: Option<i64>,
    /// `price <= max_price`, in cents.
    pub max_price_cents: Option<i64>,
    /// `Some(true)`: stock > 0; `Some(false)`: stock = 0.
    pub in_stock: Option<bool>,
}

/// `search`: DRF `SearchFilter`'s terms (commas and whitespace separate them, all must match),
/// bounded so that the `WHERE` clause stays far below SQLite's expression depth. A repeated
/// term counts against the bound but makes no second condition.
pub const SEARCH: TermRules = TermRules {
    max_chars: 200,
    max_terms: 10,
    noun: "terms",
    separator: |c| c == ',' || c.is_whitespace(),
};

/// The most characters of `min_price` and `max_price`: room for any decimal that means
/// something as a price bound (`1e400` and `-99999999999999999999999` included).
pub const PRICE_BOUND_MAX_CHARS: usize = 100;

impl ProductFilter {
    /// Reads `search`, `min_price`, `max_price` and `in_stock`; an invalid price bound is a 400
    /// `{"min_price": ["Enter a number."]}`. Empty values are no filter.
    pub fn read(params: &mut ListParams<'_>) -> Self {
        let price_bound = |to_cents: fn(&str) -> Option<i64>| {
            move |text: &str| {
                let text = text.trim();
                if text.is_empty() {
                    return Ok(None);
                }
                to_cents(text)
                    .map(Some)
                    .ok_or_else(|| "Enter a number.".to_owned())
            }
        };
        Self {
            search_terms: params.terms("search", SEARCH),
            min_price_cents: params.read(
                "min_price",
                PRICE_BOUND_MAX_CHARS,
                price_bound(money::cents_at_least),
            ),
            max_price_cents: params.read(
                "max_price",
                PRICE_BOUND_MAX_CHARS,
                price_bound(money::cents_at_most),
            ),
            in_stock: params.read("in_stock", "false".len(), |text| {
                parse_bool(text)
                    .map(Some)
                    .ok_or_else(|| "Must be `true` or `false`.".to_owned())
            }),
        }
    }
}

/// The `in_stock` filter's value.
fn parse_bool(text: &str) -> Option<bool> {
    // Exactly what the schema's `boolean` is sent as: anything else is a 400, not ignored.
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A column the list can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Price,
    CreatedAt,
    Stock,
}

/// One `ordering` term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortBy {
    pub key: SortKey,
    pub descending: bool,
}

/// `ordering`: at most 4 comma-separated keys (there are only 4 columns to sort by; blank
/// pieces are not keys) in at most 100 characters.
pub const ORDERING: TermRules = TermRules {
    max_chars: 100,
    max_terms: 4,
    noun: "keys",
    separator: |c| c == ',',
};

/// `ordering=price,-name`: known keys in order; unknown ones are ignored (none: by id). A key
/// given again, in either direction, is dropped: the first already decided every tie the
/// second could (`price,-price` sorts as `price`).
pub fn read_ordering(params: &mut ListParams<'_>) -> Vec<SortBy> {
    let mut ordering: Vec<SortBy> = Vec::new();
    for term in params.terms("ordering", ORDERING) {
        let (descending, name) = match term.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, term.as_str()),
        };
        let key = match name {
            "name" => SortKey::Name,
            "price" => SortKey::Price,
            "created_at" => SortKey::CreatedAt,
            "stock" => SortKey::Stock,
            _ => continue,
        };
        if ordering.iter().all(|sort| sort.key != key) {
            ordering.push(SortBy { key, descending });
        }
    }
    ordering
}

/// A product as other services read it now (`shop:products/catalogue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueEntry {
    pub id: i64,
    pub name: String,
    pub price_cents: i64,
    pub stock: i64,
}

/// The key an order's reservation is held under: 1 to 512 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey(String);

impl OrderKey {
    /// The most characters a key may have: orders sends `u<user id>:<client key>`, the client's
    /// `Idempotency-Key` being up to 255 characters, so up to 276; more leaves room.
    pub const MAX_CHARS: usize = 512;

    /// A key as the orders service sends it; blank or overlong is refused.
    pub fn parse(key: String) -> Result<Self, String> {
        if key.trim().is_empty() {
            return Err("The order key is empty.".to_owned());
        }
        if key.chars().count() > Self::MAX_CHARS {
            return Err(format!(
                "The order key is longer than {} characters.",
                Self::MAX_CHARS
            ));
        }
        Ok(Self(key))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Units of one product that an order asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockLine {
    pub product_id: i64,
    pub quantity: i64,
}

/// The lines of one order: at least one, each quantity at least 1, each product once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLines(Vec<StockLine>);

impl OrderLines {
    /// Checks the lines, keeping their order.
    pub fn parse(lines: Vec<StockLine>) -> Result<Self, String> {
        if lines.is_empty() {
            return Err("An order needs at least one line.".to_owned());
        }
        let mut seen = HashSet::with_capacity(lines.len());
        for line in &lines {
            if line.quantity < 1 {
                return Err(format!(
                    "The quantity of product {} is {}; it must be at least 1.",
                    line.product_id, line.quantity
                ));
            }
            if !seen.insert(line.product_id) {
                return Err(format!(
                    "Product {} appears in more than one line.",
                    line.product_id
                ));
            }
        }
        Ok(Self(lines))
    }

    /// The lines, in the order asked.
    pub fn lines(&self) -> &[StockLine] {
        &self.0
    }
}

/// A line held for an order, with the name and unit price the product had when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedLine {
    pub product_id: i64,
    pub name: String,
    pub price_cents: i64,
    pub quantity: i64,
}

/// A product with fewer units than an order asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub product_id: i64,
    pub name: String,
    pub requested: i64,
    pub available: i64,
}

/// Why a reservation took nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    /// No product has this id.
    #[error("no product has id {0}")]
    UnknownProduct(i64),
    /// A product is short of stock.
    #[error("only {} units of {} in stock", .0.available, .0.name)]
    InsufficientStock(Shortage),
    /// The order key or the lines are not valid.
    #[error("{0}")]
    Invalid(String),
    /// The database could not do it.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_query(query: &str) -> Result<ProductListQuery, serde_json::Value> {
        ProductListQuery::from_query(&Query::parse(query)).map_err(|error| {
            assert_eq!(error.status(), 400, "{query}");
            serde_json::from_slice(&error.body()).unwrap()
        })
    }

    fn filter(query: &str) -> Result<ProductFilter, serde_json::Value> {
        list_query(query).map(|list| list.filter)
    }

    fn ordering(query: &str) -> Vec<SortBy> {
        list_query(query).unwrap().ordering
    }

    fn by(key: SortKey, descending: bool) -> SortBy {
        SortBy { key, descending }
    }

    #[test]
    fn filters_read_from_the_query() {
        assert_eq!(
            filter("search=red,%20shoe&min_price=10.005&max_price=20&in_stock=true").unwrap(),
            ProductFilter {
                search_terms: vec!["red".into(), "shoe".into()],
                min_price_cents: Some(1001),
                max_price_cents: Some(2000),
                in_stock: Some(true),
            }
        );
        assert_eq!(
            filter("min_price=&max_price=%20").unwrap(),
            ProductFilter::default()
        );
        for invalid in ["maybe", "", "True", "1", "truetrue"] {
            assert!(filter(&format!("in_stock={invalid}")).is_err(), "{invalid}");
        }
    }

    #[test]
    fn invalid_price_bounds_are_400() {
        assert_eq!(
            filter("min_price=abc&max_price=x"),
            Err(
                serde_json::json!({"min_price": ["Enter a number."], "max_price": ["Enter a number."]})
            )
        );
    }

    #[test]
    fn price_bounds_beyond_every_price_are_filters_until_too_long() {
        // A decimal beyond the money range is a bound like any other (django-filter reads a
        // decimal): it saturates, and no statement fails on it.
        let far = filter("min_price=1e400&max_price=-99999999999999999999999").unwrap();
        assert_eq!(far.min_price_cents, Some(i64::MAX));
        assert_eq!(far.max_price_cents, Some(i64::MIN));
        let digits = "9".repeat(PRICE_BOUND_MAX_CHARS);
        assert_eq!(
            filter(&format!("max_price={digits}"))
                .unwrap()
                .max_price_cents,
            Some(i64::MAX)
        );
        assert_eq!(
            filter(&format!("min_price={digits}9&max_price=1")),
            Err(
                serde_json::json!({"min_price": ["Ensure this field has no more than 100 characters."]})
            )
        );
    }

    #[test]
    fn search_keeps_drfs_terms_within_bounds() {
        let terms = |query: &str| filter(query).map(|filter| filter.search_terms);
        assert_eq!(terms("search=red,%20shoe%09red").unwrap(), ["red", "shoe"]);
        assert_eq!(terms("search=re%00d").unwrap(), ["red"]);
        assert_eq!(terms("search=%20,%20").unwrap(), Vec::<String>::new());
        let ten = (1..=10).map(|i| format!("t{i}")).collect::<Vec<_>>();
        assert_eq!(terms(&format!("search={}", ten.join("+"))).unwrap(), ten);
        // A repeat makes no second condition, but counts against the bound.
        assert_eq!(
            terms(&format!("search={}", ["same"; 10].join(","))).unwrap(),
            ["same"]
        );
        let eleven =
            Err(serde_json::json!({"search": ["Ensure this field has no more than 10 terms."]}));
        assert_eq!(terms("search=a+b+c+d+e+f+g+h+i+j+k"), eleven);
        assert_eq!(terms(&format!("search={}", ["same"; 11].join(","))), eleven);
        assert_eq!(
            terms(&format!("search={}", "x".repeat(201))),
            Err(
                serde_json::json!({"search": ["Ensure this field has no more than 200 characters."]})
            )
        );
        assert_eq!(
            terms(&format!("search={}", "x".repeat(200))).unwrap().len(),
            1
        );
        let many = (0..2000)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join("+");
        assert_eq!(
            terms(&format!("search={many}")),
            Err(serde_json::json!({"search": [
                "Ensure this field has no more than 200 characters.",
                "Ensure this field has no more than 10 terms.",
            ]}))
        );
        // Given 50 times, the last one counts (Django's `QueryDict.get`).
        let repeated = (0..50).map(|i| format!("search=s{i}")).collect::<Vec<_>>();
        assert_eq!(terms(&repeated.join("&")).unwrap(), ["s49"]);
    }

    #[test]
    fn ordering_ignores_unknown_terms() {
        assert_eq!(
            ordering("ordering=-price,bogus,%20name"),
            [by(SortKey::Price, true), by(SortKey::Name, false)]
        );
        assert!(ordering("ordering=id").is_empty());
        assert!(ordering("ordering=").is_empty());
    }

    #[test]
    fn ordering_keeps_the_first_of_each_key() {
        assert_eq!(
            ordering("ordering=price,price"),
            [by(SortKey::Price, false)]
        );
        assert_eq!(
            ordering("ordering=price,-price"),
            [by(SortKey::Price, false)]
        );
        assert_eq!(
            ordering("ordering=-stock,name,stock,-name"),
            [by(SortKey::Stock, true), by(SortKey::Name, false)]
        );
        assert_eq!(
            ordering("ordering=name,-price,created_at,-stock"),
            [
                by(SortKey::Name, false),
                by(SortKey::Price, true),
                by(SortKey::CreatedAt, false),
                by(SortKey::Stock, true),
            ]
        );
        // Blank pieces are not keys; repeats are.
        assert_eq!(
            ordering("ordering=,price,%20,-price,,price,"),
            [by(SortKey::Price, false)]
        );
        assert!(list_query("ordering=price,price,price,price,price").is_err());
    }

    #[test]
    fn ordering_past_its_bounds_is_a_400() {
        assert_eq!(
            list_query("ordering=name,price,created_at,stock,bogus").map(|list| list.ordering),
            Err(serde_json::json!({"ordering": ["Ensure this field has no more than 4 keys."]}))
        );
        let keys = ["price", "-price", "name", "-name", "stock"]
            .repeat(600)
            .join(",");
        assert_eq!(
            list_query(&format!("ordering={keys}")).map(|list| list.ordering),
            Err(serde_json::json!({"ordering": [
                "Ensure this field has no more than 100 characters.",
                "Ensure this field has no more than 4 keys.",
            ]}))
        );
        // Every parameter's messages in one answer.
        assert_eq!(
            list_query("ordering=a,b,c,d,e&search=1+2+3+4+5+6+7+8+9+10+11&min_price=x"),
            Err(serde_json::json!({
                "ordering": ["Ensure this field has no more than 4 keys."],
                "search": ["Ensure this field has no more than 10 terms."],
                "min_price": ["Enter a number."],
            }))
        );
    }

    #[test]
    fn bodies_validate_every_field() {
        let object = shop_guest::json::parse_object(
            br#"{"name": "  ", "price": "1.999", "stock": -1, "description": 5, "extra": true}"#,
        )
        .unwrap();
        let error = ProductChanges::read(Fields::new(object), Presence::Required).unwrap_err();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&error.body()).unwrap(),
            serde_json::json!({
                "name": ["This field may not be blank."],
                "price": ["Ensure that there are no more than 2 decimal places."],
                "stock": ["Ensure this value is greater than or equal to 0."],
                "description": ["Not a valid string."],
            })
        );
        let object = shop_guest::json::parse_object(br#"{"name": " Lamp ", "price": 5}"#).unwrap();
        let changes = ProductChanges::read(Fields::new(object), Presence::Required).unwrap();
        let product = NewProduct::from_changes(changes).unwrap();
        assert_eq!(product.name.as_str(), "Lamp");
        assert_eq!(product.price.to_string(), "5.00");
        assert_eq!(
            (product.description.as_str(), product.stock.units()),
            ("", 0)
        );
        let object = shop_guest::json::parse_object(b"{}").unwrap();
        assert!(ProductChanges::read(Fields::new(object), Presence::Optional).is_ok());
    }

    fn lamp(price_cents: i64, stock: i64) -> Product {
        let at = shop_guest::time::Timestamp::parse("2026-11-25T13:00:00Z").unwrap();
        Product {
            id: 7,
            name: "Lamp".into(),
            description: "".into(),
            price: Money::from_cents(price_cents),
            stock,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn history_records_fields_in_the_apis_form() {
        let json = |changes: Changes| serde_json::to_value(changes).unwrap();
        assert_eq!(
            json(created(&lamp(1250, 3))),
            serde_json::json!({"name": [null, "Lamp"], "description": [null, ""],
                               "price": [null, "12.50"], "stock": [null, 3]})
        );
        assert_eq!(
            json(updated(&lamp(1250, 3), &lamp(1000, 3))),
            serde_json::json!({"price": ["12.50", "10.00"]})
        );
        assert!(updated(&lamp(1250, 3), &lamp(1250, 3)).is_empty());
        assert_eq!(
            json(deleted(&lamp(5, 0))),
            serde_json::json!({"name": ["Lamp", null], "description": ["", null],
                               "price": ["0.05", null], "stock": [0, null]})
        );
    }

    #[test]
    fn order_lines_are_checked() {
        let line = |product_id, quantity| StockLine {
            product_id,
            quantity,
        };
        let lines = OrderLines::parse(vec![line(3, 1), line(1, 2)]).unwrap();
        assert_eq!(lines.lines(), &[line(3, 1), line(1, 2)]);
        assert!(OrderLines::parse(Vec::new()).is_err());
        assert!(OrderLines::parse(vec![line(1, 0)]).is_err());
        assert!(OrderLines::parse(vec![line(1, -3)]).is_err());
        let twice = OrderLines::parse(vec![line(1, 1), line(2, 1), line(1, 4)]).unwrap_err();
        assert!(twice.contains("Product 1"), "{twice}");
    }

    #[test]
    fn order_keys_are_not_blank() {
        assert_eq!(OrderKey::parse("u7:abc".into()).unwrap().as_str(), "u7:abc");
        assert!(OrderKey::parse("  ".into()).is_err());
        // `u<user id>:` and a client key of up to 255 characters fit.
        assert!(OrderKey::parse(format!("u9223372036854775807:{}", "k".repeat(255))).is_ok());
        assert!(OrderKey::parse("k".repeat(513)).is_err());
    }
}
