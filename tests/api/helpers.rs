//! Spawns the real host (`shop up`) on a free port, serving the real components built to
//! wasm32-wasip2, against a fresh SQLite folder or a fresh Postgres database.
//!
//! One host per engine is shared by every test of the process; tests set up their own data
//! (unique names) so that they can run in parallel.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The Ed25519 private key (PKCS#8 PEM) the test hosts' accounts service signs tokens with,
/// made with `openssl genpkey -algorithm ed25519`.
pub const TEST_PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDVe/xYboFIkzg5xrNOkJm0+CS6JsGnmLI7pVQOrrB+h
-----END PRIVATE KEY-----
";

/// Its public key (SPKI PEM, `openssl pkey -pubout`), which every service verifies with.
pub const TEST_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEATQb/TOwSBWiDS1TlHuawgdmnUqwbGhRmVGtSSoby5hs=
-----END PUBLIC KEY-----
";

/// Another Ed25519 private key, unknown to the hosts: a forger's.
pub const OTHER_PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIGcvtnm4WwPkeT/p1fbsE7IGBt2y7eMqPq/wYODmAz63
-----END PRIVATE KEY-----
";

/// The public key of [`OTHER_PRIVATE_KEY`]: a valid key that is not the test pair's.
pub const OTHER_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA3mle0LTbj6Ai6ESpOb/wQ/Gn+aq4FCx9r8H3b7bJ+64=
-----END PUBLIC KEY-----
";

/// Which database engine a host runs its services on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The root of the repository (the host crate's parent directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The folder cargo builds into: `CARGO_TARGET_DIR` when set (relative to the repository's
/// root, where the tests run cargo), else `target/` there. The tests' own builds (test
/// components, variants) go under it, so that a checkout with its own target folder builds
/// nothing into another's.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => repo_root().join(dir),
        None => repo_root().join("target"),
    }
}

/// The `shop` binary cargo built for these tests.
pub fn shop_bin() -> &'static str {
    env!("CARGO_BIN_EXE_shop")
}

