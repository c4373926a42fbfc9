//! The Products section of API.md, endpoint by endpoint, error by error.

use serde_json::{json, Value};

use crate::e2e;
use crate::helpers::*;

fn product_body(name: &str, price: &str, stock: i64) -> Value {
    json!({"name": name, "description": format!("about {name}"), "price": price, "stock": stock})
}

/// Creates `n` products whose names all contain `tag`, prices 1.00, 2.00, ... and stock i % 3.
async fn seed(app: &TestApp, tag: &str, n: usize) -> Vec<Value> {
    let mut made = Vec::new();
    for i in 1..=n {
        made.push(
            app.create_product(product_body(
                &format!("{tag} item {i:02}"),
                &format!("{i}.00"),
                (i % 3) as i64,
            ))
            .await,
        );
    }
    made
}

fn ids(page: &Value) -> Vec<i64> {
    integers(&page["results"], "id")
}

fn is_rfc3339_utc(s: &str) -> bool {
    s.ends_with('Z') && s.len() >= 20 && s.as_bytes()[10] == b'T' && s[..4].parse::<u32>().is_ok()
}

async fn create_and_read_back(app: TestApp) {
    let name = format!("Mug {}", unique_suffix());
    let made = app
        .create_product(json!({"name": name, "description": "A mug", "price": "19.99", "stock": 7}))
        .await;
    let id = made["id"].as_i64().expect("id is an integer");
    assert!(id > 0);
    assert_eq!(made["name"], name);
    assert_eq!(made["description"], "A mug");
    assert_eq!(made["price"], "19.99");
    assert_eq!(made["stock"], 7);
    assert!(
        is_rfc3339_utc(made["created_at"].as_str().unwrap()),
        "{made}"
    );
    assert!(
        is_rfc3339_utc(made["updated_at"].as_str().unwrap()),
        "{made}"
    );
    let keys: Vec<&String> = made.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 7, "exactly the product fields: {keys:?}");

    let read = app.get(&format!("/api/products/{id}/"), None).await;
    assert_eq!(read.status, 200);
    assert_json(&read);
    assert_eq!(read.body, made);
}

async fn create_defaults_and_exact_money(app: TestApp) {
    let tag = unique_suffix();
    // A JSON number is read exactly, and printed with two places.
    let p = app
        .create_product(json!({"name": format!("n {tag}"), "price": 5}))
        .await;
    assert_eq!(p["price"], "5.00");
    assert_eq!(p["stock"], 0);
    assert_eq!(p["description"], "");
    let p = app
        .create_product(json!({"name": format!("n2 {tag}"), "price": 0.1}))
        .await;
    assert_eq!(p["price"], "0.10");
    let p = app
        .create_product(
            json!({"name": format!("n3 {tag}"), "price": "99999999.99", "stock": 2147483647}),
        )
        .await;
    assert_eq!(p["price"], "99999999.99");
    assert_eq!(p["stock"], 2147483647);
    // Surrounding whitespace is trimmed as DRF's CharField does; 200 characters is the limit.
    let long = format!("{tag}{}", "x".repeat(200 - tag.len()));
    let p = app
        .create_product(json!({"name": format!("  {long} "), "price": "1"}))
        .await;
    assert_eq!(p["name"], long);
    let unicode = format!("{tag}{}", "é".repeat(200 - tag.len()));
    let p = app
        .create_product(json!({"name": unicode, "price": "1.5"}))
        .await;
    assert_eq!(p["name"].as_str().unwrap().chars().count(), 200);
    assert_eq!(p["price"], "1.50");
}

async fn create_validation(app: TestApp) {
    let staff = staff_token();
    let post = |body: Value| {
        let app = &app;
        let staff = staff.clone();
        async move {
            app.json("POST", "/api/products/", Some(&staff), &body)
                .await
        }
    };
    assert_field_errors(&post(json!({})).await, &["name", "price"]);
    assert_field_errors(&post(json!({"name": "   ", "price": "1"})).await, &["name"]);
    assert_field_errors(
        &post(json!({"name": "x".repeat(201), "price": "1"})).await,
        &["name"],
    );
    assert_field_errors(&post(json!({"name": null, "price": "1"})).await, &["name"]);
    assert_field_errors(&post(json!({"name": true, "price": "1"})).await, &["name"]);
    for bad_price in [
        json!("1.999"),
        json!(-1),
        json!("-0.01"),
        json!("100000000.00"),
        json!("abc"),
        json!(""),
        json!(null),
        json!([1]),
        json!(1e300),
        json!("NaN"),
        json!("Infinity"),
    ] {
        let answer = post(json!({"name": "ok", "price": bad_price})).await;
        assert_field_errors(&answer, &["price"]);
        assert!(answer.body.get("name").is_none(), "{}", answer.body);
    }
    for bad_stock in [
        json!(-1),
        json!(2147483648i64),
        json!("x"),
        json!(1.5),
        json!(null),
        json!(99999999999999999999999u128 as f64),
    ] {
        assert_field_errors(
            &post(json!({"name": "ok", "price": "1", "stock": bad_stock})).await,
            &["stock"],
        );
    }
    // Every bad field is reported at once.
    assert_field_errors(
        &post(json!({"name": "", "price": "x", "stock": -5})).await,
        &["name", "price", "stock"],
    );
}

