//! Loading the app: every check that can fail happens here, before a port is opened; each
//! error names the thing at fault and the fix, and stops the host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::app::served::{version_of, App, AppOptions, ServedComponent, ServedVersion};
use crate::capabilities::outbound::check_address_allowed;
use crate::capabilities::postgres::provision;
use crate::capabilities::postgres::{self as postgres, PostgresPools};
use crate::capabilities::sqlite::{self as sqlite, SqliteDatabases};
use crate::capabilities::Databases;
use crate::config::component::{
    component_config, database_variable, own_database, server_variables, ComponentConfig,
};
use crate::config::database_url::{self, is_postgres_url};
use crate::config::manifest::{ComponentDecl, Manifest, RuntimeConfig};
use crate::config::secrets;
use crate::config::variables::AppVariables;
use crate::links::{self, Link, Links, Provider, ProviderTable, Split};
use crate::runtime::engine;
use crate::runtime::store::{self, HostState};

/// Reads the manifest, resolves variables, opens and migrates the databases.
pub(crate) async fn load_data(options: &AppOptions) -> Result<AppData> {
    let manifest = Manifest::load(&options.manifest)?;
    tracing::debug!(app = %manifest.name, manifest = %manifest.path.display(), "loading");
    let runtime_config = load_runtime_config(&manifest, options.runtime_config.as_deref())?;
    if let Some(url) = &options.database_url {
        database_url::check_database_url(url)?;
    }

    let env = |name: &str| std::env::var(name).ok();
    let generated = if options.database_url.is_none() {
        secrets::local_secrets(&manifest.variables, Path::new(secrets::DATA_DIR), env)?
    } else {
        Default::default()
    };
    let server = match &options.database_url {
        Some(url) => server_variables(url)?,
        None => Default::default(),
    };
    let app_variables = AppVariables::resolve(&manifest.variables, |name| {
        env(name)
            .or_else(|| generated.get(name).cloned())
            .or_else(|| server.get(name).cloned())
    })?;
    secrets::check_key_pairs(&manifest.variables, &app_variables)?;
    let served_ids = served_component_ids(&manifest);
    let mut configs = Vec::with_capacity(served_ids.len());
    let mut roles = Vec::new();
    for id in &served_ids {
        let decl = &manifest.components[id];
        check_source_exists(&manifest, id, decl)?;
        let role = match &options.database_url {
            Some(url) if decl.variables.contains_key(&database_variable(id)) => {
                Some(provision::service_role(url, id)?)
            }
            _ => None,
        };
        let config = component_config(
            id,
            decl,
            &app_variables,
            role.as_ref().map(|r| r.url.as_str()),
        )?;
        check_database_reachable(&config)?;
        configs.push(config);
        roles.extend(role);
    }

    if let Some(url) = &options.database_url {
        // One connection now, so that an unreachable Postgres stops the host at once; then
        // each service gets the role it logs in as.
        postgres::migrate::connect_postgres(url).await?;
        provision::provision(url, &roles).await?;
    }
    let postgres = PostgresPools::new(options.postgres_pool_size)
        .with_acquire_timeout(options.postgres_acquire_timeout);
    let databases = open_databases(&configs, &runtime_config, postgres).await?;
    for config in &configs {
        apply_migrations(
            &manifest,
            config,
            &databases,
            options.migrate,
            options.database_url.is_none(),
        )
        .await?;
    }

    Ok(AppData {
        manifest,
        configs,
        databases,
    })
}

/// The app's data side, ready: manifest read, variables resolved, databases open and migrated.
pub(crate) struct AppData {
    pub manifest: Manifest,
    pub configs: Vec<ComponentConfig>,
    pub databases: Databases,
}

/// Loads and checks the app: every error names the thing at fault and the fix.
pub async fn load(options: &AppOptions) -> Result<App> {
    let AppData {
        manifest,
        configs,
        databases,
    } = load_data(options).await?;
    let engine = engine::build(&options.limits)?;
    engine::start_epoch_ticker(&engine)?;
    let mut compiled = Vec::with_capacity(configs.len());
    for config in &configs {
        let decl = &manifest.components[&config.id];
        compiled.push(compile_component(&engine, &manifest, &config.id, decl)?);
    }
    let named: Vec<(&str, &Component)> = configs
        .iter()
        .map(|c| c.id.as_str())
        .zip(&compiled)
        .collect();
    let plan = links::plan(&engine, &named, &|id, interface| {
        declares_dependency(&manifest, id, interface)
    })?;
    warn_unless_spin_links(&manifest, &configs, &plan);

    let links = Links::default();
    let mut linker = store::linker(&engine)?;
    links.define(&mut linker, &plan)?;
    let mut components = Vec::with_capacity(configs.len());
    for (config, component) in configs.into_iter().zip(&compiled) {
        let pre = link_component(&linker, &config.id, component)?;
        let path = manifest.source_path(&manifest.components[&config.id]);
        let bytes = std::fs::read(&path).with_context(|| {
            format!("component `{}`: cannot read {}", config.id, path.display())
        })?;
        let version = ServedVersion::new(pre, version_of(&bytes));
        components.push(ServedComponent::new(Arc::new(config), version));
    }
    let serving: Vec<_> = components.iter().map(|c| c.serving()).collect();
    links.install(providers(&components, &serving, &plan)?);
    Ok(App {
        manifest,
        engine,
        components,
        databases,
        limits: options.limits,
        linker,
        links,
    })
}

