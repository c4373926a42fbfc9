//! The answers the host gives itself, without a guest: all JSON in the contract's error shape.

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The body of every response the host sends.
pub type ResponseBody = HyperOutgoingBody;

/// A JSON response with `body`.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let body = Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A JSON 503 with `body` and `Retry-After: 1`: a refusal worth retrying in a second.
pub fn retry_soon(body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = json(StatusCode::SERVICE_UNAVAILABLE, body);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// 503 to a request past an admission bound (`admission.rs`): it may be retried in a second.
pub fn overloaded() -> Response<ResponseBody> {
    retry_soon(crate::http::admission::OVERLOADED_BODY)
}

/// 413, in the words of the guests' answer; the connection closes (lingering, see
/// `linger.rs`) as the body was not read.
pub fn payload_too_large() -> Response<ResponseBody> {
    let mut response = json(
        StatusCode::PAYLOAD_TOO_LARGE,
        r#"{"detail":"Request body exceeds the limit of 1 MiB."}"#,
    );
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

pub fn deadline_response() -> Response<ResponseBody> {
    json(
        StatusCode::GATEWAY_TIMEOUT,
        r#"{"detail":"The service did not answer in time."}"#,
    )
}

pub fn internal_error_response() -> Response<ResponseBody> {
    json(
        StatusCode::INTERNAL_SERVER_ERROR,
        r#"{"detail":"Internal server error."}"#,
    )
}

pub fn internal_error(component: &str, err: &wasmtime::Error) -> Response<ResponseBody> {
    tracing::error!(component, "cannot start the request: {err:?}");
    internal_error_response()
}

/// 404 in the contract's words.
pub fn not_found() -> Response<ResponseBody> {
    json(StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#)
}

/// 405 to a method outside the host's set (see `admission::KNOWN_METHODS`), in DRF's words
/// (the contract's "405 wrong method", whatever the route): method names are case-sensitive,
/// so a lower-case `post` is an unknown method, not a POST, and no route allows it.
pub fn method_not_implemented(method: &http::Method) -> Response<ResponseBody> {
    // The method is the client's text: shown escaped, and cut short.
    let shown: String = method.as_str().chars().take(32).collect();
    let body = serde_json::json!({ "detail": format!("Method \"{shown}\" not allowed.") });
    let mut response = json(StatusCode::METHOD_NOT_ALLOWED, body.to_string());
    // RFC 9110 wants the methods the target allows; the host knows only the set it passes on
    // (each route's own 405 narrows it), which is where a client can go from here.
    response.headers_mut().insert(
        http::header::ALLOW,
        HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    response
}

/// 429 with `Retry-After: retry_after` seconds, in DRF's words.
pub fn throttled(retry_after: u64) -> Response<ResponseBody> {
    let body = format!(
        r#"{{"detail":"Request was throttled. Expected available in {retry_after} seconds."}}"#
    );
    let mut response = json(StatusCode::TOO_MANY_REQUESTS, body);
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

/// 429 to a request past its client's share of the requests in flight.
pub fn too_many_from_client() -> Response<ResponseBody> {
    let mut response = json(
        StatusCode::TOO_MANY_REQUESTS,
        r#"{"detail":"Too many requests from your address at once, retry shortly."}"#,
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