/// Builds every component of spin.toml to wasm32-wasip2 (release), once per test process, the
/// way the README does: `shop build`, which adds the target when the toolchain lacks it and
/// makes cart-with-products.wasm too.
pub fn build_components() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        // spin.toml's sources and cart's compose step name `target/` under the root: the
        // components must land there, whatever target folder the host was built in.
        let out = Command::new(shop_bin())
            .current_dir(repo_root())
            .env_remove("CARGO_TARGET_DIR")
            .arg("build")
            .arg("--manifest")
            .arg(repo_root().join("spin.toml"))
            .output()
            .expect("run `shop build` to build the components");
        assert!(
            out.status.success(),
            "`shop build` failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// The base URL of the Postgres server the tests use (a fresh database is made on it).
pub fn postgres_server_url() -> String {
    std::env::var("SHOP_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A host process and what a test needs to talk to it.
#[derive(Clone, Debug)]
pub struct HostInfo {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The folder the host runs in (its SQLite files and its log live there).
    #[allow(dead_code)]
    pub workdir: PathBuf,
}

/// The request deadline of the shared hosts: the host's deadline before limits were configurable.
const SHARED_HOST_REQUEST_TIMEOUT: &str = "60s";

/// The host shared by the tests for `engine`, started on first use; `None` when the engine is
/// not available here (Postgres down and not required), after a loud notice.
pub fn shared_host(engine: Engine) -> Option<HostInfo> {
    static SQLITE: OnceLock<HostInfo> = OnceLock::new();
    static POSTGRES: OnceLock<Option<HostInfo>> = OnceLock::new();
    // The stress cases (hundreds of buyers racing on 2 cores) may keep a request waiting on
    // database locks for longer than the default deadline; the limits cases test that one.
    // Every test of the process is one client address (127.0.0.1) to the shared hosts: the
    // per-client bounds get the whole host's room (tests/api/safe_defaults.rs tests them).
    let deadline = [
        "--request-timeout",
        SHARED_HOST_REQUEST_TIMEOUT,
        "--max-connections-per-client",
        "1024",
        "--max-requests-per-client",
        "256",
        "--registrations-per-client",
        "100000",
    ];
    match engine {
        Engine::Sqlite => Some(
            SQLITE
                .get_or_init(|| start_host(&deadline, "sqlite"))
                .clone(),
        ),
        Engine::Postgres => POSTGRES
            .get_or_init(|| {
                let url = fresh_postgres_database()?;
                // The suite runs several Postgres hosts at once (this one, the three of
                // `cluster`): 4 services × 8 connections each keeps them all under a default
                // server's 100 connections.
                // Hundreds of buyers racing on 8 connections wait longer than the default
                // acquire timeout (a short one, for a server that is down).
                let pool = [
                    "--database-url",
                    &url,
                    "--postgres-pool-size",
                    "8",
                    "--postgres-acquire-timeout",
                    SHARED_HOST_REQUEST_TIMEOUT,
                ];
                let args = [&deadline[..], &pool].concat();
                Some(start_host(&args, "postgres"))
            })
            .clone(),
    }
}

/// Makes a fresh database for this test run and returns its URL, or `None` (with a notice)
/// when no Postgres answers and `SHOP_REQUIRE_POSTGRES` is not set.
pub fn fresh_postgres_database() -> Option<String> {
    let server = postgres_server_url();
    let name = format!("shop_e2e_{}_{}", std::process::id(), unique_suffix());
    let psql = Command::new("psql")
        .args([
            &format!("{server}/postgres"),
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
        ])
        .arg(format!("CREATE DATABASE {name}"))
        .output();
    match psql {
        Ok(out) if out.status.success() => Some(format!("{server}/{name}")),
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => format!("psql: {e}"),
            };
            if std::env::var_os("SHOP_REQUIRE_POSTGRES").is_some() {
                panic!("Postgres is required (SHOP_REQUIRE_POSTGRES) but unavailable at {server}: {why}");
            }
            eprintln!(
                "\n*** SKIPPING the Postgres half of the e2e suite: no Postgres at {server} ({}) ***\n",
                why.trim()
            );
            None
        }
    }
}

/// A short string that differs between calls, for unique names.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:x}{:x}",
        nanos % 0xffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Starts `shop up` with `extra` arguments in a fresh working directory and waits until it
/// answers `/healthz`. The process is killed when the test process ends.
pub fn start_host(extra: &[&str], label: &str) -> HostInfo {
    build_components();
    let workdir = std::env::temp_dir().join(format!(
        "shop-e2e-{label}-{}-{}",
        std::process::id(),
        unique_suffix()
    ));
    std::fs::create_dir_all(&workdir).unwrap();
    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0"]).args(extra);
    let (base, _) = spawn_until_serving(cmd, &workdir);
    wait_healthy(&base);
    HostInfo { base, workdir }
}

/// A `shop` command in `workdir` with the test key pair; `spawn_until_serving` adds the
/// manifest.
pub fn host_command(workdir: &Path) -> Command {
    let mut cmd = Command::new(shop_bin());
    cmd.current_dir(workdir)
        .env("SPIN_VARIABLE_JWT_PRIVATE_KEY", TEST_PRIVATE_KEY)
        .env("SPIN_VARIABLE_JWT_PUBLIC_KEY", TEST_PUBLIC_KEY)
        .env("RUST_LOG", "info");
    cmd
}

/// Runs `cmd` (a `shop up ...`) from a thread that lives as long as the test process, so that
/// the kernel kills the host when the tests end (PR_SET_PDEATHSIG follows the spawning
/// thread). Returns the address from the `Serving http://...` line and the log file.
pub fn spawn_until_serving(cmd: Command, workdir: &Path) -> (String, PathBuf) {
    let host = spawn_serving(cmd, workdir, &repo_root().join("spin.toml"));
    (host.base, host.log)
}

/// Runs `cmd` (a `shop up ...`) on `manifest` on `engine`: on Postgres with `--database-url` of
/// a fresh database and `extra_postgres` arguments. Answers a client of the healthy host and
/// the operator's database URL (Postgres), or `None` when Postgres is skipped.
pub fn serve_on(
    engine: Engine,
    mut cmd: Command,
    workdir: &Path,
    manifest: &Path,
    extra_postgres: &[&str],
) -> Option<(TestApp, Option<String>)> {
    let admin_url = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => {
            let url = fresh_postgres_database()?;
            cmd.args(["--database-url", &url]).args(extra_postgres);
            Some(url)
        }
    };
    let host = spawn_serving(cmd, workdir, manifest);
    wait_healthy(&host.base);
    let app = TestApp {
        base: host.base,
        engine,
        client: reqwest::Client::new(),
    };
    Some((app, admin_url))
}

/// A host process started by [`spawn_serving`].
#[allow(dead_code)]
pub struct SpawnedHost {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Its stderr: the log.
    pub log: PathBuf,
    /// Its process id.
    pub pid: u32,
    /// `http://127.0.0.1:PORT` of its admin API, when `--admin-listen` turned it on.
    pub admin: Option<String>,
    /// Receives its exit status when it exits.
    pub exited: mpsc::Receiver<std::process::ExitStatus>,
}

