//! Provisioning by a least-privileged operator (CREATEROLE, owner of the database) where the
//! session advisory locks are revoked from PUBLIC, as a superuser's provisioning leaves them
//! (so that no service's lock outlives its request) or a DBA may: the operator lacks them too,
//! so provisioning and migrations wait on transaction locks instead, and both still run.

use std::process::{Command, Output};

use crate::helpers::*;

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-Atc", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn migrate(url: &str) -> Output {
    build_components();
    let workdir = fresh_workdir("operator-migrate");
    let mut cmd = host_command(&workdir);
    cmd.args(["migrate", "--database-url", url])
        .arg("--manifest")
        .arg(repo_root().join("spin.toml"));
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_createrole_operator_provisions_without_session_locks() {
    let Some(database) = fresh_postgres_database() else {
        return;
    };
    let name = database.rsplit('/').next().unwrap().to_owned();
    let operator = format!("shop_op_{}", unique_suffix());
    psql(
        &database,
        &format!(
            "CREATE ROLE {operator} LOGIN CREATEROLE; ALTER DATABASE {name} OWNER TO {operator}; \
             REVOKE EXECUTE ON FUNCTION pg_advisory_lock(bigint) FROM PUBLIC"
        ),
    );
    let mut url = url::Url::parse(&database).unwrap();
    url.set_username(&operator).unwrap();
    let out = migrate(url.as_str());
    assert!(
        out.status.success(),
        "the CREATEROLE operator's migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Twice, as a second host's start would: the migrations' turn is taken and given back.
    let out = migrate(url.as_str());
    assert!(
        out.status.success(),
        "the CREATEROLE operator's second migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = psql(
        &database,
        "SELECT count(*) FROM pg_tables WHERE tablename = '_sqlx_migrations'",
    );
    assert_eq!(tables, "4", "each service's migrations ran in its schema");
}
