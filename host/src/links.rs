//! The links between components: a component's import that the host does not provide is
//! served by the one component of the app that exports that interface.
//!
//! A call through a link runs in an instance of the EXPORTING component, with that
//! component's own configuration (variables, databases), made from its pre-instantiated code
//! on the caller's first call and kept for the rest of the caller's request (about 2 µs per
//! call, against about 35 µs with a fresh instance per call). It runs under the same deadline
//! as the request. A provider may itself import another provider: its instance keeps its own
//! links, for as long as it lives.
//!
//! One linker serves every component: the definition of an interface is the same whoever
//! imports it. Each definition forwards [`Val`]s to the provider it finds in [`Links`], a
//! registry the definitions share and that can be replaced as a whole while requests run.
//! Since forwarded values are dynamically typed, [`plan`] compares every linked function's type
//! at load, so that a mismatch stops the host instead of trapping at call time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::{bail, Result};
use wasmtime::component::types::{ComponentInstance, ComponentItem};
use wasmtime::component::{Component, ComponentExportIndex, Instance, InstancePre, Linker, Val};
use wasmtime::{Engine, Store, StoreContextMut};

use crate::state::{ComponentConfig, HostState};
use crate::wit_types::{func_mismatch, render_func};

/// The namespaces of the interfaces the host itself provides (WASI, Spin's interfaces). An
/// import in any other namespace is linked to the component that exports it.
const HOST_NAMESPACES: &[&str] = &["wasi:", "spin:", "fermyon:"];

/// What the host provides, for error messages.
pub const HOST_PROVIDES: &str = "WASI 0.2, wasi:http, spin:sqlite/sqlite@3.0.0, \
                                 spin:postgres/postgres@4.0.0 and fermyon:spin/variables@2.0.0";

/// How deep calls through links may nest (orders -> cart -> products is 2): a deeper chain is
/// a cycle between components, which would otherwise take instance slots until none is left.
pub const MAX_LINK_DEPTH: u32 = 4;

/// Whether imports named `name` are the host's to provide, rather than another component's.
pub fn is_host_interface(name: &str) -> bool {
    HOST_NAMESPACES.iter().any(|ns| name.starts_with(ns))
}

/// One linked interface: the component that exports it and those that import it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface's name, e.g. `shop:cart/carts@0.1.0`.
    pub interface: String,
    /// The index (in the list given to [`plan`]) of the one component that exports it.
    pub exporter: usize,
    /// The indices of the components that import it.
    pub importers: Vec<usize>,
    /// The functions of the interface, as the exporter has them.
    pub functions: Vec<String>,
}

/// Checks every component's imports against the exports of the others and returns the links,
/// by interface: every import the host does not provide must be exported by exactly one
/// component, as an interface whose functions have the types the importer expects.
///
/// `components` are `(id, component)` pairs; each error names the component and the import.
pub fn plan(engine: &Engine, components: &[(&str, &Component)]) -> Result<Vec<Link>> {
    let types: Vec<_> = components.iter().map(|(_, c)| c.component_type()).collect();

    let mut exporters: BTreeMap<String, Vec<(usize, ComponentInstance)>> = BTreeMap::new();
    for (index, ty) in types.iter().enumerate() {
        for (name, item) in ty.exports(engine) {
            if let ComponentItem::ComponentInstance(instance) = item.ty {
                if !is_host_interface(name) {
                    exporters
                        .entry(name.to_string())
                        .or_default()
                        .push((index, instance));
                }
            }
        }
    }

    let mut links: BTreeMap<String, Link> = BTreeMap::new();
    for (index, ty) in types.iter().enumerate() {
        let id = components[index].0;
        for (name, item) in ty.imports(engine) {
            if is_host_interface(name) {
                continue;
            }
            let (exporter, exported) = match exporters.get(name).map(Vec::as_slice) {
                None | Some([]) => bail!(
                    "component `{id}` imports {name}, which no component of the app exports \
                     (and the host does not provide it: it provides {HOST_PROVIDES}); add the \
                     component that exports {name} to the manifest, or rebuild `{id}` without \
                     that import"
                ),
                Some([(exporter, exported)]) => (*exporter, exported),
                Some([(a, _), (b, _), ..]) => bail!(
                    "component `{id}` imports {name}, which components `{}` and `{}` both \
                     export; an interface must have one owner: remove it from one of them",
                    components[*a].0,
                    components[*b].0
                ),
            };
            let ComponentItem::ComponentInstance(imported) = item.ty else {
                bail!(
                    "component `{id}` imports `{name}` as a {}; only interfaces can be linked to \
                     another component's export",
                    item_kind(&item.ty)
                );
            };
            let exporter_id = components[exporter].0;
            check_interface(engine, id, name, &imported, exporter_id, exported)?;
            let link = links.entry(name.to_string()).or_insert_with(|| Link {
                interface: name.to_string(),
                exporter,
                importers: Vec::new(),
                functions: exported
                    .exports(engine)
                    .filter_map(|(f, item)| {
                        matches!(item.ty, ComponentItem::ComponentFunc(_)).then(|| f.to_string())
                    })
                    .collect(),
            });
            link.importers.push(index);
        }
    }
    Ok(links.into_values().collect())
}

