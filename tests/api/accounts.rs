//! The Accounts section of API.md: registration, login, token refresh (rotated, with reuse
//! detection), logout, profiles, the token failures (forged, expired, `alg: none`, wrong
//! `token_type`, garbage), tokens cut off by a deactivation, a loss of staff or a new password
//! in every service, staff's users API and its history, and login throttling.

use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::e2e;
use crate::helpers::*;

const BAD_CREDENTIALS: &str = "No active account found with the given credentials";
const USERNAME_TAKEN: &str = "A user with that username already exists.";
const EMAIL_TAKEN: &str = "user with this email address already exists.";
const PASSWORD: &str = "correct horse battery";

/// A username no other test uses.
fn fresh_username(prefix: &str) -> String {
    format!("{prefix}_{}", unique_suffix())
}

/// Registers `username` with `PASSWORD` and `<username>@example.com`; returns the user.
async fn register(app: &TestApp, username: &str) -> Value {
    let answer = app
        .json(
            "POST",
            "/api/accounts/register/",
            None,
            &json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
        )
        .await;
    assert_eq!(answer.status, 201, "register {username}: {}", answer.body);
    answer.body
}

async fn login(app: &TestApp, username: &str, password: &str) -> Answer {
    app.json(
        "POST",
        "/api/accounts/login/",
        None,
        &json!({"username": username, "password": password}),
    )
    .await
}

/// Logs in and returns `(access, refresh)`; panics unless the answer is 200.
async fn tokens(app: &TestApp, username: &str, password: &str) -> (String, String) {
    let answer = login(app, username, password).await;
    assert_eq!(answer.status, 200, "login {username}: {}", answer.body);
    assert_json(&answer);
    let keys: Vec<&String> = answer.body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2, "exactly access and refresh: {keys:?}");
    (
        answer.body["access"].as_str().unwrap().to_owned(),
        answer.body["refresh"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(app: &TestApp, token: &str) -> Answer {
    app.json(
        "POST",
        "/api/accounts/token/refresh/",
        None,
        &json!({ "refresh": token }),
    )
    .await
}

/// The claims of a token signed with the test private key (its algorithm, EdDSA, its
/// signature and its expiry checked).
fn claims(token: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).expect("a JWT header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA, "{header:?}");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_ed_pem(TEST_PUBLIC_KEY.as_bytes()).unwrap(),
        &validation,
    )
    .expect("the service signs with the configured private key")
    .claims
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Every way a token can be wrong for the endpoint that expects `token_type`.
fn bad_tokens(user_id: i64, token_type: &str, other_type: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "forged with another key",
            token_with(OTHER_PRIVATE_KEY, user_id, false, token_type, 900),
        ),
        (
            "expired",
            token_with(TEST_PRIVATE_KEY, user_id, false, token_type, -10),
        ),
        ("alg none", alg_none_token(user_id, token_type, true)),
        (
            "HS256 keyed with the public key",
            hs256_token_with(TEST_PUBLIC_KEY, user_id, false, token_type, 900),
        ),
        (
            "wrong token_type",
            token_with(TEST_PRIVATE_KEY, user_id, false, other_type, 900),
        ),
        (
            "unknown token_type",
            token_with(TEST_PRIVATE_KEY, user_id, false, "id", 900),
        ),
        ("garbage", "not.a.token".to_owned()),
        ("three dots", "...".to_owned()),
        ("base64 junk", "eyJhbGciOiJIUzI1NiJ9.eyJ9.c2ln".to_owned()),
    ]
}

fn is_rfc3339_utc(s: &str) -> bool {
    s.ends_with('Z') && s.len() >= 20 && s.as_bytes()[10] == b'T' && s[..4].parse::<u32>().is_ok()
}

async fn register_then_profile(app: TestApp) {
    let username = fresh_username("Reg");
    let email = format!("{username}@Example.COM");
    let answer = app
        .json(
            "POST",
            "/api/accounts/register/",
            None,
            &json!({
                "username": username,
                "email": email,
                "password": PASSWORD,
                "first_name": " Ada ",
                "last_name": "Lovelace",
                "phone_number": "+44 20 7946 0000",
                "address": "12 St James's Square",
                "is_staff": true,
                "id": 999999,
            }),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_json(&answer);
    let user = answer.body;
    let mut keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "address",
            "date_joined",
            "email",
            "first_name",
            "id",
            "is_active",
            "is_staff",
            "last_name",
            "phone_number",
            "username"
        ],
        "exactly the user fields, never the password or its hash"
    );
    let id = user["id"].as_i64().expect("id is an integer");
    assert!(id > 0 && id != 999999);
    assert_eq!(user["username"], username);
    assert_eq!(
        user["email"],
        format!("{username}@example.com"),
        "the domain is lower-cased"
    );
    assert_eq!(user["first_name"], "Ada");
    assert_eq!(user["last_name"], "Lovelace");
    assert_eq!(user["phone_number"], "+44 20 7946 0000");
    assert_eq!(user["address"], "12 St James's Square");
    assert_eq!(user["is_staff"], false, "registration never makes staff");
    assert_eq!(user["is_active"], true);
    assert!(
        is_rfc3339_utc(user["date_joined"].as_str().unwrap()),
        "{user}"
    );
    assert!(!answer.raw.windows(8).any(|w| w == b"argon2id"));

    // Optional texts absent at registration are empty strings.
    let other = register(&app, &fresh_username("min")).await;
    for field in ["first_name", "last_name", "phone_number", "address"] {
        assert_eq!(other[field], "", "{field}");
    }

    let (access, _) = tokens(&app, &username, PASSWORD).await;
    let profile = app.get("/api/accounts/profile/", Some(&access)).await;
    assert_eq!(profile.status, 200);
    assert_json(&profile);
    assert_eq!(profile.body, user);
}

