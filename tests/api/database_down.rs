//! A Postgres that goes away under a running host and comes back, through a TCP proxy the test
//! controls (as Toxiproxy does), so that the shared server is never stopped: requests get a
//! fast 503 with `Retry-After`, readiness (`/healthz`) answers within about a second naming the
//! services whose database is down and no address, liveness (`/livez`) stays 200 (an
//! orchestrator must not restart a healthy pod for it), a flood of readiness probes is answered
//! from one check at a time, and the host recovers by itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::helpers::{
    build_components, fresh_postgres_database, fresh_workdir, host_command, repo_root,
    spawn_serving, wait_healthy, Engine, TestApp,
};

/// A TCP proxy to the test's Postgres that can cut every connection and refuse new ones.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    pipes: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let pipes: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (accept_cut, accept_pipes) = (cut.clone(), pipes.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if accept_cut.load(Ordering::SeqCst) {
                    // Down: the connection is closed as soon as it is made.
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                accept_pipes.lock().unwrap().push(pipe.abort_handle());
            }
        });
        Self { port, cut, pipes }
    }

    /// The database goes away: open connections are dropped, new ones closed at once.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for pipe in self.pipes.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    /// The database is back.
    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// `url` with its host and port replaced by the proxy's.
fn through(url: &str, port: u16) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(port)).unwrap();
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_that_goes_away_gets_fast_503s_and_comes_back() {
    build_components();
    let Some(database) = fresh_postgres_database() else {
        return;
    };
    let server = url::Url::parse(&database).unwrap();
    let upstream = format!(
        "{}:{}",
        server.host_str().unwrap(),
        server.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(upstream).await;
    let proxied = through(&database, proxy.port);
    let database_name = server.path().trim_start_matches('/').to_owned();

    let workdir = fresh_workdir("db-down");
    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0", "--no-watch"])
        .args(["--database-url", &proxied]);
    let host = spawn_serving(cmd, &workdir, &repo_root().join("spin.toml"));
    wait_healthy(&host.base);
    let app = TestApp {
        base: host.base.clone(),
        engine: Engine::Postgres,
        client: reqwest::Client::new(),
    };
    assert_eq!(app.get("/api/products/", None).await.status, 200);

    proxy.cut();
    let started = Instant::now();
    let answer = app.get("/api/products/", None).await;
    let took = started.elapsed();
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert!(answer.body["detail"].is_string(), "{:?}", answer.body);
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert!(took < Duration::from_secs(3), "the 503 took {took:?}");

    // Readiness answers from a result at most a second old: red within about that.
    let started = Instant::now();
    let health = loop {
        let health = app
            .client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap();
        if health.status() != 200 || started.elapsed() > Duration::from_secs(3) {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = started.elapsed();
    assert_eq!(health.status(), 503);
    assert_eq!(
        health
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let text = health.text().await.unwrap();
    assert!(
        took < Duration::from_millis(3000),
        "/healthz went red after {took:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["unavailable"],
        serde_json::json!(["accounts", "cart", "orders", "products"]),
        "{text}"
    );
    // Liveness checks the process alone: green all through the outage, at once.
    for _ in 0..3 {
        let started = Instant::now();
        let live = app
            .client
            .get(format!("{}/livez", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        let body: serde_json::Value = live.json().await.unwrap();
        assert_eq!(body["status"], "ok");
    }
    // 100 readiness probes at once: one check at a time, its answer reused for a second, so
    // they all have their 503 within a couple of checks' time, not 100 checks' queue.
    let started = Instant::now();
    let probes: Vec<_> = (0..100)
        .map(|_| {
            let (client, base) = (app.client.clone(), app.base.clone());
            tokio::spawn(async move {
                client
                    .get(format!("{base}/healthz"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for probe in probes {
        assert_eq!(probe.await.unwrap(), 503);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "100 readiness probes took {took:?}"
    );
    for secret in [
        "postgres://",
        "127.0.0.1",
        &proxy.port.to_string(),
        &database_name,
        "shop_",
        "postgres@",
    ] {
        assert!(!text.contains(secret), "/healthz shows `{secret}`: {text}");
    }

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = app.get("/api/products/", None).await;
        if answer.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after the database came back: {} {:?}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Readiness answers from a result at most a second old: green within about that.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let health = app
            .client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap();
        if health.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness still {}",
            health.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
