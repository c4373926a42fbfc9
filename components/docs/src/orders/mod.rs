//! The orders service's description, compiled from the service's own sources.

// The service builds and reads these types; here only their schemas are used.
#[allow(dead_code)]
#[path = "../../../orders/src/api.rs"]
pub mod api;
#[path = "../../../orders/src/openapi.rs"]
pub mod openapi;
