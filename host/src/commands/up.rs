//! `shop up`: loads the app, opens its listeners and serves it until Ctrl-C or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::net::TcpListener;

use crate::app::{self, AppOptions};
use crate::config::manifest::Manifest;
use crate::http::admin::{AdminApi, ADMIN_PREFIX};
use crate::http::client_addr::AddrBlock;
use crate::http::router::Router;
use crate::http::server::{self, Edge};
use crate::http::site::Site;
use crate::swap::Swapper;

/// The command-line options of `shop up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The app to serve.
    pub app: AppOptions,
    /// Whether to run `shop build` first.
    pub build: bool,
    /// The address to listen on.
    pub listen: String,
    /// How long shutdown waits for the requests in flight.
    pub shutdown_timeout: Duration,
    /// Whether to swap a component when its source file changes.
    pub watch: bool,
    /// The token of the admin API (`/_admin/...`); `None` keeps the API off.
    pub admin_token: Option<String>,
    /// Where the admin API listens (its own listener, `--admin-listen`).
    pub admin_listen: Option<String>,
    /// Whether the admin API may listen on an address other than loopback
    /// (`--admin-listen-public`): its token then crosses the network in clear text.
    pub admin_listen_public: bool,
    /// The shop's public URL (`--public-url`), for the links the guests build.
    pub public_url: Option<String>,
    /// How the server holds against slow clients and floods.
    pub edge: Edge,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<AddrBlock>,
}

/// Loads, checks and serves the app until Ctrl-C or SIGTERM.
pub async fn run(options: UpOptions) -> Result<()> {
    // Command-line errors surface before anything is built or loaded.
    let admin_listen = match (&options.admin_token, &options.admin_listen) {
        (Some(_), Some(listen)) => Some(admin_address(listen)),
        (None, None) => None,
        (Some(_), None) => bail!(
            "the admin API has a token but no listener: add --admin-listen 127.0.0.1:3001 (it \
             is never served on the public --listen address)"
        ),
        (None, Some(_)) => bail!(
            "--admin-listen needs the admin token: --admin-token-file PATH or SHOP_ADMIN_TOKEN"
        ),
    };
    if let Some(addr) = admin_listen
        .as_deref()
        .and_then(|listen| listen.parse::<std::net::SocketAddr>().ok())
    {
        check_admin_address(addr, options.admin_listen_public, false)?;
    }
    if options.build {
        let manifest = Manifest::load(&options.app.manifest)?;
        crate::commands::build::build_all(&manifest).await?;
    }
    let app = Arc::new(app::load(&options.app).await?);
    let ids: Vec<&str> = app
        .components
        .iter()
        .map(|c| c.config.id.as_str())
        .collect();
    let router = Router::from_manifest(&app.manifest, &ids)?;
    let admin_listener = match &admin_listen {
        Some(listen) => {
            let listener = bind(listen).await?;
            // A host name (`localhost:3001`) is checked once it is bound.
            check_admin_address(listener.local_addr()?, options.admin_listen_public, true)?;
            Some(listener)
        }
        None => None,
    };
    let listener = bind(&options.listen).await?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() && options.trusted_proxies.is_empty() {
        tracing::warn!(
            "listening on {local} without --trusted-proxies: behind a load balancer or ingress \
             every client then has the proxy's address, and the per-address bounds (failed \
             logins, registrations, connections, requests) are shared by all of them; give the \
             proxies' addresses with --trusted-proxies (README, \"Client addresses\")"
        );
    }
    let swapper = Arc::new(Swapper::new(app.clone()));
    if options.watch {
        tokio::spawn(crate::swap::watch(swapper.clone()));
    }
    if let (Some(admin_listener), Some(token)) = (admin_listener, options.admin_token.clone()) {
        println!(
            "Admin API on http://{}{ADMIN_PREFIX}components",
            admin_listener.local_addr()?,
        );
        let admin = Arc::new(AdminApi::new(swapper, token));
        tokio::spawn(server::serve_admin(admin, admin_listener, options.edge));
    }
    let site = Arc::new(Site {
        app,
        router,
        trusted_proxies: options.trusted_proxies.clone(),
        public_url: options.public_url.clone(),
        readiness: Default::default(),
    });
    print_routes(&site, listener.local_addr()?);
    server::serve(
        site,
        listener,
        shutdown_signal(),
        options.shutdown_timeout,
        options.edge,
    )
    .await
}

async fn bind(listen: &str) -> Result<TcpListener> {
    match TcpListener::bind(listen).await {
        Ok(listener) => Ok(listener),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "{listen} is already in use: stop the program that listens there, or choose another address with --listen (e.g. --listen 127.0.0.1:3001)"
        ),
        Err(err) => bail!("cannot listen on {listen}: {err}; choose another address with --listen"),
    }
}

/// Refuses an admin listener off loopback unless `public` (`--admin-listen-public`) says the
/// operator means it: the admin token would cross the network in clear text, to anyone who
/// can reach the address. `warn`: say so in the log when it is allowed.
fn check_admin_address(addr: std::net::SocketAddr, public: bool, warn: bool) -> Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if !public {
        bail!(
            "--admin-listen {addr} is not a loopback address: the admin API's token would cross \
             the network in clear text. Keep it on 127.0.0.1 (reach it through `kubectl \
             port-forward` or an SSH tunnel), or add --admin-listen-public if a TLS proxy or a \
             private network guards that address"
        );
    }
    if warn {
        tracing::warn!(
            "the admin API listens on {addr}, off loopback (--admin-listen-public): make sure \
             only a TLS proxy or a private network reaches it"
        );
    }
    Ok(())
}

/// `--admin-listen`'s address: a bare port is on loopback.
fn admin_address(listen: &str) -> String {
    if listen.parse::<u16>().is_ok() {
        format!("127.0.0.1:{listen}")
    } else {
        listen.to_owned()
    }
}

/// Prints the address and the routes, as `spin up` does.
fn print_routes(site: &Site, addr: std::net::SocketAddr) {
    use std::io::Write;
    let base = format!("http://{addr}");
    let mut out = String::new();
    out.push_str(&format!("Serving {base}\nAvailable Routes:\n"));
    for route in site.router.routes() {
        let id = &site.app.components[route.component].config.id;
        let wildcard = if route.wildcard { " (wildcard)" } else { "" };
        out.push_str(&format!("  {id}: {base}{}{wildcard}\n", route.prefix));
    }
    out.push_str(&format!("  (liveness): {base}/livez\n"));
    out.push_str(&format!("  (readiness): {base}/healthz\n"));
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down: draining requests in flight");
}
