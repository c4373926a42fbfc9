//! Hot swap: a component's code replaced while the host serves, from its source file changing
//! on disk (the watcher, `watch.rs`) or from an upload to the admin API (`http::admin`).
//!
//! A new version is compiled off the request path, linked with the host's one linker (it may
//! import nothing the host or the links cannot give), must export `wasi:http/incoming-handler`
//! and every interface the other components import from it, with the same types; then it
//! replaces the old one at once. A request takes its component's version once at its start and
//! runs to its end on it; the links' providers are re-installed, so new calls over the links
//! get the new version. A version that fails a check is refused, the reason logged, and the
//! old one keeps serving.
//!
//! A canary serves beside the stable version and takes a share of the component's requests,
//! each request drawing once which version of every component it meets (see `links::Split`).
//! The last versions of each component are kept (`versions.rs`), so that a rollback goes back
//! at once.

mod swapper;
mod versions;
mod watch;

pub use swapper::{SwapError, Swapper};
pub use versions::{KeptVersion, KEPT};
pub use watch::watch;
