//! The admin API, on its own listener (`--admin-listen`) and behind its token:
//! `GET /_admin/components`, `GET` and `PUT /_admin/components/{name}` (a hot swap), and
//! `GET /metrics`.

use std::sync::Arc;

use http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use crate::app::ServedVersion;
use crate::http::metrics::metrics_response;
use crate::http::responses::{json, not_found, ResponseBody};
use crate::swap::Swapper;

/// Where the admin API answers.
pub const ADMIN_PREFIX: &str = "/_admin/";

/// Where the metrics are scraped, behind the same token.
pub const METRICS_PATH: &str = "/metrics";

/// The largest component the admin API accepts (the shop's are under 5 MiB): a larger upload
/// is a 413, read no further.
pub const MAX_UPLOAD: usize = 32 << 20;

/// The admin API of one app.
pub struct AdminApi {
    swapper: Arc<Swapper>,
    token: String,
}

impl AdminApi {
    /// The API that swaps through `swapper`, for requests bearing `token`.
    pub fn new(swapper: Arc<Swapper>, token: String) -> Self {
        Self { swapper, token }
    }

    /// Answers one request to the admin API.
    pub async fn answer(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        let app = self.swapper.app();
        let token = &self.token;
        let given = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => {
                let mut response = json(
                    StatusCode::UNAUTHORIZED,
                    r#"{"detail":"Authentication credentials were not provided."}"#,
                );
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"admin\""),
                );
                return response;
            }
            Some(given) if !same_token(given.trim(), token) => {
                return json(
                    StatusCode::FORBIDDEN,
                    r#"{"detail":"You do not have permission to perform this action."}"#,
                );
            }
            Some(_) => {}
        }
        let path = request.uri().path().to_string();
        let method = request.method().clone();
        if path == METRICS_PATH {
            return metrics_response(app, &method);
        }
        let rest = &path[ADMIN_PREFIX.len()..];
        if rest == "components" || rest == "components/" {
            if method != Method::GET {
                return not_allowed(&method);
            }
            let list: Vec<_> = app
                .components
                .iter()
                .map(|c| entry(&c.config.id, &c.current()))
                .collect();
            return json(StatusCode::OK, serde_json::Value::Array(list).to_string());
        }
        let Some(name) = rest.strip_prefix("components/") else {
            return not_found();
        };
        let Some(index) = app.components.iter().position(|c| c.config.id == name) else {
            return not_found();
        };
        match method {
            Method::GET => json(
                StatusCode::OK,
                entry(name, &app.components[index].current()).to_string(),
            ),
            Method::PUT => {
                let declared = request
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if declared.is_some_and(|length| length > MAX_UPLOAD as u64) {
                    return upload_too_large();
                }
                let bytes = match Limited::new(request.into_body(), MAX_UPLOAD)
                    .collect()
                    .await
                {
                    Ok(body) => body.to_bytes().to_vec(),
                    Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                        return upload_too_large();
                    }
                    Err(err) => {
                        let body = serde_json::json!({ "detail": format!("cannot read the upload: {err}") });
                        return json(StatusCode::BAD_REQUEST, body.to_string());
                    }
                };
                match self.swapper.swap(index, bytes, false).await {
                    Ok(version) => json(StatusCode::OK, entry(name, &version).to_string()),
                    Err(err) => {
                        tracing::error!(
                            component = %name,
                            "the uploaded version is refused (the old one keeps serving): {err:#}"
                        );
                        let body = serde_json::json!({ "detail": format!("{err:#}") });
                        json(StatusCode::BAD_REQUEST, body.to_string())
                    }
                }
            }
            _ => not_allowed(&method),
        }
    }
}

fn upload_too_large() -> Response<ResponseBody> {
    let body = serde_json::json!({
        "detail": format!("The upload is over {} MiB.", MAX_UPLOAD >> 20)
    });
    json(StatusCode::PAYLOAD_TOO_LARGE, body.to_string())
}

fn not_allowed(method: &Method) -> Response<ResponseBody> {
    let body = serde_json::json!({ "detail": format!("Method \"{method}\" not allowed.") });
    json(StatusCode::METHOD_NOT_ALLOWED, body.to_string())
}

/// A component in the admin API's answers.
fn entry(name: &str, version: &ServedVersion) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "version": version.version,
        "loaded_at": crate::civil::rfc3339(version.loaded_at),
    })
}

/// Compares two tokens in time that depends on neither: their digests, byte by byte.
fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}