async fn body_errors(app: TestApp) {
    let staff = staff_token();
    let not_json = app
        .send(
            "POST",
            "/api/products/",
            Some(&staff),
            Some(("application/json", b"{not json".to_vec())),
        )
        .await;
    assert_detail(&not_json, 400);
    let bad_utf8 = app
        .send(
            "POST",
            "/api/products/",
            Some(&staff),
            Some((
                "application/json",
                vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
            )),
        )
        .await;
    assert_eq!(bad_utf8.status, 400);
    assert_json(&bad_utf8);
    let wrong_type = app
        .send(
            "POST",
            "/api/products/",
            Some(&staff),
            Some(("text/plain", b"{\"name\":\"x\",\"price\":\"1\"}".to_vec())),
        )
        .await;
    assert_detail(&wrong_type, 415);
    let array = app
        .json("POST", "/api/products/", Some(&staff), &json!([1, 2]))
        .await;
    assert_field_errors(&array, &["non_field_errors"]);
    let charset = app
        .send(
            "POST",
            "/api/products/",
            Some(&staff),
            Some((
                "application/json; charset=utf-8",
                format!("{{\"name\":\"cs {}\",\"price\":\"1\"}}", unique_suffix()).into_bytes(),
            )),
        )
        .await;
    assert_eq!(charset.status, 201, "{:?}", charset.body);
}

async fn writes_need_staff(app: TestApp) {
    let body = product_body("guarded", "1.00", 1);
    let none = app.json("POST", "/api/products/", None, &body).await;
    assert_detail(&none, 401);
    assert_eq!(
        none.body["detail"],
        "Authentication credentials were not provided."
    );
    let user = app
        .json("POST", "/api/products/", Some(&user_token(42)), &body)
        .await;
    assert_detail(&user, 403);
    let forged = token_with(OTHER_PRIVATE_KEY, 1, true, "access", 900);
    assert_detail(
        &app.json("POST", "/api/products/", Some(&forged), &body)
            .await,
        401,
    );
    let expired = token_with(TEST_PRIVATE_KEY, 1, true, "access", -120);
    assert_detail(
        &app.json("POST", "/api/products/", Some(&expired), &body)
            .await,
        401,
    );
    let refresh = token_with(TEST_PRIVATE_KEY, 1, true, "refresh", 900);
    assert_detail(
        &app.json("POST", "/api/products/", Some(&refresh), &body)
            .await,
        401,
    );
    assert_detail(
        &app.json("POST", "/api/products/", Some("garbage.token.here"), &body)
            .await,
        401,
    );
    // alg "none": an unsigned token claiming staff.
    let unsigned = alg_none_token(1, "access", true);
    assert_detail(
        &app.json("POST", "/api/products/", Some(&unsigned), &body)
            .await,
        401,
    );

    let made = app
        .create_product(product_body(
            &format!("guarded {}", unique_suffix()),
            "1.00",
            1,
        ))
        .await;
    let path = format!("/api/products/{}/", made["id"]);
    let user = user_token(42);
    assert_detail(&app.json("PUT", &path, Some(&user), &body).await, 403);
    assert_detail(
        &app.json("PATCH", &path, Some(&user), &json!({"stock": 0}))
            .await,
        403,
    );
    assert_detail(&app.send("DELETE", &path, Some(&user), None).await, 403);
    assert_detail(&app.send("DELETE", &path, None, None).await, 401);
    // Reads are open to anyone.
    assert_eq!(app.get(&path, None).await.status, 200);
    assert_eq!(app.get(&path, Some(&user)).await.status, 200);
}

