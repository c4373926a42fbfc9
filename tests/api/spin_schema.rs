//! The app as `spin up` finds it: a host that applies no migrations (`shop up --no-migrate`) on
//! empty SQLite files, where each service makes its own schema from its embedded migrations on
//! first use; `shop migrate` on the files of a runtime config; and the contract's JSON 404 for
//! every path no service owns.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::json;
use sqlx::{Connection, Row, SqliteConnection};
use tokio::task::JoinSet;

use crate::e2e;
use crate::helpers::{
    assert_detail, build_components, fresh_user_id, fresh_workdir, host_command, repo_root,
    serve_on, shop_bin, staff_token, unique_suffix, user_token, Engine, TestApp, TEST_PRIVATE_KEY,
    TEST_PUBLIC_KEY,
};

/// The services with a SQLite database, as labelled in runtime-config.toml.
const SERVICES: [&str; 4] = ["products", "accounts", "cart", "orders"];

/// A password the accounts service accepts.
const PASSWORD: &str = "correct horse battery";

/// `shop up --no-migrate` in `workdir`, on the repository's manifest and runtime config.
fn start_unmigrated(workdir: &Path) -> TestApp {
    build_components();
    let mut cmd = host_command(workdir);
    cmd.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--no-watch",
        "--no-migrate",
    ]);
    let manifest = repo_root().join("spin.toml");
    let (app, _) = serve_on(Engine::Sqlite, cmd, workdir, &manifest, &[]).expect("SQLite host");
    app
}

/// A second client of the same host, for a concurrent task.
fn client_of(app: &TestApp) -> TestApp {
    TestApp {
        base: app.base.clone(),
        engine: app.engine,
        client: app.client.clone(),
    }
}

/// The SQLite file of `service` under a host's working folder (runtime-config.toml's paths).
fn database_file(workdir: &Path, service: &str) -> PathBuf {
    workdir.join(".shop").join(format!("{service}.db"))
}

/// The tables of a SQLite file, by name.
async fn tables(file: &Path) -> Vec<String> {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=ro", file.display()))
        .await
        .unwrap_or_else(|err| panic!("open {}: {err}", file.display()));
    let rows = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.iter()
        .map(|row| row.get::<String, _>("name"))
        .collect()
}

