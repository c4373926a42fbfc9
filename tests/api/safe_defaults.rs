//! The host's defaults against an anonymous attacker (issue 23), each run as an attacker
//! would: lower-case and unknown methods on every route, registrations from one address, failed
//! logins behind a trusted proxy, slow bodies on 300 connections, one client's share of the
//! connections and requests, a forged `Host` header, and the admin listener's bind, connection
//! cap and token guessing. Every host here is its own, on SQLite, with the flags it tests.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

const PASSWORD: &str = "correct horse battery";

/// A host of its own on the repository's app, with `extra` flags.
fn host(label: &str, extra: &[&str]) -> SpawnedHost {
    build_components();
    let workdir = fresh_workdir(label);
    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0", "--no-watch"])
        .args(extra);
    let host = spawn_serving(cmd, &workdir, &repo_root().join("spin.toml"));
    wait_healthy(&host.base);
    host
}

/// `host:port` of a base URL.
fn addr_of(base: &str) -> &str {
    base.trim_start_matches("http://")
}

/// Sends `request` (a whole HTTP/1.1 request, `Connection: close`) on a fresh connection and
/// reads the answer to its end: status, lower-cased head, body.
fn exchange(base: &str, request: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr_of(base)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    split_answer(&answer)
}

/// Status, lower-cased head and (de-chunked) body of an answer.
fn split_answer(answer: &[u8]) -> (u16, String, Vec<u8>) {
    let at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(answer)));
    let head = String::from_utf8_lossy(&answer[..at]).to_ascii_lowercase();
    let mut body = answer[at + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (head[9..12].parse().unwrap(), head, body)
}

/// The payload of a chunked body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
    out
}

/// A JSON body's `detail`, asserting the contract's shape.
#[track_caller]
fn detail(head: &str, body: &[u8]) -> String {
    assert!(head.contains("content-type: application/json"), "{head}");
    let body: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(body)));
    body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail: {body}"))
        .to_owned()
}

/// A client whose connections come from `ip` (any 127.0.0.0/8 address is this machine).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap()
}

/// Registers a fresh user through `client`, claiming `forwarded_for` if given.
async fn register(
    client: &reqwest::Client,
    base: &str,
    forwarded_for: Option<&str>,
) -> (u16, Option<String>, Value, String) {
    let username = format!("edge{}", unique_suffix());
    let mut request = client
        .post(format!("{base}/api/accounts/register/"))
        .json(&json!({
            "username": username,
            "email": format!("{username}@example.com"),
            "password": PASSWORD,
        }));
    if let Some(hops) = forwarded_for {
        request = request.header("x-forwarded-for", hops);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap();
    (status, retry_after, body, username)
}

/// Every route of the app (and the host's own paths, and none) answers a method outside the
/// standard set, lower-case `post` included, with a 405 in the contract's shape before any
/// guest runs: `post` cannot reach the login handler past the hashing bound.
#[test]
fn lower_case_and_unknown_methods_are_405_on_every_route() {
    let host = host("methods", &[]);
    let paths = [
        "/api/products/",
        "/api/products/1/",
        "/api/accounts/register/",
        "/api/accounts/login/",
        "/api/accounts/token/refresh/",
        "/api/accounts/profile/",
        "/api/carts/",
        "/api/carts/add_item/",
        "/api/orders/",
        "/api/orders/1/",
        "/api/schema/",
        "/api/docs/",
        "/admin/",
        "/healthz",
        "/livez",
        "/nowhere/",
    ];
    let body = json!({"username": "nobody", "password": "wrong password"}).to_string();
    for path in paths {
        for method in [
            "post", "Post", "pOST", "get", "delete", "PROPFIND", "MOVE", "BREW",
        ] {
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let (status, head, answer) = exchange(&host.base, &request);
            assert_eq!(status, 405, "{method} {path}: {head}");
            let detail = detail(&head, &answer);
            assert!(detail.contains("not allowed"), "{method} {path}: {detail}");
        }
    }
    // The standard spelling still works, on the same host.
    let (status, _, _) = exchange(
        &host.base,
        "GET /api/products/ HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    // None of them reached a guest.
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = read_log_of(&host.log);
        if log.matches("status=405").count() >= paths.len() * 8 || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("status=405")).collect();
    assert_eq!(refused.len(), paths.len() * 8, "{log}");
    assert!(
        refused.iter().all(|l| l.contains("component=-")),
        "{refused:#?}"
    );
}

/// One address registers a burst, then is told to wait (429 with Retry-After, DRF's words);
/// another address, or another IPv6 /64, is not held up, and one /64 is one client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_throttled_per_client_address() {
    let host = host(
        "registrations",
        &[
            "--registrations-per-client",
            "3",
            "--trusted-proxies",
            "127.0.0.1",
        ],
    );
    let client = reqwest::Client::new();
    for (address, other_address, other_network) in [
        ("198.51.100.7", "198.51.100.8", "198.51.100.9"),
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:3::1"),
    ] {
        for i in 0..3 {
            let (status, _, body, _) = register(&client, &host.base, Some(address)).await;
            assert_eq!(status, 201, "{address} #{i}: {body}");
        }
        let (status, retry_after, body, _) = register(&client, &host.base, Some(address)).await;
        assert_eq!(status, 429, "{address}: {body}");
        let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(
            body["detail"],
            format!("Request was throttled. Expected available in {wait} seconds.")
        );
        let (status, _, body, _) = register(&client, &host.base, Some(other_address)).await;
        if address.contains(':') {
            // The same /64: the same client.
            assert_eq!(status, 429, "{other_address}: {body}");
        } else {
            assert_eq!(status, 201, "{other_address}: {body}");
        }
        let (status, _, body, _) = register(&client, &host.base, Some(other_network)).await;
        assert_eq!(status, 201, "{other_network}: {body}");
    }
}

