//! Who is calling: HS256 access and refresh tokens (as djangorestframework-simplejwt issues
//! them), issued and verified with the component's `jwt_secret` variable.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::request::ApiRequest;
use crate::time::Timestamp;

/// The component variable that holds the HS256 key.
pub const SECRET_VARIABLE: &str = "jwt_secret";

/// An authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    /// The user's id (the token's `sub`).
    pub id: i64,
    /// Whether the user is an admin (`is_staff`).
    pub is_staff: bool,
}

/// What a token may be used for: an access token authenticates requests, a refresh token
/// only buys new access tokens. Neither is ever accepted as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// Short-lived; sent as `Authorization: Bearer`.
    Access,
    /// Long-lived; sent only to the token refresh endpoint.
    Refresh,
}

impl TokenType {
    /// The `token_type` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Refresh => "refresh",
        }
    }
}

/// The claims of the tokens the shop issues (simplejwt's, plus `is_staff`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string.
    pub sub: String,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: i64,
    /// Issue time, in seconds since the Unix epoch.
    #[serde(default)]
    pub iat: i64,
    /// A random id unique to this token.
    #[serde(default)]
    pub jti: String,
    /// `access` or `refresh`.
    pub token_type: String,
    /// Whether the user was staff when the token was issued.
    #[serde(default)]
    pub is_staff: bool,
}

/// Signs a token of `token_type` for `user`, issued at `now` and valid for `lifetime_secs`.
pub fn issue_token(
    user: User,
    token_type: TokenType,
    now: Timestamp,
    lifetime_secs: i64,
    secret: &[u8],
) -> Result<String, ApiError> {
    let iat = now.as_datetime().timestamp();
    let claims = Claims {
        sub: user.id.to_string(),
        exp: iat.saturating_add(lifetime_secs),
        iat,
        jti: random_hex(16)?,
        token_type: token_type.as_str().to_owned(),
        is_staff: user.is_staff,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| ApiError::Internal(format!("signing a token: {e}")))
}

/// `bytes` random bytes from the OS RNG, as lower-case hex (token ids, like simplejwt's
/// `uuid4().hex`).
pub fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer)
        .map_err(|e| ApiError::Internal(format!("the OS random number generator failed: {e}")))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

/// The caller, if the request carries credentials: `Ok(None)` without an `Authorization:
/// Bearer` header, a 401 when the token is not a valid access token.
pub fn authenticate(request: &ApiRequest) -> Result<Option<User>, ApiError> {
    let Some(token) = bearer_token(request)? else {
        return Ok(None);
    };
    let secret = secret()?;
    verify_access_token(token, secret.as_bytes()).map(Some)
}

/// The caller, or a 401 if there is none.
pub fn require_user(request: &ApiRequest) -> Result<User, ApiError> {
    authenticate(request)?.ok_or(ApiError::NotAuthenticated)
}

/// The caller if staff: 401 without (valid) credentials, 403 for other users.
pub fn require_staff(request: &ApiRequest) -> Result<User, ApiError> {
    let user = require_user(request)?;
    if user.is_staff {
        Ok(user)
    } else {
        Err(ApiError::PermissionDenied)
    }
}

/// Verifies an HS256 access token and reads its user; any other algorithm, a bad signature,
/// an expired token, a refresh token or a malformed one is a 401.
pub fn verify_access_token(token: &str, secret: &[u8]) -> Result<User, ApiError> {
    verify_token(token, TokenType::Access, secret)
}

/// Verifies an HS256 token of `token_type` and reads its user; any other algorithm, a bad
/// signature, an expired token, a token of the other type or a malformed one is
/// [`ApiError::InvalidToken`].
pub fn verify_token(token: &str, token_type: TokenType, secret: &[u8]) -> Result<User, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
            .map_err(|_| ApiError::InvalidToken)?;
    let claims = data.claims;
    if claims.token_type != token_type.as_str() {
        return Err(ApiError::InvalidToken);
    }
    let id = claims
        .sub
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(ApiError::InvalidToken)?;
    Ok(User {
        id,
        is_staff: claims.is_staff,
    })
}

/// The token of an `Authorization: Bearer <token>` header, as simplejwt reads it: another
/// scheme means "no credentials"; `Bearer` with other than one value is a 401.
fn bearer_token(request: &ApiRequest) -> Result<Option<&str>, ApiError> {
    let Some(header) = request.header("authorization") else {
        return Ok(None);
    };
    let mut parts = header.split_whitespace();
    if parts.next() != Some("Bearer") {
        return Ok(None);
    }
    match (parts.next(), parts.next()) {
        (Some(token), None) => Ok(Some(token)),
        _ => Err(ApiError::AuthenticationFailed(
            "Authorization header must contain two space-delimited values".to_owned(),
        )),
    }
}

