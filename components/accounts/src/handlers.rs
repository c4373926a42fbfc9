//! One function per entry point: read the request, check who may, call storage, answer.

use shop_api::accounts::api::{AccessToken, TokenPair};
use shop_guest::auth::{self, TokenType, User};
use shop_guest::error::{ApiError, FieldErrors, NON_FIELD_ERRORS};
use shop_guest::json::Fields;
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::storage::{Db, StorageError};
use shop_guest::time::Timestamp;
use spin_sdk::http::Response;

use crate::domain::{
    self, Credentials, ProfileChanges, Registration, TokenLifetimes, BAD_CREDENTIALS, EMAIL_TAKEN,
    USERNAME_TAKEN,
};
use crate::password;
use crate::storage::{self, NewUser, Taken};

/// POST /api/accounts/register/: 201 with the new user.
pub fn register(request: &ApiRequest) -> Result<Response, ApiError> {
    let registration = Registration::read(Fields::from_request(request)?)?;
    let password_hash = password::hash(registration.password.as_str())?;
    let new = NewUser {
        username: registration.username.as_str(),
        email: registration.email.as_str(),
        password_hash: &password_hash,
        profile: &registration.profile,
        is_staff: false,
    };
    let db = Db::open(crate::SERVICE)?;
    match storage::insert(&db, &new, Timestamp::now()) {
        Ok(user) => response::created(&user),
        Err(error) if error.is_unique_violation() => Err(ApiError::Validation(taken_errors(
            &db,
            &registration,
            &error,
        )?)),
        Err(error) => Err(error.into()),
    }
}

/// The 400 for a registration the unique indexes refused: every key that is taken (read
/// after the fact), or at least the one the database named.
fn taken_errors(
    db: &Db,
    registration: &Registration,
    error: &StorageError,
) -> Result<FieldErrors, ApiError> {
    let mut taken = storage::taken(
        db,
        Some(&registration.username.key()),
        Some(&registration.email.key()),
        None,
    )?;
    if taken.is_empty() {
        taken.extend(storage::taken_by(error));
    }
    let mut errors = FieldErrors::new();
    for which in taken {
        match which {
            Taken::Username => errors.add("username", USERNAME_TAKEN),
            Taken::Email => errors.add("email", EMAIL_TAKEN),
        }
    }
    if errors.is_empty() {
        errors.add(
            NON_FIELD_ERRORS,
            "The account conflicts with an existing one.",
        );
    }
    Ok(errors)
}

/// POST /api/accounts/login/: 200 with an access and a refresh token; 401 for an unknown
/// user or a wrong password alike (same message, same Argon2 cost); 429 after
/// [`domain::MAX_LOGIN_FAILURES`] failures for the username from the client's address (or
/// [`domain::MAX_ADDRESS_FAILURES`] from that address for any username) within the window.
pub fn login(request: &ApiRequest) -> Result<Response, ApiError> {
    let credentials = Credentials::read(Fields::from_request(request)?)?;
    let signing_key = auth::private_key()?;
    let lifetimes = TokenLifetimes::from_variables()?;
    let key = credentials.key();
    let client_addr = domain::client_address(request.header("spin-client-addr"));
    let db = Db::open(crate::SERVICE)?;
    let now = Timestamp::now();
    let window_start = domain::failure_window_start(now);
    // The attempt counts as a failure before the password is checked, so that concurrent
    // guesses see each other; a success takes it back below.
    if let Some(failed_at) =
        storage::claim_login_attempt(&db, &key, &client_addr, now, window_start)?
    {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: Some(domain::retry_after_secs(failed_at, now)),
        });
    }
    let account = storage::find_login(&db, &key)?;
    // Without such a user this still hashes once (against a dummy), so timing tells nothing.
    let verified = password::verify(
        &credentials.password,
        account.as_ref().map(|(_, _, hash)| hash.as_str()),
    );
    let (user, username) = match account {
        Some((user, username, _)) if verified => (user, username),
        _ => return Err(ApiError::AuthenticationFailed(BAD_CREDENTIALS.to_owned())),
    };
    storage::clear_login_failures(&db, &key, &client_addr)?;
    let issued_at = Timestamp::now();
    response::ok(&TokenPair {
        refresh: auth::issue_token(
            user,
            &username,
            TokenType::Refresh,
            issued_at,
            lifetimes.refresh_secs,
            &signing_key,
        )?,
        access: auth::issue_token(
            user,
            &username,
            TokenType::Access,
            issued_at,
            lifetimes.access_secs,
            &signing_key,
        )?,
    })
}

