//! The kept versions of each component: the last few that served, oldest first, so that a
//! rollback has somewhere to go. Each is kept in memory (compiled and linked, so that going
//! back to it is instant) and as `<data>/versions/<component>/<sha256>.wasm`, so that a
//! restarted host can still roll back to what served before it (compiled again on the way).
//!
//! The folder mirrors the list: a version that leaves the list leaves the folder, and the
//! files' modification times keep the order across restarts.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::app::ServedVersion;
use crate::config::secrets::{create_private_dir, set_mode_if_present};
use crate::links::Split;

/// How many versions of each component are kept (those serving included).
pub const KEPT: usize = 5;

/// One kept version.
#[derive(Clone)]
pub struct KeptVersion {
    /// The SHA-256 of its Wasm bytes, in hex.
    pub version: String,
    /// When it was loaded (for one only on disk: when it was last kept).
    pub loaded_at: SystemTime,
    /// Its compiled code, once this process has loaded it.
    pub code: Option<Arc<ServedVersion>>,
}

/// The kept versions of every component, by component index.
pub struct KeptVersions {
    dir: PathBuf,
    lists: Mutex<Vec<VecDeque<KeptVersion>>>,
}

impl KeptVersions {
    /// The versions of the components `ids` kept under `dir`: those found on disk (the newest
    /// [`KEPT`] of each), not yet compiled.
    pub fn open(dir: PathBuf, ids: &[&str]) -> Self {
        let lists = ids.iter().map(|id| on_disk(&dir.join(id))).collect();
        Self {
            dir,
            lists: Mutex::new(lists),
        }
    }

    /// The kept versions of component `index`, oldest first.
    pub fn list(&self, index: usize) -> Vec<KeptVersion> {
        self.lock()[index].iter().cloned().collect()
    }

    /// The version kept just before `version` in component `index`'s list: where a rollback
    /// from it goes.
    pub fn before(&self, index: usize, version: &str) -> Option<KeptVersion> {
        let lists = self.lock();
        let list = &lists[index];
        let at = list.iter().position(|kept| kept.version == version)?;
        at.checked_sub(1).map(|before| list[before].clone())
    }

    /// Keeps `code` (whose Wasm is `bytes`) as component `id`'s newest version, then drops the
    /// oldest that do not serve in `serving` until [`KEPT`] are left. A failure to write is
    /// logged: the version still serves, it is only not kept on disk.
    pub fn keep(
        &self,
        index: usize,
        id: &str,
        code: &Arc<ServedVersion>,
        bytes: &[u8],
        serving: &Split<Arc<ServedVersion>>,
    ) {
        let dir = self.dir.join(id);
        if let Err(err) = write_version(&dir, &code.version, bytes) {
            tracing::warn!(component = %id, "cannot keep version {} on disk: {err:#}", code.version);
        }
        let mut lists = self.lock();
        let list = &mut lists[index];
        list.retain(|kept| kept.version != code.version);
        list.push_back(KeptVersion {
            version: code.version.clone(),
            loaded_at: code.loaded_at,
            code: Some(code.clone()),
        });
        let serves = |kept: &KeptVersion| {
            kept.version == serving.stable.version
                || serving
                    .canary
                    .as_ref()
                    .is_some_and(|(c, _)| c.version == kept.version)
        };
        while list.len() > KEPT {
            let Some(oldest) = list.iter().position(|kept| !serves(kept)) else {
                break;
            };
            let dropped = list.remove(oldest).expect("found above");
            let _ = std::fs::remove_file(version_path(&dir, &dropped.version));
        }
    }

    /// Records that `code`, a kept version of component `index` that was only on disk, is
    /// now compiled.
    pub fn loaded(&self, index: usize, code: &Arc<ServedVersion>) {
        let mut lists = self.lock();
        if let Some(kept) = lists[index]
            .iter_mut()
            .find(|kept| kept.version == code.version)
        {
            kept.code = Some(code.clone());
        }
    }

    /// The Wasm bytes of a kept version of component `id`.
    pub fn read(&self, id: &str, version: &str) -> Result<Vec<u8>> {
        let path = version_path(&self.dir.join(id), version);
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<VecDeque<KeptVersion>>> {
        self.lists.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where version `version` of the component kept in `dir` lies.
fn version_path(dir: &Path, version: &str) -> PathBuf {
    dir.join(format!("{version}.wasm"))
}

/// Writes the version whole under a temporary name first, so that a crash leaves no torn
/// file under a version's name; a version already there is only marked the newest.
fn write_version(dir: &Path, version: &str, bytes: &[u8]) -> Result<()> {
    let path = version_path(dir, version);
    if path.exists() {
        File::options()
            .write(true)
            .open(&path)?
            .set_modified(SystemTime::now())?;
        return Ok(());
    }
    // The data folder is the host user's alone (0700 folders, 0600 files), as the secrets are.
    create_private_dir(dir)?;
    let partial = dir.join(format!("{version}.wasm.partial"));
    std::fs::write(&partial, bytes)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    set_mode_if_present(&partial, 0o600)?;
    std::fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))
}

/// The versions kept in `dir`, oldest first: the newest [`KEPT`] `<sha256>.wasm` files.
fn on_disk(dir: &Path) -> VecDeque<KeptVersion> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return VecDeque::new();
    };
    let mut found: Vec<KeptVersion> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_suffix(".wasm")?;
            let is_sha256 = version.len() == 64 && version.bytes().all(|b| b.is_ascii_hexdigit());
            Some(KeptVersion {
                version: is_sha256.then(|| version.to_string())?,
                loaded_at: entry.metadata().ok()?.modified().ok()?,
                code: None,
            })
        })
        .collect();
    found.sort_by_key(|kept| kept.loaded_at);
    let skip = found.len().saturating_sub(KEPT);
    found.into_iter().skip(skip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(n: u8) -> String {
        format!("{n:064x}")
    }

    fn fresh_dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "shop-versions-{label}-{}-{:?}",
            std::process::id(),
            SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_folder_gives_back_the_newest_versions_oldest_first() {
        let dir = fresh_dir("order");
        let component = dir.join("products");
        for n in 0..7u8 {
            write_version(&component, &sha(n), &[n]).unwrap();
            let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + u64::from(n));
            File::options()
                .write(true)
                .open(version_path(&component, &sha(n)))
                .unwrap()
                .set_modified(at)
                .unwrap();
        }
        std::fs::write(component.join("notes.txt"), "not a version").unwrap();
        let kept = KeptVersions::open(dir.clone(), &["products"]);
        let versions: Vec<String> = kept.list(0).into_iter().map(|k| k.version).collect();
        assert_eq!(versions, (2..7).map(sha).collect::<Vec<_>>());
        assert_eq!(kept.before(0, &sha(3)).unwrap().version, sha(2));
        assert!(kept.before(0, &sha(2)).is_none());
        assert_eq!(kept.read("products", &sha(6)).unwrap(), vec![6]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_rewritten_version_keeps_its_bytes_and_becomes_the_newest() {
        let dir = fresh_dir("rewrite");
        write_version(&dir, &sha(1), b"one").unwrap();
        write_version(&dir, &sha(2), b"two").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_version(&dir, &sha(1), b"ignored").unwrap();
        let found: Vec<String> = on_disk(&dir).into_iter().map(|k| k.version).collect();
        assert_eq!(found, vec![sha(2), sha(1)]);
        assert_eq!(std::fs::read(version_path(&dir, &sha(1))).unwrap(), b"one");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
