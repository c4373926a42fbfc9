//! What the cart reads of the products service, through its `shop:products/catalogue` export:
//! current names, prices and stock, looked up in one call for all the lines a request needs;
//! and of accounts, through `shop:accounts/sessions`: whether the caller's token still stands.

use std::collections::HashMap;

use shop_guest::error::ApiError;
use shop_guest::money::Money;

use crate::bindings::shop::accounts::sessions;
use crate::bindings::shop::products::catalogue;
use crate::domain::Product;

/// The products a request has looked up so far (`None`: the catalogue has no such product).
#[derive(Debug, Default)]
pub struct Catalogue {
    known: HashMap<i64, Option<Product>>,
}

impl Catalogue {
    /// Looks up, in one call, those of `ids` not looked up yet; 503 if the catalogue cannot
    /// answer.
    pub fn look_up(&mut self, ids: impl IntoIterator<Item = i64>) -> Result<(), ApiError> {
        let mut missing: Vec<i64> = ids
            .into_iter()
            .filter(|id| !self.known.contains_key(id))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let found = catalogue::get_products(&missing)
            .map_err(|reason| ApiError::upstream("products", &reason))?;
        for id in missing {
            self.known.insert(id, None);
        }
        for info in found {
            self.known.insert(
                info.id,
                Some(Product {
                    id: info.id,
                    name: info.name,
                    price: Money::from_cents(info.price_cents),
                    stock: info.stock,
                }),
            );
        }
        Ok(())
    }

    /// A product looked up before, if the catalogue has it.
    pub fn product(&self, id: i64) -> Option<&Product> {
        self.known.get(&id).and_then(Option::as_ref)
    }
}

shop_guest::accounts_sessions!(Accounts, sessions::current);
