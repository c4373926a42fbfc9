//! The changes of what serves: a swap, a canary, a promotion, a rollback. Each is checked
//! (compiled, linked, the links re-planned with the new set of versions) before anything
//! changes, then takes effect at once for new requests.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{anyhow, Result};
use wasmtime::component::Component;

use crate::app::{declares_dependency, link_component, providers, version_of, App, ServedVersion};
use crate::config::secrets::DATA_DIR;
use crate::links::{self, Link, Share, Split};
use crate::runtime::engine;
use crate::swap::versions::{KeptVersion, KeptVersions};

/// How many compiled versions are kept, so that swapping back to one does not compile again.
const COMPILED_KEPT: usize = 8;

/// Why a change of what serves did not happen; what served before serves on.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// The new version fails a check (not a component, cannot link, breaks a link).
    #[error("{0:#}")]
    Refused(anyhow::Error),
    /// The component's versions do not allow it now (no canary to promote, nothing to roll
    /// back to).
    #[error("{0}")]
    Conflict(String),
}

impl From<anyhow::Error> for SwapError {
    fn from(err: anyhow::Error) -> Self {
        Self::Refused(err)
    }
}

/// Swaps the components of one app, one change at a time, and keeps their last versions.
pub struct Swapper {
    app: Arc<App>,
    /// One change at a time.
    lock: tokio::sync::Mutex<()>,
    /// Compiled components, by version.
    compiled: Mutex<HashMap<String, Component>>,
    /// The last versions of each component.
    kept: KeptVersions,
}

impl Swapper {
    /// The swapper of `app`, keeping versions under the data folder; the versions serving now
    /// are kept first.
    pub fn new(app: Arc<App>) -> Self {
        let ids: Vec<&str> = app
            .components
            .iter()
            .map(|c| c.config.id.as_str())
            .collect();
        let kept = KeptVersions::open(Path::new(DATA_DIR).join("versions"), &ids);
        for (index, served) in app.components.iter().enumerate() {
            let serving = served.serving();
            match std::fs::read(app.source(index)) {
                Ok(bytes) if version_of(&bytes) == serving.stable.version => {
                    kept.keep(index, &served.config.id, &serving.stable, &bytes, &serving)
                }
                _ => tracing::warn!(
                    component = %served.config.id,
                    "its source changed since it was loaded: the version serving is not kept"
                ),
            }
        }
        Self {
            app,
            lock: tokio::sync::Mutex::new(()),
            compiled: Mutex::new(HashMap::new()),
            kept,
        }
    }

    /// The app it swaps components of.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// The kept versions of component `index`, oldest first.
    pub fn kept(&self, index: usize) -> Vec<KeptVersion> {
        self.kept.list(index)
    }

    /// Replaces component `index` (and its canary, if one runs) by `bytes`, or refuses them
    /// (the error says why) and keeps the old version serving. Returns once new requests get
    /// the new version. `from_source`: the bytes are the source file's (the watcher), so the
    /// compiled copies of its earlier versions may go.
    pub async fn swap(
        &self,
        index: usize,
        bytes: Vec<u8>,
        from_source: bool,
    ) -> Result<Arc<ServedVersion>, SwapError> {
        let _one_at_a_time = self.lock.lock().await;
        let new = self.load(index, &bytes, from_source).await?;
        self.serve(index, Split::only(new.clone()), &bytes)?;
        Ok(new)
    }

    /// Starts `bytes` as a canary of component `index` that takes `share` of its requests
    /// (and of the link calls those requests make to it), beside the stable version, after
    /// the same checks as a swap.
    pub async fn canary(
        &self,
        index: usize,
        bytes: Vec<u8>,
        share: Share,
    ) -> Result<Arc<ServedVersion>, SwapError> {
        let _one_at_a_time = self.lock.lock().await;
        let stable = self.app.components[index].current();
        if version_of(&bytes) == stable.version {
            return Err(SwapError::Conflict(format!(
                "version {} is the stable version already: a canary must be another",
                stable.version
            )));
        }
        let new = self.load(index, &bytes, false).await?;
        let split = Split {
            stable,
            canary: Some((new.clone(), share)),
        };
        self.serve(index, split, &bytes)?;
        Ok(new)
    }

    /// Makes the canary of component `index` its only version.
    pub async fn promote(&self, index: usize) -> Result<Arc<ServedVersion>, SwapError> {
        let _one_at_a_time = self.lock.lock().await;
        let Some((canary, _)) = self.app.components[index].serving().canary else {
            return Err(self.conflict(index, "has no canary to promote"));
        };
        self.serve_kept(index, canary.clone())?;
        Ok(canary)
    }

