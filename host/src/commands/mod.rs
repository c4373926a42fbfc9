//! What each `shop` command does; `main.rs` only parses the command line.

mod admin_client;
pub mod build;
pub mod compile;
pub mod createsuperuser;
pub mod migrate;
pub mod rollout;
pub mod swap;
pub mod up;
