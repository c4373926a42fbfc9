//! What the accounts service reads and writes over HTTP, as types: the responses it serializes
//! and the request bodies it accepts. Its `openapi` module describes them in the OpenAPI
//! document.

use std::collections::BTreeMap;

use serde::Serialize;
use shop_guest::time::Timestamp;
use utoipa::ToSchema;

/// A user as the API shows it: never the password or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 3, "username": "alice", "email": "alice@example.com", "first_name": "Alice",
    "last_name": "Liddell", "phone_number": "+44 20 7946 0000", "address": "1 Rabbit Hole",
    "is_staff": false, "is_active": true, "date_joined": "2026-11-25T13:00:00.000000Z"
}))]
pub struct UserAccount {
    #[schema(minimum = 1)]
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub phone_number: String,
    pub address: String,
    /// Staff users may manage the catalogue and every order.
    pub is_staff: bool,
    /// An inactive user cannot log in, refresh or use a token issued before.
    pub is_active: bool,
    pub date_joined: Timestamp,
}

/// The answer to a successful login, and to a refresh (which spends the refresh token sent
/// and answers a new one).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"refresh": "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2ln",
                          "access": "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIn0.c2ln"}))]
pub struct TokenPair {
    /// A refresh token (7 days): trade it for new access tokens.
    pub refresh: String,
    /// An access token (15 minutes): send it as `Authorization: Bearer <access>`.
    pub access: String,
}

/// The body of `POST /api/accounts/register/`. Usernames and emails are unique
/// (case-insensitively); a taken one is a 400 on its field.
#[derive(ToSchema)]
#[schema(example = json!({"username": "alice", "email": "alice@example.com",
                          "password": "correct horse battery"}))]
pub struct Registration {
    /// 1-150 letters, digits and `@.+-_` (surrounding spaces are trimmed).
    #[schema(
        max_length = 170,
        pattern = r"^[^\S\x1c-\x1f]*[\w.@+\-]{1,150}[^\S\x1c-\x1f]*$"
    )]
    pub username: String,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// At least 8 characters, not all digits, not the username.
    #[schema(
        min_length = 8,
        max_length = 4096,
        pattern = r"^[^\x00]*[^0-9\x00][^\x00]*$"
    )]
    pub password: String,
    #[schema(required = false, max_length = 150, pattern = r"^[^\x00]*$")]
    pub first_name: String,
    #[schema(required = false, max_length = 150, pattern = r"^[^\x00]*$")]
    pub last_name: String,
    #[schema(required = false, max_length = 20, pattern = r"^[^\x00]*$")]
    pub phone_number: String,
    #[schema(required = false, max_length = 1000, pattern = r"^[^\x00]*$")]
    pub address: String,
}

/// The body of `POST /api/accounts/login/`.
#[derive(ToSchema)]
#[schema(example = json!({"username": "alice", "password": "correct horse battery"}))]
pub struct Credentials {
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")]
    pub username: String,
    #[schema(min_length = 1, pattern = r"^[^\x00]*$")]
    pub password: String,
}

/// The body of `POST /api/accounts/token/refresh/`.
#[derive(ToSchema)]
#[schema(example = json!({"refresh": "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2ln"}))]
pub struct Refresh {
    /// The refresh token from the login.
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")]
    pub refresh: String,
}

/// The body of `POST /api/accounts/logout/`: optional, and so is its token (every refresh
/// token of the caller is revoked).
#[derive(ToSchema)]
#[schema(example = json!({"refresh": "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2ln"}))]
pub struct Logout {
    /// The refresh token of this login (accepted, not needed).
    #[schema(required = false, pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")]
    pub refresh: String,
}

/// The body of `PATCH /api/accounts/users/{id}/` (staff): either flag, or both; other fields
/// are ignored.
#[derive(ToSchema)]
#[schema(example = json!({"is_staff": true}))]
pub struct UserFlags {
    /// Make the user staff, or take it away (not from yourself).
    #[schema(required = false)]
    pub is_staff: bool,
    /// Deactivate the user (not yourself) or reactivate them.
    #[schema(required = false)]
    pub is_active: bool,
}

/// A change staff made to a user, as the history lists it (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 12, "object_id": 3, "action": "update", "changes": {"is_staff": [false, true]},
    "staff_id": 1, "staff_username": "admin", "at": "2026-12-06T09:00:00.000000Z"
}))]
pub struct UserHistoryEntry {
    #[schema(minimum = 1)]
    pub id: i64,
    /// The user changed.
    #[schema(minimum = 1)]
    pub object_id: i64,
    /// `update` for a change of flags.
    pub action: String,
    /// Each field that changed: `[before, after]`.
    #[schema(value_type = BTreeMap<String, Vec<bool>>)]
    pub changes: BTreeMap<String, [bool; 2]>,
    /// Who made the change.
    pub staff_id: i64,
    pub staff_username: String,
    pub at: Timestamp,
}

/// The body of `PUT`/`PATCH /api/accounts/profile/`: any subset of these fields; others
/// (`username`, `is_staff`, `password`) are ignored.
#[derive(ToSchema)]
#[schema(example = json!({"address": "1 Rabbit Hole", "phone_number": "+44 20 7946 0000"}))]
pub struct ProfileChanges {
    #[schema(required = false, format = Email, max_length = 254)]
    pub email: String,
    #[schema(required = false, max_length = 150, pattern = r"^[^\x00]*$")]
    pub first_name: String,
    #[schema(required = false, max_length = 150, pattern = r"^[^\x00]*$")]
    pub last_name: String,
    #[schema(required = false, max_length = 20, pattern = r"^[^\x00]*$")]
    pub phone_number: String,
    /// The default shipping address of new orders.
    #[schema(required = false, max_length = 1000, pattern = r"^[^\x00]*$")]
    pub address: String,
}
