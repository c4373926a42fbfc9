//! The HTTP side of the host: the server and its bounds, dispatch to a guest, Spin's request
//! headers, the probes, the bounds per client, and the admin API (with `/metrics`) on its own listener.

pub mod admin;
pub mod admission;
pub mod body;
pub mod client_addr;
pub mod guest;
pub mod health;
pub mod linger;
pub mod metrics;
pub mod per_client;
pub mod responses;
pub mod router;
pub mod server;
pub mod site;
pub mod spin_headers;

pub use site::Site;
