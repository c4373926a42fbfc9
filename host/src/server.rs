//! Incoming HTTP: the hyper server, Spin's request headers, and one fresh guest instance per
//! request.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, RETRY_AFTER,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::admission::{Admission, Admitted};
use crate::app::App;
use crate::linger::LingeringStream;
use crate::router::RouteMatch;
use crate::state::HostState;

/// The body of every response the host sends.
pub type ResponseBody = HyperOutgoingBody;

/// How long past its deadline a request's guest may keep the answer waiting: the epoch
/// deadline stops a guest that runs, this one a guest stuck waiting on the host.
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// The largest request body a component accepts (API.md: "413 body over 1 MiB"); mirrors
/// `shop_guest::request::MAX_BODY_BYTES`, which enforces it on chunked bodies and under Spin.
const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// How the server holds against slow clients and floods: `shop up`'s flags (the bound on
/// requests in flight is in [`crate::engine::Limits`], as the instance pool is sized by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// How long a client may take to send a request head: the first on its connection, or the
    /// next on a kept-alive one, so also how long a connection may stay idle.
    pub header_read_timeout: Duration,
    /// The largest request head read (a bigger one is answered 431); the most any connection
    /// buffers.
    pub max_header_size: usize,
    /// The most client connections open at once.
    pub max_connections: usize,
    /// The most requests hashing a password at once (`admission::PASSWORD_HASHING_ROUTES`).
    pub max_concurrent_hashing: usize,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and lets the
/// requests in flight finish, for at most `drain_timeout`.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
    edge: Edge,
) -> Result<()> {
    let local_addr = listener.local_addr()?;
    let graceful = GracefulShutdown::new();
    let admission = Arc::new(Admission::new(
        edge.max_connections,
        app.limits.max_concurrent_requests as usize,
        edge.max_concurrent_hashing,
        app.limits.request_timeout,
    ));
    admission.check_open_files_limit();
    let http = http_builder(&edge);
    tokio::pin!(shutdown);
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("accepting a connection failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(connection_permit) = admission.connection() else {
            crate::admission::turn_away(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, admission) = (app.clone(), admission.clone());
        let service = service_fn(move |request| {
            let (app, admission) = (app.clone(), admission.clone());
            async move {
                let response = handle(&app, &admission, request, client, local_addr).await;
                Ok::<_, Infallible>(response)
            }
        });
        // Lingering: a client still sending a body the answer did not wait for reads the
        // answer instead of a reset.
        let io = TokioIo::new(LingeringStream::new(stream));
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            let _open = connection_permit;
            if let Err(err) = connection.await {
                tracing::debug!("connection from {client}: {err}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!("requests still in flight after {drain_timeout:?}; stopping anyway");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The HTTP/1 connection settings of both listeners, from `edge`.
fn http_builder(edge: &Edge) -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper runs its head timer whenever it waits for a head: from the accept on a new
    // connection, and from the end of the last answer on a kept-alive one (hyper's http1 has no
    // idle timer of its own), so the one timeout closes slow heads and idle connections alike.
    // Without a timer hyper ignores the timeout, and half a head holds a connection for ever.
    http.keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(edge.header_read_timeout)
        .max_header_size(edge.max_header_size)
        // hyper refuses a buffer under 8 KiB (`--max-header-size` is checked for it too).
        .max_buf_size(edge.max_header_size.max(8 << 10));
    http
}

/// Serves the admin API alone on `listener` (`--admin-listen`), with the public listener's
/// head timeout and size cap, until the process ends. Anything but `/_admin/...` is a 404.
pub async fn serve_admin(app: Arc<App>, listener: TcpListener, edge: Edge) {
    let http = http_builder(&edge);
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!("accepting an admin connection failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let app = app.clone();
            async move {
                let started = Instant::now();
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let response = if path.starts_with(crate::swap::ADMIN_PREFIX) {
                    crate::swap::admin(&app, request).await
                } else {
                    json(StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#)
                };
                tracing::info!(
                    %client, %method, %path, status = response.status().as_u16(),
                    elapsed_ms = started.elapsed().as_millis() as u64, "admin request"
                );
                Ok::<_, Infallible>(response)
            }
        });
        let io = TokioIo::new(LingeringStream::new(stream));
        let connection = http.serve_connection(io, service);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!("admin connection from {client}: {err}");
            }
        });
    }
}