fn load_runtime_config(manifest: &Manifest, path: Option<&Path>) -> Result<RuntimeConfig> {
    match path {
        Some(path) => RuntimeConfig::load(path),
        None => {
            let default = manifest.dir.join("runtime-config.toml");
            if default.exists() {
                RuntimeConfig::load(&default)
            } else {
                Ok(RuntimeConfig::default())
            }
        }
    }
}

/// The components of the HTTP triggers, each once, in manifest order. A component with a
/// private route (`route = { private = true }`) serves no URL, but its exports can be linked.
fn served_component_ids(manifest: &Manifest) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for trigger in &manifest.http_triggers {
        if !ids.contains(&trigger.component) {
            ids.push(trigger.component.clone());
        }
    }
    ids
}

pub(crate) fn check_source_exists(
    manifest: &Manifest,
    id: &str,
    decl: &ComponentDecl,
) -> Result<()> {
    let path = manifest.source_path(decl);
    if path.is_file() {
        return Ok(());
    }
    let how = match &decl.build {
        Some(build) => format!(
            "build it with `{}` (its [component.{id}.build] command), or run `shop build` or `shop up --build`",
            build.command
        ),
        None => format!("component `{id}` has no build command: put its Wasm file there"),
    };
    bail!(
        "component `{id}`: its source {} does not exist; {how}",
        path.display()
    )
}

/// Checks that a component's allowed_outbound_hosts reach its own Postgres database.
fn check_database_reachable(config: &ComponentConfig) -> Result<()> {
    let Some(url) = &config.postgres_database else {
        return Ok(());
    };
    check_address_allowed(url, &config.allowed_outbound_hosts).map_err(|reason| {
        anyhow::anyhow!(
            "component `{}`: its database ({}) is not reachable under its \
             allowed_outbound_hosts {:?}: {reason} (or set the db_host and db_port variables \
             that spin.toml's entries use)",
            config.id,
            database_variable(&config.id),
            config.allowed_outbound_hosts
        )
    })
}

/// Opens every SQLite database the app's variables name, creating folders as needed.
async fn open_databases(
    configs: &[ComponentConfig],
    runtime_config: &RuntimeConfig,
    postgres: PostgresPools,
) -> Result<Databases> {
    let mut paths: HashMap<String, PathBuf> = HashMap::new();
    for config in configs {
        // `sqlite_databases` holds just the label the component's own variable names: with
        // --database-url none, and no stray SQLite file appears (nor fails on a read-only
        // filesystem).
        for label in &config.sqlite_databases {
            let path = runtime_config.sqlite_path(label);
            private_database_file(&path)
                .with_context(|| format!("preparing SQLite database `{label}`"))?;
            paths.insert(label.clone(), path);
        }
    }
    let sqlite = SqliteDatabases::open(paths.clone()).await?;
    for path in paths.values() {
        // SQLite makes the -wal and -shm files with the database's mode; earlier versions of
        // the host made them with the umask's, so they are set again on every start.
        for suffix in ["-wal", "-shm"] {
            let mut side = path.clone().into_os_string();
            side.push(suffix);
            secrets::set_mode_if_present(Path::new(&side), 0o600)?;
        }
    }
    Ok(Databases {
        sqlite: Arc::new(sqlite),
        postgres: Arc::new(postgres),
    })
}

/// Makes the folders of a SQLite file (0700) and the file itself (0600) if they are missing,
/// and makes the data folder 0700 and the file 0600 if they were not: the databases hold
/// password hashes and orders, for the host's user only.
fn private_database_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        secrets::create_private_dir(parent)?;
        // The data folder of a local run; a folder the operator chose keeps its mode.
        if parent.file_name() == Some(std::ffi::OsStr::new(secrets::DATA_DIR)) {
            secrets::set_mode_if_present(parent, 0o700)?;
        }
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    secrets::set_mode_if_present(path, 0o600)
}

