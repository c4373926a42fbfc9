//! The wasmtime engine: compilation settings, the pooling allocator, and the limits of every
//! request (its deadline, and the memory, tables and resources of each instance).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use wasmtime::component::Component;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
};

/// The most requests `--max-concurrent-requests` may let run at once: with their providers,
/// 5,000 instance slots, whose memories reserve 20 TiB of the 128 TiB of address space a
/// process has (4 GiB a slot, none of it committed until used).
pub const MAX_CONCURRENT_REQUESTS: u32 = 1000;

/// How many requests may run in guests at once, by default (`--max-concurrent-requests`; past
/// it a request is answered 503 at once). Two cores serve about 12,000 requests a second at
/// 2-3 ms each (STACK-NOTES), so some 30 in flight keep them busy: 256 leaves room for requests
/// waiting on a database or a slow client, while bounding what they hold, a guest instance each
/// (measured: 256 requests whose bodies never came took the host from 49 to 74 MiB, where 4,200
/// unbounded had taken it to 478 MiB; a greedy guest may take up to `--max-memory`).
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: u32 = 256;

/// The instances one request may hold at once: its component's own and one per provider that
/// each of its stores reaches through links. Orders holds the most: itself, products, cart and
/// accounts, and the products instance that cart's own store makes for its catalogue calls.
/// Each takes a slot of the pool, which holds this many for every request admitted.
pub const INSTANCES_PER_REQUEST: u32 = 5;

/// What one instance of a component built with wasm32-wasip2 uses of the pool (measured with
/// `wasm-tools print` on the shop's components): 4 core instances (the code, the WASI adapter,
/// wit-component's shim and fixup), 1 linear memory, 2 tables.
const CORE_INSTANCES_PER_INSTANCE: u32 = 4;
const MEMORIES_PER_INSTANCE: u32 = 1;
const TABLES_PER_INSTANCE: u32 = 2;

/// The environment variable that turns on a profiler's view of the guests' code.
pub const PROFILER_VARIABLE: &str = "SHOP_WASM_PROFILER";

/// How often the epoch advances: the granularity of the request deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How long one request may run, by default, before its guest traps (`--request-timeout`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The most linear memory one guest instance may use, by default (`--max-memory`).
pub const DEFAULT_MAX_MEMORY: usize = 64 << 20;

/// The size of one memory slot of the pool: the most any --max-memory up to it needs.
const MEMORY_SLOT_BYTES: usize = 256 << 20;

/// The most elements a table of one guest instance may hold (a Rust component's function
/// table has a few hundred).
pub const MAX_TABLE_ELEMENTS: usize = 10_000;

/// The most host resources (streams, bodies, database connections and results) one
/// instance may hold at once.
pub const MAX_RESOURCES: usize = 10_000;

/// The bounds on every request: how long it may run and what each of its instances may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a request may run, links to other components included.
    pub request_timeout: Duration,
    /// The most linear memory one instance may use, in bytes.
    pub max_memory: usize,
    /// The most elements one table of an instance may hold.
    pub max_table_elements: usize,
    /// The most host resources one instance may hold at once.
    pub max_resources: usize,
    /// The most requests that may run in guests at once; the pool holds
    /// [`INSTANCES_PER_REQUEST`] instance slots for each.
    pub max_concurrent_requests: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_memory: DEFAULT_MAX_MEMORY,
            max_table_elements: MAX_TABLE_ELEMENTS,
            max_resources: MAX_RESOURCES,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
        }
    }
}

/// Builds the engine every component of the app is compiled for; its memory slots are at
/// least as large as `limits` allows one instance.
pub fn build(limits: &Limits) -> Result<Engine> {
    // PAGEMAP_SCAN (Linux 6.7+) is asked for explicitly, so that its absence is known here.
    Engine::new(&config(limits, true))
        .or_else(|_| Engine::new(&config(limits, false)))
        .map_err(anyhow::Error::from)
}