async fn register_validation(app: TestApp) {
    let post = |body: Value| {
        let app = &app;
        async move {
            app.json("POST", "/api/accounts/register/", None, &body)
                .await
        }
    };
    let name = fresh_username("val");
    let email = format!("{name}@example.com");

    let answer = post(json!({})).await;
    assert_field_errors(&answer, &["username", "email", "password"]);
    assert_eq!(answer.body["username"], json!(["This field is required."]));

    // Usernames: letters, digits and @.+-_ only, 1-150 characters.
    for bad in ["has space", "semi;colon", "slash/", "emoji🙂", "quote\""] {
        let answer = post(json!({"username": bad, "email": email, "password": PASSWORD})).await;
        assert_field_errors(&answer, &["username"]);
        assert_eq!(
            answer.body["username"],
            json!(["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]),
            "{bad}"
        );
    }
    let answer =
        post(json!({"username": "x".repeat(151), "email": email, "password": PASSWORD})).await;
    assert_eq!(
        answer.body["username"],
        json!(["Ensure this field has no more than 150 characters."])
    );
    for blank in ["", "   "] {
        let answer = post(json!({"username": blank, "email": email, "password": PASSWORD})).await;
        assert_eq!(
            answer.body["username"],
            json!(["This field may not be blank."])
        );
    }
    let answer = post(json!({"username": null, "email": email, "password": PASSWORD})).await;
    assert_eq!(
        answer.body["username"],
        json!(["This field may not be null."])
    );
    let answer = post(json!({"username": ["a"], "email": email, "password": PASSWORD})).await;
    assert_eq!(answer.body["username"], json!(["Not a valid string."]));

    // Emails.
    for bad in [
        "plain",
        "@example.com",
        "a@",
        "a@b",
        "a b@example.com",
        "a@@example.com",
        "a..b@example.com",
    ] {
        let answer = post(json!({"username": name, "email": bad, "password": PASSWORD})).await;
        assert_field_errors(&answer, &["email"]);
        assert_eq!(
            answer.body["email"],
            json!(["Enter a valid email address."]),
            "{bad}"
        );
    }

    // Passwords: 8 characters, not all digits, not the username.
    let answer = post(json!({"username": name, "email": email, "password": "short1x"})).await;
    assert_eq!(
        answer.body["password"],
        json!(["This password is too short. It must contain at least 8 characters."])
    );
    let answer = post(json!({"username": name, "email": email, "password": "1234567890"})).await;
    assert_eq!(
        answer.body["password"],
        json!([
            "This password is too common.",
            "This password is entirely numeric."
        ])
    );
    let answer = post(json!({"username": name, "email": email, "password": "8462019375"})).await;
    assert_eq!(
        answer.body["password"],
        json!(["This password is entirely numeric."])
    );
    let answer =
        post(json!({"username": name, "email": email, "password": name.to_uppercase()})).await;
    assert_eq!(
        answer.body["password"],
        json!(["The password is too similar to the username."])
    );
    let answer = post(json!({"username": name, "email": email, "password": ""})).await;
    assert_eq!(
        answer.body["password"],
        json!(["This field may not be blank."])
    );

    // Optional fields have limits too; every field's errors come at once.
    let answer = post(json!({
        "username": "bad name",
        "email": "nope",
        "password": "123",
        "phone_number": "1".repeat(21),
        "first_name": "x".repeat(151),
    }))
    .await;
    assert_field_errors(
        &answer,
        &[
            "username",
            "email",
            "password",
            "phone_number",
            "first_name",
        ],
    );

    // Nothing was created by any of these.
    assert_eq!(login(&app, &name, PASSWORD).await.status, 401);
}

async fn register_body_errors(app: TestApp) {
    let answer = app
        .send(
            "POST",
            "/api/accounts/register/",
            None,
            Some(("text/plain", b"username=x".to_vec())),
        )
        .await;
    assert_detail(&answer, 415);
    let answer = app
        .send(
            "POST",
            "/api/accounts/register/",
            None,
            Some(("application/json", b"{\"username\": ".to_vec())),
        )
        .await;
    assert_detail(&answer, 400);
    let answer = app
        .send(
            "POST",
            "/api/accounts/login/",
            None,
            Some(("application/json", b"[1, 2]".to_vec())),
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})
    );
    let answer = app
        .send(
            "POST",
            "/api/accounts/register/",
            None,
            Some(("application/json", vec![b'{', 0xff, b'}'])),
        )
        .await;
    assert_detail(&answer, 400);
    let big = vec![b' '; 1024 * 1024 + 1];
    let answer = app
        .send(
            "POST",
            "/api/accounts/register/",
            None,
            Some(("application/json", big)),
        )
        .await;
    assert_detail(&answer, 413);
}

