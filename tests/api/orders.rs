//! The Orders section of API.md: checkout as a saga over products, cart and accounts, its
//! idempotency, the status flow, and the stock invariant under concurrency.

use serde_json::{json, Value};

use crate::e2e;
use crate::helpers::*;
use crate::products::{assert_entry, history, named_staff_token};

pub(crate) async fn product(app: &TestApp, price: &str, stock: i64) -> (i64, String) {
    let name = format!("order item {}", unique_suffix());
    let made = app
        .create_product(json!({"name": name, "price": price, "stock": stock}))
        .await;
    (made["id"].as_i64().unwrap(), name)
}

pub(crate) async fn place(app: &TestApp, token: &str, key: Option<&str>) -> Answer {
    let body = json!({"shipping_address": "1 Test Street, Testville"});
    let mut req = app
        .client
        .post(format!("{}/api/orders/", app.base))
        .bearer_auth(token)
        .json(&body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let raw = res.bytes().await.unwrap().to_vec();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        raw,
    }
}

/// Units of `product_id` held by orders that are not cancelled, over every order (staff view).
pub(crate) async fn units_held(app: &TestApp, product_id: i64) -> i64 {
    let staff = staff_token();
    let mut held = 0;
    let mut page = 1;
    loop {
        let answer = app
            .get(
                &format!("/api/orders/?page_size=100&page={page}"),
                Some(&staff),
            )
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        for order in answer.body["results"].as_array().unwrap() {
            if order["status"] == "cancelled" {
                continue;
            }
            for item in order["items"].as_array().unwrap() {
                if item["product_id"] == product_id {
                    held += item["quantity"].as_i64().unwrap();
                }
            }
        }
        if answer.body["next"].is_null() {
            return held;
        }
        page += 1;
    }
}

async fn needs_a_user(app: TestApp) {
    assert_detail(
        &app.json("POST", "/api/orders/", None, &json!({})).await,
        401,
    );
    assert_detail(&app.get("/api/orders/", None).await, 401);
    assert_detail(&app.get("/api/orders/1/", None).await, 401);
}

async fn place_an_order_from_the_cart(app: TestApp) {
    let user = fresh_user_id();
    let token = user_token(user);
    let (mug, mug_name) = product(&app, "19.99", 5).await;
    let (pin, _) = product(&app, "0.10", 5).await;
    app.add_to_cart(&token, mug, 2).await;
    app.add_to_cart(&token, pin, 3).await;
    let placed = place(&app, &token, None).await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    assert_json(&placed);
    let order = &placed.body;
    assert!(order["id"].as_i64().unwrap() > 0);
    assert_eq!(order["user_id"], user);
    assert_eq!(order["status"], "pending");
    assert_eq!(order["total_amount"], "40.28");
    assert_eq!(order["shipping_address"], "1 Test Street, Testville");
    let items = order["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let mug_item = items.iter().find(|i| i["product_id"] == mug).unwrap();
    assert_eq!(mug_item["product_name"], mug_name);
    assert_eq!(mug_item["quantity"], 2);
    assert_eq!(mug_item["price"], "19.99");
    assert!(order["created_at"].as_str().unwrap().ends_with('Z'));
    // Stock moved, the cart is empty.
    assert_eq!(app.stock_of(mug).await, 3);
    assert_eq!(app.stock_of(pin).await, 2);
    let cart = app.get("/api/carts/", Some(&token)).await.body;
    assert_eq!(cart["items"], json!([]));
    // The order reads back the same.
    let read = app
        .get(&format!("/api/orders/{}/", order["id"]), Some(&token))
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(&read.body, order);
    // Its prices are a snapshot.
    app.json(
        "PATCH",
        &format!("/api/products/{mug}/"),
        Some(&staff_token()),
        &json!({"price": "25.00"}),
    )
    .await;
    let later = app
        .get(&format!("/api/orders/{}/", order["id"]), Some(&token))
        .await
        .body;
    assert_eq!(later["total_amount"], "40.28");
}

async fn an_empty_cart_is_400(app: TestApp) {
    let token = user_token(fresh_user_id());
    assert_detail(&place(&app, &token, None).await, 400);
}

async fn short_stock_moves_nothing(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (plenty, _) = product(&app, "1.00", 10).await;
    let (scarce, scarce_name) = product(&app, "2.00", 2).await;
    app.add_to_cart(&token, plenty, 4).await;
    app.add_to_cart(&token, scarce, 2).await;
    // Someone else buys one of the scarce units meanwhile.
    let other = user_token(fresh_user_id());
    app.add_to_cart(&other, scarce, 1).await;
    assert_eq!(place(&app, &other, None).await.status, 201);
    let refused = place(&app, &token, None).await;
    assert_detail(&refused, 409);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains(&scarce_name),
        "{}",
        refused.body
    );
    assert_eq!(app.stock_of(plenty).await, 10, "no stock moved");
    assert_eq!(app.stock_of(scarce).await, 1);
    let cart = app.get("/api/carts/", Some(&token)).await.body;
    assert_eq!(cart["items"].as_array().unwrap().len(), 2, "the cart stays");
    let mine = app.get("/api/orders/", Some(&token)).await.body;
    assert_eq!(mine["count"], 0, "no order made");
}

