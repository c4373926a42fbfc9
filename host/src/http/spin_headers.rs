//! Spin's `spin-*` request headers, and the client address they report.

use std::net::SocketAddr;

use http::header::{HeaderName, HeaderValue, HOST};
use http::Request;

use crate::http::client_addr::{client_ip, AddrBlock};
use crate::http::router::RouteMatch;

/// The client address a guest is told: the peer, or what trusted proxies forwarded (an address
/// from `X-Forwarded-For` gets port 0: the proxies do not record ports).
pub fn reported_client<B>(
    trusted_proxies: &[AddrBlock],
    request: &Request<B>,
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
/// `local_addr` is the address the client's connection reached; `public_url` the shop's
/// public address (`--public-url`), if configured (see [`full_url`]).
pub fn with_spin_headers<B>(
    mut request: Request<B>,
    matched: &RouteMatch<'_>,
    client: SocketAddr,
    local_addr: SocketAddr,
    public_url: Option<&str>,
) -> Request<B> {
    if !request.headers().contains_key(HOST) {
        if let Ok(host) = HeaderValue::from_str(&local_addr.to_string()) {
            request.headers_mut().insert(HOST, host);
        }
    }
    let host = request
        .headers()
        .get(HOST)
        .and_then(|host| host.to_str().ok());
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let full_url = full_url(public_url, host, local_addr, &path_and_query);
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

/// The URL the client asked for, as the guests build their `next`/`previous` links from it
/// (Spin's `spin-full-url`). The `Host` header is the client's own words: reflected, a forged
/// one would put an attacker's site in the links a cache then serves to everyone. So the URL
/// is `public_url` (`--public-url`) with the path when configured; else absolute only when
/// the `Host` names the very address the connection reached (`127.0.0.1:3000`, or
/// `localhost:3000` on loopback), which no one can point elsewhere; else the path alone, and
/// the links are relative.
pub fn full_url(
    public_url: Option<&str>,
    host: Option<&str>,
    local_addr: SocketAddr,
    path_and_query: &str,
) -> String {
    if let Some(base) = public_url {
        return format!("{}{path_and_query}", base.trim_end_matches('/'));
    }
    match host {
        Some(host) if is_own_address(host, local_addr) => {
            format!("http://{}{path_and_query}", host.to_ascii_lowercase())
        }
        _ => path_and_query.to_owned(),
    }
}

/// Whether a `Host` header names `local_addr` itself.
fn is_own_address(host: &str, local_addr: SocketAddr) -> bool {
    let host = host.to_ascii_lowercase();
    if host == local_addr.to_string() {
        return true;
    }
    local_addr.ip().is_loopback() && host == format!("localhost:{}", local_addr.port())
}

/// Checks `--public-url`: an `http://` or `https://` URL with a host and no query; returns it
/// without its trailing `/`.
pub fn parse_public_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text.trim()).map_err(|err| {
        format!("`{text}` is not a URL ({err}): give e.g. https://shop.example.com")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "`{text}`: give an http:// or https:// URL with a host, e.g. https://shop.example.com"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "`{text}`: give the URL without a query, fragment or login"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_absolute_only_from_a_host_the_operator_vouches_for() {
        let local: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let pq = "/api/products/?page=2";
        assert_eq!(
            full_url(
                Some("https://shop.example.com"),
                Some("evil.example"),
                local,
                pq
            ),
            "https://shop.example.com/api/products/?page=2"
        );
        assert_eq!(
            full_url(None, Some("127.0.0.1:3000"), local, pq),
            "http://127.0.0.1:3000/api/products/?page=2"
        );
        assert_eq!(
            full_url(None, Some("LOCALHOST:3000"), local, pq),
            "http://localhost:3000/api/products/?page=2"
        );
        for forged in ["evil.example", "127.0.0.1:3001", "127.0.0.1:3000@evil", ""] {
            assert_eq!(full_url(None, Some(forged), local, pq), pq, "{forged}");
        }
        let public: SocketAddr = "10.1.2.3:3000".parse().unwrap();
        assert_eq!(full_url(None, Some("localhost:3000"), public, pq), pq);
    }

    #[test]
    fn a_public_url_is_checked() {
        assert_eq!(
            parse_public_url("https://shop.example.com/").unwrap(),
            "https://shop.example.com"
        );
        assert_eq!(
            parse_public_url("https://example.com/shop/").unwrap(),
            "https://example.com/shop"
        );
        for bad in [
            "shop.example.com",
            "ftp://x",
            "https://x/?a=1",
            "https://u:p@x",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }
}
