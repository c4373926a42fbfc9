//! Several hosts on one Postgres: the host keeps no state of its own, so the checkout race spread
//! over three hosts keeps every invariant of one.

use std::collections::BTreeMap;

use serde_json::json;

use crate::helpers::*;

fn client_of(host: &HostInfo) -> TestApp {
    TestApp {
        base: host.base.clone(),
        engine: Engine::Postgres,
        client: reqwest::Client::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hosts_one_postgres_never_oversell() {
    let Some(url) = fresh_postgres_database() else {
        return;
    };
    // Three hosts × four services × 4 connections, beside the suite's shared host (32).
    let hosts: Vec<HostInfo> = (0..3)
        .map(|i| {
            start_host(
                &[
                    "--database-url",
                    &url,
                    "--postgres-pool-size",
                    "4",
                    "--postgres-acquire-timeout",
                    "30s",
                ],
                &format!("cluster{i}"),
            )
        })
        .collect();
    let apps: Vec<TestApp> = hosts.iter().map(client_of).collect();
    let stock = 10;
    let made = apps[0].create_product(json!({"name": format!("cluster {}", unique_suffix()), "price": "3.33", "stock": stock})).await;
    let id = made["id"].as_i64().unwrap();

    // 45 buyers, each with one unit in a cart filled through one host; each places its order
    // through another host and retries it, same Idempotency-Key, through the third, all at once.
    let buyers = 45;
    let mut tokens = Vec::new();
    for b in 0..buyers {
        let token = user_token(fresh_user_id());
        apps[b % 3].add_to_cart(&token, id, 1).await;
        tokens.push(token);
    }
    let mut tries = tokio::task::JoinSet::new();
    for (b, token) in tokens.into_iter().enumerate() {
        let key = format!("cluster-{b}-{}", unique_suffix());
        for attempt in 1..=2 {
            let client = apps[(b + attempt) % 3].client.clone();
            let base = apps[(b + attempt) % 3].base.clone();
            let (token, key) = (token.clone(), key.clone());
            tries.spawn(async move {
                let res = client
                    .post(format!("{base}/api/orders/"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", &key)
                    .json(&json!({"shipping_address": "1 Cluster Way"}))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let body: serde_json::Value = res.json().await.unwrap_or_default();
                (b, status, body)
            });
        }
    }
    let mut answers: BTreeMap<usize, Vec<(u16, serde_json::Value)>> = BTreeMap::new();
    while let Some(answer) = tries.join_next().await {
        let (b, status, body) = answer.unwrap();
        assert!(status == 201 || status == 409, "buyer {b}: {status} {body}");
        answers.entry(b).or_default().push((status, body));
    }
    let mut orders = 0;
    for (b, pair) in &answers {
        let ids: Vec<i64> = pair
            .iter()
            .filter(|(s, _)| *s == 201)
            .map(|(_, o)| o["id"].as_i64().unwrap())
            .collect();
        if !ids.is_empty() {
            orders += 1;
            assert!(
                ids.iter().all(|i| *i == ids[0]),
                "buyer {b}: one order per key, got {ids:?}"
            );
        }
    }
    assert_eq!(orders, stock, "exactly as many orders as units");
    for app in &apps {
        assert_eq!(app.stock_of(id).await, 0, "every host sees the same stock");
    }
    // Units held by live orders, read through any host: stock put in.
    let staff = staff_token();
    let mut held = 0;
    let mut page = 1;
    loop {
        let list = apps[page % 3]
            .get(
                &format!("/api/orders/?page_size=100&page={page}"),
                Some(&staff),
            )
            .await;
        for order in list.body["results"].as_array().unwrap() {
            for item in order["items"].as_array().unwrap() {
                if item["product_id"] == id && order["status"] != "cancelled" {
                    held += item["quantity"].as_i64().unwrap();
                }
            }
        }
        if list.body["next"].is_null() {
            break;
        }
        page += 1;
    }
    assert_eq!(held, stock, "stock now (0) + units held = stock put in");
}

/// `shop migrate` prepares every service's schema in a Postgres (the step before `spin up`),
/// idempotently, and exits.
#[test]
fn migrate_prepares_every_schema_and_exits() {
    let Some(url) = fresh_postgres_database() else {
        return;
    };
    build_components();
    let workdir = std::env::temp_dir().join(format!("shop-migrate-{}", unique_suffix()));
    std::fs::create_dir_all(&workdir).unwrap();
    for run in 1..=2 {
        let out = host_command(&workdir)
            .args(["migrate", "--manifest"])
            .arg(repo_root().join("spin.toml"))
            .args(["--database-url", &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tables = std::process::Command::new("psql")
        .args([&url, "-Atc"])
        .arg("SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_schema IN ('products','accounts','cart','orders') ORDER BY 1")
        .output()
        .unwrap();
    let tables = String::from_utf8(tables.stdout).unwrap();
    for wanted in [
        "products.products",
        "products.reservations",
        "accounts.users",
        "cart.carts",
        "cart.cart_items",
        "orders.orders",
        "orders.order_items",
    ] {
        assert!(
            tables.lines().any(|t| t == wanted),
            "{wanted} missing from:\n{tables}"
        );
    }
    assert!(
        !workdir.join(".shop").exists(),
        "a Postgres migration makes no SQLite files"
    );
}