async fn usernames_and_emails_are_unique_case_insensitively(app: TestApp) {
    let username = fresh_username("Case");
    let user = register(&app, &username).await;

    let answer = app
        .json(
            "POST",
            "/api/accounts/register/",
            None,
            &json!({"username": username.to_uppercase(), "email": format!("other.{username}@example.com"), "password": PASSWORD}),
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_json(&answer);
    assert_eq!(answer.body, json!({ "username": [USERNAME_TAKEN] }));

    let answer = app
        .json(
            "POST",
            "/api/accounts/register/",
            None,
            &json!({"username": fresh_username("other"), "email": format!("{}@EXAMPLE.com", username.to_uppercase()), "password": PASSWORD}),
        )
        .await;
    assert_eq!(answer.body, json!({ "email": [EMAIL_TAKEN] }));

    let answer = app
        .json(
            "POST",
            "/api/accounts/register/",
            None,
            &json!({"username": username.to_lowercase(), "email": format!("{username}@example.com"), "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        answer.body,
        json!({ "username": [USERNAME_TAKEN], "email": [EMAIL_TAKEN] })
    );

    // Any spelling of the username logs in to the one account.
    let (access, _) = tokens(&app, &username.to_lowercase(), PASSWORD).await;
    assert_eq!(
        claims(&access)["sub"],
        user["id"].as_i64().unwrap().to_string()
    );
}

async fn concurrent_registrations_make_one_user(app: TestApp) {
    let username = fresh_username("race");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let client = app.client.clone();
        let url = format!("{}/api/accounts/register/", app.base);
        // Different spellings and emails: only the case-insensitive username collides.
        let name = if i % 2 == 0 {
            username.clone()
        } else {
            username.to_uppercase()
        };
        let body = json!({"username": name, "email": format!("{username}.{i}@example.com"), "password": PASSWORD});
        tasks.spawn(async move {
            let res = client.post(url).json(&body).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        });
    }
    let mut created = 0;
    while let Some(outcome) = tasks.join_next().await {
        let (status, body) = outcome.unwrap();
        match status {
            201 => created += 1,
            400 => assert_eq!(body, json!({ "username": [USERNAME_TAKEN] })),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created, 1, "exactly one registration wins");
}

async fn login_answers_tokens(app: TestApp) {
    let username = fresh_username("tok");
    let user = register(&app, &username).await;
    let id = user["id"].as_i64().unwrap();
    let before = now_secs();
    let (access, refresh_token) = tokens(&app, &username, PASSWORD).await;

    let a = claims(&access);
    assert_eq!(a["sub"], id.to_string());
    assert_eq!(a["token_type"], "access");
    assert_eq!(a["is_staff"], false);
    let iat = a["iat"].as_i64().unwrap();
    assert!((before - 1..=now_secs() + 1).contains(&iat), "{a}");
    assert_eq!(
        a["exp"].as_i64().unwrap() - iat,
        15 * 60,
        "access: 15 minutes"
    );
    assert!(a["jti"].as_str().is_some_and(|jti| jti.len() >= 16));

    let r = claims(&refresh_token);
    assert_eq!(r["sub"], id.to_string());
    assert_eq!(r["token_type"], "refresh");
    assert_eq!(
        r["exp"].as_i64().unwrap() - r["iat"].as_i64().unwrap(),
        7 * 24 * 3600,
        "refresh: 7 days"
    );
    assert_ne!(a["jti"], r["jti"]);

    // Every login issues new tokens.
    let (access2, _) = tokens(&app, &username, PASSWORD).await;
    assert_ne!(claims(&access2)["jti"], a["jti"]);
}

async fn login_failures_look_alike(app: TestApp) {
    let username = fresh_username("who");
    register(&app, &username).await;
    let wrong_password = login(&app, &username, "not the password").await;
    let unknown_user = login(&app, &fresh_username("nobody"), PASSWORD).await;
    let wrong_case_password = login(&app, &username, &PASSWORD.to_uppercase()).await;
    let padded_password = login(&app, &username, &format!(" {PASSWORD}")).await;
    for answer in [
        &wrong_password,
        &unknown_user,
        &wrong_case_password,
        &padded_password,
    ] {
        assert_eq!(answer.status, 401);
        assert_json(answer);
        assert_eq!(answer.body, json!({ "detail": BAD_CREDENTIALS }));
    }

    let answer = app
        .json("POST", "/api/accounts/login/", None, &json!({}))
        .await;
    assert_eq!(
        answer.body,
        json!({"username": ["This field is required."], "password": ["This field is required."]})
    );
    let answer = app
        .json(
            "POST",
            "/api/accounts/login/",
            None,
            &json!({"username": "", "password": ""}),
        )
        .await;
    assert_field_errors(&answer, &["username", "password"]);
}

async fn refresh_gives_a_new_access_token(app: TestApp) {
    let username = fresh_username("ref");
    let user = register(&app, &username).await;
    let (_, refresh_token) = tokens(&app, &username, PASSWORD).await;
    let answer = refresh(&app, &refresh_token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_json(&answer);
    let keys: Vec<&String> = answer.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access", "refresh"]);
    let access = answer.body["access"].as_str().unwrap();
    let c = claims(access);
    assert_eq!(c["token_type"], "access");
    assert_eq!(c["sub"], user["id"].as_i64().unwrap().to_string());
    assert_eq!(c["is_staff"], false);
    let profile = app.get("/api/accounts/profile/", Some(access)).await;
    assert_eq!(profile.status, 200);
    assert_eq!(profile.body["username"], username);
}

async fn refresh_rejects_bad_tokens(app: TestApp) {
    let username = fresh_username("badref");
    let user = register(&app, &username).await;
    let id = user["id"].as_i64().unwrap();
    let (access, _) = tokens(&app, &username, PASSWORD).await;
    let expected = json!({"detail": "Token is invalid or expired", "code": "token_not_valid"});

    let mut cases = bad_tokens(id, "refresh", "access");
    cases.push(("an access token from login", access));
    cases.push((
        "a refresh token of no user",
        token_with(TEST_PRIVATE_KEY, i64::MAX, false, "refresh", 900),
    ));
    for (why, token) in cases {
        let answer = refresh(&app, &token).await;
        assert_eq!(answer.status, 401, "{why}: {}", answer.body);
        assert_json(&answer);
        assert_eq!(answer.body, expected, "{why}");
    }

    let answer = app
        .json("POST", "/api/accounts/token/refresh/", None, &json!({}))
        .await;
    assert_eq!(answer.body, json!({"refresh": ["This field is required."]}));
    let answer = refresh(&app, "").await;
    assert_field_errors(&answer, &["refresh"]);
}

async fn profile_rejects_bad_tokens(app: TestApp) {
    let username = fresh_username("badacc");
    let user = register(&app, &username).await;
    let id = user["id"].as_i64().unwrap();
    let (_, refresh_token) = tokens(&app, &username, PASSWORD).await;

    let answer = app.get("/api/accounts/profile/", None).await;
    assert_detail(&answer, 401);
    assert_eq!(
        answer.body["detail"],
        "Authentication credentials were not provided."
    );

    let mut cases = bad_tokens(id, "access", "refresh");
    cases.push(("a refresh token from login", refresh_token));
    for (why, token) in cases {
        for method in ["GET", "PATCH"] {
            let answer = app
                .send(
                    method,
                    "/api/accounts/profile/",
                    Some(&token),
                    Some(("application/json", br#"{"first_name": "x"}"#.to_vec())),
                )
                .await;
            assert_eq!(answer.status, 401, "{method} {why}: {}", answer.body);
            assert_json(&answer);
            assert!(answer.body["detail"].is_string(), "{why}");
        }
    }
    // None of them changed the profile.
    let (access, _) = tokens(&app, &username, PASSWORD).await;
    let profile = app.get("/api/accounts/profile/", Some(&access)).await;
    assert_eq!(profile.body["first_name"], "");
}

async fn profile_updates_ignore_protected_fields(app: TestApp) {
    let username = fresh_username("upd");
    let user = register(&app, &username).await;
    let (access, _) = tokens(&app, &username, PASSWORD).await;

    let answer = app
        .json(
            "PATCH",
            "/api/accounts/profile/",
            Some(&access),
            &json!({
                "first_name": "Grace",
                "address": "1 Navy Way",
                "username": "hijack",
                "is_staff": true,
                "password": "a new password",
                "id": 1,
                "date_joined": "2000-01-01T00:00:00Z",
            }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_json(&answer);
    let patched = answer.body;
    assert_eq!(patched["first_name"], "Grace");
    assert_eq!(patched["address"], "1 Navy Way");
    assert_eq!(patched["last_name"], "");
    assert_eq!(patched["username"], username);
    assert_eq!(patched["is_staff"], false);
    assert_eq!(patched["id"], user["id"]);
    assert_eq!(patched["date_joined"], user["date_joined"]);
    assert_eq!(patched["email"], user["email"]);

    // PUT takes any subset too; what it leaves out stays.
    let new_email = format!("{username}.new@Example.org");
    let answer = app
        .json(
            "PUT",
            "/api/accounts/profile/",
            Some(&access),
            &json!({"email": new_email, "last_name": "Hopper", "phone_number": ""}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["email"], format!("{username}.new@example.org"));
    assert_eq!(answer.body["last_name"], "Hopper");
    assert_eq!(answer.body["first_name"], "Grace");
    assert_eq!(answer.body["username"], username);

    // An empty body changes nothing.
    let answer = app
        .send("PATCH", "/api/accounts/profile/", Some(&access), None)
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["last_name"], "Hopper");

    let read = app.get("/api/accounts/profile/", Some(&access)).await;
    assert_eq!(read.body["username"], username);
    assert_eq!(read.body["is_staff"], false);

    // The password did not change; neither did the username.
    assert_eq!(login(&app, &username, PASSWORD).await.status, 200);
    assert_eq!(login(&app, "hijack", "a new password").await.status, 401);
    let (fresh_access, _) = tokens(&app, &username, PASSWORD).await;
    assert_eq!(claims(&fresh_access)["is_staff"], false);
}

async fn profile_update_validation(app: TestApp) {
    let username = fresh_username("pval");
    register(&app, &username).await;
    let other = fresh_username("pother");
    register(&app, &other).await;
    let (access, _) = tokens(&app, &username, PASSWORD).await;
    let patch = |body: Value| {
        let app = &app;
        let access = access.clone();
        async move {
            app.json("PATCH", "/api/accounts/profile/", Some(&access), &body)
                .await
        }
    };
    let answer = patch(json!({"email": "not-an-email"})).await;
    assert_eq!(
        answer.body,
        json!({"email": ["Enter a valid email address."]})
    );
    let answer = patch(json!({"email": ""})).await;
    assert_eq!(
        answer.body,
        json!({"email": ["This field may not be blank."]})
    );
    let answer = patch(json!({"email": null})).await;
    assert_field_errors(&answer, &["email"]);
    let answer = patch(json!({"email": format!("{}@example.com", other.to_uppercase())})).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body, json!({ "email": [EMAIL_TAKEN] }));
    // A number is not text: the schema says `string`.
    let answer = patch(json!({"phone_number": "1".repeat(21), "first_name": 5})).await;
    assert_field_errors(&answer, &["phone_number", "first_name"]);
    // Its own email, in another case, is not "taken".
    let answer = patch(json!({"email": format!("{}@example.com", username.to_uppercase())})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = app
        .send(
            "PUT",
            "/api/accounts/profile/",
            Some(&access),
            Some(("text/plain", b"x".to_vec())),
        )
        .await;
    assert_detail(&answer, 415);
}

async fn login_throttling(app: TestApp) {
    let username = fresh_username("Throttle");
    register(&app, &username).await;
    let bystander = fresh_username("bystander");
    register(&app, &bystander).await;

    for i in 0..5 {
        let answer = login(&app, &username, &format!("wrong password {i}")).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.body);
    }
    // The sixth attempt is refused, whatever the password and the username's case.
    for (name, password) in [
        (username.clone(), "wrong again".to_owned()),
        (username.clone(), PASSWORD.to_owned()),
        (username.to_lowercase(), PASSWORD.to_owned()),
    ] {
        let answer = login(&app, &name, &password).await;
        assert_eq!(answer.status, 429, "{name}: {}", answer.body);
        assert_json(&answer);
        let retry_after: u64 = answer
            .header("retry-after")
            .expect("a Retry-After header")
            .parse()
            .expect("Retry-After in seconds");
        assert!((1..=900).contains(&retry_after), "{retry_after}");
        let detail = answer.body["detail"].as_str().unwrap();
        let n: u64 = detail
            .strip_prefix("Request was throttled. Expected available in ")
            .and_then(|rest| rest.strip_suffix(" seconds."))
            .unwrap_or_else(|| panic!("{detail}"))
            .parse()
            .unwrap();
        assert!(n.abs_diff(retry_after) <= 1, "{n} vs {retry_after}");
    }
    // Other usernames are not affected.
    assert_eq!(login(&app, &bystander, PASSWORD).await.status, 200);
    // Unknown usernames are throttled the same way.
    let ghost = fresh_username("ghost");
    for _ in 0..5 {
        assert_eq!(login(&app, &ghost, PASSWORD).await.status, 401);
    }
    assert_eq!(login(&app, &ghost, PASSWORD).await.status, 429);
}

/// The same host seen from another loopback address: a client whose `spin-client-addr` differs.
fn from_address(app: &TestApp, last_octet: u8) -> TestApp {
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, last_octet]))
        .build()
        .unwrap();
    TestApp {
        base: app.base.clone(),
        engine: app.engine,
        client,
    }
}

/// Someone else's guesses, from another address, throttle only that address: the owner logs
/// in as usual from theirs.
async fn guesses_from_elsewhere_do_not_lock_the_owner_out(app: TestApp) {
    let username = fresh_username("victim");
    register(&app, &username).await;
    let attacker = from_address(&app, 2);
    for i in 0..5 {
        let answer = login(&attacker, &username, &format!("guess {i}")).await;
        assert_eq!(answer.status, 401, "guess {i}: {}", answer.body);
    }
    assert_eq!(login(&attacker, &username, PASSWORD).await.status, 429);
    assert_eq!(login(&app, &username, PASSWORD).await.status, 200);
    // And the owner's success does not free the attacker.
    assert_eq!(login(&attacker, &username, PASSWORD).await.status, 429);
}

/// One address guessing many usernames is throttled as a whole after 100 failures, for every
/// username; other addresses are not.
async fn one_address_guessing_many_usernames_is_throttled(app: TestApp) {
    let username = fresh_username("bystander");
    register(&app, &username).await;
    let guesser = from_address(&app, 3);
    let prefix = fresh_username("nobody");
    for round in 0..25 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..4 {
            let guesser = from_address(&guesser, 3);
            let name = format!("{prefix}_{round}_{i}");
            tasks.spawn(async move { login(&guesser, &name, PASSWORD).await.status });
        }
        while let Some(status) = tasks.join_next().await {
            assert_eq!(status.unwrap(), 401, "round {round}");
        }
    }
    let refused = login(&guesser, &username, PASSWORD).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(login(&app, &username, PASSWORD).await.status, 200);
}

async fn concurrent_guesses_are_counted(app: TestApp) {
    let username = fresh_username("burst");
    register(&app, &username).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let client = app.client.clone();
        let url = format!("{}/api/accounts/login/", app.base);
        let body = json!({"username": username, "password": format!("guess {i}")});
        tasks.spawn(async move { client.post(url).json(&body).send().await.unwrap().status() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.unwrap().as_u16());
    }
    statuses.sort_unstable();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(checked, 5, "only five guesses are checked: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
}

async fn success_clears_failures(app: TestApp) {
    let username = fresh_username("clear");
    register(&app, &username).await;
    for _ in 0..4 {
        assert_eq!(login(&app, &username, "wrong password").await.status, 401);
    }
    assert_eq!(login(&app, &username, PASSWORD).await.status, 200);
    for _ in 0..4 {
        assert_eq!(login(&app, &username, "wrong password").await.status, 401);
    }
    assert_eq!(login(&app, &username, PASSWORD).await.status, 200);
}

async fn login_token_is_not_staff_for_products(app: TestApp) {
    let username = fresh_username("shopper");
    register(&app, &username).await;
    let (access, refresh_token) = tokens(&app, &username, PASSWORD).await;
    let body = json!({"name": format!("Forbidden {username}"), "price": "1.00"});
    let answer = app
        .json("POST", "/api/products/", Some(&access), &body)
        .await;
    assert_detail(&answer, 403);
    // The refresh token is no access token anywhere.
    let answer = app
        .json("POST", "/api/products/", Some(&refresh_token), &body)
        .await;
    assert_detail(&answer, 401);
    // Reading the catalogue with the token is fine.
    assert_eq!(app.get("/api/products/", Some(&access)).await.status, 200);
}

/// Whoever holds only the public key (any service) cannot make a token: not by HMAC-signing
/// with the key's text (algorithm confusion), nor with an Ed25519 key of their own.
async fn tokens_not_signed_by_accounts_are_refused(app: TestApp) {
    let username = fresh_username("forged");
    let id = register(&app, &username).await["id"].as_i64().unwrap();
    let product = json!({"name": format!("Forged {username}"), "price": "1.00"});
    let forged = [
        (
            "HS256 keyed with the public key PEM",
            hs256_token_with(TEST_PUBLIC_KEY, id, true, "access", 900),
        ),
        (
            "HS256 keyed with the trimmed public key PEM",
            hs256_token_with(TEST_PUBLIC_KEY.trim(), id, true, "access", 900),
        ),
        (
            "EdDSA with another key",
            token_with(OTHER_PRIVATE_KEY, id, true, "access", 900),
        ),
    ];
    for (why, token) in &forged {
        let profile = app.get("/api/accounts/profile/", Some(token)).await;
        assert_eq!(profile.status, 401, "{why}: {}", profile.body);
        assert_detail(&profile, 401);
        let create = app
            .json("POST", "/api/products/", Some(token), &product)
            .await;
        assert_eq!(create.status, 401, "{why}: {}", create.body);
        assert_detail(&create, 401);
    }
    // The same claims signed with the accounts key are accepted: only the signature differs.
    let genuine = token_with(TEST_PRIVATE_KEY, id, true, "access", 900);
    let profile = app.get("/api/accounts/profile/", Some(&genuine)).await;
    assert_eq!(profile.status, 200, "{}", profile.body);
    let invalid = app
        .json("POST", "/api/products/", Some(&genuine), &json!({}))
        .await;
    assert_eq!(invalid.status, 400, "{}", invalid.body);
}

async fn methods_and_paths(app: TestApp) {
    for (path, allow) in [
        ("/api/accounts/register/", "POST, OPTIONS"),
        ("/api/accounts/login/", "POST, OPTIONS"),
        ("/api/accounts/token/refresh/", "POST, OPTIONS"),
    ] {
        let answer = app.get(path, None).await;
        assert_detail(&answer, 405);
        assert_eq!(answer.header("allow"), Some(allow), "{path}");
        assert_eq!(answer.body["detail"], "Method \"GET\" not allowed.");
    }
    let answer = app
        .send(
            "DELETE",
            "/api/accounts/profile/",
            Some(&user_token(1)),
            None,
        )
        .await;
    assert_detail(&answer, 405);
    assert_eq!(
        answer.header("allow"),
        Some("GET, PUT, PATCH, HEAD, OPTIONS")
    );
    for path in [
        "/api/accounts/",
        "/api/accounts/login",
        "/api/accounts/users/x/y/",
        "/api/accounts/token/",
        "/api/accounts/token/refresh/x/",
    ] {
        assert_detail(&app.get(path, None).await, 404);
    }
}

e2e!(
    register_then_profile,
    register_validation,
    register_body_errors,
    usernames_and_emails_are_unique_case_insensitively,
    concurrent_registrations_make_one_user,
    login_answers_tokens,
    login_failures_look_alike,
    refresh_gives_a_new_access_token,
    refresh_rejects_bad_tokens,
    profile_rejects_bad_tokens,
    profile_updates_ignore_protected_fields,
    profile_update_validation,
    login_throttling,
    guesses_from_elsewhere_do_not_lock_the_owner_out,
    one_address_guessing_many_usernames_is_throttled,
    concurrent_guesses_are_counted,
    success_clears_failures,
    login_token_is_not_staff_for_products,
    tokens_not_signed_by_accounts_are_refused,
    methods_and_paths,
    refresh_rotates_and_a_replay_revokes_the_login,
    concurrent_refreshes_spend_a_token_once,
    logout_revokes_every_refresh_token,
    losing_staff_or_deactivation_cuts_off_tokens_everywhere,
    staff_list_find_and_change_users,
    staff_cannot_demote_or_deactivate_themselves,
    history_records_each_staff_change,
    addresses_are_at_most_1000_characters,
    common_passwords_are_refused,
);

/// Registers a user that is not user 1 (the suite's minted `staff_token()` names user 1, and
/// these tests deactivate and demote their users); returns its id.
async fn register_id(app: &TestApp, username: &str) -> i64 {
    let id = register(app, username).await["id"].as_i64().unwrap();
    if id == 1 {
        return Box::pin(register_id(app, &format!("{username}_2"))).await;
    }
    id
}

/// A staff token for a registered user, minted as the suite mints its tokens: whoever holds
/// the signing key can make one, and the services then trust its `is_staff` while the user's
/// token version stands (0 here: the user's first).
fn minted_staff(id: i64) -> String {
    token_with(TEST_PRIVATE_KEY, id, true, "access", 900)
}

/// An access token of user `id` under token version `ver`, signed with the accounts key.
fn token_of_version(id: i64, ver: i64) -> String {
    let now = now_secs();
    let claims = json!({
        "sub": id.to_string(), "iat": now, "exp": now + 900, "jti": unique_suffix(),
        "token_type": "access", "is_staff": false, "ver": ver,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_pem(TEST_PRIVATE_KEY.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// `PATCH /api/accounts/users/{id}/` as `staff`.
async fn patch_user(app: &TestApp, staff: &str, id: i64, body: Value) -> Answer {
    app.json(
        "PATCH",
        &format!("/api/accounts/users/{id}/"),
        Some(staff),
        &body,
    )
    .await
}

/// `POST /api/accounts/logout/` with `token` and an optional JSON body.
async fn logout(app: &TestApp, token: Option<&str>, body: Option<Value>) -> Answer {
    let body = body.map(|body| ("application/json", serde_json::to_vec(&body).unwrap()));
    app.send("POST", "/api/accounts/logout/", token, body).await
}

async fn refresh_rotates_and_a_replay_revokes_the_login(app: TestApp) {
    let username = fresh_username("rot");
    let id = register_id(&app, &username).await;
    let (_, first) = tokens(&app, &username, PASSWORD).await;
    let (_, other_login) = tokens(&app, &username, PASSWORD).await;

    let rotated = refresh(&app, &first).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let second = rotated.body["refresh"].as_str().unwrap().to_owned();
    let access = rotated.body["access"].as_str().unwrap();
    assert_ne!(second, first);
    assert_eq!(claims(&second)["sub"], id.to_string());
    assert_eq!(claims(&second)["token_type"], "refresh");
    assert_eq!(
        app.get("/api/accounts/profile/", Some(access)).await.status,
        200
    );
    // The next one rotates in turn.
    let rotated = refresh(&app, &second).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let third = rotated.body["refresh"].as_str().unwrap().to_owned();

    // The first one, sent again: someone replays a copy. Refused, and the whole login with it.
    let expected = json!({"detail": "Token is invalid or expired", "code": "token_not_valid"});
    let replay = refresh(&app, &first).await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert_eq!(replay.body, expected);
    let after = refresh(&app, &third).await;
    assert_eq!(after.status, 401, "the login's newest token is revoked too");
    assert_eq!(after.body, expected);
    // Another login of the same user is another family: untouched.
    let other = refresh(&app, &other_login).await;
    assert_eq!(other.status, 200, "{}", other.body);
}

async fn concurrent_refreshes_spend_a_token_once(app: TestApp) {
    let username = fresh_username("race_ref");
    register_id(&app, &username).await;
    let (_, token) = tokens(&app, &username, PASSWORD).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let client = app.client.clone();
        let url = format!("{}/api/accounts/token/refresh/", app.base);
        let body = json!({ "refresh": token });
        tasks.spawn(async move {
            let res = client.post(url).json(&body).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        });
    }
    let mut issued = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        let (status, body) = outcome.unwrap();
        match status {
            200 => issued.push(body["refresh"].as_str().unwrap().to_owned()),
            401 => {}
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(issued.len() <= 1, "one token was spent twice: {issued:?}");
    // The others were replays: whatever the winner got is revoked with its login.
    for token in issued {
        assert_eq!(refresh(&app, &token).await.status, 401);
    }
}

async fn logout_revokes_every_refresh_token(app: TestApp) {
    let username = fresh_username("bye");
    register_id(&app, &username).await;
    let (access, first) = tokens(&app, &username, PASSWORD).await;
    let (_, second) = tokens(&app, &username, PASSWORD).await;

    assert_detail(&logout(&app, None, None).await, 401);
    let answer = logout(&app, Some(&access), None).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert!(answer.raw.is_empty());
    for token in [&first, &second] {
        assert_eq!(refresh(&app, token).await.status, 401);
    }
    // With the optional body, and again: still 204.
    let (access, third) = tokens(&app, &username, PASSWORD).await;
    let answer = logout(&app, Some(&access), Some(json!({ "refresh": third }))).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert_eq!(refresh(&app, &third).await.status, 401);
    let answer = logout(&app, Some(&access), Some(json!({ "refresh": 5 }))).await;
    assert_field_errors(&answer, &["refresh"]);
    // A refresh token is not an access token.
    assert_detail(&logout(&app, Some(&third), None).await, 401);
    let allow = app.get("/api/accounts/logout/", Some(&access)).await;
    assert_detail(&allow, 405);
    assert_eq!(allow.header("allow"), Some("POST, OPTIONS"));
}

/// Tokens issued before a loss of staff or a deactivation are refused from then on, by
/// accounts and by every service that checks tokens (cart, orders, products' staff routes).
async fn losing_staff_or_deactivation_cuts_off_tokens_everywhere(app: TestApp) {
    let admin = minted_staff(register_id(&app, &fresh_username("boss")).await);
    let username = fresh_username("clerk");
    let id = register_id(&app, &username).await;
    let promoted = patch_user(&app, &admin, id, json!({"is_staff": true})).await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    assert_eq!(promoted.body["is_staff"], true);

    let (staff_access, staff_refresh) = tokens(&app, &username, PASSWORD).await;
    assert_eq!(claims(&staff_access)["is_staff"], true);
    let product = app
        .json(
            "POST",
            "/api/products/",
            Some(&staff_access),
            &json!({"name": format!("Clerk's {username}"), "price": "2.00", "stock": 5}),
        )
        .await;
    assert_eq!(product.status, 201, "{}", product.body);
    let product_id = product.body["id"].as_i64().unwrap();
    app.add_to_cart(&staff_access, product_id, 1).await;
    let reads = [
        ("GET", "/api/accounts/profile/"),
        ("GET", "/api/carts/"),
        ("GET", "/api/orders/"),
    ];
    for (method, path) in reads {
        let answer = app.send(method, path, Some(&staff_access), None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    }

    // Staff taken away: the token that says staff is refused everywhere, products' staff
    // routes included, and so is the refresh token of that login.
    let demoted = patch_user(&app, &admin, id, json!({"is_staff": false})).await;
    assert_eq!(demoted.status, 200, "{}", demoted.body);
    let create = app
        .json(
            "POST",
            "/api/products/",
            Some(&staff_access),
            &json!({"name": "After demotion", "price": "1.00"}),
        )
        .await;
    assert_detail(&create, 401);
    let delete = app
        .send(
            "DELETE",
            &format!("/api/products/{product_id}/"),
            Some(&staff_access),
            None,
        )
        .await;
    assert_detail(&delete, 401);
    for (method, path) in reads {
        let answer = app.send(method, path, Some(&staff_access), None).await;
        assert_detail(&answer, 401);
    }
    let status = app
        .json(
            "POST",
            "/api/orders/1/status/",
            Some(&staff_access),
            &json!({"status": "shipped"}),
        )
        .await;
    assert_detail(&status, 401);
    assert_eq!(refresh(&app, &staff_refresh).await.status, 401);
    // The catalogue stays open to everyone, with or without a token.
    assert_eq!(app.get("/api/products/", None).await.status, 200);
    assert_eq!(
        app.get(&format!("/api/products/{product_id}/"), None)
            .await
            .status,
        200
    );

    // A new login works, as the customer they now are.
    let (access, refresh_token) = tokens(&app, &username, PASSWORD).await;
    assert_eq!(claims(&access)["is_staff"], false);
    let create = app
        .json(
            "POST",
            "/api/products/",
            Some(&access),
            &json!({"name": "Customer's", "price": "1.00"}),
        )
        .await;
    assert_detail(&create, 403);
    for (method, path) in reads {
        let answer = app.send(method, path, Some(&access), None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    }

    // Deactivated: every token is refused, and neither login nor refresh gives new ones.
    let deactivated = patch_user(&app, &admin, id, json!({"is_active": false})).await;
    assert_eq!(deactivated.status, 200, "{}", deactivated.body);
    assert_eq!(deactivated.body["is_active"], false);
    for (method, path) in reads {
        let answer = app.send(method, path, Some(&access), None).await;
        assert_detail(&answer, 401);
    }
    let add = app
        .json(
            "POST",
            "/api/carts/add_item/",
            Some(&access),
            &json!({"product_id": product_id}),
        )
        .await;
    assert_detail(&add, 401);
    let place = app
        .json("POST", "/api/orders/", Some(&access), &json!({}))
        .await;
    assert_detail(&place, 401);
    assert_eq!(refresh(&app, &refresh_token).await.status, 401);
    let refused = login(&app, &username, PASSWORD).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body, json!({ "detail": BAD_CREDENTIALS }));
    // Even a token of the current version (one bump for the demotion, one for this) is refused:
    // the user is inactive.
    let current = token_of_version(id, 2);
    for path in ["/api/carts/", "/api/accounts/profile/"] {
        let answer = app.get(path, Some(&current)).await;
        assert_detail(&answer, 401);
        assert_eq!(answer.body["detail"], "User is inactive", "{path}");
    }

    // Reactivated: they log in again.
    let back = patch_user(&app, &admin, id, json!({"is_active": true})).await;
    assert_eq!(back.status, 200, "{}", back.body);
    let (access, _) = tokens(&app, &username, PASSWORD).await;
    assert_eq!(app.get("/api/carts/", Some(&access)).await.status, 200);
}

async fn staff_list_find_and_change_users(app: TestApp) {
    let tag = unique_suffix();
    let mut ids = Vec::new();
    for name in ["ann", "bob", "cyd"] {
        ids.push(register_id(&app, &format!("{name}_{tag}")).await);
    }
    let admin = minted_staff(register_id(&app, &fresh_username("lister")).await);
    let customer = user_token(ids[0]);

    // Who may: staff only.
    assert_detail(&app.get("/api/accounts/users/", None).await, 401);
    assert_detail(&app.get("/api/accounts/users/", Some(&customer)).await, 403);
    let one = format!("/api/accounts/users/{}/", ids[1]);
    assert_detail(&app.get(&one, None).await, 401);
    assert_detail(&app.get(&one, Some(&customer)).await, 403);
    assert_detail(
        &patch_user(&app, &customer, ids[1], json!({"is_staff": true})).await,
        403,
    );

    // Search over username and email (every term must match), in pages.
    let list = |query: String| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.get(&format!("/api/accounts/users/?{query}"), Some(&admin))
                .await
        }
    };
    let page = list(format!("search={tag}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["count"], 3);
    let found = integers(&page.body["results"], "id");
    assert_eq!(found, ids, "by id");
    let first = &page.body["results"][0];
    assert_eq!(first["is_active"], true);
    assert!(first.get("password_hash").is_none() && first.get("password").is_none());
    let page = list(format!("search=bob%20{tag}")).await;
    assert_eq!(page.body["count"], 1, "{}", page.body);
    let page = list(format!("search={}@EXAMPLE", tag.to_uppercase())).await;
    assert_eq!(page.body["count"], 3, "emails, any case: {}", page.body);
    let page = list(format!("search={tag}&page_size=2")).await;
    assert_eq!(page.body["results"].as_array().unwrap().len(), 2);
    assert!(page.body["next"].as_str().unwrap().contains("page=2"));
    assert!(page.body["previous"].is_null());
    let page = list(format!("search={tag}&page_size=2&page=2")).await;
    assert_eq!(page.body["results"].as_array().unwrap().len(), 1);
    assert_detail(&list(format!("search={tag}&page=3")).await, 404);
    assert_field_errors(&list("is_staff=yes".to_owned()).await, &["is_staff"]);
    assert_field_errors(
        &list(format!("search={}", "x".repeat(201))).await,
        &["search"],
    );

    // Make one staff and deactivate another; the filters see it.
    let changed = patch_user(&app, &admin, ids[1], json!({"is_staff": true})).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["is_staff"], true);
    assert_eq!(changed.body["id"], ids[1]);
    let changed = patch_user(
        &app,
        &admin,
        ids[2],
        json!({"is_active": false, "username": "ignored"}),
    )
    .await;
    assert_eq!(changed.body["is_active"], false, "{}", changed.body);
    assert_eq!(changed.body["username"], format!("cyd_{tag}"));
    let page = list(format!("search={tag}&is_staff=true")).await;
    assert_eq!(page.body["count"], 1);
    assert_eq!(page.body["results"][0]["id"], ids[1]);
    let page = list(format!("search={tag}&is_active=false")).await;
    assert_eq!(page.body["count"], 1);
    assert_eq!(page.body["results"][0]["id"], ids[2]);
    let page = list(format!("search={tag}&is_staff=false&is_active=true")).await;
    assert_eq!(page.body["count"], 1);
    assert_eq!(page.body["results"][0]["id"], ids[0]);

    // One user, and the ones there are not.
    let user = app.get(&one, Some(&admin)).await;
    assert_eq!(user.status, 200, "{}", user.body);
    assert_eq!(user.body["username"], format!("bob_{tag}"));
    assert_eq!(user.body["is_staff"], true);
    for missing in ["999999999999", "0", "abc"] {
        let path = format!("/api/accounts/users/{missing}/");
        assert_detail(&app.get(&path, Some(&admin)).await, 404);
    }
    let answer = app
        .json(
            "PATCH",
            "/api/accounts/users/999999999999/",
            Some(&admin),
            &json!({"is_staff": true}),
        )
        .await;
    assert_detail(&answer, 404);
    // Flags are JSON booleans.
    for bad in [
        json!({"is_staff": "yes"}),
        json!({"is_active": 1}),
        json!({"is_staff": null}),
    ] {
        let answer = patch_user(&app, &admin, ids[0], bad.clone()).await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
    }
    let put = app
        .json("PUT", &one, Some(&admin), &json!({"is_staff": true}))
        .await;
    assert_detail(&put, 405);
    assert_eq!(put.header("allow"), Some("GET, PATCH, HEAD, OPTIONS"));
}

async fn staff_cannot_demote_or_deactivate_themselves(app: TestApp) {
    let id = register_id(&app, &fresh_username("self")).await;
    let admin = minted_staff(id);
    for body in [
        json!({"is_staff": false}),
        json!({"is_active": false}),
        json!({"is_staff": true, "is_active": false}),
    ] {
        let answer = patch_user(&app, &admin, id, body.clone()).await;
        assert_detail(&answer, 409);
    }
    // Setting what already is, on oneself, is fine and changes nothing.
    let answer = patch_user(&app, &admin, id, json!({"is_active": true})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let user = app
        .get(&format!("/api/accounts/users/{id}/"), Some(&admin))
        .await;
    assert_eq!(user.body["is_active"], true);
}

async fn history_records_each_staff_change(app: TestApp) {
    let admin_name = fresh_username("historian");
    let admin_id = register_id(&app, &admin_name).await;
    let admin = minted_staff(admin_id);
    let target = register_id(&app, &fresh_username("subject")).await;
    let history = |query: String, token: Option<String>| {
        let app = &app;
        async move {
            app.get(&format!("/api/accounts/history/?{query}"), token.as_deref())
                .await
        }
    };
    assert_detail(&history(String::new(), None).await, 401);
    assert_detail(&history(String::new(), Some(user_token(target))).await, 403);
    let empty = history(format!("object_id={target}"), Some(admin.clone())).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.body["count"], 0);

    for body in [
        json!({"is_staff": true}),
        json!({"is_staff": true}),
        json!({"is_staff": false, "is_active": false}),
    ] {
        let answer = patch_user(&app, &admin, target, body).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let entries = history(format!("object_id={target}"), Some(admin.clone())).await;
    assert_eq!(entries.status, 200, "{}", entries.body);
    assert_eq!(entries.body["count"], 2, "a change to nothing is no entry");
    let results = entries.body["results"].as_array().unwrap();
    let newest = &results[0];
    assert_eq!(
        newest["changes"],
        json!({"is_staff": [true, false], "is_active": [true, false]})
    );
    assert_eq!(results[1]["changes"], json!({"is_staff": [false, true]}));
    for entry in results {
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
            ]
        );
        assert_eq!(entry["object_id"], target);
        assert_eq!(entry["action"], "update");
        assert_eq!(entry["staff_id"], admin_id);
        assert_eq!(entry["staff_username"], admin_name);
        assert!(is_rfc3339_utc(entry["at"].as_str().unwrap()), "{entry}");
    }
    assert!(
        newest["id"].as_i64() > results[1]["id"].as_i64(),
        "newest first"
    );
    // The whole feed holds them too, newest first.
    let feed = history("page_size=100".to_owned(), Some(admin.clone())).await;
    assert_eq!(feed.status, 200);
    let ids = integers(&feed.body["results"], "id");
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "{ids:?}");
    for bad in ["object_id=x", "object_id=0", "object_id=-3"] {
        assert_field_errors(
            &history(bad.to_owned(), Some(admin.clone())).await,
            &["object_id"],
        );
    }
}

async fn addresses_are_at_most_1000_characters(app: TestApp) {
    let name = fresh_username("addr");
    let too_long = "x".repeat(1_001);
    let answer = app
        .json(
            "POST",
            "/api/accounts/register/",
            None,
            &json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD, "address": too_long}),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"address": ["Ensure this field has no more than 1000 characters."]})
    );
    let fits = "é".repeat(1_000);
    let answer = app
        .json(
            "POST",
            "/api/accounts/register/",
            None,
            &json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD, "address": fits}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["address"], fits);
    let (access, _) = tokens(&app, &name, PASSWORD).await;
    let answer = app
        .json(
            "PATCH",
            "/api/accounts/profile/",
            Some(&access),
            &json!({ "address": too_long }),
        )
        .await;
    assert_eq!(
        answer.body,
        json!({"address": ["Ensure this field has no more than 1000 characters."]})
    );
    let profile = app.get("/api/accounts/profile/", Some(&access)).await;
    assert_eq!(profile.body["address"], fits);
}

async fn common_passwords_are_refused(app: TestApp) {
    let name = fresh_username("weak");
    for common in ["password1", "iloveyou1", "PassWord1", " qwerty123 "] {
        let answer = app
            .json(
                "POST",
                "/api/accounts/register/",
                None,
                &json!({"username": name, "email": format!("{name}@example.com"), "password": common}),
            )
            .await;
        assert_eq!(answer.status, 400, "{common}: {}", answer.body);
        assert_eq!(
            answer.body,
            json!({"password": ["This password is too common."]}),
            "{common}"
        );
    }
    assert_eq!(login(&app, &name, "password1").await.status, 401);
}

/// Behind a trusted proxy, IPv6 clients are throttled by their /64: guesses from many
/// addresses of one /64 add up, while the next /64 is another scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_are_throttled_by_their_64() {
    build_components();
    let workdir = fresh_workdir("ipv6-scope");
    let mut cmd = host_command(&workdir);
    cmd.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--no-watch",
        "--trusted-proxies",
        "127.0.0.1",
    ]);
    let manifest = repo_root().join("spin.toml");
    let (app, _) = serve_on(Engine::Sqlite, cmd, &workdir, &manifest, &[]).expect("SQLite host");
    let username = fresh_username("six");
    register(&app, &username).await;
    let from = |forwarded: String| {
        let app = &app;
        let username = username.clone();
        async move {
            let response = app
                .client
                .post(format!("{}/api/accounts/login/", app.base))
                .header("x-forwarded-for", forwarded)
                .json(&json!({"username": username, "password": "not it"}))
                .send()
                .await
                .unwrap();
            answer_of(response, "login").await.status
        }
    };
    for host_bits in 1..=5 {
        let status = from(format!("2001:db8:1:2::{host_bits:x}")).await;
        assert_eq!(status, 401, "guess from ::{host_bits}");
    }
    assert_eq!(
        from("2001:db8:1:2:ffff:eeee:dddd:cccc".to_owned()).await,
        429
    );
    assert_eq!(from("2001:db8:1:3::1".to_owned()).await, 401);
}

