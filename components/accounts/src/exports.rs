//! The service's WIT exports (wit/accounts.wit): `admin` for operators (the host's
//! `shop createsuperuser`), `profiles` (orders' default address) and `sessions` (whether a
//! token still stands) for the other services.

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

impl bindings::exports::shop::accounts::sessions::Guest for Accounts {
    fn current(
        user_id: i64,
    ) -> Result<Option<bindings::exports::shop::accounts::sessions::Session>, String> {
        Ok(crate::handlers::session(user_id)?.map(|session| {
            bindings::exports::shop::accounts::sessions::Session {
                token_version: session.token_version,
                is_staff: session.is_staff,
                is_active: session.is_active,
                username: session.username,
            }
        }))
    }
}

bindings::export!(Accounts with_types_in bindings);
