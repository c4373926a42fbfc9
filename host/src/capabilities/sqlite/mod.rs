//! Host side of `spin:sqlite/sqlite@3.0.0`.
//!
//! Each label of the runtime config is one SQLite file behind an sqlx pool (WAL, a busy
//! timeout, foreign keys on). A guest's connection resource takes one pooled connection on
//! its first statement and keeps it for its whole life, so a `BEGIN IMMEDIATE ... COMMIT`
//! spread over several `execute` calls runs on one database connection. When the resource
//! goes away (the guest drops it or its store ends) with a transaction possibly still open,
//! the transaction is rolled back in the background before the connection returns to the
//! pool.
//!
//! Every pooled connection is confined to its own file when it is opened (see `authorizer.rs`):
//! no other database can be attached (so no `ATTACH`, `VACUUM` or `VACUUM INTO`), no extension
//! can be loaded, and an authorizer refuses what would reach past the file or leave state on
//! the connection for a later resource (TEMP objects, PRAGMAs that set something). The host's
//! own statements (migrations, health checks) run on the same connections: they need nothing
//! the authorizer refuses, and a migration must not need it either.
//!
//! The files: `databases` holds the pools, `authorizer` the confinement, `connection` the
//! guest's resource, `statement` what the host reads of a statement, `values` the conversions
//! to and from the interface's types, and `host` the interface's functions on them.

pub mod bindings;
pub mod migrate;

mod authorizer;
mod connection;
mod databases;
mod host;
mod statement;
mod values;

pub use connection::Connection;
pub use databases::SqliteDatabases;
pub use host::{add_to_linker, SqliteView};
