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
use crate::http::guest::call_component;
use crate::http::health::health;
use crate::http::linger::{LingeringStream, LINGER_BYTES};
use crate::http::responses::{not_found, overloaded, payload_too_large, ResponseBody};
use crate::http::site::Site;
use crate::http::spin_headers::{reported_client, with_spin_headers};
use crate::telemetry::{self, metrics, FailureReason};

/// The largest request body a component accepts (API.md: "413 body over 1 MiB"); mirrors
/// `shop_guest::request::MAX_BODY_BYTES`, which enforces it on chunked bodies and under Spin.
const MAX_BODY_BYTES: u64 = 1024 * 1024;

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
    let local_addr = listener.local_addr()?;
    let graceful = GracefulShutdown::new();
    let admission = Arc::new(Admission::new(
        edge.max_connections,
        site.app.limits.max_concurrent_requests as usize,
        edge.max_concurrent_hashing,
        site.app.limits.request_timeout,
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
            admission::turn_away(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (site, admission) = (site.clone(), admission.clone());
        let service = service_fn(move |request| {
            let (site, admission) = (site.clone(), admission.clone());
            async move {
                let response = handle(&site, &admission, request, client, local_addr).await;
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
/// head timeout and size cap, until the process ends. Anything but `/_admin/...` and
/// `/metrics` is a 404.
pub async fn serve_admin(admin: Arc<AdminApi>, listener: TcpListener, edge: Edge) {
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
        let admin = admin.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let admin = admin.clone();
            async move {
                let started = Instant::now();
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let response = if path.starts_with(ADMIN_PREFIX) || path == METRICS_PATH {
                    admin.answer(request).await
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
            if let Err(err) = connection.await {
                tracing::debug!("admin connection from {client}: {err}");
            }
        });
    }
}

/// Answers one request and writes its log line.
async fn handle(
    site: &Site,
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
        (health(&site.app, &method).await, "-")
    } else {
        let app = &site.app;
        match site.router.route(&path) {
            Some(matched) if declares_body_over_limit(&request) => {
                let index = matched.route.component;
                let response = payload_too_large();
                count_unserved(app, index, &response, started);
                (response, app.components[index].config.id.as_str())
            }
            Some(matched) => {
                let index = matched.route.component;
                let id = app.components[index].config.id.as_str();
                match admission.admit(&method, &path).await {
                    Ok(admitted) => {
                        let span = telemetry::request_span(&method, &matched.route.raw, id);
                        let client = reported_client(&site.trusted_proxies, &request, client);
                        let mut request = with_spin_headers(request, &matched, client, local_addr);
                        telemetry::continue_trace(&span, request.headers_mut());
                        let response = call_component(app, index, request, admitted)
                            .instrument(span.clone())
                            .await;
                        telemetry::record_status(&span, response.status());
                        (response, id)
                    }
                    Err(admission::Overloaded) => {
                        refused = Some("overloaded");
                        metrics().guest_failure(id, FailureReason::Overloaded);
                        let response = overloaded();
                        count_unserved(app, index, &response, started);
                        (response, id)
                    }
                }
            }
            None => (not_found(), "-"),
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
fn declares_body_over_limit(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.trim().parse::<u64>().ok())
        .is_some_and(|length| length > MAX_BODY_BYTES)
}