fn config(limits: &Limits, pagemap_scan: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // A guest that loops forever fails its own request only.
    config.epoch_interruption(true);
    // `SHOP_WASM_PROFILER=perfmap`: `perf` names the guests' functions (wasmtime writes
    // /tmp/perf-<pid>.map), which is how the request path's profile is taken (README).
    if std::env::var_os(PROFILER_VARIABLE).is_some_and(|value| value == "perfmap") {
        config.profiler(ProfilingStrategy::PerfMap);
    }

    // Instances come from preallocated slots: a fresh instance per request is then a
    // matter of microseconds, and each slot caps the guest's memory.
    let mut pool = PoolingAllocationConfig::default();
    // Admission (`http/admission.rs`) lets no more requests in than the pool has slots for: a
    // request never fails for want of one. Each memory slot reserves 4 GiB of address space
    // (no bounds checks); see MAX_CONCURRENT_REQUESTS.
    let instances = instance_slots(limits);
    pool.total_component_instances(instances)
        .total_core_instances(instances * CORE_INSTANCES_PER_INSTANCE)
        .total_memories(instances * MEMORIES_PER_INSTANCE)
        .total_tables(instances * TABLES_PER_INSTANCE)
        // A store runs on its own fiber stack; a provider's runs while its caller's waits.
        .total_stacks(instances)
        // Slots of a fixed size, so that compiled code (whose cache key includes these settings)
        // does not depend on --max-memory; each store's limiter holds an instance to the cap.
        .max_memory_size(limits.max_memory.max(MEMORY_SLOT_BYTES))
        .table_keep_resident(64 << 10);
    if pagemap_scan {
        // A reused slot is reset by rewriting only the pages the last request dirtied, which
        // stay mapped: no page faults on the next request. Measured here: about +60% req/s.
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(2 << 20);
    } else {
        // Without the scan the kept bytes are zeroed whole on every reuse: keep few.
        pool.pagemap_scan(Enabled::No)
            .linear_memory_keep_resident(64 << 10);
    }
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// How many component instances may exist at once: enough for every request `limits` admits.
pub fn instance_slots(limits: &Limits) -> u32 {
    limits.max_concurrent_requests.max(1) * INSTANCES_PER_REQUEST
}

/// Advances the engine's epoch forever on a background thread, so deadlines fire.
pub fn start_epoch_ticker(engine: &Engine) -> Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match engine.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })?;
    Ok(())
}

/// The cache of compiled components: wasmtime's serialized code for each component's exact
/// bytes and this engine's settings, in the host's own data folder (`.shop/compiled`, 0700,
/// files 0600; never next to the component, where whoever can write the component could
/// plant code). Loading serialized code runs it unchecked, so each file carries an HMAC-SHA-256
/// tag over the source's digest, the engine's settings and the code, under a random key kept in
/// the same folder: a file the host did not write for these bytes and this engine is not loaded.
/// Caching is best effort: any failure just compiles.
pub struct CompiledCache {
    dir: PathBuf,
    key: Option<[u8; 32]>,
}

/// The tag's length at the head of a cached file.
const TAG_BYTES: usize = 32;

impl CompiledCache {
    /// The cache in `<data dir>/compiled`, its key made on first use. A folder that cannot be
    /// made or a key that cannot be kept leave the cache off (every load compiles).
    pub fn open(data_dir: &Path) -> Self {
        let dir = data_dir.join("compiled");
        let key = crate::config::secrets::create_private_dir(&dir)
            .and_then(|()| crate::config::secrets::set_mode_if_present(&dir, 0o700))
            .and_then(|()| cache_key(&dir.join("key")));
        match key {
            Ok(key) => Self {
                dir,
                key: Some(key),
            },
            Err(error) => {
                tracing::warn!(%error, "the compiled cache is off: every start compiles");
                Self { dir, key: None }
            }
        }
    }

    /// The cache of the app whose manifest is in `manifest_dir`.
    pub fn for_app(manifest_dir: &Path) -> Self {
        Self::open(&manifest_dir.join(crate::config::secrets::DATA_DIR))
    }

    /// Whether the compiled copy of the component at `path` is cached for this engine.
    pub fn current(&self, engine: &Engine, path: &Path) -> Result<bool> {
        let bytes = std::fs::read(path)?;
        Ok(self.read(engine, path, &bytes).is_some())
    }

    /// Loads the component at `path`, compiling it only when no compiled copy of these exact
    /// bytes is cached for this engine.
    pub fn load(&self, engine: &Engine, path: &Path) -> Result<Component> {
        let bytes = std::fs::read(path)?;
        self.load_bytes(engine, path, &bytes, true)
    }

