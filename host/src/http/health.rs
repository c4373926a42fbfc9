//! The host's own probes: `/livez` (liveness: the process serves; no database is touched)
//! and `/healthz` (readiness: every service's database answers). An orchestrator restarts a
//! pod whose liveness fails and only takes it out of rotation when its readiness does, so a
//! database outage must fail the second alone.
//!
//! `/healthz` is answered before admission, so its cost is bounded here: the databases are
//! checked by one request at a time, and the answer is reused for [`READINESS_MAX_AGE`]; a
//! flood of probes costs a lock and a copy each.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW};
use http::{Method, Response, StatusCode};
use tokio::sync::Mutex;

use crate::app::App;
use crate::config::component::own_database;
use crate::http::responses::{json, retry_soon, ResponseBody};

/// How long `/healthz` waits for the databases, all checked at once: a probe must get its answer
/// quickly whatever a database does.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// The liveness probe's path: answered by the process alone.
pub const LIVENESS_PATH: &str = "/livez";

/// The readiness probe's path: every service's database.
pub const READINESS_PATH: &str = "/healthz";

/// How old a readiness answer may be when it is given again.
pub const READINESS_MAX_AGE: Duration = Duration::from_secs(1);

/// The last readiness answer, and the lock that makes one check at a time.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Option<Checked>>,
}

/// A readiness answer and when it was made.
#[derive(Clone)]
struct Checked {
    at: Instant,
    status: StatusCode,
    body: Bytes,
}

/// `GET /livez`: 200 while the process serves requests.
pub fn liveness(method: &Method) -> Response<ResponseBody> {
    if let Some(refused) = only_get(method) {
        return refused;
    }
    json(StatusCode::OK, r#"{"status":"ok"}"#)
}

/// 405 to anything but `GET` and `HEAD`.
fn only_get(method: &Method) -> Option<Response<ResponseBody>> {
    if method == Method::GET || method == Method::HEAD {
        return None;
    }
    let body = serde_json::json!({ "detail": format!("Method \"{method}\" not allowed.") });
    let mut response = json(StatusCode::METHOD_NOT_ALLOWED, body.to_string());
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    Some(response)
}

impl Readiness {
    /// `GET /healthz`: the last answer when it is at most [`READINESS_MAX_AGE`] old, else a new
    /// check (one at a time: a probe that comes during a check waits for its answer).
    pub async fn answer(&self, app: &App, method: &Method) -> Response<ResponseBody> {
        if let Some(refused) = only_get(method) {
            return refused;
        }
        let mut last = self.last.lock().await;
        let checked = match last.as_ref() {
            Some(checked) if checked.at.elapsed() < READINESS_MAX_AGE => checked.clone(),
            _ => {
                let checked = check(app).await;
                *last = Some(checked.clone());
                checked
            }
        };
        drop(last);
        if checked.status == StatusCode::OK {
            json(checked.status, checked.body)
        } else {
            retry_soon(checked.body)
        }
    }
}

/// Checks every service's database: 200 when each answers within [`HEALTH_TIMEOUT`], else 503
/// naming the services whose database does not (never an address: the answer is public).
async fn check(app: &App) -> Checked {
    let mut checks = tokio::task::JoinSet::new();
    for component in &app.components {
        let Some(address) = own_database(&component.config) else {
            continue;
        };
        let id = component.config.id.clone();
        let address = address.to_owned();
        let databases = app.databases.clone();
        checks.spawn(async move {
            let check = databases.check_address(&address);
            (id, tokio::time::timeout(HEALTH_TIMEOUT, check).await)
        });
    }
    let mut down = Vec::new();
    while let Some(joined) = checks.join_next().await {
        let Ok((id, outcome)) = joined else {
            down.push("(a check that failed)".to_owned());
            continue;
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(component = %id, "health check: its database fails: {err:#}");
                down.push(id);
            }
            Err(_) => {
                tracing::warn!(component = %id, "health check: its database did not answer within {HEALTH_TIMEOUT:?}");
                down.push(id);
            }
        }
    }
    if down.is_empty() {
        return Checked {
            at: Instant::now(),
            status: StatusCode::OK,
            body: Bytes::from_static(br#"{"status":"ok"}"#),
        };
    }
    down.sort();
    let body = serde_json::json!({
        "detail": format!("Database unavailable for: {}.", down.join(", ")),
        "unavailable": down,
    });
    Checked {
        at: Instant::now(),
        status: StatusCode::SERVICE_UNAVAILABLE,
        body: body.to_string().into(),
    }
}
