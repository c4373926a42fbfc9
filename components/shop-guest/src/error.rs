//! The one error type of a service's HTTP boundary, and its DRF-shaped JSON answer.

use std::collections::BTreeMap;

use serde::Serialize;
use spin_sdk::http::{IntoResponse, Response};

use crate::response;

/// Validation messages by field name (`non_field_errors` for the whole object), in DRF's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

/// The key DRF uses for errors about the whole object rather than one field.
pub const NON_FIELD_ERRORS: &str = "non_field_errors";

impl FieldErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Errors for one field.
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    /// Adds one message to a field.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// Adds several messages to a field.
    pub fn extend(&mut self, field: &str, messages: impl IntoIterator<Item = String>) {
        let entry = self.0.entry(field.to_owned()).or_default();
        entry.extend(messages);
    }

    /// True when no field has a message.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every field with its messages, fields in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0
            .iter()
            .map(|(field, messages)| (field.as_str(), messages.as_slice()))
    }

    /// The messages of one field, if any.
    pub fn get(&self, field: &str) -> Option<&[String]> {
        self.0.get(field).map(Vec::as_slice)
    }

    /// `Ok(())` when empty, otherwise the validation error carrying these messages.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self))
        }
    }
}

/// Everything a request can end in other than success; each variant has one status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `{"field": ["message"]}`: the input did not validate.
    #[error("invalid input: {0:?}")]
    Validation(FieldErrors),
    /// 400 `{"detail": ...}`: bad input that is not about one field (e.g. malformed JSON).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: no credentials were sent.
    #[error("authentication credentials were not provided")]
    NotAuthenticated,
    /// 401: a token was sent but it is not a valid access token.
    #[error("token not valid")]
    InvalidToken,
    /// 401 `{"detail": "Token is invalid or expired", "code": "token_not_valid"}`: the token
    /// sent in a body (a refresh token) is not valid, as simplejwt answers it.
    #[error("token is invalid or expired")]
    TokenNotValid,
    /// 401 with a specific message (e.g. a malformed Authorization header).
    #[error("authentication failed: {0}")]
    AuthenticationFailed(String),
    /// 403: authenticated, but not allowed to do this.
    #[error("permission denied")]
    PermissionDenied,
    /// 404 with the given detail (usually "Not found.").
    #[error("not found: {0}")]
    NotFound(String),
    /// 405 with an `Allow` header listing the methods the path accepts.
    #[error("method {method} not allowed")]
    MethodNotAllowed {
        /// The method the client used.
        method: String,
        /// The methods the path accepts.
        allow: &'static [&'static str],
    },
    /// 409: the request conflicts with the current state (stock, status).
    #[error("conflict: {0}")]
    Conflict(String),
    /// 413: the body is larger than the service accepts.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: the body is not JSON; holds the media type the client sent.
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// 429: too many requests; optionally when to retry, in seconds.
    #[error("too many requests")]
    TooManyRequests {
        /// Seconds until a retry may succeed.
        retry_after_secs: Option<u64>,
    },
    /// 503: a dependency (the database, another service) is unavailable.
    #[error("service unavailable: {0}")]
    ServiceUnavailable(String),
    /// 500: a bug or a misconfiguration; the message is logged, not shown to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The `{"detail": ...}` body of every non-validation error (with simplejwt's `code` where
/// it sends one).
#[derive(Serialize)]
struct Detail<'a> {
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
}

impl ApiError {
    /// 404 `{"detail": "Not found."}`.
    pub fn not_found() -> Self {
        Self::NotFound("Not found.".to_owned())
    }

    /// 503 for another service of the shop that cannot answer: the detail names `service`
    /// (`Service unavailable: products.`); its `reason` goes to the log, not to the client.
    pub fn upstream(service: &str, reason: &str) -> Self {
        eprintln!("the {service} service is unavailable: {reason}");
        Self::ServiceUnavailable(format!("Service unavailable: {service}."))
    }

