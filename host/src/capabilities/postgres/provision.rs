//! One Postgres role per service: the login each service's pool uses, which owns the service's
//! schema and has no rights anywhere else.
//!
//! Given the operator's URL (`--database-url`, a user that may create roles), the host makes,
//! for each service, the role `<database>_<service>` (`shop_products` in database `shop`): it
//! logs in, inherits nothing, owns the schema named after the service (and every object in
//! it), has `search_path` fixed to that schema, and nothing else. PUBLIC loses CREATE and
//! TEMPORARY on the database and CREATE on `public`, so no role can make a schema, a temp table
//! or a shared table to pass data through. Every step is idempotent and runs under an advisory
//! lock, so several hosts starting at once provision once.
//!
//! The role's password is HMAC-SHA-256 of the role name keyed by a random key the first host
//! makes and keeps in the database, in the operator's own schema `shop_host` (no service role
//! may read it): every host of a deployment computes the same passwords, and a service that
//! reads its own URL learns nothing it could use to guess the operator's password or the other
//! roles'. Without a password in the operator's URL (trust or peer authentication) the roles
//! get none. Provisioning sets each password again at every start, so a role that changed its
//! own (`ALTER ROLE CURRENT_USER PASSWORD`, which Postgres lets any role do) has it back then.
//!
//! PUBLIC also loses what would let two roles meet outside their schemas: the large-object
//! functions (database-wide objects), `pg_notify`, and the statistics views that show other
//! schemas' tables. Each change is skipped with a warning where the operator may not make it
//! (a managed server's non-superuser operator).

use anyhow::{bail, Context as _, Result};
use sha2::{Digest as _, Sha256};
use sqlx::postgres::PgConnection;
use sqlx::{Connection as _, Executor as _, Row as _};

use crate::capabilities::postgres::migrate;
use crate::config::database_url::with_search_path;

/// The advisory lock (per database) that serialises the provisioning of several hosts.
const PROVISION_LOCK: i64 = 0x73686f705f726f6c; // "shop_rol"

/// Postgres' limit on identifiers, in bytes.
const MAX_IDENTIFIER: usize = 63;

/// A service's own login: its role, its schema, and the URL its pool connects with.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceRole {
    /// The service (component id), which is also its schema's name.
    pub schema: String,
    /// The role that owns the schema.
    pub role: String,
    /// The operator's URL with the role as user (and its derived password) and the schema as
    /// `search_path`.
    pub url: String,
}

impl std::fmt::Debug for ServiceRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRole")
            .field("schema", &self.schema)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The key the services' passwords are derived from: random, made once per database.
#[derive(Clone)]
pub struct RoleKey(String);

impl RoleKey {
    /// A key given as is (tests).
    #[cfg(test)]
    pub fn from_text(key: &str) -> Self {
        Self(key.to_string())
    }
}

/// The database's role key, read from the operator's schema `shop_host`, made on first use.
pub async fn role_key(admin_url: &str) -> Result<RoleKey> {
    let mut conn = migrate::connect_postgres(admin_url).await?;
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh)
        .map_err(|e| anyhow::anyhow!("no randomness for the role key: {e}"))?;
    let fresh: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
    let outcome = async {
        // Each step tolerates another host doing it at the same moment.
        for statement in [
            "CREATE SCHEMA IF NOT EXISTS shop_host",
            "REVOKE ALL ON SCHEMA shop_host FROM PUBLIC",
            "CREATE TABLE IF NOT EXISTS shop_host.role_key \
             (id int PRIMARY KEY CHECK (id = 1), key text NOT NULL)",
            "REVOKE ALL ON shop_host.role_key FROM PUBLIC",
        ] {
            if let Err(err) = run(&mut conn, statement).await {
                if !already_exists(&err) {
                    return Err(err);
                }
            }
        }
        sqlx::query(
            "INSERT INTO shop_host.role_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&fresh)
        .execute(&mut conn)
        .await
        .context("keeping the role key")?;
        let key: String = sqlx::query_scalar("SELECT key FROM shop_host.role_key WHERE id = 1")
            .fetch_one(&mut conn)
            .await
            .context("reading the role key")?;
        Ok(RoleKey(key))
    }
    .await;
    let _ = conn.close().await;
    outcome.context("the services' role key (in schema shop_host): the --database-url user must be able to create a schema")
}

