//! Calls through links on the real store: one kept provider instance per request, and a trap
//! in the provider failing the caller's call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store};

use crate::capabilities::postgres::PostgresPools;
use crate::capabilities::sqlite::SqliteDatabases;
use crate::capabilities::Databases;
use crate::config::component::ComponentConfig;
use crate::links::test_components::{component, exporter_wat, CALLER};
use crate::links::{plan, Link, LinkHost, Links, Provider, Split};
use crate::runtime::engine;
use crate::runtime::store::{self, HostState};

fn config(id: &str) -> Arc<ComponentConfig> {
    Arc::new(ComponentConfig {
        id: id.to_string(),
        variables: Default::default(),
        sqlite_databases: Vec::new(),
        postgres_database: None,
        allowed_outbound_hosts: Vec::new(),
        environment: Vec::new(),
    })
}

/// The caller, linked to `provider` through a registry, on the host's own engine.
fn linked_caller(provider: &str) -> (Engine, InstancePre<HostState>) {
    let engine = engine::build(&Default::default()).unwrap();
    let p = component(&engine, provider);
    let c = component(&engine, CALLER);
    let plan = plan(&engine, &[("p", &p), ("c", &c)], &|_, _| true).unwrap();
    let links = Links::default();
    let mut linker = store::linker(&engine).unwrap();
    links.define(&mut linker, &plan).unwrap();
    let p_pre = linker.instantiate_pre(&p).unwrap();
    let c_pre = linker.instantiate_pre(&c).unwrap();
    let exported: Vec<&Link> = plan.iter().collect();
    let provider = Provider::new(config("p"), p_pre, &exported).unwrap();
    links.install(HashMap::from([(
        "shop:p/i@0.1.0".to_string(),
        Split::only(Arc::new(provider)),
    )]));
    (engine, c_pre)
}

async fn request_store(engine: &Engine) -> Store<HostState> {
    let databases = Databases {
        sqlite: Arc::new(SqliteDatabases::open(HashMap::new()).await.unwrap()),
        postgres: Arc::new(PostgresPools::new(1)),
    };
    store::store(
        engine,
        HostState::new(config("c"), databases, Default::default()),
    )
}

#[tokio::test]
async fn a_call_runs_in_one_kept_instance_of_the_provider() {
    let (engine, caller) = linked_caller(&exporter_wat(&["get", "put"], "local.get 0"));
    let mut store = request_store(&engine).await;
    let instance = caller.instantiate_async(&mut store).await.unwrap();
    let run = instance
        .get_typed_func::<(i64,), (i64,)>(&mut store, "run")
        .unwrap();
    assert_eq!(run.call_async(&mut store, (41,)).await.unwrap(), (42,));
    assert_eq!(store.data().linked().len(), 1);

    // The cost of a call through a link, the provider instance kept (as in a request).
    let calls = 20_000;
    let started = Instant::now();
    for i in 0..calls {
        assert_eq!(run.call_async(&mut store, (i,)).await.unwrap(), (i + 1,));
    }
    let kept = started.elapsed() / calls as u32;
    assert_eq!(store.data().linked().len(), 1);

    // The cost of a request that makes one call: caller and provider instantiated.
    let requests = 2_000;
    let started = Instant::now();
    for i in 0..requests {
        let mut store = request_store(&engine).await;
        let instance = caller.instantiate_async(&mut store).await.unwrap();
        let run = instance
            .get_typed_func::<(i64,), (i64,)>(&mut store, "run")
            .unwrap();
        assert_eq!(run.call_async(&mut store, (i,)).await.unwrap(), (i + 1,));
    }
    let fresh = started.elapsed() / requests as u32;
    eprintln!(
        "a call through a link: {kept:?} (provider kept); a request with one call: {fresh:?}"
    );
}

#[tokio::test]
async fn a_trap_in_the_provider_fails_the_callers_call() {
    let (engine, caller) = linked_caller(&exporter_wat(&["get"], "unreachable"));
    let mut store = request_store(&engine).await;
    let instance = caller.instantiate_async(&mut store).await.unwrap();
    let run = instance
        .get_typed_func::<(i64,), (i64,)>(&mut store, "run")
        .unwrap();
    let err = run.call_async(&mut store, (1,)).await.unwrap_err();
    let err = format!("{err:?}");
    assert!(
        err.contains("component `p` failed in `get` of shop:p/i@0.1.0, called by component `c`"),
        "{err}"
    );
    assert!(store.data().linked().is_empty());
}
