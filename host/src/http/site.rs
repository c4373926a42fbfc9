//! What the public listener serves: the app, its routes, and whom it trusts to name clients.

use std::sync::Arc;

use crate::app::App;
use crate::http::client_addr::AddrBlock;
use crate::http::router::Router;

/// The app as the HTTP server sees it.
pub struct Site {
    /// The loaded app.
    pub app: Arc<App>,
    /// Its HTTP routes; a route names its component by index in `app.components`.
    pub router: Router,
    /// The proxies whose `X-Forwarded-For` names the client (`spin-client-addr`).
    pub trusted_proxies: Vec<AddrBlock>,
}
