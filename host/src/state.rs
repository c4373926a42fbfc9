//! The per-request host state: what a guest's imports reach, and the linker that wires them.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::engine::Limits;
use crate::links::LinkedInstances;
use crate::postgres::{PostgresPools, PostgresView};
use crate::sqlite::{SqliteDatabases, SqliteView};
use crate::variables::{ComponentVariables, VariablesView};

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

/// The databases every request may reach, shared by all stores.
#[derive(Clone)]
pub struct Databases {
    /// The SQLite files, by label.
    pub sqlite: Arc<SqliteDatabases>,
    /// The Postgres pools, by address.
    pub postgres: Arc<PostgresPools>,
}

impl Databases {
    /// Checks that the database at `address` (a SQLite label or a `postgres://` URL) answers.
    pub async fn check_address(&self, address: &str) -> Result<()> {
        if crate::app::is_postgres_url(address) {
            self.postgres.check_address(address).await
        } else {
            self.sqlite.check_label(address).await
        }
    }
}

/// The data of one request's `Store`.
pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHttpDenied,
    component: Arc<ComponentConfig>,
    databases: Databases,
    /// When the request must be over: the deadline of the instances its links make too.
    deadline: Instant,
    /// The bounds of every instance the request makes.
    limits: Limits,
    /// This store's share of them, as wasmtime checks them.
    store_limits: StoreLimits,
    /// How many links separate this store from the request's own: 0 for the request's.
    link_depth: u32,
    /// The instances of other components this store's calls through links have made.
    linked: LinkedInstances,
}

impl HostState {
    /// A fresh state for one request to `component`, which must be over within the
    /// request timeout of `limits`.
    pub fn new(component: Arc<ComponentConfig>, databases: Databases, limits: Limits) -> Self {
        let deadline = Instant::now() + limits.request_timeout;
        Self::with(component, databases, limits, deadline, 0)
    }

    /// The state of an instance of `component` that serves this store's calls through a link:
    /// the provider's own configuration, the same databases and deadline.
    pub fn for_provider(&self, component: Arc<ComponentConfig>) -> Self {
        Self::with(
            component,
            self.databases.clone(),
            self.limits,
            self.deadline,
            self.link_depth + 1,
        )
    }

    fn with(
        component: Arc<ComponentConfig>,
        databases: Databases,
        limits: Limits,
        deadline: Instant,
        link_depth: u32,
    ) -> Self {
        let wasi = WasiCtxBuilder::new()
            .inherit_stderr()
            .envs(&component.environment)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_resources);
        // A guest past its memory traps at once, naming the cause, rather than seeing
        // `memory.grow` fail and aborting with a bare `unreachable`.
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.max_memory)
            .table_elements(limits.max_table_elements)
            .trap_on_grow_failure(true)
            .build();
        Self {
            table,
            wasi,
            http: WasiHttpCtx::new(),
            hooks: OutboundHttpDenied,
            component,
            databases,
            deadline,
            limits,
            store_limits,
            link_depth,
            linked: LinkedInstances::default(),
        }
    }

    /// The id of the component this store runs.
    pub fn component_id(&self) -> &str {
        &self.component.id
    }

    /// When the request must be over.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// How many links separate this store from the request's own store.
    pub fn link_depth(&self) -> u32 {
        self.link_depth
    }

    /// The provider instances this store has made.
    pub fn linked(&self) -> &LinkedInstances {
        &self.linked
    }

    /// The provider instances this store has made, to add or drop one.
    pub fn linked_mut(&mut self) -> &mut LinkedInstances {
        &mut self.linked
    }

    fn sqlite(&mut self) -> SqliteView<'_> {
        SqliteView {
            table: &mut self.table,
            databases: &self.databases.sqlite,
            allowed: &self.component.sqlite_databases,
        }
    }

    fn postgres(&mut self) -> PostgresView<'_> {
        PostgresView {
            table: &mut self.table,
            pools: &self.databases.postgres,
            database: self.component.postgres_database.as_deref(),
            allowed_outbound_hosts: &self.component.allowed_outbound_hosts,
        }
    }

    fn variables(&mut self) -> VariablesView<'_> {
        VariablesView {
            variables: &self.component.variables,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// A store for `state`, bounded by its limits: the memory, table and resource caps of one
/// instance, and the request's deadline. A guest that runs on is checked every epoch tick:
/// it yields its thread to the other requests, and traps once the deadline has passed.
pub fn store(engine: &Engine, state: HostState) -> Store<HostState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.store_limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|store| {
        Ok(if Instant::now() >= store.data().deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        })
    });
    store
}

/// The linker every component is instantiated with: WASI 0.2, `wasi:http` and Spin's interfaces
/// (the links between components are added to it by `links::Links::define`).
pub fn linker(engine: &wasmtime::Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::sqlite::add_to_linker(&mut linker, HostState::sqlite)?;
    crate::postgres::add_to_linker(&mut linker, HostState::postgres)?;
    crate::variables::add_to_linker(&mut linker, HostState::variables)?;
    Ok(linker)
}

/// Outgoing HTTP is not offered to components: no route of the shop needs it.
struct OutboundHttpDenied;

type SendRequestFuture = Box<
    dyn std::future::Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<wasmtime_wasi_http::WasiBody>,
                Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttpDenied {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendRequestFuture {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}
