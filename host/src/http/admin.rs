//! The admin API, on its own listener (`--admin-listen`) and behind its token:
//! `GET /_admin/components` (every component, its kept versions, their shares and error
//! rates), `GET` and `PUT /_admin/components/{name}` (a hot swap),
//! `PUT /_admin/components/{name}/canary?percent=P` (a canary of the upload),
//! `POST /_admin/components/{name}/promote`, `POST /_admin/components/{name}/rollback`, and
//! `GET /metrics`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use crate::app::ServedVersion;
use crate::http::metrics::metrics_response;
use crate::http::responses::{json, not_found, throttled, ResponseBody};
use crate::links::{Share, Split};
use crate::swap::{KeptVersion, SwapError, Swapper};

/// Where the admin API answers.
pub const ADMIN_PREFIX: &str = "/_admin/";

/// Where the metrics are scraped, behind the same token.
pub const METRICS_PATH: &str = "/metrics";

/// The largest component the admin API accepts (the shop's are under 5 MiB): a larger upload
/// is a 413, read no further.
pub const MAX_UPLOAD: usize = 32 << 20;

/// How many wrong or missing tokens one client address may send within
/// [`FAILED_TOKEN_WINDOW`] before it is answered 429 until the window ends.
pub const MAX_FAILED_TOKENS: u32 = 10;

/// The window of [`MAX_FAILED_TOKENS`].
pub const FAILED_TOKEN_WINDOW: Duration = Duration::from_secs(60);

/// The most addresses whose failures are remembered (an admin listener is private: a handful).
const MAX_REMEMBERED: usize = 4096;

/// The admin API of one app.
pub struct AdminApi {
    swapper: Arc<Swapper>,
    token: String,
    /// Per client address: wrong tokens in the current window, and when it began.
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AdminApi {
    /// The API that swaps through `swapper`, for requests bearing `token`.
    pub fn new(swapper: Arc<Swapper>, token: String) -> Self {
        Self {
            swapper,
            token,
            failures: Mutex::default(),
        }
    }

    /// Answers one request to the admin API from `client`: past [`MAX_FAILED_TOKENS`] wrong
    /// tokens from its address in a window, 429 without looking at the token.
    pub async fn answer(
        &self,
        request: Request<Incoming>,
        client: IpAddr,
    ) -> Response<ResponseBody> {
        if let Some(wait) = self.throttled(client) {
            return throttled(wait);
        }
        let response = self.answer_checked(request).await;
        if matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            self.failed(client);
        }
        response
    }

