//! The served app: its components, each with the version of its code that serves now, and what
//! every request shares.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::Linker;
use wasmtime::Engine;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::capabilities::Databases;
use crate::config::component::ComponentConfig;
use crate::config::manifest::Manifest;
use crate::links::{Draw, Links, Split};
use crate::runtime::engine::Limits;
use crate::runtime::store::HostState;

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

/// The app loaded and checked: components compiled and linked, databases open and migrated.
pub struct App {
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
    pub links: Links<HostState>,
}

/// One component ready to serve: its configuration and the versions of its code that serve
/// (a stable one, and maybe a canary), which a hot swap, a canary, a promotion or a rollback
/// replace while requests run.
pub struct ServedComponent {
    /// What the host knows of the component.
    pub config: Arc<ComponentConfig>,
    serving: RwLock<Split<Arc<ServedVersion>>>,
}

/// One version of a component's code.
pub struct ServedVersion {
    /// The component linked against the host, ready for a fresh instance per request.
    pub pre: ProxyPre<HostState>,
    /// The SHA-256 of its Wasm bytes, in hex.
    pub version: String,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// The requests it answered, for its error rate.
    pub tally: Tally,
}

/// What one version answered: counted on every request with relaxed atomics (no lock on the
/// request path), read by the admin API.
#[derive(Debug, Default)]
pub struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    /// Counts one answer with `status`; a 5xx is an error.
    pub fn count(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The requests answered and, of them, the 5xx answers.
    pub fn read(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

impl ServedVersion {
    /// A version of fresh code, loaded now.
    pub fn new(pre: ProxyPre<HostState>, version: String) -> Self {
        Self {
            pre,
            version,
            loaded_at: SystemTime::now(),
            tally: Tally::default(),
        }
    }
}

impl ServedComponent {
    /// A component served by `version`.
    pub fn new(config: Arc<ComponentConfig>, version: ServedVersion) -> Self {
        Self {
            config,
            serving: RwLock::new(Split::only(Arc::new(version))),
        }
    }

    /// The stable version: the one every request runs on unless a canary takes it.
    pub fn current(&self) -> Arc<ServedVersion> {
        self.read().stable.clone()
    }

    /// The version a new request with `draw` runs on; it takes it once and keeps it to its end.
    pub fn pick(&self, draw: Draw) -> Arc<ServedVersion> {
        self.read().pick(draw, &self.config.id).clone()
    }

    /// The versions that serve now.
    pub fn serving(&self) -> Split<Arc<ServedVersion>> {
        self.read().clone()
    }

    /// Makes `serving` the versions new requests run on.
    pub fn replace(&self, serving: Split<Arc<ServedVersion>>) {
        *self.serving.write().unwrap_or_else(PoisonError::into_inner) = serving;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Split<Arc<ServedVersion>>> {
        self.serving.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl App {
    /// The source file of component `index`, which the watcher watches.
    pub fn source(&self, index: usize) -> PathBuf {
        let id = &self.components[index].config.id;
        self.manifest.source_path(&self.manifest.components[id])
    }
}

/// The version of a component: the SHA-256 of its Wasm bytes, in hex.
pub fn version_of(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
