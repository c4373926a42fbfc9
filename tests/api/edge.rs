//! The HTTP edge against malformed input, on every service (issue 5): wrong media types and
//! methods, unknown paths, numbers too big, strings too long, deep nesting, invalid UTF-8 and
//! bad percent escapes, huge pages, garbage `Authorization` headers and bodies over 1 MiB.
//! Each answers 4xx in the contract's error shape, as JSON, never a 500 or a trap: the host's
//! own answers (unknown paths, 413, `/healthz`'s 405) as much as the guests'.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

use crate::e2e;
use crate::helpers::*;

e2e!(
    non_json_bodies_are_415,
    wrong_methods_are_405_with_allow,
    unknown_paths_are_404,
    numbers_too_big_are_400,
    strings_too_long_are_400,
    malformed_bodies_are_400,
    bad_paths_and_queries_are_4xx,
    huge_pages_are_404_or_clamped,
    garbage_authorization_is_401,
    bodies_over_1_mib_are_413,
);

/// The body limit of API.md.
const MIB: usize = 1024 * 1024;

/// One endpoint that reads a JSON body, with a caller it lets that far.
struct JsonEndpoint {
    method: &'static str,
    path: String,
    token: Option<String>,
}

/// Every endpoint of every service that reads a JSON body. Callers are chosen so that the body
/// is read before anything else can refuse the request (an existing product and order, staff
/// where staff is needed).
async fn json_endpoints(app: &TestApp) -> Vec<JsonEndpoint> {
    let staff = staff_token();
    let user = user_token(fresh_user_id());
    let product = app
        .create_product(
            json!({"name": format!("edge {}", unique_suffix()), "price": "1.00", "stock": 5}),
        )
        .await;
    let product_id = product["id"].as_i64().unwrap();
    let order_id = place_order(app, product_id).await;
    let endpoint = |method, path: String, token: &str| JsonEndpoint {
        method,
        path,
        token: Some(token.to_owned()).filter(|t| !t.is_empty()),
    };
    vec![
        endpoint("POST", "/api/products/".into(), &staff),
        endpoint("PUT", format!("/api/products/{product_id}/"), &staff),
        endpoint("PATCH", format!("/api/products/{product_id}/"), &staff),
        endpoint("POST", "/api/accounts/register/".into(), ""),
        endpoint("POST", "/api/accounts/login/".into(), ""),
        endpoint("POST", "/api/accounts/token/refresh/".into(), ""),
        endpoint("PUT", "/api/accounts/profile/".into(), &user),
        endpoint("PATCH", "/api/accounts/profile/".into(), &user),
        endpoint("POST", "/api/carts/add_item/".into(), &user),
        endpoint("POST", "/api/carts/remove_item/".into(), &user),
        endpoint("PUT", "/api/carts/update_quantity/".into(), &user),
        endpoint("POST", "/api/orders/".into(), &user),
        endpoint("POST", format!("/api/orders/{order_id}/status/"), &staff),
    ]
}