async fn list_pagination(app: TestApp) {
    let tag = format!("pg{}", unique_suffix());
    let made = seed(&app, &tag, 25).await;
    let first = app
        .get(&format!("/api/products/?search={tag}&page_size=10"), None)
        .await;
    assert_eq!(first.status, 200);
    assert_json(&first);
    assert_eq!(first.body["count"], 25);
    assert_eq!(
        ids(&first.body),
        made[..10]
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    );
    assert!(first.body["previous"].is_null());
    let next = first.body["next"].as_str().expect("next is a URL");
    assert!(next.starts_with(&app.base), "absolute URL: {next}");
    assert!(
        next.contains("page=2")
            && next.contains(&format!("search={tag}"))
            && next.contains("page_size=10"),
        "{next}"
    );

    // Following `next` as a client would.
    let second = app.get(next.strip_prefix(&app.base).unwrap(), None).await;
    assert_eq!(second.status, 200);
    assert_eq!(
        ids(&second.body),
        made[10..20]
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    );
    let third = app
        .get(
            &format!("/api/products/?search={tag}&page_size=10&page=3"),
            None,
        )
        .await;
    assert_eq!(ids(&third.body).len(), 5);
    assert!(third.body["next"].is_null());
    let prev = third.body["previous"].as_str().unwrap();
    assert!(prev.contains("page=2"), "{prev}");

    assert_detail(
        &app.get(
            &format!("/api/products/?search={tag}&page_size=10&page=4"),
            None,
        )
        .await,
        404,
    );
    assert_detail(
        &app.get(&format!("/api/products/?search={tag}&page=0"), None)
            .await,
        404,
    );
    assert_detail(
        &app.get(&format!("/api/products/?search={tag}&page=abc"), None)
            .await,
        404,
    );
    // Default page size 20.
    let default = app.get(&format!("/api/products/?search={tag}"), None).await;
    assert_eq!(ids(&default.body).len(), 20);
    // page_size is capped at 100.
    let capped = app.get("/api/products/?page_size=100000", None).await;
    assert_eq!(capped.status, 200);
    assert!(ids(&capped.body).len() <= 100);
    // An empty result is a page, not a 404.
    let empty = app
        .get(
            &format!("/api/products/?search=nothing-{}", unique_suffix()),
            None,
        )
        .await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body["count"], 0);
    assert_eq!(empty.body["results"], json!([]));
}

