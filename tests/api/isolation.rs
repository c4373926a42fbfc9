//! Isolation between services, tried as an attacker would: a hostile build (tests/components/
//! hostile) is mounted in place of the orders service, with orders' real configuration from
//! spin.toml (which lists every service's database and variable, for Spin's composition), next
//! to the real products, cart and accounts. Every escape must be refused by the host, on both
//! engines, while the real services keep serving.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::helpers::{
    build_components, fresh_postgres_database, fresh_workdir, host_command, hs256_token_with,
    repo_root, spawn_serving, staff_token, test_component, unique_suffix, wait_healthy, Engine,
    TestApp,
};

/// A host serving the repository's spin.toml with `hostile` in place of orders.
pub struct HostileHost {
    pub app: TestApp,
    pub workdir: PathBuf,
    /// The operator's URL of the Postgres database (Postgres only).
    pub admin_url: Option<String>,
    /// The host's process id.
    pub pid: u32,
    /// The host's log.
    pub log: PathBuf,
}

impl HostileHost {
    fn start(engine: Engine) -> Option<Self> {
        Self::start_with(engine, &[])
    }

    /// [`Self::start`] with `extra` arguments to `shop up`.
    pub fn start_with(engine: Engine, extra: &[&str]) -> Option<Self> {
        build_components();
        let hostile = test_component("hostile");
        let workdir = fresh_workdir("hostile");
        let root = repo_root();
        let manifest = std::fs::read_to_string(root.join("spin.toml"))
            .unwrap()
            .replace(
                "\"target/wasm32-wasip2/release/orders.wasm\"",
                &format!("\"{}\"", hostile.display()),
            )
            .replace("\"target/", &format!("\"{}/target/", root.display()));
        let manifest_path = workdir.join("spin.toml");
        std::fs::write(&manifest_path, manifest).unwrap();
        std::fs::copy(
            root.join("runtime-config.toml"),
            workdir.join("runtime-config.toml"),
        )
        .unwrap();
        std::os::unix::fs::symlink(root.join("migrations"), workdir.join("migrations")).unwrap();
        // A data folder left open to others by an older version: it must be closed at start.
        std::fs::create_dir_all(workdir.join(".shop")).unwrap();
        std::fs::set_permissions(
            workdir.join(".shop"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();

        let mut cmd = host_command(&workdir);
        cmd.args(["up", "--listen", "127.0.0.1:0", "--no-watch"])
            .args(extra);
        let admin_url = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => {
                let url = fresh_postgres_database()?;
                cmd.args(["--database-url", &url, "--postgres-pool-size", "4"]);
                Some(url)
            }
        };
        let host = spawn_serving(cmd, &workdir, &manifest_path);
        wait_healthy(&host.base);
        let app = TestApp {
            base: host.base,
            engine,
            client: reqwest::Client::new(),
        };
        Some(Self {
            app,
            workdir,
            admin_url,
            pid: host.pid,
            log: host.log,
        })
    }

    /// Runs one attempt of the hostile build and answers its report.
    pub async fn attempt(&self, attempt: &str, arg: &str) -> String {
        let arg: String = arg
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        let answer = self
            .app
            .get(&format!("/api/orders/{attempt}/?arg={arg}"), None)
            .await;
        assert_eq!(answer.status, 200, "{attempt}: {:?}", answer.body);
        answer.body["report"].as_str().unwrap().to_string()
    }

    pub async fn assert_refused(&self, attempt: &str, arg: &str, because: &[&str]) {
        let report = self.attempt(attempt, arg).await;
        assert!(
            report.starts_with("refused: ") && because.iter().any(|b| report.contains(b)),
            "{attempt} {arg:?} must be refused with one of {because:?}; the host answered: {report}"
        );
    }

    pub async fn assert_allowed(&self, attempt: &str, arg: &str) -> String {
        let report = self.attempt(attempt, arg).await;
        assert!(
            report.starts_with("ALLOWED: "),
            "{attempt} {arg:?} is the service's own business; the host answered: {report}"
        );
        report
    }

    /// A real user registered through the real accounts service: there is a row to steal.
    pub async fn register_victim(&self) -> String {
        let username = format!("victim{}", unique_suffix());
        let body = serde_json::json!({
            "username": username, "email": format!("{username}@example.com"),
            "password": "correct horse battery",
        });
        let answer = self
            .app
            .json("POST", "/api/accounts/register/", None, &body)
            .await;
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        username
    }

    /// The real services still serve: a login, and a product made and read back.
    pub async fn assert_real_services_serve(&self, username: &str) {
        let login = serde_json::json!({"username": username, "password": "correct horse battery"});
        let answer = self
            .app
            .json("POST", "/api/accounts/login/", None, &login)
            .await;
        assert_eq!(
            answer.status, 200,
            "login after the attacks: {:?}",
            answer.body
        );
        let product = serde_json::json!({"name": "still here", "price": "1.00", "stock": 1});
        let made = self
            .app
            .json("POST", "/api/products/", Some(&staff_token()), &product)
            .await;
        assert_eq!(made.status, 201, "{:?}", made.body);
        let read = self
            .app
            .get(&format!("/api/products/{}/", made.body["id"]), None)
            .await;
        assert_eq!(read.status, 200);
    }

    /// What every engine must refuse: other services' variables, the signing key, and
    /// tokens forged with what a service holds.
    async fn assert_keys_stay_with_accounts(&self) {
        // No way around the host's interfaces: no sockets.
        let report = self.attempt("tcp", "127.0.0.1:5432").await;
        assert!(report.starts_with("refused: "), "a socket: {report}");
        for variable in [
            "jwt_private_key",
            "accounts_database",
            "products_database",
            "cart_database",
        ] {
            self.assert_refused("variable", variable, &["Undefined"])
                .await;
        }
        let report = self.assert_allowed("variable", "jwt_public_key").await;
        let public_key = report
            .split_once(" = ")
            .map(|(_, key)| key.to_string())
            .unwrap();
        assert!(public_key.contains("PUBLIC KEY"), "{public_key}");
        // What a service could mint with the only key it holds: HS256 keyed by the public key
        // (the algorithm confusion attack), and alg:none. Neither passes anywhere.
        let forged = [
            hs256_token_with(&public_key, 1, true, "access", 900),
            hs256_token_with(public_key.trim(), 1, true, "access", 900),
            crate::helpers::alg_none_token(1, "access", true),
        ];
        for token in forged {
            let product = serde_json::json!({"name": "forged", "price": "1.00", "stock": 1});
            let answer = self
                .app
                .json("POST", "/api/products/", Some(&token), &product)
                .await;
            assert_eq!(
                answer.status, 401,
                "a forged staff token: {:?}",
                answer.body
            );
            let answer = self.app.get("/api/accounts/profile/", Some(&token)).await;
            assert_eq!(answer.status, 401, "a forged token: {:?}", answer.body);
        }
    }
}

/// The SQLite refusals: the authorizer's or the attach limit's words.
const SQLITE_REFUSED: &[&str] = &["not authorized", "too many attached", "refused by the host"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_service_on_sqlite_reaches_only_its_own_database() {
    let host = HostileHost::start(Engine::Sqlite).unwrap();
    let victim = host.register_victim().await;
    let accounts_db = host.workdir.join(".shop/accounts.db");
    assert!(accounts_db.is_file());

    // Only its own label, although orders' spin.toml entry lists all four for Spin.
    host.assert_allowed("sqlite-open", "orders").await;
    for label in ["accounts", "products", "cart", "default"] {
        host.assert_refused("sqlite-open", label, &["AccessDenied"])
            .await;
    }
    host.assert_allowed("sqlite", "SELECT count(*) AS n FROM orders")
        .await;

    // Another service's file, a new file, a copy of its own elsewhere.
    let attach = format!(
        "ATTACH DATABASE '{}' AS a;;SELECT count(*) AS n FROM a.users",
        accounts_db.display()
    );
    host.assert_refused("sqlite", &attach, SQLITE_REFUSED).await;
    let planted = host.workdir.join("planted.db");
    let copy = host.workdir.join("copy.db");
    for statement in [
        format!("ATTACH '{}' AS p", planted.display()),
        format!("ATTACH 'file:{}?mode=rwc' AS p", planted.display()),
        format!("VACUUM INTO '{}'", copy.display()),
        "VACUUM".to_string(),
        "SELECT load_extension('/nonexistent/evil')".to_string(),
        "PRAGMA foreign_keys = OFF".to_string(),
        "PRAGMA writable_schema = 1".to_string(),
        "PRAGMA journal_mode = DELETE".to_string(),
        "CREATE TEMP TABLE stash (a)".to_string(),
        "CREATE TEMP TRIGGER spy AFTER INSERT ON orders BEGIN SELECT 1; END".to_string(),
        "CREATE TEMP VIEW v AS SELECT 1".to_string(),
    ] {
        host.assert_refused("sqlite", &statement, SQLITE_REFUSED)
            .await;
    }
    assert!(!planted.exists(), "ATTACH made {}", planted.display());
    assert!(!copy.exists(), "VACUUM INTO made {}", copy.display());
    // The refusals left the service's connections whole.
    host.assert_allowed("sqlite", "SELECT count(*) AS n FROM orders")
        .await;

    host.assert_keys_stay_with_accounts().await;
    host.assert_real_services_serve(&victim).await;

    // The data folder is the host user's alone, although it was left open before the start.
    assert_private(&host.workdir.join(".shop"));
}

/// Every folder under `dir` (and `dir`) is 0700 and every file 0600.
fn assert_private(dir: &Path) {
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private(&path);
        } else {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_service_on_postgres_reaches_only_its_own_schema() {
    let Some(host) = HostileHost::start(Engine::Postgres) else {
        return;
    };
    let victim = host.register_victim().await;
    let admin_url = host.admin_url.clone().unwrap();
    let database = admin_url.rsplit('/').next().unwrap().to_string();

    // It logs in as its own role, confined to its own schema.
    let who = host
        .assert_allowed(
            "pg",
            "SELECT current_user::text AS who, current_schemas(false)::text AS s",
        )
        .await;
    assert!(who.contains(&format!("{database}_orders")), "{who}");
    host.assert_allowed("pg", "SELECT count(*) AS n FROM orders")
        .await;

    const DENIED: &[&str] = &["permission denied", "must be owner", "does not exist"];
    for statements in [
        "SELECT count(*) AS n FROM accounts.users",
        "SELECT username FROM accounts.users LIMIT 1",
        "SET search_path TO accounts;;SELECT count(*) AS n FROM users",
        "CREATE TABLE products.stolen (a int)",
        "INSERT INTO products.products (name) VALUES ('x')",
        "DROP SCHEMA accounts CASCADE",
        "DROP TABLE cart.carts",
        "CREATE SCHEMA evil",
        "CREATE TABLE public.shared (a int)",
        "CREATE TEMP TABLE stash (a int)",
        "SET ROLE postgres",
        "ALTER SCHEMA accounts OWNER TO CURRENT_USER",
    ] {
        host.assert_refused("pg", statements, DENIED).await;
    }

    // No other login, server or database: not the operator's, not another service's role,
    // not another host (allowed_outbound_hosts is one server).
    let other_role = admin_url.replacen("postgres@", &format!("{database}_accounts@"), 1);
    for url in [
        admin_url.clone(),
        format!("{admin_url}?options=-c%20search_path%3Daccounts"),
        other_role,
        "postgres://postgres@10.255.255.1:5432/postgres".to_string(),
        "postgres://postgres@127.0.0.1:5433/postgres".to_string(),
    ] {
        host.assert_refused("pg-open", &url, &["only its own database"])
            .await;
    }

    // What one request sets on its session is gone for the next ones, whichever pooled
    // connection they get (the pool holds 4).
    for _ in 0..4 {
        host.assert_allowed(
            "pg",
            "SELECT set_config('application_name', 'tainted', false) AS a;;\
             SET statement_timeout = '1234ms';;SET search_path TO public",
        )
        .await;
    }
    for _ in 0..16 {
        let session = host
            .assert_allowed(
                "pg",
                "SELECT current_setting('application_name') AS a, \
                 current_setting('statement_timeout') AS t, current_schemas(false)::text AS s",
            )
            .await;
        assert!(
            !session.contains("tainted") && !session.contains("1234") && session.contains("orders"),
            "a session setting outlived its request: {session}"
        );
    }

    host.assert_keys_stay_with_accounts().await;
    host.assert_real_services_serve(&victim).await;
    // The other services' data is whole.
    let users = std::process::Command::new("psql")
        .arg(&admin_url)
        .args(["-tAc", "SELECT count(*) FROM accounts.users"])
        .output()
        .unwrap();
    assert!(users.status.success());
    assert!(
        String::from_utf8_lossy(&users.stdout)
            .trim()
            .parse::<u32>()
            .unwrap()
            >= 1
    );
}

#[test]
fn a_database_outside_allowed_outbound_hosts_stops_the_host() {
    build_components();
    let Some(url) = fresh_postgres_database() else {
        return;
    };
    let workdir = fresh_workdir("outbound");
    let mut cmd = host_command(&workdir);
    // spin.toml allows postgres://{{ db_host }}:{{ db_port }}; the environment wins over
    // --database-url for those, so the database is outside what the services may reach.
    cmd.env("SPIN_VARIABLE_DB_PORT", "6543")
        .args(["up", "--listen", "127.0.0.1:0", "--database-url", &url])
        .arg("--manifest")
        .arg(repo_root().join("spin.toml"));
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the host started: {stderr}");
    assert!(
        stderr.contains("allowed_outbound_hosts") && stderr.contains("db_port"),
        "{stderr}"
    );
}
