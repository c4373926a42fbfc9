//! The swap itself: compile, link, check the links, replace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use anyhow::{anyhow, Result};
use wasmtime::component::Component;

use crate::app::{link_component, providers, version_of, App, ServedVersion};
use crate::links;
use crate::runtime::engine;

/// How many compiled versions are kept, so that swapping back to one does not compile again.
const COMPILED_KEPT: usize = 8;

/// Swaps the components of one app, one swap at a time.
pub struct Swapper {
    app: Arc<App>,
    /// One swap at a time.
    lock: tokio::sync::Mutex<()>,
    /// Compiled components, by version.
    compiled: Mutex<HashMap<String, Component>>,
}

impl Swapper {
    /// The swapper of `app`.
    pub fn new(app: Arc<App>) -> Self {
        Self {
            app,
            lock: tokio::sync::Mutex::new(()),
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// The app it swaps components of.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Replaces component `index` by `bytes`, or refuses them (the error says why) and keeps the
    /// old version serving. Returns once new requests get the new version.
    /// `from_source`: the bytes are the source file's (the watcher), so the compiled copies of its
    /// earlier versions may go.
    pub async fn swap(
        &self,
        index: usize,
        bytes: Vec<u8>,
        from_source: bool,
    ) -> Result<Arc<ServedVersion>> {
        let app = &self.app;
        let _one_at_a_time = self.lock.lock().await;
        let served = &app.components[index];
        let id = served.config.id.as_str();
        let version = version_of(&bytes);
        let cached = self
            .compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&version)
            .cloned();
        let component = match cached {
            Some(component) => component,
            None => {
                let engine = app.engine.clone();
                let source = app.source(index);
                let component = tokio::task::spawn_blocking(move || {
                    engine::load_component_bytes(&engine, &source, &bytes, from_source)
                })
                .await
                .map_err(|err| anyhow!("compiling it failed: {err}"))?
                .map_err(|err| anyhow!("component `{id}`: not a valid Wasm component: {err:#}"))?;
                let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
                if compiled.len() >= COMPILED_KEPT {
                    compiled.clear();
                }
                compiled.insert(version.clone(), component.clone());
                component
            }
        };
        let pre = link_component(&app.linker, id, &component)?;

        // The others' imports from it must still be met, with the same types.
        let mut versions: Vec<Arc<ServedVersion>> =
            app.components.iter().map(|c| c.current()).collect();
        let named: Vec<(&str, &Component)> = app
            .components
            .iter()
            .zip(&versions)
            .enumerate()
            .map(|(i, (c, v))| {
                let code = if i == index {
                    &component
                } else {
                    v.pre.instance_pre().component()
                };
                (c.config.id.as_str(), code)
            })
            .collect();
        let plan = links::plan(&app.engine, &named)?;
        drop(named);

        let new = Arc::new(ServedVersion {
            pre,
            version,
            loaded_at: SystemTime::now(),
        });
        versions[index] = new.clone();
        let providers = providers(&app.components, &versions, &plan)?;
        served.replace(new.clone());
        app.links.install(providers);
        tracing::info!(component = %id, version = %new.version, "swapped in a new version");
        Ok(new)
    }
}
