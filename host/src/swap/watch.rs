//! The watcher: a component whose source file changed, and then stayed the same for a moment,
//! is swapped in.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::app::version_of;
use crate::swap::swapper::Swapper;

/// How often the watcher looks at the source files.
const POLL: Duration = Duration::from_millis(250);

/// How long a changed source file must stay unchanged before it is swapped in.
const STABLE: Duration = Duration::from_millis(200);

/// The size and modification time of a file, to notice that it changed.
type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Watches every component's source file, and swaps a component once its changed file has
/// stayed the same for a moment (a build or a copy writes it in several steps).
pub async fn watch(swapper: Arc<Swapper>) {
    let app = swapper.app().clone();
    struct Watched {
        seen: Option<Stamp>,
        since: Instant,
        handled: Option<Stamp>,
    }
    let sources: Vec<_> = (0..app.components.len()).map(|i| app.source(i)).collect();
    let mut watched: Vec<Watched> = sources
        .iter()
        .map(|path| {
            let now = stamp(path);
            Watched {
                seen: now,
                since: Instant::now(),
                handled: now,
            }
        })
        .collect();
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for (index, file) in watched.iter_mut().enumerate() {
            let path = &sources[index];
            let now = stamp(path);
            if now != file.seen {
                file.seen = now;
                file.since = Instant::now();
                continue;
            }
            if now.is_none() || now == file.handled || file.since.elapsed() < STABLE {
                continue;
            }
            file.handled = now;
            let id = &app.components[index].config.id;
            let bytes = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(err) => {
                    tracing::warn!(component = %id, "cannot read {}: {err}", path.display());
                    continue;
                }
            };
            if version_of(&bytes) == app.components[index].current().version {
                continue;
            }
            if let Err(err) = swapper.swap(index, bytes, true).await {
                tracing::error!(
                    component = %id,
                    "{} changed, but the new version is refused (the old one keeps serving): {err:#}",
                    path.display()
                );
            }
        }
    }
}