/// The HS256 key from the component's variables; an empty key is refused (a 500: the
/// deployment is misconfigured), since anyone could sign tokens with it.
pub fn secret() -> Result<String, ApiError> {
    let secret = spin_sdk::variables::get(SECRET_VARIABLE).map_err(|e| {
        ApiError::Internal(format!("reading the `{SECRET_VARIABLE}` variable: {e}"))
    })?;
    if secret.is_empty() {
        return Err(ApiError::Internal(format!(
            "the `{SECRET_VARIABLE}` variable is empty"
        )));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"test-secret";

    fn now() -> i64 {
        i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
    }

    fn token(claims: serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn claims(token_type: &str, exp_offset: i64, is_staff: bool) -> serde_json::Value {
        json!({
            "sub": "42",
            "exp": now() + exp_offset,
            "iat": now(),
            "jti": "abc",
            "token_type": token_type,
            "is_staff": is_staff,
        })
    }

    fn verify(token: &str) -> Result<User, ApiError> {
        verify_access_token(token, SECRET)
    }

    #[test]
    fn accepts_a_valid_access_token() {
        let user = verify(&token(claims("access", 300, true), SECRET)).unwrap();
        assert_eq!(
            user,
            User {
                id: 42,
                is_staff: true
            }
        );
        let mut without_staff = claims("access", 300, false);
        without_staff.as_object_mut().unwrap().remove("is_staff");
        assert!(!verify(&token(without_staff, SECRET)).unwrap().is_staff);
    }

    #[test]
    fn rejects_a_forged_key() {
        let error = verify(&token(claims("access", 300, true), b"another-secret")).unwrap_err();
        assert!(matches!(error, ApiError::InvalidToken));
    }

    #[test]
    fn rejects_an_expired_token() {
        assert!(matches!(
            verify(&token(claims("access", -1, true), SECRET)),
            Err(ApiError::InvalidToken)
        ));
    }

    #[test]
    fn rejects_a_refresh_token() {
        assert!(matches!(
            verify(&token(claims("refresh", 300, true), SECRET)),
            Err(ApiError::InvalidToken)
        ));
    }

    #[test]
    fn rejects_other_algorithms_and_none() {
        let body = base64_url(&claims("access", 300, true).to_string());
        let none = format!("{}.{body}.", base64_url(r#"{"alg":"none","typ":"JWT"}"#));
        assert!(matches!(verify(&none), Err(ApiError::InvalidToken)));
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims("access", 300, true),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(matches!(verify(&hs512), Err(ApiError::InvalidToken)));
    }

    #[test]
    fn rejects_garbage_and_bad_subjects() {
        for garbage in ["", "abc", "a.b.c", "....", "\u{0}", "eyJ.eyJ.sig"] {
            assert!(
                matches!(verify(garbage), Err(ApiError::InvalidToken)),
                "{garbage:?}"
            );
        }
        let mut claims = claims("access", 300, true);
        claims["sub"] = json!("not-a-number");
        assert!(matches!(
            verify(&token(claims.clone(), SECRET)),
            Err(ApiError::InvalidToken)
        ));
        claims["sub"] = json!(42);
        assert!(matches!(
            verify(&token(claims, SECRET)),
            Err(ApiError::InvalidToken)
        ));
    }

    #[test]
    fn issued_tokens_verify_only_as_their_own_type() {
        let user = User {
            id: 7,
            is_staff: true,
        };
        let now = Timestamp::now();
        let access = issue_token(user, TokenType::Access, now, 900, SECRET).unwrap();
        let refresh = issue_token(user, TokenType::Refresh, now, 86_400, SECRET).unwrap();
        assert_eq!(verify(&access).unwrap(), user);
        assert_eq!(
            verify_token(&refresh, TokenType::Refresh, SECRET).unwrap(),
            user
        );
        assert!(matches!(verify(&refresh), Err(ApiError::InvalidToken)));
        assert!(matches!(
            verify_token(&access, TokenType::Refresh, SECRET),
            Err(ApiError::InvalidToken)
        ));
        assert!(matches!(
            verify_token(&refresh, TokenType::Refresh, b"another-secret"),
            Err(ApiError::InvalidToken)
        ));
        let expired = issue_token(user, TokenType::Refresh, now, -1, SECRET).unwrap();
        assert!(matches!(
            verify_token(&expired, TokenType::Refresh, SECRET),
            Err(ApiError::InvalidToken)
        ));
    }

    #[test]
    fn issued_claims_are_simplejwts() {
        let user = User {
            id: 42,
            is_staff: false,
        };
        let now = Timestamp::now();
        let token = issue_token(user, TokenType::Access, now, 900, SECRET).unwrap();
        let other = issue_token(user, TokenType::Access, now, 900, SECRET).unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        let read = |token: &str| {
            jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(SECRET), &validation)
                .unwrap()
                .claims
        };
        let claims = read(&token);
        assert_eq!(claims.sub, "42");
        assert_eq!(claims.token_type, "access");
        assert!(!claims.is_staff);
        assert_eq!(claims.iat, now.as_datetime().timestamp());
        assert_eq!(claims.exp, claims.iat + 900);
        assert_eq!(claims.jti.len(), 32);
        assert_ne!(claims.jti, read(&other).jti, "every token has its own jti");
    }

    #[test]
    fn reads_the_bearer_header() {
        let request =
            |value: &str| ApiRequest::new("GET", "/", &[("Authorization", value)], Vec::new());
        assert_eq!(bearer_token(&request("Bearer abc")).unwrap(), Some("abc"));
        assert_eq!(bearer_token(&request("Basic abc")).unwrap(), None);
        assert_eq!(bearer_token(&request("")).unwrap(), None);
        assert!(bearer_token(&request("Bearer")).is_err());
        assert!(bearer_token(&request("Bearer a b")).is_err());
        let anonymous = ApiRequest::new("GET", "/", &[], Vec::new());
        assert!(matches!(
            require_user(&anonymous),
            Err(ApiError::NotAuthenticated)
        ));
    }

    /// Unpadded base64url, enough to hand-craft a token.
    fn base64_url(text: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = text.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }
}
