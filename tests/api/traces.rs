//! Spans over OTLP: a host started with `OTEL_EXPORTER_OTLP_ENDPOINT` sends its spans to a small
//! OTLP/HTTP receiver in this test, which decodes them. A checkout is one trace: the orders
//! request's span, its calls over the links to products, cart and accounts as its children,
//! and the statements of each service under the span that ran them; a caller's `traceparent`
//! is continued.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::json;

use crate::helpers::*;
use crate::orders::product;

/// A span as the receiver keeps it: ids in hex, its name and its string attributes.
#[derive(Clone, Debug)]
struct Span {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    attributes: HashMap<String, String>,
}

impl Span {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// Every span received so far.
type Received = Arc<Mutex<Vec<Span>>>;

/// The OTLP receiver (on a thread of its own, so that it outlives each test's runtime) and the
/// host exporting to it, shared by this file's tests.
fn traced_host() -> &'static (String, Received) {
    static HOST: OnceLock<(String, Received)> = OnceLock::new();
    HOST.get_or_init(|| {
        let received = Received::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let spans = received.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(receive(listener, spans));
        });
        build_components();
        let workdir = fresh_workdir("traces");
        let mut cmd = host_command(&workdir);
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .args(["up", "--listen", "127.0.0.1:0"]);
        let host = spawn_serving(cmd, &workdir, &repo_root().join("spin.toml"));
        wait_healthy(&host.base);
        (host.base, received)
    })
}

/// Serves `POST /v1/traces` (OTLP/HTTP, protobuf) on `listener`, keeping the spans.
async fn receive(listener: std::net::TcpListener, spans: Received) {
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let spans = spans.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let spans = spans.clone();
            async move {
                assert_eq!(request.uri().path(), "/v1/traces");
                let body = request.into_body().collect().await.unwrap().to_bytes();
                let export = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                spans.lock().unwrap().extend(decoded(&export));
                let answer = hyper::Response::builder()
                    .header("content-type", "application/x-protobuf")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                Ok::<_, Infallible>(answer)
            }
        });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn decoded(export: &ExportTraceServiceRequest) -> Vec<Span> {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let spans = export
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .flat_map(|scope| &scope.spans);
    spans
        .map(|span| Span {
            trace_id: hex(&span.trace_id),
            span_id: hex(&span.span_id),
            parent_span_id: hex(&span.parent_span_id),
            name: span.name.clone(),
            attributes: span
                .attributes
                .iter()
                .filter_map(|kv| {
                    let value = match kv.value.as_ref()?.value.as_ref()? {
                        AnyValue::StringValue(text) => text.clone(),
                        AnyValue::IntValue(number) => number.to_string(),
                        other => format!("{other:?}"),
                    };
                    Some((kv.key.clone(), value))
                })
                .collect(),
        })
        .collect()
}