/// Runs `cmd` (a `shop up ...`) on `manifest` as [`spawn_until_serving`] does, and returns the
/// host's address, log, process id and a receiver of its exit status.
pub fn spawn_serving(mut cmd: Command, workdir: &Path, manifest: &Path) -> SpawnedHost {
    cmd.arg("--manifest").arg(manifest);
    let log_path = workdir.join("host.log");
    let (tx, rx) = mpsc::channel();
    let (exit_tx, exit_rx) = mpsc::channel();
    let log = log_path.clone();
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        let log_file = std::fs::File::create(&log).unwrap();
        cmd.stdout(Stdio::piped()).stderr(log_file);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = tx.send(Err(format!("spawn shop: {e}")));
                return;
            }
        };
        let pid = child.id();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = String::new();
        let mut sent = false;
        let mut admin = None;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            seen.push_str(&line);
            seen.push('\n');
            if let Some(url) = line.trim().strip_prefix("Admin API on ") {
                admin = url.split("/_admin/").next().map(str::to_string);
            }
            if !sent {
                if let Some(addr) = line.trim().strip_prefix("Serving ") {
                    let base = addr.trim().trim_end_matches('/').to_string();
                    let _ = tx.send(Ok((base, pid, admin.take())));
                    sent = true;
                }
            }
        }
        let status = child.wait();
        if !sent {
            let _ = tx.send(Err(format!(
                "host exited ({status:?}) before serving; stdout:\n{seen}"
            )));
        } else if let Ok(status) = status {
            let _ = exit_tx.send(status);
        }
        // Keep this thread alive until the test process ends (the host dies with it).
        loop {
            std::thread::park();
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok((base, pid, admin))) => SpawnedHost {
            base,
            log: log_path,
            pid,
            admin,
            exited: exit_rx,
        },
        Ok(Err(e)) => panic!(
            "{e}\nhost log {}:\n{}",
            log_path.display(),
            read_log(&log_path)
        ),
        Err(_) => panic!(
            "host did not print its address within 120 s; log:\n{}",
            read_log(&log_path)
        ),
    }
}

/// Builds the test components of tests/components (their own workspace) to wasm32-wasip2,
/// once per test process, and returns the folder of their `.wasm` files.
pub fn build_test_components() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // `shop build` adds the wasm32-wasip2 target when the toolchain lacks it.
            build_components();
            let target = target_dir().join("test-components");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let out = Command::new(cargo)
                .current_dir(repo_root().join("tests/components"))
                .args(["build", "--target", "wasm32-wasip2", "--release"])
                .arg("--target-dir")
                .arg(&target)
                .output()
                .expect("run cargo to build the test components");
            assert!(
                out.status.success(),
                "building the test components failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            target.join("wasm32-wasip2/release")
        })
        .clone()
}

/// The `.wasm` file of test component `name` (a crate of tests/components).
pub fn test_component(name: &str) -> PathBuf {
    build_test_components().join(format!("{}.wasm", name.replace('-', "_")))
}

/// Writes, in `dir`, a manifest that serves the products component from `products` (SQLite,
/// the repository's migrations), with the accounts component its staff routes confirm tokens
/// with, and each test component of `tests` at `/test/<name>/...`.
pub fn write_test_manifest(dir: &Path, products: &Path, tests: &[&str]) -> PathBuf {
    let migrations = dir.join("migrations");
    if !migrations.exists() {
        std::os::unix::fs::symlink(repo_root().join("migrations"), &migrations).unwrap();
    }
    let accounts = repo_root()
        .join("target/wasm32-wasip2/release/accounts.wasm")
        .display()
        .to_string();
    let mut manifest = format!(
        r#"spin_manifest_version = 2

[application]
name = "shop-test"

[variables]
jwt_private_key = {{ required = true, secret = true }}
jwt_public_key = {{ required = true }}
products_database = {{ default = "products" }}
accounts_database = {{ default = "accounts" }}

[[trigger.http]]
route = "/api/products/..."
component = "products"

[component.products]
source = "{}"
sqlite_databases = ["products", "accounts"]
dependencies_inherit_configuration = true
[component.products.dependencies]
"shop:accounts/sessions@0.1.0" = {{ path = "{accounts}" }}
[component.products.variables]
products_database = "{{{{ products_database }}}}"
accounts_database = "{{{{ accounts_database }}}}"
jwt_public_key = "{{{{ jwt_public_key }}}}"

[[trigger.http]]
route = "/api/accounts/..."
component = "accounts"

[component.accounts]
source = "{accounts}"
sqlite_databases = ["accounts"]
[component.accounts.variables]
accounts_database = "{{{{ accounts_database }}}}"
jwt_private_key = "{{{{ jwt_private_key }}}}"
jwt_public_key = "{{{{ jwt_public_key }}}}"
"#,
        products.display(),
    );
    for name in tests {
        manifest.push_str(&format!(
            r#"
[[trigger.http]]
route = "/test/{name}/..."
component = "{name}"

[component.{name}]
source = "{}"
"#,
            test_component(name).display()
        ));
    }
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    path
}

