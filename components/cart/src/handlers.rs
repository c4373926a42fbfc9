//! One function per entry point (HTTP endpoints, then the exported WIT functions): read the
//! request, call storage and the catalogue, answer with the whole cart.

use shop_guest::auth::User;
use shop_guest::error::ApiError;
use shop_guest::json::Fields;
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::storage::{Db, StorageError};
use shop_guest::time::Timestamp;
use spin_sdk::http::Response;

use crate::clients::Catalogue;
use crate::domain::{self, AddItem, Cart, CartItem, RemoveItem, SetQuantity, TotalTooLarge};
use crate::storage;

/// GET /api/carts/: the caller's cart, made empty on first use.
pub fn show(user: User) -> Result<Response, ApiError> {
    let db = Db::open(crate::SERVICE)?;
    let (cart, lines) = storage::cart_with_lines(&db, user.id, Timestamp::now())?;
    answer_with(&cart, &lines, &mut Catalogue::default())
}

/// POST /api/carts/add_item/: more units of a product (a new line or an existing one); 404 for
/// a product the catalogue does not have, 409 when the line would exceed the stock.
pub fn add_item(request: &ApiRequest, user: User) -> Result<Response, ApiError> {
    let add = AddItem::read(Fields::from_request(request)?)?;
    let db = Db::open(crate::SERVICE)?;
    let now = Timestamp::now();
    let (cart, lines) = storage::cart_with_lines(&db, user.id, now)?;
    // One look-up for the added product and the lines the answer will show.
    let mut catalogue = Catalogue::default();
    catalogue.look_up(product_ids(&lines).chain([add.product_id]))?;
    let product = catalogue
        .product(add.product_id)
        .ok_or_else(|| domain::unknown_product(add.product_id))?;
    let (cart, lines) = db.transaction(|db| {
        // The upsert adds to whatever the line holds when it runs, and the check is on the
        // total it answers: a rollback leaves the line as it was.
        let quantity = storage::add_units(db, cart.id, add.product_id, add.quantity, now)?;
        if quantity > domain::MAX_QUANTITY {
            return Err(domain::too_many_units());
        }
        if quantity > product.stock {
            return Err(domain::above_stock(product));
        }
        let cart = storage::touch(db, cart.id, now)?;
        let lines = check_total(db, &cart, &catalogue)?;
        Ok((cart, lines))
    })?;
    answer_with(&cart, &lines, &mut catalogue)
}

/// POST /api/carts/remove_item/: drops a line; 404 if the product is not in the cart.
pub fn remove_item(request: &ApiRequest, user: User) -> Result<Response, ApiError> {
    let remove = RemoveItem::read(Fields::from_request(request)?)?;
    let db = Db::open(crate::SERVICE)?;
    let now = Timestamp::now();
    let cart = storage::cart_of(&db, user.id, now)?;
    let cart = remove_line(&db, &cart, remove.product_id, now)?;
    answer(&db, &cart, &mut Catalogue::default())
}

/// PUT /api/carts/update_quantity/: sets a line's quantity (0 removes it); 404 if the product
/// is not in the cart (or no longer in the catalogue), 409 above the stock.
pub fn update_quantity(request: &ApiRequest, user: User) -> Result<Response, ApiError> {
    let change = SetQuantity::read(Fields::from_request(request)?)?;
    let db = Db::open(crate::SERVICE)?;
    let now = Timestamp::now();
    let (cart, lines) = storage::cart_with_lines(&db, user.id, now)?;
    if change.quantity == 0 {
        let cart = remove_line(&db, &cart, change.product_id, now)?;
        return answer(&db, &cart, &mut Catalogue::default());
    }
    let mut catalogue = Catalogue::default();
    catalogue.look_up(product_ids(&lines).chain([change.product_id]))?;
    let (cart, lines) = db.transaction(|db| {
        if !storage::set_quantity(db, cart.id, change.product_id, change.quantity)? {
            return Err(domain::not_in_cart(change.product_id));
        }
        let product = catalogue
            .product(change.product_id)
            .ok_or_else(|| domain::unknown_product(change.product_id))?;
        if change.quantity > product.stock {
            return Err(domain::above_stock(product));
        }
        let cart = storage::touch(db, cart.id, now)?;
        let lines = check_total(db, &cart, &catalogue)?;
        Ok((cart, lines))
    })?;
    answer_with(&cart, &lines, &mut catalogue)
}

/// Removes a product's line and stamps the cart; 404 if the product is not in it.
fn remove_line(db: &Db, cart: &Cart, product_id: i64, now: Timestamp) -> Result<Cart, ApiError> {
    db.transaction(|db| {
        if !storage::remove(db, cart.id, product_id)? {
            return Err(domain::not_in_cart(product_id));
        }
        Ok(storage::touch(db, cart.id, now)?)
    })
}

/// Refuses (400, and the caller's transaction rolls back) a change after which the cart's total
/// would be beyond what it can hold, priced as `catalogue` knows its products; answers the
/// cart's lines as the change left them.
fn check_total(db: &Db, cart: &Cart, catalogue: &Catalogue) -> Result<Vec<CartItem>, ApiError> {
    let lines = storage::items(db, cart.id)?;
    domain::price_cart(cart, &lines, |id| catalogue.product(id)).map_err(TotalTooLarge::refusal)?;
    Ok(lines)
}

/// 200 with the cart as it is now, priced from the catalogue (looking up only the products
/// `catalogue` does not know yet).
fn answer(db: &Db, cart: &Cart, catalogue: &mut Catalogue) -> Result<Response, ApiError> {
    answer_with(cart, &storage::items(db, cart.id)?, catalogue)
}

/// 200 with `cart` holding `lines` (as read in the transaction that changed them, which
/// committed), priced from the catalogue.
fn answer_with(
    cart: &Cart,
    lines: &[CartItem],
    catalogue: &mut Catalogue,
) -> Result<Response, ApiError> {
    catalogue.look_up(product_ids(lines))?;
    let priced = domain::price_cart(cart, lines, |id| catalogue.product(id))
        .map_err(TotalTooLarge::conflict)?;
    response::ok(&priced)
}

fn product_ids(lines: &[CartItem]) -> impl Iterator<Item = i64> + '_ {
    lines.iter().map(|line| line.product_id)
}

/// `shop:cart/carts.get-cart`: the user's lines as (product id, quantity), oldest first.
pub fn get_cart(user_id: i64) -> Result<Vec<(i64, i64)>, String> {
    let lines = Db::open(crate::SERVICE)
        .and_then(|db| storage::items_of_user(&db, user_id))
        .map_err(|e| e.to_string())?;
    Ok(lines
        .into_iter()
        .map(|line| (line.product_id, line.quantity))
        .collect())
}

/// `shop:cart/carts.clear-ordered`: removes each ordered line whose quantity is unchanged, in
/// one transaction.
pub fn clear_ordered(user_id: i64, ordered: &[(i64, i64)]) -> Result<(), String> {
    if ordered.is_empty() {
        return Ok(());
    }
    let db = Db::open(crate::SERVICE).map_err(|e| e.to_string())?;
    let now = Timestamp::now();
    db.transaction(|db| {
        if storage::remove_ordered(db, user_id, ordered)? {
            storage::touch_user_cart(db, user_id, now)?;
        }
        Ok::<(), StorageError>(())
    })
    .map_err(|e| e.to_string())
}
