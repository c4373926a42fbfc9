//! The staff console at `/admin/` (issue 25), in a real browser: headless Chromium driven over
//! the DevTools protocol (`--remote-debugging-pipe`: JSON messages on two pipes, so the driver
//! needs nothing but serde_json), on the real host with the real components, on SQLite and on
//! Postgres. The browser clicks at the elements' places and types with the keyboard, as a
//! person would; the test reads the page's text and checks the API agrees.
//!
//! Like the docs tests, these skip loudly without Chromium (`/usr/bin/chromium`, or
//! `SHOP_CHROMIUM`) unless `SHOP_REQUIRE_DOCS_TOOLS` is set, as `.ci/run` does: then they fail.
//!
//! Screenshots of the product list, an order and the history land in
//! `target/console-screenshots/` (and one named after the step that failed, if one did).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::e2e;
use crate::helpers::*;

/// Set by `.ci/run`: without Chromium these tests fail instead of skipping.
const REQUIRE_TOOLS: &str = "SHOP_REQUIRE_DOCS_TOOLS";

/// The console's content security policy, as the issue asks for it.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const STAFF_PASSWORD: &str = "console staff at work";
const CUSTOMER_PASSWORD: &str = "a customer's own words";

// ---------------------------------------------------------------------------------------------
// The page as served
// ---------------------------------------------------------------------------------------------

/// `/admin/` and its two files: HTML, script and styles with the strict CSP, no framing, no
/// sniffing; files named by version are cached for good and the page is revalidated (304 on a
/// matching ETag); everything the page names is the shop's own; `/admin` leads to `/admin/`;
/// other paths and methods get the contract's JSON errors.
async fn console_page_and_files_are_served_strictly(app: TestApp) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| client.get(format!("{}{path}", app.base)).send();

    let bare = get("/admin").await.unwrap();
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/admin/");

    let page = get("/admin/").await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert!(header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(header("content-security-policy").as_deref(), Some(CSP));
    assert_eq!(header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
    let etag = header("etag").expect("the page has an ETag");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<noscript>") && html.contains("needs JavaScript"),
        "{html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page names another host: {html}"
    );
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "inline code the CSP would refuse: {html}"
    );

    let unchanged = client
        .get(format!("{}/admin/", app.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);
    assert!(unchanged.bytes().await.unwrap().is_empty());

    let mut sizes = vec![("index.html", html.len())];
    for (file, kind) in [
        ("console.js", "text/javascript"),
        ("console.css", "text/css"),
    ] {
        let at = html
            .find(&format!("\"{file}?v="))
            .unwrap_or_else(|| panic!("the page does not name {file} by version: {html}"));
        let url = &html[at + 1..];
        let url = &url[..url.find('"').unwrap()];
        let versioned = get(&format!("/admin/{url}")).await.unwrap();
        assert_eq!(versioned.status(), 200, "{url}");
        let cache = versioned.headers()["cache-control"].to_str().unwrap();
        assert!(cache.contains("immutable"), "{url}: {cache}");
        let kind_sent = versioned.headers()["content-type"].to_str().unwrap();
        assert!(kind_sent.starts_with(kind), "{url}: {kind_sent}");
        assert_eq!(versioned.headers()["x-content-type-options"], "nosniff");
        let body = versioned.text().await.unwrap();
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{file} names another host"
        );
        sizes.push((file, body.len()));
        let unversioned = get(&format!("/admin/{file}")).await.unwrap();
        assert_eq!(unversioned.headers()["cache-control"], "no-cache");
    }
    let total: usize = sizes.iter().map(|(_, n)| n).sum();
    assert!(
        total < 64 * 1024,
        "the console is meant to be small: {sizes:?}"
    );
    eprintln!("console assets: {sizes:?}, {total} bytes in all");

    let missing = app.get("/admin/nothing-here", None).await;
    assert_detail(&missing, 404);
    let posted = app.json("POST", "/admin/", None, &json!({})).await;
    assert_detail(&posted, 405);
    assert!(posted.header("allow").unwrap().contains("GET"));
}

e2e!(console_page_and_files_are_served_strictly);

// ---------------------------------------------------------------------------------------------
// In the browser
// ---------------------------------------------------------------------------------------------

/// A customer signing in to the console is refused with a clear message and sees none of its
/// pages; without JavaScript the page says what it needs instead of showing a form.
async fn a_customer_is_refused(engine: Engine) {
    let Some(host) = console_host(engine) else {
        return;
    };
    let Some(browser) = Browser::launch(engine, "refused") else {
        return;
    };
    let app = host.app();
    let (customer, _) = register(&app, "console_customer").await;

    // Without JavaScript: the message, and no form that would post a password in a URL.
    browser.scripts(false);
    browser.open(&format!("{}/admin/", host.base));
    let shown = browser.eval(
        "(() => { const p = document.querySelector('[data-testid=noscript]'); \
         const form = document.getElementById('signin'); \
         return [p && p.offsetParent !== null ? p.innerText : '', form.offsetParent === null]; })()",
    );
    assert!(
        shown[0].as_str().unwrap().contains("needs JavaScript"),
        "no <noscript> message without JavaScript: {shown}"
    );
    assert_eq!(shown[1], true, "the sign-in form shows without JavaScript");

    browser.scripts(true);
    browser.open(&format!("{}/admin/", host.base));
    browser.sign_in(&customer, CUSTOMER_PASSWORD);
    let refusal = browser.wait_for_text("signin-message", "This account is not staff");
    assert!(refusal.contains("staff only"), "{refusal}");
    let hidden = browser.eval(
        "document.getElementById('console').hidden \
         && document.querySelector('[data-testid=view]').children.length === 0",
    );
    assert_eq!(hidden, true, "a customer sees the console's pages");
    browser.assert_no_page_errors();
    browser.assert_keeps_nothing();
}

