//! The API's documentation (issue 5): `/api/schema/` is a valid OpenAPI 3.1 document naming
//! every operation of API.md with its security, Swagger UI at `/api/docs/` lists them all in a
//! real browser (headless Debian `chromium`) from assets the shop serves itself, and
//! schemathesis, driven by that document, finds nothing wrong with the live host.
//!
//! The external tools (`chromium`, `schemathesis`, `openapi-spec-validator`) are installed by
//! `.ci/run`, which sets `SHOP_REQUIRE_DOCS_TOOLS=1`: there a missing tool fails the test; on a
//! machine without them the test says loudly what it skipped and passes.
//!
//! `SHOP_DOCS_MANIFEST=<other checkout>/spin.toml` runs them against another build of the app
//! (its components built there), e.g. a `git worktree` of one commit.
//!
//! Artefacts land in `target/test-artifacts/`: `openapi.json`, `docs.png` (the screenshot),
//! `docs-dom.html`, and each schemathesis run's console output and JUnit report.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

/// Set by `.ci/run`: a missing tool fails these tests instead of skipping them.
const REQUIRE_TOOLS: &str = "SHOP_REQUIRE_DOCS_TOOLS";

/// Who may call an operation, as API.md's "who" column says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Anyone,
    User,
    Staff,
}

/// Every operation of ../shared/API.md: method, path template, who may call it and the tag of
/// the service that answers it.
const CONTRACT: &[(&str, &str, Access, &str)] = &[
    (
        "POST",
        "/api/accounts/register/",
        Access::Anyone,
        "accounts",
    ),
    ("POST", "/api/accounts/login/", Access::Anyone, "accounts"),
    (
        "POST",
        "/api/accounts/token/refresh/",
        Access::Anyone,
        "accounts",
    ),
    ("GET", "/api/accounts/profile/", Access::User, "accounts"),
    ("PUT", "/api/accounts/profile/", Access::User, "accounts"),
    ("PATCH", "/api/accounts/profile/", Access::User, "accounts"),
    ("POST", "/api/accounts/logout/", Access::User, "accounts"),
    ("GET", "/api/accounts/users/", Access::Staff, "accounts"),
    (
        "GET",
        "/api/accounts/users/{id}/",
        Access::Staff,
        "accounts",
    ),
    (
        "PATCH",
        "/api/accounts/users/{id}/",
        Access::Staff,
        "accounts",
    ),
    ("GET", "/api/accounts/history/", Access::Staff, "accounts"),
    ("GET", "/api/products/", Access::Anyone, "products"),
    ("POST", "/api/products/", Access::Staff, "products"),
    ("GET", "/api/products/{id}/", Access::Anyone, "products"),
    ("PUT", "/api/products/{id}/", Access::Staff, "products"),
    ("PATCH", "/api/products/{id}/", Access::Staff, "products"),
    ("DELETE", "/api/products/{id}/", Access::Staff, "products"),
    ("GET", "/api/products/history/", Access::Staff, "products"),
    ("GET", "/api/carts/", Access::User, "carts"),
    ("POST", "/api/carts/add_item/", Access::User, "carts"),
    ("POST", "/api/carts/remove_item/", Access::User, "carts"),
    ("PUT", "/api/carts/update_quantity/", Access::User, "carts"),
    ("POST", "/api/orders/", Access::User, "orders"),
    ("GET", "/api/orders/", Access::User, "orders"),
    ("GET", "/api/orders/{id}/", Access::User, "orders"),
    ("POST", "/api/orders/{id}/cancel/", Access::User, "orders"),
    ("POST", "/api/orders/{id}/status/", Access::Staff, "orders"),
    ("GET", "/api/orders/history/", Access::Staff, "orders"),
];

/// The services whose tags group the operations, in the page and in the document.
const SERVICE_TAGS: &[&str] = &["products", "accounts", "carts", "orders"];

/// The methods an OpenAPI path item may hold.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

// ---------------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------------

