//! The accounts service: users, their passwords, JWT access and refresh tokens, and staff
//! (API.md, "Accounts"). Besides HTTP it exports `shop:accounts/admin` (wit/accounts.wit),
//! which the host calls for `shop createsuperuser`, and `shop:accounts/profiles`, which orders
//! calls for a user's default shipping address.

/// The service's name: its database is named by the `accounts_database` variable.
pub const SERVICE: &str = "accounts";

mod domain;
mod handlers;
mod password;
mod storage;

use shop_guest::error::ApiError;
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing::{self, CREATE, RETRIEVE_UPDATE};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    response::finish(ApiRequest::read(request).and_then(|request| route(&request)))
}

/// The route table: path first (404), then method (405), then the handler.
fn route(request: &ApiRequest) -> Result<Response, ApiError> {
    let segments = routing::segments(request.path()).ok_or_else(ApiError::not_found)?;
    match (segments.as_slice(), request.method()) {
        (["api", "accounts", "register"], "POST") => handlers::register(request),
        (["api", "accounts", "register"], "OPTIONS") => routing::options("Register", CREATE),
        (["api", "accounts", "register"], method) => {
            Err(routing::method_not_allowed(method, CREATE))
        }

        (["api", "accounts", "login"], "POST") => handlers::login(request),
        (["api", "accounts", "login"], "OPTIONS") => routing::options("Login", CREATE),
        (["api", "accounts", "login"], method) => Err(routing::method_not_allowed(method, CREATE)),

        (["api", "accounts", "token", "refresh"], "POST") => handlers::refresh(request),
        (["api", "accounts", "token", "refresh"], "OPTIONS") => {
            routing::options("Token Refresh", CREATE)
        }
        (["api", "accounts", "token", "refresh"], method) => {
            Err(routing::method_not_allowed(method, CREATE))
        }

        (["api", "accounts", "profile"], "GET" | "HEAD") => handlers::profile(request),
        (["api", "accounts", "profile"], "PUT" | "PATCH") => handlers::update_profile(request),
        (["api", "accounts", "profile"], "OPTIONS") => routing::options("Profile", RETRIEVE_UPDATE),
        (["api", "accounts", "profile"], method) => {
            Err(routing::method_not_allowed(method, RETRIEVE_UPDATE))
        }

        _ => Err(ApiError::not_found()),
    }
}

/// The service's WIT exports (wit/accounts.wit): `admin` for operators (the host's
/// `shop createsuperuser`) and `profiles` for the other services (orders' default address).
mod exports {
    mod bindings {
        #![allow(missing_docs, clippy::all)]
        spin_sdk::wit_bindgen::generate!({
            path: "../../wit/accounts.wit",
            world: "shop:accounts/accounts",
            runtime_path: "::spin_sdk::wit_bindgen::rt",
        });
    }

    struct Accounts;

    impl bindings::exports::shop::accounts::admin::Guest for Accounts {
        fn create_superuser(
            username: String,
            email: String,
            password: String,
        ) -> Result<i64, String> {
            crate::handlers::create_superuser(&username, &email, &password)
        }
    }

    impl bindings::exports::shop::accounts::profiles::Guest for Accounts {
        fn shipping_address(user_id: i64) -> Result<Option<String>, String> {
            crate::handlers::shipping_address(user_id)
        }
    }

    bindings::export!(Accounts with_types_in bindings);
}
