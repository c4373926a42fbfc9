//! `shop swap NAME PATH`: uploads a new version of a component to a running host's admin API.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::config::secrets::admin_token;
use crate::http::admin::ADMIN_PREFIX;

/// `shop swap NAME PATH`: uploads `path` as component `name` to the host at `admin`.
pub fn run(name: &str, path: &Path, admin: &str, token_file: Option<&Path>) -> Result<()> {
    let token = admin_token(token_file)?
        .ok_or_else(|| anyhow!("no admin token: give --token-file PATH or set SHOP_ADMIN_TOKEN"))?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let url = url::Url::parse(admin).with_context(|| format!("`{admin}` is not a URL"))?;
    if url.scheme() != "http" {
        bail!("`{admin}`: only http:// is supported");
    }
    let host = url
        .host_str()
        .ok_or_else(|| anyhow!("`{admin}` has no host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let mut stream = std::net::TcpStream::connect((host, port))
        .with_context(|| format!("cannot connect to {host}:{port}"))?;
    let head = format!(
        "PUT {ADMIN_PREFIX}components/{name} HTTP/1.1\r\nHost: {host}:{port}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/wasm\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&bytes)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP answer: {head}"))?;
    if status != 200 {
        let detail = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.to_string());
        bail!("the host refused the swap ({status}): {detail}");
    }
    println!("{}", body.trim());
    Ok(())
}
