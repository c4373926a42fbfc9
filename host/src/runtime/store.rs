//! The per-request host state: what a guest's imports reach, and the linker that wires them.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::capabilities::postgres::PostgresView;
use crate::capabilities::sqlite::SqliteView;
use crate::capabilities::variables::VariablesView;
use crate::capabilities::{self, Databases};
use crate::config::component::ComponentConfig;
use crate::links::{LinkHost, LinkedInstances};
use crate::runtime::engine::Limits;

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
    linked: LinkedInstances<HostState>,
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

    /// When the request must be over.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    fn sqlite(&mut self) -> SqliteView<'_> {
        SqliteView {
            table: &mut self.table,
            databases: &self.databases.sqlite,
            allowed: &self.component.sqlite_databases,
            deadline: self.deadline,
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

impl LinkHost for HostState {
    fn component_id(&self) -> &str {
        &self.component.id
    }

    fn link_depth(&self) -> u32 {
        self.link_depth
    }

    fn linked(&self) -> &LinkedInstances<Self> {
        &self.linked
    }

    fn linked_mut(&mut self) -> &mut LinkedInstances<Self> {
        &mut self.linked
    }

    fn provider_store(&self, engine: &Engine, provider: Arc<ComponentConfig>) -> Store<Self> {
        store(engine, self.for_provider(provider))
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
    capabilities::sqlite::add_to_linker(&mut linker, HostState::sqlite)?;
    capabilities::postgres::add_to_linker(&mut linker, HostState::postgres)?;
    capabilities::variables::add_to_linker(&mut linker, HostState::variables)?;
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