/// `/api/schema/` is JSON, OpenAPI 3.1 (checked by `openapi-spec-validator` too), and names every
/// operation of API.md under its service's tag, with JSON schemas for its body and answers; a
/// bearer scheme guards every operation that needs a user, staff-only ones say so and document
/// 403, public ones need no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_names_every_operation_with_its_security() {
    let app = docs_app();
    let doc = fetch_schema(&app).await;
    let artefact = artifacts_dir().join("openapi.json");
    std::fs::write(&artefact, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();

    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("3.1"),
        "openapi is {:?}",
        doc["openapi"]
    );

    let bearer: BTreeSet<&str> = doc["components"]["securitySchemes"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, scheme)| {
            scheme["type"] == "http"
                && scheme["scheme"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
        })
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        !bearer.is_empty(),
        "no `type: http, scheme: bearer` security scheme in {}",
        doc["components"]["securitySchemes"]
    );

    let operations = operations_of(&doc);
    let mut problems = Vec::new();
    for &(method, path, access, tag) in CONTRACT {
        let Some((_, op)) = operations
            .iter()
            .find(|(m, p, _)| m == method && template(p) == template(path))
            .map(|(_, p, op)| (p, op))
        else {
            problems.push(format!("{method} {path}: missing"));
            continue;
        };
        let label = format!("{method} {path}");
        let tags: Vec<&str> = op["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
            problems.push(format!("{label}: tags {tags:?}, not {tag:?}"));
        }
        if !responses_of(op).iter().any(|code| code.starts_with('2')) {
            problems.push(format!("{label}: documents no 2xx answer"));
        }
        // Every answer but a 204 is JSON of a documented shape, errors included.
        for (code, answer) in op["responses"].as_object().into_iter().flatten() {
            let answer = resolve_ref(&doc, answer);
            if code != "204" && answer["content"]["application/json"]["schema"].is_null() {
                problems.push(format!("{label}: its {code} answer has no JSON schema"));
            }
        }
        // Every write but a cancel reads a JSON body (the API.md tables' "body" column).
        let reads_body = matches!(method, "POST" | "PUT" | "PATCH") && !path.ends_with("/cancel/");
        let body = resolve_ref(&doc, &op["requestBody"]);
        if reads_body && body["content"]["application/json"]["schema"].is_null() {
            problems.push(format!("{label}: no JSON request body schema"));
        }
        let security = op
            .get("security")
            .or_else(|| doc.get("security"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // An empty requirement object among the alternatives makes the token optional.
        let optional = security.is_empty()
            || security
                .iter()
                .any(|alt| alt.as_object().is_some_and(|o| o.is_empty()));
        match access {
            Access::Anyone if !optional => {
                problems.push(format!("{label}: public, but requires {security:?}"))
            }
            Access::Anyone => {}
            Access::User | Access::Staff => {
                if optional {
                    problems.push(format!("{label}: needs a token, declares {security:?}"));
                } else if !security.iter().all(|alt| {
                    alt.as_object()
                        .is_some_and(|o| o.keys().any(|k| bearer.contains(k.as_str())))
                }) {
                    problems.push(format!(
                        "{label}: security {security:?} names no bearer scheme of {bearer:?}"
                    ));
                }
                if !responses_of(op).contains(&"401".to_string()) {
                    problems.push(format!("{label}: needs a token, documents no 401"));
                }
            }
        }
        if access == Access::Staff {
            let words = format!("{} {}", op["summary"], op["description"]).to_lowercase();
            if !words.contains("staff") {
                problems.push(format!(
                    "{label}: staff only, but its summary and description don't say so"
                ));
            }
            if !responses_of(op).contains(&"403".to_string()) {
                problems.push(format!("{label}: staff only, documents no 403"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the OpenAPI document ({}) disagrees with API.md:\n  {}",
        artefact.display(),
        problems.join("\n  ")
    );

    // The document validates against OpenAPI 3.1's own schema.
    let Some(_) = tool("openapi-spec-validator", &["--version"]) else {
        return;
    };
    let out = run_bounded(
        Command::new("openapi-spec-validator")
            .args(["--schema", "3.1"])
            .arg(&artefact)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        Duration::from_secs(120),
        "openapi-spec-validator",
    );
    assert!(
        out.status.success(),
        "{} is not valid OpenAPI 3.1:\n{}{}",
        artefact.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GET `/api/schema/` as JSON.
async fn fetch_schema(app: &TestApp) -> Value {
    let answer = app.get("/api/schema/", None).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_json(&answer);
    answer.body
}

/// Every operation of an OpenAPI document: upper-case method, path template, operation object.
fn operations_of(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                found.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    found
}

/// `value`, or what its `$ref` (`#/components/...`) points to in `doc`.
fn resolve_ref<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => doc.pointer(pointer).unwrap_or(&Value::Null),
        None => value,
    }
}

/// The status codes an operation documents.
fn responses_of(op: &Value) -> Vec<String> {
    op["responses"]
        .as_object()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default()
}

/// A path template with its parameters' names left out: `/api/products/{}/`.
fn template(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------------

/// Debian's Chromium, where `.ci/run` installs it (`SHOP_CHROMIUM` overrides).
fn chromium_path() -> String {
    std::env::var("SHOP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Headless Chromium as root on a closed network: no sandbox (root), no GPU, and none of the
/// browser's own background connections, which this machine's network refuses.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    // The page's console on stderr, to explain a page that did not render.
    "--enable-logging=stderr",
    // Virtual time runs ahead only while no fetch is pending, so the budget is how long the
    // page's scripts may run, not a guess at how long the network takes.
    "--virtual-time-budget=20000",
];

/// Swagger UI at `/api/docs/`, rendered by headless Chromium, lists every operation (method and
/// path) of `/api/schema/` and each service's tag; the page and everything it loads come from
/// the shop itself (no CDN). Keeps the rendered DOM (`target/test-artifacts/docs-dom.html`) and
/// a screenshot of the whole page (`target/test-artifacts/docs.png`) as test artefacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_lists_every_operation() {
    let Some(_) = tool(&chromium_path(), &["--version"]) else {
        return;
    };
    let app = docs_app();
    let started = Instant::now();

    // The page as served: HTML whose every URL is the shop's own.
    let page = app
        .client
        .get(format!("{}/api/docs/", app.base))
        .send()
        .await
        .expect("GET /api/docs/");
    assert_eq!(page.status(), 200);
    let content_type = page
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = page.text().await.unwrap();
    let foreign = absolute_urls(&html);
    assert!(
        foreign.is_empty(),
        "/api/docs/ names other hosts (a CDN?): {foreign:?}"
    );

    // Each script, style sheet and icon the page names is there, and is not JSON.
    for asset in loaded_urls(&html) {
        let answer = app
            .client
            .get(resolve(&format!("{}/api/docs/", app.base), &asset))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {asset}: {e}"));
        let kind = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            answer.status() == 200 && !kind.starts_with("application/json"),
            "/api/docs/ loads {asset}, which answers {} ({kind})",
            answer.status()
        );
    }

    let schema = fetch_schema(&app).await;
    let expected: BTreeSet<(String, String)> = operations_of(&schema)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    assert!(!expected.is_empty(), "the document lists no operations");

    let dir = artifacts_dir();
    let url = format!("{}/api/docs/", app.base);
    let net_log = dir.join("docs-netlog.json");
    let dom = chromium(&[
        &format!("--log-net-log={}", net_log.display()),
        "--dump-dom",
        &url,
    ]);
    assert!(
        dom.status.success(),
        "chromium --dump-dom failed ({}):\n{}",
        dom.status,
        String::from_utf8_lossy(&dom.stderr)
    );
    // The page's console messages (script errors, refused loads), for the messages below.
    let console: String = String::from_utf8_lossy(&dom.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Content Security Policy"))
        .map(|l| format!("  {l}\n"))
        .collect();
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    std::fs::write(dir.join("docs-dom.html"), &dom).unwrap();

    assert!(
        dom.contains("swagger-ui") && dom.contains("opblock"),
        "Swagger UI did not render operations (see {}); the browser's console:\n{}",
        dir.join("docs-dom.html").display(),
        console
    );
    let listed = listed_operations(&dom);
    let missing: Vec<_> = expected.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "operations of /api/schema/ not listed on /api/docs/: {missing:?}\nlisted: {listed:?}"
    );
    let tags = listed_tags(&dom);
    for tag in SERVICE_TAGS {
        assert!(
            tags.contains(*tag),
            "no `{tag}` section on /api/docs/; sections: {tags:?}"
        );
    }
    // What the rendered page loads (scripts, styles, images) is the shop's own.
    let loaded = loaded_urls(&dom);
    let foreign: Vec<_> = loaded
        .iter()
        .filter(|u| is_absolute(u) && !u.starts_with(&format!("{}/", app.base)))
        .collect();
    assert!(
        foreign.is_empty(),
        "the rendered page loads from other hosts: {foreign:?}"
    );
    // And so is every request the page made, as the browser's network log saw them.
    let requested = page_requests(&net_log, &app.base);
    let elsewhere: Vec<_> = requested
        .iter()
        .filter(|u| !u.starts_with(&format!("{}/", app.base)))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "the page fetched from other hosts: {elsewhere:?}"
    );
    for own in ["/api/docs/", "/api/schema/"] {
        assert!(
            requested.contains(&format!("{}{own}", app.base)),
            "the page never fetched {own}; it fetched {requested:?}"
        );
    }

    // The screenshot: tall enough for every operation of every service.
    let png = dir.join("docs.png");
    let _ = std::fs::remove_file(&png);
    let height = 1200 + 60 * expected.len();
    let shot = chromium(&[
        &format!("--window-size=1280,{height}"),
        &format!("--screenshot={}", png.display()),
        &url,
    ]);
    assert!(
        shot.status.success(),
        "chromium --screenshot failed ({}):\n{}",
        shot.status,
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).unwrap_or_default();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "no real screenshot at {} ({} bytes)",
        png.display(),
        bytes.len()
    );
    eprintln!(
        "browser test: {} operations listed, screenshot {} ({} KiB), {:.1} s",
        listed.len(),
        png.display(),
        bytes.len() / 1024,
        started.elapsed().as_secs_f64()
    );
}

/// Runs headless Chromium once with `args`, with a fresh profile, for at most two minutes.
fn chromium(args: &[&str]) -> Output {
    let profile = fresh_workdir("chromium-profile");
    let mut cmd = Command::new(chromium_path());
    cmd.args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(&mut cmd, Duration::from_secs(120), "chromium");
    let _ = std::fs::remove_dir_all(&profile);
    out
}

/// The (method, path) of every operation Swagger UI rendered: each `opblock-summary-method`
/// followed by its `data-path` (the path's text has zero-width spaces for line breaks).
fn listed_operations(dom: &str) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let mut rest = dom;
    while let Some(at) = rest.find("opblock-summary-method") {
        rest = &rest[at..];
        let method = between(rest, ">", "<").trim().to_uppercase();
        let Some(path_at) = rest.find("data-path=\"") else {
            break;
        };
        rest = &rest[path_at + "data-path=\"".len()..];
        let path = rest[..rest.find('"').unwrap_or(0)].to_string();
        found.insert((method, path));
    }
    found
}

/// The operation groups (tags) Swagger UI rendered, lower-cased.
fn listed_tags(dom: &str) -> BTreeSet<String> {
    attribute_values(dom, "data-tag")
        .into_iter()
        .map(|t| t.to_lowercase())
        .collect()
}

/// What the rendered page loads: the `src` of every element and the `href` of every `<link>`.
fn loaded_urls(dom: &str) -> Vec<String> {
    let mut urls = attribute_values(dom, "src");
    for link in dom.split("<link").skip(1) {
        let tag = &link[..link.find('>').unwrap_or(link.len())];
        urls.extend(attribute_values(tag, "href"));
    }
    urls
}

/// Every `http://` or `https://` URL in `text`, but for XML namespace names (identifiers that
/// are never fetched).
fn absolute_urls(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for scheme in ["http://", "https://"] {
        for (at, _) in text.match_indices(scheme) {
            let url: String = text[at..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '<' | '>' | ')'))
                .collect();
            if !url.starts_with("http://www.w3.org/") {
                found.push(url);
            }
        }
    }
    found
}

/// `reference` as a URL, read from the page at `page` (an absolute `http://host:port/...`).
fn resolve(page: &str, reference: &str) -> String {
    if is_absolute(reference) {
        return reference.to_string();
    }
    let origin_end = page
        .match_indices('/')
        .nth(2)
        .map_or(page.len(), |(i, _)| i);
    match reference.strip_prefix('/') {
        Some(_) => format!("{}{reference}", &page[..origin_end]),
        None => format!("{}{reference}", &page[..=page.rfind('/').unwrap()]),
    }
}

fn is_absolute(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://") || url.starts_with("//")
}

/// The values of every `name="..."` attribute in `html`.
fn attribute_values(html: &str, name: &str) -> Vec<String> {
    let needle = format!(" {name}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| between(&html[at..], "=\"", "\"").to_string())
        .collect()
}