/// Checks that `exported` (by `exporter`) has every function `importer` imports from
/// `interface`, with the same types.
fn check_interface(
    engine: &Engine,
    importer: &str,
    interface: &str,
    imported: &ComponentInstance,
    exporter: &str,
    exported: &ComponentInstance,
) -> Result<()> {
    let rebuild = "rebuild both against the same WIT file";
    for (name, item) in imported.exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(wanted) => {
                let Some(ComponentItem::ComponentFunc(offered)) =
                    exported.get_export(engine, name).map(|e| e.ty)
                else {
                    bail!(
                        "component `{importer}` imports `{name}` of {interface}, which component \
                         `{exporter}` does not export: {rebuild}"
                    );
                };
                if let Some(why) = func_mismatch(&wanted, &offered) {
                    bail!(
                        "component `{importer}` imports `{name}: {}` of {interface}, but component \
                         `{exporter}` exports `{name}: {}` ({why}): {rebuild}",
                        render_func(&wanted),
                        render_func(&offered)
                    );
                }
            }
            // Named types need no definition: functions carry their structure.
            ComponentItem::Type(_) => {}
            other => bail!(
                "component `{importer}` imports {interface} with a {} `{name}`; only functions \
                 of plain values can be linked between components",
                item_kind(&other)
            ),
        }
    }
    Ok(())
}

fn item_kind(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::ComponentFunc(_) => "function",
        ComponentItem::CoreFunc(_) => "core function",
        ComponentItem::Module(_) => "core module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}

/// Whether the key of a Spin `[component.x.dependencies]` entry covers `interface`: the same
/// interface (`pkg:name/iface@1.0.0`, version optional) or its whole package (`pkg:name@1.0.0`).
pub fn dependency_covers(key: &str, interface: &str) -> bool {
    let split = |s: &str| match s.split_once('@') {
        Some((name, version)) => (name.to_string(), Some(version.to_string())),
        None => (s.to_string(), None),
    };
    let (key_name, key_version) = split(key);
    let (name, version) = split(interface);
    let package = name.split_once('/').map_or(name.as_str(), |(p, _)| p);
    let versions_agree = match (&key_version, &version) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    (key_name == name || key_name == package) && versions_agree
}

/// A component that exports linked interfaces: what a call needs to make an instance of it
/// and find the function it asks for.
pub struct Provider {
    config: Arc<ComponentConfig>,
    pre: InstancePre<HostState>,
    /// By interface, then function.
    functions: HashMap<String, HashMap<String, ComponentExportIndex>>,
}

impl Provider {
    /// The provider of the `links` whose exporter is this component.
    pub fn new(
        config: Arc<ComponentConfig>,
        pre: InstancePre<HostState>,
        links: &[&Link],
    ) -> Result<Self> {
        let component = pre.component();
        let mut functions = HashMap::new();
        for link in links {
            let interface = component
                .get_export_index(None, &link.interface)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "component `{}` does not export {}",
                        config.id,
                        link.interface
                    )
                })?;
            let mut by_name = HashMap::new();
            for name in &link.functions {
                if let Some(index) = component.get_export_index(Some(&interface), name.as_str()) {
                    by_name.insert(name.clone(), index);
                }
            }
            functions.insert(link.interface.clone(), by_name);
        }
        Ok(Self {
            config,
            pre,
            functions,
        })
    }
}

/// The provider of each linked interface, by interface name.
pub type ProviderTable = HashMap<String, Arc<Provider>>;

/// The provider of every linked interface, shared by the linker's forwarding functions and
/// replaced as a whole (a swapped component): a request's first call to a provider takes the
/// one installed then, and keeps it for the rest of the request.
#[derive(Clone, Default)]
pub struct Links {
    providers: Arc<RwLock<ProviderTable>>,
}

