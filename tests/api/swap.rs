//! Hot swap: the products component replaced 20 times through the admin API while 32 clients
//! call it, without one failed request; a broken upload is refused and the old version serves on.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

const TOKEN: &str = "swap-test-admin-token-0123456789";
const CLIENTS: usize = 32;
const SWAPS: usize = 20;

/// The variant serving after `swaps` swaps: A first, then B, A, B...
fn expected(swaps: usize) -> char {
    if swaps.is_multiple_of(2) {
        'a'
    } else {
        'b'
    }
}

async fn put(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut req = client
        .put(format!("{base}/_admin/components/products"))
        .body(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

async fn current_variant(client: &reqwest::Client, base: &str) -> char {
    let res = client
        .get(format!("{base}/api/products/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    variant_of(&res)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_swapped_under_load_without_a_failed_request() {
    build_components();
    let a_bytes =
        std::fs::read(repo_root().join("target/wasm32-wasip2/release/products.wasm")).unwrap();
    let b_bytes = std::fs::read(variant_b()).unwrap();
    assert_ne!(a_bytes, b_bytes);

    let workdir = fresh_workdir("swap");
    let source = workdir.join("products.wasm");
    std::fs::write(&source, &a_bytes).unwrap();
    let manifest = write_test_manifest(&workdir, &source, &[]);
    let token_file = workdir.join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut cmd = host_command(&workdir);
    cmd.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .arg("--admin-token-file")
    .arg(&token_file);
    let host = spawn_serving(cmd, &workdir, &manifest);
    wait_healthy(&host.base);
    let base = host.base.clone();
    let admin = host.admin.clone().expect("the admin API's address");
    let client = reqwest::Client::new();
    assert_eq!(current_variant(&client, &base).await, 'a');

    // The admin API: no token, a wrong one, then the list. The host refuses before it reads
    // an upload, so these send a small body (a large one could meet a closed connection).
    let (status, _) = put(&client, &admin, None, b"\0asm".to_vec()).await;
    assert_eq!(status, 401);
    let (status, _) = put(
        &client,
        &admin,
        Some("not-the-token-at-all"),
        b"\0asm".to_vec(),
    )
    .await;
    assert_eq!(status, 403);
    let listed: serde_json::Value = client
        .get(format!("{admin}/_admin/components"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["name"], "products", "{listed}");
    let version_a = listed[0]["version"].as_str().unwrap().to_string();
    assert_eq!(version_a.len(), 64, "{listed}");
    assert!(listed[0]["loaded_at"].is_string(), "{listed}");

    // 32 clients for the whole test; each answer notes the swaps done before it was sent and
    // after it came back.
    let swaps_done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (client, base) = (client.clone(), base.clone());
        let (swaps_done, stop) = (swaps_done.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut failed = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let before = swaps_done.load(Ordering::SeqCst);
                match client.get(format!("{base}/api/products/")).send().await {
                    Ok(res) if res.status() == 200 => {
                        let variant = variant_of(&res);
                        match res.bytes().await {
                            Ok(_) => {
                                let after = swaps_done.load(Ordering::SeqCst);
                                seen.push((before, after, variant));
                            }
                            Err(err) => failed.push(format!("body: {err}")),
                        }
                    }
                    Ok(res) => failed.push(format!("status {}", res.status())),
                    Err(err) => failed.push(format!("{err}")),
                }
            }
            (seen, failed)
        }));
    }

    let started = Instant::now();
    let mut versions = vec![version_a.clone()];
    for swap in 1..=SWAPS {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let bytes = if expected(swap) == 'b' {
            b_bytes.clone()
        } else {
            a_bytes.clone()
        };
        let (status, body) = put(&client, &admin, Some(TOKEN), bytes).await;
        assert_eq!(status, 200, "swap {swap}: {body}");
        assert_eq!(body["name"], "products", "{body}");
        versions.push(body["version"].as_str().unwrap().to_string());
        swaps_done.store(swap, Ordering::SeqCst);
        assert_eq!(
            current_variant(&client, &base).await,
            expected(swap),
            "the first request after swap {swap}"
        );
    }
    let swapping_took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);

    let mut answered = 0;
    let mut failures = Vec::new();
    let mut variants_seen = std::collections::BTreeSet::new();
    for task in clients {
        let (seen, failed) = task.await.unwrap();
        failures.extend(failed);
        for &(before, after, variant) in &seen {
            // The version a request ran on was current at some moment while it was in flight.
            assert!(
                (before..=(after + 1).min(SWAPS)).any(|n| expected(n) == variant),
                "an answer from variant {variant} sent after {before} swaps, back after {after}"
            );
            variants_seen.insert(variant);
        }
        answered += seen.len();
    }
    eprintln!("{answered} answers during {SWAPS} swaps in {swapping_took:?}");
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert_eq!(variants_seen.len(), 2, "{variants_seen:?}");
    assert!(answered >= CLIENTS * SWAPS, "only {answered} answers");
    assert_ne!(versions[1], versions[0]);
    assert_eq!(versions[2], versions[0]);

    // Broken uploads are refused, and the last good version (B, after 20 swaps: A) serves on.
    let now = expected(SWAPS);
    let (status, body) = put(&client, &admin, Some(TOKEN), b"not wasm at all".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("products"),
        "{body}"
    );
    assert_eq!(current_variant(&client, &base).await, now);
    let empty = wat::parse_str("(component)").unwrap();
    let (status, body) = put(&client, &admin, Some(TOKEN), empty).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("incoming-handler"),
        "{body}"
    );
    assert_eq!(current_variant(&client, &base).await, now);
    let log = read_log_of(&host.log);
    assert!(log.contains("refused"), "{log}");

    // The watcher: B copied over the source file is swapped in.
    std::fs::write(&source, &b_bytes).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while current_variant(&client, &base).await != 'b' {
        assert!(Instant::now() < deadline, "the watcher never swapped in B");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// In the whole app, cart imports `shop:products/catalogue` and orders imports
/// `shop:products/inventory`: a products build without them (here the docs component, a real
/// HTTP component that exports nothing else) is refused, and the old products serves on, its
/// links included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_that_drops_an_imported_interface_is_refused() {
    build_components();
    let workdir = fresh_workdir("swap-links");
    let token_file = workdir.join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0", "--no-watch"])
        .args(["--admin-listen", "127.0.0.1:0", "--admin-token-file"])
        .arg(&token_file);
    let host = spawn_serving(cmd, &workdir, &repo_root().join("spin.toml"));
    let (base, log) = (host.base.clone(), host.log.clone());
    let admin = host.admin.clone().expect("the admin API's address");
    wait_healthy(&base);
    let client = reqwest::Client::new();

    let docs = std::fs::read(repo_root().join("target/wasm32-wasip2/release/docs.wasm")).unwrap();
    let (status, body) = put(&client, &admin, Some(TOKEN), docs).await;
    assert_eq!(status, 400, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("shop:products/"), "{body}");
    // The log is written off the request path: give it a moment.
    let logged = Instant::now() + Duration::from_secs(5);
    while !read_log_of(&log).contains("refused") {
        assert!(Instant::now() < logged, "the refusal was not logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Products still answers over HTTP, and over the link: a cart prices its lines through
    // `catalogue` from the products that kept serving.
    let app = TestApp {
        base: base.clone(),
        engine: Engine::Sqlite,
        client,
    };
    let product = app
        .create_product(json!({"name": "still here", "price": "2.50", "stock": 3}))
        .await;
    let buyer = user_token(fresh_user_id());
    let cart = app
        .add_to_cart(&buyer, product["id"].as_i64().unwrap(), 2)
        .await;
    assert_eq!(cart["total"], "5.00", "{cart}");
}

/// The admin API answers only on its own listener: the public one answers its paths with the
/// contract's 404 even with the token, an upload over the cap is a 413 read no further, and a
/// token without a listener (or the reverse) stops the host with the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_has_its_own_listener() {
    build_components();
    let workdir = fresh_workdir("admin-listener");
    let token_file = workdir.join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0", "--no-watch"])
        .args(["--admin-listen", "127.0.0.1:0", "--admin-token-file"])
        .arg(&token_file);
    let host = spawn_serving(cmd, &workdir, &repo_root().join("spin.toml"));
    wait_healthy(&host.base);
    let admin = host.admin.clone().expect("the admin API's address");
    assert_ne!(admin, host.base);
    let client = reqwest::Client::new();

    let public = client
        .get(format!("{}/_admin/components", host.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let body: serde_json::Value = public.json().await.unwrap();
    assert_eq!(body, json!({"detail": "Not found."}));
    let listed = client
        .get(format!("{admin}/_admin/components"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    // The catalogue is not served on the admin listener.
    let catalogue = client
        .get(format!("{admin}/api/products/"))
        .send()
        .await
        .unwrap();
    assert_eq!(catalogue.status(), 404);

    let huge = vec![0u8; 33 << 20];
    let (status, body) = put(&client, &admin, Some(TOKEN), huge).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("MiB"), "{body}");

    for (args, says) in [
        (
            vec!["--admin-token-file", token_file.to_str().unwrap()],
            "--admin-listen",
        ),
        (vec!["--admin-listen", "127.0.0.1:0"], "admin token"),
    ] {
        let output = host_command(&workdir)
            .env_remove("SHOP_ADMIN_TOKEN")
            .args(["up", "--listen", "127.0.0.1:0", "--no-watch"])
            .args(&args)
            .arg("--manifest")
            .arg(repo_root().join("spin.toml"))
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