async fn idempotent_retries_make_one_order(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (id, _) = product(&app, "3.00", 10).await;
    app.add_to_cart(&token, id, 2).await;
    let key = format!("retry-{}", unique_suffix());
    let first = place(&app, &token, Some(&key)).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let again = place(&app, &token, Some(&key)).await;
    assert_eq!(again.status, 201, "{:?}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(app.stock_of(id).await, 8, "stock taken once");

    // Concurrent retries of one request: one order, stock taken once.
    let token = user_token(fresh_user_id());
    app.add_to_cart(&token, id, 3).await;
    let key = format!("burst-{}", unique_suffix());
    let mut tries = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let app = TestApp {
            base: app.base.clone(),
            engine: app.engine,
            client: app.client.clone(),
        };
        let (token, key) = (token.clone(), key.clone());
        tries.spawn(async move { place(&app, &token, Some(&key)).await });
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(answer) = tries.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        ids.insert(answer.body["id"].as_i64().unwrap());
    }
    assert_eq!(ids.len(), 1, "every retry answered with one order: {ids:?}");
    assert_eq!(app.stock_of(id).await, 5);
    // A key from another user is another order.
    let stranger = user_token(fresh_user_id());
    app.add_to_cart(&stranger, id, 1).await;
    let theirs = place(&app, &stranger, Some(&key)).await;
    assert_eq!(theirs.status, 201);
    assert!(!ids.contains(&theirs.body["id"].as_i64().unwrap()));
}

async fn default_address_comes_from_the_profile(app: TestApp) {
    let username = format!("buyer{}", unique_suffix());
    let password = "correct horse battery";
    let register = app.json("POST", "/api/accounts/register/", None, &json!({"username": username, "email": format!("{username}@example.com"), "password": password, "address": "42 Profile Road"})).await;
    assert_eq!(register.status, 201, "{:?}", register.body);
    let login = app
        .json(
            "POST",
            "/api/accounts/login/",
            None,
            &json!({"username": username, "password": password}),
        )
        .await;
    let token = login.body["access"].as_str().unwrap().to_string();
    let (id, _) = product(&app, "1.00", 5).await;
    app.add_to_cart(&token, id, 1).await;
    let placed = app
        .json("POST", "/api/orders/", Some(&token), &json!({}))
        .await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    assert_eq!(placed.body["shipping_address"], "42 Profile Road");
    assert_eq!(placed.body["user_id"], register.body["id"]);
    // A given address wins over the profile's.
    app.add_to_cart(&token, id, 1).await;
    let given = app
        .json(
            "POST",
            "/api/orders/",
            Some(&token),
            &json!({"shipping_address": "Elsewhere"}),
        )
        .await;
    assert_eq!(given.body["shipping_address"], "Elsewhere");
    // No address anywhere: the field is required.
    let nobody = user_token(fresh_user_id());
    app.add_to_cart(&nobody, id, 1).await;
    assert_field_errors(
        &app.json("POST", "/api/orders/", Some(&nobody), &json!({}))
            .await,
        &["shipping_address"],
    );
    assert_eq!(app.stock_of(id).await, 3);
}

