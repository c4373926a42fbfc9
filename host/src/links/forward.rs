//! Forwarding a call through a link: a definition in the one linker finds the interface's
//! provider in [`Links`] and runs the call in the caller's instance of it.
//!
//! Generic over the store's data (`LinkHost`), so that links know nothing of the runtime that
//! assembles the store.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use anyhow::Result;
use tracing::Instrument as _;
use wasmtime::component::{ComponentExportIndex, Instance, InstancePre, Linker, Val};
use wasmtime::{Engine, Store, StoreContextMut};

use crate::config::component::ComponentConfig;
use crate::links::plan::{Link, MAX_LINK_DEPTH};
use crate::links::split::{Draw, Split};
use crate::telemetry::{link_span, metrics, LinkMetrics};

/// What links need of a store's data: who calls, how deep, the provider instances it keeps,
/// and how to make the store of a provider instance for its calls.
pub trait LinkHost: Sized + Send + 'static {
    /// The id of the component this store runs.
    fn component_id(&self) -> &str;
    /// How many links separate this store from the request's own (0 for the request's).
    fn link_depth(&self) -> u32;
    /// The provider instances this store's calls have made.
    fn linked(&self) -> &LinkedInstances<Self>;
    /// The same, to add or drop one.
    fn linked_mut(&mut self) -> &mut LinkedInstances<Self>;
    /// A store for an instance of `provider` that serves this store's calls: the provider's
    /// own configuration under this store's deadline, one link deeper.
    fn provider_store(&self, engine: &Engine, provider: Arc<ComponentConfig>) -> Store<Self>;
}

/// A component that exports linked interfaces: what a call needs to make an instance of it
/// and find the function it asks for.
pub struct Provider<T: 'static> {
    config: Arc<ComponentConfig>,
    pre: InstancePre<T>,
    /// By interface, then function.
    functions: HashMap<String, HashMap<String, ComponentExportIndex>>,
}

impl<T: LinkHost> Provider<T> {
    /// The provider of the `links` whose exporter is this component.
    pub fn new(config: Arc<ComponentConfig>, pre: InstancePre<T>, links: &[&Link]) -> Result<Self> {
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

/// The provider of each linked interface, by interface name: its stable version, and its
/// canary while one runs.
pub type ProviderTable<T> = HashMap<String, Split<Arc<Provider<T>>>>;

/// The provider of every linked interface, shared by the linker's forwarding functions and
/// replaced as a whole (a swapped component): a request's first call to a provider takes the
/// one installed then, and keeps it for the rest of the request.
pub struct Links<T: 'static> {
    providers: Arc<RwLock<ProviderTable<T>>>,
}

impl<T> Clone for Links<T> {
    fn clone(&self) -> Self {
        Self {
            providers: self.providers.clone(),
        }
    }
}

impl<T> Default for Links<T> {
    fn default() -> Self {
        Self {
            providers: Arc::default(),
        }
    }
}

impl<T: LinkHost> Links<T> {
    /// Defines, in `linker`, every function of every linked interface as a call forwarded to
    /// the interface's provider.
    pub fn define(&self, linker: &mut Linker<T>, links: &[Link]) -> Result<()> {
        for link in links {
            let mut instance = linker.instance(&link.interface)?;
            for function in &link.functions {
                let target = Arc::new(Target {
                    interface: link.interface.clone(),
                    function: function.clone(),
                    metrics: metrics().link(&link.interface),
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
    pub fn install(&self, providers: ProviderTable<T>) {
        *self
            .providers
            .write()
            .unwrap_or_else(PoisonError::into_inner) = providers;
    }

    /// The version of `interface`'s provider that a request with `draw` gets.
    fn provider(&self, interface: &str, draw: Draw) -> Option<Arc<Provider<T>>> {
        let providers = self
            .providers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let split = providers.get(interface)?;
        Some(split.pick(draw, &split.stable.config.id).clone())
    }
}

/// The interface and function a forwarding definition calls.
struct Target {
    interface: String,
    function: String,
    /// Its calls, counted by caller and provider.
    metrics: LinkMetrics,
}

/// The provider instances one store has made, by component id, kept while the store lives
/// (for a request's store: the rest of the request), and the request's draw, which picks the
/// version of each provider (a provider's store inherits it from its caller's).
pub struct LinkedInstances<T: 'static> {
    instances: HashMap<String, LinkedInstance<T>>,
    draw: Draw,
}

impl<T> Default for LinkedInstances<T> {
    fn default() -> Self {
        Self {
            instances: HashMap::new(),
            draw: Draw::new(),
        }
    }
}

impl<T> LinkedInstances<T> {
    /// The request's draw: which version of each component it gets while canaries run.
    pub fn draw(&self) -> Draw {
        self.draw
    }

    /// How many provider instances are kept.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
}

/// One provider instance in its own store, with the provider it was made from.
struct LinkedInstance<T: 'static> {
    provider: Arc<Provider<T>>,
    store: Store<T>,
    instance: Instance,
}

/// Forwards a call to `target`'s provider under a span of its own, and counts it. A failure (a
/// trap in the provider, its deadline) fails the caller's call.
async fn forward<T: LinkHost>(
    store: StoreContextMut<'_, T>,
    links: &Links<T>,
    target: &Target,
    params: &[Val],
    results: &mut [Val],
) -> wasmtime::Result<()> {
    let caller = store.data().component_id().to_string();
    let interface = &target.interface;
    let draw = store.data().linked().draw;
    let provider = links.provider(interface, draw).ok_or_else(|| {
        wasmtime::format_err!(
            "component `{caller}` called {interface}, which no component exports now"
        )
    })?;
    let id = provider.config.id.clone();
    let span = link_span(&caller, &id, interface, &target.function);
    let started = Instant::now();
    let called = call_provider(store, provider, &caller, target, params, results)
        .instrument(span)
        .await;
    target.metrics.observe(&caller, &id, started.elapsed());
    called
}

/// Runs `target` in the caller's instance of `provider`, made first if the caller has none.
async fn call_provider<T: LinkHost>(
    mut store: StoreContextMut<'_, T>,
    provider: Arc<Provider<T>>,
    caller: &str,
    target: &Target,
    params: &[Val],
    results: &mut [Val],
) -> wasmtime::Result<()> {
    let Target {
        interface,
        function,
        ..
    } = target;
    let id = provider.config.id.clone();
    if !store.data().linked().instances.contains_key(&id) {
        let linked = instantiate(&mut store, provider, caller, interface).await?;
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
async fn instantiate<T: LinkHost>(
    store: &mut StoreContextMut<'_, T>,
    provider: Arc<Provider<T>>,
    caller: &str,
    interface: &str,
) -> wasmtime::Result<LinkedInstance<T>> {
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
    let mut linked_store = caller_state.provider_store(store.engine(), provider.config.clone());
    // The whole request, through every link, meets one version of each component.
    linked_store.data_mut().linked_mut().draw = caller_state.linked().draw;
    crate::telemetry::metrics().instance_made(id);
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
