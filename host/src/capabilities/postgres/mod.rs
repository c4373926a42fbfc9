//! Host side of `spin:postgres/postgres@4.0.0` on sqlx Postgres pools.
//!
//! One pool per distinct address, made on first use and kept. A guest's connection resource
//! takes one pooled connection on its first statement and keeps it for its whole life (so a
//! `BEGIN ... COMMIT` over several calls is one transaction); when the resource goes away with
//! a transaction possibly open, it is rolled back in the background before the connection
//! returns to the pool.
//!
//! Every statement is prepared first: sqlx caches prepared statements per connection, so after
//! the first use this costs no round trip, and it gives the parameter types to encode the
//! guest's values with (a `db-null` is then a NULL of the right type) and the columns even
//! when no row comes back. Values travel in Postgres' binary format, converted here.
//!
//! - `pools`: the app's pools, one per address, and the session reset before a connection
//!   goes back to one.
//! - `connection`: a guest's connection resource, and the rollback when it goes away.
//! - `host`: the guest's view and the `spin:postgres` host functions.
//! - `transactions`: which statements open or close a transaction or change the session.
//! - `codec`: the guest's values in Postgres' binary format, and back.
//! - `error`: sqlx errors as the interface's `error`.
//! - `migrate`, `provision`: each service's role, schema and migrations, before the app serves.

pub mod bindings;
mod codec;
mod connection;
mod error;
mod host;
pub mod migrate;
mod pools;
pub mod provision;
mod transactions;

pub use connection::Connection;
pub use host::{add_to_linker, PostgresView};
pub use pools::{PostgresPools, DEFAULT_ACQUIRE_TIMEOUT};
