//! `shop`: a wasmtime host that serves a Spin app's HTTP components (`spin.toml`).
//!
//! The tree is the architecture; each layer knows only the ones listed after it:
//!
//! - [`commands`]: what `shop <command>` does (up, migrate, compile, build, createsuperuser,
//!   and the swap client).
//! - [`http`]: the HTTP server: admission, dispatch to a guest, Spin's request headers, the
//!   health check and the admin API.
//! - [`swap`]: replacing one component's code while the app serves.
//! - [`app`]: the loaded app: its components and their versions, and how it is loaded.
//! - [`runtime`]: the engine and the per-request store that assembles the capabilities.
//! - [`links`]: the typed WIT links between components: the plan, type checks, forwarding.
//! - [`capabilities`]: one folder per host interface a guest imports (SQLite, Postgres,
//!   variables) and the outbound-host rules they share.
//! - [`telemetry`]: metrics, and the spans of requests, link calls and statements.
//! - [`config`]: the manifest, the runtime config, variables, secrets, database addresses.
//! - [`civil`]: calendar arithmetic, shared by the Postgres codec and the admin API.

pub mod app;
pub mod capabilities;
pub mod civil;
pub mod commands;
pub mod config;
pub mod http;
pub mod links;
pub mod runtime;
pub mod swap;
pub mod telemetry;
