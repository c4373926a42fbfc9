//! Postgres over TLS, against the local server with its own certificate (Debian's self-signed
//! "snakeoil", which names `localhost` only): `sslmode=verify-full` with that certificate as
//! `sslrootcert` serves, every service's pool over TLS; `verify-full` refuses the same server
//! reached as 127.0.0.1 (not the certificate's name) and refuses it without a usable root,
//! each with an error that says what to do about the certificate, not "start Postgres";
//! `verify-ca` and `require` connect to 127.0.0.1; `--print-urls` keeps the TLS parameters.
//! And a service URL that logs in as a superuser is refused.
//!
//! The test cannot reconfigure the shared server with a certificate of its own making: it uses
//! the one the server has, and is skipped with a notice when the server has no TLS.

use std::process::{Command, Output};

use crate::helpers::*;

/// The server's certificate file, when it serves TLS and the file is readable here.
fn server_certificate() -> Option<String> {
    let server = postgres_server_url();
    let show = |setting: &str| {
        let out = Command::new("psql")
            .arg(format!("{server}/postgres"))
            .args(["-Atc", &format!("SHOW {setting}")])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let ssl = show("ssl")?;
    let file = show("ssl_cert_file")?;
    if ssl != "on" || std::fs::read(&file).is_err() {
        eprintln!(
            "\n*** SKIPPING the Postgres TLS tests: the server's ssl is {ssl:?}, its certificate \
             {file:?} ***\n"
        );
        return None;
    }
    Some(file)
}

/// `url` (a fresh database on the test server) reached as `host`, with `query` added.
fn with_tls(url: &str, host: &str, query: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_host(Some(host)).unwrap();
    format!("{url}?{query}")
}

/// Runs `shop migrate` with `--database-url url` (and `--print-urls`), with the system's
/// roots reduced to Debian's CA bundle (the server's self-signed certificate is not in it).
fn migrate(url: &str, print_urls: bool) -> Output {
    build_components();
    let workdir = fresh_workdir("tls-migrate");
    let mut cmd = host_command(&workdir);
    cmd.args(["migrate", "--database-url", url])
        .arg("--manifest")
        .arg(repo_root().join("spin.toml"))
        .env("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
        .env("SSL_CERT_DIR", workdir.join("no-certificates"));
    if print_urls {
        cmd.arg("--print-urls");
    }
    cmd.output().unwrap()
}

#[track_caller]
fn assert_refused_for_tls(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: connected");
    assert!(
        stderr.contains("cannot make a TLS connection") && stderr.contains("sslrootcert"),
        "{what}: {stderr}"
    );
    assert!(!stderr.contains("Start Postgres"), "{what}: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_verified_tls_serves_and_an_unverifiable_server_is_refused() {
    let Some(database) = fresh_postgres_database() else {
        return;
    };
    let Some(certificate) = server_certificate() else {
        return;
    };
    let verify_full = with_tls(
        &database,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={certificate}"),
    );

    // --print-urls: every service's own login keeps the operator's TLS parameters.
    let out = migrate(&verify_full, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<&str> = stdout.lines().collect();
    assert_eq!(printed.len(), 4, "{stdout}");
    for line in &printed {
        let (_, url) = line.split_once('=').unwrap();
        let url = url::Url::parse(url).unwrap();
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(
            query.contains(&("sslmode".into(), "verify-full".into())),
            "{url}"
        );
        assert!(
            query.contains(&("sslrootcert".into(), certificate.clone())),
            "{url}"
        );
        assert_eq!(url.host_str(), Some("localhost"));
    }

    // The host serves over it, every service's pool encrypted.
    let workdir = fresh_workdir("tls-up");
    let mut cmd = host_command(&workdir);
    cmd.args(["up", "--listen", "127.0.0.1:0", "--no-watch"])
        .args(["--database-url", &verify_full]);
    let host = spawn_serving(cmd, &workdir, &repo_root().join("spin.toml"));
    wait_healthy(&host.base);
    let app = TestApp {
        base: host.base.clone(),
        engine: Engine::Postgres,
        client: reqwest::Client::new(),
    };
    let product = app
        .create_product(serde_json::json!({"name": "tls", "price": "1.00", "stock": 1}))
        .await;
    assert!(product["id"].is_i64());
    let name = url::Url::parse(&database).unwrap().path()[1..].to_owned();
    let server = postgres_server_url();
    let out = Command::new("psql")
        .arg(format!("{server}/postgres"))
        .args([
            "-Atc",
            &format!(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a \
                 JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '{name}' \
                 AND a.usename LIKE '{name}\\_%'"
            ),
        ])
        .output()
        .unwrap();
    let counts = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (encrypted, all) = counts.split_once('|').unwrap();
    assert!(
        all.parse::<u32>().unwrap() > 0,
        "no service connection: {counts}"
    );
    assert_eq!(encrypted, all, "a service connection without TLS: {counts}");

    // verify-ca checks the chain only: the same server as 127.0.0.1 is fine; so is require,
    // which encrypts without verifying.
    for query in [
        format!("sslmode=verify-ca&sslrootcert={certificate}"),
        "sslmode=require".to_owned(),
    ] {
        let out = migrate(&with_tls(&database, "127.0.0.1", &query), false);
        assert!(
            out.status.success(),
            "{query}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // verify-full refuses a certificate that does not name the host the URL reaches...
    let out = migrate(
        &with_tls(
            &database,
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={certificate}"),
        ),
        false,
    );
    assert_refused_for_tls(&out, "verify-full to 127.0.0.1");
    // ...and one that no root it has vouches for.
    let out = migrate(
        &with_tls(&database, "localhost", "sslmode=verify-full"),
        false,
    );
    assert_refused_for_tls(&out, "verify-full without sslrootcert");
    // A root file that is not there is named.
    let out = migrate(
        &with_tls(
            &database,
            "localhost",
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ),
        false,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
}

/// A service URL given directly (no --database-url) that logs in as a superuser could read
/// and change every service's data: `shop migrate` (and `shop up`, on the same path) refuse it.
#[test]
fn a_service_url_with_a_superuser_login_is_refused() {
    let Some(database) = fresh_postgres_database() else {
        return;
    };
    build_components();
    let workdir = fresh_workdir("superuser-service");
    let variables = [
        ("products", "SPIN_VARIABLE_PRODUCTS_DATABASE"),
        ("accounts", "SPIN_VARIABLE_ACCOUNTS_DATABASE"),
        ("cart", "SPIN_VARIABLE_CART_DATABASE"),
        ("orders", "SPIN_VARIABLE_ORDERS_DATABASE"),
    ];
    for (service, variable) in variables {
        // The others on their SQLite files; this one on Postgres as the server's superuser.
        let mut cmd = host_command(&workdir);
        for (other, other_variable) in variables {
            cmd.env(other_variable, other);
        }
        cmd.env(
            variable,
            format!("{database}?options=-c%20search_path%3D{service}"),
        )
        .arg("migrate")
        .arg("--manifest")
        .arg(repo_root().join("spin.toml"));
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{service}: migrated as a superuser");
        assert!(
            stderr.contains(&format!("component `{service}`"))
                && stderr.contains("superuser or a role that can create roles")
                && stderr.contains("--print-urls"),
            "{service}: {stderr}"
        );
    }
}