/// The text of `s` between the first `open` and the `close` after it.
fn between<'a>(s: &'a str, open: &str, close: &str) -> &'a str {
    let Some(start) = s.find(open).map(|i| i + open.len()) else {
        return "";
    };
    let end = s[start..].find(close).map_or(s.len(), |i| start + i);
    &s[start..end]
}

/// The URLs the page at `base` requested (its own document included), from Chromium's network
/// log: requests whose network isolation key is the page's site. The browser's own requests
/// (updates, accounts) have other keys and are not the page's doing.
fn page_requests(net_log: &Path, base: &str) -> BTreeSet<String> {
    let log: Value = serde_json::from_slice(&std::fs::read(net_log).unwrap_or_default())
        .unwrap_or_else(|e| panic!("Chromium's network log {}: {e}", net_log.display()));
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].clone();
    assert!(
        start_job.is_number(),
        "the network log names no URL_REQUEST_START_JOB"
    );
    // The site of `http://127.0.0.1:PORT` is `http://127.0.0.1`.
    let site = base.rsplit_once(':').map_or(base, |(site, _)| site);
    log["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == start_job)
        .filter(|e| {
            e["params"]["network_isolation_key"]
                .as_str()
                .is_some_and(|key| key.split(' ').next() == Some(site))
        })
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_string))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// schemathesis
// ---------------------------------------------------------------------------------------------

