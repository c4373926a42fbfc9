//! Who is calling: EdDSA (Ed25519) access and refresh tokens with djangorestframework-simplejwt's
//! claims. Only the accounts service holds the private key (`jwt_private_key`) and issues
//! tokens; every service verifies them with the public key (`jwt_public_key`), so a service
//! that can read its own variables still cannot mint a token.
//!
//! A signature says who a token was issued to, not whether it still stands: each token carries
//! the user's token version (`ver`), which accounts bumps when the password changes, the user
//! is deactivated or loses staff. So a service confirms a verified token with accounts
//! ([`Sessions`], `shop:accounts/sessions`): one call per authenticated request, never for an
//! anonymous one.

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::jwt;
use crate::request::ApiRequest;
use crate::time::Timestamp;

/// The component variable that holds the Ed25519 private key (PKCS#8 PEM); accounts only.
pub const PRIVATE_KEY_VARIABLE: &str = "jwt_private_key";

/// The component variable that holds the Ed25519 public key (SPKI PEM); every service.
pub const PUBLIC_KEY_VARIABLE: &str = "jwt_public_key";

/// The Ed25519 key that signs tokens; it can only hold a key that signs.
pub struct PrivateKey(SigningKey);

impl PrivateKey {
    /// Reads an Ed25519 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`); the error
    /// says why the text is not one.
    pub fn parse(pem: &str) -> Result<Self, String> {
        SigningKey::from_pkcs8_pem(pem.trim())
            .map(Self)
            .map_err(|e| e.to_string())
    }
}

/// The Ed25519 key that verifies tokens; it can only hold a valid public key.
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Reads an Ed25519 public key in SPKI PEM (`-----BEGIN PUBLIC KEY-----`); the error says
    /// why the text is not one (a key of other than 32 bytes, or not a point of the curve).
    pub fn parse(pem: &str) -> Result<Self, String> {
        VerifyingKey::from_public_key_pem(pem.trim())
            .map(Self)
            .map_err(|e| e.to_string())
    }
}

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

/// The claims of the tokens the shop issues (simplejwt's, plus `is_staff` and `ver`).
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
    /// The user's username, for records of who did what (the services' histories); the
    /// user's rights never depend on it. Tokens issued before it existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user's token version when the token was issued (0 for tokens from before versions).
    #[serde(default)]
    pub ver: i64,
}

/// A token just signed, with what accounts keeps of a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp`, in seconds since the Unix epoch.
    pub expires_at: i64,
}

/// What a verified token says: its user, the token version it was issued under, its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user and their staff flag when the token was issued.
    pub user: User,
    /// The `ver` claim.
    pub version: i64,
    /// The `jti` claim.
    pub jti: String,
}

/// What accounts knows of a user now (`shop:accounts/sessions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The version tokens must carry to be accepted.
    pub token_version: i64,
    /// Whether the user is staff now.
    pub is_staff: bool,
    /// Whether the user may use the shop at all.
    pub is_active: bool,
    /// The user's name, for the records staff changes leave.
    pub username: String,
}

/// How a service asks accounts whether a user's tokens still stand.
pub trait Sessions {
    /// The user's session; `None` when accounts has no user of that id. Err: accounts cannot
    /// answer now (a 503).
    fn current(&self, user_id: i64) -> Result<Option<Session>, ApiError>;
}

/// Declares `pub struct $name`, a [`Sessions`] that asks accounts over a component's own
/// bindings of `shop:accounts/sessions` (`$current`: the generated `current` function; its
/// record has the fields of [`Session`]). Each component generates its own bindings, so the
/// mapping is written here once and expanded in each.
#[macro_export]
macro_rules! accounts_sessions {
    ($name:ident, $current:path) => {
        /// The accounts service, asked once per authenticated request whether the caller's
        /// token still stands (`shop:accounts/sessions`).
        pub struct $name;

        impl $crate::auth::Sessions for $name {
            fn current(
                &self,
                user_id: i64,
            ) -> Result<Option<$crate::auth::Session>, $crate::error::ApiError> {
                let session = $current(user_id)
                    .map_err(|reason| $crate::error::ApiError::upstream("accounts", &reason))?;
                Ok(session.map(|session| $crate::auth::Session {
                    token_version: session.token_version,
                    is_staff: session.is_staff,
                    is_active: session.is_active,
                    username: session.username,
                }))
            }
        }
    };
}

/// The caller of a request, their token confirmed with accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who, and whether staff.
    pub user: User,
    /// Their username, when accounts knows them.
    pub username: Option<String>,
}