impl Links {
    /// Defines, in `linker`, every function of every linked interface as a call forwarded to
    /// the interface's provider.
    pub fn define(&self, linker: &mut Linker<HostState>, links: &[Link]) -> Result<()> {
        for link in links {
            let mut instance = linker.instance(&link.interface)?;
            for function in &link.functions {
                let target = Arc::new(Target {
                    interface: link.interface.clone(),
                    function: function.clone(),
                });
                let links = self.clone();
                instance.func_new_async(function, move |store, _ty, params, results| {
                    let links = links.clone();
                    let target = target.clone();
                    Box::new(async move { forward(store, &links, &target, params, results).await })
                })?;
            }
        }
        Ok(())
    }

    /// Installs the providers, by interface; requests from now on call these.
    pub fn install(&self, providers: ProviderTable) {
        *self
            .providers
            .write()
            .unwrap_or_else(PoisonError::into_inner) = providers;
    }

    fn provider(&self, interface: &str) -> Option<Arc<Provider>> {
        let providers = self
            .providers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        providers.get(interface).cloned()
    }
}

/// The interface and function a forwarding definition calls.
struct Target {
    interface: String,
    function: String,
}

/// The provider instances one store has made, by component id, kept while the store lives
/// (for a request's store: the rest of the request).
#[derive(Default)]
pub struct LinkedInstances {
    instances: HashMap<String, LinkedInstance>,
}

/// One provider instance in its own store, with the provider it was made from.
struct LinkedInstance {
    provider: Arc<Provider>,
    store: Store<HostState>,
    instance: Instance,
}

/// Runs `target` in the caller's instance of its provider, making that instance first if the
/// caller has none. A failure (a trap in the provider, its deadline) fails the caller's call.
async fn forward(
    mut store: StoreContextMut<'_, HostState>,
    links: &Links,
    target: &Target,
    params: &[Val],
    results: &mut [Val],
) -> wasmtime::Result<()> {
    let caller = store.data().component_id().to_string();
    let Target {
        interface,
        function,
    } = target;
    let provider = links.provider(interface).ok_or_else(|| {
        wasmtime::format_err!(
            "component `{caller}` called {interface}, which no component exports now"
        )
    })?;
    let id = provider.config.id.clone();
    if !store.data().linked().instances.contains_key(&id) {
        let linked = instantiate(&mut store, provider, &caller, interface).await?;
        store
            .data_mut()
            .linked_mut()
            .instances
            .insert(id.clone(), linked);
    }
    let linked = store
        .data_mut()
        .linked_mut()
        .instances
        .get_mut(&id)
        .expect("inserted above");
    let func = linked
        .provider
        .functions
        .get(interface)
        .and_then(|functions| functions.get(function))
        .and_then(|index| linked.instance.get_func(&mut linked.store, index))
        .ok_or_else(|| {
            wasmtime::format_err!("component `{id}` does not export `{function}` of {interface}")
        })?;
    match func.call_async(&mut linked.store, params, results).await {
        Ok(()) => Ok(()),
        Err(err) => {
            // A trapped instance cannot be entered again: the caller's next call gets a new one.
            store.data_mut().linked_mut().instances.remove(&id);
            // One line here; the caller's failure (with the whole chain) is logged where it ends.
            tracing::error!(
                caller = %caller,
                provider = %id,
                "component `{id}` failed in `{function}` of {interface}, called by component `{caller}`: {err:#}"
            );
            Err(err.context(format!(
                "component `{id}` failed in `{function}` of {interface}, called by component `{caller}`"
            )))
        }
    }
}