/// POST /api/accounts/token/refresh/: 200 with a new access token whose `is_staff` is the
/// user's current one; 401 `token_not_valid` for anything but a valid refresh token of an
/// existing user.
pub fn refresh(request: &ApiRequest) -> Result<Response, ApiError> {
    let token = domain::read_refresh_token(Fields::from_request(request)?)?;
    let signing_key = auth::private_key()?;
    let lifetimes = TokenLifetimes::from_variables()?;
    let claimed = auth::verify_token(&token, TokenType::Refresh, &auth::public_key()?)
        .map_err(|_| ApiError::TokenNotValid)?;
    let db = Db::open(crate::SERVICE)?;
    let account = storage::find(&db, claimed.id)?.ok_or(ApiError::TokenNotValid)?;
    let user = User {
        id: account.id,
        is_staff: account.is_staff,
    };
    response::ok(&AccessToken {
        access: auth::issue_token(
            user,
            &account.username,
            TokenType::Access,
            Timestamp::now(),
            lifetimes.access_secs,
            &signing_key,
        )?,
    })
}

/// The 401 when a valid token names a user that no longer exists (simplejwt's words).
fn user_not_found() -> ApiError {
    ApiError::AuthenticationFailed("User not found".to_owned())
}

/// GET /api/accounts/profile/: the caller.
pub fn profile(request: &ApiRequest) -> Result<Response, ApiError> {
    let caller = auth::require_user(request)?;
    let db = Db::open(crate::SERVICE)?;
    let account = storage::find(&db, caller.id)?.ok_or_else(user_not_found)?;
    response::ok(&account)
}

/// PUT or PATCH /api/accounts/profile/: sets any of the profile fields (both methods are
/// partial: a field left out stays as it is); other fields are ignored.
pub fn update_profile(request: &ApiRequest) -> Result<Response, ApiError> {
    let caller = auth::require_user(request)?;
    let changes = ProfileChanges::read(Fields::from_request(request)?)?;
    let db = Db::open(crate::SERVICE)?;
    match storage::update_profile(&db, caller.id, &changes) {
        Ok(Some(account)) => response::ok(&account),
        Ok(None) => Err(user_not_found()),
        Err(error) if error.is_unique_violation() => Err(ApiError::field("email", EMAIL_TAKEN)),
        Err(error) => Err(error.into()),
    }
}

/// `shop:accounts/admin.create-superuser`: makes a staff user or promotes the existing one of
/// that username (setting its email and password). Errors name the field and the rule.
pub fn create_superuser(username: &str, email: &str, password: &str) -> Result<i64, String> {
    let registration =
        Registration::for_superuser(username, email, password).map_err(|errors| {
            let described: Vec<String> = errors
                .iter()
                .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
                .collect();
            described.join("; ")
        })?;
    let password_hash =
        password::hash(registration.password.as_str()).map_err(|e| e.to_string())?;
    let new = NewUser {
        username: registration.username.as_str(),
        email: registration.email.as_str(),
        password_hash: &password_hash,
        profile: &registration.profile,
        is_staff: true,
    };
    let db = Db::open(crate::SERVICE).map_err(|e| e.to_string())?;
    storage::upsert_staff(&db, &new, Timestamp::now()).map_err(|error| {
        match storage::taken_by(&error) {
            Some(Taken::Email) => format!("email: {EMAIL_TAKEN}"),
            Some(Taken::Username) => format!("username: {USERNAME_TAKEN}"),
            None => error.to_string(),
        }
    })
}

/// `shop:accounts/profiles.shipping-address`: the address on the user's profile (empty when
/// none was given), `None` for an unknown user; Err when the database cannot answer.
pub fn shipping_address(user_id: i64) -> Result<Option<String>, String> {
    let db = Db::open(crate::SERVICE).map_err(|e| e.to_string())?;
    storage::address(&db, user_id).map_err(|e| e.to_string())
}