async fn list_filters(app: TestApp) {
    let tag = format!("fl{}", unique_suffix());
    seed(&app, &tag, 9).await; // prices 1..9, stock i % 3
    let get = |query: String| {
        let app = &app;
        let tag = tag.clone();
        async move {
            let answer = app
                .get(&format!("/api/products/?search={tag}&{query}"), None)
                .await;
            assert_eq!(answer.status, 200, "{query}: {:?}", answer.body);
            answer.body
        }
    };
    assert_eq!(get("min_price=3".into()).await["count"], 7);
    assert_eq!(get("max_price=3.50".into()).await["count"], 3);
    assert_eq!(get("min_price=2&max_price=4".into()).await["count"], 3);
    let in_stock = get("in_stock=true".into()).await;
    assert_eq!(in_stock["count"], 6);
    assert!(in_stock["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["stock"].as_i64().unwrap() > 0));
    assert_eq!(get("in_stock=false".into()).await["count"], 3);
    // Search is case-insensitive and looks in the description too.
    let upper = app
        .get(
            &format!("/api/products/?search={}", tag.to_uppercase()),
            None,
        )
        .await;
    assert_eq!(upper.body["count"], 9);
    let described = app.create_product(json!({"name": format!("plain {}", unique_suffix()), "description": format!("hidden {tag}x word"), "price": "1"})).await;
    let found = app
        .get(&format!("/api/products/?search={tag}X"), None)
        .await;
    assert_eq!(ids(&found.body), vec![described["id"].as_i64().unwrap()]);
    // LIKE wildcards in the search term are literal.
    let pct = format!("100% cotton {}", unique_suffix());
    app.create_product(json!({"name": pct, "price": "3"})).await;
    let literal = app
        .get(&format!("/api/products/?search={}", urlencode(&pct)), None)
        .await;
    assert_eq!(literal.body["count"], 1, "{}", literal.body);
    let underscore = app
        .get(&format!("/api/products/?search={tag}_item"), None)
        .await;
    assert_eq!(underscore.body["count"], 0);

    assert_field_errors(
        &app.get("/api/products/?min_price=cheap", None).await,
        &["min_price"],
    );
    assert_field_errors(
        &app.get("/api/products/?max_price=12abc", None).await,
        &["max_price"],
    );
    // A huge but valid bound is a filter like any other.
    let huge = app
        .get(&format!("/api/products/?search={tag}&max_price=1e99"), None)
        .await;
    assert_eq!(huge.body["count"], 10, "{}", huge.body);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn list_ordering(app: TestApp) {
    let tag = format!("or{}", unique_suffix());
    for (name, price, stock) in [("b", "3.00", 5), ("a", "10.00", 1), ("c", "2.50", 9)] {
        app.create_product(
            json!({"name": format!("{tag} {name}"), "price": price, "stock": stock}),
        )
        .await;
    }
    let names = |body: Value| -> Vec<String> {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p["name"]
                    .as_str()
                    .unwrap()
                    .rsplit(' ')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let order = |ordering: &'static str| {
        let app = &app;
        let tag = tag.clone();
        async move {
            app.get(
                &format!("/api/products/?search={tag}&ordering={ordering}"),
                None,
            )
            .await
            .body
        }
    };
    assert_eq!(
        names(order("price").await),
        ["c", "b", "a"],
        "price compares as money, not text"
    );
    assert_eq!(names(order("-price").await), ["a", "b", "c"]);
    assert_eq!(names(order("name").await), ["a", "b", "c"]);
    assert_eq!(names(order("-name").await), ["c", "b", "a"]);
    assert_eq!(names(order("stock").await), ["a", "b", "c"]);
    assert_eq!(names(order("-stock").await), ["c", "b", "a"]);
    assert_eq!(names(order("created_at").await), ["b", "a", "c"]);
    assert_eq!(names(order("-created_at").await), ["c", "a", "b"]);
    // Unknown values are ignored: the default order (creation) stands.
    assert_eq!(names(order("password").await), ["b", "a", "c"]);
    assert_eq!(
        names(order("price;DROP TABLE products").await),
        ["b", "a", "c"]
    );
}

async fn replace_and_patch(app: TestApp) {
    let made = app
        .create_product(product_body(
            &format!("orig {}", unique_suffix()),
            "4.00",
            3,
        ))
        .await;
    let path = format!("/api/products/{}/", made["id"]);
    let staff = staff_token();
    let new_name = format!("replaced {}", unique_suffix());
    let put = app
        .json(
            "PUT",
            &path,
            Some(&staff),
            &json!({"name": new_name, "price": "5.25", "stock": 8}),
        )
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_eq!(put.body["name"], new_name);
    assert_eq!(put.body["price"], "5.25");
    assert_eq!(put.body["stock"], 8);
    assert_eq!(put.body["created_at"], made["created_at"]);
    assert!(put.body["updated_at"].as_str().unwrap() >= made["updated_at"].as_str().unwrap());
    assert_eq!(put.body["id"], made["id"]);
    // PUT needs the required fields; nothing changes when it fails.
    assert_field_errors(
        &app.json("PUT", &path, Some(&staff), &json!({"stock": 1}))
            .await,
        &["name", "price"],
    );
    let patch = app
        .json(
            "PATCH",
            &path,
            Some(&staff),
            &json!({"stock": 0, "ignored": true}),
        )
        .await;
    assert_eq!(patch.status, 200);
    assert_eq!(patch.body["stock"], 0);
    assert_eq!(patch.body["name"], new_name);
    assert_eq!(patch.body["price"], "5.25");
    assert_field_errors(
        &app.json("PATCH", &path, Some(&staff), &json!({"price": "1.001"}))
            .await,
        &["price"],
    );
    let after = app.get(&path, None).await;
    assert_eq!(after.body["price"], "5.25");
    assert_eq!(after.body["stock"], 0);
    assert_eq!(after.body, patch.body);
    assert_detail(
        &app.json(
            "PATCH",
            "/api/products/999999999/",
            Some(&staff),
            &json!({"stock": 1}),
        )
        .await,
        404,
    );
    assert_detail(
        &app.json(
            "PUT",
            "/api/products/999999999/",
            Some(&staff),
            &product_body("x", "1", 1),
        )
        .await,
        404,
    );
}

async fn delete_product(app: TestApp) {
    let made = app
        .create_product(product_body(
            &format!("gone {}", unique_suffix()),
            "1.00",
            1,
        ))
        .await;
    let path = format!("/api/products/{}/", made["id"]);
    let deleted = app.send("DELETE", &path, Some(&staff_token()), None).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.raw.is_empty());
    assert_detail(&app.get(&path, None).await, 404);
    assert_detail(
        &app.send("DELETE", &path, Some(&staff_token()), None).await,
        404,
    );
}

async fn not_found_and_methods(app: TestApp) {
    for path in [
        "/api/products/0/",
        "/api/products/-1/",
        "/api/products/abc/",
        "/api/products/99999999999999999999999/",
        "/api/products/1/extra/",
        "/api/products/%00/",
        "/nothing-here/",
    ] {
        assert_detail(&app.get(path, None).await, 404);
    }
    let put_list = app
        .json("PUT", "/api/products/", Some(&staff_token()), &json!({}))
        .await;
    assert_detail(&put_list, 405);
    let allow = put_list
        .header("allow")
        .expect("405 names the allowed methods");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let made = app
        .create_product(product_body(&format!("m {}", unique_suffix()), "1", 1))
        .await;
    let post_detail = app
        .json(
            "POST",
            &format!("/api/products/{}/", made["id"]),
            Some(&staff_token()),
            &json!({}),
        )
        .await;
    assert_detail(&post_detail, 405);
    let allow = post_detail.header("allow").unwrap();
    assert!(
        allow.contains("PATCH") && allow.contains("DELETE"),
        "{allow}"
    );
}

async fn health(app: TestApp) {
    let answer = app.get("/healthz", None).await;
    assert_eq!(answer.status, 200);
}

/// `GET /api/products/?{query}` as anyone.
async fn list(app: &TestApp, query: &str) -> Answer {
    app.get(&format!("/api/products/?{query}"), None).await
}

/// The longest value a query can carry to a service: a URI holds at most 64 KiB (the `http`
/// crate's bound, which hyper applies on both sides).
const LONG: usize = 60_000;

/// The status the host answers a GET of `path` sent over a plain socket: for a URI past what
/// any HTTP client library sends.
async fn raw_get_status(app: &TestApp, path: String) -> u16 {
    let addr = app.base.trim_start_matches("http://").to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        answer
            .split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {answer:?}"))
    })
    .await
    .unwrap()
}

