//! The accounts service's operations in the OpenAPI document, over its `api` types (the
//! docs component merges them with the other services').

use shop_guest::openapi::{
    BadRequest, BodyErrors, Conflict, Forbidden, NotFound, OptionalBodies, PageQuery,
    ServiceUnavailable, TooManyRequests, Unauthorized,
};
use shop_guest::paging::Page;
use utoipa::OpenApi;

use super::api::{
    Credentials, Logout, ProfileChanges, Refresh, Registration, TokenPair, UserAccount, UserFlags,
    UserHistoryEntry,
};

/// The profile takes any subset of its fields, by PUT as by PATCH.
const OPTIONAL_BODIES: OptionalBodies = OptionalBodies {
    put: &["/api/accounts/profile/"],
};

/// The logout's body is optional: its token is not needed (utoipa marks every body required).
struct OptionalLogoutBody;

impl utoipa::Modify for OptionalLogoutBody {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let body = openapi
            .paths
            .paths
            .get_mut("/api/accounts/logout/")
            .and_then(|item| item.post.as_mut())
            .and_then(|operation| operation.request_body.as_mut());
        if let Some(utoipa::openapi::RefOr::T(body)) = body {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

/// The accounts service's part of the document.
#[derive(OpenApi)]
#[openapi(
    paths(
        register, login, refresh, logout, profile, update_profile, partial_update_profile,
        list_users, retrieve_user, update_user, history
    ),
    components(schemas(
        UserAccount, TokenPair, Registration, Credentials, Refresh, Logout, ProfileChanges,
        UserFlags, UserHistoryEntry
    )),
    modifiers(&OPTIONAL_BODIES, &OptionalLogoutBody),
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
    operation_id = "accounts_token_refresh",
    summary = "Trade a refresh token for a new access and refresh token",
    description = "The refresh token sent is spent: keep the new one. A token that is expired, \
                   revoked, spent, of an inactive user, or issued before the user's password \
                   changed or they lost staff is a 401; a spent one sent again also revokes \
                   every refresh token of its login (someone else may hold a copy).",
    request_body(content = Refresh, content_type = "application/json"),
    responses(
        (status = 200, description = "A new access token and the next refresh token.", body = TokenPair),
        (status = 401, response = Unauthorized),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn refresh() {}

#[utoipa::path(
    post, path = "/api/accounts/logout/", tag = "accounts",
    operation_id = "accounts_logout", summary = "Log out everywhere",
    description = "Revokes every refresh token of the caller (all their logins); access \
                   tokens already issued run out within their lifetime.",
    request_body(content = Logout, content_type = "application/json"),
    security(("jwtAuth" = [])),
    responses(
        (status = 204, description = "Logged out."),
        (status = 401, response = Unauthorized),
        (status = 503, response = ServiceUnavailable),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn logout() {}

/// The users list's filters.
#[allow(dead_code)] // only its parameters are read
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Words to find, case-insensitively, in the username, email, first or last name (all
    /// must match): commas and whitespace separate them. At most 200 characters and 10 terms.
    #[param(
        required = false,
        max_length = 200,
        pattern = r"^[,\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*(?:[^,\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+[,\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+){0,9}(?:[^,\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+[,\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*)?$"
    )]
    pub search: String,
    /// `true` for staff only, `false` for everyone else.
    #[param(required = false)]
    pub is_staff: bool,
    /// `true` for active users only, `false` for deactivated ones.
    #[param(required = false)]
    pub is_active: bool,
}

/// The history list's filter.
#[allow(dead_code)] // only its parameters are read
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only the entries of this user.
    #[param(required = false, minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub object_id: i64,
}

#[utoipa::path(
    get, path = "/api/accounts/users/", tag = "accounts",
    operation_id = "accounts_users_list", summary = "List users (staff only)",
    description = "**Staff only.** A page of users by id, filtered.",
    params(PageQuery, UserQuery),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "A page of users.", body = Page<UserAccount>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
#[allow(dead_code)]
fn list_users() {}

#[utoipa::path(
    get, path = "/api/accounts/users/{id}/", tag = "accounts",
    operation_id = "accounts_users_retrieve", summary = "Get a user (staff only)",
    description = "**Staff only.**",
    params(("id" = i64, Path, minimum = 1, description = "The user's id.")),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The user.", body = UserAccount),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
#[allow(dead_code)]
fn retrieve_user() {}

#[utoipa::path(
    patch, path = "/api/accounts/users/{id}/", tag = "accounts",
    operation_id = "accounts_users_partial_update",
    summary = "Make a user staff, or not; deactivate or reactivate them (staff only)",
    description = "**Staff only.** Taking staff away or deactivating a user cuts off every \
                   token issued to them before; a deactivated user can no longer log in or \
                   refresh. The change is recorded in the history. Staff cannot take their own \
                   staff flag or deactivate themselves (409).",
    params(("id" = i64, Path, minimum = 1, description = "The user's id.")),
    request_body(content = UserFlags, content_type = "application/json"),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The user as it is now.", body = UserAccount),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn update_user() {}

#[utoipa::path(
    get, path = "/api/accounts/history/", tag = "accounts",
    operation_id = "accounts_history", summary = "The changes staff made to users (staff only)",
    description = "**Staff only.** Newest first.",
    params(PageQuery, HistoryQuery),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "A page of history entries.", body = Page<UserHistoryEntry>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
#[allow(dead_code)]
fn history() {}

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
    fn the_logout_body_is_optional() {
        use utoipa::openapi::{RefOr, Required};
        let document = super::AccountsApi::openapi();
        let required = |path: &str| {
            let body = document.paths.paths[path]
                .post
                .as_ref()
                .unwrap()
                .request_body
                .as_ref();
            match body {
                Some(RefOr::T(body)) => body.required.clone(),
                _ => None,
            }
        };
        assert!(matches!(
            required("/api/accounts/logout/"),
            Some(Required::False)
        ));
        assert!(!matches!(
            required("/api/accounts/login/"),
            Some(Required::False)
        ));
    }

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