/// The role of `service` in the database of `admin_url`, its password derived from `key`.
pub fn service_role(admin_url: &str, service: &str, key: &RoleKey) -> Result<ServiceRole> {
    let mut url = url::Url::parse(admin_url)
        .with_context(|| format!("--database-url `{}` is not a URL", redact(admin_url)))?;
    let database = match url.path().trim_start_matches('/') {
        "" => url.username().to_string(), // libpq's default database is the user's name
        path => percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .into_owned(),
    };
    let database = if database.is_empty() {
        "postgres".to_string()
    } else {
        database
    };
    let role = role_name(&database, service);
    let password = url
        .password()
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|p| !p.is_empty())
        .map(|_| derived_password(&key.0, &role));
    url.set_username(&role)
        .map_err(|()| anyhow::anyhow!("cannot put the role `{role}` in the database URL"))?;
    url.set_password(password.as_deref())
        .map_err(|()| anyhow::anyhow!("cannot put a password in the database URL"))?;
    Ok(ServiceRole {
        schema: service.to_string(),
        role,
        url: with_search_path(url.as_str(), service),
    })
}

/// `<database>_<service>`, folded to what Postgres keeps unquoted, at most 63 bytes.
fn role_name(database: &str, service: &str) -> String {
    let fold = |text: &str| -> String {
        text.chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9' | '_') => c,
                _ => '_',
            })
            .collect()
    };
    let service = fold(service);
    let mut database = fold(database);
    let room = MAX_IDENTIFIER.saturating_sub(service.len() + 1);
    database.truncate(room);
    format!("{database}_{service}")
}

/// HMAC-SHA-256(key = the role key, message = the role), in hex.
fn derived_password(admin_password: &str, role: &str) -> String {
    const BLOCK: usize = 64;
    let mut key = [0u8; BLOCK];
    if admin_password.len() > BLOCK {
        key[..32].copy_from_slice(&Sha256::digest(admin_password.as_bytes()));
    } else {
        key[..admin_password.len()].copy_from_slice(admin_password.as_bytes());
    }
    let pad = |byte: u8| key.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(role.as_bytes())
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// What sets a service role's password back through the operator's `admin_url` when the
/// server refuses it (Postgres lets any role change its own password, so a compromised service
/// could lock itself out on every host): at most once every 5 seconds per role, logged.
pub fn healer(
    admin_url: String,
    roles: Vec<ServiceRole>,
) -> crate::capabilities::postgres::pools::Heal {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::{Duration, Instant};
    let last: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let admin_url: Arc<str> = admin_url.into();
    let roles: Arc<[ServiceRole]> = roles.into();
    Arc::new(move |address: String| {
        let (admin_url, roles, last) = (admin_url.clone(), roles.clone(), last.clone());
        Box::pin(async move {
            let Some(role) = roles.iter().find(|role| role.url == address) else {
                return false;
            };
            {
                let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                if last
                    .get(&role.role)
                    .is_some_and(|at| now.duration_since(*at) < Duration::from_secs(5))
                {
                    return false;
                }
                last.insert(role.role.clone(), now);
            }
            tracing::warn!(
                role = %role.role,
                "Postgres refused service role `{}`'s password (did the service change its own?); setting it back",
                role.role
            );
            let set = async {
                let mut conn = migrate::connect_postgres(&admin_url).await?;
                let outcome = set_password(&mut conn, role).await;
                let _ = conn.close().await;
                outcome
            };
            match set.await {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "cannot set the role's password back");
                    false
                }
            }
        })
    })
}

