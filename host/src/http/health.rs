//! `/healthz`: the host's own health check, of every service's database at once.

use std::time::Duration;

use http::header::{HeaderValue, ALLOW};
use http::{Method, Response, StatusCode};

use crate::app::App;
use crate::config::component::own_database;
use crate::http::responses::{json, retry_soon, ResponseBody};

/// How long `/healthz` waits for the databases, all checked at once: a probe must get its answer
/// quickly whatever a database does.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /healthz`: 200 when every service's database answers within [`HEALTH_TIMEOUT`], else
/// 503 naming the services whose database does not (never an address: the answer is public).
pub async fn health(app: &App, method: &Method) -> Response<ResponseBody> {
    if method != Method::GET && method != Method::HEAD {
        let body = serde_json::json!({ "detail": format!("Method \"{method}\" not allowed.") });
        let mut response = json(StatusCode::METHOD_NOT_ALLOWED, body.to_string());
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
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
        return json(StatusCode::OK, r#"{"status":"ok"}"#);
    }
    down.sort();
    let body = serde_json::json!({
        "detail": format!("Database unavailable for: {}.", down.join(", ")),
        "unavailable": down,
    });
    retry_soon(body.to_string())
}