/// The `(version, success)` rows of sqlx's ledger in a SQLite file.
async fn ledger(file: &Path) -> Vec<(i64, bool)> {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=ro", file.display()))
        .await
        .unwrap();
    let rows = sqlx::query("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|err| panic!("no ledger in {}: {err}", file.display()));
    rows.iter()
        .map(|row| (row.get("version"), row.get("success")))
        .collect()
}

/// The versions of `service`'s SQLite migration files, oldest first.
fn migration_versions(service: &str) -> Vec<i64> {
    let dir = repo_root().join("migrations").join(service).join("sqlite");
    let mut versions: Vec<i64> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .map(|name| name.split('_').next().unwrap().parse().unwrap())
        .collect();
    versions.sort();
    versions
}

/// Asserts that every service's file records each of its migrations once, as applied.
async fn assert_fully_migrated(file_of: impl Fn(&str) -> PathBuf) {
    for service in SERVICES {
        let expected: Vec<(i64, bool)> = migration_versions(service)
            .into_iter()
            .map(|version| (version, true))
            .collect();
        assert_eq!(ledger(&file_of(service)).await, expected, "{service}");
    }
}

/// `shop migrate` in `workdir` with `extra` arguments.
fn shop_migrate(workdir: &Path, extra: &[&str]) -> Output {
    std::process::Command::new(shop_bin())
        .current_dir(workdir)
        .env("SPIN_VARIABLE_JWT_PRIVATE_KEY", TEST_PRIVATE_KEY)
        .env("SPIN_VARIABLE_JWT_PUBLIC_KEY", TEST_PUBLIC_KEY)
        .arg("migrate")
        .arg("--manifest")
        .arg(repo_root().join("spin.toml"))
        .args(extra)
        .output()
        .expect("run shop migrate")
}

#[track_caller]
fn assert_succeeded(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Forty first requests at once, to all four services of a host that made no schema: each
/// answers as usual, each database ends with its migrations applied once, and `shop migrate`
/// afterwards accepts the ledger the services wrote (same checksums) and finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_make_each_schema_once() {
    let workdir = fresh_workdir("nomigrate-race");
    let app = start_unmigrated(&workdir);
    for service in SERVICES {
        let file = database_file(&workdir, service);
        assert_eq!(
            tables(&file).await,
            Vec::<String>::new(),
            "{service} starts empty"
        );
    }

    let mut tasks = JoinSet::new();
    for i in 0..8 {
        let app1 = client_of(&app);
        tasks.spawn(async move { ("list products", app1.get("/api/products/", None).await, 200) });
        let app2 = client_of(&app);
        tasks.spawn(async move {
            let username = format!("first{i}{}", unique_suffix());
            let body = json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
            ("register", app2.json("POST", "/api/accounts/register/", None, &body).await, 201)
        });
        let app3 = client_of(&app);
        tasks.spawn(async move {
            let token = user_token(fresh_user_id());
            ("cart", app3.get("/api/carts/", Some(&token)).await, 200)
        });
        let app4 = client_of(&app);
        tasks.spawn(async move {
            let token = user_token(fresh_user_id());
            ("orders", app4.get("/api/orders/", Some(&token)).await, 200)
        });
        let app5 = client_of(&app);
        tasks.spawn(async move {
            let body = json!({"name": format!("First {i}"), "price": "1.50", "stock": 3});
            let token = staff_token();
            (
                "create product",
                app5.json("POST", "/api/products/", Some(&token), &body)
                    .await,
                201,
            )
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (what, answer, expected) = done.unwrap();
        assert_eq!(answer.status, expected, "{what}: {:?}", answer.body);
    }
    let listed = app.get("/api/products/", None).await;
    assert_eq!(listed.body["count"], 8, "{:?}", listed.body);

    assert_fully_migrated(|service| database_file(&workdir, service)).await;
    let migrated = shop_migrate(&workdir, &[]);
    assert_succeeded(&migrated, "shop migrate on a schema the services made");
    assert_fully_migrated(|service| database_file(&workdir, service)).await;
}

/// Every route of the contract, in a user's and an admin's order, on a host that applied no
/// migrations: the services' own schema serves all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_on_a_schema_the_services_made() {
    let workdir = fresh_workdir("nomigrate-walk");
    let app = start_unmigrated(&workdir);
    let staff = staff_token();

    // Accounts.
    let username = format!("walker{}", unique_suffix());
    let register = app.json("POST", "/api/accounts/register/", None, &json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD, "address": "1 Walk Way"})).await;
    assert_eq!(register.status, 201, "{:?}", register.body);
    let login = app
        .json(
            "POST",
            "/api/accounts/login/",
            None,
            &json!({"username": username, "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    let refresh = app
        .json(
            "POST",
            "/api/accounts/token/refresh/",
            None,
            &json!({"refresh": login.body["refresh"]}),
        )
        .await;
    assert_eq!(refresh.status, 200, "{:?}", refresh.body);
    let token = refresh.body["access"].as_str().unwrap().to_owned();
    let profile = app.get("/api/accounts/profile/", Some(&token)).await;
    assert_eq!(profile.status, 200, "{:?}", profile.body);
    assert_eq!(profile.body["username"], username.as_str());
    let patched = app
        .json(
            "PATCH",
            "/api/accounts/profile/",
            Some(&token),
            &json!({"first_name": "Wal"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    let put = app
        .json(
            "PUT",
            "/api/accounts/profile/",
            Some(&token),
            &json!({"last_name": "Ker", "address": "2 Walk Way"}),
        )
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_eq!(put.body["first_name"], "Wal");

    // Products.
    let made = app
        .json(
            "POST",
            "/api/products/",
            Some(&staff),
            &json!({"name": "Walking stick", "price": "12.50", "stock": 4}),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let id = made.body["id"].as_i64().unwrap();
    let path = format!("/api/products/{id}/");
    assert_eq!(app.get(&path, None).await.status, 200);
    let patched = app
        .json("PATCH", &path, Some(&staff), &json!({"stock": 5}))
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    let put = app
        .json(
            "PUT",
            &path,
            Some(&staff),
            &json!({"name": "Walking stick", "description": "Oak", "price": "12.50", "stock": 5}),
        )
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    let filtered = app
        .get(
            "/api/products/?search=walking&min_price=1&in_stock=true&ordering=-price",
            None,
        )
        .await;
    assert_eq!(filtered.status, 200, "{:?}", filtered.body);
    assert_eq!(filtered.body["count"], 1);
    let doomed = app
        .json(
            "POST",
            "/api/products/",
            Some(&staff),
            &json!({"name": "Doomed", "price": "1.00", "stock": 1}),
        )
        .await;
    let doomed_path = format!("/api/products/{}/", doomed.body["id"]);
    let deleted = app.send("DELETE", &doomed_path, Some(&staff), None).await;
    assert_eq!(deleted.status, 204);
    assert_detail(&app.get(&doomed_path, None).await, 404);

    // Carts.
    assert_eq!(app.get("/api/carts/", Some(&token)).await.status, 200);
    let add = |quantity: i64| json!({"product_id": id, "quantity": quantity});
    let added = app
        .json("POST", "/api/carts/add_item/", Some(&token), &add(2))
        .await;
    assert_eq!(added.status, 200, "{:?}", added.body);
    assert_eq!(added.body["total"], "25.00");
    let updated = app
        .json("PUT", "/api/carts/update_quantity/", Some(&token), &add(3))
        .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["item_count"], 3);
    let removed = app
        .json(
            "POST",
            "/api/carts/remove_item/",
            Some(&token),
            &json!({"product_id": id}),
        )
        .await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    app.add_to_cart(&token, id, 2).await;

    // Orders.
    let placed = app
        .json("POST", "/api/orders/", Some(&token), &json!({}))
        .await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    assert_eq!(placed.body["shipping_address"], "2 Walk Way");
    assert_eq!(app.stock_of(id).await, 3);
    let order = format!("/api/orders/{}/", placed.body["id"]);
    let listed = app.get("/api/orders/", Some(&token)).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.body["count"], 1);
    assert_eq!(app.get(&order, Some(&token)).await.status, 200);
    let status = app
        .json(
            "POST",
            &format!("{order}status/"),
            Some(&staff),
            &json!({"status": "processing"}),
        )
        .await;
    assert_eq!(status.status, 200, "{:?}", status.body);
    let cancelled = app
        .send("POST", &format!("{order}cancel/"), Some(&token), None)
        .await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(app.stock_of(id).await, 5);
    let staff_view = app.get("/api/orders/?status=cancelled", Some(&staff)).await;
    assert_eq!(staff_view.status, 200, "{:?}", staff_view.body);

    // Documentation and health.
    assert_eq!(app.get("/api/schema/", None).await.status, 200);
    let docs = app
        .client
        .get(format!("{}/api/docs/", app.base))
        .send()
        .await;
    assert_eq!(docs.unwrap().status(), 200);
    let health = app.client.get(format!("{}/healthz", app.base)).send().await;
    assert_eq!(health.unwrap().status(), 200);

    assert_fully_migrated(|service| database_file(&workdir, service)).await;
}

/// `shop migrate` applies every service's migrations to the SQLite files a runtime config
/// names (the step before `spin up --runtime-config-file`), and again finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_to_the_files_of_a_runtime_config() {
    let workdir = fresh_workdir("migrate-rc");
    let config: String = SERVICES
        .iter()
        .map(|service| {
            format!(
                "[sqlite_database.{service}]\ntype = \"spin\"\npath = \"data/{service}-file.db\"\n"
            )
        })
        .collect();
    std::fs::write(workdir.join("rc.toml"), config).unwrap();
    let file_of = |service: &str| workdir.join("data").join(format!("{service}-file.db"));

    for round in ["first", "second"] {
        let output = shop_migrate(&workdir, &["--runtime-config", "rc.toml"]);
        assert_succeeded(&output, &format!("{round} shop migrate"));
        assert_fully_migrated(file_of).await;
    }
    assert!(tables(&file_of("products"))
        .await
        .contains(&"products".to_owned()));
    assert!(tables(&file_of("orders"))
        .await
        .contains(&"checkouts".to_owned()));
    assert!(
        !workdir.join(".shop").join("products.db").exists(),
        "the default files were left alone"
    );
}

e2e!(unknown_paths_answer_the_json_404);

/// Paths no service owns answer the contract's 404 body, whatever the method.
async fn unknown_paths_answer_the_json_404(app: TestApp) {
    for (method, path) in [
        ("GET", "/api/nope/"),
        ("POST", "/api/nope/"),
        ("GET", "/"),
        ("GET", "/api/"),
        ("DELETE", "/some/deep/path"),
        ("GET", "/api/schema-not/"),
    ] {
        let answer = app.send(method, path, None, None).await;
        assert_detail(&answer, 404);
        assert_eq!(
            answer.body,
            json!({"detail": "Not found."}),
            "{method} {path}"
        );
    }
}

/// A database an older build migrated (accounts before its newest migration) served by the
/// current build under no host migrations: the service adds what it lacks on first use (a
/// column, here, inside the login's transaction) and answers as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_schema_is_brought_up_to_date_by_its_service() {
    let workdir = fresh_workdir("nomigrate-upgrade");
    let versions = migration_versions("accounts");
    assert!(
        versions.len() >= 2,
        "accounts has a newer migration to apply"
    );
    let source = repo_root().join("migrations/accounts/sqlite");
    let older = workdir.join("older-migrations");
    std::fs::create_dir_all(&older).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with(&versions.last().unwrap().to_string()) {
            std::fs::copy(&path, older.join(&name)).unwrap();
        }
    }
    let file = database_file(&workdir, "accounts");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    let migrator = sqlx::migrate::Migrator::new(older.as_path()).await.unwrap();
    migrator.run(&mut conn).await.unwrap();
    drop(conn);
    let expected_before = versions.len() - 1;
    assert_eq!(ledger(&file).await.len(), expected_before);

    let app = start_unmigrated(&workdir);
    let username = format!("upgraded{}", unique_suffix());
    let body = json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
    let register = app
        .json("POST", "/api/accounts/register/", None, &body)
        .await;
    assert_eq!(register.status, 201, "{:?}", register.body);
    let wrong = json!({"username": username, "password": "not the password"});
    let failed = app.json("POST", "/api/accounts/login/", None, &wrong).await;
    assert_eq!(failed.status, 401, "{:?}", failed.body);
    let right = json!({"username": username, "password": PASSWORD});
    let login = app.json("POST", "/api/accounts/login/", None, &right).await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    let expected: Vec<(i64, bool)> = versions.iter().map(|v| (*v, true)).collect();
    assert_eq!(ledger(&file).await, expected);
}
