//! The products service's description, compiled from the service's own sources.

// The service builds and reads these types; here only their schemas are used.
#[allow(dead_code)]
#[path = "../../../products/src/api.rs"]
pub mod api;
#[path = "../../../products/src/openapi.rs"]
pub mod openapi;
