//! The Carts section of API.md: a user's cart, its lines, and what the catalogue says of them.

use serde_json::{json, Value};

use crate::e2e;
use crate::helpers::*;

async fn product(app: &TestApp, price: &str, stock: i64) -> (i64, String) {
    let name = format!("cart item {}", unique_suffix());
    let made = app
        .create_product(json!({"name": name, "price": price, "stock": stock}))
        .await;
    (made["id"].as_i64().unwrap(), name)
}

fn line(cart: &Value, product_id: i64) -> Option<&Value> {
    cart["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["product_id"] == product_id)
}

async fn needs_a_user(app: TestApp) {
    assert_detail(&app.get("/api/carts/", None).await, 401);
    let body = json!({"product_id": 1});
    assert_detail(
        &app.json("POST", "/api/carts/add_item/", None, &body).await,
        401,
    );
    assert_detail(
        &app.json("POST", "/api/carts/remove_item/", None, &body)
            .await,
        401,
    );
    assert_detail(
        &app.json("PUT", "/api/carts/update_quantity/", None, &body)
            .await,
        401,
    );
    let forged = token_with(OTHER_PRIVATE_KEY, 5, false, "access", 900);
    assert_detail(&app.get("/api/carts/", Some(&forged)).await, 401);
}

async fn empty_cart_on_first_use(app: TestApp) {
    let token = user_token(fresh_user_id());
    let first = app.get("/api/carts/", Some(&token)).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_json(&first);
    assert!(first.body["id"].as_i64().unwrap() > 0);
    assert_eq!(first.body["items"], json!([]));
    assert_eq!(first.body["total"], "0.00");
    assert_eq!(first.body["item_count"], 0);
    assert!(first.body["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(first.body["updated_at"].is_string());
    let again = app.get("/api/carts/", Some(&token)).await;
    assert_eq!(again.body["id"], first.body["id"]);
}

async fn add_items_and_exact_totals(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (mug, mug_name) = product(&app, "19.99", 10).await;
    let (pin, _) = product(&app, "0.10", 5).await;
    let cart = app.add_to_cart(&token, mug, 2).await;
    let mug_line = line(&cart, mug).unwrap();
    assert_eq!(mug_line["product_name"], mug_name);
    assert_eq!(mug_line["unit_price"], "19.99");
    assert_eq!(mug_line["quantity"], 2);
    assert_eq!(mug_line["subtotal"], "39.98");
    assert!(mug_line["id"].as_i64().unwrap() > 0);
    // quantity defaults to 1
    let answer = app
        .json(
            "POST",
            "/api/carts/add_item/",
            Some(&token),
            &json!({"product_id": pin}),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["total"], "40.08");
    assert_eq!(answer.body["item_count"], 3);
    // Adding again merges into the line.
    let cart = app.add_to_cart(&token, mug, 1).await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 2);
    assert_eq!(line(&cart, mug).unwrap()["quantity"], 3);
    assert_eq!(cart["total"], "60.07");
    assert_eq!(cart["item_count"], 4);
    // Lines are oldest first.
    assert_eq!(cart["items"][0]["product_id"], mug);
    assert_eq!(app.get("/api/carts/", Some(&token)).await.body, cart);
}

async fn add_item_errors(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (id, name) = product(&app, "2.00", 3).await;
    let add = |body: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            app.json("POST", "/api/carts/add_item/", Some(&token), &body)
                .await
        }
    };
    assert_field_errors(&add(json!({})).await, &["product_id"]);
    assert_field_errors(&add(json!({"product_id": "x"})).await, &["product_id"]);
    assert_field_errors(
        &add(json!({"product_id": id, "quantity": 0})).await,
        &["quantity"],
    );
    assert_field_errors(
        &add(json!({"product_id": id, "quantity": -2})).await,
        &["quantity"],
    );
    assert_field_errors(
        &add(json!({"product_id": id, "quantity": 1.5})).await,
        &["quantity"],
    );
    assert_field_errors(
        &add(json!({"product_id": id, "quantity": 99999999999999i64})).await,
        &["quantity"],
    );
    assert_detail(&add(json!({"product_id": 999_999_999})).await, 404);
    let too_many = add(json!({"product_id": id, "quantity": 4})).await;
    assert_detail(&too_many, 409);
    assert!(
        too_many.body["detail"].as_str().unwrap().contains(&name),
        "{}",
        too_many.body
    );
    app.add_to_cart(&token, id, 2).await;
    // 2 in the cart + 2 more is above the stock of 3; the cart keeps its 2.
    assert_detail(&add(json!({"product_id": id, "quantity": 2})).await, 409);
    let cart = app.get("/api/carts/", Some(&token)).await.body;
    assert_eq!(line(&cart, id).unwrap()["quantity"], 2);
    let not_json = app
        .send(
            "POST",
            "/api/carts/add_item/",
            Some(&token),
            Some(("text/plain", b"x".to_vec())),
        )
        .await;
    assert_detail(&not_json, 415);
}