/// Answers one request and writes its log line.
async fn handle(
    app: &Arc<App>,
    admission: &Admission,
    request: Request<Incoming>,
    client: SocketAddr,
    local_addr: SocketAddr,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    // Why the host answered without the guest, when a bound turned the request away.
    let mut refused = None;
    let (response, component) = if path == "/healthz" {
        (health(app, &method).await, "-")
    } else {
        match app.router.route(&path) {
            Some(matched) if declares_body_over_limit(&request) => {
                let index = matched.route.component;
                (
                    payload_too_large(),
                    app.components[index].config.id.as_str(),
                )
            }
            Some(matched) => {
                let index = matched.route.component;
                let id = app.components[index].config.id.as_str();
                match admission.admit(&method, &path).await {
                    Ok(admitted) => {
                        let client = reported_client(app, &request, client);
                        let request = with_spin_headers(request, &matched, client, local_addr);
                        (call_component(app, index, request, admitted).await, id)
                    }
                    Err(crate::admission::Overloaded) => {
                        refused = Some("overloaded");
                        (overloaded(), id)
                    }
                }
            }
            None => (
                json(StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#),
                "-",
            ),
        }
    };
    tracing::info!(
        target: "shop::request",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        component = %component,
        duration = ?started.elapsed(),
        reason = refused,
    );
    response
}

/// 503 to a request past an admission bound (`admission.rs`): it may be retried in a second.
fn overloaded() -> Response<ResponseBody> {
    retry_soon(crate::admission::OVERLOADED_BODY)
}

/// A JSON 503 with `body` and `Retry-After: 1`: a refusal worth retrying in a second.
fn retry_soon(body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = json(StatusCode::SERVICE_UNAVAILABLE, body);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Whether the request's `Content-Length` says its body is over [`MAX_BODY_BYTES`]: then it is
/// answered without reading it, and without starting a guest only to refuse it.
fn declares_body_over_limit(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.trim().parse::<u64>().ok())
        .is_some_and(|length| length > MAX_BODY_BYTES)
}

/// 413, in the words of the guests' answer; the connection closes (lingering, see
/// `linger.rs`) as the body was not read.
fn payload_too_large() -> Response<ResponseBody> {
    let mut response = json(
        StatusCode::PAYLOAD_TOO_LARGE,
        r#"{"detail":"Request body exceeds the limit of 1 MiB."}"#,
    );
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// How long `/healthz` waits for the databases, all checked at once: a probe must get its answer
/// quickly whatever a database does.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /healthz`: 200 when every service's database answers within [`HEALTH_TIMEOUT`], else
/// 503 naming the services whose database does not (never an address: the answer is public).
async fn health(app: &App, method: &Method) -> Response<ResponseBody> {
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
        let Some(address) = crate::app::own_database(&component.config) else {
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

/// Runs the request through a fresh instance of component `index`. A guest that fails fails
/// its own request only: past its deadline with a JSON 504, trapped (or out of memory) with a
/// JSON 503.
async fn call_component(
    app: &Arc<App>,
    index: usize,
    request: Request<Incoming>,
    admitted: Admitted,
) -> Response<ResponseBody> {
    let component = &app.components[index];
    // The request runs to its end on the version current now, whatever swaps meanwhile.
    let version = component.current();
    let id = component.config.id.clone();
    let state = HostState::new(component.config.clone(), app.databases.clone(), app.limits);
    let deadline = state.deadline();
    let mut store = crate::state::store(&app.engine, state);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let prepared = (|| {
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let outparam = store.data_mut().http().new_response_outparam(sender)?;
        wasmtime::Result::Ok((request, outparam))
    })();
    let (request, outparam) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => return internal_error(&id, &err),
    };

    // The guest keeps running after it has sent the response head: it streams the body.
    let mut guest = tokio::spawn(async move {
        // The permits count guest instances: they go when the store does.
        let _admitted = admitted;
        let proxy = version.pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, request, outparam)
            .await
    });

    let answer = tokio::time::timeout_at((deadline + DEADLINE_GRACE).into(), receiver).await;
    match answer {
        Ok(Ok(Ok(response))) => {
            // Failures while the body streams can only be logged. A guest blocked on a client
            // that does not read is waiting on the host, where no epoch stops it: the deadline
            // does, or its instance (and admission permit) would be held for as long as the
            // client likes.
            tokio::spawn(async move {
                let streamed = (deadline + DEADLINE_GRACE).into();
                match tokio::time::timeout_at(streamed, &mut guest).await {
                    Ok(Ok(Err(err))) => log_guest_failure(&id, &err, deadline),
                    Ok(_) => {}
                    Err(_elapsed) => {
                        guest.abort();
                        tracing::error!(
                            component = %id,
                            reason = "deadline",
                            "the answer was still streaming at the request's deadline; stopped"
                        );
                    }
                }
            });
            response
        }
        Ok(Ok(Err(code))) => {
            tracing::error!(component = %id, "the guest answered with error code {code:?}");
            internal_error_response()
        }
        Ok(Err(_)) => match (&mut guest).await {
            // No response was set: the guest failed, or returned without one (a bug).
            Ok(Err(err)) => guest_failure(&id, &err, deadline),
            Ok(Ok(())) => {
                tracing::error!(component = %id, "the guest returned without setting a response");
                internal_error_response()
            }
            Err(join) => {
                tracing::error!(component = %id, "the guest's task ended: {join}");
                internal_error_response()
            }
        },
        Err(_elapsed) => {
            guest.abort();
            tracing::error!(
                component = %id,
                reason = "deadline",
                "the request passed its deadline waiting on the host; stopped"
            );
            deadline_response()
        }
    }
}

/// Whether `err`, a guest's failure, is its deadline passing.
fn is_deadline(err: &wasmtime::Error, deadline: Instant) -> bool {
    err.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt)
        || Instant::now() >= deadline
}

/// Logs a guest's failure on one line, naming the component and the reason (`deadline`,
/// `memory` or `trap`); the whole error, with the guest's backtrace, is logged at debug level.
fn log_guest_failure(id: &str, err: &wasmtime::Error, deadline: Instant) {
    let cause = err.root_cause().to_string();
    let reason = if is_deadline(err, deadline) {
        "deadline"
    } else if cause.contains("growing memory") || cause.contains("growing table") {
        "memory"
    } else {
        "trap"
    };
    tracing::error!(component = %id, reason, "the guest failed: {cause}");
    tracing::debug!(component = %id, "the guest's failure in full: {err:?}");
}

/// The answer to a request whose guest failed before it answered.
fn guest_failure(id: &str, err: &wasmtime::Error, deadline: Instant) -> Response<ResponseBody> {
    log_guest_failure(id, err, deadline);
    if is_deadline(err, deadline) {
        deadline_response()
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"detail":"The service failed to answer this request."}"#,
        )
    }
}