    /// Compiles `bytes`, a version of the component whose source is `path`, through the cache;
    /// `prune` removes the compiled copies of its other versions.
    pub fn load_bytes(
        &self,
        engine: &Engine,
        path: &Path,
        bytes: &[u8],
        prune: bool,
    ) -> Result<Component> {
        if let Some(component) = self.read(engine, path, bytes) {
            return Ok(component);
        }
        let component = Component::new(engine, bytes)?;
        if let (Some(key), Ok(code)) = (&self.key, component.serialize()) {
            let file = self.file(engine, path, bytes);
            let mut contents = tag(key, engine, bytes, &code).to_vec();
            contents.extend_from_slice(&code);
            let partial = file.with_extension(format!("cwasm.{}", std::process::id()));
            if crate::config::secrets::write_private(&partial, &contents).is_ok()
                && std::fs::rename(&partial, &file).is_err()
            {
                let _ = std::fs::remove_file(&partial);
            }
            if prune {
                self.remove_stale_copies(path, &file);
            }
        }
        Ok(component)
    }

    /// The cached, authenticated code of `bytes`, if there is some.
    fn read(&self, engine: &Engine, path: &Path, bytes: &[u8]) -> Option<Component> {
        let key = self.key.as_ref()?;
        let contents = std::fs::read(self.file(engine, path, bytes)).ok()?;
        let (stored, code) = contents.split_at_checked(TAG_BYTES)?;
        let expected = tag(key, engine, bytes, code);
        // A constant-time comparison: the tag is a secret's function.
        let differs = stored
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs != 0 {
            tracing::warn!(
                file = %self.file(engine, path, bytes).display(),
                "a compiled component failed its check and is not loaded; compiling it again"
            );
            return None;
        }
        // SAFETY: the code was serialized by this host (the tag proves it: only the host holds
        // the key) for these exact source bytes and this engine's settings (both under the tag).
        unsafe { Component::deserialize(engine, code) }.ok()
    }

    /// Where the compiled copy of `bytes` (read from `path`) is cached for this engine.
    fn file(&self, engine: &Engine, path: &Path, bytes: &[u8]) -> PathBuf {
        let digest = source_digest(engine, bytes);
        self.dir.join(format!(
            "{}.{}.cwasm",
            stem(path),
            digest[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ))
    }

    /// Removes the compiled copies of earlier builds of the same component.
    fn remove_stale_copies(&self, path: &Path, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let prefix = format!("{}.", stem(path));
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".cwasm") && entry.path() != keep {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The file name's stem of the component at `path`.
fn stem(path: &Path) -> &str {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("component")
}

/// SHA-256 of the source bytes and the engine's settings.
fn source_digest(engine: &Engine, bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let mut digest = sha2::Sha256::new();
    digest.update(hasher.finish().to_le_bytes());
    digest.update(bytes);
    digest.finalize().into()
}

/// The tag of `code`, compiled from `bytes` for `engine`, under `key`.
fn tag(key: &[u8; 32], engine: &Engine, bytes: &[u8], code: &[u8]) -> [u8; 32] {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(&source_digest(engine, bytes));
    mac.update(code);
    mac.finalize().into_bytes().into()
}

/// The cache's key at `path`: read, or made (32 random bytes, 0600) on first use.
fn cache_key(path: &Path) -> Result<[u8; 32]> {
    if let Ok(key) = std::fs::read(path) {
        if let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) {
            crate::config::secrets::set_mode_if_present(path, 0o600)?;
            return Ok(key);
        }
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| anyhow::anyhow!("no randomness for the cache key: {e}"))?;
    crate::config::secrets::write_private(path, key)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest pool `--max-concurrent-requests` can ask for fits this process's address
    /// space, and holds every instance of every request admitted.
    #[test]
    fn the_largest_pool_is_built() {
        let limits = Limits {
            max_concurrent_requests: MAX_CONCURRENT_REQUESTS,
            ..Limits::default()
        };
        assert_eq!(
            instance_slots(&limits),
            MAX_CONCURRENT_REQUESTS * INSTANCES_PER_REQUEST
        );
        build(&limits).unwrap();
    }
}
