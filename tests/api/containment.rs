//! Containment all the way down, tried as an attacker who owns one component's build would: a
//! hostile build (tests/components/hostile) mounted in place of orders tries to crash, starve or
//! outlive its request on the host through what it is handed (its database connection, its
//! output), and a build that imports what its manifest entry never declared
//! (tests/components/intruder) tries to call other services. After each attack the real
//! services serve normally and the host's memory stays bounded.

use std::time::{Duration, Instant};

use crate::helpers::{
    build_components, fresh_workdir, host_command, memory_kib, read_log_of, repo_root,
    spawn_serving, test_component, wait_healthy, Engine,
};
use crate::isolation::HostileHost;

/// The host's resident memory ceiling after every attack.
const MAX_RSS_KIB: u64 = 150 * 1024;

/// What the host answers an oversized or refused statement with, on either engine.
const BOUNDED: &[&str] = &[
    "not authorized",
    "too big",
    "too long",
    "larger than the host allows",
    "the host accepts at most",
    "interrupted",
    "canceling statement",
    "permission denied",
    "too many arguments",
];

/// The CPU time (user + system) the process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: a plain query of a constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

impl HostileHost {
    /// The host answers, its real services serve, and its memory is within bounds.
    async fn assert_whole(&self, after: &str, victim: &str) {
        self.assert_real_services_serve(victim).await;
        let (rss, _) = memory_kib(self.pid);
        assert!(
            rss < MAX_RSS_KIB,
            "after {after} the host holds {} MiB",
            rss / 1024
        );
    }

    /// Sixteen endless statements at once: each request ends by its deadline, the host stops
    /// spending CPU on them, and the service's next request is served within a second.
    async fn assert_endless_statements_end(&self, attempt: &str, statement: &str) {
        let started = Instant::now();
        let runs = (0..16).map(|_| {
            let client = self.app.client.clone();
            let url = format!(
                "{}/api/orders/{attempt}/?arg={}",
                self.app.base,
                statement
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect::<String>()
            );
            tokio::spawn(async move {
                let answer = client.get(url).send().await.unwrap();
                let status = answer.status().as_u16();
                (status, answer.text().await.unwrap_or_default())
            })
        });
        for run in futures_join(runs.collect()).await {
            let (status, body) = run;
            assert!(
                status == 504 || (status == 200 && body.contains("refused: ")),
                "an endless statement answered {status} {body}"
            );
        }
        // The request timeout is 5 s: with the queue for the pool, all are over well within 20.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the endless statements took {:?}",
            started.elapsed()
        );
        let next = Instant::now();
        self.assert_allowed(attempt, "SELECT 1 AS still_here").await;
        assert!(
            next.elapsed() < Duration::from_secs(1),
            "the next statement waited {:?}",
            next.elapsed()
        );
        // Nothing goes on running on the host: a quiet second costs it almost no CPU.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = cpu_time(self.pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let spent = cpu_time(self.pid) - before;
        assert!(
            spent < Duration::from_millis(300),
            "the host spent {spent:?} of CPU in a quiet second after the endless statements"
        );
    }
}

/// Awaits every task, in order.
async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

