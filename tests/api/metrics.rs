//! `GET /metrics` on the admin listener: Prometheus' text format behind the admin token,
//! counting requests by component and version, guest failures, link calls, pools, the process.

use std::collections::BTreeMap;

use serde_json::json;

use crate::helpers::*;
use crate::orders::product;

const TOKEN: &str = "metrics-test-admin-token-0123456789";

/// One sample of the text format: its name, labels and value.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format's samples (comments skipped; label values hold no `,` or `"` here).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("label=value");
                    (key.to_string(), value.trim_matches('"').to_string())
                })
                .collect();
            Sample {
                name: name.to_string(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include `labels`.
fn total(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| s.value)
        .sum()
}

/// A host with its admin API on, at most `max_requests` requests in guests at once.
fn host_with_admin(max_requests: &str) -> SpawnedHost {
    build_components();
    let workdir = fresh_workdir("metrics");
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
    .args([
        "--max-concurrent-requests",
        max_requests,
        "--admin-token-file",
    ])
    .arg(&token_file);
    let host = spawn_serving(cmd, &workdir, &repo_root().join("spin.toml"));
    wait_healthy(&host.base);
    host
}

async fn scrape(client: &reqwest::Client, admin: &str) -> String {
    let res = client
        .get(format!("{admin}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    res.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_component_and_version_behind_the_admin_token() {
    let host = host_with_admin("256");
    let admin = host.admin.clone().expect("the admin API's address");
    let client = reqwest::Client::new();

    let bare = client.get(format!("{admin}/metrics")).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    let wrong = client
        .get(format!("{admin}/metrics"))
        .bearer_auth("not-the-admin-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    // Not on the public listener.
    let public = client
        .get(format!("{}/metrics", host.base))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);

    let listed: serde_json::Value = client
        .get(format!("{admin}/_admin/components/products"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let version = &listed["version"].as_str().unwrap()[..12];
    let products_ok = [
        ("component", "products"),
        ("version", version),
        ("status", "200"),
    ];
    let before = scrape(&client, &admin).await;
    for _ in 0..100 {
        let res = client
            .get(format!("{}/api/products/", host.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let after = scrape(&client, &admin).await;
    let counted = |text: &str| total(text, "shop_http_requests_total", &products_ok);
    assert_eq!(counted(&after) - counted(&before), 100.0, "{after}");
    let timed = |text: &str| {
        let labels = [("component", "products"), ("version", version)];
        total(text, "shop_http_request_duration_seconds_count", &labels)
    };
    assert_eq!(timed(&after) - timed(&before), 100.0);
    // Every service's pool, and the host's own process.
    let pool = [("service", "products"), ("engine", "sqlite")];
    assert!(
        total(&after, "shop_database_pool_connections", &pool) >= 1.0,
        "{after}"
    );
    assert!(
        total(&after, "process_resident_memory_bytes", &[]) > 0.0,
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_shows_its_link_calls_and_refusals_count_as_overloaded() {
    let host = host_with_admin("1");
    let admin = host.admin.clone().expect("the admin API's address");
    let client = reqwest::Client::new();
    let app = TestApp {
        base: host.base.clone(),
        engine: Engine::Sqlite,
        client: client.clone(),
    };

    let (id, _) = product(&app, "3.00", 5).await;
    let token = user_token(fresh_user_id());
    app.add_to_cart(&token, id, 2).await;
    let body = json!({"shipping_address": "1 Metrics Lane"});
    let placed = app.json("POST", "/api/orders/", Some(&token), &body).await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    let text = scrape(&client, &admin).await;
    let calls = |to: &str, interface: &str| {
        let labels = [("from", "orders"), ("to", to), ("interface", interface)];
        total(&text, "shop_link_calls_total", &labels)
    };
    // Reserve the stock once; read the cart, then clear what was ordered.
    assert_eq!(
        calls("products", "shop:products/inventory@0.1.0"),
        1.0,
        "{text}"
    );
    assert_eq!(calls("cart", "shop:cart/carts@0.1.0"), 2.0, "{text}");
    // Each signed-in request confirms its token with accounts once: the order's, and the
    // add_item's in cart.
    assert_eq!(
        calls("accounts", "shop:accounts/sessions@0.1.0"),
        1.0,
        "{text}"
    );
    let cart_checks = [
        ("from", "cart"),
        ("to", "accounts"),
        ("interface", "shop:accounts/sessions@0.1.0"),
    ];
    assert_eq!(
        total(&text, "shop_link_calls_total", &cart_checks),
        1.0,
        "{text}"
    );
    let cart_reads = [("from", "cart"), ("to", "products")];
    assert!(
        total(&text, "shop_link_calls_total", &cart_reads) >= 1.0,
        "{text}"
    );
    let timed = [("from", "orders"), ("to", "products")];
    assert_eq!(
        total(&text, "shop_link_call_duration_seconds_count", &timed),
        1.0
    );

    // One request in a guest at a time: of many reads at once, those that find the one place
    // taken are turned away, and each is counted as overloaded. (A request's body is read
    // before it takes a place, so only requests in guests can hold it.)
    let mut turned_away = 0;
    for _ in 0..10 {
        let reads = (0..48).map(|_| {
            let client = client.clone();
            let url = format!("{}/api/products/", host.base);
            tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
        });
        for read in reads.collect::<Vec<_>>() {
            match read.await.unwrap() {
                503 => turned_away += 1,
                status => assert_eq!(status, 200),
            }
        }
        if turned_away > 0 {
            break;
        }
    }
    assert!(turned_away > 0, "no read was turned away with one place");
    let text = scrape(&client, &admin).await;
    let overloaded = [("component", "products"), ("reason", "overloaded")];
    assert_eq!(
        total(&text, "shop_guest_failures_total", &overloaded),
        f64::from(turned_away),
        "{text}"
    );
    let answered_503 = [("component", "products"), ("status", "503")];
    assert_eq!(
        total(&text, "shop_http_requests_total", &answered_503),
        f64::from(turned_away)
    );
}
