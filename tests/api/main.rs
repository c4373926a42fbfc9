//! End-to-end tests: the real components, compiled to wasm32-wasip2, served by the real host
//! (`shop up`), against real SQLite and Postgres. Every case runs once per engine.

mod accounts;
mod canary;
mod carts;
mod checkout_cuts;
mod client_addr;
mod cluster;
mod components;
mod console;
mod containment;
mod database_down;
mod deploy;
mod docs;
mod edge;
mod helpers;
mod isolation;
mod limits;
mod metrics;
mod module_graph;
mod operator;
mod orders;
mod postgres_tls;
mod products;
mod safe_defaults;
mod shutdown;
mod spin_manifest;
mod spin_schema;
mod startup;
mod swap;
mod traces;