/// `concat_ws` with 126 arguments on a 16 MiB separator: CVE-2025-29087's heap overflow in
/// SQLite before 3.49.1.
fn concat_ws_overflow() -> String {
    let args = vec!["'a'"; 126].join(", ");
    format!("SELECT length(concat_ws(hex(zeroblob(17179870)), {args})) AS n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_service_cannot_crash_starve_or_outlive_its_request_on_sqlite() {
    let host = HostileHost::start_with(
        Engine::Sqlite,
        &["--request-timeout", "5s", "--max-database-bytes", "16MiB"],
    )
    .unwrap();
    let victim = host.register_victim().await;

    // Memory corruption in the SQLite library: the statement is refused before it runs (its
    // functions are not on the allowlist, and the library is past the fix anyway).
    host.assert_refused("sqlite", &concat_ws_overflow(), BOUNDED)
        .await;
    host.assert_whole("the concat_ws overflow", &victim).await;

    // Values and results the host would hold: a 1 GB blob, a 1 GB string built by an allowed
    // function, a string doubled until it is too big, and a result of 100,000 rows of 1 KB.
    for statement in [
        "SELECT randomblob(1000000000) AS b",
        "SELECT length(printf('%.*c', 1000000000, 'x')) AS n",
        "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r \
         WHERE length(s) < 1000000000) SELECT max(length(s)) AS n FROM r",
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 100000) \
         SELECT n, printf('%.1000c', 'x') AS pad FROM c",
    ] {
        host.assert_refused("sqlite", statement, BOUNDED).await;
        host.assert_whole(statement, &victim).await;
    }

    // A statement text of 5 MB, refused before SQLite parses it.
    host.assert_refused("sqlite-long", "5000000", BOUNDED).await;
    host.assert_whole("a 5 MB statement", &victim).await;

    // Sixteen endless recursive counts at once.
    host.assert_endless_statements_end(
        "sqlite",
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) AS n FROM c",
    )
    .await;
    host.assert_whole("sixteen endless statements", &victim)
        .await;

    // Filling the disk: stopped at the file's quota, with SQLite's full-database error.
    let report = host.attempt("sqlite-fill", "100").await;
    assert!(
        report.starts_with("refused: after ") && report.contains("DatabaseFull"),
        "filling the disk: {report}"
    );
    let file = host.workdir.join(".shop/orders.db");
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size <= 16 << 20, "orders.db grew to {size} bytes");
    host.assert_whole("a disk-filling insert", &victim).await;

    // A flood of output that poses as the host's own lines: bounded, and marked as the guest's.
    let before = std::fs::metadata(&host.log).unwrap().len();
    host.assert_allowed("stdio", "20000000").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = std::fs::metadata(&host.log).unwrap().len() - before;
    assert!(
        grown < 1 << 20,
        "20 MB of guest output grew the log by {grown} bytes"
    );
    let log = read_log_of(&host.log);
    assert!(
        !log.lines()
            .any(|line| line.starts_with("ERROR shop::http: the host is compromised")),
        "a guest's line passed as the host's own"
    );
    assert!(
        log.lines()
            .any(|line| line.contains("component=orders")
                && line.contains("the host is compromised")),
        "the guest's output is not in the log under its component"
    );
    host.assert_whole("a flood of guest output", &victim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_service_cannot_crash_starve_or_outlive_its_request_on_postgres() {
    let Some(host) = HostileHost::start_with(Engine::Postgres, &["--request-timeout", "5s"]) else {
        return;
    };
    let victim = host.register_victim().await;
    let admin_url = host.admin_url.clone().unwrap();
    let psql = |sql: &str| -> String {
        let out = std::process::Command::new("psql")
            .args([admin_url.as_str(), "-tAc", sql])
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let role = format!("{}_orders", admin_url.rsplit('/').next().unwrap());

    // A result the host would hold: 50 MB in one value, 100,000 rows.
    for statement in [
        "SELECT repeat('x', 50000000) AS s",
        "SELECT n, repeat('x', 1000) AS pad FROM generate_series(1, 100000) AS n",
    ] {
        host.assert_refused("pg", statement, BOUNDED).await;
        host.assert_whole(statement, &victim).await;
    }
    host.assert_refused("pg-long", "5000000", BOUNDED).await;
    host.assert_whole("a 5 MB statement", &victim).await;

    // A statement that outlives its request, even with the session's own timeout lifted: the
    // server stops it once the request is over.
    host.assert_endless_statements_end(
        "pg",
        "SET statement_timeout = 0;;SELECT pg_sleep(86400)::text AS slept",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let sleeping = psql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}' \
             AND query LIKE '%pg_sleep%' AND state = 'active'"
        ));
        if sleeping == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{sleeping} backends of {role} still sleep after their requests ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    host.assert_whole("sixteen endless statements", &victim)
        .await;

    // An advisory lock taken in quotes, where a scan of the words would miss it, is gone when
    // its request is over: nobody waits on it.
    host.attempt(
        "pg",
        "SELECT \"pg_advisory_lock\"(hashtextextended('login_failures:127.0.0.1', 0))::text AS l",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
        "0",
        "an advisory lock outlived its request"
    );

    // A transaction a request leaves open, with a transaction advisory lock on another
    // service's key, ends with the request, also behind COMMIT AND CHAIN (which opens the next
    // one at once): the connection's reset rolls it back even where it is only a ROLLBACK.
    host.attempt(
        "pg",
        "BEGIN;; SELECT pg_advisory_xact_lock(hashtextextended('reservation:x', 0))::text AS l;; \
         COMMIT AND CHAIN;; SELECT pg_advisory_xact_lock(hashtextextended('reservation:y', 0))::text AS l",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
        "0",
        "a transaction advisory lock outlived its request"
    );

    // Places where two roles could meet: large objects, other schemas' statistics, advisory
    // locks that outlive a transaction.
    for statement in [
        "SELECT lo_from_bytea(0, 'x')::text AS o",
        "SELECT lo_create(0)::text AS o",
        "SELECT relname::text AS t, n_live_tup AS n FROM pg_stat_user_tables",
        "SELECT pg_advisory_lock(1)::text AS l",
        "SELECT pg_try_advisory_lock_shared(1, 2)::text AS l",
    ] {
        host.assert_refused("pg", statement, &["permission denied"])
            .await;
    }
    host.assert_whole("the meeting places", &victim).await;
}