fn deadline_response() -> Response<ResponseBody> {
    json(
        StatusCode::GATEWAY_TIMEOUT,
        r#"{"detail":"The service did not answer in time."}"#,
    )
}

/// The client address a guest is told: the peer, or what trusted proxies forwarded (an address
/// from `X-Forwarded-For` gets port 0: the proxies do not record ports).
fn reported_client(app: &App, request: &Request<Incoming>, peer: SocketAddr) -> SocketAddr {
    if app.trusted_proxies.is_empty() {
        return peer;
    }
    let forwarded: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let ip = crate::client_addr::client_ip(peer, &forwarded, &app.trusted_proxies);
    if ip == peer.ip() {
        peer
    } else {
        SocketAddr::new(ip, 0)
    }
}

/// Adds Spin's `spin-*` request headers, and a `Host` header when the client sent none.
fn with_spin_headers(
    mut request: Request<Incoming>,
    matched: &RouteMatch<'_>,
    client: SocketAddr,
    local_addr: SocketAddr,
) -> Request<Incoming> {
    if !request.headers().contains_key(HOST) {
        if let Ok(host) = HeaderValue::from_str(&local_addr.to_string()) {
            request.headers_mut().insert(HOST, host);
        }
    }
    let host = request
        .headers()
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or_default();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let full_url = format!("http://{host}{path_and_query}");
    let route = &matched.route;
    let headers = request.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("spin-full-url", &full_url);
    set("spin-path-info", matched.path_info);
    set("spin-matched-route", &route.raw);
    set("spin-base-path", "/");
    set("spin-component-route", &route.prefix);
    set("spin-raw-component-route", &route.raw);
    set("spin-client-addr", &client.to_string());
    request
}

/// A JSON response with `body`.
pub(crate) fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
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

fn internal_error_response() -> Response<ResponseBody> {
    json(
        StatusCode::INTERNAL_SERVER_ERROR,
        r#"{"detail":"Internal server error."}"#,
    )
}

fn internal_error(component: &str, err: &wasmtime::Error) -> Response<ResponseBody> {
    tracing::error!(component, "cannot start the request: {err:?}");
    internal_error_response()
}
