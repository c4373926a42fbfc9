//! Rust bindings of `spin:sqlite/sqlite@3.0.0` (`host/wit/`, world `shop:host/sqlite`).
//!
//! Every import is async and trappable: a host function returns `wasmtime::Result<..>`, where
//! `Err` traps the guest (reserved for host bugs).

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    path: "wit",
    world: "shop:host/sqlite",
    imports: { default: async | trappable },
    with: {
        "spin:sqlite/sqlite.connection": crate::capabilities::sqlite::connection::Connection,
    },
});
