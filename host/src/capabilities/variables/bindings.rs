//! Rust bindings of `fermyon:spin/variables@2.0.0` (`host/wit/`, world `shop:host/variables`).
//!
//! Every import is async and trappable: a host function returns `wasmtime::Result<..>`, where
//! `Err` traps the guest (reserved for host bugs).

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    path: "wit",
    world: "shop:host/variables",
    imports: { default: async | trappable },
});