/// Asserts a 400 whose body is exactly `errors`, in the contract's `{"field": [...]}` shape.
#[track_caller]
fn assert_errors(answer: &Answer, errors: Value) {
    assert_field_errors(answer, &[]);
    assert_eq!(answer.body, errors);
}

async fn search_past_its_bounds_is_a_400(app: TestApp) {
    let chars = json!({"search": ["Ensure this field has no more than 200 characters."]});
    let terms = json!({"search": ["Ensure this field has no more than 10 terms."]});
    // 2,000 terms: once SQLite's expression depth (a 500), now both bounds named.
    let many: Vec<String> = (0..2000).map(|i| format!("w{i}")).collect();
    for separator in ["+", ",", "%20,%09"] {
        let answer = list(&app, &format!("search={}", many.join(separator))).await;
        assert_errors(
            &answer,
            json!({"search": [chars["search"][0], terms["search"][0]]}),
        );
    }
    assert_errors(
        &list(&app, "search=a+b+c+d+e+f+g+h+i+j+k").await,
        terms.clone(),
    );
    assert_errors(
        &list(&app, &format!("search={}", ["same"; 11].join(","))).await,
        terms,
    );
    // As long as a URI carries, and one character past the bound.
    assert_errors(
        &list(&app, &format!("search={}", "x".repeat(LONG))).await,
        chars.clone(),
    );
    // 100 KB is past any URI: the host refuses it before any service reads it, never a 5xx.
    let status = raw_get_status(
        &app,
        format!("/api/products/?search={}", "x".repeat(100_000)),
    )
    .await;
    assert!((400..500).contains(&status), "100 KB search: {status}");
    assert_errors(
        &list(&app, &format!("search={}", "é".repeat(201))).await,
        chars,
    );
    let longest = list(&app, &format!("search={}", "é".repeat(200))).await;
    assert_eq!(longest.status, 200, "{}", longest.body);
    assert_eq!(longest.body["count"], 0);
}

async fn ordering_past_its_bounds_is_a_400(app: TestApp) {
    let keys = ["price", "-name", "stock", "-created_at", "bogus"];
    // 3,000 keys: once more ORDER BY terms than SQLite takes (a 500).
    let answer = list(&app, &format!("ordering={}", keys.repeat(600).join(","))).await;
    assert_errors(
        &answer,
        json!({"ordering": [
            "Ensure this field has no more than 100 characters.",
            "Ensure this field has no more than 4 keys.",
        ]}),
    );
    let five = json!({"ordering": ["Ensure this field has no more than 4 keys."]});
    assert_errors(
        &list(&app, &format!("ordering={}", keys.join(","))).await,
        five.clone(),
    );
    assert_errors(
        &list(&app, "ordering=price,price,price,price,price").await,
        five,
    );
    assert_errors(
        &list(&app, &format!("ordering={}", "x".repeat(LONG))).await,
        json!({"ordering": ["Ensure this field has no more than 100 characters."]}),
    );
    // Every parameter past its bound in one answer.
    let answer = list(
        &app,
        &format!(
            "search={}&ordering={}&min_price={}&in_stock=yes&max_price=2",
            many_words(11),
            keys.join(","),
            "1".repeat(101)
        ),
    )
    .await;
    assert_errors(
        &answer,
        json!({
            "search": ["Ensure this field has no more than 10 terms."],
            "ordering": ["Ensure this field has no more than 4 keys."],
            "min_price": ["Ensure this field has no more than 100 characters."],
            "in_stock": ["Must be `true` or `false`."],
        }),
    );
}

