//! The spans of a request: the request itself (a server span that continues the caller's
//! trace), each call over a WIT link, each database statement.
//!
//! They have a target of their own, [`SPANS`], that only the OpenTelemetry layer listens to
//! (`export.rs`): without an exporter no subscriber is interested, so each macro below returns a
//! disabled span after one cached check, its fields never evaluated, and the log's lines keep
//! their shape.

use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The target of the spans that become OpenTelemetry spans.
pub const SPANS: &str = "shop::spans";

/// The span of one request to `component` on `route`, as the manifest writes it.
pub fn request_span(method: &http::Method, route: &str, component: &str) -> Span {
    tracing::info_span!(
        target: SPANS,
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route,
        http.response.status_code = Empty,
        component = component,
    )
}

/// Makes `span` continue the trace of the incoming `traceparent` (if any) and, as Spin does,
/// tells the guest its own place in that trace: the request's `traceparent` then names `span`.
/// Without an exporter the headers go to the guest as they came.
pub fn continue_trace(span: &Span, headers: &mut HeaderMap) {
    if span.is_disabled() {
        return;
    }
    let propagator = TraceContextPropagator::new();
    let caller = propagator.extract(&HeaderExtractor(&*headers));
    // Fails only when the span has started already, which it has not.
    let _ = span.set_parent(caller);
    propagator.inject_context(&span.context(), &mut HeaderInjector(headers));
}

/// Records the status of the answer on the request's span; a 5xx marks it as an error.
pub fn record_status(span: &Span, status: http::StatusCode) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// The span of a call from component `from` to `function` of `interface`, which `to` exports.
pub fn link_span(from: &str, to: &str, interface: &str, function: &str) -> Span {
    tracing::info_span!(
        target: SPANS,
        "link call",
        otel.name = %format_args!("{from} → {to} {function}"),
        from = from,
        to = to,
        interface = interface,
        function = function,
    )
}

/// The span of one statement on `engine` (`sqlite` or `postgresql`): its first word only,
/// never its text or its parameters, which may hold anything a customer typed.
pub fn statement_span(engine: &'static str, statement: &str) -> Span {
    tracing::info_span!(
        target: SPANS,
        "db statement",
        otel.name = %format_args!("{engine} {}", first_word(statement)),
        otel.kind = "client",
        db.system = engine,
        db.operation = first_word(statement),
    )
}

/// The statement's first word (`SELECT`, `INSERT`, `BEGIN`...), as written.
pub(super) fn first_word(statement: &str) -> &str {
    let statement = statement.trim_start();
    let end = statement
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(statement.len());
    &statement[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_named_by_its_first_word_only() {
        assert_eq!(
            first_word("  SELECT * FROM products WHERE id = ?"),
            "SELECT"
        );
        assert_eq!(first_word("insert into t values ('secret')"), "insert");
        assert_eq!(first_word("BEGIN;"), "BEGIN");
        assert_eq!(first_word(""), "");
    }

    #[test]
    fn without_a_subscriber_spans_cost_nothing_and_headers_pass_unchanged() {
        let span = request_span(&http::Method::GET, "/api/products/...", "products");
        assert!(span.is_disabled());
        let mut headers = HeaderMap::new();
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        headers.insert("traceparent", traceparent.parse().unwrap());
        continue_trace(&span, &mut headers);
        assert_eq!(headers["traceparent"], traceparent);
    }
}
