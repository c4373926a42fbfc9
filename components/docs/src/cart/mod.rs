//! The cart service's description, compiled from the service's own sources.

// The service builds and reads these types; here only their schemas are used.
#[allow(dead_code)]
#[path = "../../../cart/src/api.rs"]
pub mod api;
#[path = "../../../cart/src/openapi.rs"]
pub mod openapi;
