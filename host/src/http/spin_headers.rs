//! Spin's `spin-*` request headers, and the client address they report.

use std::net::SocketAddr;

use http::header::{HeaderName, HeaderValue, HOST};
use http::Request;
use hyper::body::Incoming;

use crate::http::client_addr::{client_ip, AddrBlock};
use crate::http::router::RouteMatch;

/// The client address a guest is told: the peer, or what trusted proxies forwarded (an address
/// from `X-Forwarded-For` gets port 0: the proxies do not record ports).
pub fn reported_client(
    trusted_proxies: &[AddrBlock],
    request: &Request<Incoming>,
    peer: SocketAddr,
) -> SocketAddr {
    if trusted_proxies.is_empty() {
        return peer;
    }
    let forwarded: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let ip = client_ip(peer, &forwarded, trusted_proxies);
    if ip == peer.ip() {
        peer
    } else {
        SocketAddr::new(ip, 0)
    }
}

/// Adds Spin's `spin-*` request headers, and a `Host` header when the client sent none.
pub fn with_spin_headers(
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
