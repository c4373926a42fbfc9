//! The engine and the per-request store.

pub mod engine;
pub mod store;

#[cfg(test)]
mod link_tests;
