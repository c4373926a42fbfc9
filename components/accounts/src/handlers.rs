//! One function per entry point: read the request, check who may, call storage, answer.

use shop_api::accounts::api::TokenPair;
use shop_guest::auth::{self, PrivateKey, Session, Sessions, TokenType, User};
use shop_guest::error::{ApiError, FieldErrors, NON_FIELD_ERRORS};
use shop_guest::json::Fields;
use shop_guest::paging::{Page, PageRequest};
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing;
use shop_guest::storage::{Db, StorageError};
use shop_guest::time::Timestamp;
use spin_sdk::http::Response;

use crate::domain::{
    self, Credentials, ProfileChanges, Registration, TokenLifetimes, UserFilter, UserFlags,
    BAD_CREDENTIALS, EMAIL_TAKEN, USERNAME_TAKEN,
};
use crate::password;
use crate::storage::{self, NewRefreshToken, NewUser, Spend, StaffMember, Taken};

/// Accounts confirms a token against its own database: the same question other services ask
/// it over `shop:accounts/sessions`.
struct OwnSessions<'a>(&'a Db);

impl Sessions for OwnSessions<'_> {
    fn current(&self, user_id: i64) -> Result<Option<Session>, ApiError> {
        Ok(storage::session(self.0, user_id)?)
    }
}

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
        account
            .as_ref()
            .map(|account| account.password_hash.as_str()),
    );
    // An inactive user gets the same answer as a wrong password (Django's ModelBackend), and
    // the attempt keeps counting as a failure.
    let account = match account {
        Some(account) if verified && account.is_active => account,
        _ => return Err(ApiError::AuthenticationFailed(BAD_CREDENTIALS.to_owned())),
    };
    storage::clear_login_failures(&db, &key, &client_addr)?;
    let family = auth::random_hex(16)?;
    let pair = db.transaction(|db| {
        issue_pair(
            db,
            account.user,
            &account.username,
            account.token_version,
            &family,
            &signing_key,
            lifetimes,
        )
    })?;
    response::ok(&pair)
}

/// An access and a refresh token for `user` (named `username`) under their token `version`;
/// the refresh token is kept, in `family`.
fn issue_pair(
    db: &Db,
    user: User,
    username: &str,
    version: i64,
    family: &str,
    signing_key: &PrivateKey,
    lifetimes: TokenLifetimes,
) -> Result<TokenPair, ApiError> {
    let issued_at = Timestamp::now();
    let refresh = auth::issue_token(
        user,
        username,
        version,
        TokenType::Refresh,
        issued_at,
        lifetimes.refresh_secs,
        signing_key,
    )?;
    let access = auth::issue_token(
        user,
        username,
        version,
        TokenType::Access,
        issued_at,
        lifetimes.access_secs,
        signing_key,
    )?;
    storage::insert_refresh_token(
        db,
        &NewRefreshToken {
            jti: &refresh.jti,
            user_id: user.id,
            family,
            issued_at,
            expires_at: Timestamp::from_datetime(
                chrono::DateTime::from_timestamp(refresh.expires_at, 0).unwrap_or_default(),
            ),
        },
    )?;
    Ok(TokenPair {
        refresh: refresh.token,
        access: access.token,
    })
}

/// What a refresh came to, decided in one transaction (committed whatever it is, so that a
/// reuse's revocation stays).
enum Refreshed {
    Issued(TokenPair),
    Refused,
}

/// POST /api/accounts/token/refresh/: 200 with a new access and refresh token; the one sent is
/// spent. 401 `token_not_valid` for anything but a live refresh token of an active user under
/// their current token version; a spent one sent again also revokes every refresh token of
/// its login.
pub fn refresh(request: &ApiRequest) -> Result<Response, ApiError> {
    let token = domain::read_refresh_token(Fields::from_request(request)?)?;
    let signing_key = auth::private_key()?;
    let lifetimes = TokenLifetimes::from_variables()?;
    let claimed = auth::verify(&token, TokenType::Refresh, &auth::public_key()?)
        .map_err(|_| ApiError::TokenNotValid)?;
    let db = Db::open(crate::SERVICE)?;
    let refreshed = db.transaction(|db| {
        let family = match storage::spend_refresh_token(db, &claimed.jti, Timestamp::now())? {
            Spend::Spent { user_id, family } if user_id == claimed.user.id => family,
            Spend::Spent { .. } | Spend::Reused | Spend::Refused => {
                return Ok::<_, ApiError>(Refreshed::Refused)
            }
        };
        let Some(session) = storage::session(db, claimed.user.id)? else {
            return Ok(Refreshed::Refused);
        };
        if !session.is_active || session.token_version != claimed.version {
            return Ok(Refreshed::Refused);
        }
        let user = User {
            id: claimed.user.id,
            is_staff: session.is_staff,
        };
        let pair = issue_pair(
            db,
            user,
            &session.username,
            session.token_version,
            &family,
            &signing_key,
            lifetimes,
        )?;
        Ok(Refreshed::Issued(pair))
    })?;
    match refreshed {
        Refreshed::Issued(pair) => response::ok(&pair),
        Refreshed::Refused => Err(ApiError::TokenNotValid),
    }
}

