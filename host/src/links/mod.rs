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
//! imports it. Each definition forwards values to the provider it finds in `Links`, a
//! registry the definitions share and that can be replaced as a whole while requests run.
//! Since forwarded values are dynamically typed, `plan` compares every linked function's type
//! at load, so that a mismatch stops the host instead of trapping at call time.

mod forward;
mod plan;
mod split;
#[cfg(test)]
pub mod test_components;
pub mod types;

pub use forward::{LinkHost, LinkedInstances, Links, Provider, ProviderTable};
pub use plan::{
    dependency_covers, is_host_interface, is_host_only, plan, Declared, Link, HOST_PROVIDES,
    MAX_LINK_DEPTH,
};
pub use split::{Draw, Share, Split};