    /// Drops the canary of component `index`, or without one goes back to the version kept
    /// before the stable one. Requests in flight finish on the version they started with.
    pub async fn rollback(&self, index: usize) -> Result<Arc<ServedVersion>, SwapError> {
        let _one_at_a_time = self.lock.lock().await;
        let serving = self.app.components[index].serving();
        if serving.canary.is_some() {
            self.serve_kept(index, serving.stable.clone())?;
            return Ok(serving.stable);
        }
        let Some(before) = self.kept.before(index, &serving.stable.version) else {
            return Err(self.conflict(index, "has no kept version before the one serving"));
        };
        let code = match before.code {
            Some(code) => code,
            None => {
                let id = &self.app.components[index].config.id;
                let bytes = self.kept.read(id, &before.version)?;
                let code = self.load(index, &bytes, false).await?;
                self.kept.loaded(index, &code);
                code
            }
        };
        self.serve_kept(index, code.clone())
            .map_err(|err| self.conflict(index, &format!("cannot go back: {err:#}")))?;
        Ok(code)
    }

    fn conflict(&self, index: usize, why: &str) -> SwapError {
        SwapError::Conflict(format!(
            "component `{}` {why}",
            self.app.components[index].config.id
        ))
    }

    /// The component `bytes` (compiled, or found compiled) linked as component `index`.
    async fn load(
        &self,
        index: usize,
        bytes: &[u8],
        from_source: bool,
    ) -> Result<Arc<ServedVersion>> {
        let app = &self.app;
        let id = app.components[index].config.id.as_str();
        let version = version_of(bytes);
        let component = self.compile(index, &version, bytes, from_source).await?;
        let pre = link_component(&app.linker, id, &component)?;
        Ok(Arc::new(ServedVersion::new(pre, version)))
    }

    async fn compile(
        &self,
        index: usize,
        version: &str,
        bytes: &[u8],
        from_source: bool,
    ) -> Result<Component> {
        let cached = self
            .compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(version)
            .cloned();
        if let Some(component) = cached {
            return Ok(component);
        }
        let app = &self.app;
        let id = app.components[index].config.id.clone();
        let engine = app.engine.clone();
        let source = app.source(index);
        let bytes = bytes.to_vec();
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
        compiled.insert(version.to_string(), component.clone());
        Ok(component)
    }

    /// Serves `split` for component `index`, and keeps its newest version (whose Wasm is
    /// `bytes`).
    fn serve(
        &self,
        index: usize,
        split: Split<Arc<ServedVersion>>,
        bytes: &[u8],
    ) -> Result<(), SwapError> {
        let newest = split.newest().clone();
        self.install(index, split.clone())?;
        let id = &self.app.components[index].config.id;
        self.kept.keep(index, id, &newest, bytes, &split);
        Ok(())
    }

    /// Serves `code`, a kept version, as component `index`'s only version.
    fn serve_kept(&self, index: usize, code: Arc<ServedVersion>) -> Result<()> {
        self.install(index, Split::only(code))
    }

    /// Checks that the links still hold with `split` as component `index`'s versions, then
    /// makes it serve, and the links call it.
    fn install(&self, index: usize, split: Split<Arc<ServedVersion>>) -> Result<()> {
        let app = &self.app;
        let mut serving: Vec<_> = app.components.iter().map(|c| c.serving()).collect();
        serving[index] = split.clone();
        let plan = self.checked_plan(&serving)?;
        let providers = providers(&app.components, &serving, &plan)?;
        let served = &app.components[index];
        let (stable, canary) = (split.stable.version.clone(), split.canary.clone());
        served.replace(split);
        app.links.install(providers);
        match canary {
            Some((canary, share)) => tracing::info!(
                component = %served.config.id,
                stable = %stable,
                canary = %canary.version,
                share = share.percent(),
                "a canary serves beside the stable version"
            ),
            None => tracing::info!(
                component = %served.config.id,
                version = %stable,
                "one version serves"
            ),
        }
        Ok(())
    }

    /// The links among the stable versions, checked too among the newest (every canary in
    /// place of its stable version), since a request may meet either set.
    fn checked_plan(&self, serving: &[Split<Arc<ServedVersion>>]) -> Result<Vec<Link>> {
        let plan_of = |pick: fn(&Split<Arc<ServedVersion>>) -> &Arc<ServedVersion>| {
            let named: Vec<(&str, &Component)> = self
                .app
                .components
                .iter()
                .zip(serving)
                .map(|(c, split)| {
                    let code = pick(split).pre.instance_pre().component();
                    (c.config.id.as_str(), code)
                })
                .collect();
            links::plan(&self.app.engine, &named, &|id, interface| {
                declares_dependency(&self.app.manifest, id, interface)
            })
        };
        let plan = plan_of(|split| &split.stable)?;
        if serving.iter().any(|split| split.canary.is_some()) {
            plan_of(Split::newest)?;
        }
        Ok(plan)
    }
}
