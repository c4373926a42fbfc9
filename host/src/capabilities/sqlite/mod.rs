//! Host side of `spin:sqlite/sqlite@3.0.0`.
//!
//! Each label of the runtime config is one SQLite file (WAL, foreign keys on) with a pool of
//! connections for the guests (`pool.rs`, on SQLite's C API: `raw.rs`) and a small sqlx pool
//! for the host's own statements. A guest's connection resource takes one pooled connection on
//! its first statement and keeps it for its whole life, so a `BEGIN IMMEDIATE ... COMMIT`
//! spread over several `execute` calls runs on one database connection. When the resource
//! goes away (the guest drops it or its store ends) with a transaction still open, the
//! transaction is rolled back before the connection returns to the pool.
//!
//! A statement that only reads runs on the guest's own thread, within a budget of 2 ms and
//! without waiting for a lock: no thread hop on the catalogue's reads. Writes, BEGIN and COMMIT
//! of a connection that holds its database's write turn run there too; a write inside a
//! transaction has 2 ms of the thread's own CPU time, not of the clock, since SQLite takes the
//! whole transaction with a write it stops. A read that would wait or overruns its budget, and
//! a statement that meets another process's lock, run on a blocking thread, waiting up to 5 s
//! for that lock.
//!
//! Every pooled connection is confined to its own file when it is opened (see `authorizer.rs`):
//! no other database can be attached (so no `ATTACH`, `VACUUM` or `VACUUM INTO`), no extension
//! can be loaded, and an authorizer refuses what would reach past the file or leave state on
//! the connection for a later resource (TEMP objects, PRAGMAs that set something). The host's
//! own statements (migrations, health checks) run on the same connections: they need nothing
//! the authorizer refuses, and a migration must not need it either.
//!
//! The files: `databases` holds the pools, `pool` the guests' pool, `raw` one connection and
//! the conversions to and from the interface's types, `authorizer` the confinement,
//! `connection` the guest's resource, `statement` what the host reads of a statement, and
//! `host` the interface's functions on them.

pub mod bindings;
pub mod migrate;

mod authorizer;
mod connection;
mod databases;
mod host;
mod pool;
mod raw;
mod statement;
#[cfg(test)]
mod temp_dir;

pub use connection::Connection;
pub use databases::SqliteDatabases;
pub use host::{add_to_linker, SqliteView};
