//! What the accounts service reads and writes over HTTP, as types: the responses it serializes
//! and the request bodies it accepts. Its `openapi` module describes them in the OpenAPI
//! document.

use serde::Serialize;
use shop_guest::time::Timestamp;
use utoipa::ToSchema;

/// A user as the API shows it: never the password or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 3, "username": "alice", "email": "alice@example.com", "first_name": "Alice",
    "last_name": "Liddell", "phone_number": "+44 20 7946 0000", "address": "1 Rabbit Hole",
    "is_staff": false, "date_joined": "2026-11-25T13:00:00.000000Z"
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
    pub date_joined: Timestamp,
}

/// The answer to a successful login.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"refresh": "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2ln",
                          "access": "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIn0.c2ln"}))]
pub struct TokenPair {
    /// A refresh token (7 days): trade it for new access tokens.
    pub refresh: String,
    /// An access token (15 minutes): send it as `Authorization: Bearer <access>`.
    pub access: String,
}

/// The answer to a refresh.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access": "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIn0.c2ln"}))]
pub struct AccessToken {
    /// A new access token.
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
    #[schema(required = false, pattern = r"^[^\x00]*$")]
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
    #[schema(required = false, pattern = r"^[^\x00]*$")]
    pub address: String,
}
