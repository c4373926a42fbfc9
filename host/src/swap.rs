//! Hot swap: a component's code replaced while the host serves, from its source file changing
//! on disk (the watcher) or from an upload to the admin API (`PUT /_admin/components/{name}`,
//! off unless a token is given). `shop swap NAME PATH` does the upload.
//!
//! A new version is compiled off the request path, linked with the host's one linker (it may
//! import nothing the host or the links cannot give), must export `wasi:http/incoming-handler`
//! and every interface the other components import from it, with the same types; then it
//! replaces the old one at once. A request takes its component's version once at its start and
//! runs to its end on it; the links' providers are re-installed, so new calls over the links
//! get the new version. A version that fails a check is refused, the reason logged, and the
//! old one keeps serving.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};

use crate::app::{App, ServedVersion};
use crate::links::{self, Links};
use crate::server::{json, ResponseBody};
use crate::state::HostState;

/// Where the admin API answers.
pub const ADMIN_PREFIX: &str = "/_admin/";

/// The largest component the admin API accepts (the shop's are under 5 MiB): a larger upload
/// is a 413, read no further.
const MAX_UPLOAD: usize = 32 << 20;

/// How often the watcher looks at the source files.
const POLL: Duration = Duration::from_millis(250);

/// How long a changed source file must stay unchanged before it is swapped in.
const STABLE: Duration = Duration::from_millis(200);

/// How many compiled versions are kept, so that swapping back to one does not compile again.
const COMPILED_KEPT: usize = 8;

/// What a swap needs besides the app: the shared linker, the links, each component's source
/// and the admin token.
pub struct Swapper {
    linker: Linker<HostState>,
    links: Links,
    /// Each served component's source file, by component index.
    sources: Vec<PathBuf>,
    admin_token: Option<String>,
    /// One swap at a time.
    lock: tokio::sync::Mutex<()>,
    /// Compiled components, by version.
    compiled: Mutex<HashMap<String, Component>>,
}

impl Swapper {
    /// The swapper of an app linked with `linker` and `links`, its components read from `sources`.
    pub fn new(
        linker: Linker<HostState>,
        links: Links,
        sources: Vec<PathBuf>,
        admin_token: Option<String>,
    ) -> Self {
        Self {
            linker,
            links,
            sources,
            admin_token,
            lock: tokio::sync::Mutex::new(()),
            compiled: Mutex::new(HashMap::new()),
        }
    }
}

/// The version of a component: the SHA-256 of its Wasm bytes, in hex.
pub fn version_of(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Replaces component `index` by `bytes`, or refuses them (the error says why) and keeps the
/// old version serving. Returns once new requests get the new version.
/// `from_source`: the bytes are the source file's (the watcher), so the compiled copies of its
/// earlier versions may go.
pub async fn swap(
    app: &Arc<App>,
    index: usize,
    bytes: Vec<u8>,
    from_source: bool,
) -> Result<Arc<ServedVersion>> {
    let _one_at_a_time = app.swap.lock.lock().await;
    let served = &app.components[index];
    let id = served.config.id.as_str();
    let version = version_of(&bytes);
    let cached = app
        .swap
        .compiled
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&version)
        .cloned();
    let component = match cached {
        Some(component) => component,
        None => {
            let engine = app.engine.clone();
            let source = app.swap.sources[index].clone();
            let component = tokio::task::spawn_blocking(move || {
                crate::engine::load_component_bytes(&engine, &source, &bytes, from_source)
            })
            .await
            .map_err(|err| anyhow!("compiling it failed: {err}"))?
            .map_err(|err| anyhow!("component `{id}`: not a valid Wasm component: {err:#}"))?;
            let mut compiled = app
                .swap
                .compiled
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if compiled.len() >= COMPILED_KEPT {
                compiled.clear();
            }
            compiled.insert(version.clone(), component.clone());
            component
        }
    };
    let pre = crate::app::link_component(&app.swap.linker, id, &component)?;

    // The others' imports from it must still be met, with the same types.
    let mut versions: Vec<Arc<ServedVersion>> =
        app.components.iter().map(|c| c.current()).collect();
    let named: Vec<(&str, &Component)> = app
        .components
        .iter()
        .zip(&versions)
        .enumerate()
        .map(|(i, (c, v))| {
            let code = if i == index {
                &component
            } else {
                v.pre.instance_pre().component()
            };
            (c.config.id.as_str(), code)
        })
        .collect();
    let plan = links::plan(&app.engine, &named)?;
    drop(named);

    let new = Arc::new(ServedVersion {
        pre,
        version,
        loaded_at: SystemTime::now(),
    });
    versions[index] = new.clone();
    let providers = crate::app::providers(&app.components, &versions, &plan)?;
    served.replace(new.clone());
    app.swap.links.install(providers);
    tracing::info!(component = %id, version = %new.version, "swapped in a new version");
    Ok(new)
}

