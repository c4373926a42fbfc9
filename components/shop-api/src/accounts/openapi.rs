//! The accounts service's operations in the OpenAPI document, over its `api` types (the
//! docs component merges them with the other services').

use shop_guest::openapi::{BodyErrors, OptionalBodies, TooManyRequests, Unauthorized};
use utoipa::OpenApi;

use super::api::{
    AccessToken, Credentials, ProfileChanges, Refresh, Registration, TokenPair, UserAccount,
};

/// The profile takes any subset of its fields, by PUT as by PATCH.
const OPTIONAL_BODIES: OptionalBodies = OptionalBodies {
    put: &["/api/accounts/profile/"],
};

/// The accounts service's part of the document.
#[derive(OpenApi)]
#[openapi(
    paths(register, login, refresh, profile, update_profile, partial_update_profile),
    components(schemas(UserAccount, TokenPair, AccessToken, Registration, Credentials, Refresh, ProfileChanges)),
    modifiers(&OPTIONAL_BODIES),
    tags((name = "accounts", description = "Users, their profiles, and the tokens that \
                                            authenticate them."))
)]
pub struct AccountsApi;

#[utoipa::path(
    post, path = "/api/accounts/register/", tag = "accounts",
    operation_id = "accounts_register", summary = "Register a user",
    request_body(content = Registration, content_type = "application/json"),
    responses(
        (status = 201, description = "The new user.", body = UserAccount),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn register() {}

#[utoipa::path(
    post, path = "/api/accounts/login/", tag = "accounts",
    operation_id = "accounts_login", summary = "Log in: get an access and a refresh token",
    description = "An unknown user and a wrong password get the same 401. After 5 failures \
                   for a username from one client address within 15 minutes, that username's \
                   attempts from that address get 429 until the window passes (from other \
                   addresses it can still log in); after 100 failures from one address for any \
                   usernames, every attempt from it does.",
    request_body(content = Credentials, content_type = "application/json"),
    responses(
        (status = 200, description = "The tokens.", body = TokenPair),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn login() {}

#[utoipa::path(
    post, path = "/api/accounts/token/refresh/", tag = "accounts",
    operation_id = "accounts_token_refresh", summary = "Trade a refresh token for an access token",
    request_body(content = Refresh, content_type = "application/json"),
    responses(
        (status = 200, description = "A new access token.", body = AccessToken),
        (status = 401, response = Unauthorized),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn refresh() {}

#[utoipa::path(
    get, path = "/api/accounts/profile/", tag = "accounts",
    operation_id = "accounts_profile", summary = "The user's own profile",
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The user.", body = UserAccount),
        (status = 401, response = Unauthorized),
    )
)]
#[allow(dead_code)]
fn profile() {}

#[utoipa::path(
    put, path = "/api/accounts/profile/", tag = "accounts",
    operation_id = "accounts_profile_update", summary = "Change the user's own profile",
    description = "Any subset of the profile's fields; the others are ignored.",
    request_body(content = ProfileChanges, content_type = "application/json"),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The user as it is now.", body = UserAccount),
        (status = 401, response = Unauthorized),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn update_profile() {}

#[utoipa::path(
    patch, path = "/api/accounts/profile/", tag = "accounts",
    operation_id = "accounts_profile_partial_update",
    summary = "Change some fields of the user's own profile",
    request_body(content = ProfileChanges, content_type = "application/json"),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The user as it is now.", body = UserAccount),
        (status = 401, response = Unauthorized),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn partial_update_profile() {}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    #[test]
    fn the_description_follows_the_api_conventions() {
        let document = super::AccountsApi::openapi();
        assert!(!document.paths.paths.is_empty());
        assert_eq!(
            shop_guest::openapi::convention_problems(&document),
            Vec::<String>::new()
        );
    }
}