/// A manifest of the repository's app with the component `id` served from `source`.
fn manifest_with(
    workdir: &std::path::Path,
    id: &str,
    source: &std::path::Path,
) -> std::path::PathBuf {
    let root = repo_root();
    let manifest = std::fs::read_to_string(root.join("spin.toml"))
        .unwrap()
        .replace(
            &format!("\"target/wasm32-wasip2/release/{id}.wasm\""),
            &format!("\"{}\"", source.display()),
        )
        .replace("\"target/", &format!("\"{}/target/", root.display()));
    let path = workdir.join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    std::fs::copy(
        root.join("runtime-config.toml"),
        workdir.join("runtime-config.toml"),
    )
    .unwrap();
    let migrations = workdir.join("migrations");
    if !migrations.exists() {
        std::os::unix::fs::symlink(root.join("migrations"), migrations).unwrap();
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_reaches_only_the_services_its_manifest_declares() {
    build_components();
    let intruder = test_component("intruder");

    // At start: docs, which declares no dependency, imports accounts' operator interface and
    // another service's carts. The host refuses to start, naming why.
    let workdir = fresh_workdir("intruder-start");
    let manifest = manifest_with(&workdir, "docs", &intruder);
    let out = host_command(&workdir)
        .args(["up", "--listen", "127.0.0.1:0", "--no-watch", "--manifest"])
        .arg(&manifest)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the host started with the intruder");
    assert!(
        log.contains("component `docs` imports shop:")
            && (log.contains("only the host may call") || log.contains("does not declare")),
        "{log}"
    );

    // At swap: the real app serves; the intruder in place of docs is refused with the reason,
    // and docs keeps serving.
    let workdir = fresh_workdir("intruder-swap");
    let manifest = manifest_with(
        &workdir,
        "docs",
        &repo_root().join("target/wasm32-wasip2/release/docs.wasm"),
    );
    let token = "containment-test-admin-token-0123456789";
    let token_file = workdir.join("admin-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let mut cmd = host_command(&workdir);
    cmd.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--no-watch",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .arg("--admin-token-file")
    .arg(&token_file);
    let host = spawn_serving(cmd, &workdir, &manifest);
    wait_healthy(&host.base);
    let client = reqwest::Client::new();
    let admin = host.admin.clone().expect("the admin API's address");
    let answer = client
        .put(format!("{admin}/_admin/components/docs"))
        .bearer_auth(token)
        .body(std::fs::read(&intruder).unwrap())
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let body = answer.text().await.unwrap();
    assert!(
        (400..500).contains(&status)
            && (body.contains("only the host may call") || body.contains("does not declare")),
        "the swap answered {status}: {body}"
    );
    let docs = client
        .get(format!("{}/api/schema/", host.base))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    // Nobody was made staff behind the API's back.
    let login = client
        .post(format!("{}/api/accounts/login/", host.base))
        .json(&serde_json::json!({"username": "intruder", "password": "a long enough secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);
}