async fn lists_and_visibility(app: TestApp) {
    let alice = fresh_user_id();
    let alice_token = user_token(alice);
    let bob_token = user_token(fresh_user_id());
    let (id, _) = product(&app, "1.00", 10).await;
    let mut mine = Vec::new();
    for _ in 0..3 {
        app.add_to_cart(&alice_token, id, 1).await;
        mine.push(
            place(&app, &alice_token, None).await.body["id"]
                .as_i64()
                .unwrap(),
        );
    }
    app.add_to_cart(&bob_token, id, 1).await;
    let bobs = place(&app, &bob_token, None).await.body;
    let list = app.get("/api/orders/", Some(&alice_token)).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["count"], 3);
    let ids = integers(&list.body["results"], "id");
    assert_eq!(
        ids,
        mine.iter().rev().cloned().collect::<Vec<_>>(),
        "newest first"
    );
    let paged = app
        .get("/api/orders/?page_size=2&page=2", Some(&alice_token))
        .await;
    assert_eq!(paged.body["results"].as_array().unwrap().len(), 1);
    // Another user's order is not found; staff sees it.
    assert_detail(
        &app.get(&format!("/api/orders/{}/", bobs["id"]), Some(&alice_token))
            .await,
        404,
    );
    assert_detail(
        &app.json(
            "POST",
            &format!("/api/orders/{}/cancel/", bobs["id"]),
            Some(&alice_token),
            &json!({}),
        )
        .await,
        404,
    );
    assert_eq!(
        app.get(
            &format!("/api/orders/{}/", bobs["id"]),
            Some(&staff_token())
        )
        .await
        .status,
        200
    );
    assert_detail(
        &app.get("/api/orders/999999999/", Some(&staff_token()))
            .await,
        404,
    );
    assert_detail(&app.get("/api/orders/abc/", Some(&alice_token)).await, 404);
    // Staff lists everything and filters by status.
    let all = app
        .get("/api/orders/?page_size=100", Some(&staff_token()))
        .await;
    assert!(all.body["count"].as_i64().unwrap() >= 4);
    let pending = app
        .get(
            "/api/orders/?status=pending&page_size=100",
            Some(&staff_token()),
        )
        .await;
    assert!(pending.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["status"] == "pending"));
    assert_field_errors(
        &app.get("/api/orders/?status=lost", Some(&staff_token()))
            .await,
        &["status"],
    );
}

async fn cancel_puts_stock_back_once(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (id, _) = product(&app, "4.00", 6).await;
    app.add_to_cart(&token, id, 4).await;
    let order = place(&app, &token, None).await.body;
    assert_eq!(app.stock_of(id).await, 2);
    let path = format!("/api/orders/{}/cancel/", order["id"]);
    let cancelled = app.json("POST", &path, Some(&token), &json!({})).await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(app.stock_of(id).await, 6);
    assert_detail(
        &app.json("POST", &path, Some(&token), &json!({})).await,
        409,
    );
    assert_detail(
        &app.json(
            "POST",
            &format!("/api/orders/{}/status/", order["id"]),
            Some(&staff_token()),
            &json!({"status": "cancelled"}),
        )
        .await,
        409,
    );
    assert_eq!(app.stock_of(id).await, 6, "stock back exactly once");

    // Concurrent cancels: one wins, stock comes back once.
    app.add_to_cart(&token, id, 3).await;
    let order = place(&app, &token, None).await.body;
    let mut cancels = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let client = app.client.clone();
        let url = format!("{}/api/orders/{}/cancel/", app.base, order["id"]);
        let token = token.clone();
        cancels.spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = cancels.join_next().await {
        statuses.push(s.unwrap());
    }
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(app.stock_of(id).await, 6);
}

