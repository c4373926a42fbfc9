//! The host interfaces a guest imports besides WASI and `wasi:http`, one module each: its
//! app-level state and checks, its per-instance view, its `Host` impl and its bindings.

pub mod bounds;
mod databases;
pub mod outbound;
pub mod postgres;
pub mod sql_scan;
pub mod sqlite;
pub mod variables;

pub use databases::Databases;