/// `n` distinct words joined by `+` (spaces, once decoded).
fn many_words(n: usize) -> String {
    (0..n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join("+")
}

async fn price_bounds_past_their_length_are_a_400(app: TestApp) {
    for name in ["min_price", "max_price"] {
        for value in ["1".repeat(101), format!("0.{}", "0".repeat(LONG))] {
            assert_errors(
                &list(&app, &format!("{name}={value}")).await,
                json!({ name: ["Ensure this field has no more than 100 characters."] }),
            );
        }
        // Up to the bound, any decimal is a bound, however far beyond every price.
        for value in [
            "9".repeat(100),
            "-1e400".to_owned(),
            format!("0.{}1", "0".repeat(97)),
        ] {
            let answer = list(&app, &format!("{name}={value}")).await;
            assert_eq!(answer.status, 200, "{name}={value}: {}", answer.body);
        }
    }
}

async fn repeated_parameters_read_the_last(app: TestApp) {
    let tag = format!("rp{}", unique_suffix());
    seed(&app, &tag, 3).await; // prices 1..3, stock i % 3
                               // `search` 50 times, each of 11 terms (past the bound), then the tag: the last one counts.
    let mut query: Vec<String> = (0..50)
        .map(|i| format!("search={}", many_words(10) + &format!("+none{i}")))
        .collect();
    query.push(format!("search={tag}"));
    let answer = list(&app, &query.join("&")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["count"], 3);
    // A value past its bound that is not the last is never read.
    let answer = list(&app, &format!("search={}&search={tag}", "x".repeat(LONG))).await;
    assert_eq!(answer.body["count"], 3, "{}", answer.body);
    let answer = list(&app, &format!("search={tag}&search={}", "x".repeat(201))).await;
    assert_field_errors(&answer, &["search"]);
    // The same for the ordering and the price bounds, each given 50 times.
    let orderings = vec!["ordering=a,b,c,d,e"; 50].join("&");
    let answer = list(&app, &format!("search={tag}&{orderings}&ordering=-price")).await;
    let prices: Vec<&str> = answer.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["price"].as_str().unwrap())
        .collect();
    assert_eq!(prices, ["3.00", "2.00", "1.00"]);
    let bounds = vec!["min_price=cheap&max_price=0"; 50].join("&");
    let answer = list(
        &app,
        &format!("search={tag}&{bounds}&min_price=2&max_price=2"),
    )
    .await;
    assert_eq!(answer.body["count"], 1, "{}", answer.body);
}

async fn valid_search_and_ordering_answer_as_before(app: TestApp) {
    let tag = format!("vs{}", unique_suffix());
    for (name, price, stock) in [("bolt", "3.00", 5), ("axe", "10.00", 5), ("cup", "3.00", 9)] {
        app.create_product(
            json!({"name": format!("{tag} {name} lamp"), "price": price, "stock": stock}),
        )
        .await;
    }
    let names = |answer: &Answer| -> Vec<String> {
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p["name"]
                    .as_str()
                    .unwrap()
                    .split(' ')
                    .nth(1)
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    // Terms split at commas and whitespace, all of them to match; a repeat changes nothing.
    for search in [
        format!("{tag}+lamp"),
        format!("{tag},lamp"),
        format!("%20{tag},%20%09lamp,,"),
        format!("{tag}+lamp+{tag}+LAMP+{tag}+lamp+{tag}+lamp+{tag}+lamp"),
    ] {
        let answer = list(&app, &format!("search={search}")).await;
        assert_eq!(names(&answer), ["bolt", "axe", "cup"], "{search}");
    }
    let answer = list(&app, &format!("search={tag}+lamp+{tag}+bolt")).await;
    assert_eq!(names(&answer), ["bolt"]);
    let answer = list(&app, &format!("search={tag}+shade")).await;
    assert_eq!(answer.body["count"], 0);
    // Ordering: four keys, ties decided by the next key, then by id.
    let order = |ordering: &'static str| {
        let app = &app;
        let tag = tag.clone();
        async move { list(app, &format!("search={tag}&ordering={ordering}")).await }
    };
    assert_eq!(names(&order("price,-stock").await), ["cup", "bolt", "axe"]);
    assert_eq!(
        names(&order("-stock,-price,name,created_at").await),
        ["cup", "axe", "bolt"]
    );
    assert_eq!(
        names(&order("stock,bogus,-name").await),
        ["bolt", "axe", "cup"]
    );
    // A key given again is dropped, the first kept: `price,-price` sorts as `price`.
    assert_eq!(
        names(&order("price,price").await),
        names(&order("price").await)
    );
    assert_eq!(names(&order("price,-price").await), ["bolt", "cup", "axe"]);
    assert_eq!(
        names(&order("-price,price,name").await),
        ["axe", "bolt", "cup"]
    );
    assert_eq!(
        names(&order("-price,,price,%20,name,").await),
        ["axe", "bolt", "cup"]
    );
}

async fn huge_pages_never_reach_the_database(app: TestApp) {
    let tag = format!("hp{}", unique_suffix());
    seed(&app, &tag, 2).await;
    for page in [
        "3",
        "461168601842738791",
        "9223372036854775807",
        "18446744073709551615",
    ] {
        let answer = list(&app, &format!("search={tag}&page_size=1&page={page}")).await;
        assert_eq!(answer.status, 404, "{page}: {}", answer.body);
        assert_eq!(answer.body, json!({"detail": "Invalid page."}), "{page}");
    }
    let last = list(&app, &format!("search={tag}&page_size=1&page=last")).await;
    assert_eq!(last.body["count"], 2);
    assert_eq!(ids(&last.body).len(), 1);
}

