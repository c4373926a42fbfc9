//! `shop up`: loads the app described by `spin.toml`, prepares everything a request needs,
//! and serves it.
//!
//! Every check that can fail happens here, before the port is opened: each error names the
//! thing at fault and the fix, and stops the host.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use tokio::net::TcpListener;
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::engine::Limits;
use crate::links::{self, Link, Links, Provider, ProviderTable};
use crate::manifest::{ComponentDecl, Manifest, RuntimeConfig};
use crate::migrate;
use crate::postgres::PostgresPools;
use crate::provision::{self, ServiceRole};
use crate::router::{Route, Router};
use crate::secrets;
use crate::sqlite::SqliteDatabases;
use crate::state::{ComponentConfig, Databases, HostState};
use crate::variables::{env_var_name, AppVariables, ComponentVariables};

/// A component variable `<service>_database` names that service's database: a SQLite label or
/// a Postgres URL. A component reads its own, `<id>_database`; under Spin, a component that
/// embeds another service as a dependency carries that service's variable too.
const DATABASE_SUFFIX: &str = "_database";

/// The variable that names component `id`'s own database.
fn database_variable(id: &str) -> String {
    format!("{id}{DATABASE_SUFFIX}")
}

/// The default for the most Postgres connections per pool (one pool per service schema):
/// four services on one host stay under a default server's 100 connections.
pub const POSTGRES_POOL_SIZE: u32 = 16;

/// Where the app and its data are: what every command that loads the app needs.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// The manifest to serve.
    pub manifest: PathBuf,
    /// The runtime config; `None` means `runtime-config.toml` next to the manifest, if present.
    pub runtime_config: Option<PathBuf>,
    /// A Postgres URL that replaces every component's `database` variable.
    pub database_url: Option<String>,
    /// Whether to run `shop build` first.
    pub build: bool,
    /// Whether to apply the services' migrations (`shop up --no-migrate` leaves the schema to
    /// the services, as under `spin up`).
    pub migrate: bool,
    /// The most connections each Postgres pool (one per service schema) may open.
    pub postgres_pool_size: u32,
    /// How long a request waits for a pooled Postgres connection.
    pub postgres_acquire_timeout: Duration,
    /// The bounds on every request.
    pub limits: Limits,
}

/// The command-line options of `shop up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The app to serve.
    pub app: AppOptions,
    /// The address to listen on.
    pub listen: String,
    /// How long shutdown waits for the requests in flight.
    pub shutdown_timeout: Duration,
    /// Whether to swap a component when its source file changes.
    pub watch: bool,
    /// The token of the admin API (`/_admin/...`); `None` keeps the API off.
    pub admin_token: Option<String>,
    /// Where the admin API listens (its own listener, `--admin-listen`).
    pub admin_listen: Option<String>,
    /// How the server holds against slow clients and floods.
    pub edge: crate::server::Edge,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<crate::client_addr::AddrBlock>,
}

/// The app loaded and checked: components compiled and linked, databases open and migrated.
pub struct LoadedApp {
    /// The manifest it came from.
    pub manifest: Manifest,
    /// The engine every component is compiled for.
    pub engine: Engine,
    /// The components, in manifest order.
    pub components: Vec<ServedComponent>,
    /// The databases.
    pub databases: Databases,
    /// The bounds on every request.
    pub limits: Limits,
    /// The linker every component was linked with (a swapped-in version is linked with it too).
    pub linker: Linker<HostState>,
    /// The providers of the linked interfaces.
    pub links: Links,
}

/// One component ready to serve: its configuration and its current code, which a hot swap
/// replaces while requests run.
pub struct ServedComponent {
    /// What the host knows of the component.
    pub config: Arc<ComponentConfig>,
    current: RwLock<Arc<ServedVersion>>,
}

/// One version of a component's code.
pub struct ServedVersion {
    /// The component linked against the host, ready for a fresh instance per request.
    pub pre: ProxyPre<HostState>,
    /// The SHA-256 of its Wasm bytes, in hex.
    pub version: String,
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

impl ServedComponent {
    /// A component served by `version`.
    pub fn new(config: Arc<ComponentConfig>, version: ServedVersion) -> Self {
        Self {
            config,
            current: RwLock::new(Arc::new(version)),
        }
    }

