//! The client of a running host's admin API, shared by `shop swap`, `shop promote` and
//! `shop rollback`: one request with the admin token, its answer's body on success, the
//! answer's `detail` as the error otherwise.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::config::secrets::admin_token;
use crate::http::admin::ADMIN_PREFIX;

/// Where a host's admin API is and the token it wants.
pub struct AdminClient {
    host: String,
    port: u16,
    token: String,
}

impl AdminClient {
    /// The client of the admin API at `admin` (`http://host:port`), with the token of
    /// `token_file` (or SHOP_ADMIN_TOKEN).
    pub fn new(admin: &str, token_file: Option<&Path>) -> Result<Self> {
        let token = admin_token(token_file)?.ok_or_else(|| {
            anyhow!("no admin token: give --token-file PATH or set SHOP_ADMIN_TOKEN")
        })?;
        let url = url::Url::parse(admin).with_context(|| format!("`{admin}` is not a URL"))?;
        if url.scheme() != "http" {
            bail!("`{admin}`: only http:// is supported");
        }
        let host = url
            .host_str()
            .ok_or_else(|| anyhow!("`{admin}` has no host"))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        Ok(Self { host, port, token })
    }

    /// Sends `method` to `/_admin/{path}` with `body` and returns the answer's body, or the
    /// host's reason for refusing (`what` names the action in the error).
    pub fn send(&self, method: &str, path: &str, body: &[u8], what: &str) -> Result<String> {
        let (host, port) = (&self.host, self.port);
        let mut stream = std::net::TcpStream::connect((host.as_str(), port))
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        let head = format!(
            "{method} {ADMIN_PREFIX}{path} HTTP/1.1\r\nHost: {host}:{port}\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/wasm\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.token,
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
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
            bail!("the host refused the {what} ({status}): {detail}");
        }
        Ok(body.trim().to_string())
    }
}
