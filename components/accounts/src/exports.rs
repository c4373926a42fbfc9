//! The service's WIT exports (wit/accounts.wit): `admin` for operators (the host's
//! `shop createsuperuser`) and `profiles` for the other services (orders' default address).

/// The accounts world: the two interfaces it exports.
mod bindings {
    #![allow(missing_docs, clippy::all)]
    spin_sdk::wit_bindgen::generate!({
        path: "../../wit/accounts.wit",
        world: "shop:accounts/accounts",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
    });
}

/// The component's implementation of its exports.
struct Accounts;

impl bindings::exports::shop::accounts::admin::Guest for Accounts {
    fn create_superuser(username: String, email: String, password: String) -> Result<i64, String> {
        crate::handlers::create_superuser(&username, &email, &password)
    }
}

impl bindings::exports::shop::accounts::profiles::Guest for Accounts {
    fn shipping_address(user_id: i64) -> Result<Option<String>, String> {
        crate::handlers::shipping_address(user_id)
    }
}

bindings::export!(Accounts with_types_in bindings);