/// Sets `role`'s password to the one its URL holds (none without one).
async fn set_password(conn: &mut PgConnection, role: &ServiceRole) -> Result<()> {
    let password = url::Url::parse(&role.url)
        .ok()
        .and_then(|url| url.password().map(str::to_string));
    let password = match password {
        Some(password) => format!("'{}'", password.replace('\'', "''")),
        None => "NULL".to_string(),
    };
    run(
        conn,
        &format!("ALTER ROLE {} LOGIN PASSWORD {password}", quote(&role.role)),
    )
    .await
}

/// Makes (or brings up to date) every role of `roles` through the operator's `admin_url`.
pub async fn provision(admin_url: &str, roles: &[ServiceRole]) -> Result<()> {
    let mut conn = migrate::connect_postgres(admin_url).await?;
    // A transaction lock held beside the work: a CREATEROLE operator loses the session locks
    // once a superuser's provisioning has revoked them from PUBLIC. Same key as the session
    // lock earlier hosts took, so that they and this one still wait for each other.
    let turn = migrate::HeldLock::take(admin_url, PROVISION_LOCK)
        .await
        .context("taking the provisioning lock")?;
    let outcome = provision_locked(&mut conn, roles).await;
    turn.release().await;
    let _ = conn.close().await;
    outcome
}

