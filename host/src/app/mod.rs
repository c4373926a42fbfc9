//! The loaded app: its components, each with the version of its code that serves, and what
//! every request shares (engine, databases, linker, links). `load` builds it from `spin.toml`.

mod load;
mod served;

pub(crate) use load::{check_source_exists, declares_dependency, load_data};
pub use load::{link_component, load, providers};
pub use served::{
    version_of, App, AppOptions, ServedComponent, ServedVersion, Tally, POSTGRES_POOL_SIZE,
};