async fn staff_move_orders_through_the_flow(app: TestApp) {
    let token = user_token(fresh_user_id());
    let staff = staff_token();
    let (id, _) = product(&app, "1.00", 10).await;
    app.add_to_cart(&token, id, 2).await;
    let order = place(&app, &token, None).await.body;
    let path = format!("/api/orders/{}/status/", order["id"]);
    let set = |status: &'static str| {
        let app = &app;
        let path = path.clone();
        let staff = staff.clone();
        async move {
            app.json("POST", &path, Some(&staff), &json!({"status": status}))
                .await
        }
    };
    assert_detail(
        &app.json(
            "POST",
            &path,
            Some(&token),
            &json!({"status": "processing"}),
        )
        .await,
        403,
    );
    assert_detail(&set("shipped").await, 409);
    assert_detail(&set("pending").await, 409);
    assert_field_errors(&set("teleported").await, &["status"]);
    assert_field_errors(
        &app.json("POST", &path, Some(&staff), &json!({})).await,
        &["status"],
    );
    for status in ["processing", "shipped", "delivered"] {
        let answer = set(status).await;
        assert_eq!(answer.status, 200, "{status}: {:?}", answer.body);
        assert_eq!(answer.body["status"], status);
    }
    assert_detail(&set("cancelled").await, 409);
    assert_detail(
        &app.json(
            "POST",
            &format!("/api/orders/{}/cancel/", order["id"]),
            Some(&token),
            &json!({}),
        )
        .await,
        409,
    );
    assert_eq!(
        app.stock_of(id).await,
        8,
        "a delivered order keeps its stock"
    );

    // Cancelling from processing through /status/ puts the stock back.
    app.add_to_cart(&token, id, 3).await;
    let order = place(&app, &token, None).await.body;
    let path = format!("/api/orders/{}/status/", order["id"]);
    assert_eq!(
        app.json(
            "POST",
            &path,
            Some(&staff),
            &json!({"status": "processing"})
        )
        .await
        .status,
        200
    );
    assert_eq!(app.stock_of(id).await, 5);
    let cancelled = app
        .json("POST", &path, Some(&staff), &json!({"status": "cancelled"}))
        .await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    assert_eq!(app.stock_of(id).await, 8);
    // Staff may cancel a user's order too.
    app.add_to_cart(&token, id, 1).await;
    let order = place(&app, &token, None).await.body;
    let by_staff = app
        .json(
            "POST",
            &format!("/api/orders/{}/cancel/", order["id"]),
            Some(&staff),
            &json!({}),
        )
        .await;
    assert_eq!(by_staff.status, 200);
    assert_eq!(app.stock_of(id).await, 8);
}

/// A cart of more products than one statement takes (70 lines: the reservation, the order's
/// items and the clearing of the cart each take two statements) orders whole: every line
/// reserved and written in the cart's order, every stock taken once, the cart left empty.
async fn a_cart_of_seventy_products_orders_whole(app: TestApp) {
    let token = user_token(fresh_user_id());
    let mut ids = Vec::new();
    for _ in 0..70 {
        let (id, _) = product(&app, "1.25", 3).await;
        app.add_to_cart(&token, id, 2).await;
        ids.push(id);
    }
    let placed = place(&app, &token, None).await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    assert_eq!(
        integers(&placed.body["items"], "product_id"),
        ids,
        "every line, in the cart's order"
    );
    assert_eq!(placed.body["total_amount"], "175.00");
    for id in ids {
        assert_eq!(app.stock_of(id).await, 1, "product {id}");
    }
    let cart = app.get("/api/carts/", Some(&token)).await;
    assert_eq!(cart.body["items"], json!([]), "{:?}", cart.body);
}

