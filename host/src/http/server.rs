//! Incoming HTTP: the hyper server, Spin's request headers, and one fresh guest instance per
//! request.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use http::header::CONTENT_LENGTH;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::Instrument as _;

use crate::app::App;
use crate::http::admin::{AdminApi, ADMIN_PREFIX, MAX_UPLOAD, METRICS_PATH};
use crate::http::admission::{self, Admission};
use crate::http::body::BodyBudget;
use crate::http::guest::call_component;
use crate::http::health::{liveness, LIVENESS_PATH, READINESS_PATH};
use crate::http::linger::{LingeringStream, LINGER_BYTES};
use crate::http::per_client::PerClient;
use crate::http::responses::{
    method_not_implemented, not_found, overloaded, payload_too_large, throttled,
    too_many_from_client, ResponseBody,
};
use crate::http::router::RouteMatch;
use crate::http::site::Site;
use crate::http::spin_headers::{reported_client, with_spin_headers};
use crate::telemetry::{self, metrics, FailureReason};

/// The largest request body a component accepts (API.md: "413 body over 1 MiB"); mirrors
/// `shop_guest::request::MAX_BODY_BYTES`, which enforces it under Spin.
const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// The route that registers an account: throttled per client address (`--registrations-per-client`).
const REGISTER_PATH: &str = "/api/accounts/register/";

/// The most connections the admin listener holds at once: it serves an operator or two and a
/// metrics scraper.
pub const MAX_ADMIN_CONNECTIONS: usize = 16;

/// How the server holds against slow clients and floods: `shop up`'s flags (the bound on
/// requests in flight is in [`crate::runtime::engine::Limits`], as the instance pool is sized by it).
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
    /// How long a client may take to send a request's body, after its head.
    pub body_read_timeout: Duration,
    /// The most memory the bodies read and not yet done with may hold at once.
    pub max_body_buffer: usize,
    /// The most connections one client address holds open (a trusted proxy's are not counted).
    pub max_connections_per_client: usize,
    /// The most requests of one client address in guests at once; more wait their turn.
    pub max_requests_per_client: usize,
    /// How many accounts one client address may register a minute.
    pub registrations_per_minute: u32,
}

/// The bounds the public listener shares between its connections.
struct Bounds {
    admission: Admission,
    per_client: Arc<PerClient>,
    bodies: BodyBudget,
    body_read_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and lets the
/// requests in flight finish, for at most `drain_timeout`.
pub async fn serve(
    site: Arc<Site>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
    edge: Edge,
) -> Result<()> {
    let graceful = GracefulShutdown::new();
    let bounds = Arc::new(Bounds {
        admission: Admission::new(
            edge.max_connections,
            site.app.limits.max_concurrent_requests as usize,
            edge.max_concurrent_hashing,
            site.app.limits.request_timeout,
        ),
        per_client: Arc::new(PerClient::new(
            edge.max_connections_per_client,
            edge.max_requests_per_client,
            edge.registrations_per_minute,
        )),
        bodies: BodyBudget::new(edge.max_body_buffer),
        body_read_timeout: edge.body_read_timeout,
    });
    bounds.admission.check_open_files_limit();
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
        let Some(connection_permit) = bounds.admission.connection() else {
            admission::turn_away(stream);
            continue;
        };
        // A trusted proxy carries everyone's connections: only the others count per client.
        let client_connection = if site.is_trusted_proxy(client.ip()) {
            None
        } else {
            match bounds.per_client.connection(client.ip()) {
                Some(counted) => Some(counted),
                None => {
                    tracing::debug!(%client, "turned away: --max-connections-per-client");
                    admission::turn_away_client(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        // The address this connection reached (the listener's may be 0.0.0.0).
        let Ok(local_addr) = stream.local_addr() else {
            continue;
        };
        let (site, bounds) = (site.clone(), bounds.clone());
        let service = service_fn(move |request| {
            let (site, bounds) = (site.clone(), bounds.clone());
            async move {
                let response = handle(&site, &bounds, request, client, local_addr).await;
                Ok::<_, Infallible>(response)
            }
        });
        // Lingering: a client still sending a body the answer did not wait for reads the
        // answer instead of a reset.
        let io = TokioIo::new(LingeringStream::new(stream));
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            let _open = (connection_permit, client_connection);
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
/// head timeout and size cap and at most [`MAX_ADMIN_CONNECTIONS`] connections, until the
/// process ends. Anything but `/_admin/...` and `/metrics` is a 404.
pub async fn serve_admin(admin: Arc<AdminApi>, listener: TcpListener, edge: Edge) {
    let http = http_builder(&edge);
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!("accepting an admin connection failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(open) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%client, "admin connection turned away: {MAX_ADMIN_CONNECTIONS} are open");
            admission::turn_away(stream);
            continue;
        };
        let admin = admin.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let admin = admin.clone();
            async move {
                let started = Instant::now();
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let response = if !admission::is_known_method(&method) {
                    method_not_implemented(&method)
                } else if path.starts_with(ADMIN_PREFIX) || path == METRICS_PATH {
                    admin.answer(request, client.ip()).await
                } else {
                    not_found()
                };
                tracing::info!(
                    %client, %method, %path, status = response.status().as_u16(),
                    elapsed_ms = started.elapsed().as_millis() as u64, "admin request"
                );
                Ok::<_, Infallible>(response)
            }
        });
        // A refused upload (over MAX_UPLOAD, or before the token is checked) is read to its end
        // while closing, so that the client, still sending, gets the answer and not a reset.
        let io = TokioIo::new(LingeringStream::with_limit(
            stream,
            MAX_UPLOAD + LINGER_BYTES,
        ));
        let connection = http.serve_connection(io, service);
        tokio::spawn(async move {
            let _open = open;
            if let Err(err) = connection.await {
                tracing::debug!("admin connection from {client}: {err}");
            }
        });
    }
}

/// Answers one request and writes its log line.
async fn handle(
    site: &Site,
    bounds: &Bounds,
    request: Request<Incoming>,
    client: SocketAddr,
    local_addr: SocketAddr,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut line = RequestLine {
        method: &method,
        path: &path,
        component: "-",
        started,
        written: false,
    };
    // Why the host answered without the guest, when a bound turned the request away.
    let mut refused = None;
    let response = if !admission::is_known_method(&method) {
        refused = Some("unknown method");
        method_not_implemented(&method)
    } else if path == LIVENESS_PATH {
        liveness(&method)
    } else if path == READINESS_PATH {
        site.readiness.answer(&site.app, &method).await
    } else {
        match site.router.route(&path) {
            Some(matched) => {
                let index = matched.route.component;
                line.component = site.app.components[index].config.id.as_str();
                let guest = Guest {
                    site,
                    bounds,
                    matched: &matched,
                    client,
                    local_addr,
                };
                match guest.serve(request, &method, &path).await {
                    Ok(response) => response,
                    Err((response, reason)) => {
                        refused = Some(reason);
                        count_unserved(&site.app, index, &response, started);
                        response
                    }
                }
            }
            None => not_found(),
        }
    };
    line.write(response.status().as_u16(), refused);
    response
}

/// A request's log line. hyper drops the request's future when its client goes away before
/// the answer; the line is then written on drop, with nginx's 499 ("client closed request")
/// and how long the request had run: such a request left no line before, though its guest
/// goes on (a checkout still ends, and holds its user's claim meanwhile).
struct RequestLine<'a> {
    method: &'a http::Method,
    path: &'a str,
    /// The component routed to, once known; "-" for the host's own answers.
    component: &'a str,
    started: Instant,
    written: bool,
}

/// The status logged for a request whose client went away before the answer.
const CLIENT_CLOSED_REQUEST: u16 = 499;

impl RequestLine<'_> {
    /// Writes the line of an answered request.
    fn write(mut self, status: u16, reason: Option<&str>) {
        self.written = true;
        self.emit(status, reason);
    }

    fn emit(&self, status: u16, reason: Option<&str>) {
        tracing::info!(
            target: "shop::request",
            method = %self.method,
            path = %self.path,
            status,
            component = %self.component,
            duration = ?self.started.elapsed(),
            reason,
        );
    }
}

impl Drop for RequestLine<'_> {
    fn drop(&mut self) {
        if !self.written {
            self.emit(CLIENT_CLOSED_REQUEST, Some("client went away"));
        }
    }
}

