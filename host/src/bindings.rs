//! Rust bindings of the Spin interfaces the host provides (`host/wit/`).
//!
//! Generated once here so that each host interface module (`sqlite`, `postgres`,
//! `variables`) implements its generated `Host` traits and calls its generated
//! `add_to_linker`. Every import is async and trappable: a host function returns
//! `wasmtime::Result<..>`, where `Err` traps the guest (reserved for host bugs).

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    path: "wit",
    world: "shop:host/host",
    imports: { default: async | trappable },
    with: {
        "spin:sqlite/sqlite.connection": crate::sqlite::Connection,
        "spin:postgres/postgres.connection": crate::postgres::Connection,
    },
});