/// The size and modification time of a file, to notice that it changed.
type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Watches every component's source file, and swaps a component once its changed file has
/// stayed the same for a moment (a build or a copy writes it in several steps).
pub async fn watch(app: Arc<App>) {
    struct Watched {
        seen: Option<Stamp>,
        since: Instant,
        handled: Option<Stamp>,
    }
    let mut watched: Vec<Watched> = app
        .swap
        .sources
        .iter()
        .map(|path| {
            let now = stamp(path);
            Watched {
                seen: now,
                since: Instant::now(),
                handled: now,
            }
        })
        .collect();
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for (index, file) in watched.iter_mut().enumerate() {
            let path = &app.swap.sources[index];
            let now = stamp(path);
            if now != file.seen {
                file.seen = now;
                file.since = Instant::now();
                continue;
            }
            if now.is_none() || now == file.handled || file.since.elapsed() < STABLE {
                continue;
            }
            file.handled = now;
            let id = &app.components[index].config.id;
            let bytes = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(err) => {
                    tracing::warn!(component = %id, "cannot read {}: {err}", path.display());
                    continue;
                }
            };
            if version_of(&bytes) == app.components[index].current().version {
                continue;
            }
            if let Err(err) = swap(&app, index, bytes, true).await {
                tracing::error!(
                    component = %id,
                    "{} changed, but the new version is refused (the old one keeps serving): {err:#}",
                    path.display()
                );
            }
        }
    }
}

/// The admin API: `GET /_admin/components`, `PUT /_admin/components/{name}`.
pub async fn admin(app: &Arc<App>, request: Request<Incoming>) -> Response<ResponseBody> {
    let Some(token) = &app.swap.admin_token else {
        return json(StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#);
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        None => {
            let mut response = json(
                StatusCode::UNAUTHORIZED,
                r#"{"detail":"Authentication credentials were not provided."}"#,
            );
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"admin\""),
            );
            return response;
        }
        Some(given) if !same_token(given.trim(), token) => {
            return json(
                StatusCode::FORBIDDEN,
                r#"{"detail":"You do not have permission to perform this action."}"#,
            );
        }
        Some(_) => {}
    }
    let path = request.uri().path().to_string();
    let rest = &path[ADMIN_PREFIX.len()..];
    let method = request.method().clone();
    if rest == "components" || rest == "components/" {
        if method != Method::GET {
            return not_allowed(&method);
        }
        let list: Vec<_> = app
            .components
            .iter()
            .map(|c| entry(&c.config.id, &c.current()))
            .collect();
        return json(StatusCode::OK, serde_json::Value::Array(list).to_string());
    }
    let Some(name) = rest.strip_prefix("components/") else {
        return json(StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#);
    };
    let Some(index) = app.components.iter().position(|c| c.config.id == name) else {
        return json(StatusCode::NOT_FOUND, r#"{"detail":"Not found."}"#);
    };
    match method {
        Method::GET => json(
            StatusCode::OK,
            entry(name, &app.components[index].current()).to_string(),
        ),
        Method::PUT => {
            let declared = request
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|length| length > MAX_UPLOAD as u64) {
                return upload_too_large();
            }
            let bytes = match Limited::new(request.into_body(), MAX_UPLOAD)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes().to_vec(),
                Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                    return upload_too_large();
                }
                Err(err) => {
                    let body =
                        serde_json::json!({ "detail": format!("cannot read the upload: {err}") });
                    return json(StatusCode::BAD_REQUEST, body.to_string());
                }
            };
            match swap(app, index, bytes, false).await {
                Ok(version) => json(StatusCode::OK, entry(name, &version).to_string()),
                Err(err) => {
                    tracing::error!(
                        component = %name,
                        "the uploaded version is refused (the old one keeps serving): {err:#}"
                    );
                    let body = serde_json::json!({ "detail": format!("{err:#}") });
                    json(StatusCode::BAD_REQUEST, body.to_string())
                }
            }
        }
        _ => not_allowed(&method),
    }
}

fn upload_too_large() -> Response<ResponseBody> {
    let body = serde_json::json!({
        "detail": format!("The upload is over {} MiB.", MAX_UPLOAD >> 20)
    });
    json(StatusCode::PAYLOAD_TOO_LARGE, body.to_string())
}

fn not_allowed(method: &Method) -> Response<ResponseBody> {
    let body = serde_json::json!({ "detail": format!("Method \"{method}\" not allowed.") });
    json(StatusCode::METHOD_NOT_ALLOWED, body.to_string())
}

/// A component in the admin API's answers.
fn entry(name: &str, version: &ServedVersion) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "version": version.version,
        "loaded_at": rfc3339(version.loaded_at),
    })
}

/// Compares two tokens in time that depends on neither: their digests, byte by byte.
fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

/// `2026-11-25T16:19:26Z`, in UTC.
fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Reads the admin token from `file`, or else from `SHOP_ADMIN_TOKEN`; `None`: the API is off.
pub fn admin_token(file: Option<&Path>) -> Result<Option<String>> {
    let token = match file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the admin token file {}", file.display()))?,
        None => match std::env::var("SHOP_ADMIN_TOKEN") {
            Ok(token) => token,
            Err(_) => return Ok(None),
        },
    };
    let token = token.trim().to_string();
    if token.len() < 16 {
        bail!("the admin token must have at least 16 characters");
    }
    Ok(Some(token))
}

/// `shop swap NAME PATH`: uploads `path` as component `name` to the host at `admin`.
pub fn upload(name: &str, path: &Path, admin: &str, token_file: Option<&Path>) -> Result<()> {
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
