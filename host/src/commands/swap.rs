//! `shop swap NAME PATH [--canary P]`: uploads a new version of a component to a running
//! host's admin API, to serve alone or as a canary taking P% of the component's requests.

use std::path::Path;

use anyhow::{Context, Result};

use crate::commands::admin_client::AdminClient;
use crate::links::Share;

/// `shop swap NAME PATH`: uploads `path` as component `name` to the host at `admin`; with
/// `canary`, as a canary taking that percentage of its requests.
pub fn run(
    name: &str,
    path: &Path,
    canary: Option<Share>,
    admin: &str,
    token_file: Option<&Path>,
) -> Result<()> {
    let client = AdminClient::new(admin, token_file)?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let answer = match canary {
        Some(share) => client.send(
            "PUT",
            &format!("components/{name}/canary?percent={}", share.percent()),
            &bytes,
            "canary",
        )?,
        None => client.send("PUT", &format!("components/{name}"), &bytes, "swap")?,
    };
    println!("{answer}");
    Ok(())
}