e2e!(
    create_and_read_back,
    create_defaults_and_exact_money,
    create_validation,
    body_errors,
    writes_need_staff,
    list_pagination,
    list_filters,
    list_ordering,
    replace_and_patch,
    delete_product,
    not_found_and_methods,
    health,
    search_past_its_bounds_is_a_400,
    ordering_past_its_bounds_is_a_400,
    price_bounds_past_their_length_are_a_400,
    repeated_parameters_read_the_last,
    valid_search_and_ordering_answer_as_before,
    huge_pages_never_reach_the_database,
);

// ---------------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------------

/// An access token of staff user `id` whose `username` claim is `username`, as accounts issues
/// them since tokens carry the username.
pub(crate) fn named_staff_token(id: i64, username: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({
        "sub": id.to_string(), "iat": now, "exp": now + 900, "jti": unique_suffix(),
        "token_type": "access", "is_staff": true, "username": username,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_pem(TEST_PRIVATE_KEY.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// The page of `service`'s history at `query` (staff), asserting a 200.
pub(crate) async fn history(app: &TestApp, service: &str, query: &str) -> Value {
    let answer = app
        .get(
            &format!("/api/{service}/history/?{query}"),
            Some(&staff_token()),
        )
        .await;
    assert_eq!(answer.status, 200, "{query}: {}", answer.body);
    assert_json(&answer);
    answer.body
}

/// Asserts an entry's shape and who made it, and answers its `changes`.
#[track_caller]
pub(crate) fn assert_entry(
    entry: &Value,
    object_id: i64,
    action: &str,
    staff_id: i64,
    staff_username: &str,
) -> Value {
    let mut keys: Vec<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "action",
            "at",
            "changes",
            "id",
            "object_id",
            "staff_id",
            "staff_username"
        ],
        "{entry}"
    );
    assert!(entry["id"].as_i64().unwrap() > 0, "{entry}");
    assert_eq!(entry["object_id"], object_id, "{entry}");
    assert_eq!(entry["action"], action, "{entry}");
    assert_eq!(entry["staff_id"], staff_id, "{entry}");
    assert_eq!(entry["staff_username"], staff_username, "{entry}");
    assert!(is_rfc3339_utc(entry["at"].as_str().unwrap()), "{entry}");
    entry["changes"].clone()
}

async fn history_records_each_staff_change_with_before_and_after(app: TestApp) {
    let staff_id = fresh_user_id();
    let username = format!("clerk.{}", unique_suffix());
    let staff = named_staff_token(staff_id, &username);
    let name = format!("Lamp {}", unique_suffix());
    let made = app
        .json(
            "POST",
            "/api/products/",
            Some(&staff),
            &json!({"name": name, "price": "12.50", "stock": 40}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let id = made.body["id"].as_i64().unwrap();
    let path = format!("/api/products/{id}/");
    let patched = app
        .json(
            "PATCH",
            &path,
            Some(&staff),
            &json!({"price": 10, "stock": 12}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    // A write that changes nothing, and writes that fail, leave no entry.
    let same = app
        .json(
            "PUT",
            &path,
            Some(&staff),
            &json!({"name": name, "price": "10.00"}),
        )
        .await;
    assert_eq!(same.status, 200, "{}", same.body);
    assert_field_errors(
        &app.json(
            "PATCH",
            &path,
            Some(&staff),
            &json!({"price": "1.001", "name": "x"}),
        )
        .await,
        &["price"],
    );
    let customer = user_token(fresh_user_id());
    assert_detail(
        &app.json("PATCH", &path, Some(&customer), &json!({"stock": 1}))
            .await,
        403,
    );
    assert_eq!(app.stock_of(id).await, 12);
    // A staff token from before tokens carried usernames still records who (by id).
    let renamed = app
        .json(
            "PATCH",
            &path,
            Some(&staff_token()),
            &json!({"name": "Desk lamp"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(
        app.send("DELETE", &path, Some(&staff), None).await.status,
        204
    );

    let page = history(&app, "products", &format!("object_id={id}")).await;
    assert_eq!(page["count"], 4, "{page}");
    let entries = page["results"].as_array().unwrap();
    let [deleted, renamed, updated, created] = &entries[..] else {
        panic!("{page}");
    };
    assert_eq!(
        assert_entry(created, id, "create", staff_id, &username),
        json!({"name": [null, name], "description": [null, ""], "price": [null, "12.50"],
               "stock": [null, 40]})
    );
    assert_eq!(
        assert_entry(updated, id, "update", staff_id, &username),
        json!({"price": ["12.50", "10.00"], "stock": [40, 12]})
    );
    assert_eq!(
        assert_entry(renamed, id, "update", 1, ""),
        json!({"name": [name, "Desk lamp"]})
    );
    assert_eq!(
        assert_entry(deleted, id, "delete", staff_id, &username),
        json!({"name": ["Desk lamp", null], "description": ["", null], "price": ["10.00", null],
               "stock": [12, null]})
    );
    // Newest first.
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "{ids:?}");
    assert!(
        created["at"].as_str().unwrap() <= deleted["at"].as_str().unwrap(),
        "{page}"
    );
    // A delete of what is gone records nothing more.
    assert_detail(&app.send("DELETE", &path, Some(&staff), None).await, 404);
    assert_eq!(
        history(&app, "products", &format!("object_id={id}")).await["count"],
        4
    );
}

async fn history_is_staff_only_paged_and_filtered(app: TestApp) {
    let path = "/api/products/history/";
    assert_detail(&app.get(path, None).await, 401);
    assert_detail(
        &app.get(path, Some(&user_token(fresh_user_id()))).await,
        403,
    );
    // `history` is not a product id: the path is its own, read-only.
    let post = app
        .json("POST", path, Some(&staff_token()), &json!({}))
        .await;
    assert_detail(&post, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_detail(
        &app.send("DELETE", path, Some(&staff_token()), None).await,
        405,
    );

    let made = app
        .create_product(json!({"name": format!("Pager {}", unique_suffix()), "price": 1}))
        .await;
    let id = made["id"].as_i64().unwrap();
    for stock in 1..=4 {
        let patched = app
            .json(
                "PATCH",
                &format!("/api/products/{id}/"),
                Some(&staff_token()),
                &json!({"stock": stock}),
            )
            .await;
        assert_eq!(patched.status, 200, "{}", patched.body);
    }
    let first = history(&app, "products", &format!("object_id={id}&page_size=2")).await;
    assert_eq!(first["count"], 5, "{first}");
    assert_eq!(first["previous"], Value::Null);
    let next = first["next"].as_str().unwrap();
    assert!(
        next.ends_with(&format!(
            "/api/products/history/?object_id={id}&page=2&page_size=2"
        )),
        "{next}"
    );
    let stocks = |page: &Value| -> Vec<Value> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["changes"]["stock"].clone())
            .collect()
    };
    assert_eq!(stocks(&first), [json!([3, 4]), json!([2, 3])]);
    let third = history(
        &app,
        "products",
        &format!("object_id={id}&page_size=2&page=3"),
    )
    .await;
    assert_eq!(third["next"], Value::Null);
    assert_eq!(third["results"][0]["action"], "create");
    let past = app
        .get(
            &format!("{path}?object_id={id}&page_size=2&page=4"),
            Some(&staff_token()),
        )
        .await;
    assert_detail(&past, 404);

    // The whole history holds this product's entries too, newest first.
    let all = history(&app, "products", "page_size=100").await;
    assert!(all["count"].as_i64().unwrap() >= 5, "{all}");
    let ids = integers(&all["results"], "id");
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "{ids:?}");
    // An id nothing has matches nothing; anything but digits is a 400 naming the filter.
    for nothing in ["0", "99999999999999999999"] {
        assert_eq!(
            history(&app, "products", &format!("object_id={nothing}")).await["count"],
            0
        );
    }
    for bad in ["abc", "-1", "1.5", "1%200"] {
        assert_field_errors(
            &app.get(&format!("{path}?object_id={bad}"), Some(&staff_token()))
                .await,
            &["object_id"],
        );
    }
}

async fn access_tokens_name_their_user(app: TestApp) {
    let username = format!("Named{}", unique_suffix());
    let password = "correct horse battery";
    let register = app
        .json(
            "POST",
            "/api/accounts/register/",
            None,
            &json!({"username": username, "email": format!("{username}@example.com"),
                    "password": password}),
        )
        .await;
    assert_eq!(register.status, 201, "{}", register.body);
    // Logged in with another spelling: the token names the user as registered.
    let login = app
        .json(
            "POST",
            "/api/accounts/login/",
            None,
            &json!({"username": username.to_lowercase(), "password": password}),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let claims = |token: &Value| -> Value {
        jsonwebtoken::decode::<Value>(
            token.as_str().unwrap(),
            &jsonwebtoken::DecodingKey::from_ed_pem(TEST_PUBLIC_KEY.as_bytes()).unwrap(),
            &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA),
        )
        .unwrap()
        .claims
    };
    assert_eq!(claims(&login.body["access"])["username"], username);
    let refreshed = app
        .json(
            "POST",
            "/api/accounts/token/refresh/",
            None,
            &json!({"refresh": login.body["refresh"]}),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(claims(&refreshed.body["access"])["username"], username);
}

e2e!(
    history_records_each_staff_change_with_before_and_after,
    history_is_staff_only_paged_and_filtered,
    access_tokens_name_their_user,
);