async fn provision_locked(conn: &mut PgConnection, roles: &[ServiceRole]) -> Result<()> {
    let me = sqlx::query(
        "SELECT current_user::text AS name, current_database()::text AS db, r.rolsuper, r.rolcreaterole \
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut *conn)
    .await
    .context("reading the operator role")?;
    let admin: String = me.get("name");
    let database: String = me.get("db");
    let superuser: bool = me.get("rolsuper");
    let createrole: bool = me.get("rolcreaterole");
    if !superuser && !createrole {
        bail!(
            "the --database-url user `{admin}` cannot create the services' roles: give it CREATEROLE \
             (and make it the owner of database `{database}`), or provision the roles yourself \
             (README, \"Postgres roles\") and give each service its own URL with \
             SPIN_VARIABLE_<SERVICE>_DATABASE instead of --database-url"
        );
    }
    let db = quote(&database);
    for statement in [
        format!("REVOKE CREATE, TEMPORARY ON DATABASE {db} FROM PUBLIC"),
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_string(),
    ] {
        run(conn, &statement).await?;
    }
    revoke_meeting_places(conn).await;
    for role in roles {
        provision_role(conn, role, &admin, &database, superuser).await?;
    }
    Ok(())
}

/// Functions and views through which two roles could meet outside their schemas: large
/// objects (database-wide, readable by any role once granted), `pg_notify`, advisory locks that
/// outlive a transaction (database-wide keys, held past the request that took them: the
/// transaction-level ones stay, which products uses), and the statistics views that show every
/// schema's tables and row counts. No service uses them.
const MEETING_FUNCTIONS: &str = "SELECT p.oid::regprocedure::text FROM pg_proc p \
     JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pg_catalog' \
     AND (p.proname IN ('lo_creat', 'lo_create', 'lo_from_bytea', 'lo_put', 'lo_get', 'lo_open', \
     'lo_unlink', 'lo_truncate', 'lo_truncate64', 'lo_import', 'lo_export', 'loread', \
     'lowrite', 'lo_lseek', 'lo_lseek64', 'lo_tell', 'lo_tell64', 'lo_close', 'pg_notify', \
     'pg_advisory_lock', 'pg_advisory_lock_shared', 'pg_try_advisory_lock', \
     'pg_try_advisory_lock_shared'))";
const MEETING_VIEWS: &[&str] = &[
    "pg_stat_all_tables",
    "pg_stat_user_tables",
    "pg_stat_xact_all_tables",
    "pg_stat_xact_user_tables",
    "pg_statio_all_tables",
    "pg_statio_user_tables",
    "pg_stat_all_indexes",
    "pg_stat_user_indexes",
    "pg_statio_all_indexes",
    "pg_statio_user_indexes",
    "pg_stat_user_functions",
    "pg_stat_xact_user_functions",
    "pg_largeobject_metadata",
];

/// Revokes from PUBLIC what [`MEETING_FUNCTIONS`] and [`MEETING_VIEWS`] name, where the
/// operator may (a superuser, or the owner of the catalogue); a refusal is a warning.
async fn revoke_meeting_places(conn: &mut PgConnection) {
    let functions: Vec<String> = match sqlx::query_scalar(MEETING_FUNCTIONS)
        .fetch_all(&mut *conn)
        .await
    {
        Ok(functions) => functions,
        Err(error) => {
            tracing::warn!(%error, "cannot list the large-object functions to revoke");
            Vec::new()
        }
    };
    let statements = functions
        .iter()
        .map(|f| format!("REVOKE EXECUTE ON FUNCTION {f} FROM PUBLIC"))
        .chain(
            MEETING_VIEWS
                .iter()
                .map(|v| format!("REVOKE SELECT ON pg_catalog.{v} FROM PUBLIC")),
        );
    for statement in statements {
        if let Err(error) = run(conn, &statement).await {
            tracing::warn!(
                error = %format!("{error:#}"),
                "cannot revoke from PUBLIC (the operator is not a superuser?): services may meet there"
            );
        }
    }
}

async fn provision_role(
    conn: &mut PgConnection,
    role: &ServiceRole,
    admin: &str,
    database: &str,
    superuser: bool,
) -> Result<()> {
    let name = quote(&role.role);
    let schema = quote(&role.schema);
    let existing = sqlx::query(
        "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls AS powerful \
         FROM pg_roles WHERE rolname = $1",
    )
    .bind(&role.role)
    .fetch_optional(&mut *conn)
    .await?;
    match existing {
        None => {
            // Another host's CREATE between the look and here is covered by the lock; a role of
            // the same name from elsewhere is used as it is (checked above once it exists).
            if let Err(err) = run(conn, &format!("CREATE ROLE {name} LOGIN NOINHERIT")).await {
                if !already_exists(&err) {
                    return Err(err);
                }
            }
        }
        Some(row) if row.get::<bool, _>("powerful") => bail!(
            "the role `{}` of service `{}` exists with rights beyond its own schema (superuser, \
             createrole, createdb, replication or bypassrls): remove them \
             (`ALTER ROLE {name} NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS`)",
            role.role,
            role.schema
        ),
        Some(_) => {}
    }
    set_password(conn, role).await?;
    if !superuser && admin != role.role {
        // A CREATEROLE operator must be a member to hand the schema and its objects over.
        run(conn, &format!("GRANT {name} TO {}", quote(admin))).await?;
    }
    run(
        conn,
        &format!(
            "ALTER ROLE {name} IN DATABASE {} SET search_path = {schema}",
            quote(database)
        ),
    )
    .await?;
    let schema_exists = sqlx::query("SELECT 1 FROM pg_namespace WHERE nspname = $1")
        .bind(&role.schema)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if !schema_exists {
        if let Err(err) = run(
            conn,
            &format!("CREATE SCHEMA {schema} AUTHORIZATION {name}"),
        )
        .await
        {
            if !already_exists(&err) {
                return Err(err);
            }
        }
    }
    run(conn, &format!("ALTER SCHEMA {schema} OWNER TO {name}")).await?;
    run(conn, &format!("REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")).await?;
    hand_over_objects(conn, role).await
}

/// Makes the role the owner of every table, view and sequence of its schema (a database
/// migrated before the roles existed has them owned by the operator).
async fn hand_over_objects(conn: &mut PgConnection, role: &ServiceRole) -> Result<()> {
    let name = quote(&role.role);
    let schema = quote(&role.schema);
    // Tables first: their owned sequences follow them.
    for kinds in [&["r", "p", "f"][..], &["v"], &["m"], &["S"]] {
        let rows = sqlx::query(
            "SELECT c.relname::text AS name, c.relkind::text AS kind FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind::text = ANY($2) \
             AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = $3)",
        )
        .bind(&role.schema)
        .bind(kinds)
        .bind(&role.role)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let relation: String = row.get("name");
            let what = match row.get::<String, _>("kind").as_str() {
                "v" => "VIEW",
                "m" => "MATERIALIZED VIEW",
                "S" => "SEQUENCE",
                _ => "TABLE",
            };
            run(
                conn,
                &format!("ALTER {what} {schema}.{} OWNER TO {name}", quote(&relation)),
            )
            .await?;
        }
    }
    Ok(())
}