/// Behind a trusted proxy (this test's loopback connections), 100 failed logins for the owner's
/// username from 100 forwarded addresses throttle none of them, and the owner, from their own
/// address, logs in: one attacker's failures are never everyone's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_failed_logins_behind_a_trusted_proxy_then_the_owner_logs_in() {
    let host = host("proxied-logins", &["--trusted-proxies", "127.0.0.1"]);
    let client = reqwest::Client::new();
    let owner_address = "198.51.100.50";
    let (status, _, body, username) = register(&client, &host.base, Some(owner_address)).await;
    assert_eq!(status, 201, "{body}");
    let login = |password: String, from: String| {
        let (client, base, username) = (client.clone(), host.base.clone(), username.clone());
        async move {
            let response = client
                .post(format!("{base}/api/accounts/login/"))
                .header("x-forwarded-for", from)
                .json(&json!({"username": username, "password": password}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    for batch in 0..10 {
        let attempts: Vec<_> = (0..10)
            .map(|i| {
                let n = batch * 10 + i + 1;
                tokio::spawn(login(format!("guess {n}"), format!("203.0.113.{n}")))
            })
            .collect();
        for attempt in attempts {
            let (status, body) = attempt.await.unwrap();
            assert_eq!(status, 401, "{body}");
        }
    }
    let (status, body) = login(PASSWORD.to_owned(), owner_address.to_owned()).await;
    assert_eq!(status, 200, "the owner is locked out: {body}");
    assert!(body["access"].is_string(), "{body}");
}

/// 300 connections each send a request head and then its body a byte every two seconds: they
/// hold connections, never request slots, so another client is served within a second all the
/// while; each of them is answered 408 once `--body-read-timeout` (5 s) has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_on_300_connections_leave_the_host_serving() {
    // 300 bodies against 256 request slots (the default): held slots would refuse everyone.
    let host = host("slow-bodies", &[]);
    let addr: SocketAddr = addr_of(&host.base).parse().unwrap();
    let mut slow = Vec::new();
    for i in 0..300u16 {
        // Three addresses of 100 connections, each under the per-client cap (256).
        let from = IpAddr::from([127, 0, 0, 2 + (i % 3) as u8]);
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        stream
            .write_all(
                b"POST /api/accounts/login/ HTTP/1.1\r\nHost: shop\r\n\
                  Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
            )
            .await
            .unwrap();
        slow.push(stream);
    }
    let started = Instant::now();
    // Each connection sends a byte every 2 s and reads what comes, until the host closes it.
    let dripping: Vec<_> = slow
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut answer = Vec::new();
                let mut buf = [0u8; 4096];
                let mut drip = tokio::time::interval(Duration::from_secs(2));
                drip.tick().await;
                let end = tokio::time::sleep(Duration::from_secs(15));
                tokio::pin!(end);
                loop {
                    tokio::select! {
                        read = stream.read(&mut buf) => match read {
                            Ok(0) | Err(_) => return (true, answer),
                            Ok(n) => answer.extend_from_slice(&buf[..n]),
                        },
                        _ = drip.tick() => {
                            // The host may have answered already: then the byte is discarded.
                            let _ = stream.write_all(b" ").await;
                        }
                        () = &mut end => return (false, answer),
                    }
                }
            })
        })
        .collect();

    let client = client_from([127, 0, 0, 1]);
    let staff = staff_token();
    while started.elapsed() < Duration::from_secs(4) {
        let asked = Instant::now();
        let list = client
            .get(format!("{}/api/products/", host.base))
            .send()
            .await
            .unwrap();
        assert_eq!(list.status(), 200);
        let product = client
            .post(format!("{}/api/products/", host.base))
            .bearer_auth(&staff)
            .json(
                &json!({"name": format!("drip {}", unique_suffix()), "price": "1.00", "stock": 1}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(product.status(), 201);
        let took = asked.elapsed();
        assert!(took < Duration::from_secs(1), "served in {took:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let mut answers = Vec::new();
    for connection in dripping {
        answers.push(connection.await.unwrap());
    }
    let timed_out = answers
        .iter()
        .filter(|(_, answer)| answer.starts_with(b"HTTP/1.1 408"))
        .count();
    assert!(
        answers.iter().all(|(closed, _)| *closed),
        "a slow connection is still open"
    );
    assert_eq!(timed_out, 300, "not every slow body was answered 408");
    let (_, head, body) = split_answer(&answers[0].1);
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(
        detail(&head, &body),
        "The request body did not arrive in time."
    );
    let log = read_log_of(&host.log);
    assert!(!log.contains("reason=\"overloaded\""), "{log}");
}

/// One client address holds at most its share of the connections (429 past it, at once) and of
/// the requests in guests (its next request waits, then 429); another address is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_holds_only_its_share_of_connections_and_requests() {
    build_components();
    let workdir = fresh_workdir("per-client");
    let products = repo_root().join("target/wasm32-wasip2/release/products.wasm");
    let manifest = write_test_manifest(&workdir, &products, &["slow"]);
    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0", "--no-watch"])
        .args(["--max-connections-per-client", "4"])
        .args(["--max-requests-per-client", "2"]);
    let host = spawn_serving(cmd, &workdir, &manifest);
    wait_healthy(&host.base);
    let addr: SocketAddr = addr_of(&host.base).parse().unwrap();
    let connect_from = |last: u8| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(IpAddr::from([127, 0, 0, last]), 0))
            .unwrap();
        socket.connect(addr).await.unwrap()
    };

    // Connections: four idle ones from 127.0.0.2, then a fifth is turned away at once.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect_from(2).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = connect_from(2).await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), fifth.read_to_end(&mut answer))
        .await
        .expect("the fifth connection is closed at once")
        .unwrap();
    let (status, head, body) = split_answer(&answer);
    assert_eq!(status, 429, "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert!(detail(&head, &body).contains("Too many connections"));
    let other = client_from([127, 0, 0, 3]);
    let served = other
        .get(format!("{}/api/products/", host.base))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    drop(idle);

    // Requests: two that stay 7 s in their guest from 127.0.0.4; its third waits its 5 s,
    // then 429, while 127.0.0.3 is served at once.
    let greedy = client_from([127, 0, 0, 4]);
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (greedy, base) = (greedy.clone(), host.base.clone());
            tokio::spawn(async move {
                greedy
                    .get(format!("{base}/test/slow/?ms=7000"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let third = {
        let (greedy, base) = (greedy.clone(), host.base.clone());
        tokio::spawn(async move {
            let asked = Instant::now();
            let response = greedy
                .get(format!("{base}/api/products/"))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body, asked.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    let served = other
        .get(format!("{}/api/products/", host.base))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let (status, body, waited) = third.await.unwrap();
    assert_eq!(status, 429, "{body}");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("Too many requests"));
    assert!(waited >= Duration::from_secs(4), "{waited:?}");
    for request in held {
        assert_eq!(request.await.unwrap(), 200);
    }
}

/// The `next`/`previous` links never carry a forged `Host`: relative without `--public-url`
/// (absolute only for the listener's own address), the public URL with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_host_never_reaches_the_links() {
    for public_url in [None, Some("https://shop.example.com")] {
        let extra: Vec<&str> = public_url
            .map(|url| vec!["--public-url", url])
            .unwrap_or_default();
        let host = host("host-header", &extra);
        let app = TestApp {
            base: host.base.clone(),
            engine: Engine::Sqlite,
            client: reqwest::Client::new(),
        };
        let tag = format!("hh{}", unique_suffix());
        for i in 0..3 {
            app.create_product(json!({"name": format!("{tag} {i}"), "price": "1.00", "stock": 1}))
                .await;
        }
        let page = |host_header: &str| {
            format!(
                "GET /api/products/?search={tag}&page_size=1&page=2 HTTP/1.1\r\nHost: {host_header}\r\n\
                 X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\n\
                 Connection: close\r\n\r\n"
            )
        };
        for forged in ["evil.example", "evil.example:443", "127.0.0.1:1"] {
            let (status, head, body) = exchange(&host.base, &page(forged));
            assert_eq!(status, 200, "{head}");
            let body: Value = serde_json::from_slice(&body).unwrap();
            for link in ["next", "previous"] {
                let url = body[link].as_str().unwrap();
                assert!(
                    !url.contains("evil") && !url.contains(":1/"),
                    "{link}: {url}"
                );
                match public_url {
                    Some(public) => assert!(
                        url.starts_with(&format!("{public}/api/products/?")),
                        "{url}"
                    ),
                    None => assert!(url.starts_with("/api/products/?"), "{url}"),
                }
            }
        }
        // The listener's own address is no one's forgery: absolute, as before.
        let own = addr_of(&host.base).to_owned();
        let (_, _, body) = exchange(&host.base, &page(&own));
        let body: Value = serde_json::from_slice(&body).unwrap();
        let expected = public_url.map_or_else(|| format!("http://{own}"), str::to_owned);
        assert!(
            body["next"].as_str().unwrap().starts_with(&expected),
            "{}",
            body["next"]
        );
    }
}

/// The admin listener refuses an address off loopback unless `--admin-listen-public` says so,
/// turns away connections past its cap, and answers 429 to an address that keeps guessing the
/// token, the right token included until the window ends.
#[test]
fn the_admin_listener_stays_private_and_guarded() {
    build_components();
    let workdir = fresh_workdir("admin-guard");
    let token_file = workdir.join("admin-token");
    std::fs::write(&token_file, "the-right-admin-token-0123456789abcdef").unwrap();
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let manifest = repo_root().join("spin.toml");
    let refused = host_command(&workdir)
        .args(["up", "--listen", "127.0.0.1:0", "--no-watch"])
        .args(["--admin-listen", "0.0.0.0:0", "--admin-token-file"])
        .arg(&token_file)
        .arg("--manifest")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("--admin-listen-public"),
        "{stderr}"
    );

    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0", "--no-watch"])
        .args(["--admin-listen", "0.0.0.0:0", "--admin-listen-public"])
        .arg("--admin-token-file")
        .arg(&token_file);
    let host = spawn_serving(cmd, &workdir, &manifest);
    let admin = host.admin.clone().expect("the admin listener");
    let port = admin.rsplit(':').next().unwrap().to_owned();
    let admin = format!("http://127.0.0.1:{port}");
    let log = read_log_of(&host.log);
    assert!(log.contains("off loopback"), "{log}");

    let ask = |token: &str| {
        exchange(
            &admin,
            &format!(
                "GET /_admin/components HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {token}\r\n\
                 Connection: close\r\n\r\n"
            ),
        )
    };
    assert_eq!(ask("the-right-admin-token-0123456789abcdef").0, 200);
    for guess in 0..10 {
        assert_eq!(ask(&format!("guess-{guess}")).0, 403);
    }
    let (status, head, body) = ask("guess-10");
    assert_eq!(status, 429, "{head}");
    assert!(head.contains("retry-after:"), "{head}");
    assert!(detail(&head, &body).starts_with("Request was throttled."));
    assert_eq!(ask("the-right-admin-token-0123456789abcdef").0, 429);

    // Connections past the cap (16) are turned away at once.
    let idle: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(addr_of(&admin)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(addr_of(&admin)).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = extra.read_to_end(&mut answer);
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 503"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(idle);
}
