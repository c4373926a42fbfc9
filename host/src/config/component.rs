//! What the host knows of each component, decided once at start from the manifest and the
//! variables: its variables, and exactly the one database its own `<id>_database` names.

use std::collections::HashMap;

use anyhow::{bail, Result};

use crate::config::database_url::{address_host_port, is_postgres_url};
use crate::config::manifest::ComponentDecl;
use crate::config::variables::{env_var_name, AppVariables, ComponentVariables};

/// A component variable `<service>_database` names that service's database: a SQLite label or
/// a Postgres URL. A component reads its own, `<id>_database`; under Spin, a component that
/// embeds another service as a dependency carries that service's variable too.
pub const DATABASE_SUFFIX: &str = "_database";

/// The variable that names component `id`'s own database.
pub fn database_variable(id: &str) -> String {
    format!("{id}{DATABASE_SUFFIX}")
}

/// What the host knows of one component, built once at start and shared by its requests.
#[derive(Debug)]
pub struct ComponentConfig {
    /// The component's id in the manifest.
    pub id: String,
    /// Its resolved variables.
    pub variables: ComponentVariables,
    /// The SQLite labels it may open: the one its own `<id>_database` variable names, if any.
    pub sqlite_databases: Vec<String>,
    /// The Postgres URL it may open: the one its own `<id>_database` variable names, if any.
    pub postgres_database: Option<String>,
    /// The outbound hosts it may reach.
    pub allowed_outbound_hosts: Vec<String>,
    /// Its WASI environment variables.
    pub environment: Vec<(String, String)>,
}

/// The values `--database-url` gives the manifest's `db_host` and `db_port` variables (the
/// templates of `allowed_outbound_hosts`) unless the environment sets them, keyed by their
/// `SPIN_VARIABLE_*` names.
pub fn server_variables(url: &str) -> Result<HashMap<String, String>> {
    let (host, port) =
        address_host_port(url).map_err(|reason| anyhow::anyhow!("--database-url: {reason}"))?;
    Ok(HashMap::from([
        (env_var_name("db_host"), host),
        (env_var_name("db_port"), port.to_string()),
    ]))
}

/// What the host gives component `id`: its variables, and exactly the database its own
/// `<id>_database` variable names, which its `sqlite_databases` or `allowed_outbound_hosts`
/// must permit. `role_url` is its Postgres login when `--database-url` provisions one.
pub fn component_config(
    id: &str,
    decl: &ComponentDecl,
    app_variables: &AppVariables,
    role_url: Option<&str>,
) -> Result<ComponentConfig> {
    let mut variables = ComponentVariables::resolve(id, &decl.variables, app_variables)?;
    let own = database_variable(id);
    // A service embedded under Spin (a dependency) runs here in its own instance, with its own
    // configuration: the importer sees neither its database nor its variable.
    let foreign: Vec<String> = variables
        .names()
        .filter(|name| name.ends_with(DATABASE_SUFFIX) && *name != own)
        .map(str::to_string)
        .collect();
    for name in foreign {
        variables.remove(&name);
    }
    if let Some(url) = role_url {
        variables.set(&own, url.to_owned());
    }
    let allowed_outbound_hosts = decl
        .allowed_outbound_hosts
        .iter()
        .map(|entry| {
            app_variables.expand(entry).map_err(|err| {
                anyhow::anyhow!("component `{id}`, allowed_outbound_hosts entry {entry:?}: {err}")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let sqlite_databases = match variables.get(&own) {
        None => Vec::new(),
        // Whether its allowed_outbound_hosts reach it is checked where the app is loaded.
        Some(url) if is_postgres_url(url) => Vec::new(),
        Some(label) => {
            if !decl.sqlite_databases.iter().any(|l| l == label) {
                bail!(
                    "component `{id}`: its `{own}` variable names the SQLite database `{label}`, \
                     which is not in its sqlite_databases {:?}; add it there or set a postgres:// URL",
                    decl.sqlite_databases
                );
            }
            vec![label.to_string()]
        }
    };
    let postgres_database = variables
        .get(&own)
        .filter(|value| is_postgres_url(value))
        .map(str::to_string);
    Ok(ComponentConfig {
        id: id.to_string(),
        variables,
        sqlite_databases,
        postgres_database,
        allowed_outbound_hosts,
        environment: decl
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

/// The address (SQLite label or Postgres URL) of a component's own database, if it has one.
pub fn own_database(config: &ComponentConfig) -> Option<&str> {
    config.variables.get(&database_variable(&config.id))
}
