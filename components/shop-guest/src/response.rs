//! Successful answers: JSON bodies with the right status and content type.

use serde::Serialize;
use spin_sdk::http::Response;

use crate::error::ApiError;

/// The media type of every body the services send.
pub const JSON: &str = "application/json";

/// An answer with `status` and `value` serialized as JSON.
pub fn json(status: u16, value: &impl Serialize) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value)
        .map_err(|e| ApiError::Internal(format!("serializing the answer: {e}")))?;
    Ok(Response::builder()
        .status(status)
        .header("content-type", JSON)
        .body(body)
        .build())
}

/// 200 with a JSON body.
pub fn ok(value: &impl Serialize) -> Result<Response, ApiError> {
    json(200, value)
}

/// 201 with a JSON body.
pub fn created(value: &impl Serialize) -> Result<Response, ApiError> {
    json(201, value)
}

/// 204 with an empty body (and, as DRF does, no content type).
pub fn no_content() -> Response {
    Response::builder().status(204).build()
}

/// Turns a handler's result into the HTTP answer, errors included.
pub fn finish(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|error| error.to_response())
}