/// A fresh folder for a host of one test.
pub fn fresh_workdir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "shop-e2e-{label}-{}-{}",
        std::process::id(),
        unique_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The resident and peak resident memory of process `pid`, in KiB (from /proc).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The host's log so far.
pub fn read_log_of(path: &Path) -> String {
    read_log(path)
}

/// The host's log so far. The host writes its log in batches (every 20 ms, `FLUSH_EVERY` in
/// host/src/telemetry/log_writer.rs; at once for warnings and errors): what it logged before
/// this call is in the file after a few of those.
fn read_log(path: &Path) -> String {
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// Polls `GET /healthz` until it answers 200 (at most 30 s).
pub fn wait_healthy(base: &str) {
    let addr = base.trim_start_matches("http://").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = TcpStream::connect(&addr) {
            let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(req.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 200")
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{base}/healthz never answered 200"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client of one shared host.
pub struct TestApp {
    pub base: String,
    #[allow(dead_code)]
    pub engine: Engine,
    pub client: reqwest::Client,
}

/// The shared host for `engine` with a fresh client, or `None` when that engine is skipped.
pub fn app(engine: Engine) -> Option<TestApp> {
    let host = shared_host(engine)?;
    Some(TestApp {
        base: host.base,
        engine,
        client: reqwest::Client::new(),
    })
}

/// An answer: status, headers and the body parsed as JSON (`Value::Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Answer {
    /// A header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Mints an EdDSA token signed with `private_key` (a PKCS#8 PEM, say [`TEST_PRIVATE_KEY`]).
pub fn token_with(
    private_key: &str,
    user_id: i64,
    is_staff: bool,
    token_type: &str,
    ttl_secs: i64,
) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &token_claims(user_id, is_staff, token_type, ttl_secs),
        &jsonwebtoken::EncodingKey::from_ed_pem(private_key.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Mints an HS256 token with `secret` as the HMAC key: what a service that holds only the
/// public key could make, if verification trusted the token's `alg`.
pub fn hs256_token_with(
    secret: &str,
    user_id: i64,
    is_staff: bool,
    token_type: &str,
    ttl_secs: i64,
) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &token_claims(user_id, is_staff, token_type, ttl_secs),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The claims of the shop's tokens (simplejwt's, plus `is_staff`), valid for `ttl_secs`.
fn token_claims(user_id: i64, is_staff: bool, token_type: &str, ttl_secs: i64) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    serde_json::json!({
        "sub": user_id.to_string(),
        "iat": now,
        "exp": now + ttl_secs,
        "jti": unique_suffix(),
        "token_type": token_type,
        "is_staff": is_staff,
    })
}

/// An access token of a staff user.
pub fn staff_token() -> String {
    token_with(TEST_PRIVATE_KEY, 1, true, "access", 900)
}

/// An access token of an ordinary user.
pub fn user_token(user_id: i64) -> String {
    token_with(TEST_PRIVATE_KEY, user_id, false, "access", 900)
}

impl TestApp {
    /// Sends `method path` with an optional bearer token and an optional raw body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let res = req.send().await.expect("request reached the host");
        answer_of(res, path).await
    }

    /// GET without a body.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send("GET", path, token, None).await
    }

    /// A request with a JSON body.
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Answer {
        self.send(
            method,
            path,
            token,
            Some(("application/json", serde_json::to_vec(body).unwrap())),
        )
        .await
    }

    /// Creates a product as staff and returns its JSON; panics unless the answer is 201.
    pub async fn create_product(&self, body: Value) -> Value {
        let answer = self
            .json("POST", "/api/products/", Some(&staff_token()), &body)
            .await;
        assert_eq!(
            answer.status, 201,
            "create product {body}: {:?}",
            answer.body
        );
        answer.body
    }
}

/// Asserts a DRF `{"detail": ...}` error with `status`, JSON content type included.
#[track_caller]
pub fn assert_detail(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{:?}", answer.body);
    assert_json(answer);
    assert!(
        answer.body["detail"].is_string(),
        "expected {{\"detail\": ...}}, got {}",
        answer.body
    );
}

/// The integer `field` of every object in the JSON array `list` (ids of a page's results, the
/// product ids of an order's items), in order.
#[track_caller]
pub fn integers(list: &Value, field: &str) -> Vec<i64> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|item| item[field].as_i64().unwrap())
        .collect()
}