/// A new instance of `provider` in its own store, for the caller whose store is `store`.
async fn instantiate(
    store: &mut StoreContextMut<'_, HostState>,
    provider: Arc<Provider>,
    caller: &str,
    interface: &str,
) -> wasmtime::Result<LinkedInstance> {
    let id = &provider.config.id;
    let caller_state = store.data();
    if caller_state.link_depth() >= MAX_LINK_DEPTH {
        let message = format!(
            "component `{caller}` called {interface} of component `{id}` through more than \
             {MAX_LINK_DEPTH} nested links: the components call each other in a cycle"
        );
        tracing::error!(caller = %caller, provider = %id, "{message}");
        return Err(wasmtime::Error::msg(message));
    }
    let state = caller_state.for_provider(provider.config.clone());
    let mut linked_store = crate::state::store(store.engine(), state);
    match provider.pre.instantiate_async(&mut linked_store).await {
        Ok(instance) => Ok(LinkedInstance {
            provider,
            store: linked_store,
            instance,
        }),
        Err(err) => {
            tracing::error!(
                caller = %caller,
                provider = %id,
                "cannot instantiate component `{id}` for a call from component `{caller}`: {err:#}"
            );
            Err(err.context(format!(
                "cannot instantiate component `{id}` for a call to {interface} from component `{caller}`"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn component(engine: &Engine, wat: &str) -> Component {
        Component::new(engine, wat::parse_str(wat).unwrap()).unwrap()
    }

    /// A component that exports `shop:p/i@0.1.0` with some of the functions
    /// `get: func(id: s64) -> s64` and `put: func(id: s64)`, and `get` as `f` too.
    fn exporter(engine: &Engine, funcs: &[&str]) -> Component {
        component(engine, &exporter_wat(funcs, "local.get 0"))
    }

    /// The text of [`exporter`], with `get`'s core body.
    fn exporter_wat(funcs: &[&str], get_body: &str) -> String {
        let lifted = |name: &str| match name {
            "get" => {
                r#"(func $get (param "id" s64) (result s64) (canon lift (core func $m "get")))"#
            }
            _ => r#"(func $put (param "id" s64) (canon lift (core func $m "put")))"#,
        };
        let defs: Vec<&str> = funcs.iter().map(|f| lifted(f)).collect();
        let exports: Vec<String> = funcs
            .iter()
            .map(|f| format!(r#"(export "{f}" (func ${f}))"#))
            .collect();
        format!(
            r#"(component
                     (core module $code
                       (func (export "get") (param i64) (result i64) {get_body})
                       (func (export "put") (param i64)))
                     (core instance $m (instantiate $code))
                     {}
                     (instance $i {})
                     (export "shop:p/i@0.1.0" (instance $i))
                     (export "f" (func $get)))"#,
            defs.join(" "),
            exports.join(" ")
        )
    }

    fn importer(engine: &Engine, name: &str, funcs: &str) -> Component {
        component(
            engine,
            &format!(r#"(component (import "{name}" (instance {funcs})))"#),
        )
    }

    const GET: &str = r#"(export "get" (func (param "id" s64) (result s64)))"#;
    const PUT: &str = r#"(export "put" (func (param "id" s64)))"#;

    #[test]
    fn classifies_imports() {
        for host in [
            "wasi:http/types@0.2.6",
            "wasi:cli/environment@0.2.0",
            "spin:sqlite/sqlite@3.0.0",
            "spin:postgres/postgres@4.0.0",
            "fermyon:spin/variables@2.0.0",
        ] {
            assert!(is_host_interface(host), "{host}");
        }
        for linked in ["shop:cart/carts@0.1.0", "acme:nothing/here@1.0.0", "f"] {
            assert!(!is_host_interface(linked), "{linked}");
        }
    }

    #[test]
    fn links_an_import_to_its_one_exporter() {
        let engine = Engine::default();
        let p = exporter(&engine, &["get", "put"]);
        let c = importer(&engine, "shop:p/i@0.1.0", GET);
        let links = plan(&engine, &[("p", &p), ("c", &c)]).unwrap();
        assert_eq!(
            links,
            vec![Link {
                interface: "shop:p/i@0.1.0".into(),
                exporter: 0,
                importers: vec![1],
                functions: vec!["get".into(), "put".into()],
            }]
        );
    }

    #[test]
    fn an_unexported_import_is_named() {
        let engine = Engine::default();
        let c = importer(&engine, "shop:cart/carts@0.1.0", GET);
        let err = plan(&engine, &[("orders", &c)]).unwrap_err().to_string();
        assert!(
            err.contains(
                "component `orders` imports shop:cart/carts@0.1.0, which no component of the app exports"
            ),
            "{err}"
        );
        let odd = importer(&engine, "acme:nothing/here@1.0.0", "");
        let err = plan(&engine, &[("odd", &odd)]).unwrap_err().to_string();
        assert!(err.contains("acme:nothing/here@1.0.0"), "{err}");
        assert!(err.contains("does not provide"), "{err}");
    }

    #[test]
    fn two_exporters_are_refused() {
        let engine = Engine::default();
        let p = exporter(&engine, &["get"]);
        let c = importer(&engine, "shop:p/i@0.1.0", GET);
        let err = plan(&engine, &[("a", &p), ("b", &p), ("c", &c)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`a` and `b` both export"), "{err}");
        // Nobody imports it: no link, no error.
        assert!(plan(&engine, &[("a", &p), ("b", &p)]).unwrap().is_empty());
    }

    #[test]
    fn a_missing_or_different_function_is_refused() {
        let engine = Engine::default();
        let p = exporter(&engine, &["get"]);
        let c = importer(&engine, "shop:p/i@0.1.0", PUT);
        let err = plan(&engine, &[("p", &p), ("c", &c)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("component `c` imports `put`"), "{err}");
        assert!(err.contains("`p` does not export"), "{err}");

        let c = importer(
            &engine,
            "shop:p/i@0.1.0",
            r#"(export "get" (func (param "id" u64) (result s64)))"#,
        );
        let err = plan(&engine, &[("p", &p), ("c", &c)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("imports `get: func(id: u64) -> s64`"), "{err}");
        assert!(err.contains("exports `get: func(id: s64) -> s64`"), "{err}");
        assert!(err.contains("`u64` here, `s64` there"), "{err}");
    }

    #[test]
    fn a_bare_function_import_is_refused() {
        let engine = Engine::default();
        let c = component(&engine, r#"(component (import "f" (func)))"#);
        let p = exporter(&engine, &["get"]);
        let err = plan(&engine, &[("c", &c)]).unwrap_err().to_string();
        assert!(err.contains("imports f, which no component"), "{err}");
        let err = plan(&engine, &[("c", &c), ("p", &p)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no component of the app exports"), "{err}");
    }

    #[test]
    fn spin_dependency_keys() {
        let iface = "shop:cart/carts@0.1.0";
        assert!(dependency_covers("shop:cart/carts@0.1.0", iface));
        assert!(dependency_covers("shop:cart/carts", iface));
        assert!(dependency_covers("shop:cart@0.1.0", iface));
        assert!(dependency_covers("shop:cart", iface));
        assert!(!dependency_covers("shop:cart/other@0.1.0", iface));
        assert!(!dependency_covers("shop:cart@0.2.0", iface));
        assert!(!dependency_covers("shop:products@0.1.0", iface));
    }

    /// A component whose `run: func(x: s64) -> s64` returns `get(x) + 1`, `get` imported from
    /// `shop:p/i@0.1.0`.
    const CALLER: &str = r#"(component
      (import "shop:p/i@0.1.0" (instance $p (export "get" (func (param "id" s64) (result s64)))))
      (core func $get (canon lower (func $p "get")))
      (core module $code
        (import "p" "get" (func $get (param i64) (result i64)))
        (func (export "run") (param i64) (result i64) local.get 0 call $get i64.const 1 i64.add))
      (core instance $m (instantiate $code (with "p" (instance (export "get" (func $get))))))
      (func $run (param "x" s64) (result s64) (canon lift (core func $m "run")))
      (export "run" (func $run)))"#;

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
        let engine = crate::engine::build(&Default::default()).unwrap();
        let p = component(&engine, provider);
        let c = component(&engine, CALLER);
        let plan = plan(&engine, &[("p", &p), ("c", &c)]).unwrap();
        let links = Links::default();
        let mut linker = crate::state::linker(&engine).unwrap();
        links.define(&mut linker, &plan).unwrap();
        let p_pre = linker.instantiate_pre(&p).unwrap();
        let c_pre = linker.instantiate_pre(&c).unwrap();
        let exported: Vec<&Link> = plan.iter().collect();
        let provider = Provider::new(config("p"), p_pre, &exported).unwrap();
        links.install(HashMap::from([(
            "shop:p/i@0.1.0".to_string(),
            Arc::new(provider),
        )]));
        (engine, c_pre)
    }

    async fn request_store(engine: &Engine) -> Store<HostState> {
        let databases = crate::state::Databases {
            sqlite: Arc::new(
                crate::sqlite::SqliteDatabases::open(HashMap::new())
                    .await
                    .unwrap(),
            ),
            postgres: Arc::new(crate::postgres::PostgresPools::new(1)),
        };
        crate::state::store(
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
        assert_eq!(store.data().linked().instances.len(), 1);

        // The cost of a call through a link, the provider instance kept (as in a request).
        let calls = 20_000;
        let started = Instant::now();
        for i in 0..calls {
            assert_eq!(run.call_async(&mut store, (i,)).await.unwrap(), (i + 1,));
        }
        let kept = started.elapsed() / calls as u32;
        assert_eq!(store.data().linked().instances.len(), 1);

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
            err.contains(
                "component `p` failed in `get` of shop:p/i@0.1.0, called by component `c`"
            ),
            "{err}"
        );
        assert!(store.data().linked().instances.is_empty());
    }
}