/// Waits (up to 20 s) until `found` finds what it looks for in the spans received.
fn wait_for<T>(received: &Received, mut found: impl FnMut(&[Span]) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = found(&received.lock().unwrap()) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "the spans never showed it; received:\n{:#?}",
            received.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The checkout's trace once complete: its request span, its link spans (by provider) and
/// every span of the trace.
struct Checkout {
    request: Span,
    links: HashMap<String, Span>,
    trace: Vec<Span>,
}

fn checkout_trace(spans: &[Span]) -> Option<Checkout> {
    let request = spans.iter().find(|s| {
        s.attribute("component") == Some("orders")
            && s.attribute("http.request.method") == Some("POST")
            && s.attribute("http.response.status_code") == Some("201")
    })?;
    let trace: Vec<Span> = spans
        .iter()
        .filter(|s| s.trace_id == request.trace_id)
        .cloned()
        .collect();
    // The token check (`shop:accounts/sessions`, once per request) is not a step of the
    // checkout: the checkout's call to accounts is its `profiles` one.
    let links: HashMap<String, Span> = trace
        .iter()
        .filter(|s| s.attribute("from") == Some("orders"))
        .filter(|s| s.attribute("interface") != Some("shop:accounts/sessions@0.1.0"))
        .filter_map(|s| Some((s.attribute("to")?.to_string(), s.clone())))
        .collect();
    let complete = ["products", "cart", "accounts"]
        .iter()
        .all(|to| links.contains_key(*to));
    complete.then(|| Checkout {
        request: request.clone(),
        links,
        trace,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_is_one_trace_across_the_links() {
    let (base, received) = traced_host();
    let app = TestApp {
        base: base.clone(),
        engine: Engine::Sqlite,
        client: reqwest::Client::new(),
    };
    // A registered user with an address: the checkout then asks accounts for it.
    let username = format!("traced{}", unique_suffix());
    let password = "correct horse battery";
    let register = json!({"username": username, "email": format!("{username}@example.com"),
        "password": password, "address": "7 Span Street"});
    let registered = app
        .json("POST", "/api/accounts/register/", None, &register)
        .await;
    assert_eq!(registered.status, 201, "{:?}", registered.body);
    let login = json!({"username": username, "password": password});
    let login = app.json("POST", "/api/accounts/login/", None, &login).await;
    let token = login.body["access"].as_str().unwrap().to_string();
    let (id, _) = product(&app, "2.50", 5).await;
    app.add_to_cart(&token, id, 1).await;
    let placed = app
        .json("POST", "/api/orders/", Some(&token), &json!({}))
        .await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);

    let received = received.clone();
    let checkout = tokio::task::spawn_blocking(move || wait_for(&received, checkout_trace))
        .await
        .unwrap();
    let request = &checkout.request;
    assert_eq!(request.name, "POST /api/orders/...");
    assert_eq!(request.attribute("http.route"), Some("/api/orders/..."));
    for (to, interface) in [
        ("products", "shop:products/inventory@0.1.0"),
        ("cart", "shop:cart/carts@0.1.0"),
        ("accounts", "shop:accounts/profiles@0.1.0"),
    ] {
        let link = &checkout.links[to];
        assert_eq!(
            link.parent_span_id, request.span_id,
            "{link:?} is not the request's child"
        );
        assert_eq!(link.attribute("interface"), Some(interface), "{link:?}");
        assert!(link.attribute("function").is_some(), "{link:?}");
    }
    let statements: Vec<&Span> = checkout
        .trace
        .iter()
        .filter(|s| s.attribute("db.system") == Some("sqlite"))
        .collect();
    // Orders' own statements sit under its request, products' under the call that ran them.
    assert!(
        statements
            .iter()
            .any(|s| s.parent_span_id == request.span_id),
        "{statements:#?}"
    );
    let reserve = &checkout.links["products"];
    assert!(
        statements
            .iter()
            .any(|s| s.parent_span_id == reserve.span_id),
        "{statements:#?}"
    );
    // The first word only, never the statement's text.
    for statement in &statements {
        let operation = statement.attribute("db.operation").unwrap();
        assert!(
            operation.chars().all(|c| c.is_ascii_alphabetic()),
            "{statement:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_traceparent_is_continued() {
    let (base, received) = traced_host();
    let trace_id = format!("{:032x}", u128::from(std::process::id()) << 64 | 0xfeed);
    let parent = "00f067aa0ba902b7";
    let res = reqwest::Client::new()
        .get(format!("{base}/api/products/"))
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let received = received.clone();
    let span = tokio::task::spawn_blocking(move || {
        wait_for(&received, |spans| {
            spans
                .iter()
                .find(|s| s.trace_id == trace_id && s.attribute("component") == Some("products"))
                .cloned()
        })
    })
    .await
    .unwrap();
    assert_eq!(span.parent_span_id, parent, "{span:?}");
    assert_eq!(span.attribute("http.response.status_code"), Some("200"));
}