/// Asserts a 400 validation error that names each of `fields` with at least one message.
#[track_caller]
pub fn assert_field_errors(answer: &Answer, fields: &[&str]) {
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert_json(answer);
    for field in fields {
        let messages = answer.body[field]
            .as_array()
            .unwrap_or_else(|| panic!("no error for `{field}` in {}", answer.body));
        assert!(
            !messages.is_empty() && messages.iter().all(Value::is_string),
            "{}",
            answer.body
        );
    }
}

/// Asserts the answer says it is JSON.
#[track_caller]
pub fn assert_json(answer: &Answer) {
    let ct = answer.header("content-type").unwrap_or("");
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
}

/// Runs an e2e case once per engine: `e2e!(name)` makes `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! e2e {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use $crate::helpers::{app, Engine};
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = app(Engine::Sqlite) {
                    super::$case(app).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = app(Engine::Postgres) {
                    super::$case(app).await;
                }
            }
        }
    )*};
}

/// A user id no other test uses: tokens are minted, so these users exist only in their tokens.
pub fn fresh_user_id() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static NEXT: AtomicI64 = AtomicI64::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    // Far above the ids the accounts service hands out in a test run.
    1_000_000_000 + (micros % 1_000_000_000) * 100 + NEXT.fetch_add(1, Ordering::Relaxed) % 100
}

impl TestApp {
    /// Adds `quantity` of `product_id` to the cart of the token's user; panics unless 200.
    pub async fn add_to_cart(&self, token: &str, product_id: i64, quantity: i64) -> Value {
        let body = serde_json::json!({"product_id": product_id, "quantity": quantity});
        let answer = self
            .json("POST", "/api/carts/add_item/", Some(token), &body)
            .await;
        assert_eq!(answer.status, 200, "add_item {body}: {:?}", answer.body);
        answer.body
    }

    /// The stock of a product now.
    pub async fn stock_of(&self, product_id: i64) -> i64 {
        let answer = self
            .get(&format!("/api/products/{product_id}/"), None)
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.body["stock"].as_i64().unwrap()
    }
}

/// Unpadded base64url, as JWTs encode their parts: enough to hand-craft a token.
pub fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// An unsigned token (`alg: none`) with otherwise valid claims: every service must refuse it.
pub fn alg_none_token(user_id: i64, token_type: &str, is_staff: bool) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "sub": user_id.to_string(),
        "iat": now,
        "exp": now + 900,
        "jti": unique_suffix(),
        "token_type": token_type,
        "is_staff": is_staff,
    });
    let body = base64_url(claims.to_string().as_bytes());
    format!("{header}.{body}.")
}

/// Reads a whole answer; its body must be JSON (or empty). `what` names the request in panics.
pub async fn answer_of(response: reqwest::Response, what: &str) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let raw = response.bytes().await.unwrap().to_vec();
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw).unwrap_or_else(|e| {
            panic!(
                "answer to {what} is not JSON ({e}): {}",
                String::from_utf8_lossy(&raw)
            )
        })
    };
    Answer {
        status,
        headers,
        body,
        raw,
    }
}

/// The products component built with `--features variant-b`: every answer carries
/// `x-shop-variant: b`.
pub fn variant_b() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = target_dir().join("variant-b");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let out = Command::new(cargo)
                .current_dir(repo_root())
                .args([
                    "build",
                    "--target",
                    "wasm32-wasip2",
                    "--release",
                    "-p",
                    "products",
                ])
                .args(["--features", "variant-b", "--target-dir"])
                .arg(&target)
                .output()
                .expect("run cargo to build products with variant-b");
            assert!(
                out.status.success(),
                "building products with variant-b failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            target.join("wasm32-wasip2/release/products.wasm")
        })
        .clone()
}

/// Which build answered: `b` when the answer says so, else `a`.
pub fn variant_of(res: &reqwest::Response) -> char {
    match res.headers().get("x-shop-variant").map(|v| v.as_bytes()) {
        Some(b"b") => 'b',
        _ => 'a',
    }
}