    /// The seconds `client` must wait, when it is throttled.
    fn throttled(&self, client: IpAddr) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, since) = failures.get(&client)?;
        let left = FAILED_TOKEN_WINDOW.checked_sub(since.elapsed())?;
        (*count >= MAX_FAILED_TOKENS).then(|| left.as_secs().max(1))
    }

    /// Counts a wrong or missing token from `client`.
    fn failed(&self, client: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_REMEMBERED {
            failures.retain(|_, (_, since)| since.elapsed() < FAILED_TOKEN_WINDOW);
        }
        let entry = failures.entry(client).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILED_TOKEN_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
        if entry.0 == MAX_FAILED_TOKENS {
            tracing::warn!(
                %client,
                "{MAX_FAILED_TOKENS} wrong admin tokens from this address: refused for {FAILED_TOKEN_WINDOW:?}"
            );
        }
    }

    /// Answers one request whose client is not throttled.
    async fn answer_checked(&self, request: Request<Incoming>) -> Response<ResponseBody> {
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
            let list: Vec<_> = (0..app.components.len()).map(|i| self.entry(i)).collect();
            return json(StatusCode::OK, serde_json::Value::Array(list).to_string());
        }
        let Some(named) = rest.strip_prefix("components/") else {
            return not_found();
        };
        let (name, action) = match named.split_once('/') {
            Some((name, action)) => (name, Some(action)),
            None => (named, None),
        };
        let Some(index) = app.components.iter().position(|c| c.config.id == name) else {
            return no_such_component(name);
        };
        let done = match (action, &method) {
            (None, &Method::GET) => return json(StatusCode::OK, self.entry(index).to_string()),
            (None, &Method::PUT) => match read_upload(request).await {
                Ok(bytes) => self.swapper.swap(index, bytes, false).await,
                Err(refused) => return refused,
            },
            (Some("canary"), &Method::PUT) => {
                let share = match canary_share(request.uri().query()) {
                    Ok(share) => share,
                    Err(detail) => return bad_request(&detail),
                };
                match read_upload(request).await {
                    Ok(bytes) => self.swapper.canary(index, bytes, share).await,
                    Err(refused) => return refused,
                }
            }
            (Some("promote"), &Method::POST) => self.swapper.promote(index).await,
            (Some("rollback"), &Method::POST) => self.swapper.rollback(index).await,
            (None | Some("canary" | "promote" | "rollback"), _) => return not_allowed(&method),
            (Some(_), _) => return not_found(),
        };
        match done {
            Ok(_) => json(StatusCode::OK, self.entry(index).to_string()),
            Err(err) => {
                tracing::error!(component = %name, "refused (what served serves on): {err:#}");
                let status = match err {
                    SwapError::Refused(_) => StatusCode::BAD_REQUEST,
                    SwapError::Conflict(_) => StatusCode::CONFLICT,
                };
                let body = serde_json::json!({ "detail": format!("{err:#}") });
                json(status, body.to_string())
            }
        }
    }

    /// Component `index` in the admin API's answers: the stable version (`version`,
    /// `loaded_at`), the canary, and every kept version with its role, share and error rate.
    fn entry(&self, index: usize) -> serde_json::Value {
        let served = &self.swapper.app().components[index];
        let serving = served.serving();
        let mut kept = self.swapper.kept(index);
        for serves in [
            Some(&serving.stable),
            serving.canary.as_ref().map(|(c, _)| c),
        ] {
            match serves {
                Some(code) if !kept.iter().any(|k| k.version == code.version) => {
                    kept.push(KeptVersion {
                        version: code.version.clone(),
                        loaded_at: code.loaded_at,
                        code: Some(code.clone()),
                    })
                }
                _ => {}
            }
        }
        let versions: Vec<_> = kept.iter().map(|k| version_entry(k, &serving)).collect();
        serde_json::json!({
            "name": served.config.id,
            "version": serving.stable.version,
            "loaded_at": crate::civil::rfc3339(serving.stable.loaded_at),
            "canary": serving.canary.as_ref().map(|(canary, share)| serde_json::json!({
                "version": canary.version,
                "share": share.percent(),
            })),
            "versions": versions,
        })
    }
}

/// A kept version in the admin API's answers. `share` is the configured percentage of the
/// component's requests it gets; `error_rate` the part of its answers that were 5xx (`null`
/// before it answered any).
fn version_entry(kept: &KeptVersion, serving: &Split<Arc<ServedVersion>>) -> serde_json::Value {
    let canary = serving.canary.as_ref();
    let (role, share) = if kept.version == serving.stable.version {
        (
            "stable",
            100 - canary.map_or(0, |(_, share)| share.percent()),
        )
    } else if let Some((_, share)) = canary.filter(|(c, _)| c.version == kept.version) {
        ("canary", share.percent())
    } else {
        ("kept", 0)
    };
    let (requests, errors) = kept.code.as_ref().map_or((0, 0), |code| code.tally.read());
    let error_rate = (requests > 0).then(|| errors as f64 / requests as f64);
    serde_json::json!({
        "sha256": kept.version,
        "loaded_at": crate::civil::rfc3339(kept.loaded_at),
        "role": role,
        "share": share,
        "requests": requests,
        "errors": errors,
        "error_rate": error_rate,
    })
}

/// The canary's share from the query (`?percent=20`), or why it is none.
fn canary_share(query: Option<&str>) -> Result<Share, String> {
    let percent = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(key, _)| key == "percent")
        .map(|(_, value)| value.into_owned())
        .ok_or("a canary needs its share of the requests: ?percent=1..99")?;
    Share::parse(&percent)
}

/// The uploaded Wasm, or the answer that refuses it (too large, unreadable).
async fn read_upload(request: Request<Incoming>) -> Result<Vec<u8>, Response<ResponseBody>> {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_UPLOAD as u64) {
        return Err(upload_too_large());
    }
    match Limited::new(request.into_body(), MAX_UPLOAD)
        .collect()
        .await
    {
        Ok(body) => Ok(body.to_bytes().to_vec()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(upload_too_large()),
        Err(err) => Err(bad_request(&format!("cannot read the upload: {err}"))),
    }
}

fn bad_request(detail: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({ "detail": detail });
    json(StatusCode::BAD_REQUEST, body.to_string())
}

fn no_such_component(name: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({ "detail": format!("No component `{name}`.") });
    json(StatusCode::NOT_FOUND, body.to_string())
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

/// Compares two tokens in time that depends on neither: their digests, byte by byte.
fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}
