//! The accounts service: users, their passwords, JWT access and refresh tokens, and staff
//! (API.md, "Accounts"). Besides HTTP it exports `shop:accounts/admin` (wit/accounts.wit),
//! which the host calls for `shop createsuperuser`, and `shop:accounts/profiles`, which orders
//! calls for a user's default shipping address.

/// The service's name: its database is named by the `accounts_database` variable.
pub const SERVICE: &str = "accounts";

mod domain;
mod exports;
mod handlers;
mod password;
mod storage;

use shop_guest::error::ApiError;
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing::{self, ApiPath, CREATE, RETRIEVE_UPDATE};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    response::finish(ApiRequest::read(request).and_then(|request| route(&request)))
}

/// The paths of the accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccountPath {
    /// `/api/accounts/register/`
    Register,
    /// `/api/accounts/login/`
    Login,
    /// `/api/accounts/token/refresh/`
    TokenRefresh,
    /// `/api/accounts/profile/`
    Profile,
}

impl ApiPath<'_> for AccountPath {
    fn from_segments(segments: &[&str]) -> Option<Self> {
        match *segments {
            ["api", "accounts", "register"] => Some(Self::Register),
            ["api", "accounts", "login"] => Some(Self::Login),
            ["api", "accounts", "token", "refresh"] => Some(Self::TokenRefresh),
            ["api", "accounts", "profile"] => Some(Self::Profile),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Register => "Register",
            Self::Login => "Login",
            Self::TokenRefresh => "Token Refresh",
            Self::Profile => "Profile",
        }
    }

    fn allow(self) -> &'static [&'static str] {
        match self {
            Self::Register | Self::Login | Self::TokenRefresh => CREATE,
            Self::Profile => RETRIEVE_UPDATE,
        }
    }
}

/// The route table: path first (404), then method (405), then the handler.
fn route(request: &ApiRequest) -> Result<Response, ApiError> {
    routing::route(request, |path, method| {
        Some(match (path, method) {
            (AccountPath::Register, "POST") => handlers::register(request),
            (AccountPath::Login, "POST") => handlers::login(request),
            (AccountPath::TokenRefresh, "POST") => handlers::refresh(request),
            (AccountPath::Profile, "GET" | "HEAD") => handlers::profile(request),
            (AccountPath::Profile, "PUT" | "PATCH") => handlers::update_profile(request),
            _ => return None,
        })
    })
}