/// Places an order of one unit of `product_id` by a fresh user; returns its id.
async fn place_order(app: &TestApp, product_id: i64) -> i64 {
    let buyer = user_token(fresh_user_id());
    app.add_to_cart(&buyer, product_id, 1).await;
    let answer = app
        .json(
            "POST",
            "/api/orders/",
            Some(&buyer),
            &json!({"shipping_address": "1 Edge Street"}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body["id"].as_i64().unwrap()
}

/// Sends `body` as `content_type` to `endpoint`.
async fn send_to(
    app: &TestApp,
    endpoint: &JsonEndpoint,
    content_type: &str,
    body: impl Into<Vec<u8>>,
) -> Answer {
    app.send(
        endpoint.method,
        &endpoint.path,
        endpoint.token.as_deref(),
        Some((content_type, body.into())),
    )
    .await
}

/// Asserts an error answer with `status` in the contract's shape: `{"detail": "..."}`, or for a
/// 400 possibly `{"field": ["message", ...], ...}`; JSON content type included.
#[track_caller]
fn assert_error(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    assert_error_shape(answer, what);
}

/// Asserts a 4xx answer (whichever) in the contract's error shape.
#[track_caller]
fn assert_client_error(answer: &Answer, what: &str) {
    assert!(
        (400..500).contains(&answer.status),
        "{what}: {} {}",
        answer.status,
        answer.body
    );
    assert_error_shape(answer, what);
}

#[track_caller]
fn assert_error_shape(answer: &Answer, what: &str) {
    let content_type = answer.header("content-type").unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "{what}: content type {content_type:?}"
    );
    let body = answer.body.as_object().unwrap_or_else(|| {
        panic!("{what}: not a JSON object: {}", answer.body);
    });
    if body.get("detail").is_some_and(Value::is_string) {
        return;
    }
    assert_eq!(answer.status, 400, "{what}: no detail in {}", answer.body);
    assert!(
        !body.is_empty()
            && body.values().all(|messages| {
                messages
                    .as_array()
                    .is_some_and(|m| !m.is_empty() && m.iter().all(Value::is_string))
            }),
        "{what}: neither a detail nor field errors: {}",
        answer.body
    );
}

/// Asserts a 400 naming `field` (DRF's field errors).
#[track_caller]
fn assert_field_error(answer: &Answer, field: &str, what: &str) {
    assert_error(answer, 400, what);
    assert!(
        answer.body[field].is_array(),
        "{what}: no error for `{field}` in {}",
        answer.body
    );
}

async fn non_json_bodies_are_415(app: TestApp) {
    for endpoint in json_endpoints(&app).await {
        for content_type in [
            "text/plain",
            "application/xml",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "",
        ] {
            let answer = send_to(&app, &endpoint, content_type, br#"{"a": 1}"#.to_vec()).await;
            let what = format!("{} {} as {content_type:?}", endpoint.method, endpoint.path);
            assert_error(&answer, 415, &what);
        }
        // Parameters and case do not matter.
        let answer = send_to(
            &app,
            &endpoint,
            "Application/JSON; charset=utf-8",
            b"[]".to_vec(),
        )
        .await;
        assert_error(&answer, 400, &endpoint.path);
    }
}

async fn wrong_methods_are_405_with_allow(app: TestApp) {
    let staff = staff_token();
    let user = user_token(fresh_user_id());
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "DELETE",
            "/api/products/",
            &staff,
            &["GET", "POST", "HEAD", "OPTIONS"],
        ),
        (
            "POST",
            "/api/products/1/",
            &staff,
            &["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        ),
        ("GET", "/api/accounts/register/", "", &["POST", "OPTIONS"]),
        ("PUT", "/api/accounts/login/", "", &["POST", "OPTIONS"]),
        (
            "GET",
            "/api/accounts/token/refresh/",
            "",
            &["POST", "OPTIONS"],
        ),
        (
            "DELETE",
            "/api/accounts/profile/",
            &user,
            &["GET", "PUT", "PATCH", "HEAD", "OPTIONS"],
        ),
        ("POST", "/api/carts/", &user, &["GET", "HEAD", "OPTIONS"]),
        ("GET", "/api/carts/add_item/", &user, &["POST", "OPTIONS"]),
        (
            "DELETE",
            "/api/carts/remove_item/",
            &user,
            &["POST", "OPTIONS"],
        ),
        (
            "POST",
            "/api/carts/update_quantity/",
            &user,
            &["PUT", "OPTIONS"],
        ),
        (
            "DELETE",
            "/api/orders/",
            &user,
            &["GET", "POST", "HEAD", "OPTIONS"],
        ),
        (
            "PATCH",
            "/api/orders/1/",
            &staff,
            &["GET", "HEAD", "OPTIONS"],
        ),
        ("GET", "/api/orders/1/cancel/", &staff, &["POST", "OPTIONS"]),
        ("PUT", "/api/orders/1/status/", &staff, &["POST", "OPTIONS"]),
        // The host's own route.
        ("POST", "/healthz", "", &["GET", "HEAD"]),
    ];
    for (method, path, token, allowed) in cases {
        let token = Some(*token).filter(|t| !t.is_empty());
        let answer = app.send(method, path, token, None).await;
        let what = format!("{method} {path}");
        assert_error(&answer, 405, &what);
        assert_eq!(
            answer.body,
            json!({ "detail": format!("Method \"{method}\" not allowed.") }),
            "{what}"
        );
        let allow: BTreeSet<&str> = answer
            .header("allow")
            .unwrap_or_else(|| panic!("{what}: no Allow header"))
            .split(',')
            .map(str::trim)
            .collect();
        assert_eq!(allow, allowed.iter().copied().collect(), "{what}");
    }
    // A method outside the standard set is no route's: the host answers 405 before any guest
    // (tests/api/safe_defaults.rs tries them on every route, lower-case ones included).
    let answer = app
        .send("FROBNICATE", "/api/products/", Some(&staff), None)
        .await;
    assert_error(&answer, 405, "FROBNICATE /api/products/");
    assert_eq!(
        answer.body,
        json!({ "detail": "Method \"FROBNICATE\" not allowed." })
    );
}

async fn unknown_paths_are_404(app: TestApp) {
    let user = user_token(fresh_user_id());
    let paths = [
        // Outside every route: the host answers.
        "/",
        "/nope/",
        "/api/",
        "/api/nope/",
        "/api/productsx/",
        "/api/docsx/",
        "/%FF/",
        "/api/%ZZ/",
        "/healthz/extra",
        // Inside a service's route prefix: its guest answers.
        "/api/products",
        "/api/products/7/extra/",
        "/api/products/abc/",
        "/api/products/0/",
        "/api/products/-1/",
        "/api/products/99999999999999999999999/",
        "/api/products/%FF/",
        "/api/products/%ZZ/",
        "/api/products/%00/",
        "/api/products//",
        "/api/accounts/",
        "/api/accounts/nope/",
        "/api/accounts/%FF/",
        "/api/accounts/login",
        "/api/carts/nope/",
        "/api/carts/%FF%FE/",
        "/api/carts/add_item/extra/",
        "/api/orders/1/nope/",
        "/api/orders/%FF/",
        "/api/orders/%ZZ/nope/",
        "/api/orders/99999999999999999999999/",
    ];
    for path in paths {
        // GET: a path shaped like a resource's (`/api/products/abc/`) is matched before the
        // method, as in DRF, so another method there may be a 405.
        let answer = app.get(path, Some(&user)).await;
        let what = format!("GET {path}");
        assert_error(&answer, 404, &what);
        assert_eq!(answer.body, json!({"detail": "Not found."}), "{what}");
    }
    // An action on an id no order can have.
    for path in [
        "/api/orders/%ZZ/cancel/",
        "/api/orders/%FF/status/",
        "/api/orders/0/cancel/",
        "/api/orders/99999999999999999999999/status/",
    ] {
        let answer = app.send("POST", path, Some(&staff_token()), None).await;
        let what = format!("POST {path}");
        assert_error(&answer, 404, &what);
        assert_eq!(answer.body, json!({"detail": "Not found."}), "{what}");
    }
    // Outside every route, any method is a 404.
    for path in ["/nope/", "/api/", "/%FF/"] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let answer = app.send(method, path, Some(&user), None).await;
            let what = format!("{method} {path}");
            assert_error(&answer, 404, &what);
            assert_eq!(answer.body, json!({"detail": "Not found."}), "{what}");
        }
    }
}

