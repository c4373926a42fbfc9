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

/// A client that gives up on its request (a timeout, a closed tab) leaves a line in the host's
/// log all the same: a 499 naming the request, its component and how long it had run, then,
/// once its guest has finished (it runs to its end: a checkout ends as it would have), a line
/// that says so. Before, such a request left no line at all, and a stalled checkout that made
/// its client give up was invisible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_goes_away_is_logged_and_its_guest_finishes() {
    build_components();
    let workdir = fresh_workdir("client-gone");
    let products = repo_root().join("target/wasm32-wasip2/release/products.wasm");
    let manifest = write_test_manifest(&workdir, &products, &["slow"]);
    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0"]);
    let host = spawn_serving(cmd, &workdir, &manifest);
    wait_healthy(&host.base);

    let addr = host.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request =
        format!("GET /test/slow/?ms=1500 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    // The guest is sleeping: the client closes its connection without waiting for the answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);

    let logged = |text: &str| {
        read_log_of(&host.log)
            .lines()
            .any(|line| line.contains(text))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(logged("status=499") && logged("whose client went away has finished"))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = read_log_of(&host.log);
    let gone = log
        .lines()
        .find(|line| line.contains("status=499"))
        .unwrap_or_else(|| panic!("no 499 line for the request whose client left; log:\n{log}"));
    for part in [
        "method=GET",
        "path=/test/slow/",
        "component=slow",
        "reason=\"client went away\"",
    ] {
        assert!(gone.contains(part), "{part} missing from {gone:?}");
    }
    let finished = log
        .lines()
        .find(|line| line.contains("whose client went away has finished"))
        .unwrap_or_else(|| panic!("the orphaned guest's end was not logged; log:\n{log}"));
    assert!(finished.contains("component=slow"), "{finished:?}");
    // The guest slept its 1.5 s to the end: it was not stopped with its request.
    let slept = finished
        .split("duration=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default();
    let seconds = slept.strip_suffix('s').and_then(|s| s.parse::<f64>().ok());
    assert!(
        seconds.is_some_and(|seconds| seconds >= 1.4),
        "the guest ran {slept}, not its 1.5 s: {finished:?}"
    );
    // One line per request: the request was not logged again as answered.
    assert_eq!(
        log.lines()
            .filter(|line| line.contains("path=/test/slow/"))
            .count(),
        1,
        "log:\n{log}"
    );
}