/// Signs a token of `token_type` for `user` (whose username is `username`) under their token
/// `version`, issued at `now` and valid for `lifetime_secs`.
pub fn issue_token(
    user: User,
    username: &str,
    version: i64,
    token_type: TokenType,
    now: Timestamp,
    lifetime_secs: i64,
    key: &PrivateKey,
) -> Result<IssuedToken, ApiError> {
    let iat = now.as_datetime().timestamp();
    let claims = Claims {
        sub: user.id.to_string(),
        exp: iat.saturating_add(lifetime_secs),
        iat,
        jti: random_hex(16)?,
        token_type: token_type.as_str().to_owned(),
        is_staff: user.is_staff,
        username: Some(username.to_owned()),
        ver: version,
    };
    let token = jwt::encode(&claims, &key.0)
        .map_err(|e| ApiError::Internal(format!("signing a token: {e}")))?;
    Ok(IssuedToken {
        token,
        jti: claims.jti,
        expires_at: claims.exp,
    })
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
/// Bearer` header (no call to accounts), a 401 when the token is not a valid access token or
/// no longer stands ([`confirm`]), a 503 when accounts cannot say.
pub fn authenticate(
    request: &ApiRequest,
    sessions: &dyn Sessions,
) -> Result<Option<Caller>, ApiError> {
    let Some(token) = bearer_token(request)? else {
        return Ok(None);
    };
    let verified = verify(token, TokenType::Access, &public_key()?)?;
    let session = sessions.current(verified.user.id)?;
    confirm(&verified, session.as_ref())?;
    Ok(Some(Caller {
        user: verified.user,
        username: session.map(|session| session.username),
    }))
}

/// The caller, or a 401 if there is none.
pub fn require_user(request: &ApiRequest, sessions: &dyn Sessions) -> Result<User, ApiError> {
    require_caller(request, sessions).map(|caller| caller.user)
}

/// The caller with their username, or a 401 if there is none.
pub fn require_caller(request: &ApiRequest, sessions: &dyn Sessions) -> Result<Caller, ApiError> {
    authenticate(request, sessions)?.ok_or(ApiError::NotAuthenticated)
}

/// The caller if staff: 401 without (valid) credentials, 403 for other users.
pub fn require_staff(request: &ApiRequest, sessions: &dyn Sessions) -> Result<User, ApiError> {
    require_staff_caller(request, sessions).map(|caller| caller.user)
}

/// The caller with their username if staff: 401 without (valid) credentials, 403 for others.
pub fn require_staff_caller(
    request: &ApiRequest,
    sessions: &dyn Sessions,
) -> Result<Caller, ApiError> {
    let caller = require_caller(request, sessions)?;
    if caller.user.is_staff {
        Ok(caller)
    } else {
        Err(ApiError::PermissionDenied)
    }
}

/// Whether a verified token still stands against its user's session now: refused (401) when
/// the user is inactive or the token's version is not the user's current one. The token's
/// `is_staff` can then be trusted: a loss of staff bumps the version, so a token that says
/// staff under the current version was issued to a user who is staff still. A user accounts
/// does not know is not refused here: accounts never deletes users, so such a token was never
/// issued by it for this database, and only a holder of the signing key (who could sign for
/// any user) could have made one; accounts' own endpoints answer it "User not found".
pub fn confirm(token: &VerifiedToken, session: Option<&Session>) -> Result<(), ApiError> {
    match session {
        Some(session) if !session.is_active => Err(ApiError::AuthenticationFailed(
            "User is inactive".to_owned(),
        )),
        Some(session) if session.token_version != token.version => Err(ApiError::InvalidToken),
        _ => Ok(()),
    }
}

/// Verifies an EdDSA access token and reads its user; any other algorithm, a bad signature,
/// an expired token, a refresh token or a malformed one is a 401.
pub fn verify_access_token(token: &str, key: &PublicKey) -> Result<User, ApiError> {
    verify_token(token, TokenType::Access, key)
}

/// Verifies an EdDSA token of `token_type` and reads its user; any other algorithm (HS256
/// included, whatever its key), a bad signature, an expired token, a token of the other type
/// or a malformed one is [`ApiError::InvalidToken`].
pub fn verify_token(token: &str, token_type: TokenType, key: &PublicKey) -> Result<User, ApiError> {
    verify(token, token_type, key).map(|verified| verified.user)
}

/// [`verify_token`], answering every claim the shop reads.
pub fn verify(
    token: &str,
    token_type: TokenType,
    key: &PublicKey,
) -> Result<VerifiedToken, ApiError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let claims: Claims = jwt::decode(token, &key.0, now).map_err(|_| ApiError::InvalidToken)?;
    user_of(claims, token_type)
}