async fn remove_item(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (a, _) = product(&app, "1.00", 5).await;
    let (b, _) = product(&app, "2.00", 5).await;
    app.add_to_cart(&token, a, 1).await;
    app.add_to_cart(&token, b, 2).await;
    let removed = app
        .json(
            "POST",
            "/api/carts/remove_item/",
            Some(&token),
            &json!({"product_id": a}),
        )
        .await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    assert!(line(&removed.body, a).is_none());
    assert_eq!(removed.body["total"], "4.00");
    assert_detail(
        &app.json(
            "POST",
            "/api/carts/remove_item/",
            Some(&token),
            &json!({"product_id": a}),
        )
        .await,
        404,
    );
    assert_field_errors(
        &app.json("POST", "/api/carts/remove_item/", Some(&token), &json!({}))
            .await,
        &["product_id"],
    );
}

async fn update_quantity(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (id, _) = product(&app, "3.50", 6).await;
    let put = |body: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            app.json("PUT", "/api/carts/update_quantity/", Some(&token), &body)
                .await
        }
    };
    assert_detail(&put(json!({"product_id": id, "quantity": 2})).await, 404);
    app.add_to_cart(&token, id, 1).await;
    let set = put(json!({"product_id": id, "quantity": 5})).await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    assert_eq!(line(&set.body, id).unwrap()["quantity"], 5);
    assert_eq!(set.body["total"], "17.50");
    assert_detail(&put(json!({"product_id": id, "quantity": 7})).await, 409);
    assert_field_errors(
        &put(json!({"product_id": id, "quantity": -1})).await,
        &["quantity"],
    );
    assert_field_errors(&put(json!({"product_id": id})).await, &["quantity"]);
    let zero = put(json!({"product_id": id, "quantity": 0})).await;
    assert_eq!(zero.status, 200);
    assert_eq!(zero.body["items"], json!([]));
    assert_eq!(zero.body["total"], "0.00");
}

async fn names_and_prices_are_the_catalogues(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (id, _) = product(&app, "5.00", 9).await;
    app.add_to_cart(&token, id, 2).await;
    let renamed = format!("renamed {}", unique_suffix());
    let patch = app
        .json(
            "PATCH",
            &format!("/api/products/{id}/"),
            Some(&staff_token()),
            &json!({"price": "7.25", "name": renamed}),
        )
        .await;
    assert_eq!(patch.status, 200);
    let cart = app.get("/api/carts/", Some(&token)).await.body;
    let l = line(&cart, id).unwrap();
    assert_eq!(l["product_name"], renamed);
    assert_eq!(l["unit_price"], "7.25");
    assert_eq!(l["subtotal"], "14.50");
    assert_eq!(cart["total"], "14.50");
}

async fn carts_are_per_user(app: TestApp) {
    let (id, _) = product(&app, "1.00", 9).await;
    let alice = user_token(fresh_user_id());
    let bob = user_token(fresh_user_id());
    let a = app.add_to_cart(&alice, id, 1).await;
    let b = app.get("/api/carts/", Some(&bob)).await.body;
    assert_ne!(a["id"], b["id"]);
    assert_eq!(b["items"], json!([]));
}

async fn concurrent_adds_lose_no_update(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (id, _) = product(&app, "1.00", 1000).await;
    let mut adds = tokio::task::JoinSet::new();
    for _ in 0..25 {
        let client = app.client.clone();
        let url = format!("{}/api/carts/add_item/", app.base);
        let token = token.clone();
        adds.spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"product_id": id, "quantity": 1}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    while let Some(status) = adds.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let cart = app.get("/api/carts/", Some(&token)).await.body;
    assert_eq!(line(&cart, id).unwrap()["quantity"], 25);
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
}

async fn methods_and_paths(app: TestApp) {
    let token = user_token(fresh_user_id());
    let wrong = app.get("/api/carts/add_item/", Some(&token)).await;
    assert_detail(&wrong, 405);
    assert!(wrong.header("allow").unwrap().contains("POST"));
    let wrong = app
        .json(
            "POST",
            "/api/carts/update_quantity/",
            Some(&token),
            &json!({}),
        )
        .await;
    assert_detail(&wrong, 405);
    assert!(wrong.header("allow").unwrap().contains("PUT"));
    assert_detail(
        &app.json("POST", "/api/carts/", Some(&token), &json!({}))
            .await,
        405,
    );
    assert_detail(&app.get("/api/carts/nothing/", Some(&token)).await, 404);
}

async fn add(app: &TestApp, token: &str, product_id: i64, quantity: i64) -> Answer {
    app.json(
        "POST",
        "/api/carts/add_item/",
        Some(token),
        &json!({"product_id": product_id, "quantity": quantity}),
    )
    .await
}

