//! What the public listener serves: the app, its routes, whom it trusts to name clients, and
//! under which address it is public.

use std::sync::Arc;

use crate::app::App;
use crate::http::client_addr::AddrBlock;
use crate::http::health::Readiness;
use crate::http::router::Router;

/// The app as the HTTP server sees it.
pub struct Site {
    /// The loaded app.
    pub app: Arc<App>,
    /// Its HTTP routes; a route names its component by index in `app.components`.
    pub router: Router,
    /// The proxies whose `X-Forwarded-For` names the client (`spin-client-addr`).
    pub trusted_proxies: Vec<AddrBlock>,
    /// The shop's public URL (`--public-url`, no trailing `/`), which the guests' links start
    /// with; without it they are relative unless the `Host` is the listener's own address.
    pub public_url: Option<String>,
    /// The last readiness answer (`/healthz`).
    pub readiness: Readiness,
}

impl Site {
    /// Whether the connection's peer is one of the trusted proxies.
    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|block| block.contains(ip))
    }
}