/// Applies `migrations/<id>/{sqlite,postgres}` to the database the component's variable names
/// (unless `migrate` is false: then only a Postgres pool is opened); `warn_shared_login`: say
/// so when a URL the operator gave logs in as a superuser.
async fn apply_migrations(
    manifest: &Manifest,
    config: &ComponentConfig,
    databases: &Databases,
    migrate: bool,
    warn_shared_login: bool,
) -> Result<()> {
    let Some(database) = own_database(config) else {
        return Ok(());
    };
    let dir = manifest.dir.join("migrations").join(&config.id);
    if is_postgres_url(database) {
        if warn_shared_login && provision::is_superuser(database).await? {
            tracing::warn!(
                component = %config.id,
                "its database URL logs in as a superuser, which can read and change every other \
                 service's data: give each service its own role (`shop migrate --database-url`, \
                 README \"Postgres roles\")"
            );
        }
        if migrate {
            postgres::migrate::migrate_postgres(&config.id, database, &dir.join("postgres"))
                .await?;
        }
        // Made now, the pool serves the first request warm and is what /healthz checks.
        databases.postgres.pool(database).await.map_err(|err| {
            anyhow::anyhow!(
                "component `{}`: cannot open its Postgres pool: {err}",
                config.id
            )
        })?;
        Ok(())
    } else {
        let pool = databases.sqlite.pool(database).with_context(|| {
            format!(
                "SQLite database `{database}` of component `{}` is not open",
                config.id
            )
        })?;
        if !migrate {
            return Ok(());
        }
        sqlite::migrate::migrate_sqlite(&config.id, pool, &dir.join("sqlite")).await
    }
}

/// Compiles a component, naming it when its file is not a valid component.
fn compile_component(
    engine: &Engine,
    manifest: &Manifest,
    id: &str,
    decl: &ComponentDecl,
) -> Result<Component> {
    let path = manifest.source_path(decl);
    engine::load_component(engine, &path).map_err(|err| {
        anyhow::anyhow!(
            "component `{id}`: {} is not a valid Wasm component: {err:#}",
            path.display()
        )
    })
}

/// Links a compiled component against the host and the other components' exports, naming any
/// import the host lacks.
pub fn link_component(
    linker: &Linker<HostState>,
    id: &str,
    component: &Component,
) -> Result<ProxyPre<HostState>> {
    let pre = linker.instantiate_pre(component).map_err(|err| {
        anyhow::anyhow!(
            "component `{id}` cannot run on this host: {:#}. The host provides {}",
            anyhow::Error::from(err),
            links::HOST_PROVIDES
        )
    })?;
    ProxyPre::new(pre).map_err(|err| {
        anyhow::anyhow!(
            "component `{id}` is not an HTTP component: it must export wasi:http/incoming-handler@0.2.x ({:#})",
            anyhow::Error::from(err)
        )
    })
}

/// The provider of each linked interface: the component that exports it, in its versions of
/// `serving` (by component index: the stable one, and the canary while one runs).
pub fn providers(
    components: &[ServedComponent],
    serving: &[Split<Arc<ServedVersion>>],
    plan: &[Link],
) -> Result<ProviderTable<HostState>> {
    let mut by_interface = HashMap::new();
    for (index, (component, versions)) in components.iter().zip(serving).enumerate() {
        let exported: Vec<&Link> = plan.iter().filter(|l| l.exporter == index).collect();
        if exported.is_empty() {
            continue;
        }
        let provider = versions.try_map(|version| {
            Provider::new(
                component.config.clone(),
                version.pre.instance_pre().clone(),
                &exported,
            )
            .map(Arc::new)
        })?;
        for link in exported {
            by_interface.insert(link.interface.clone(), provider.clone());
        }
    }
    Ok(by_interface)
}

/// Whether component `id`'s `[component.<id>.dependencies]` in `manifest` names `interface` (or
/// its package): the only imports the host links, as Spin satisfies only those.
pub(crate) fn declares_dependency(manifest: &Manifest, id: &str, interface: &str) -> bool {
    manifest.components.get(id).is_some_and(|decl| {
        decl.dependencies
            .keys()
            .any(|key| links::dependency_covers(key, interface))
    })
}

/// Warns about each link Spin would make without a database: Spin gives a dependency the
/// importer's configuration only with `dependencies_inherit_configuration = true`.
fn warn_unless_spin_links(manifest: &Manifest, configs: &[ComponentConfig], plan: &[Link]) {
    for link in plan {
        for &importer in &link.importers {
            let id = &configs[importer].id;
            let decl = &manifest.components[id];
            if !decl.dependencies_inherit_configuration {
                tracing::warn!(
                    "component `{id}` has dependencies but not `dependencies_inherit_configuration \
                     = true`: under Spin, {} would get no database",
                    link.interface
                );
            }
        }
    }
}