async fn run(conn: &mut PgConnection, statement: &str) -> Result<()> {
    conn.execute(sqlx::AssertSqlSafe(statement))
        .await
        .map(drop)
        .with_context(|| {
            format!(
                "provisioning the services' Postgres roles: `{}`",
                redact(statement)
            )
        })
}

fn already_exists(err: &anyhow::Error) -> bool {
    err.downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|e| e.code())
        .is_some_and(|code| matches!(&*code, "42710" | "42P06" | "23505"))
}

/// An identifier in double quotes.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// A statement or URL with any password hidden, for messages.
fn redact(text: &str) -> String {
    match text.find("PASSWORD '") {
        Some(at) => format!("{}PASSWORD '***'", &text[..at]),
        None => match url::Url::parse(text) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => text.to_string(),
        },
    }
}

/// Whether the login of `url` is a superuser or may create roles (`rolsuper`,
/// `rolcreaterole`): either could read and change every service's data, so no service may log
/// in as it.
pub async fn is_privileged(url: &str) -> Result<bool> {
    let mut conn = migrate::connect_postgres(url).await?;
    let privileged: bool = sqlx::query_scalar(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(privileged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_named_after_database_and_service() {
        let key = RoleKey::from_text("k");
        let role =
            service_role("postgres://postgres@127.0.0.1:5432/shop", "products", &key).unwrap();
        assert_eq!(role.role, "shop_products");
        assert_eq!(
            role.url,
            "postgres://shop_products@127.0.0.1:5432/shop?options=-c%20search_path%3Dproducts"
        );
        let odd = service_role("postgres://u@h/My-Shop.v2", "cart", &key).unwrap();
        assert_eq!(odd.role, "my_shop_v2_cart");
        let long = service_role(
            &format!("postgres://u@h/{}", "d".repeat(80)),
            "orders",
            &key,
        )
        .unwrap();
        assert_eq!(long.role.len(), MAX_IDENTIFIER);
        assert!(long.role.ends_with("_orders"));
        let no_db = service_role("postgres://alice@h", "cart", &key).unwrap();
        assert_eq!(no_db.role, "alice_cart");
    }

    #[test]
    fn passwords_are_derived_and_never_the_operators() {
        let key = RoleKey::from_text("a random key");
        let a = service_role("postgres://admin:s3cret@h/shop", "products", &key).unwrap();
        let b = service_role("postgres://admin:s3cret@h/shop", "accounts", &key).unwrap();
        let url = url::Url::parse(&a.url).unwrap();
        let password = url.password().unwrap();
        assert_eq!(password.len(), 64);
        assert!(!a.url.contains("s3cret"));
        assert_ne!(url::Url::parse(&b.url).unwrap().password(), Some(password));
        // The same on every host (one key per database), and not a function of the
        // operator's password: the same password under another key gives another.
        assert_eq!(
            service_role("postgres://admin:s3cret@h/shop", "products", &key).unwrap(),
            a
        );
        let other = RoleKey::from_text("another key");
        assert_ne!(
            service_role("postgres://admin:s3cret@h/shop", "products", &other).unwrap(),
            a
        );
        assert_eq!(
            url::Url::parse(&a.url).unwrap().password().unwrap(),
            derived_password("a random key", "shop_products")
        );
        // RFC 4231 test case 2: HMAC-SHA-256 with key "Jefe".
        assert_eq!(
            derived_password("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(!format!("{a:?}").contains(password));
    }

    #[test]
    fn messages_hide_passwords() {
        assert_eq!(
            redact("ALTER ROLE \"x\" LOGIN PASSWORD 'abc'"),
            "ALTER ROLE \"x\" LOGIN PASSWORD '***'"
        );
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    }
}