/// `shop createsuperuser` against the database of the host at `host` (`database_url` for
/// Postgres), the password passed through `SHOP_SUPERUSER_PASSWORD`.
fn createsuperuser(
    host: &HostInfo,
    database_url: Option<&str>,
    username: &str,
    email: &str,
    password: &str,
) -> Output {
    let mut cmd = host_command(&host.workdir);
    cmd.arg("createsuperuser")
        .arg("--manifest")
        .arg(repo_root().join("spin.toml"))
        .args(["--username", username, "--email", email])
        .env("SHOP_SUPERUSER_PASSWORD", password);
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    cmd.output().expect("run shop createsuperuser")
}

/// `shop createsuperuser` makes a staff user in the database `shop up` serves, promotes an
/// existing one (any spelling of its name), refuses what registration refuses, and can run
/// again; the staff token from login then passes a staff-only products call.
async fn createsuperuser_makes_staff(host: HostInfo, database_url: Option<String>) {
    let app = TestApp {
        base: host.base.clone(),
        engine: if database_url.is_some() {
            Engine::Postgres
        } else {
            Engine::Sqlite
        },
        client: reqwest::Client::new(),
    };
    let url = database_url.as_deref();
    let admin = fresh_username("Admin");
    let email = format!("{admin}@example.com");
    let made = createsuperuser(&host, url, &admin, &email, PASSWORD);
    assert!(
        made.status.success(),
        "createsuperuser failed: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (access, _) = tokens(&app, &admin, PASSWORD).await;
    assert_eq!(claims(&access)["is_staff"], true);
    let profile = app.get("/api/accounts/profile/", Some(&access)).await;
    assert_eq!(profile.body["is_staff"], true);
    assert_eq!(profile.body["email"], email);
    let product = app
        .json(
            "POST",
            "/api/products/",
            Some(&access),
            &json!({"name": format!("Staff made {admin}"), "price": "3.50"}),
        )
        .await;
    assert_eq!(product.status, 201, "{}", product.body);

    // Again, with the same arguments: still one user, still staff.
    let again = createsuperuser(&host, url, &admin, &email, PASSWORD);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let (access_again, _) = tokens(&app, &admin.to_lowercase(), PASSWORD).await;
    assert_eq!(claims(&access_again)["sub"], claims(&access)["sub"]);

    // Promotion of a registered user, by another spelling of its name: new email and
    // password; its refresh token now yields staff access tokens.
    let shopper = fresh_username("Promoted");
    let user = register(&app, &shopper).await;
    let (old_access, old_refresh) = tokens(&app, &shopper, PASSWORD).await;
    assert_eq!(claims(&old_access)["is_staff"], false);
    let new_password = "a brand new password";
    let new_email = format!("boss.{shopper}@example.com");
    let promoted = createsuperuser(
        &host,
        url,
        &shopper.to_uppercase(),
        &new_email,
        new_password,
    );
    assert!(
        promoted.status.success(),
        "{}",
        String::from_utf8_lossy(&promoted.stderr)
    );
    assert_eq!(login(&app, &shopper, PASSWORD).await.status, 401);
    let (staff_access, _) = tokens(&app, &shopper, new_password).await;
    assert_eq!(
        claims(&staff_access)["sub"],
        user["id"].as_i64().unwrap().to_string()
    );
    assert_eq!(claims(&staff_access)["is_staff"], true);
    let profile = app.get("/api/accounts/profile/", Some(&staff_access)).await;
    assert_eq!(
        profile.body["username"], shopper,
        "the name keeps its spelling"
    );
    assert_eq!(profile.body["email"], new_email);
    // The password changed: the tokens issued under the old one are refused.
    assert_eq!(refresh(&app, &old_refresh).await.status, 401);
    assert_detail(
        &app.get("/api/accounts/profile/", Some(&old_access)).await,
        401,
    );
    assert_detail(&app.get("/api/carts/", Some(&old_access)).await, 401);
    let (_, staff_refresh) = tokens(&app, &shopper, new_password).await;
    let refreshed = refresh(&app, &staff_refresh).await;
    assert_eq!(refreshed.status, 200);
    assert_eq!(
        claims(refreshed.body["access"].as_str().unwrap())["is_staff"],
        true,
        "a refreshed access token carries the user's current is_staff"
    );

    // What registration refuses, createsuperuser refuses, naming the field.
    for (username, email, password, field) in [
        ("bad name", "x@example.com", PASSWORD, "username"),
        (admin.as_str(), "not-an-email", PASSWORD, "email"),
        (admin.as_str(), email.as_str(), "1234567890", "password"),
        (admin.as_str(), email.as_str(), "short", "password"),
        (admin.as_str(), new_email.as_str(), PASSWORD, "email"),
    ] {
        let refused = createsuperuser(&host, url, username, email, password);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{username} {email} {password}");
        assert!(stderr.contains(field), "{field}: {stderr}");
    }
    // The refusals changed nothing.
    assert!(!tokens(&app, &admin, PASSWORD).await.0.is_empty());
}

mod createsuperuser {
    use crate::helpers::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let host = start_host(&[], "sqlite-admin");
        super::createsuperuser_makes_staff(host, None).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(url) = fresh_postgres_database() else {
            return;
        };
        let host = start_host(&["--database-url", &url], "postgres-admin");
        super::createsuperuser_makes_staff(host, Some(url)).await;
    }
}
