//! The products service's description, compiled from the service's own sources.

#[path = "../../../products/src/api.rs"]
pub mod api;
#[path = "../../../products/src/openapi.rs"]
pub mod openapi;