async fn numbers_too_big_are_400(app: TestApp) {
    let staff = staff_token();
    let user = user_token(fresh_user_id());
    let product = app
        .create_product(
            json!({"name": format!("big {}", unique_suffix()), "price": "2.00", "stock": 3}),
        )
        .await;
    let id = product["id"].as_i64().unwrap();
    let name = format!("big {}", unique_suffix());
    for big in [
        "1e400",
        "-1e400",
        "99999999999999999999999",
        "-99999999999999999999999",
        "1e-400",
        "1.7976931348623157e309",
        "\"1e400\"",
        "\"99999999999999999999999\"",
        "18446744073709551616",
        "9223372036854775808",
    ] {
        let cases = [
            (
                "POST",
                "/api/products/".to_owned(),
                &staff,
                format!(r#"{{"name": "{name}", "price": {big}, "stock": 1}}"#),
                "price",
            ),
            (
                "POST",
                "/api/products/".to_owned(),
                &staff,
                format!(r#"{{"name": "{name}", "price": "1.00", "stock": {big}}}"#),
                "stock",
            ),
            (
                "PATCH",
                format!("/api/products/{id}/"),
                &staff,
                format!(r#"{{"price": {big}}}"#),
                "price",
            ),
            (
                "PATCH",
                format!("/api/products/{id}/"),
                &staff,
                format!(r#"{{"stock": {big}}}"#),
                "stock",
            ),
            (
                "POST",
                "/api/carts/add_item/".to_owned(),
                &user,
                format!(r#"{{"product_id": {big}, "quantity": 1}}"#),
                "product_id",
            ),
            (
                "POST",
                "/api/carts/add_item/".to_owned(),
                &user,
                format!(r#"{{"product_id": {id}, "quantity": {big}}}"#),
                "quantity",
            ),
            (
                "POST",
                "/api/carts/remove_item/".to_owned(),
                &user,
                format!(r#"{{"product_id": {big}}}"#),
                "product_id",
            ),
            (
                "PUT",
                "/api/carts/update_quantity/".to_owned(),
                &user,
                format!(r#"{{"product_id": {id}, "quantity": {big}}}"#),
                "quantity",
            ),
            (
                "PUT",
                "/api/carts/update_quantity/".to_owned(),
                &user,
                format!(r#"{{"product_id": {big}, "quantity": 1}}"#),
                "product_id",
            ),
        ];
        for (method, path, token, body, field) in cases {
            let answer = app
                .send(
                    method,
                    &path,
                    Some(token),
                    Some(("application/json", body.clone().into_bytes())),
                )
                .await;
            assert_field_error(&answer, field, &format!("{method} {path} {body}"));
        }
        // Where a number stands for a text or an id, the answer is still a 4xx in shape.
        let cases = [
            (
                "POST",
                "/api/orders/".to_owned(),
                Some(&user),
                format!(r#"{{"shipping_address": {big}}}"#),
            ),
            (
                "POST",
                "/api/accounts/login/".to_owned(),
                None,
                format!(r#"{{"username": {big}, "password": {big}}}"#),
            ),
            (
                "POST",
                "/api/accounts/token/refresh/".to_owned(),
                None,
                format!(r#"{{"refresh": {big}}}"#),
            ),
            (
                "PATCH",
                "/api/accounts/profile/".to_owned(),
                Some(&user),
                format!(r#"{{"phone_number": {big}}}"#),
            ),
        ];
        for (method, path, token, body) in cases {
            let answer = app
                .send(
                    method,
                    &path,
                    token.map(String::as_str),
                    Some(("application/json", body.clone().into_bytes())),
                )
                .await;
            assert_client_error(&answer, &format!("{method} {path} {body}"));
        }
    }
    // Nothing of the above changed the product.
    assert_eq!(app.stock_of(id).await, 3);
}

async fn strings_too_long_are_400(app: TestApp) {
    let staff = staff_token();
    let user = user_token(fresh_user_id());
    let long_name = "n".repeat(100_000);
    let answer = app
        .json(
            "POST",
            "/api/products/",
            Some(&staff),
            &json!({"name": long_name, "price": "1.00", "stock": 1}),
        )
        .await;
    assert_field_error(&answer, "name", "100k-character product name");
    let long_username = "u".repeat(10_000);
    let answer = app
        .json(
            "POST",
            "/api/accounts/register/",
            None,
            &json!({"username": long_username, "email": "long@example.com", "password": "correct horse battery"}),
        )
        .await;
    assert_field_error(&answer, "username", "10k-character username");
    let answer = app
        .json(
            "POST",
            "/api/accounts/register/",
            None,
            &json!({"username": format!("long_{}", unique_suffix()), "email": format!("{}@example.com", "e".repeat(10_000)), "password": "correct horse battery"}),
        )
        .await;
    assert_field_error(&answer, "email", "10k-character email");
    let answer = app
        .json(
            "POST",
            "/api/accounts/login/",
            None,
            &json!({"username": long_username, "password": "x"}),
        )
        .await;
    assert_client_error(&answer, "login with a 10k-character username");
    let answer = app
        .json(
            "PATCH",
            "/api/accounts/profile/",
            Some(&user),
            &json!({"first_name": "f".repeat(10_000)}),
        )
        .await;
    assert_field_error(&answer, "first_name", "10k-character first name");
    let digits = "9".repeat(10_000);
    for (method, path, body, field) in [
        (
            "POST",
            "/api/carts/add_item/",
            json!({"product_id": digits}),
            "product_id",
        ),
        (
            "POST",
            "/api/carts/add_item/",
            json!({"product_id": 1, "quantity": digits}),
            "quantity",
        ),
        (
            "PUT",
            "/api/carts/update_quantity/",
            json!({"product_id": digits, "quantity": 1}),
            "product_id",
        ),
    ] {
        let answer = app.json(method, path, Some(&user), &body).await;
        assert_field_error(&answer, field, &format!("{method} {path} with 10k digits"));
    }
    let answer = app
        .json(
            "POST",
            "/api/products/",
            Some(&staff),
            &json!({"name": "p", "price": digits, "stock": 1}),
        )
        .await;
    assert_field_error(&answer, "price", "a price of 10k digits");
    let answer = app
        .json(
            "POST",
            "/api/orders/",
            Some(&user),
            &json!({"shipping_address": "a".repeat(100_000)}),
        )
        .await;
    assert_client_error(&answer, "a 100k-character shipping address");
}

async fn malformed_bodies_are_400(app: TestApp) {
    let deep_open = "[".repeat(100_000);
    let deep_balanced = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    // Deep enough to refuse, small enough that eleven fit in the body limit.
    let deep_field = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("100k open brackets", deep_open.clone().into_bytes()),
        ("100k nested lists", deep_balanced.clone().into_bytes()),
        ("50k nested objects", deep_objects.into_bytes()),
        ("deep nesting in a field", format!(r#"{{"name": {deep_balanced}, "product_id": {deep_balanced}, "status": {deep_open}"#).into_bytes()),
        ("a nested field", format!(r#"{{"name": {deep_field}, "price": {deep_field}, "stock": {deep_field}, "product_id": {deep_field}, "quantity": {deep_field}, "status": {deep_field}, "username": {deep_field}, "password": {deep_field}, "refresh": {deep_field}, "email": {deep_field}, "shipping_address": {deep_field}}}"#).into_bytes()),
        ("invalid UTF-8", b"{\"name\": \"\xff\xfe\"}".to_vec()),
        ("invalid UTF-8 in a key", b"{\"\xc3\x28\": 1}".to_vec()),
        ("a lone continuation byte", b"{\"name\": \"a\x80b\"}".to_vec()),
        ("an overlong encoding", b"{\"name\": \"\xc0\xaf\"}".to_vec()),
        ("a UTF-16 body", "{\"a\": 1}".encode_utf16().flat_map(u16::to_le_bytes).collect()),
        ("a NUL byte", b"{\"name\": \"a\0\"}".to_vec()),
        ("truncated", br#"{"name": "#.to_vec()),
        ("trailing garbage", br#"{"name": "x"} x"#.to_vec()),
        ("a bare string", br#""x""#.to_vec()),
        ("not JSON", b"name=x".to_vec()),
        ("NaN", br#"{"price": NaN, "quantity": NaN}"#.to_vec()),
        ("Infinity", br#"{"price": Infinity, "quantity": -Infinity}"#.to_vec()),
        ("lone surrogates", br#"{"name": "\ud800", "username": "\udfff", "status": "\ud800", "first_name": "\ud800", "refresh": "\ud800", "shipping_address": "\ud800"}"#.to_vec()),
        ("a bad escape", br#"{"name": "\x41"}"#.to_vec()),
        ("whitespace only", b"   \n".to_vec()),
    ];
    for endpoint in json_endpoints(&app).await {
        for (what, body) in &bodies {
            let answer = send_to(&app, &endpoint, "application/json", body.clone()).await;
            let what = format!("{} {} with {what}", endpoint.method, endpoint.path);
            assert_error(&answer, 400, &what);
        }
    }
}

async fn bad_paths_and_queries_are_4xx(app: TestApp) {
    let staff = staff_token();
    let user = user_token(fresh_user_id());
    let cases: &[(&str, Option<&str>, u16)] = &[
        ("/api/products/?page=%FF", None, 404),
        ("/api/products/?page=%ZZ", None, 404),
        ("/api/products/?page=%", None, 404),
        ("/api/products/?min_price=%FF", None, 400),
        ("/api/products/?max_price=%ZZ", None, 400),
        ("/api/orders/?status=%FF", Some(&user), 400),
        ("/api/orders/?status=%ZZ%", Some(&staff), 400),
        ("/api/orders/?page=%FF%FE", Some(&user), 404),
    ];
    for (path, token, status) in cases {
        let answer = app.get(path, *token).await;
        assert_error(&answer, *status, path);
    }
    // A price bound beyond every price is valid (a decimal, as django-filter reads it), and
    // leaves nothing.
    for path in [
        "/api/products/?min_price=1e400",
        "/api/products/?max_price=-99999999999999999999999",
        "/api/products/?max_price=-1e400",
    ] {
        let answer = app.get(path, None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert_eq!(answer.body["count"], 0, "{path}");
    }
    // A text filter or an unknown parameter read lossily, as Django reads it: never an error
    // of the server, always JSON.
    for (path, token) in [
        ("/api/products/?search=%FF", None),
        ("/api/products/?search=%ZZ%&ordering=%FF&in_stock=%C0", None),
        ("/api/products/?%FF=%FF&&&=&%=%", None),
        ("/api/carts/?%FF=1", Some(user.as_str())),
        ("/api/orders/?%FF=%ZZ", Some(user.as_str())),
        ("/api/accounts/profile/?%FF", Some(user.as_str())),
    ] {
        let answer = app.get(path, token).await;
        assert!(
            answer.status < 500,
            "{path}: {} {}",
            answer.status,
            answer.body
        );
        assert_json(&answer);
        if answer.status >= 400 {
            assert_error_shape(&answer, path);
        }
    }
}

async fn huge_pages_are_404_or_clamped(app: TestApp) {
    let staff = staff_token();
    for list in ["/api/products/", "/api/orders/"] {
        for page in [
            "99999999999999999999999",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "9223372036854775808",
            "461168601842738791",
            "1000000000",
            "0",
            "-1",
            "1e400",
            "1.5",
        ] {
            let path = format!("{list}?page={page}");
            let answer = app.get(&path, Some(&staff)).await;
            assert_error(&answer, 404, &path);
            assert_eq!(answer.body, json!({"detail": "Invalid page."}), "{path}");
            let path = format!("{list}?page={page}&page_size=100");
            let answer = app.get(&path, Some(&staff)).await;
            assert_error(&answer, 404, &path);
        }
        // A page size above the maximum is cut to it, as DRF does.
        for size in [
            "99999999999999999999999",
            "18446744073709551616",
            "4294967296",
            "1000000",
        ] {
            for page in ["1", "last"] {
                let path = format!("{list}?page={page}&page_size={size}");
                let answer = app.get(&path, Some(&staff)).await;
                assert_eq!(answer.status, 200, "{path}: {}", answer.body);
                assert_json(&answer);
                let results = answer.body["results"].as_array().unwrap();
                assert!(results.len() <= 100, "{path}: {} results", results.len());
            }
        }
        // One that is no positive integer is the default (DRF) or a 400 naming it (the
        // schema's rule): never more, never a failure.
        for size in ["-5", "0", "%FF", "1e400", "1.5", "%ZZ"] {
            let path = format!("{list}?page_size={size}");
            let answer = app.get(&path, Some(&staff)).await;
            if answer.status == 200 {
                assert_json(&answer);
                let results = answer.body["results"].as_array().unwrap();
                assert!(results.len() <= 20, "{path}: {} results", results.len());
            } else {
                assert_field_error(&answer, "page_size", &path);
            }
        }
    }
}

async fn garbage_authorization_is_401(app: TestApp) {
    let unsigned_staff = alg_none_token(1, "access", true);
    let garbage: Vec<Vec<u8>> = vec![
        b"Bearer".to_vec(),
        b"Bearer ".to_vec(),
        b"Bearer  ".to_vec(),
        b"Bearer a b".to_vec(),
        b"Bearer x.y.z".to_vec(),
        b"Bearer ...".to_vec(),
        b"Bearer eyJ.eyJ.eyJ".to_vec(),
        format!("Bearer {}", "a".repeat(10_000)).into_bytes(),
        format!(
            "Bearer {}.{}.{}",
            "a".repeat(4_000),
            "b".repeat(4_000),
            "c".repeat(4_000)
        )
        .into_bytes(),
        format!("Bearer {unsigned_staff}").into_bytes(),
        format!(
            "Bearer {}",
            token_with(OTHER_PRIVATE_KEY, 1, true, "access", 900)
        )
        .into_bytes(),
        format!(
            "Bearer {}",
            token_with(TEST_PRIVATE_KEY, 1, true, "refresh", 900)
        )
        .into_bytes(),
        format!(
            "Bearer {}",
            token_with(TEST_PRIVATE_KEY, 1, true, "access", -900)
        )
        .into_bytes(),
        format!(
            "Bearer {}",
            token_with(TEST_PRIVATE_KEY, 1, true, "nonsense", 900)
        )
        .into_bytes(),
        b"Bearer \xff\xfe\xfd".to_vec(),
        b"\xff\xfe Bearer".to_vec(),
        b"Basic dXNlcjpwYXNz".to_vec(),
        b"Token abc".to_vec(),
        b"JWT abc".to_vec(),
        b"bearer".to_vec(),
    ];
    let endpoints = [
        ("POST", "/api/products/"),
        ("GET", "/api/accounts/profile/"),
        ("GET", "/api/carts/"),
        ("POST", "/api/carts/add_item/"),
        ("GET", "/api/orders/"),
        ("GET", "/api/orders/1/"),
        ("POST", "/api/orders/1/status/"),
    ];
    for (method, path) in endpoints {
        for header in &garbage {
            let value = reqwest::header::HeaderValue::from_bytes(header).unwrap();
            let response = app
                .client
                .request(method.parse().unwrap(), format!("{}{path}", app.base))
                .header("authorization", value)
                .header("content-type", "application/json")
                .body(r#"{"name": "x", "price": "1.00", "stock": 1, "product_id": 1, "status": "shipped"}"#)
                .send()
                .await
                .unwrap();
            let what = format!("{method} {path} with {:?}", String::from_utf8_lossy(header));
            let answer = answer_of(response, &what).await;
            assert_error(&answer, 401, &what);
        }
    }
}

/// A path of each service that reads a body.
const BODY_PATHS: [&str; 4] = [
    "/api/products/",
    "/api/accounts/register/",
    "/api/carts/add_item/",
    "/api/orders/",
];

async fn bodies_over_1_mib_are_413(app: TestApp) {
    let user = user_token(fresh_user_id());
    for path in BODY_PATHS {
        // Declared by Content-Length: the host answers before reading, and the client, still
        // writing, reads that answer (the host lingers on close instead of resetting).
        for size in [MIB + 1, 4 * MIB] {
            let answer = app
                .send(
                    "POST",
                    path,
                    Some(&user),
                    Some(("application/json", vec![b' '; size])),
                )
                .await;
            let what = format!("{size} bytes to {path}");
            assert_error(&answer, 413, &what);
            assert_eq!(
                answer.body,
                json!({"detail": "Request body exceeds the limit of 1 MiB."}),
                "{what}"
            );
        }
        // Exactly the limit is read, and answered as any body would be.
        let answer = app
            .send(
                "POST",
                path,
                Some(&user),
                Some(("application/json", vec![b' '; MIB])),
            )
            .await;
        assert_ne!(
            answer.status, 413,
            "exactly 1 MiB to {path}: {}",
            answer.body
        );
        assert!(
            answer.status < 500,
            "exactly 1 MiB to {path}: {}",
            answer.body
        );

        // Chunked: the guest stops reading at the limit.
        let base = app.base.clone();
        let (status, headers, body) = tokio::task::spawn_blocking(move || {
            raw_post(&base, path, &user_token(fresh_user_id()), 2 * MIB + 5, true)
        })
        .await
        .unwrap();
        let what = format!("2 MiB chunked to {path}");
        assert_eq!(status, 413, "{what}: {body}");
        assert!(
            headers.contains("content-type: application/json"),
            "{what}: {headers}"
        );
        assert_eq!(
            body,
            json!({"detail": "Request body exceeds the limit of 1 MiB."}),
            "{what}"
        );

        // Declared, written by a client that sends its whole body before it reads anything.
        let base = app.base.clone();
        let (status, headers, body) = tokio::task::spawn_blocking(move || {
            raw_post(&base, path, &user_token(fresh_user_id()), 4 * MIB, false)
        })
        .await
        .unwrap();
        let what = format!("4 MiB with Content-Length to {path}, written blindly");
        assert_eq!(status, 413, "{what}: {body}");
        assert!(
            headers.contains("content-type: application/json"),
            "{what}: {headers}"
        );
        assert!(headers.contains("connection: close"), "{what}: {headers}");
        assert_eq!(
            body,
            json!({"detail": "Request body exceeds the limit of 1 MiB."}),
            "{what}"
        );
    }
}

/// POSTs `size` bytes of JSON whitespace over a plain socket, the whole body first (chunked or
/// with a Content-Length), then reads the answer: status, lower-cased head, body.
fn raw_post(
    base: &str,
    path: &str,
    token: &str,
    size: usize,
    chunked: bool,
) -> (u16, String, Value) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {size}")
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\n{framing}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        let part = &chunk[..chunk.len().min(size - sent)];
        if chunked {
            stream
                .write_all(format!("{:x}\r\n", part.len()).as_bytes())
                .unwrap();
            stream.write_all(part).unwrap();
            stream.write_all(b"\r\n").unwrap();
        } else {
            stream.write_all(part).unwrap();
        }
        sent += part.len();
    }
    if chunked {
        stream.write_all(b"0\r\n\r\n").unwrap();
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&answer)));
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let mut body = answer[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    let status = head[9..12].parse().unwrap();
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&body)));
    (status, head, body)
}

/// The payload of a chunked body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&body[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
}

// The edge against slow clients and floods: each test runs a host of its own with small limits.

use std::time::Instant;

/// Starts a host of its own, on the repository's app, with `extra` flags.
fn edge_host(label: &str, extra: &[&str]) -> SpawnedHost {
    build_components();
    let workdir = fresh_workdir(label);
    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0"]).args(extra);
    let host = spawn_serving(cmd, &workdir, &repo_root().join("spin.toml"));
    wait_healthy(&host.base);
    host
}

/// A plain connection to `host`.
fn connect(host: &SpawnedHost) -> TcpStream {
    let stream = TcpStream::connect(host.base.trim_start_matches("http://")).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads until the host closes the connection (end of file or reset) and returns what came;
/// panics if it is still open after `limit`.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the connection is still open after {limit:?}; read: {:?}",
            String::from_utf8_lossy(&answer)
        );
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return answer,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return answer,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
}

/// Splits an answer into its status, lower-cased head and (de-chunked) body.
fn parse_answer(answer: &[u8]) -> (u16, String, Vec<u8>) {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(answer)));
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let mut body = answer[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (head[9..12].parse().unwrap(), head, body)
}

/// `GET path` on a connection of its own, closed after the answer: status, head and body.
fn raw_get(host: &SpawnedHost, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = connect(host);
    let request = format!("GET {path} HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    parse_answer(&read_until_closed(&mut stream, Duration::from_secs(30)))
}

/// Asserts that `head` and `body` are the 503 of a bound: `Retry-After` and the contract's shape.
fn assert_overloaded(head: &str, body: &[u8]) {
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("\r\nretry-after: 1"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        body,
        json!({"detail": "Service overloaded, retry shortly."})
    );
}

/// Polls the host's log (written in the background) until `found` holds, for 5 s at most.
fn log_until(host: &SpawnedHost, found: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = read_log_of(&host.log);
        if found(&log) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn half_a_request_head_is_closed_within_the_header_timeout() {
    let host = edge_host("edge-half-head", &["--header-read-timeout", "1s"]);
    let mut stream = connect(&host);
    stream
        .write_all(b"POST /api/accounts/login/ HTTP/1.1\r\nHost: shop\r\nContent-Ty")
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut stream, Duration::from_secs(3));
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    // The host serves on.
    assert_eq!(raw_get(&host, "/api/products/").0, 200);
}

#[test]
fn an_idle_kept_alive_connection_is_closed() {
    let host = edge_host("edge-idle", &["--header-read-timeout", "1s"]);
    let mut stream = connect(&host);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n")
        .unwrap();
    // One whole answer (the host's own, with a Content-Length), the connection kept alive.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let whole = |answer: &[u8]| {
        let text = String::from_utf8_lossy(answer).to_ascii_lowercase();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))?
            .trim()
            .parse()
            .ok()?;
        (body.len() >= length).then_some(())
    };
    while whole(&answer).is_none() {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the answer: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
    }
    let (status, head, _) = parse_answer(&answer);
    assert_eq!(status, 200);
    assert!(!head.contains("connection: close"), "{head}");
    let idle = Instant::now();
    let rest = read_until_closed(&mut stream, Duration::from_secs(3));
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(
        idle.elapsed() >= Duration::from_millis(900),
        "{:?}",
        idle.elapsed()
    );
}

#[test]
fn an_oversize_request_head_is_answered_431_at_once() {
    // The default cap, 64 KiB: a 32 KiB head is served, an 80 KiB one is not.
    let host = edge_host("edge-big-head", &[]);
    let head = |filler: usize| {
        format!(
            "GET /healthz HTTP/1.1\r\nHost: shop\r\nConnection: close\r\nX-Filler: {}\r\n\r\n",
            "a".repeat(filler)
        )
    };
    let mut stream = connect(&host);
    stream.write_all(head(32 * 1024).as_bytes()).unwrap();
    let (status, _, _) = parse_answer(&read_until_closed(&mut stream, Duration::from_secs(10)));
    assert_eq!(status, 200);

    let started = Instant::now();
    let mut stream = connect(&host);
    // The host may close while the rest is still on its way.
    let _ = stream.write_all(head(80 * 1024).as_bytes());
    let answer = read_until_closed(&mut stream, Duration::from_secs(3));
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn past_max_connections_a_new_connection_is_turned_away_at_once() {
    let host = edge_host(
        "edge-connections",
        &["--max-connections", "8", "--header-read-timeout", "30s"],
    );
    // The health checks' connections are gone.
    std::thread::sleep(Duration::from_millis(500));
    let mut idle: Vec<TcpStream> = (0..8).map(|_| connect(&host)).collect();
    for stream in &mut idle {
        // Held open, not turned away: nothing comes.
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 64];
        let read = stream.read(&mut buf);
        assert!(
            read.as_ref().is_err_and(|e| matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )),
            "an idle connection under the cap got {read:?}"
        );
    }

    let started = Instant::now();
    let mut ninth = connect(&host);
    let answer = read_until_closed(&mut ninth, Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_secs(2));
    if !answer.is_empty() {
        let (_, head, body) = parse_answer(&answer);
        assert_overloaded(&head, &body);
    }
    let log = log_until(&host, |log| log.contains("--max-connections"));
    assert!(
        log.lines()
            .any(|l| l.contains("overloaded") && l.contains("--max-connections")),
        "{log}"
    );

    // Once they close, the host serves again.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stream = connect(&host);
        let request = "GET /api/products/ HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n";
        let _ = stream.write_all(request.as_bytes());
        let answer = read_until_closed(&mut stream, Duration::from_secs(10));
        if !answer.is_empty() && parse_answer(&answer).0 == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still turned away after the others closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn past_max_concurrent_requests_a_request_is_answered_503_at_once() {
    // Eight requests that stay in their guests (the test component sleeps 4 s): a body that
    // never finishes no longer takes a slot (tests/api/safe_defaults.rs).
    build_components();
    let workdir = fresh_workdir("edge-requests");
    let products = repo_root().join("target/wasm32-wasip2/release/products.wasm");
    let manifest = write_test_manifest(&workdir, &products, &["slow"]);
    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0"]).args([
        "--max-concurrent-requests",
        "8",
        "--request-timeout",
        "10s",
    ]);
    let host = spawn_serving(cmd, &workdir, &manifest);
    wait_healthy(&host.base);
    let stuck: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = connect(&host);
            stream
                .write_all(b"GET /test/slow/?ms=4000 HTTP/1.1\r\nHost: shop\r\n\r\n")
                .unwrap();
            stream
        })
        .collect();

    // Once the eight are in (a probe sent sooner could take a permit before the last of them),
    // the next request is refused at once.
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let (status, head, body) = raw_get(&host, "/api/products/");
    let took = started.elapsed();
    assert_eq!(status, 503, "{head}");
    assert!(took < Duration::from_secs(1), "the 503 took {took:?}");
    assert_overloaded(&head, &body);
    let log = log_until(&host, |log| log.contains("--max-concurrent-requests"));
    assert!(
        log.lines().any(|l| l.contains("status=503")
            && l.contains("path=/api/products/")
            && l.contains("reason=\"overloaded\"")),
        "no request line says overloaded:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("overloaded") && l.contains("--max-concurrent-requests")),
        "{log}"
    );
    assert!(!log.contains("reason=\"trap\""), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains("path=/test/slow/") && l.contains("status=503")),
        "one of the eight was refused:\n{log}"
    );

    // Once those requests end, requests are served again.
    drop(stuck);
    let deadline = Instant::now() + Duration::from_secs(8);
    while raw_get(&host, "/api/products/").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "still refused after the slow requests ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_logins_stay_in_memory_while_other_routes_answer() {
    let host = edge_host("edge-logins", &[]);
    let base = host.base.clone();
    let client = reqwest::Client::new();
    let username = format!("login{}", unique_suffix());
    let password = "correct horse battery";
    let registered = client
        .post(format!("{base}/api/accounts/register/"))
        .json(&json!({
            "username": username,
            "email": format!("{username}@example.com"),
            "password": password,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let (at_rest, _) = memory_kib(host.pid);
    // The peak from here on, not the start's (compiling, migrating).
    std::fs::write(format!("/proc/{}/clear_refs", host.pid), "5").unwrap();

    let logins: Vec<_> = (0..40)
        .map(|_| {
            let (client, base, username) = (client.clone(), base.clone(), username.clone());
            tokio::spawn(async move {
                let res = client
                    .post(format!("{base}/api/accounts/login/"))
                    .json(&json!({"username": username, "password": password}))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let retry_after = res.headers().contains_key("retry-after");
                let body: Value = res.json().await.unwrap();
                (status, retry_after, body)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let products = client
        .get(format!("{base}/api/products/"))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(products.status(), 200);
    assert!(
        took < Duration::from_secs(2),
        "products took {took:?} during the logins"
    );

    let mut ok = 0;
    for login in logins {
        let (status, retry_after, body) = login.await.unwrap();
        match status {
            200 => {
                assert!(body["access"].is_string(), "{body}");
                ok += 1;
            }
            503 => assert!(retry_after && body["detail"].is_string(), "{body}"),
            _ => panic!("a login answered {status}: {body}"),
        }
    }
    let (rss, peak) = memory_kib(host.pid);
    eprintln!(
        "40 concurrent logins: {ok} answered 200; host RSS at rest {at_rest} KiB, peak during \
         the logins {peak} KiB, after {rss} KiB; GET /api/products/ took {took:?}"
    );
    assert!(ok > 0, "no login succeeded");
    assert!(peak < 150 * 1024, "peak RSS {peak} KiB during 40 logins");
}
