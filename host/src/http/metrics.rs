//! `GET /metrics` on the admin listener: the host's metrics in Prometheus' text format, with
//! each service's database pool read as it is scraped.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Response, StatusCode};

use crate::app::App;
use crate::http::responses::{json, ResponseBody};
use crate::telemetry::metrics;

/// The text format's media type, as Prometheus asks for it.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The answer to `method` on `/metrics` (the admin token already checked).
pub fn metrics_response(app: &App, method: &Method) -> Response<ResponseBody> {
    if method != Method::GET {
        let body = serde_json::json!({ "detail": format!("Method \"{method}\" not allowed.") });
        return json(StatusCode::METHOD_NOT_ALLOWED, body.to_string());
    }
    let pools = app.components.iter().filter_map(|component| {
        let usage = app.databases.pool_usage(&component.config)?;
        Some((component.config.id.as_str(), usage))
    });
    let mut response = json(StatusCode::OK, metrics().render(pools));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
    response
}