    /// 400 with a single message for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(FieldErrors::single(field, message))
    }

    /// The HTTP status code of this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::Validation(_) | Self::BadRequest(_) => 400,
            Self::NotAuthenticated
            | Self::InvalidToken
            | Self::TokenNotValid
            | Self::AuthenticationFailed(_) => 401,
            Self::PermissionDenied => 403,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Conflict(_) => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::TooManyRequests { .. } => 429,
            Self::ServiceUnavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    /// The `detail` message shown to the client (`None` for validation errors).
    pub fn detail(&self) -> Option<String> {
        Some(match self {
            Self::Validation(_) => return None,
            Self::BadRequest(message)
            | Self::AuthenticationFailed(message)
            | Self::NotFound(message)
            | Self::Conflict(message)
            | Self::ServiceUnavailable(message) => message.clone(),
            Self::NotAuthenticated => "Authentication credentials were not provided.".to_owned(),
            Self::InvalidToken => "Given token not valid for any token type".to_owned(),
            Self::TokenNotValid => "Token is invalid or expired".to_owned(),
            Self::PermissionDenied => {
                "You do not have permission to perform this action.".to_owned()
            }
            Self::MethodNotAllowed { method, .. } => format!("Method \"{method}\" not allowed."),
            Self::PayloadTooLarge => "Request body exceeds the limit of 1 MiB.".to_owned(),
            Self::UnsupportedMediaType(media_type) => {
                format!("Unsupported media type \"{media_type}\" in request.")
            }
            Self::TooManyRequests {
                retry_after_secs: Some(secs),
            } => format!("Request was throttled. Expected available in {secs} seconds."),
            Self::TooManyRequests {
                retry_after_secs: None,
            } => "Request was throttled.".to_owned(),
            Self::Internal(_) => "A server error occurred.".to_owned(),
        })
    }

    /// The machine-readable `code` simplejwt adds to some token errors.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::TokenNotValid => Some("token_not_valid"),
            _ => None,
        }
    }

    /// The JSON body of the answer.
    pub fn body(&self) -> Vec<u8> {
        let body = match self {
            Self::Validation(errors) => serde_json::to_vec(errors),
            _ => serde_json::to_vec(&Detail {
                detail: self.detail().as_deref().unwrap_or_default(),
                code: self.code(),
            }),
        };
        body.unwrap_or_else(|_| br#"{"detail":"A server error occurred."}"#.to_vec())
    }

    /// The full HTTP answer: status, `Content-Type: application/json`, extra headers, body.
    pub fn to_response(&self) -> Response {
        if let Self::Internal(message) = self {
            // The client sees a generic message; the operator sees the cause on stderr.
            eprintln!("internal error: {message}");
        }
        let mut builder = Response::builder();
        builder
            .status(self.status())
            .header("content-type", response::JSON);
        match self {
            Self::MethodNotAllowed { allow, .. } => {
                builder.header("allow", allow.join(", "));
            }
            Self::NotAuthenticated
            | Self::InvalidToken
            | Self::TokenNotValid
            | Self::AuthenticationFailed(_) => {
                builder.header("www-authenticate", "Bearer realm=\"api\"");
            }
            Self::TooManyRequests {
                retry_after_secs: Some(secs),
            } => {
                builder.header("retry-after", secs.to_string());
            }
            // A database that is down or swamped: worth a retry soon, not at once.
            Self::ServiceUnavailable(_) => {
                builder.header("retry-after", "1");
            }
            _ => {}
        }
        builder.body(self.body()).build()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.to_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(error: &ApiError) -> serde_json::Value {
        serde_json::from_slice(&error.body()).expect("error bodies are JSON")
    }

    #[test]
    fn validation_errors_are_field_maps() {
        let mut errors = FieldErrors::new();
        errors.add("name", "This field is required.");
        errors.add("price", "A valid number is required.");
        let error = ApiError::Validation(errors);
        assert_eq!(error.status(), 400);
        assert_eq!(
            json(&error),
            serde_json::json!({"name": ["This field is required."], "price": ["A valid number is required."]})
        );
    }

    #[test]
    fn other_errors_are_details() {
        let cases = [
            (
                ApiError::NotAuthenticated,
                401,
                "Authentication credentials were not provided.",
            ),
            (
                ApiError::InvalidToken,
                401,
                "Given token not valid for any token type",
            ),
            (
                ApiError::PermissionDenied,
                403,
                "You do not have permission to perform this action.",
            ),
            (ApiError::not_found(), 404, "Not found."),
            (
                ApiError::MethodNotAllowed {
                    method: "PUT".into(),
                    allow: &["GET", "POST"],
                },
                405,
                "Method \"PUT\" not allowed.",
            ),
            (
                ApiError::UnsupportedMediaType("text/plain".into()),
                415,
                "Unsupported media type \"text/plain\" in request.",
            ),
            (
                ApiError::ServiceUnavailable("Service unavailable: database".into()),
                503,
                "Service unavailable: database",
            ),
        ];
        for (error, status, detail) in cases {
            assert_eq!(error.status(), status);
            assert_eq!(json(&error), serde_json::json!({ "detail": detail }));
        }
    }

    #[test]
    fn a_failed_service_is_a_503_naming_it_not_its_reason() {
        let error = ApiError::upstream("products", "database is locked");
        assert_eq!(error.status(), 503);
        assert_eq!(
            json(&error),
            serde_json::json!({"detail": "Service unavailable: products."})
        );
        assert_eq!(
            error
                .to_response()
                .header("retry-after")
                .and_then(|v| v.as_str()),
            Some("1")
        );
    }

    #[test]
    fn token_errors_carry_simplejwts_code() {
        let error = ApiError::TokenNotValid;
        assert_eq!(error.status(), 401);
        assert_eq!(
            json(&error),
            serde_json::json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})
        );
        let throttled = ApiError::TooManyRequests {
            retry_after_secs: Some(60),
        }
        .to_response();
        assert_eq!(*throttled.status(), 429);
        assert_eq!(
            throttled.header("retry-after").and_then(|v| v.as_str()),
            Some("60")
        );
    }

    #[test]
    fn method_not_allowed_names_the_allowed_methods() {
        let response = ApiError::MethodNotAllowed {
            method: "PUT".into(),
            allow: &["GET", "POST"],
        }
        .to_response();
        assert_eq!(*response.status(), 405);
        assert_eq!(
            response.header("allow").and_then(|v| v.as_str()),
            Some("GET, POST")
        );
        assert_eq!(
            response.header("content-type").and_then(|v| v.as_str()),
            Some("application/json")
        );
    }
}
