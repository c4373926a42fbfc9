//! The products service (the catalogue): its HTTP types and its part of the OpenAPI document.

pub mod api;
#[cfg(feature = "openapi")]
pub mod openapi;
