//! Limits on every request: a guest that loops, traps or allocates without bound fails its own
//! request only (504 or 503, in the API's `{"detail": ...}` shape, within the deadline), the
//! host logs which component failed and why, serves everything else on, and its memory stays
//! bounded.

use std::time::{Duration, Instant};

use crate::helpers::*;

/// The deadline the test host runs with (`--request-timeout`).
const TIMEOUT: Duration = Duration::from_secs(2);

/// The memory cap of one instance the test host runs with (`--max-memory`).
const MAX_MEMORY_MIB: u64 = 32;

/// One request of a misbehaving component: its status, body and how long it took.
async fn misbehave(
    client: &reqwest::Client,
    base: &str,
    name: &str,
) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let res = client
        .get(format!("{base}/test/{name}/"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: the request got no answer: {e}"));
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let raw = res.bytes().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{name}: content-type {content_type:?}"
    );
    let body: serde_json::Value = serde_json::from_slice(&raw)
        .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {}", String::from_utf8_lossy(&raw)));
    assert!(body["detail"].is_string(), "{name}: {body}");
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_guests_fail_only_their_own_requests() {
    build_components();
    let workdir = fresh_workdir("limits");
    let products = repo_root().join("target/wasm32-wasip2/release/products.wasm");
    let manifest = write_test_manifest(&workdir, &products, &["spin-loop", "trap", "grow"]);
    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0"])
        .args(["--request-timeout", &format!("{}s", TIMEOUT.as_secs())])
        .args(["--max-memory", &format!("{MAX_MEMORY_MIB}MiB")]);
    let host = spawn_serving(cmd, &workdir, &manifest);
    wait_healthy(&host.base);
    let base = host.base.clone();
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/api/products/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (_, peak_before) = memory_kib(host.pid);

    // Products keeps serving while the others misbehave, two at a time each, three rounds.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut serving = Vec::new();
    for _ in 0..4 {
        let (client, base, done) = (client.clone(), base.clone(), done.clone());
        serving.push(tokio::spawn(async move {
            let mut answered = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let res = client
                    .get(format!("{base}/api/products/"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200, "products failed while others misbehaved");
                res.bytes().await.unwrap();
                answered += 1;
            }
            answered
        }));
    }
    let mut failing = Vec::new();
    for _round in 0..3 {
        for name in ["spin-loop", "trap", "grow"] {
            for _ in 0..2 {
                let (client, base) = (client.clone(), base.clone());
                failing.push(tokio::spawn(async move {
                    (name, misbehave(&client, &base, name).await)
                }));
            }
        }
    }
    for task in failing {
        let (name, (status, body, took)) = task.await.unwrap();
        match name {
            "spin-loop" => {
                assert_eq!(status, 504, "{name}: {body}");
                assert!(
                    took >= TIMEOUT - Duration::from_millis(100),
                    "{name} stopped early: {took:?}"
                );
            }
            _ => assert_eq!(status, 503, "{name}: {body}"),
        }
        // Within the deadline (and its one-second grace for a guest stuck in the host), with
        // slack for a loaded machine.
        assert!(
            took < TIMEOUT + Duration::from_secs(3),
            "{name} took {took:?}"
        );
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in serving {
        let answered = task.await.unwrap();
        assert!(answered > 0, "a products client got no answer at all");
    }

    // Six instances grew to the cap at once at most: the peak stays within that and slack.
    let (rss, peak) = memory_kib(host.pid);
    let bound = peak_before + 6 * MAX_MEMORY_MIB * 1024 + 128 * 1024;
    assert!(
        peak < bound,
        "peak RSS {peak} KiB (before {peak_before} KiB, now {rss} KiB) exceeds {bound} KiB"
    );

    let log = read_log_of(&host.log);
    for (component, reason) in [
        ("spin-loop", "deadline"),
        ("trap", "trap"),
        ("grow", "memory"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("component={component}"))
                    && l.contains(&format!("reason=\"{reason}\""))),
            "the log names no failure of `{component}` ({reason}):\n{log}"
        );
    }
    // Still serving.
    assert_eq!(
        client
            .get(format!("{base}/api/products/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
