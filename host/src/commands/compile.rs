//! `shop compile`: precompiles the app's components into the cache `shop up` loads.

use anyhow::{Context, Result};

use crate::app::check_source_exists;
use crate::config::manifest::Manifest;
use crate::runtime::engine::{self, Limits};

/// Compiles every component of the manifest into the cache next to its source, reporting the
/// time each took (no time: the cache was already current).
pub fn run(manifest: &Manifest) -> Result<()> {
    let engine = engine::build(&Limits::default())?;
    let cache = engine::CompiledCache::for_app(&manifest.dir);
    for (id, decl) in &manifest.components {
        check_source_exists(manifest, id, decl)?;
        let path = manifest.source_path(decl);
        let started = std::time::Instant::now();
        let fresh = cache.current(&engine, &path)?;
        cache
            .load(&engine, &path)
            .with_context(|| format!("component `{id}`: cannot compile {}", path.display()))?;
        if fresh {
            println!("{id}: cached compile is current");
        } else {
            println!("{id}: compiled in {:.2?}", started.elapsed());
        }
    }
    Ok(())
}