/// The carts of `tokens` placed all at once (no Idempotency-Key): the answers, as they came.
async fn place_all(app: &TestApp, tokens: Vec<String>) -> Vec<Answer> {
    let mut orders = tokio::task::JoinSet::new();
    for token in tokens {
        let app = TestApp {
            base: app.base.clone(),
            engine: app.engine,
            client: app.client.clone(),
        };
        orders.spawn(async move { place(&app, &token, None).await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = orders.join_next().await {
        answers.push(answer.unwrap());
    }
    answers
}

/// `buyers` users each put one unit in their cart, then all order at once.
async fn race(app: &TestApp, stock: i64, buyers: usize) {
    let (id, _) = product(app, "9.99", stock).await;
    let mut tokens = Vec::new();
    for _ in 0..buyers {
        let token = user_token(fresh_user_id());
        app.add_to_cart(&token, id, 1).await;
        tokens.push(token);
    }
    let (mut made, mut refused) = (0, 0);
    for answer in place_all(app, tokens).await {
        match answer.status {
            201 => made += 1,
            409 => refused += 1,
            other => panic!("unexpected {other}: {:?}", answer.body),
        }
    }
    assert_eq!(made, stock, "orders made");
    assert_eq!(refused as usize, buyers - stock as usize, "409 answers");
    assert_eq!(app.stock_of(id).await, 0);
    assert_eq!(
        app.stock_of(id).await + units_held(app, id).await,
        stock,
        "stock + held = stock put in"
    );
}

/// Buyers of overlapping sets of products (A and B, B and C, C and A, all three), each put in
/// the cart in its own order, all order at once: no two reservations wait for each other in a
/// cycle (each locks its products by id, whatever the cart's order), every order is made, and
/// each product loses exactly the units ordered.
async fn buyers_of_overlapping_products_all_get_theirs(app: TestApp) {
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(product(&app, "2.50", 100).await.0);
    }
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let sets: [&[i64]; 4] = [&[a, b], &[b, c], &[c, a], &[c, b, a]];
    let mut ordered = std::collections::HashMap::new();
    let mut tokens = Vec::new();
    for buyer in 0..24 {
        let token = user_token(fresh_user_id());
        for &id in sets[buyer % sets.len()] {
            app.add_to_cart(&token, id, 1).await;
            *ordered.entry(id).or_insert(0) += 1;
        }
        tokens.push(token);
    }
    for answer in place_all(&app, tokens).await {
        assert_eq!(answer.status, 201, "{:?}", answer.body);
    }
    for id in ids {
        assert_eq!(app.stock_of(id).await, 100 - ordered[&id], "product {id}");
    }
}

async fn fifty_buyers_for_ten_units(app: TestApp) {
    race(&app, 10, 50).await;
}

async fn two_hundred_buyers_for_one_unit(app: TestApp) {
    race(&app, 1, 200).await;
}

/// A double click, a retrying proxy: the same user places the same cart `placements` times at
/// once, without an Idempotency-Key. One order is made, the stock is taken once, and every
/// other placement sees the emptied cart.
async fn concurrent_placements_of_one_cart(app: &TestApp, placements: usize) {
    let (id, _) = product(app, "4.00", 10).await;
    let token = user_token(fresh_user_id());
    app.add_to_cart(&token, id, 2).await;
    let mut made = Vec::new();
    for answer in place_all(app, vec![token.clone(); placements]).await {
        match answer.status {
            201 => made.push(answer.body["id"].as_i64().unwrap()),
            400 => assert_eq!(
                answer.body["detail"], "Your cart is empty.",
                "{:?}",
                answer.body
            ),
            other => panic!("unexpected {other}: {:?}", answer.body),
        }
    }
    assert_eq!(
        made.len(),
        1,
        "{placements} placements of one cart made orders {made:?}"
    );
    assert_eq!(app.stock_of(id).await, 8, "the stock is taken once");
    let mine = app.get("/api/orders/", Some(&token)).await;
    assert_eq!(mine.body["count"], 1, "{:?}", mine.body);
    let cart = app.get("/api/carts/", Some(&token)).await;
    assert_eq!(cart.body["item_count"], 0, "{:?}", cart.body);
}

async fn five_placements_of_one_cart_make_one_order(app: TestApp) {
    concurrent_placements_of_one_cart(&app, 5).await;
}

async fn twenty_placements_of_one_cart_make_one_order(app: TestApp) {
    concurrent_placements_of_one_cart(&app, 20).await;
}

async fn methods_and_paths(app: TestApp) {
    let token = user_token(fresh_user_id());
    let wrong = app
        .json("PUT", "/api/orders/", Some(&token), &json!({}))
        .await;
    assert_detail(&wrong, 405);
    assert!(wrong.header("allow").unwrap().contains("POST"));
    assert_detail(&app.get("/api/orders/1/cancel/", Some(&token)).await, 405);
    assert_detail(&app.get("/api/orders/1/nothing/", Some(&token)).await, 404);
    let bad_key = app
        .client
        .post(format!("{}/api/orders/", app.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", "x".repeat(300))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status().as_u16(), 400);
}

// ---------------------------------------------------------------------------------------------
// History and bounds
// ---------------------------------------------------------------------------------------------

/// A pending order of a fresh customer for `quantity` units of a fresh product: (order, product
/// id, the customer's token).
async fn pending_order(app: &TestApp, quantity: i64) -> (Value, i64, String) {
    let token = user_token(fresh_user_id());
    let (product_id, _) = product(app, "3.00", 10).await;
    app.add_to_cart(&token, product_id, quantity).await;
    let placed = place(app, &token, None).await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    (placed.body, product_id, token)
}

async fn post_status(app: &TestApp, order: &Value, token: &str, status: &str) -> Answer {
    app.json(
        "POST",
        &format!("/api/orders/{}/status/", order["id"]),
        Some(token),
        &json!({"status": status}),
    )
    .await
}

async fn post_cancel(app: &TestApp, order: &Value, token: &str) -> Answer {
    app.json(
        "POST",
        &format!("/api/orders/{}/cancel/", order["id"]),
        Some(token),
        &json!({}),
    )
    .await
}

async fn order_history(app: &TestApp, order: &Value) -> Value {
    history(app, "orders", &format!("object_id={}", order["id"])).await
}

async fn staff_status_changes_and_cancellations_are_history(app: TestApp) {
    let staff_id = fresh_user_id();
    let username = format!("shipper.{}", unique_suffix());
    let staff = named_staff_token(staff_id, &username);

    // A status step, then a refused one (409) that records nothing.
    let (moved, _, owner) = pending_order(&app, 1).await;
    assert_eq!(
        post_status(&app, &moved, &staff, "processing").await.status,
        200
    );
    assert_detail(&post_status(&app, &moved, &staff, "processing").await, 409);
    assert_detail(&post_status(&app, &moved, &staff, "delivered").await, 409);
    assert_detail(&post_status(&app, &moved, &owner, "shipped").await, 403);
    let page = order_history(&app, &moved).await;
    assert_eq!(page["count"], 1, "{page}");
    assert_eq!(
        assert_entry(
            &page["results"][0],
            moved["id"].as_i64().unwrap(),
            "status",
            staff_id,
            &username
        ),
        json!({"status": ["pending", "processing"]})
    );

    // Staff cancel through /cancel/: recorded, and the stock comes back once.
    let (cancelled, product_id, _) = pending_order(&app, 4).await;
    assert_eq!(app.stock_of(product_id).await, 6);
    let answer = post_cancel(&app, &cancelled, &staff).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(app.stock_of(product_id).await, 10);
    assert_detail(&post_cancel(&app, &cancelled, &staff).await, 409);
    assert_detail(
        &post_status(&app, &cancelled, &staff, "cancelled").await,
        409,
    );
    assert_eq!(
        app.stock_of(product_id).await,
        10,
        "stock back exactly once"
    );
    let page = order_history(&app, &cancelled).await;
    assert_eq!(page["count"], 1, "{page}");
    assert_eq!(
        assert_entry(
            &page["results"][0],
            cancelled["id"].as_i64().unwrap(),
            "status",
            staff_id,
            &username
        ),
        json!({"status": ["pending", "cancelled"]})
    );

    // Through /status/ from processing, too.
    let (late, product_id, _) = pending_order(&app, 2).await;
    assert_eq!(
        post_status(&app, &late, &staff, "processing").await.status,
        200
    );
    assert_eq!(
        post_status(&app, &late, &staff, "cancelled").await.status,
        200
    );
    assert_eq!(app.stock_of(product_id).await, 10);
    let page = order_history(&app, &late).await;
    let changes: Vec<&Value> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| &entry["changes"]["status"])
        .collect();
    assert_eq!(
        changes,
        [
            &json!(["processing", "cancelled"]),
            &json!(["pending", "processing"])
        ]
    );

    // A customer cancelling their own order is not a staff change: no entry.
    let (own, product_id, owner) = pending_order(&app, 3).await;
    assert_eq!(post_cancel(&app, &own, &owner).await.status, 200);
    assert_eq!(app.stock_of(product_id).await, 10);
    assert_eq!(order_history(&app, &own).await["count"], 0);

    // Staff cancelling their own order are staff: recorded.
    let (product_id, _) = product(&app, "2.00", 5).await;
    app.add_to_cart(&staff, product_id, 2).await;
    let theirs = place(&app, &staff, None).await.body;
    assert_eq!(post_cancel(&app, &theirs, &staff).await.status, 200);
    let page = order_history(&app, &theirs).await;
    assert_eq!(page["count"], 1, "{page}");
    assert_entry(
        &page["results"][0],
        theirs["id"].as_i64().unwrap(),
        "status",
        staff_id,
        &username,
    );
}

async fn order_history_is_staff_only_and_paged(app: TestApp) {
    let path = "/api/orders/history/";
    assert_detail(&app.get(path, None).await, 401);
    let (order, _, owner) = pending_order(&app, 1).await;
    assert_detail(&app.get(path, Some(&owner)).await, 403);
    // `history` is not an order id.
    assert_detail(
        &app.json("POST", path, Some(&staff_token()), &json!({}))
            .await,
        405,
    );
    let staff = staff_token();
    for status in ["processing", "shipped", "delivered"] {
        assert_eq!(post_status(&app, &order, &staff, status).await.status, 200);
    }
    let first = history(
        &app,
        "orders",
        &format!("object_id={}&page_size=2", order["id"]),
    )
    .await;
    assert_eq!(first["count"], 3, "{first}");
    assert!(
        first["next"].as_str().unwrap().contains("page=2"),
        "{first}"
    );
    assert_eq!(
        first["results"][0]["changes"],
        json!({"status": ["shipped", "delivered"]})
    );
    assert_entry(
        &first["results"][0],
        order["id"].as_i64().unwrap(),
        "status",
        1,
        "",
    );
    let second = history(
        &app,
        "orders",
        &format!("object_id={}&page_size=2&page=2", order["id"]),
    )
    .await;
    assert_eq!(
        second["results"][0]["changes"],
        json!({"status": ["pending", "processing"]})
    );
    assert_eq!(second["next"], Value::Null);
    assert_field_errors(
        &app.get(&format!("{path}?object_id=x"), Some(&staff)).await,
        &["object_id"],
    );
    assert!(history(&app, "orders", "").await["count"].as_i64().unwrap() >= 3);
}

async fn shipping_addresses_hold_at_most_1000_characters(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (id, _) = product(&app, "1.00", 5).await;
    app.add_to_cart(&token, id, 2).await;
    // Characters, not bytes; surrounding spaces do not count.
    let over = app
        .json(
            "POST",
            "/api/orders/",
            Some(&token),
            &json!({"shipping_address": "é".repeat(1001)}),
        )
        .await;
    assert_field_errors(&over, &["shipping_address"]);
    assert_eq!(
        over.body,
        json!({"shipping_address": ["Ensure this field has no more than 1000 characters."]})
    );
    assert_eq!(app.stock_of(id).await, 5, "a refused order takes no stock");
    let longest = "é".repeat(1000);
    let placed = app
        .json(
            "POST",
            "/api/orders/",
            Some(&token),
            &json!({"shipping_address": format!("  {longest}  ")}),
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    assert_eq!(placed.body["shipping_address"], longest);
    assert_eq!(app.stock_of(id).await, 3);
}

e2e!(
    needs_a_user,
    place_an_order_from_the_cart,
    an_empty_cart_is_400,
    short_stock_moves_nothing,
    idempotent_retries_make_one_order,
    default_address_comes_from_the_profile,
    lists_and_visibility,
    cancel_puts_stock_back_once,
    staff_move_orders_through_the_flow,
    fifty_buyers_for_ten_units,
    two_hundred_buyers_for_one_unit,
    buyers_of_overlapping_products_all_get_theirs,
    a_cart_of_seventy_products_orders_whole,
    five_placements_of_one_cart_make_one_order,
    twenty_placements_of_one_cart_make_one_order,
    methods_and_paths,
    staff_status_changes_and_cancellations_are_history,
    order_history_is_staff_only_and_paged,
    shipping_addresses_hold_at_most_1000_characters,
);

async fn list_parameters_are_bounded(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (id, _) = product(&app, "1.00", 5).await;
    app.add_to_cart(&token, id, 1).await;
    assert_eq!(place(&app, &token, None).await.status, 201);
    let list = |query: String| {
        let app = &app;
        let token = token.clone();
        async move {
            app.get(&format!("/api/orders/?{query}"), Some(&token))
                .await
        }
    };
    // A status as long as a URI carries (64 KiB) is named, not echoed back.
    let answer = list(format!("status={}", "x".repeat(60_000))).await;
    assert_field_errors(&answer, &["status"]);
    assert_eq!(
        answer.body,
        json!({"status": ["Ensure this field has no more than 20 characters."]})
    );
    // Given 50 times, the last one counts, however wrong the others.
    let others = vec!["status=lost"; 50].join("&");
    let answer = list(format!("{others}&status=pending")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["count"], 1);
    let others = vec!["status=pending"; 50].join("&");
    let answer = list(format!("{others}&status=lost")).await;
    assert_eq!(
        answer.body,
        json!({"status": ["Select a valid choice. lost is not one of the available choices."]})
    );
    // A page past the end, however far, is the contract's 404.
    for page in ["2", "9223372036854775807", "18446744073709551615"] {
        let answer = list(format!("status=pending&page={page}")).await;
        assert_eq!(answer.status, 404, "{page}: {}", answer.body);
        assert_eq!(answer.body, json!({"detail": "Invalid page."}));
    }
}

e2e!(list_parameters_are_bounded);
