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
//! The role's password is derived from the operator's (HMAC-SHA-256 of the role name keyed by
//! it): every host of a deployment computes the same one without storing anything, and a
//! service that reads its own URL learns nothing of the operator's password or of the other
//! roles'. Without a password in the operator's URL (trust or peer authentication) the roles
//! get none.

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

/// The role of `service` in the database of `admin_url`.
pub fn service_role(admin_url: &str, service: &str) -> Result<ServiceRole> {
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
        .map(|admin| derived_password(&admin, &role));
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

/// HMAC-SHA-256(key = the operator's password, message = the role), in hex.
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

/// Makes (or brings up to date) every role of `roles` through the operator's `admin_url`.
pub async fn provision(admin_url: &str, roles: &[ServiceRole]) -> Result<()> {
    let mut conn = migrate::connect_postgres(admin_url).await?;
    conn.execute(sqlx::AssertSqlSafe(format!(
        "SELECT pg_advisory_lock({PROVISION_LOCK})"
    )))
    .await
    .context("taking the provisioning lock")?;
    let outcome = provision_locked(&mut conn, roles).await;
    let _ = conn
        .execute(sqlx::AssertSqlSafe(format!(
            "SELECT pg_advisory_unlock({PROVISION_LOCK})"
        )))
        .await;
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
    for role in roles {
        provision_role(conn, role, &admin, &database, superuser).await?;
    }
    Ok(())
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
    let password = url::Url::parse(&role.url)
        .ok()
        .and_then(|url| url.password().map(str::to_string));
    let password = match password {
        Some(password) => format!("'{}'", password.replace('\'', "''")),
        None => "NULL".to_string(),
    };
    run(
        conn,
        &format!("ALTER ROLE {name} LOGIN PASSWORD {password}"),
    )
    .await?;
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

/// Whether the login of `url` could read another service's data: a superuser, or a role that
/// is not confined to one schema. Used to warn about deployments that kept one shared login.
pub async fn is_superuser(url: &str) -> Result<bool> {
    let mut conn = migrate::connect_postgres(url).await?;
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut conn)
            .await?;
    let _ = conn.close().await;
    Ok(superuser)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_named_after_database_and_service() {
        let role = service_role("postgres://postgres@127.0.0.1:5432/shop", "products").unwrap();
        assert_eq!(role.role, "shop_products");
        assert_eq!(
            role.url,
            "postgres://shop_products@127.0.0.1:5432/shop?options=-c%20search_path%3Dproducts"
        );
        let odd = service_role("postgres://u@h/My-Shop.v2", "cart").unwrap();
        assert_eq!(odd.role, "my_shop_v2_cart");
        let long = service_role(&format!("postgres://u@h/{}", "d".repeat(80)), "orders").unwrap();
        assert_eq!(long.role.len(), MAX_IDENTIFIER);
        assert!(long.role.ends_with("_orders"));
        let no_db = service_role("postgres://alice@h", "cart").unwrap();
        assert_eq!(no_db.role, "alice_cart");
    }

    #[test]
    fn passwords_are_derived_and_never_the_operators() {
        let a = service_role("postgres://admin:s3cret@h/shop", "products").unwrap();
        let b = service_role("postgres://admin:s3cret@h/shop", "accounts").unwrap();
        let url = url::Url::parse(&a.url).unwrap();
        let password = url.password().unwrap();
        assert_eq!(password.len(), 64);
        assert!(!a.url.contains("s3cret"));
        assert_ne!(url::Url::parse(&b.url).unwrap().password(), Some(password));
        // The same on every host: derived, not random.
        assert_eq!(
            service_role("postgres://admin:s3cret@h/shop", "products").unwrap(),
            a
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
