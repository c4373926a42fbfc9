//! The accounts service's description, compiled from the service's own sources.

// The service builds and reads these types; here only their schemas are used.
#[allow(dead_code)]
#[path = "../../../accounts/src/api.rs"]
pub mod api;
#[path = "../../../accounts/src/openapi.rs"]
pub mod openapi;