/// A request routed to a component, and what it needs to get there.
struct Guest<'a> {
    site: &'a Site,
    bounds: &'a Bounds,
    matched: &'a RouteMatch<'a>,
    client: SocketAddr,
    local_addr: SocketAddr,
}

impl Guest<'_> {
    /// Runs the request in its component once it passes every bound, in the order that costs
    /// least: the declared size, the client's registration budget, the body read whole (a slow
    /// one holds a connection, not a slot), the client's share of the slots, then the hashing
    /// and request slots. `Err` is the host's own answer, with the reason to log.
    async fn serve(
        &self,
        request: Request<Incoming>,
        method: &http::Method,
        path: &str,
    ) -> Result<Response<ResponseBody>, (Response<ResponseBody>, &'static str)> {
        let app = &self.site.app;
        let index = self.matched.route.component;
        let id = app.components[index].config.id.as_str();
        if declares_body_over_limit(&request) {
            return Err((payload_too_large(), "body too large"));
        }
        let client = reported_client(&self.site.trusted_proxies, &request, self.client);
        if method == http::Method::POST && path == REGISTER_PATH {
            if let Err(wait) = self.bounds.per_client.register(client.ip()) {
                return Err((throttled(wait), "registrations per client"));
            }
        }
        let (request, body_memory) = self
            .bounds
            .bodies
            .read(
                request,
                MAX_BODY_BYTES as usize,
                self.bounds.body_read_timeout,
            )
            .await
            .map_err(|refusal| (refusal.response(), refusal.reason()))?;
        let Some(client_share) = self.bounds.per_client.request(client.ip()).await else {
            return Err((too_many_from_client(), "requests per client"));
        };
        let admitted = match self.bounds.admission.admit(method, path).await {
            Ok(admitted) => admitted.holding(client_share).holding(body_memory),
            Err(admission::Overloaded) => {
                metrics().guest_failure(id, FailureReason::Overloaded);
                return Err((overloaded(), "overloaded"));
            }
        };
        let span = telemetry::request_span(method, &self.matched.route.raw, id);
        let mut request = with_spin_headers(
            request,
            self.matched,
            client,
            self.local_addr,
            self.site.public_url.as_deref(),
        );
        telemetry::continue_trace(&span, request.headers_mut());
        let response = call_component(app, index, request, admitted)
            .instrument(span.clone())
            .await;
        telemetry::record_status(&span, response.status());
        Ok(response)
    }
}

/// Counts an answer the host gave for component `index` without running it, under the version
/// that would have served it.
fn count_unserved(app: &App, index: usize, response: &Response<ResponseBody>, started: Instant) {
    let component = &app.components[index];
    metrics()
        .version(&component.config.id, &component.current().version)
        .observe(response.status(), started.elapsed());
}

/// Whether the request's `Content-Length` says its body is over [`MAX_BODY_BYTES`]: then it is
/// answered without reading it, and without starting a guest only to refuse it.
fn declares_body_over_limit<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.trim().parse::<u64>().ok())
        .is_some_and(|length| length > MAX_BODY_BYTES)
}
