//! The accounts service: users, their passwords, JWT access and refresh tokens (rotated, and
//! revocable), staff and the users' history (API.md, "Accounts"). Besides HTTP it exports
//! `shop:accounts/admin` (wit/accounts.wit), which the host calls for `shop createsuperuser`,
//! `shop:accounts/profiles`, which orders calls for a user's default shipping address, and
//! `shop:accounts/sessions`, which the other services call to confirm a token still stands.

/// The service's name: its database is named by the `accounts_database` variable.
pub const SERVICE: &str = "accounts";

mod common_passwords;
mod domain;
mod exports;
mod handlers;
mod password;
mod storage;

use shop_guest::error::ApiError;
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing::{self, ApiPath, CREATE, RETRIEVE, RETRIEVE_UPDATE};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    response::finish(ApiRequest::read(request).and_then(|request| route(&request)))
}

/// Methods of one resource that can be read and patched (a user, by staff).
const RETRIEVE_PATCH: &[&str] = &["GET", "PATCH", "HEAD", "OPTIONS"];

/// The paths of the accounts; a user's id as sent (its handlers parse it after the staff
/// check: a bad id is then a 401 or 403 before it is a 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccountPath<'a> {
    /// `/api/accounts/register/`
    Register,
    /// `/api/accounts/login/`
    Login,
    /// `/api/accounts/token/refresh/`
    TokenRefresh,
    /// `/api/accounts/logout/`
    Logout,
    /// `/api/accounts/profile/`
    Profile,
    /// `/api/accounts/users/`
    Users,
    /// `/api/accounts/users/{id}/`
    User(&'a str),
    /// `/api/accounts/history/`
    History,
}

impl<'a> ApiPath<'a> for AccountPath<'a> {
    fn from_segments(segments: &[&'a str]) -> Option<Self> {
        match *segments {
            ["api", "accounts", "register"] => Some(Self::Register),
            ["api", "accounts", "login"] => Some(Self::Login),
            ["api", "accounts", "token", "refresh"] => Some(Self::TokenRefresh),
            ["api", "accounts", "logout"] => Some(Self::Logout),
            ["api", "accounts", "profile"] => Some(Self::Profile),
            ["api", "accounts", "users"] => Some(Self::Users),
            ["api", "accounts", "users", id] => Some(Self::User(id)),
            ["api", "accounts", "history"] => Some(Self::History),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Register => "Register",
            Self::Login => "Login",
            Self::TokenRefresh => "Token Refresh",
            Self::Logout => "Logout",
            Self::Profile => "Profile",
            Self::Users => "User List",
            Self::User(_) => "User Instance",
            Self::History => "User History",
        }
    }

    fn allow(self) -> &'static [&'static str] {
        match self {
            Self::Register | Self::Login | Self::TokenRefresh | Self::Logout => CREATE,
            Self::Profile => RETRIEVE_UPDATE,
            Self::Users | Self::History => RETRIEVE,
            Self::User(_) => RETRIEVE_PATCH,
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
            (AccountPath::Logout, "POST") => handlers::logout(request),
            (AccountPath::Profile, "GET" | "HEAD") => handlers::profile(request),
            (AccountPath::Profile, "PUT" | "PATCH") => handlers::update_profile(request),
            (AccountPath::Users, "GET" | "HEAD") => handlers::list_users(request),
            (AccountPath::User(id), "GET" | "HEAD") => handlers::retrieve_user(request, id),
            (AccountPath::User(id), "PATCH") => handlers::update_user(request, id),
            (AccountPath::History, "GET" | "HEAD") => handlers::history(request),
            _ => return None,
        })
    })
}
