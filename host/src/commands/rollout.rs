//! `shop promote NAME` and `shop rollback NAME`: move a running host's component between the
//! versions it keeps, through the admin API.

use std::path::Path;

use anyhow::Result;

use crate::commands::admin_client::AdminClient;

/// `shop promote NAME`: the canary of component `name` becomes its only version.
pub fn promote(name: &str, admin: &str, token_file: Option<&Path>) -> Result<()> {
    act(name, "promote", "promotion", admin, token_file)
}

/// `shop rollback NAME`: drops the canary of component `name`, or without one goes back to
/// the version that served before the current one.
pub fn rollback(name: &str, admin: &str, token_file: Option<&Path>) -> Result<()> {
    act(name, "rollback", "rollback", admin, token_file)
}

fn act(name: &str, action: &str, what: &str, admin: &str, token_file: Option<&Path>) -> Result<()> {
    let client = AdminClient::new(admin, token_file)?;
    let answer = client.send("POST", &format!("components/{name}/{action}"), b"", what)?;
    println!("{answer}");
    Ok(())
}
