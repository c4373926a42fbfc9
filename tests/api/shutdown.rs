//! Graceful shutdown: on SIGTERM the host stops accepting, answers every request it has
//! accepted, and exits 0.

use std::time::{Duration, Instant};

use crate::helpers::*;

/// How long each request of the test stays in flight (the `slow` test component sleeps).
const IN_FLIGHT_MS: u64 = 6000;

/// How many requests are in flight when SIGTERM arrives, each on its own connection.
const REQUESTS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_accepted_request_then_exits_0() {
    build_components();
    let workdir = fresh_workdir("shutdown");
    let products = repo_root().join("target/wasm32-wasip2/release/products.wasm");
    let manifest = write_test_manifest(&workdir, &products, &["slow"]);
    let mut cmd = host_command(&workdir);
    // Every one of the requests must be admitted: this tests shutdown, not the admission bound.
    let admitted = (2 * REQUESTS).to_string();
    cmd.args(["up", "--listen", "127.0.0.1:0", "--shutdown-timeout", "20s"])
        .args(["--max-concurrent-requests", &admitted])
        // All from one address: its own bound would turn some away.
        .args(["--max-requests-per-client", &admitted])
        .args(["--max-connections-per-client", &admitted]);
    let host = spawn_serving(cmd, &workdir, &manifest);
    wait_healthy(&host.base);

    // A client per request, each on its own connection, all in flight at once: a request counts
    // as accepted once its connection is open and the request written.
    let addr = host.base.trim_start_matches("http://").to_string();
    let sent = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let mut requests = Vec::new();
    for i in 0..REQUESTS {
        let (addr, sent) = (addr.clone(), sent.clone());
        requests.push(tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let path = if i % 3 == 0 {
                // Fast requests too, answered well before the signal.
                "/api/products/".to_string()
            } else {
                format!("/test/slow/?ms={IN_FLIGHT_MS}")
            };
            let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            sent.add_permits(1);
            let mut answer = Vec::new();
            stream
                .read_to_end(&mut answer)
                .await
                .unwrap_or_else(|e| panic!("request {i} ({path}): its answer was cut: {e}"));
            (path, String::from_utf8_lossy(&answer).into_owned())
        }));
    }
    let all_sent = sent.acquire_many(REQUESTS as u32);
    tokio::time::timeout(Duration::from_secs(30), all_sent)
        .await
        .expect("the requests were sent")
        .unwrap()
        .forget();
    // Time for the host to take every connection from its backlog and read its request, even
    // on a loaded CI machine; well under what the slow requests take.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let signalled = Instant::now();
    // SAFETY: kill(2) on the host this test started.
    assert_eq!(unsafe { libc::kill(host.pid as i32, libc::SIGTERM) }, 0);

    // It stops accepting at once...
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the host still accepts connections after SIGTERM"
    );

    // ...answers every request it accepted...
    let mut slow = 0;
    for request in requests {
        let (path, answer) = request.await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{path} got no full answer: {answer:?}"
        );
        if path.starts_with("/test/slow") {
            slow += 1;
            assert!(
                answer.contains(&format!("\"slept_ms\":{IN_FLIGHT_MS}")),
                "{path}: {answer:?}"
            );
        }
    }
    assert_eq!(slow, REQUESTS - REQUESTS.div_ceil(3));

    // ...and exits 0 once they are done, not at the end of its shutdown timeout.
    let status = host
        .exited
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("the host did not exit; log:\n{}", read_log_of(&host.log)));
    assert_eq!(status.code(), Some(0), "log:\n{}", read_log_of(&host.log));
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "the host took {:?} to exit",
        signalled.elapsed()
    );
}