/// POST /api/accounts/logout/: 204; every refresh token of the caller is revoked (access
/// tokens run out within their 15 minutes).
pub fn logout(request: &ApiRequest) -> Result<Response, ApiError> {
    let db = Db::open(crate::SERVICE)?;
    let caller = auth::require_user(request, &OwnSessions(&db))?;
    domain::read_logout(Fields::from_request(request)?)?;
    storage::revoke_refresh_tokens(&db, caller.id)?;
    Ok(response::no_content())
}

/// The 401 when a valid token names a user that no longer exists (simplejwt's words).
fn user_not_found() -> ApiError {
    ApiError::AuthenticationFailed("User not found".to_owned())
}

/// GET /api/accounts/profile/: the caller.
pub fn profile(request: &ApiRequest) -> Result<Response, ApiError> {
    let db = Db::open(crate::SERVICE)?;
    let caller = auth::require_user(request, &OwnSessions(&db))?;
    let account = storage::find(&db, caller.id)?.ok_or_else(user_not_found)?;
    response::ok(&account)
}

/// PUT or PATCH /api/accounts/profile/: sets any of the profile fields (both methods are
/// partial: a field left out stays as it is); other fields are ignored.
pub fn update_profile(request: &ApiRequest) -> Result<Response, ApiError> {
    let db = Db::open(crate::SERVICE)?;
    let caller = auth::require_user(request, &OwnSessions(&db))?;
    let changes = ProfileChanges::read(Fields::from_request(request)?)?;
    match storage::update_profile(&db, caller.id, &changes) {
        Ok(Some(account)) => response::ok(&account),
        Ok(None) => Err(user_not_found()),
        Err(error) if error.is_unique_violation() => Err(ApiError::field("email", EMAIL_TAKEN)),
        Err(error) => Err(error.into()),
    }
}

/// GET /api/accounts/users/ (staff): a page of users by id, filtered by `search`, `is_staff`
/// and `is_active`.
pub fn list_users(request: &ApiRequest) -> Result<Response, ApiError> {
    let db = Db::open(crate::SERVICE)?;
    auth::require_staff(request, &OwnSessions(&db))?;
    let query = request.query();
    let filter = UserFilter::from_query(&query)?;
    let pages = PageRequest::from_query(&query)?;
    let count = storage::count_users(&db, &filter)?;
    let window = pages.window_for(count)?;
    let users = storage::list_users(&db, &filter, window)?;
    response::ok(&Page::new(request, window, count, users)?)
}

/// GET /api/accounts/users/{id}/ (staff).
pub fn retrieve_user(request: &ApiRequest, id: &str) -> Result<Response, ApiError> {
    let db = Db::open(crate::SERVICE)?;
    auth::require_staff(request, &OwnSessions(&db))?;
    let id = routing::id(id)?;
    let account = storage::find(&db, id)?.ok_or_else(ApiError::not_found)?;
    response::ok(&account)
}

/// PATCH /api/accounts/users/{id}/ (staff): sets `is_staff` and `is_active`, recording the
/// change in the history in the same transaction; 409 when staff would remove their own staff
/// flag or deactivate themselves.
pub fn update_user(request: &ApiRequest, id: &str) -> Result<Response, ApiError> {
    let db = Db::open(crate::SERVICE)?;
    let staff = auth::require_staff_caller(request, &OwnSessions(&db))?;
    let id = routing::id(id)?;
    let flags = match Fields::from_request(request).and_then(UserFlags::read) {
        Ok(flags) => flags,
        // As DRF does, a missing user is a 404 whatever the body holds.
        Err(error) if storage::find(&db, id)?.is_some() => return Err(error),
        Err(_) => return Err(ApiError::not_found()),
    };
    flags.check_own(staff.user.id, id)?;
    let staff_username = staff.username.unwrap_or_default();
    let member = StaffMember {
        id: staff.user.id,
        username: &staff_username,
    };
    let account = storage::change_flags(&db, id, flags, member, Timestamp::now())?
        .ok_or_else(ApiError::not_found)?;
    response::ok(&account)
}

/// GET /api/accounts/history/ (staff): the changes staff made to users, newest first.
pub fn history(request: &ApiRequest) -> Result<Response, ApiError> {
    let db = Db::open(crate::SERVICE)?;
    auth::require_staff(request, &OwnSessions(&db))?;
    let query = request.query();
    let object_id = domain::history_object(&query)?;
    let pages = PageRequest::from_query(&query)?;
    let count = storage::count_history(&db, object_id)?;
    let window = pages.window_for(count)?;
    let entries = storage::list_history(&db, object_id, window)?;
    response::ok(&Page::new(request, window, count, entries)?)
}

/// `shop:accounts/sessions.current`: the user's token version and flags; `None` for an unknown
/// user; Err when the database cannot answer.
pub fn session(user_id: i64) -> Result<Option<Session>, String> {
    let db = Db::open(crate::SERVICE).map_err(|e| e.to_string())?;
    storage::session(&db, user_id).map_err(|e| e.to_string())
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
