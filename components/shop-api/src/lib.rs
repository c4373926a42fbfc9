//! What each service reads and writes over HTTP, as types (`<service>::api`): the responses it
//! serializes and the request bodies it accepts. With the `openapi` feature, also each
//! service's operations in the OpenAPI document (`<service>::openapi`), which the docs
//! component merges into one: the published schema is built from the very types the services
//! answer with.

pub mod accounts;
pub mod cart;
pub mod history;
pub mod orders;
pub mod products;