async fn quantity_in_cart(app: &TestApp, token: &str, product_id: i64) -> Option<i64> {
    let cart = app.get("/api/carts/", Some(token)).await;
    assert_eq!(cart.status, 200, "{}", cart.body);
    line(&cart.body, product_id).map(|l| l["quantity"].as_i64().unwrap())
}

async fn a_total_past_what_money_holds_is_a_400(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (dear, _) = product(&app, "99999999.99", 2_147_483_647).await;
    // 2,147,483,647 units at the dearest price: past 64-bit cents.
    let answer = add(&app, &token, dear, 2_147_483_647).await;
    assert_detail(&answer, 400);
    assert_eq!(
        answer.body,
        json!({"detail": "The cart total is too large."})
    );
    assert_eq!(quantity_in_cart(&app, &token, dear).await, None);
    // Adding to a line that fits, past what fits: refused, the line as it was.
    let fits = add(&app, &token, dear, 900_000_000).await;
    assert_eq!(fits.status, 200, "{}", fits.body);
    assert_eq!(fits.body["total"], "89999999991000000.00");
    assert_detail(&add(&app, &token, dear, 100_000_000).await, 400);
    assert_eq!(
        quantity_in_cart(&app, &token, dear).await,
        Some(900_000_000)
    );
    // The same through update_quantity.
    let set = app
        .json(
            "PUT",
            "/api/carts/update_quantity/",
            Some(&token),
            &json!({"product_id": dear, "quantity": 2_147_483_647}),
        )
        .await;
    assert_detail(&set, 400);
    assert_eq!(
        quantity_in_cart(&app, &token, dear).await,
        Some(900_000_000)
    );
    // Two lines that fit alone but not together.
    let (other, _) = product(&app, "99999999.99", 2_147_483_647).await;
    assert_detail(&add(&app, &token, other, 900_000_000).await, 400);
    assert_eq!(quantity_in_cart(&app, &token, other).await, None);
}

async fn a_line_past_the_integer_range_is_a_400(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (cheap, _) = product(&app, "0.01", 2_147_483_647).await;
    let full = add(&app, &token, cheap, 2_147_483_647).await;
    assert_eq!(full.status, 200, "{}", full.body);
    assert_eq!(full.body["total"], "21474836.47");
    let more = add(&app, &token, cheap, 1).await;
    assert_field_errors(&more, &["quantity"]);
    let again = add(&app, &token, cheap, 2_147_483_647).await;
    assert_field_errors(&again, &["quantity"]);
    assert_eq!(
        quantity_in_cart(&app, &token, cheap).await,
        Some(2_147_483_647)
    );
    // Past the range in the body itself: the field's own bound.
    assert_field_errors(
        &add(&app, &token, cheap, 2_147_483_648).await,
        &["quantity"],
    );
    let huge = app
        .send(
            "POST",
            "/api/carts/add_item/",
            Some(&token),
            Some((
                "application/json",
                format!(
                    r#"{{"product_id": {cheap}, "quantity": 1{}}}"#,
                    "0".repeat(40)
                )
                .into_bytes(),
            )),
        )
        .await;
    assert_field_errors(&huge, &["quantity"]);
}

async fn a_cart_whose_prices_rose_past_what_money_holds_is_a_409(app: TestApp) {
    let token = user_token(fresh_user_id());
    let (cheap, _) = product(&app, "0.01", 2_147_483_647).await;
    assert_eq!(add(&app, &token, cheap, 2_147_483_647).await.status, 200);
    let raised = app
        .json(
            "PATCH",
            &format!("/api/products/{cheap}/"),
            Some(&staff_token()),
            &json!({"price": "99999999.99"}),
        )
        .await;
    assert_eq!(raised.status, 200, "{}", raised.body);
    assert_detail(&app.get("/api/carts/", Some(&token)).await, 409);
    // Lowering the quantity is the way out.
    let lowered = app
        .json(
            "PUT",
            "/api/carts/update_quantity/",
            Some(&token),
            &json!({"product_id": cheap, "quantity": 1}),
        )
        .await;
    assert_eq!(lowered.status, 200, "{}", lowered.body);
    assert_eq!(lowered.body["total"], "99999999.99");
}

e2e!(
    needs_a_user,
    empty_cart_on_first_use,
    add_items_and_exact_totals,
    add_item_errors,
    remove_item,
    update_quantity,
    names_and_prices_are_the_catalogues,
    carts_are_per_user,
    concurrent_adds_lose_no_update,
    methods_and_paths,
    a_total_past_what_money_holds_is_a_400,
    a_line_past_the_integer_range_is_a_400,
    a_cart_whose_prices_rose_past_what_money_holds_is_a_409,
);
