//! What the app is configured with: the manifest, the runtime config, variables, secrets.

pub mod component;
pub mod database_url;
pub mod manifest;
pub mod secrets;
pub mod variables;
