//! Rust bindings of `spin:postgres/postgres@4.0.0` (`host/wit/`, world `shop:host/postgres`).
//!
//! Every import is async and trappable: a host function returns `wasmtime::Result<..>`, where
//! `Err` traps the guest (reserved for host bugs).

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    path: "wit",
    world: "shop:host/postgres",
    imports: { default: async | trappable },
    with: {
        "spin:postgres/postgres.connection": crate::capabilities::postgres::connection::Connection,
    },
});