/// What staff do every day, through the console only (the customers' side through the API):
/// sign in; create a product (the API's field errors shown beside their fields first); find it,
/// sort, change its stock and price; a customer orders it and the order moves to shipped and
/// delivered; a second order, refused a stale step, is cancelled and its stock comes back; a
/// customer is made staff and then deactivated, after which their login is refused; the
/// history shows each change with the staff member's name, per object and merged. The access
/// token lives a minute, so the page refreshes (and rotates) its tokens all along.
async fn staff_run_the_shop(engine: Engine) {
    let Some(host) = console_host(engine) else {
        return;
    };
    let Some(browser) = Browser::launch(engine, "staff") else {
        return;
    };
    let app = host.app();
    let staff_token = login(&app, &host.staff, STAFF_PASSWORD).await;
    let tag = unique_suffix();

    browser.open(&format!("{}/admin/", host.base));
    browser.sign_in(&host.staff, STAFF_PASSWORD);
    browser.wait_for_text("whoami", &format!("Signed in as {}", host.staff));
    browser.settled();
    browser.wait_for(
        "the product list",
        &format!("!!document.querySelector({})", q("products-table")),
    );

    // --- Products: create, with the API's own field errors first -----------------------------
    browser.click(&tid("product-new"));
    browser.type_into(&tid("field-name"), "");
    browser.type_into(&tid("field-price"), "12.345");
    browser.type_into(&tid("field-stock"), "-1");
    browser.click(&tid("product-save"));
    let refused = app
        .json(
            "POST",
            "/api/products/",
            Some(&staff_token),
            &json!({"name": "", "description": "", "price": "12.345", "stock": -1}),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    for field in ["name", "price", "stock"] {
        let expected: Vec<&str> = refused.body[field]
            .as_array()
            .unwrap_or_else(|| panic!("the API names no {field} error: {}", refused.body))
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        let shown = browser.wait_for_text(&format!("error-{field}"), expected[0]);
        assert_eq!(shown, expected.join(" "), "{field}'s error beside it");
    }

    let kettle = format!("Console kettle {tag}");
    browser.type_into(&tid("field-name"), &kettle);
    browser.type_into(&tid("field-description"), "Stovetop, 1.5 l");
    browser.type_into(&tid("field-price"), "24.50");
    browser.type_into(&tid("field-stock"), "5");
    browser.click(&tid("product-save"));
    let created = browser.wait_for_text("flash", "Created product #");
    browser.settled();
    let product_id: i64 = created
        .trim_start_matches("Created product #")
        .split(' ')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no product id in {created:?}"));
    let product = app.get(&format!("/api/products/{product_id}/"), None).await;
    assert_eq!(product.body["name"], kettle.as_str());
    assert_eq!(product.body["price"], "24.50");
    assert_eq!(product.body["stock"], 5);
    // A cheaper one (through the API) to sort against.
    let cup = app
        .json(
            "POST",
            "/api/products/",
            Some(&staff_token),
            &json!({"name": format!("Console cup {tag}"), "price": "3.00", "stock": 40}),
        )
        .await;
    assert_eq!(cup.status, 201, "{}", cup.body);

    // --- Find, sort, edit ------------------------------------------------------------------
    browser.type_into(&tid("product-search-input"), &tag);
    browser.follow(&tid("product-search-submit"));
    browser.wait_for_rows("product-name", 2);
    browser.follow(&tid("sort-price"));
    browser.wait_for(
        "ascending prices",
        &format!(
            "location.hash.includes('ordering=price') && {}",
            cells_are("product-price", &["3.00", "24.50"])
        ),
    );
    browser.follow(&tid("sort-price"));
    browser.wait_for(
        "descending prices",
        &format!(
            "location.hash.includes('ordering=-price') && {}",
            cells_are("product-price", &["24.50", "3.00"])
        ),
    );

    let row = format!("[data-testid=product-row][data-id=\"{product_id}\"]");
    browser.click(&format!("{row} {}", tid("product-edit")));
    browser.type_into(&tid("field-stock"), "12");
    browser.type_into(&tid("field-price"), "26.00");
    browser.click(&tid("product-save"));
    browser.wait_for_text("flash", &format!("Saved product #{product_id}"));
    browser.settled();
    browser.wait_for(
        "the edited row",
        &format!(
            "{} && {}",
            cells_are("product-price", &["26.00", "3.00"]),
            cells_are("product-stock", &["12", "40"])
        ),
    );
    assert_eq!(app.stock_of(product_id).await, 12);
    browser.screenshot("products");

    // Deleting takes a second click: "Keep" keeps it, "Confirm delete" deletes it.
    let cup_id = cup.body["id"].as_i64().unwrap();
    let cup_row = format!("[data-testid=product-row][data-id=\"{cup_id}\"]");
    browser.click(&format!("{cup_row} {}", tid("product-delete")));
    browser.wait_for_text_in(&cup_row, "product-delete-confirm", "Confirm delete");
    assert!(browser
        .text(&cup_row)
        .contains(&format!("Delete “Console cup {tag}”?")));
    browser.click(&format!("{cup_row} {}", tid("product-delete-keep")));
    browser.wait_for_text_in(&cup_row, "product-delete", "Delete");
    assert_eq!(
        app.get(&format!("/api/products/{cup_id}/"), None)
            .await
            .status,
        200
    );
    browser.click(&format!("{cup_row} {}", tid("product-delete")));
    browser.click(&format!("{cup_row} {}", tid("product-delete-confirm")));
    browser.wait_for_text("flash", &format!("Deleted product #{cup_id}"));
    browser.settled();
    browser.wait_for_rows("product-row", 1);
    assert_eq!(
        app.get(&format!("/api/products/{cup_id}/"), None)
            .await
            .status,
        404
    );

    // --- Two customers order it; one order is delivered, the other cancelled -----------------
    let (ann, ann_id) = register(&app, "console_ann").await;
    let (bob, _) = register(&app, "console_bob").await;
    let ann_token = login(&app, &ann, CUSTOMER_PASSWORD).await;
    let bob_token = login(&app, &bob, CUSTOMER_PASSWORD).await;
    app.add_to_cart(&ann_token, product_id, 2).await;
    let first = app
        .json("POST", "/api/orders/", Some(&ann_token), &json!({}))
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    app.add_to_cart(&bob_token, product_id, 3).await;
    let second = app
        .json("POST", "/api/orders/", Some(&bob_token), &json!({}))
        .await;
    assert_eq!(second.status, 201, "{}", second.body);
    let (first_id, second_id) = (
        first.body["id"].as_i64().unwrap(),
        second.body["id"].as_i64().unwrap(),
    );
    assert_eq!(app.stock_of(product_id).await, 7);

    browser.follow(&tid("nav-orders"));
    browser.choose(&tid("order-status-filter"), "pending");
    let card = |id: i64| format!("[data-testid=order][data-id=\"{id}\"]");
    browser.wait_for(
        "the first order, pending",
        &format!(
            "document.querySelector('{}')?.dataset.status === 'pending'",
            card(first_id)
        ),
    );
    let text = browser.text(&card(first_id));
    for expected in [
        format!("Order #{first_id}"),
        "52.00".to_owned(),
        kettle.clone(),
        format!("#{ann_id}"),
    ] {
        assert!(
            text.contains(&expected),
            "order card lacks {expected:?}:\n{text}"
        );
    }
    // Newest first.
    let order_ids = browser.eval(&format!(
        "[...document.querySelectorAll({})].map(e => Number(e.dataset.id))",
        q("order")
    ));
    let shown: Vec<i64> = order_ids
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let at = |id| {
        shown
            .iter()
            .position(|x| *x == id)
            .unwrap_or_else(|| panic!("order {id} not in {shown:?}"))
    };
    assert!(at(second_id) < at(first_id), "newest first: {shown:?}");

    for step in ["processing", "shipped"] {
        browser.click(&format!(
            "{} {}",
            card(first_id),
            tid(&format!("order-to-{step}"))
        ));
        browser.wait_for(
            step,
            &format!(
                "document.querySelector('{}')?.dataset.status === '{step}'",
                card(first_id)
            ),
        );
    }
    browser.screenshot("order");
    browser.click(&format!("{} {}", card(first_id), tid("order-to-delivered")));
    browser.wait_for(
        "delivered",
        &format!(
            "document.querySelector('{}')?.dataset.status === 'delivered'",
            card(first_id)
        ),
    );
    let delivered = app
        .get(&format!("/api/orders/{first_id}/"), Some(&staff_token))
        .await;
    assert_eq!(delivered.body["status"], "delivered");

    // Someone else moves the second order meanwhile: the console's stale step is refused with
    // the API's own message, then the cancel goes through and the stock comes back.
    let moved = app
        .json(
            "POST",
            &format!("/api/orders/{second_id}/status/"),
            Some(&staff_token),
            &json!({"status": "processing"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    let stale = app
        .json(
            "POST",
            &format!("/api/orders/{second_id}/status/"),
            Some(&staff_token),
            &json!({"status": "processing"}),
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    browser.click(&format!(
        "{} {}",
        card(second_id),
        tid("order-to-processing")
    ));
    let message = browser.wait_for_text_in(
        &card(second_id),
        "order-message",
        stale.body["detail"].as_str().unwrap(),
    );
    assert_eq!(message, stale.body["detail"].as_str().unwrap());
    browser.click(&format!("{} {}", card(second_id), tid("order-cancel")));
    browser.wait_for(
        "cancelled",
        &format!(
            "document.querySelector('{}')?.dataset.status === 'cancelled'",
            card(second_id)
        ),
    );
    assert_eq!(
        app.stock_of(product_id).await,
        10,
        "the cancelled order's stock is back"
    );
    browser.follow(&tid("nav-products"));
    browser.type_into(&tid("product-search-input"), &kettle);
    browser.follow(&tid("product-search-submit"));
    browser.wait_for(
        "the stock back in the list",
        &cells_are("product-stock", &["10"]),
    );

    // --- Customers: make Ann staff, then deactivate her -------------------------------------
    browser.follow(&tid("nav-customers"));
    browser.type_into(&tid("customer-search-input"), &ann);
    browser.follow(&tid("customer-search-submit"));
    browser.wait_for_rows("customer-username", 1);
    assert_eq!(browser.text(&tid("customer-username")), ann);
    browser.click(&tid("customer-toggle-staff"));
    browser.wait_for("Ann is staff", &cells_are("customer-staff", &["yes"]));
    browser.click(&tid("customer-toggle-active"));
    browser.wait_for("Ann is inactive", &cells_are("customer-active", &["no"]));
    assert_eq!(
        browser.eval(&format!(
            "Number(document.querySelector({}).dataset.id)",
            q("customer-row")
        )),
        ann_id
    );
    let refused = app
        .json(
            "POST",
            "/api/accounts/login/",
            None,
            &json!({"username": ann, "password": CUSTOMER_PASSWORD}),
        )
        .await;
    assert_eq!(
        refused.status, 401,
        "a deactivated user logs in: {}",
        refused.body
    );
    let old = app.get("/api/accounts/profile/", Some(&ann_token)).await;
    assert_eq!(
        old.status, 401,
        "a token issued before deactivation still works: {}",
        old.body
    );
    // Her orders, one click away.
    browser.follow(&tid("customer-orders"));
    browser.wait_for("Ann's orders", &format!("document.querySelector({})?.innerText.includes('user #{ann_id}') && document.querySelectorAll({}).length === 1 && !!document.querySelector('{}')", q("orders-of-user"), q("order"), card(first_id)));
    // The staff users API names the customer.
    browser.wait_for_text_in(
        &card(first_id),
        "order-customer",
        &format!("{ann} (#{ann_id})"),
    );

    // --- History: per object, then everything merged ---------------------------------------
    browser.follow(&tid("nav-products"));
    browser.type_into(&tid("product-search-input"), &kettle);
    browser.follow(&tid("product-search-submit"));
    browser.wait_for_rows("product-name", 1);
    browser.follow(&tid("product-history"));
    browser.wait_for_text(
        "history-title",
        &format!("History of product #{product_id}"),
    );
    browser.wait_for(
        "the product's history",
        &format!(
            "document.querySelectorAll({}).length >= 2",
            q("history-entry")
        ),
    );
    let entries = browser.history();
    let update = entries
        .iter()
        .find(|e| e.action == "update")
        .unwrap_or_else(|| panic!("no update in the product's history: {entries:#?}"));
    assert!(
        update.changes.contains("price: 24.50 → 26.00") && update.changes.contains("stock: 5 → 12"),
        "{update:#?}"
    );
    assert!(entries.iter().any(|e| e.action == "create"), "{entries:#?}");
    assert!(
        entries
            .iter()
            .all(|e| e.staff.starts_with(&format!("{} (#", host.staff))),
        "{entries:#?}"
    );

    browser.follow(&tid("history-all"));
    browser.wait_for(
        "the merged feed",
        &format!(
            "document.querySelector({})?.innerText === 'History'",
            q("history-title")
        ),
    );
    browser.wait_for("every service in the feed", "['products','orders','accounts'].every(s => document.querySelector(`[data-testid=history-entry][data-service=${s}]`))");
    let feed = browser.history();
    let mine = |service: &str, object: i64| -> Vec<&HistoryRow> {
        feed.iter()
            .filter(|e| e.service == service && e.object == object)
            .collect()
    };
    let order_changes: Vec<String> = mine("orders", first_id)
        .iter()
        .map(|e| e.changes.clone())
        .collect();
    for step in [
        "pending → processing",
        "processing → shipped",
        "shipped → delivered",
    ] {
        assert!(
            order_changes.iter().any(|c| c.contains(step)),
            "order {first_id}: no {step:?} in {order_changes:?}"
        );
    }
    let cancelled: Vec<String> = mine("orders", second_id)
        .iter()
        .map(|e| e.changes.clone())
        .collect();
    assert!(
        cancelled.iter().any(|c| c.contains("→ cancelled")),
        "order {second_id}: {cancelled:?}"
    );
    let ann_changes: Vec<String> = mine("accounts", ann_id)
        .iter()
        .map(|e| e.changes.clone())
        .collect();
    assert!(
        ann_changes
            .iter()
            .any(|c| c.contains("is_staff: false → true")),
        "{ann_changes:?}"
    );
    assert!(
        ann_changes
            .iter()
            .any(|c| c.contains("is_active: true → false")),
        "{ann_changes:?}"
    );
    assert!(!mine("products", product_id).is_empty(), "{feed:#?}");
    for entry in mine("orders", first_id)
        .iter()
        .chain(&mine("orders", second_id))
        .chain(&mine("accounts", ann_id))
        .chain(&mine("products", product_id))
    {
        assert!(
            entry.staff.starts_with(&format!("{} (#", host.staff)),
            "{entry:#?}"
        );
    }
    // Merged newest first.
    let times: Vec<&str> = feed.iter().map(|e| e.at.as_str()).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "the feed is not newest first: {times:?}"
    );
    browser.screenshot("history");

    // The page refreshed its short-lived tokens on the way (each refresh rotates the refresh
    // token: keeping a spent one would have ended the session), called only its own origin,
    // and kept nothing anywhere.
    // The first refresh comes 5 s after sign-in at the latest; a fast run may be here first.
    let refreshed = |requests: &[(String, String)]| {
        requests
            .iter()
            .any(|(m, u)| m == "POST" && u.ends_with("/api/accounts/token/refresh/"))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !refreshed(&browser.requests()) {
        assert!(
            Instant::now() < deadline,
            "the page never refreshed its token: {:?}",
            browser.requests()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // And the session goes on with the new tokens.
    browser.follow(&tid("nav-orders"));
    browser.wait_for_text("whoami", &format!("Signed in as {}", host.staff));
    let requests = browser.requests();
    let foreign: Vec<_> = requests
        .iter()
        .filter(|(_, u)| !u.starts_with(&format!("{}/", host.base)) && !u.starts_with("data:"))
        .collect();
    assert!(
        foreign.is_empty(),
        "the console called other hosts: {foreign:?}"
    );
    browser.assert_no_page_errors();
    browser.assert_keeps_nothing();

    browser.click(&tid("signout"));
    browser.wait_for_text("signin-message", "Signed out.");
}

/// Like `e2e!`, for the cases that start a host of their own per engine (`console_host`).
macro_rules! on_both_engines {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use crate::helpers::Engine;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(Engine::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case(Engine::Postgres).await;
            }
        }
    )*};
}

on_both_engines!(a_customer_is_refused, staff_run_the_shop);

// ---------------------------------------------------------------------------------------------
// The hosts and their users
// ---------------------------------------------------------------------------------------------

/// A host of the console tests: access tokens live one minute, so that the page must refresh.
struct ConsoleHost {
    base: String,
    /// The staff member `shop createsuperuser` made.
    staff: String,
}

impl ConsoleHost {
    fn app(&self) -> TestApp {
        TestApp {
            base: self.base.clone(),
            engine: Engine::Sqlite,
            client: reqwest::Client::new(),
        }
    }
}

/// The console host of `engine`, started with its staff user on first use; `None` when
/// Postgres is skipped.
fn console_host(engine: Engine) -> Option<&'static ConsoleHost> {
    static SQLITE: OnceLock<Option<ConsoleHost>> = OnceLock::new();
    static POSTGRES: OnceLock<Option<ConsoleHost>> = OnceLock::new();
    let cell = match engine {
        Engine::Sqlite => &SQLITE,
        Engine::Postgres => &POSTGRES,
    };
    cell.get_or_init(|| {
        let url = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(fresh_postgres_database()?),
        };
        build_components();
        let workdir = fresh_workdir("console");
        let mut cmd = host_command(&workdir);
        cmd.env("SPIN_VARIABLE_ACCESS_TOKEN_MINUTES", "1")
            .args(["up", "--listen", "127.0.0.1:0"]);
        if let Some(url) = &url {
            cmd.args(["--database-url", url, "--postgres-pool-size", "4"]);
        }
        let (base, _) = spawn_until_serving(cmd, &workdir);
        wait_healthy(&base);
        let staff = format!("Console_staff_{}", unique_suffix());
        let mut make = host_command(&workdir);
        make.arg("createsuperuser")
            .arg("--manifest")
            .arg(repo_root().join("spin.toml"))
            .args([
                "--username",
                &staff,
                "--email",
                &format!("{staff}@example.com"),
            ])
            .env("SHOP_SUPERUSER_PASSWORD", STAFF_PASSWORD);
        if let Some(url) = &url {
            make.args(["--database-url", url]);
        }
        let made = make.output().expect("run shop createsuperuser");
        assert!(
            made.status.success(),
            "createsuperuser: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        Some(ConsoleHost { base, staff })
    })
    .as_ref()
}

/// Registers a customer named `prefix_<unique>` and returns the name and id.
async fn register(app: &TestApp, prefix: &str) -> (String, i64) {
    let username = format!("{prefix}_{}", unique_suffix());
    let answer = app
        .json(
            "POST",
            "/api/accounts/register/",
            None,
            &json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": CUSTOMER_PASSWORD,
                "address": "1 Console Street",
            }),
        )
        .await;
    assert_eq!(answer.status, 201, "register {username}: {}", answer.body);
    let id = answer.body["id"].as_i64().unwrap();
    (username, id)
}

/// An access token of `username`; panics unless the login succeeds.
async fn login(app: &TestApp, username: &str, password: &str) -> String {
    let answer = app
        .json(
            "POST",
            "/api/accounts/login/",
            None,
            &json!({"username": username, "password": password}),
        )
        .await;
    assert_eq!(answer.status, 200, "login {username}: {}", answer.body);
    answer.body["access"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// The browser, over the DevTools protocol
// ---------------------------------------------------------------------------------------------

/// Debian's Chromium, where `.ci/run` installs it (`SHOP_CHROMIUM` overrides).
fn chromium_path() -> String {
    std::env::var("SHOP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Headless Chromium as root on a closed network: no sandbox (root), no GPU, none of the
/// browser's own background connections; DevTools on fds 3 and 4.
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
    "--window-size=1280,900",
    "--remote-debugging-pipe",
];

/// `[data-testid="name"]`
fn tid(name: &str) -> String {
    format!("[data-testid=\"{name}\"]")
}

/// `tid(name)` as a JavaScript string literal.
fn q(name: &str) -> String {
    serde_json::to_string(&tid(name)).unwrap()
}

/// A JavaScript condition: the texts of every `name` element are exactly `texts`, in order.
fn cells_are(name: &str, texts: &[&str]) -> String {
    format!(
        "JSON.stringify([...document.querySelectorAll({})].map(e => e.innerText.trim())) === {}",
        q(name),
        serde_json::to_string(&serde_json::to_string(texts).unwrap()).unwrap()
    )
}

/// One row of the history table as shown.
#[derive(Debug)]
#[allow(dead_code)]
struct HistoryRow {
    service: String,
    object: i64,
    action: String,
    changes: String,
    staff: String,
    at: String,
}

/// Headless Chromium with one page, driven over `--remote-debugging-pipe`.
struct Browser {
    child: Child,
    to_browser: Mutex<File>,
    /// Commands sent and not yet answered, by id.
    pending: Arc<Mutex<HashMap<u64, mpsc::Sender<Value>>>>,
    /// The page's console errors, exceptions and requests.
    events: Arc<Mutex<Vec<Value>>>,
    next_id: AtomicU64,
    /// The page's DevTools session.
    session: String,
    profile: PathBuf,
    /// Screenshots are named `<label>-<name>.png`.
    label: String,
}

impl Browser {
    /// Starts Chromium with a fresh profile and attaches to its page; `None` after a loud
    /// notice when Chromium is missing (a failure when `SHOP_REQUIRE_DOCS_TOOLS` is set).
    fn launch(engine: Engine, what: &str) -> Option<Browser> {
        let program = chromium_path();
        let version = Command::new(&program)
            .arg("--version")
            .stdin(Stdio::null())
            .output();
        if let Err(why) = version.as_ref().map_err(|e| e.to_string()).and_then(|out| {
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        }) {
            if std::env::var_os(REQUIRE_TOOLS).is_some() {
                panic!("{program} is required ({REQUIRE_TOOLS}) but can't run: {why}");
            }
            eprintln!("\n*** SKIPPING a console browser test: {program} can't run ({why}); .ci/run installs it ***\n");
            return None;
        }
        let label = format!(
            "{}-{what}",
            match engine {
                Engine::Sqlite => "sqlite",
                Engine::Postgres => "postgres",
            }
        );
        let profile = fresh_workdir("console-chromium");
        let (to_read, to_write) = pipe();
        let (from_read, from_write) = pipe();
        let (child_in, child_out) = (to_read.as_raw_fd(), from_write.as_raw_fd());
        let mut cmd = Command::new(&program);
        cmd.args(CHROMIUM_FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
            // SAFETY: only async-signal-safe calls (fcntl, dup2, prctl) on fds the parent made.
            unsafe {
                cmd.pre_exec(move || {
                    // Out of the way first, in case either is already 3 or 4; dup2 clears
                    // close-on-exec on the copies the browser keeps.
                    let input = libc::fcntl(child_in, libc::F_DUPFD_CLOEXEC, 10);
                    let output = libc::fcntl(child_out, libc::F_DUPFD_CLOEXEC, 10);
                    if input < 0
                        || output < 0
                        || libc::dup2(input, 3) < 0
                        || libc::dup2(output, 4) < 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        drop((to_read, from_write));

        let pending: Arc<Mutex<HashMap<u64, mpsc::Sender<Value>>>> = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        {
            let (pending, events) = (pending.clone(), events.clone());
            let from_browser = File::from(from_read);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(from_browser);
                let mut message = Vec::new();
                loop {
                    message.clear();
                    match reader.read_until(0, &mut message) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if message.last() == Some(&0) {
                        message.pop();
                    }
                    let Ok(message) = serde_json::from_slice::<Value>(&message) else {
                        continue;
                    };
                    if let Some(id) = message["id"].as_u64() {
                        if let Some(waiter) = pending.lock().unwrap().remove(&id) {
                            let _ = waiter.send(message);
                        }
                    } else if matches!(
                        message["method"].as_str(),
                        Some(
                            "Runtime.exceptionThrown"
                                | "Runtime.consoleAPICalled"
                                | "Log.entryAdded"
                                | "Network.requestWillBeSent"
                        )
                    ) {
                        events.lock().unwrap().push(message);
                    }
                }
                // The browser is gone: every waiter learns it now.
                pending.lock().unwrap().clear();
            });
        }
        let mut browser = Browser {
            child,
            to_browser: Mutex::new(File::from(to_write)),
            pending,
            events,
            next_id: AtomicU64::new(1),
            session: String::new(),
            profile,
            label,
        };
        let targets = browser.command(None, "Target.getTargets", json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .map(|t| t["targetId"].clone());
        let page = match page {
            Some(page) => page,
            None => browser.command(None, "Target.createTarget", json!({"url": "about:blank"}))
                ["targetId"]
                .clone(),
        };
        let attached = browser.command(
            None,
            "Target.attachToTarget",
            json!({"targetId": page, "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        for domain in [
            "Page.enable",
            "Runtime.enable",
            "Log.enable",
            "Network.enable",
        ] {
            browser.call(domain, json!({}));
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        Some(browser)
    }

    /// Sends one DevTools command (to the page's session, or the browser's) and waits for its
    /// answer's `result`.
    fn command(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to_browser
            .lock()
            .unwrap()
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("DevTools {method}: the browser is gone ({e})"));
        let answer = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("DevTools {method}: no answer ({e})"));
        if let Some(error) = answer.get("error") {
            panic!("DevTools {method} failed: {error}");
        }
        answer["result"].clone()
    }

    /// A command to the page.
    fn call(&self, method: &str, params: Value) -> Value {
        self.command(Some(&self.session.clone()), method, params)
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    fn eval(&self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(thrown) = result.get("exceptionDetails") {
            panic!(
                "{expression} threw: {}",
                thrown["exception"]["description"]
                    .as_str()
                    .unwrap_or(&thrown.to_string())
            );
        }
        result["result"]["value"].clone()
    }

    /// Turns the page's scripts off or on (for the next load).
    fn scripts(&self, on: bool) {
        self.call(
            "Emulation.setScriptExecutionDisabled",
            json!({"value": !on}),
        );
    }

    /// Loads `url` and waits for it.
    fn open(&self, url: &str) {
        // A mark on the old document, so that it is not taken for the new one.
        self.eval("window.consoleTestOldPage = true");
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for(
            "the page to load",
            &format!(
                "!window.consoleTestOldPage && document.readyState === 'complete' && location.href.startsWith({})",
                serde_json::to_string(url).unwrap()
            ),
        );
    }

    /// Waits (at most 20 s) until `condition` is truthy and returns its value; on timeout
    /// keeps a screenshot named after `what` and fails with the page's text.
    fn wait_for(&self, what: &str, condition: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let value = self.eval(condition);
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let name = what.replace(|c: char| !c.is_ascii_alphanumeric(), "-");
                let shot = self.screenshot(&format!("failed-{name}"));
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!(
                    "waited 20 s for {what} ({condition}); screenshot {}; errors {:?}; the page reads:\n{}",
                    shot.display(),
                    self.page_errors(),
                    text.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the `name` element's text contains `expected`, and returns the text.
    fn wait_for_text(&self, name: &str, expected: &str) -> String {
        self.wait_for_text_in("body", name, expected)
    }

    /// The same, for the `name` element inside `within`.
    fn wait_for_text_in(&self, within: &str, name: &str, expected: &str) -> String {
        let selector = serde_json::to_string(&format!("{within} {}", tid(name))).unwrap();
        let condition = format!(
            "(() => {{ const t = document.querySelector({selector})?.innerText ?? ''; return t.includes({}) ? t : ''; }})()",
            serde_json::to_string(expected).unwrap()
        );
        self.wait_for(&format!("{expected:?} in {name}"), &condition)
            .as_str()
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Waits until exactly `count` elements named `name` are on the page.
    fn wait_for_rows(&self, name: &str, count: usize) {
        self.wait_for(
            &format!("{count} {name}"),
            &format!("document.querySelectorAll({}).length === {count}", q(name)),
        );
    }

    /// The text of the first element matching `selector`.
    fn text(&self, selector: &str) -> String {
        let selector = serde_json::to_string(selector).unwrap();
        self.eval(&format!(
            "document.querySelector({selector})?.innerText ?? ''"
        ))
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_owned()
    }

    /// Clicks the middle of the first element matching `selector` with the mouse, once it is
    /// on screen, enabled and not covered by another element.
    fn click(&self, selector: &str) {
        let literal = serde_json::to_string(selector).unwrap();
        let point = self.wait_for(
            &format!("{selector} to be clickable"),
            &format!(
                "(() => {{ const el = document.querySelector({literal}); if (!el || el.disabled) return null; \
                 el.scrollIntoView({{block: 'center', inline: 'center'}}); const r = el.getBoundingClientRect(); \
                 if (!r.width || !r.height) return null; const x = r.left + r.width / 2, y = r.top + r.height / 2; \
                 const top = document.elementFromPoint(x, y); return top && el.contains(top) ? [x, y] : null; }})()"
            ),
        );
        let (x, y) = (point[0].as_f64().unwrap(), point[1].as_f64().unwrap());
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Waits until the console's view shows the current route, drawn to the end.
    fn settled(&self) {
        self.wait_for(
            "the view to show the current route",
            "(() => { const v = document.querySelector('[data-testid=view]'); \
             return v.getAttribute('aria-busy') === 'false' && v.dataset.route === location.hash; })()",
        );
    }

    /// Clicks something that changes the route (a link, a search, a sort) and waits for the
    /// new view.
    fn follow(&self, selector: &str) {
        self.click(selector);
        self.settled();
    }

    /// Clicks into a text field, selects what is there and types `text` over it.
    fn type_into(&self, selector: &str, text: &str) {
        self.click(selector);
        let literal = serde_json::to_string(selector).unwrap();
        self.eval(&format!("document.querySelector({literal}).select()"));
        if text.is_empty() {
            for kind in ["keyDown", "keyUp"] {
                self.call(
                    "Input.dispatchKeyEvent",
                    json!({"type": kind, "key": "Backspace", "code": "Backspace", "windowsVirtualKeyCode": 8}),
                );
            }
        } else {
            self.call("Input.insertText", json!({"text": text}));
        }
        let now = self.eval(&format!("document.querySelector({literal}).value"));
        assert_eq!(now, text, "typing into {selector}");
    }

    /// Picks `value` in a `<select>` (its pop-up is not part of the page, so the choice is made
    /// as the keyboard would make it: the value changes and `change` fires).
    fn choose(&self, selector: &str, value: &str) {
        self.click(selector);
        let literal = serde_json::to_string(selector).unwrap();
        let value = serde_json::to_string(value).unwrap();
        self.eval(&format!(
            "(() => {{ const el = document.querySelector({literal}); el.value = {value}; \
             el.dispatchEvent(new Event('change', {{bubbles: true}})); }})()"
        ));
        self.settled();
    }

    /// The rows of the history table on the page.
    fn history(&self) -> Vec<HistoryRow> {
        let rows = self.eval(
            "[...document.querySelectorAll('[data-testid=history-entry]')].map(r => ({\
               service: r.dataset.service, object: Number(r.dataset.object), action: r.dataset.action,\
               changes: r.querySelector('[data-testid=history-changes]').innerText,\
               staff: r.querySelector('[data-testid=history-staff]').innerText,\
               at: r.querySelector('[data-testid=history-at]').innerText }))",
        );
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| HistoryRow {
                service: r["service"].as_str().unwrap().to_owned(),
                object: r["object"].as_i64().unwrap(),
                action: r["action"].as_str().unwrap().to_owned(),
                changes: r["changes"].as_str().unwrap().replace('\n', "; "),
                staff: r["staff"].as_str().unwrap().trim().to_owned(),
                at: r["at"].as_str().unwrap().to_owned(),
            })
            .collect()
    }

    /// Signs in through the form.
    fn sign_in(&self, username: &str, password: &str) {
        self.type_into(&tid("signin-username"), username);
        self.type_into(&tid("signin-password"), password);
        self.click(&tid("signin-submit"));
    }

    /// A screenshot of the whole page into `target/console-screenshots/<label>-<name>.png`.
    fn screenshot(&self, name: &str) -> PathBuf {
        let dir = repo_root().join("target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}-{name}.png", self.label));
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64_decode(shot["data"].as_str().unwrap_or_default());
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "no real screenshot for {name}"
        );
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The page's script errors, console errors and content-security-policy refusals (a
    /// failed request is the API answering, not an error of the page).
    fn page_errors(&self) -> Vec<String> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter_map(|event| {
                let params = &event["params"];
                match event["method"].as_str()? {
                    "Runtime.exceptionThrown" => Some(format!(
                        "exception: {}",
                        params["exceptionDetails"]["exception"]["description"]
                            .as_str()
                            .unwrap_or(&params["exceptionDetails"]["text"].to_string())
                    )),
                    "Runtime.consoleAPICalled" if params["type"] == "error" => {
                        Some(format!("console.error: {}", params["args"]))
                    }
                    "Log.entryAdded" => {
                        let entry = &params["entry"];
                        let text = entry["text"].as_str().unwrap_or_default();
                        (entry["source"] == "security"
                            || text.contains("Content Security Policy")
                            || entry["source"] == "javascript")
                            .then(|| format!("{}: {text}", entry["source"]))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    fn assert_no_page_errors(&self) {
        let errors = self.page_errors();
        assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
    }

    /// Every (method, URL) the page requested.
    fn requests(&self) -> Vec<(String, String)> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .map(|e| {
                let request = &e["params"]["request"];
                (
                    request["method"].as_str().unwrap_or_default().to_owned(),
                    request["url"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The tokens live in the script's memory only: no cookie, nothing in storage.
    fn assert_keeps_nothing(&self) {
        let kept = self.eval("[document.cookie, localStorage.length, sessionStorage.length]");
        assert_eq!(
            kept,
            json!(["", 0, 0]),
            "the console kept something in the browser"
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the browser's own process group (made at spawn); no memory touched.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A pipe whose ends close on exec (the browser gets its copies as fds 3 and 4).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array; each is owned once, below.
    let made = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(made, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just opened by pipe2 and nothing else owns them.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Standard base64 (with padding), as DevTools sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for sextet in text.bytes().filter_map(value) {
        bits = (bits << 6) | u32::from(sextet);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}