    /// The version new requests run on; a request takes it once and keeps it to its end.
    pub fn current(&self) -> Arc<ServedVersion> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `version` the one new requests run on.
    pub fn replace(&self, version: Arc<ServedVersion>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = version;
    }
}

/// Everything a request needs, built once at start.
pub struct App {
    /// The engine every component is compiled for.
    pub engine: Engine,
    /// The HTTP routes.
    pub router: Router,
    /// The served components; routes refer to them by index.
    pub components: Vec<ServedComponent>,
    /// The databases.
    pub databases: Databases,
    /// The bounds on every request.
    pub limits: Limits,
    /// Hot swap: the linker, the links, the sources and the admin token.
    pub swap: crate::swap::Swapper,
    /// The proxies whose `X-Forwarded-For` names the client (`spin-client-addr`).
    pub trusted_proxies: Vec<crate::client_addr::AddrBlock>,
}

/// Loads, checks and serves the app until Ctrl-C or SIGTERM.
pub async fn up(options: UpOptions) -> Result<()> {
    let LoadedApp {
        manifest,
        engine,
        components,
        databases,
        limits,
        linker,
        links,
    } = load(&options.app).await?;
    let router = build_router(&manifest, &components)?;
    let admin_listen = match (&options.admin_token, &options.admin_listen) {
        (Some(_), Some(listen)) => Some(admin_address(listen)),
        (None, None) => None,
        (Some(_), None) => bail!(
            "the admin API has a token but no listener: add --admin-listen 127.0.0.1:3001 (it \
             is never served on the public --listen address)"
        ),
        (None, Some(_)) => bail!(
            "--admin-listen needs the admin token: --admin-token-file PATH or SHOP_ADMIN_TOKEN"
        ),
    };
    let admin_listener = match &admin_listen {
        Some(listen) => Some(bind(listen).await?),
        None => None,
    };
    let listener = bind(&options.listen).await?;
    let sources = components
        .iter()
        .map(|c| manifest.source_path(&manifest.components[&c.config.id]))
        .collect();
    let app = Arc::new(App {
        engine,
        router,
        components,
        databases,
        limits,
        swap: crate::swap::Swapper::new(linker, links, sources, options.admin_token.clone()),
        trusted_proxies: options.trusted_proxies.clone(),
    });
    if options.watch {
        tokio::spawn(crate::swap::watch(app.clone()));
    }
    if let Some(admin_listener) = admin_listener {
        println!(
            "Admin API on http://{}{}components",
            admin_listener.local_addr()?,
            crate::swap::ADMIN_PREFIX
        );
        tokio::spawn(crate::server::serve_admin(
            app.clone(),
            admin_listener,
            options.edge,
        ));
    }
    print_routes(&app, listener.local_addr()?);
    crate::server::serve(
        app,
        listener,
        shutdown_signal(),
        options.shutdown_timeout,
        options.edge,
    )
    .await
}

/// Applies every service's migrations to the databases `shop up` would use (provisioning each
/// service's role with `--database-url`), and stops: the step a deployment on Spin needs before
/// `spin up`. `print_urls`: also print the variable that gives each service its own login.
pub async fn migrate(options: &AppOptions, print_urls: bool) -> Result<()> {
    let data = load_data(options).await?;
    for config in &data.configs {
        match &config.postgres_database {
            Some(url) if print_urls => {
                println!("{}={url}", env_var_name(&database_variable(&config.id)))
            }
            // stdout stays a list of variables for the shell to read.
            _ if print_urls => eprintln!("migrated `{}`", config.id),
            _ => println!("migrated `{}`", config.id),
        }
    }
    Ok(())
}

/// Compiles every component of the manifest into the cache next to its source, reporting the
/// time each took (no time: the cache was already current).
pub fn compile(manifest: &Manifest) -> Result<()> {
    let engine = crate::engine::build(&Limits::default())?;
    for (id, decl) in &manifest.components {
        check_source_exists(manifest, id, decl)?;
        let path = manifest.source_path(decl);
        let started = std::time::Instant::now();
        let fresh = crate::engine::cache_current(&engine, &path)?;
        crate::engine::load_component(&engine, &path)
            .with_context(|| format!("component `{id}`: cannot compile {}", path.display()))?;
        if fresh {
            println!("{id}: cached compile is current");
        } else {
            println!("{id}: compiled in {:.2?}", started.elapsed());
        }
    }
    Ok(())
}

/// Reads the manifest, resolves variables, opens and migrates the databases.
async fn load_data(options: &AppOptions) -> Result<AppData> {
    let manifest = Manifest::load(&options.manifest)?;
    tracing::debug!(app = %manifest.name, manifest = %manifest.path.display(), "loading");
    if options.build {
        crate::build::build_all(&manifest).await?;
    }
    let runtime_config = load_runtime_config(&manifest, options.runtime_config.as_deref())?;
    if let Some(url) = &options.database_url {
        migrate::check_database_url(url)?;
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
        configs.push(component_config(id, decl, &app_variables, role.as_ref())?);
        roles.extend(role);
    }

    if let Some(url) = &options.database_url {
        // One connection now, so that an unreachable Postgres stops the host at once; then
        // each service gets the role it logs in as.
        migrate::connect_postgres(url).await?;
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
struct AppData {
    manifest: Manifest,
    configs: Vec<ComponentConfig>,
    databases: Databases,
}

/// Loads and checks the app: every error names the thing at fault and the fix.
pub async fn load(options: &AppOptions) -> Result<LoadedApp> {
    let AppData {
        manifest,
        configs,
        databases,
    } = load_data(options).await?;
    let engine = crate::engine::build(&options.limits)?;
    crate::engine::start_epoch_ticker(&engine)?;
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
    let plan = links::plan(&engine, &named)?;
    warn_unless_spin_links(&manifest, &configs, &plan);

    let links = Links::default();
    let mut linker = crate::state::linker(&engine)?;
    links.define(&mut linker, &plan)?;
    let mut components = Vec::with_capacity(configs.len());
    for (config, component) in configs.into_iter().zip(&compiled) {
        let pre = link_component(&linker, &config.id, component)?;
        let path = manifest.source_path(&manifest.components[&config.id]);
        let bytes = std::fs::read(&path).with_context(|| {
            format!("component `{}`: cannot read {}", config.id, path.display())
        })?;
        let version = ServedVersion {
            pre,
            version: crate::swap::version_of(&bytes),
            loaded_at: SystemTime::now(),
        };
        components.push(ServedComponent::new(Arc::new(config), version));
    }
    let current: Vec<Arc<ServedVersion>> = components.iter().map(|c| c.current()).collect();
    links.install(providers(&components, &current, &plan)?);
    Ok(LoadedApp {
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

fn check_source_exists(manifest: &Manifest, id: &str, decl: &ComponentDecl) -> Result<()> {
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

/// The values `--database-url` gives the manifest's `db_host` and `db_port` variables (the
/// templates of `allowed_outbound_hosts`) unless the environment sets them, keyed by their
/// `SPIN_VARIABLE_*` names.
fn server_variables(url: &str) -> Result<HashMap<String, String>> {
    let (host, port) = crate::postgres::address_host_port(url)
        .map_err(|reason| anyhow::anyhow!("--database-url: {reason}"))?;
    Ok(HashMap::from([
        (env_var_name("db_host"), host),
        (env_var_name("db_port"), port.to_string()),
    ]))
}

/// What the host gives component `id`: its variables, and exactly the database its own
/// `<id>_database` variable names, which its `sqlite_databases` or `allowed_outbound_hosts`
/// must permit. `role` is its Postgres login when `--database-url` provisions one.
fn component_config(
    id: &str,
    decl: &ComponentDecl,
    app_variables: &AppVariables,
    role: Option<&ServiceRole>,
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
    if let Some(role) = role {
        variables.set(&own, role.url.clone());
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
        Some(url) if is_postgres_url(url) => {
            if let Err(reason) =
                crate::postgres::check_address_allowed(url, &allowed_outbound_hosts)
            {
                bail!(
                    "component `{id}`: its database ({own}) is not reachable under its \
                     allowed_outbound_hosts {allowed_outbound_hosts:?}: {reason} (or set the \
                     db_host and db_port variables that spin.toml's entries use)"
                );
            }
            Vec::new()
        }
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
pub(crate) fn own_database(config: &ComponentConfig) -> Option<&str> {
    config.variables.get(&database_variable(&config.id))
}

pub(crate) use shop_database_address::is_postgres_url;

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
            migrate::migrate_postgres(&config.id, database, &dir.join("postgres")).await?;
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
        migrate::migrate_sqlite(&config.id, pool, &dir.join("sqlite")).await
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
    crate::engine::load_component(engine, &path).map_err(|err| {
        anyhow::anyhow!(
            "component `{id}`: {} is not a valid Wasm component: {err:#}",
            path.display()
        )
    })
}

/// Links a compiled component against the host and the other components' exports, naming any
/// import the host lacks.
pub(crate) fn link_component(
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

/// The provider of each linked interface: the component that exports it, in its version of
/// `versions` (by component index).
pub(crate) fn providers(
    components: &[ServedComponent],
    versions: &[Arc<ServedVersion>],
    plan: &[Link],
) -> Result<ProviderTable> {
    let mut by_interface = HashMap::new();
    for (index, (component, version)) in components.iter().zip(versions).enumerate() {
        let exported: Vec<&Link> = plan.iter().filter(|l| l.exporter == index).collect();
        if exported.is_empty() {
            continue;
        }
        let provider = Arc::new(Provider::new(
            component.config.clone(),
            version.pre.instance_pre().clone(),
            &exported,
        )?);
        for link in exported {
            by_interface.insert(link.interface.clone(), provider.clone());
        }
    }
    Ok(by_interface)
}

/// Warns about each link Spin would not make from the same manifest: Spin satisfies an import
/// only through the importer's `[component.<id>.dependencies]`, and gives the dependency a
/// database only with `dependencies_inherit_configuration = true`.
fn warn_unless_spin_links(manifest: &Manifest, configs: &[ComponentConfig], plan: &[Link]) {
    for link in plan {
        let exporter = &configs[link.exporter].id;
        for &importer in &link.importers {
            let id = &configs[importer].id;
            let decl = &manifest.components[id];
            if !decl
                .dependencies
                .keys()
                .any(|key| links::dependency_covers(key, &link.interface))
            {
                tracing::warn!(
                    "component `{id}` imports {} (linked here to component `{exporter}`), but \
                     [component.{id}.dependencies] in {} has no entry for it: `spin up` would \
                     refuse the app; add `\"{}\" = {{ path = \"...{exporter}.wasm\" }}`",
                    link.interface,
                    manifest.path.display(),
                    link.interface
                );
            } else if !decl.dependencies_inherit_configuration {
                tracing::warn!(
                    "component `{id}` has dependencies but not `dependencies_inherit_configuration \
                     = true`: under Spin, {} would get no database",
                    link.interface
                );
            }
        }
    }
}

fn build_router(manifest: &Manifest, components: &[ServedComponent]) -> Result<Router> {
    let index: BTreeMap<&str, usize> = components
        .iter()
        .enumerate()
        .map(|(i, c)| (c.config.id.as_str(), i))
        .collect();
    let mut routes = Vec::new();
    for trigger in &manifest.http_triggers {
        let Some(route) = &trigger.route else {
            continue;
        };
        if route == "/healthz" {
            // The host answers its health check itself (every database of the app); the route
            // is there for Spin, which has no health check of its own.
            continue;
        }
        let component = index[trigger.component.as_str()];
        routes.push(
            Route::parse(route, component)
                .with_context(|| format!("invalid manifest {}", manifest.path.display()))?,
        );
    }
    Router::new(routes).with_context(|| format!("invalid manifest {}", manifest.path.display()))
}

async fn bind(listen: &str) -> Result<TcpListener> {
    match TcpListener::bind(listen).await {
        Ok(listener) => Ok(listener),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "{listen} is already in use: stop the program that listens there, or choose another address with --listen (e.g. --listen 127.0.0.1:3001)"
        ),
        Err(err) => bail!("cannot listen on {listen}: {err}; choose another address with --listen"),
    }
}

/// `--admin-listen`'s address: a bare port is on loopback.
fn admin_address(listen: &str) -> String {
    if listen.parse::<u16>().is_ok() {
        format!("127.0.0.1:{listen}")
    } else {
        listen.to_owned()
    }
}

/// Prints the address and the routes, as `spin up` does.
fn print_routes(app: &App, addr: std::net::SocketAddr) {
    use std::io::Write;
    let base = format!("http://{addr}");
    let mut out = String::new();
    out.push_str(&format!("Serving {base}\nAvailable Routes:\n"));
    for route in app.router.routes() {
        let id = &app.components[route.component].config.id;
        let wildcard = if route.wildcard { " (wildcard)" } else { "" };
        out.push_str(&format!("  {id}: {base}{}{wildcard}\n", route.prefix));
    }
    out.push_str(&format!("  (health check): {base}/healthz\n"));
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down: draining requests in flight");
}
