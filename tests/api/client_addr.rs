//! The client address the services see (`spin-client-addr`, the scope of login throttling):
//! the connection's peer, and `X-Forwarded-For` only from the proxies `--trusted-proxies`
//! names. Observed through the real path: failed logins throttle one scope and not another.

use serde_json::json;

use crate::helpers::{
    build_components, fresh_workdir, host_command, repo_root, serve_on, unique_suffix, Answer,
    Engine, TestApp,
};

const PASSWORD: &str = "correct horse battery";

/// A host on SQLite with `extra` arguments to `shop up`.
fn host(extra: &[&str]) -> TestApp {
    build_components();
    let workdir = fresh_workdir("client-addr");
    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0", "--no-watch"])
        .args(extra);
    let manifest = repo_root().join("spin.toml");
    serve_on(Engine::Sqlite, cmd, &workdir, &manifest, &[])
        .expect("SQLite host")
        .0
}

/// A client whose connections come from `127.0.0.<last_octet>`.
fn from(last_octet: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, last_octet]))
        .build()
        .unwrap()
}

async fn register(app: &TestApp) -> String {
    let username = format!("proxied{}", unique_suffix());
    let body = json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
    let answer = app
        .json("POST", "/api/accounts/register/", None, &body)
        .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    username
}

/// A login as `username` through `client`, claiming `forwarded_for` if given.
async fn login(
    app: &TestApp,
    client: &reqwest::Client,
    username: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> Answer {
    let mut request = client
        .post(format!("{}/api/accounts/login/", app.base))
        .json(&json!({"username": username, "password": password}));
    if let Some(hops) = forwarded_for {
        request = request.header("x-forwarded-for", hops);
    }
    let response = request.send().await.expect("request reached the host");
    crate::helpers::answer_of(response, "login").await
}

/// Five failures under one forwarded address throttle that address only.
async fn five_failures(app: &TestApp, client: &reqwest::Client, user: &str, hops: Option<&str>) {
    for i in 0..5 {
        let answer = login(app, client, user, &format!("wrong {i}"), hops).await;
        assert_eq!(answer.status, 401, "failure {i}: {:?}", answer.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let app = host(&["--trusted-proxies", "127.0.0.1"]);
    let proxy = from(1);
    let user = register(&app).await;
    five_failures(&app, &proxy, &user, Some("198.51.100.7")).await;
    assert_eq!(
        login(&app, &proxy, &user, PASSWORD, Some("198.51.100.7"))
            .await
            .status,
        429
    );
    // Another client behind the same proxy is another scope.
    assert_eq!(
        login(&app, &proxy, &user, PASSWORD, Some("198.51.100.8"))
            .await
            .status,
        200
    );
    // What the client wrote at the left of the list is not its address: the proxy's hop is.
    assert_eq!(
        login(
            &app,
            &proxy,
            &user,
            PASSWORD,
            Some("198.51.100.8, 198.51.100.7")
        )
        .await
        .status,
        429
    );
    // An untrusted peer's header is ignored: it is throttled as itself.
    let stranger = from(4);
    five_failures(&app, &stranger, &user, Some("198.51.100.9")).await;
    assert_eq!(
        login(&app, &stranger, &user, PASSWORD, Some("198.51.100.10"))
            .await
            .status,
        429
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_proxies_forwarded_for_is_ignored() {
    let app = host(&[]);
    let client = from(1);
    let user = register(&app).await;
    five_failures(&app, &client, &user, Some("198.51.100.7")).await;
    // Claiming another address does not escape the throttle.
    assert_eq!(
        login(&app, &client, &user, PASSWORD, Some("198.51.100.8"))
            .await
            .status,
        429
    );
    assert_eq!(
        login(&app, &client, &user, PASSWORD, None).await.status,
        429
    );
    // From another address, the owner logs in.
    assert_eq!(
        login(&app, &from(5), &user, PASSWORD, None).await.status,
        200
    );
}

#[test]
fn a_bad_trusted_proxies_list_stops_the_host() {
    build_components();
    let workdir = fresh_workdir("client-addr-bad");
    let output = host_command(&workdir)
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--trusted-proxies",
            "10.0.0.0/40",
        ])
        .arg("--manifest")
        .arg(repo_root().join("spin.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("10.0.0.0/40"), "{stderr}");
}