/// The `username` claim of the request's access token, if it carries a valid one that has it:
/// whom a record of a change names. A caller's rights never come from here (they come from
/// [`require_staff`] and the like), so a token without the claim only goes unnamed.
pub fn username(request: &ApiRequest) -> Option<String> {
    let token = bearer_token(request).ok()??;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let claims: Claims = jwt::decode(token, &public_key().ok()?.0, now).ok()?;
    (claims.token_type == TokenType::Access.as_str())
        .then_some(claims.username)
        .flatten()
}

/// The user a verified token's claims name, if the token is of `token_type` and its subject is
/// a user id.
fn user_of(claims: Claims, token_type: TokenType) -> Result<VerifiedToken, ApiError> {
    if claims.token_type != token_type.as_str() {
        return Err(ApiError::InvalidToken);
    }
    let id = claims
        .sub
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(ApiError::InvalidToken)?;
    Ok(VerifiedToken {
        user: User {
            id,
            is_staff: claims.is_staff,
        },
        version: claims.ver,
        jti: claims.jti,
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

/// The signing key from the component's `jwt_private_key` variable (only accounts has it).
pub fn private_key() -> Result<PrivateKey, ApiError> {
    let pem = key_variable(PRIVATE_KEY_VARIABLE)?;
    PrivateKey::parse(&pem).map_err(|reason| {
        ApiError::Internal(format!(
            "the `{PRIVATE_KEY_VARIABLE}` variable is not an Ed25519 private key in PKCS#8 PEM: {reason}"
        ))
    })
}

/// The verifying key from the component's `jwt_public_key` variable.
pub fn public_key() -> Result<PublicKey, ApiError> {
    let pem = key_variable(PUBLIC_KEY_VARIABLE)?;
    PublicKey::parse(&pem).map_err(|reason| {
        ApiError::Internal(format!(
            "the `{PUBLIC_KEY_VARIABLE}` variable is not an Ed25519 public key in SPKI PEM: {reason}"
        ))
    })
}

/// A key variable's text; a missing or empty one is a 500 (the deployment is misconfigured).
fn key_variable(name: &str) -> Result<String, ApiError> {
    let pem = spin_sdk::variables::get(name)
        .map_err(|e| ApiError::Internal(format!("reading the `{name}` variable: {e}")))?;
    if pem.trim().is_empty() {
        return Err(ApiError::Internal(format!(
            "the `{name}` variable is empty"
        )));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
    use serde_json::json;

    /// A fixed pair made with `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`.
    const PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDVe/xYboFIkzg5xrNOkJm0+CS6JsGnmLI7pVQOrrB+h
-----END PRIVATE KEY-----
";
    const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEATQb/TOwSBWiDS1TlHuawgdmnUqwbGhRmVGtSSoby5hs=
-----END PUBLIC KEY-----
";
    /// Another Ed25519 private key: a forger's.
    const OTHER_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIGcvtnm4WwPkeT/p1fbsE7IGBt2y7eMqPq/wYODmAz63
-----END PRIVATE KEY-----
";

    fn private_key() -> PrivateKey {
        PrivateKey::parse(PRIVATE_PEM).unwrap()
    }

    fn public_key() -> PublicKey {
        PublicKey::parse(PUBLIC_PEM).unwrap()
    }

    fn now() -> i64 {
        i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
    }

    fn token(claims: serde_json::Value, private_pem: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &EncodingKey::from_ed_pem(private_pem.as_bytes()).unwrap(),
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
        verify_access_token(token, &public_key())
    }

    #[test]
    fn accepts_a_valid_access_token() {
        let user = verify(&token(claims("access", 300, true), PRIVATE_PEM)).unwrap();
        assert_eq!(
            user,
            User {
                id: 42,
                is_staff: true
            }
        );
        let mut without_staff = claims("access", 300, false);
        without_staff.as_object_mut().unwrap().remove("is_staff");
        assert!(!verify(&token(without_staff, PRIVATE_PEM)).unwrap().is_staff);
    }

    #[test]
    fn rejects_a_token_signed_by_another_key() {
        let error = verify(&token(claims("access", 300, true), OTHER_PRIVATE_PEM)).unwrap_err();
        assert!(matches!(error, ApiError::InvalidToken));
    }

    #[test]
    fn rejects_an_expired_token() {
        assert!(matches!(
            verify(&token(claims("access", -1, true), PRIVATE_PEM)),
            Err(ApiError::InvalidToken)
        ));
    }

    #[test]
    fn rejects_a_refresh_token() {
        assert!(matches!(
            verify(&token(claims("refresh", 300, true), PRIVATE_PEM)),
            Err(ApiError::InvalidToken)
        ));
    }

    #[test]
    fn rejects_other_algorithms_and_none() {
        let body = base64_url(&claims("access", 300, true).to_string());
        let none = format!("{}.{body}.", base64_url(r#"{"alg":"none","typ":"JWT"}"#));
        assert!(matches!(verify(&none), Err(ApiError::InvalidToken)));
        // Algorithm confusion: HMAC keyed with the public key's text, which every service has.
        for algorithm in [Algorithm::HS256, Algorithm::HS512] {
            let hmac = jsonwebtoken::encode(
                &Header::new(algorithm),
                &claims("access", 300, true),
                &EncodingKey::from_secret(PUBLIC_PEM.as_bytes()),
            )
            .unwrap();
            assert!(
                matches!(verify(&hmac), Err(ApiError::InvalidToken)),
                "{algorithm:?}"
            );
        }
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
            verify(&token(claims.clone(), PRIVATE_PEM)),
            Err(ApiError::InvalidToken)
        ));
        claims["sub"] = json!(42);
        assert!(matches!(
            verify(&token(claims, PRIVATE_PEM)),
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
        let key = private_key();
        let access = issue_token(user, "ada", 3, TokenType::Access, now, 900, &key)
            .unwrap()
            .token;
        let refresh = issue_token(user, "ada", 3, TokenType::Refresh, now, 86_400, &key)
            .unwrap()
            .token;
        assert_eq!(verify(&access).unwrap(), user);
        assert_eq!(
            verify_token(&refresh, TokenType::Refresh, &public_key()).unwrap(),
            user
        );
        assert!(matches!(verify(&refresh), Err(ApiError::InvalidToken)));
        assert!(matches!(
            verify_token(&access, TokenType::Refresh, &public_key()),
            Err(ApiError::InvalidToken)
        ));
        let forged = issue_token(
            user,
            "ada",
            3,
            TokenType::Refresh,
            now,
            86_400,
            &PrivateKey::parse(OTHER_PRIVATE_PEM).unwrap(),
        )
        .unwrap()
        .token;
        assert!(matches!(
            verify_token(&forged, TokenType::Refresh, &public_key()),
            Err(ApiError::InvalidToken)
        ));
        let expired = issue_token(user, "ada", 3, TokenType::Refresh, now, -1, &key)
            .unwrap()
            .token;
        assert!(matches!(
            verify_token(&expired, TokenType::Refresh, &public_key()),
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
        let issued = issue_token(
            user,
            "Ada.L",
            5,
            TokenType::Access,
            now,
            900,
            &private_key(),
        )
        .unwrap();
        let token = issued.token.clone();
        let other = issue_token(
            user,
            "Ada.L",
            5,
            TokenType::Access,
            now,
            900,
            &private_key(),
        )
        .unwrap()
        .token;
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().alg,
            Algorithm::EdDSA
        );
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        let decoding = DecodingKey::from_ed_pem(PUBLIC_PEM.as_bytes()).unwrap();
        let read = |token: &str| {
            jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
                .unwrap()
                .claims
        };
        let claims = read(&token);
        assert_eq!(claims.sub, "42");
        assert_eq!(claims.token_type, "access");
        assert!(!claims.is_staff);
        assert_eq!(claims.username.as_deref(), Some("Ada.L"));
        assert_eq!(claims.iat, now.as_datetime().timestamp());
        assert_eq!(claims.exp, claims.iat + 900);
        assert_eq!(claims.jti.len(), 32);
        assert_eq!(claims.ver, 5);
        assert_eq!(
            (issued.jti.as_str(), issued.expires_at),
            (claims.jti.as_str(), claims.exp)
        );
        assert_ne!(claims.jti, read(&other).jti, "every token has its own jti");
    }

    #[test]
    fn reads_only_ed25519_keys_of_the_right_kind() {
        // Without the trailing newline, as a variable may well hold it.
        assert!(PrivateKey::parse(PRIVATE_PEM.trim()).is_ok());
        assert!(PublicKey::parse(PUBLIC_PEM.trim()).is_ok());
        let truncated_public = &PUBLIC_PEM[..PUBLIC_PEM.len() / 2];
        let truncated_private = &PRIVATE_PEM[..PRIVATE_PEM.len() - 40];
        let short_line = PUBLIC_PEM.replace("bGhRmVGtSSoby5hs=", "");
        // A well-formed SPKI with a 31-byte key, and one whose 32 bytes are not a curve point.
        let short_key = "-----BEGIN PUBLIC KEY-----\nMCkwBQYDK2VwAyAAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHw==\n-----END PUBLIC KEY-----\n";
        let off_curve = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n-----END PUBLIC KEY-----\n";
        for bad in [
            "",
            "garbage",
            PRIVATE_PEM,
            truncated_public,
            &short_line,
            short_key,
            off_curve,
        ] {
            assert!(PublicKey::parse(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "garbage", PUBLIC_PEM, truncated_private] {
            assert!(PrivateKey::parse(bad).is_err(), "{bad:?}");
        }
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
            require_user(&anonymous, &Unreachable),
            Err(ApiError::NotAuthenticated)
        ));
    }

    /// How the shop verified tokens with jsonwebtoken, kept to prove the new code the same.
    fn jsonwebtoken_verify(token: &str, token_type: TokenType) -> Result<User, ApiError> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let decoding = DecodingKey::from_ed_pem(PUBLIC_PEM.as_bytes()).unwrap();
        let claims = jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
            .map_err(|_| ApiError::InvalidToken)?
            .claims;
        // The claims' reading is not what this oracle checks: the signature and checks are.
        user_of(claims, token_type).map(|verified| verified.user)
    }

    /// A token of any header and payload text, signed by the shop's key.
    fn signed(header: &str, payload: &str) -> String {
        use ed25519_dalek::Signer;
        let message = format!("{}.{}", base64_url(header), base64_url(payload));
        let signature = private_key().0.sign(message.as_bytes()).to_bytes();
        let signature =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature);
        format!("{message}.{signature}")
    }

    #[test]
    fn tokens_are_jsonwebtokens_byte_for_byte() {
        let key = EncodingKey::from_ed_pem(PRIVATE_PEM.as_bytes()).unwrap();
        for is_staff in [false, true] {
            let claims = Claims {
                sub: "42".to_owned(),
                exp: now() + 900,
                iat: now(),
                jti: "0123456789abcdef0123456789abcdef".to_owned(),
                token_type: "access".to_owned(),
                is_staff,
                username: is_staff.then(|| "ada".to_owned()),
                ver: 2,
            };
            let ours = jwt::encode(&claims, &private_key().0).unwrap();
            let theirs =
                jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key).unwrap();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn odd_tokens_are_judged_as_jsonwebtoken_judged_them() {
        // A year either side: both libraries read the clock, at different moments.
        let exp = now() + 365 * 86_400;
        let past = now() - 365 * 86_400;
        let at = now();
        let headers = [
            r#"{"typ":"JWT","alg":"EdDSA"}"#.to_owned(),
            r#"{"alg":"EdDSA"}"#.to_owned(),
            r#" {"alg":"EdDSA","kid":"k1","custom":[1,{"a":2}]}"#.to_owned(),
            r#"{"alg":"EdDSA","kid":5}"#.to_owned(),
            r#"{"alg":"EdDSA","crit":["exp"]}"#.to_owned(),
            r#"{"alg":"EdDSA","x5c":"one"}"#.to_owned(),
            r#"{"alg":"HS256","typ":"JWT"}"#.to_owned(),
            r#"{"alg":"none"}"#.to_owned(),
            r#"{"alg":"eddsa"}"#.to_owned(),
            r#"{"typ":"JWT"}"#.to_owned(),
            r#"["EdDSA"]"#.to_owned(),
            r#"{"alg":"EdDSA"} x"#.to_owned(),
            r#"{"alg":"EdDSA","alg":"EdDSA"}"#.to_owned(),
        ];
        let base = r#""sub":"42","token_type":"access","is_staff":true"#;
        let payloads = [
            format!(r#"{{{base},"exp":{exp}}}"#),
            format!(r#"{{{base},"exp":{exp},"iat":{at},"jti":"x"}}"#),
            format!(r#"{{{base},"exp":{past}}}"#),
            format!(r#"{{{base}}}"#),
            format!(r#"{{{base},"exp":null}}"#),
            format!(r#"{{{base},"exp":"{exp}"}}"#),
            format!(r#"{{{base},"exp":{exp}.0}}"#),
            format!(r#"{{{base},"exp":-1}}"#),
            format!(r#"{{{base},"exp":{exp},"exp":{exp}}}"#),
            format!(r#"{{{base},"exp":{exp},"nbf":{exp}}}"#),
            format!(r#"{{{base},"exp":{exp},"nbf":"soon"}}"#),
            format!(r#"{{{base},"exp":{exp},"nbf":[1]}}"#),
            format!(r#"{{{base},"exp":{exp},"nbf":{{}}}}"#),
            format!(r#"{{{base},"exp":{exp},"nbf":1,"nbf":2}}"#),
            format!(r#"{{{base},"exp":{exp},"aud":"shop"}}"#),
            format!(r#"{{{base},"exp":{exp},"aud":["shop"]}}"#),
            format!(r#"{{{base},"exp":{exp},"aud":[]}}"#),
            format!(r#"{{{base},"exp":{exp},"aud":5}}"#),
            format!(r#"{{{base},"exp":{exp},"aud":null}}"#),
            format!(r#"{{{base},"exp":{exp},"iss":"me"}}"#),
            format!(r#"{{{base},"exp":{exp},"iss":"me","iss":"you"}}"#),
            format!(r#"{{{base},"exp":{exp},"other":{{"deep":[1,2]}}}}"#),
            format!(r#"{{{base},"exp":{exp},"is_staff":false}}"#),
            format!(r#"{{"sub":42,"token_type":"access","exp":{exp}}}"#),
            format!(r#"{{"token_type":"access","exp":{exp}}}"#),
            format!(r#"{{"sub":"42","exp":{exp}}}"#),
            format!(r#"{{"sub":"42","token_type":"refresh","exp":{exp}}}"#),
            format!(r#"{{"sub":"4\u0032","token_type":"access","exp":{exp}}}"#),
            format!(r#"["42",{exp},0,"","access",true]"#),
            format!(r#"  {{{base},"exp":{exp}}}  "#),
            format!(r#"{{{base},"exp":{exp}}} ,"#),
            "null".to_owned(),
        ];
        for header in &headers {
            for payload in &payloads {
                let token = signed(header, payload);
                for token_type in [TokenType::Access, TokenType::Refresh] {
                    let ours = verify_token(&token, token_type, &public_key()).ok();
                    let theirs = jsonwebtoken_verify(&token, token_type).ok();
                    assert_eq!(ours, theirs, "{header} {payload} {token_type:?}");
                }
            }
        }
        // Signatures: another key's, cut, extended, re-encoded, missing.
        let good = signed(&headers[0], &payloads[0]);
        let (message, signature) = good.rsplit_once('.').unwrap();
        let variants = [
            good.clone(),
            format!("{message}."),
            message.to_owned(),
            format!("{message}.{}", &signature[..signature.len() - 1]),
            format!("{message}.{signature}A"),
            format!("{message}.{signature}=="),
            format!(
                "{message}.{}",
                signature.replace('-', "+").replace('_', "/")
            ),
            format!("x.{good}"),
            format!("{good}.x"),
            good.replacen('.', "..", 1),
        ];
        for token in &variants {
            let ours = verify_token(token, TokenType::Access, &public_key()).ok();
            let theirs = jsonwebtoken_verify(token, TokenType::Access).ok();
            assert_eq!(ours, theirs, "{token}");
        }
    }

    /// Sessions for a request that must not ask: an anonymous one.
    struct Unreachable;

    impl Sessions for Unreachable {
        fn current(&self, _: i64) -> Result<Option<Session>, ApiError> {
            panic!("an anonymous request asked accounts")
        }
    }

    #[test]
    fn a_token_stands_while_its_version_does_and_its_user_is_active() {
        let verified = VerifiedToken {
            user: User {
                id: 7,
                is_staff: true,
            },
            version: 2,
            jti: "j".to_owned(),
        };
        let session = |token_version, is_active| Session {
            token_version,
            is_staff: false,
            is_active,
            username: "ann".to_owned(),
        };
        assert!(confirm(&verified, Some(&session(2, true))).is_ok());
        assert!(confirm(&verified, None).is_ok());
        assert!(matches!(
            confirm(&verified, Some(&session(3, true))),
            Err(ApiError::InvalidToken)
        ));
        let inactive = confirm(&verified, Some(&session(2, false))).unwrap_err();
        assert_eq!(inactive.status(), 401);
        assert_eq!(inactive.detail().as_deref(), Some("User is inactive"));
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