/// The schemathesis `.ci/run` installs, and these options are made for.
const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// One schemathesis run at a time: each takes minutes of both cores.
static SCHEMATHESIS: Mutex<()> = Mutex::new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_sqlite() {
    schemathesis_finds_nothing(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_postgres() {
    schemathesis_finds_nothing(Engine::Postgres).await;
}

/// schemathesis, from `/api/schema/` alone, with every check it has, against a host of its own
/// on a fresh database (it deletes products and moves orders, so it must not share one):
/// zero failures. Keeps its console output and JUnit report under `target/test-artifacts/`.
async fn schemathesis_finds_nothing(engine: Engine) {
    let Some(version) = tool("schemathesis", &["--version"]) else {
        return;
    };
    if !version.contains(SCHEMATHESIS_VERSION) {
        eprintln!(
            "\n*** note: {version}; these options were chosen for {SCHEMATHESIS_VERSION} ***\n"
        );
    }
    let label = match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    };
    let host = match engine {
        // The fuzzer registers far more accounts a minute than one client may.
        Engine::Sqlite => docs_host(
            &[
                "--request-timeout",
                "60s",
                "--registrations-per-client",
                "100000",
            ],
            "schemathesis-sqlite",
        ),
        Engine::Postgres => {
            let Some(url) = fresh_postgres_database() else {
                return;
            };
            docs_host(
                &[
                    "--request-timeout",
                    "60s",
                    "--database-url",
                    &url,
                    "--postgres-pool-size",
                    "8",
                    "--registrations-per-client",
                    "100000",
                ],
                "schemathesis-postgres",
            )
        }
    };
    let app = TestApp {
        base: host.base.clone(),
        engine,
        client: reqwest::Client::new(),
    };
    let identities = seed(&app).await;

    let _one_at_a_time = SCHEMATHESIS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = artifacts_dir().join(format!("schemathesis-{label}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_auth(&dir, &identities);
    let log_path = artifacts_dir().join(format!("schemathesis-{label}.txt"));
    let started = Instant::now();
    let status = schemathesis(&app.base, &dir, &log_path);
    let elapsed = started.elapsed();
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    eprintln!(
        "schemathesis on {label}: {status} in {:.0} s; output {}, JUnit {}",
        elapsed.as_secs_f64(),
        log_path.display(),
        dir.join("junit.xml").display()
    );
    assert!(
        status.success(),
        "schemathesis found failures on {label} ({status}, {:.0} s); its report: {}, the \
         host's log: {}\n{output}",
        elapsed.as_secs_f64(),
        dir.join("junit.xml").display(),
        host.workdir.join("host.log").display()
    );
}

/// A user schemathesis calls as, with a token minted for it.
struct Identity {
    name: &'static str,
    token: String,
}

/// Registers two shoppers and a staff user, gives each shopper an order and one of them a cart
/// with an item, and makes a few products: something for every operation to find. Returns
/// the identities in the order schemathesis tries them (the least privileged first).
async fn seed(app: &TestApp) -> Vec<Identity> {
    let mut identities = Vec::new();
    // Not the names of the schema's examples, which schemathesis registers itself.
    for (name, is_staff) in [("shopper1", false), ("shopper2", false), ("staffer", true)] {
        let user = app
            .json(
                "POST",
                "/api/accounts/register/",
                None,
                &json!({
                    "username": name,
                    "email": format!("{name}@example.com"),
                    "password": "correct horse battery",
                    "address": format!("{name}'s street 1"),
                }),
            )
            .await;
        assert_eq!(user.status, 201, "register {name}: {}", user.body);
        let id = user.body["id"].as_i64().unwrap();
        // Minted like every e2e token, but for a whole run: no refresh halfway.
        let token = token_with(TEST_PRIVATE_KEY, id, is_staff, "access", 3600);
        identities.push(Identity { name, token });
    }
    let staff = &identities[2].token;
    let mut products = Vec::new();
    for (name, price) in [
        ("Espresso beans", "12.50"),
        ("Moka pot", "34.00"),
        ("Mug", "7.99"),
    ] {
        let product = app
            .json(
                "POST",
                "/api/products/",
                Some(staff),
                &json!({
                    "name": name,
                    "description": "seeded for schemathesis",
                    "price": price,
                    "stock": 1000,
                }),
            )
            .await;
        assert_eq!(product.status, 201, "{}", product.body);
        products.push(product.body["id"].as_i64().unwrap());
    }
    for shopper in &identities[..2] {
        app.add_to_cart(&shopper.token, products[0], 2).await;
        let order = app
            .json("POST", "/api/orders/", Some(&shopper.token), &json!({}))
            .await;
        assert_eq!(order.status, 201, "{}", order.body);
    }
    app.add_to_cart(&identities[0].token, products[1], 1).await;
    identities
}

/// Writes `auth.json` (the identities, in Web Fuzzing Commons form) and `schemathesis.toml` (the
/// app's tests/schemathesis.toml with them added) in `dir`. The two shoppers are peers: neither
/// may read what the other owns (the `object_level_authorization` check). schemathesis starts
/// every operation with the first identity and moves on to the next when answered 401 or 403, so
/// staff-only operations end up called as staff and the role checks are exercised on the way.
fn write_auth(dir: &Path, identities: &[Identity]) {
    let auth: Vec<Value> = identities
        .iter()
        .map(|i| {
            json!({
                "name": i.name,
                "fixedHeaders": [{"name": "Authorization", "value": format!("Bearer {}", i.token)}],
            })
        })
        .collect();
    std::fs::write(
        dir.join("auth.json"),
        serde_json::to_vec_pretty(&json!({"schemaVersion": "0.2.0", "auth": auth})).unwrap(),
    )
    .unwrap();
    // The project's settings (the checks' exceptions, with their reasons), then this run's users.
    let settings = app_root().join("tests/schemathesis.toml");
    let project = std::fs::read_to_string(&settings)
        .unwrap_or_else(|e| panic!("{}: {e}", settings.display()));
    let config = format!(
        r#"{project}
# Added by tests/api/docs.rs for one run against a fresh host: its users' tokens.
[auth.wfc]
path = "{}"
peers = ["shopper1", "shopper2"]
"#,
        dir.join("auth.json").display()
    );
    std::fs::write(dir.join("schemathesis.toml"), config).unwrap();
}

/// Runs schemathesis against the host at `base`, its output to `log`; at most 6 minutes.
fn schemathesis(base: &str, dir: &Path, log: &Path) -> ExitStatus {
    let out = File::create(log).unwrap();
    let mut cmd = Command::new("schemathesis");
    cmd.current_dir(dir)
        .arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("{base}/api/schema/"))
        .args(["--url", base])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", "300"])
        .args(["--seed", "20261125"])
        // Examples found in one run must not steer the next: each run starts from the seed.
        .args(["--generation-database", "none"])
        // One worker: CPython 3.11.7 (this machine's) can fail `ast.parse` in several threads at
        // once ("AST constructor recursion depth mismatch", python/cpython#106905), which
        // hypothesis calls while describing strategies; one thread is also the reproducible run.
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        .args(["--report", "junit"])
        .arg("--report-junit-path")
        .arg(dir.join("junit.xml"))
        .arg("--no-color")
        // Whole responses in the failures: they are what tells a wrong schema from a wrong service.
        .args(["--output-truncate", "false"])
        // To look closer at one operation: SHOP_SCHEMATHESIS_ARGS="--include-path /api/orders/"
        .args(
            std::env::var("SHOP_SCHEMATHESIS_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .env("COLUMNS", "120")
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let output = run_bounded(&mut cmd, Duration::from_secs(360), "schemathesis");
    output.status
}

// ---------------------------------------------------------------------------------------------
// Hosts, tools and artefacts
// ---------------------------------------------------------------------------------------------

/// Serves another build of the app to these tests: the path of its spin.toml, components built
/// (e.g. a `git worktree` of one commit, while the working tree is half-way through a change).
const OTHER_MANIFEST: &str = "SHOP_DOCS_MANIFEST";

/// A host of its own on SQLite, or Postgres through `extra`: the repository's app, or the one
/// `SHOP_DOCS_MANIFEST` names.
fn docs_host(extra: &[&str], label: &str) -> HostInfo {
    let Some(manifest) = std::env::var_os(OTHER_MANIFEST) else {
        return start_host(extra, label);
    };
    let workdir = fresh_workdir(label);
    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0"]).args(extra);
    let host = spawn_serving(cmd, &workdir, Path::new(&manifest));
    wait_healthy(&host.base);
    HostInfo {
        base: host.base,
        workdir,
    }
}

/// The checkout whose app the tests serve: the repository, or `SHOP_DOCS_MANIFEST`'s folder.
fn app_root() -> PathBuf {
    match std::env::var_os(OTHER_MANIFEST) {
        Some(manifest) => Path::new(&manifest).parent().unwrap().to_path_buf(),
        None => repo_root(),
    }
}

/// A client of the host the read-only docs tests share: the suite's SQLite host, or one on
/// `SHOP_DOCS_MANIFEST`.
fn docs_app() -> TestApp {
    static OTHER: OnceLock<HostInfo> = OnceLock::new();
    let base = if std::env::var_os(OTHER_MANIFEST).is_some() {
        OTHER
            .get_or_init(|| docs_host(&[], "docs-other"))
            .base
            .clone()
    } else {
        shared_host(Engine::Sqlite)
            .expect("the SQLite host always runs")
            .base
    };
    TestApp {
        base,
        engine: Engine::Sqlite,
        client: reqwest::Client::new(),
    }
}

/// `target/test-artifacts/`, made if missing.
fn artifacts_dir() -> PathBuf {
    let dir = repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The first line `program version_args` prints, or `None` after a loud notice when it can't
/// run; with `SHOP_REQUIRE_DOCS_TOOLS` set (CI), a missing tool fails the test instead.
fn tool(program: &str, version_args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(version_args)
        .stdin(Stdio::null())
        .output();
    let why = match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            return Some(text.lines().next().unwrap_or_default().trim().to_string());
        }
        Ok(out) => format!("it failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => e.to_string(),
    };
    if std::env::var_os(REQUIRE_TOOLS).is_some() {
        panic!("{program} is required ({REQUIRE_TOOLS}) but can't run: {why}");
    }
    eprintln!("\n*** SKIPPING a docs test: {program} can't run ({why}); .ci/run installs it ***\n");
    None
}

/// Runs `cmd` in a process group of its own and waits at most `limit`, then kills the group
/// (Chromium leaves helper processes behind otherwise) and fails. Its stdout and stderr are
/// captured unless the caller sent them elsewhere.
fn run_bounded(cmd: &mut Command, limit: Duration, what: &str) -> Output {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    cmd.process_group(0).stdin(Stdio::null());
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("run {what}: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    std::thread::spawn(move || {
        let errors = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(pipe) = stderr.as_mut() {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        });
        let mut out = Vec::new();
        if let Some(pipe) = stdout.as_mut() {
            let _ = pipe.read_to_end(&mut out);
        }
        let status = child.wait().expect("wait for the tool");
        let _ = tx.send(Output {
            status,
            stdout: out,
            stderr: errors.join().unwrap_or_default(),
        });
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output,
        Err(_) => {
            // SAFETY: kill(2) on the process group made above; it touches no memory.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            panic!("{what} still running after {limit:?}: killed");
        }
    }
}
