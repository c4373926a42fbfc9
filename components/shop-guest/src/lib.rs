//! What every shop component needs, written once: the DRF-shaped error answers, JWTs (issued
//! and checked), money, paging, JSON bodies, request routing and one storage API over SQLite
//! and Postgres.

#![warn(missing_docs)]

pub mod auth;
pub mod error;
pub mod history;
pub mod json;
mod jwt;
mod migrations;
pub mod money;
pub mod openapi;
pub mod paging;
pub mod query;
pub mod request;
pub mod response;
pub mod routing;
#[cfg(test)]
mod sql_split;
pub mod storage;
pub mod time;

pub use auth::User;
pub use error::{ApiError, FieldErrors};
pub use json::{Fields, Presence};
pub use money::Money;
pub use paging::{Page, PageRequest};
pub use request::ApiRequest;
pub use storage::{Db, Param, Statement, StorageError};
pub use time::Timestamp;
