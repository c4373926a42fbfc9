//! Canary and rollback through the real CLI: a 20% canary of products (variant B) answers about
//! 20% of the requests, `shop promote` gives it all of them, `shop rollback` none, while 32
//! clients keep calling and not one request fails; the kept versions stay on disk, bounded,
//! across a restart; what cannot be done is a clear 4xx.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

const TOKEN: &str = "canary-test-admin-token-0123456789";
const CLIENTS: usize = 32;
const SAMPLE: usize = 500;

/// A host serving products from a copy of `products` in a fresh folder, with its admin API.
struct CanaryHost {
    workdir: PathBuf,
    manifest: PathBuf,
    token_file: PathBuf,
    host: SpawnedHost,
    client: reqwest::Client,
}

impl CanaryHost {
    fn start(label: &str, products: &[u8]) -> Self {
        build_components();
        let workdir = fresh_workdir(label);
        let source = workdir.join("products.wasm");
        std::fs::write(&source, products).unwrap();
        let manifest = write_test_manifest(&workdir, &source, &[]);
        let token_file = workdir.join("admin-token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let host = serve(&workdir, &manifest, &token_file);
        Self {
            workdir,
            manifest,
            token_file,
            host,
            client: reqwest::Client::new(),
        }
    }

    fn base(&self) -> &str {
        &self.host.base
    }

    fn admin(&self) -> &str {
        self.host.admin.as_deref().expect("the admin API's address")
    }

    /// Runs `shop ARGS --admin ... --token-file ...` and returns whether it succeeded, with
    /// its stdout and stderr.
    async fn shop(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = host_command(&self.workdir);
        cmd.args(args)
            .args(["--admin", self.admin()])
            .arg("--token-file")
            .arg(&self.token_file);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// `shop ARGS`, which must succeed.
    async fn shop_ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.shop(args).await;
        assert!(ok, "shop {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }

    /// The admin API's answer to `method` on `/_admin/{path}` with `body`.
    async fn admin_call(&self, method: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = self
            .client
            .request(method, format!("{}/_admin/{path}", self.admin()))
            .bearer_auth(TOKEN)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Products in `GET /_admin/components`.
    async fn products_entry(&self) -> Value {
        let (status, listed) = self.admin_call("GET", "components", vec![]).await;
        assert_eq!(status, 200, "{listed}");
        listed[0].clone()
    }

    /// How many of `SAMPLE` catalogue answers came from variant B (sent 10 at a time).
    async fn answers_from_b(&self) -> usize {
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (client, base) = (self.client.clone(), self.base().to_string());
            tasks.push(tokio::spawn(async move {
                let mut from_b = 0;
                for _ in 0..SAMPLE / 10 {
                    let res = client
                        .get(format!("{base}/api/products/"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 200);
                    from_b += usize::from(variant_of(&res) == 'b');
                }
                from_b
            }));
        }
        let mut from_b = 0;
        for task in tasks {
            from_b += task.await.unwrap();
        }
        from_b
    }
}

/// `shop up` on `manifest` in `workdir` with the admin API, healthy.
fn serve(workdir: &Path, manifest: &Path, token_file: &Path) -> SpawnedHost {
    let mut cmd = host_command(workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0", "--no-watch"])
        .args(["--admin-listen", "127.0.0.1:0", "--admin-token-file"])
        .arg(token_file);
    let host = spawn_serving(cmd, workdir, manifest);
    wait_healthy(&host.base);
    host
}

/// Clients that call the catalogue until stopped, and note every failed request.
struct Load {
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<usize>>,
}

impl Load {
    fn start(client: &reqwest::Client, base: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..CLIENTS)
            .map(|_| {
                let (client, base) = (client.clone(), base.to_string());
                let (stop, failures) = (stop.clone(), failures.clone());
                tokio::spawn(async move {
                    let mut answered = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let failure = match client.get(format!("{base}/api/products/")).send().await
                        {
                            Ok(res) if res.status() == 200 => {
                                res.bytes().await.err().map(|err| format!("body: {err}"))
                            }
                            Ok(res) => Some(format!("status {}", res.status())),
                            Err(err) => Some(err.to_string()),
                        };
                        match failure {
                            Some(failure) => failures.lock().unwrap().push(failure),
                            None => answered += 1,
                        }
                    }
                    answered
                })
            })
            .collect();
        Self {
            stop,
            failures,
            tasks,
        }
    }

    /// Stops the clients; returns how many requests they had answered, once none failed.
    async fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let mut answered = 0;
        for task in self.tasks {
            answered += task.await.unwrap();
        }
        let failures = self.failures.lock().unwrap();
        assert!(
            failures.is_empty(),
            "{} requests failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(10)]
        );
        answered
    }
}

/// The built products (variant A).
fn products_a() -> Vec<u8> {
    build_components();
    std::fs::read(repo_root().join("target/wasm32-wasip2/release/products.wasm")).unwrap()
}

/// `bytes`, a component, with a custom section naming `n` appended: the same code, another
/// version.
fn another_version(bytes: &[u8], n: u8) -> Vec<u8> {
    let name = b"shop-test-version";
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(u8::try_from(1 + name.len() + 1).unwrap());
    out.push(u8::try_from(name.len()).unwrap());
    out.extend_from_slice(name);
    out.push(n);
    out
}

/// The kept version of `entry` with `role`.
fn with_role<'a>(entry: &'a Value, role: &str) -> &'a Value {
    entry["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["role"] == role)
        .unwrap_or_else(|| panic!("no {role} version in {entry}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_takes_its_share_then_promote_and_rollback_move_all_traffic_without_a_failure() {
    let host = CanaryHost::start("canary", &products_a());
    let b = variant_b();
    let b = b.to_str().unwrap();
    assert_eq!(host.answers_from_b().await, 0);
    let load = Load::start(&host.client, host.base());

    let started = host
        .shop_ok(&["swap", "products", b, "--canary", "20"])
        .await;
    assert!(started.contains("\"share\":20"), "{started}");
    let from_b = host.answers_from_b().await;
    eprintln!("a 20% canary answered {from_b} of {SAMPLE}");
    assert!(
        (SAMPLE * 12 / 100..=SAMPLE * 28 / 100).contains(&from_b),
        "a 20% canary answered {from_b} of {SAMPLE}"
    );
    let entry = host.products_entry().await;
    let (stable, canary) = (with_role(&entry, "stable"), with_role(&entry, "canary"));
    assert_eq!(
        (stable["share"].as_u64(), canary["share"].as_u64()),
        (Some(80), Some(20))
    );
    assert!(
        canary["requests"].as_u64().unwrap() >= from_b as u64,
        "{entry}"
    );
    assert_eq!(canary["error_rate"], 0.0, "{entry}");
    assert_eq!(stable["error_rate"], 0.0, "{entry}");
    let version_a = stable["sha256"].as_str().unwrap().to_string();
    let version_b = canary["sha256"].as_str().unwrap().to_string();

    host.shop_ok(&["promote", "products"]).await;
    assert_eq!(host.answers_from_b().await, SAMPLE, "after the promotion");
    let entry = host.products_entry().await;
    assert_eq!(entry["version"], version_b.as_str(), "{entry}");
    assert_eq!(with_role(&entry, "kept")["sha256"], version_a.as_str());
    assert!(entry["canary"].is_null(), "{entry}");

    // Without a canary, a rollback goes back to the version before.
    host.shop_ok(&["rollback", "products"]).await;
    assert_eq!(host.answers_from_b().await, 0, "after the rollback");
    assert_eq!(host.products_entry().await["version"], version_a.as_str());

    // With one, it drops the canary.
    host.shop_ok(&["swap", "products", b, "--canary", "50"])
        .await;
    assert!(host.answers_from_b().await > 0);
    host.shop_ok(&["rollback", "products"]).await;
    assert_eq!(host.answers_from_b().await, 0, "after dropping the canary");

    let answered = load.stop().await;
    eprintln!("{answered} answers to {CLIENTS} clients throughout");
    assert!(answered >= SAMPLE, "only {answered} answers");
    for version in [&version_a, &version_b] {
        let kept = host
            .workdir
            .join(format!(".shop/versions/products/{version}.wasm"));
        assert!(kept.exists(), "{} is not kept", kept.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_five_versions_are_kept_on_disk_and_a_restarted_host_rolls_back_to_them() {
    let a = products_a();
    let mut host = CanaryHost::start("canary-kept", &a);
    let mut swapped = Vec::new();
    for n in 1..=6 {
        let (status, body) = host
            .admin_call("PUT", "components/products", another_version(&a, n))
            .await;
        assert_eq!(status, 200, "swap {n}: {body}");
        swapped.push(body["version"].as_str().unwrap().to_string());
    }
    let entry = host.products_entry().await;
    let listed: Vec<&str> = entry["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        swapped[1..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    let folder = host.workdir.join(".shop/versions/products");
    let mut on_disk: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = swapped[1..].iter().map(|v| format!("{v}.wasm")).collect();
    expected.sort();
    assert_eq!(on_disk, expected);

    // A restarted host serves its source (A) and can still go back to the last swapped in.
    // SAFETY: kill(2) on the host this test started; it touches no memory.
    unsafe { libc::kill(host.host.pid as i32, libc::SIGTERM) };
    host.host
        .exited
        .recv_timeout(Duration::from_secs(30))
        .unwrap();
    host.host = serve(&host.workdir, &host.manifest, &host.token_file);
    let entry = host.products_entry().await;
    assert_eq!(entry["versions"].as_array().unwrap().len(), 5, "{entry}");
    assert_ne!(entry["version"], swapped[5].as_str(), "{entry}");
    let (status, body) = host
        .admin_call("POST", "components/products/rollback", vec![])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], swapped[5].as_str(), "{body}");
    let res = host
        .client
        .get(format!("{}/api/products/", host.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_done_is_a_clear_4xx_and_what_served_serves_on() {
    let a = products_a();
    let host = CanaryHost::start("canary-errors", &a);
    // Refused before the upload is read: a small body, which a closing connection cannot cut.
    let small = || b"\0asm".to_vec();
    let refusals = [
        (
            "POST",
            "components/products/rollback",
            vec![],
            409,
            "no kept version",
        ),
        (
            "POST",
            "components/products/promote",
            vec![],
            409,
            "no canary",
        ),
        (
            "POST",
            "components/nothing/rollback",
            vec![],
            404,
            "nothing",
        ),
        (
            "PUT",
            "components/nothing/canary?percent=20",
            small(),
            404,
            "nothing",
        ),
        ("PUT", "components/products/canary", small(), 400, "1..99"),
        (
            "PUT",
            "components/products/canary?percent=0",
            small(),
            400,
            "1 to 99",
        ),
        (
            "PUT",
            "components/products/canary?percent=100",
            small(),
            400,
            "1 to 99",
        ),
        (
            "PUT",
            "components/products/canary?percent=x",
            small(),
            400,
            "1 to 99",
        ),
        (
            "PUT",
            "components/products/canary?percent=20",
            a.clone(),
            409,
            "stable version",
        ),
        (
            "PUT",
            "components/products/canary?percent=20",
            small(),
            400,
            "products",
        ),
        ("GET", "components/products/promote", vec![], 405, "GET"),
        (
            "POST",
            "components/products/retire",
            vec![],
            404,
            "Not found",
        ),
    ];
    for (method, path, body, status, says) in refusals {
        let (got, answer) = host.admin_call(method, path, body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{method} {path}: {answer}");
    }
    let entry = host.products_entry().await;
    assert!(entry["canary"].is_null(), "{entry}");
    assert_eq!(entry["versions"].as_array().unwrap().len(), 1, "{entry}");

    // The CLI says the same, and checks the share before it sends anything.
    let (ok, _, stderr) = host.shop(&["rollback", "products"]).await;
    assert!(!ok && stderr.contains("409"), "{stderr}");
    let (ok, _, stderr) = host
        .shop(&["swap", "products", "products.wasm", "--canary", "150"])
        .await;
    assert!(!ok && stderr.contains("1 to 99"), "{stderr}");
}
