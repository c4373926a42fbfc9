//! `native-baseline`: the products service's two reads, `GET /api/products/{id}/` and
//! `GET /api/products/?page_size=N&page=M`, answered by a plain native server from the same
//! database (the SQLite file, or the service's Postgres schema) with the same SQL and the same
//! JSON.
//!
//! Bench tooling, not part of the product: `scripts/bench.py --baseline` runs it beside the shop
//! host on the host's own products database and reports the ratio of the two, which says what
//! the Wasm components and their runtime cost on this machine whatever the machine is.
//!
//! ```text
//! native-baseline --database .shop/products.db [--driver rusqlite|sqlx] --listen 127.0.0.1:0
//! native-baseline --database-url 'postgres://shop_products@127.0.0.1/shop?options=-c%20search_path%3Dproducts'
//! ```
//!
//! On SQLite the default driver is rusqlite (SQLite's C API, a read-only connection per worker
//! thread, the read on that thread): the fastest native way to serve these reads, so the ratio
//! is against the real limit. `--driver sqlx` reads through sqlx's pool as the host does.
//! Postgres is read through sqlx's pool, the host's driver.
//!
//! It prints `Serving http://ADDR` on stdout once it listens, as the host does.

mod catalogue;
mod paging;

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, HOST};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::net::TcpListener;

use crate::catalogue::Catalogue;
use crate::paging::PageRequest;

/// Connections in a sqlx pool: the host's per SQLite file (`POOL_SIZE` in
/// host/src/capabilities/sqlite/mod.rs) and per Postgres service (`POSTGRES_POOL_SIZE`).
const POOL_SIZE: u32 = 16;
/// How long a statement waits for another connection's write lock (the host's).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a free pooled connection (the host's).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// The list filters of the products service, which this baseline does not implement: a request
/// with one is refused rather than answered unfiltered.
const UNSUPPORTED: &[&str] = &["search", "min_price", "max_price", "in_stock", "ordering"];
/// The methods the products paths accept for reading.
const READ_METHODS: &str = "GET, HEAD";

/// What the command line asks for.
struct Options {
    database: Database,
    listen: SocketAddr,
}

/// Where the products are, and how to read them.
#[derive(Debug, PartialEq, Eq)]
enum Database {
    /// A SQLite file, through `driver`.
    Sqlite { path: PathBuf, driver: Driver },
    /// A Postgres URL whose `search_path` reaches the products table (sqlx).
    Postgres { url: String },
}

/// The SQLite driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    Rusqlite,
    Sqlx,
}

const USAGE: &str = "usage: native-baseline (--database PATH [--driver rusqlite|sqlx] | \
                     --database-url postgres://...) [--listen 127.0.0.1:0]";

impl Options {
    /// Reads `--database PATH` (SQLite, with `--driver`: rusqlite by default) or
    /// `--database-url URL` (Postgres), one of them required, and `--listen ADDR` (default
    /// `127.0.0.1:0`).
    fn from_args(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut path = None;
        let mut url = None;
        let mut driver = None;
        let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
            };
            match name.as_str() {
                "--database" => path = Some(PathBuf::from(value()?)),
                "--database-url" => url = Some(value()?),
                "--driver" => {
                    driver = Some(match value()?.as_str() {
                        "rusqlite" => Driver::Rusqlite,
                        "sqlx" => Driver::Sqlx,
                        other => return Err(format!("unknown driver {other}\n{USAGE}")),
                    })
                }
                "--listen" => {
                    let text = value()?;
                    listen = text
                        .parse()
                        .map_err(|e| format!("--listen {text}: {e}\n{USAGE}"))?;
                }
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
        }
        let database = match (path, url, driver) {
            (Some(path), None, driver) => Database::Sqlite {
                path,
                driver: driver.unwrap_or(Driver::Rusqlite),
            },
            (None, Some(url), None | Some(Driver::Sqlx)) => Database::Postgres { url },
            (None, Some(_), Some(_)) => {
                return Err(format!("Postgres is read with sqlx only\n{USAGE}"))
            }
            (Some(_), Some(_), _) => {
                return Err(format!("--database or --database-url, not both\n{USAGE}"))
            }
            (None, None, _) => {
                return Err(format!("--database or --database-url is required\n{USAGE}"))
            }
        };
        Ok(Self { database, listen })
    }
}

#[tokio::main]
async fn main() {
    let options = match Options::from_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if let Err(message) = run(options).await {
        eprintln!("native-baseline: {message}");
        std::process::exit(1);
    }
}

/// Opens the database, listens, prints the address and serves until the process is stopped.
async fn run(options: Options) -> Result<(), String> {
    let catalogue = open_catalogue(&options.database).await?;
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "Serving http://{local}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    let mut http = http1::Builder::new();
    http.keep_alive(true);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, as the host does, then go on.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let catalogue = catalogue.clone();
        let service = service_fn(move |request| {
            let catalogue = catalogue.clone();
            async move { Ok::<_, Infallible>(handle(&catalogue, request, local).await) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

/// The products table through the driver asked for; a SQLite file is not created if missing.
async fn open_catalogue(database: &Database) -> Result<Catalogue, String> {
    match database {
        Database::Sqlite {
            path,
            driver: Driver::Rusqlite,
        } => catalogue::sqlite::Reader::open(path).map(Catalogue::Sqlite),
        Database::Sqlite {
            path,
            driver: Driver::Sqlx,
        } => open_sqlx_sqlite(path).await.map(Catalogue::SqlxSqlite),
        Database::Postgres { url } => PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect(url)
            .await
            .map(Catalogue::Postgres)
            .map_err(|e| format!("cannot connect to Postgres: {e}")),
    }
}

/// A sqlx pool on an existing database file, with the host's settings (WAL,
/// `synchronous=NORMAL`, busy timeout, foreign keys). It only reads.
async fn open_sqlx_sqlite(path: &std::path::Path) -> Result<sqlx::SqlitePool, String> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// An answer that is not a 200: its status and JSON body, shaped as the services send them.
pub struct Failure {
    status: StatusCode,
    body: Vec<u8>,
}

impl Failure {
    /// `status` with `{"detail": detail}`.
    fn new(status: StatusCode, detail: &str) -> Self {
        #[derive(Serialize)]
        struct Detail<'a> {
            detail: &'a str,
        }
        Self {
            status,
            body: serde_json::to_vec(&Detail { detail }).unwrap_or_default(),
        }
    }

    /// 400 with one message for one field (`{"page_size": ["..."]}`).
    fn field(name: &str, message: &str) -> Self {
        let errors = std::collections::BTreeMap::from([(name, [message])]);
        Self {
            status: StatusCode::BAD_REQUEST,
            body: serde_json::to_vec(&errors).unwrap_or_default(),
        }
    }

    /// 404 `{"detail": "Not found."}`.
    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found.")
    }

    /// 404 `{"detail": "Invalid page."}`.
    fn invalid_page() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Invalid page.")
    }

    /// A 500 for what should not fail (a database error, an answer that does not serialize),
    /// logged, with the services' generic message.
    fn internal(error: impl std::fmt::Display) -> Self {
        eprintln!("internal error: {error}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "A server error occurred.",
        )
    }
}

/// Routes one request: path first (404), then method (405), then the read.
async fn handle(
    catalogue: &Catalogue,
    request: Request<Incoming>,
    local: SocketAddr,
) -> Response<Full<Bytes>> {
    let mut response = match route(catalogue, &request, local).await {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(failure) => {
            let mut response = json_response(failure.status, failure.body);
            if failure.status == StatusCode::METHOD_NOT_ALLOWED {
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(READ_METHODS));
            }
            response
        }
    };
    if request.method() == Method::HEAD {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The JSON body of a 200, or why not.
async fn route(
    catalogue: &Catalogue,
    request: &Request<Incoming>,
    local: SocketAddr,
) -> Result<Vec<u8>, Failure> {
    let path = request.uri().path();
    let segments = segments(path).ok_or_else(Failure::not_found)?;
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    let not_allowed = || {
        Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("Method \"{}\" not allowed.", request.method()),
        )
    };
    match segments.as_slice() {
        ["api", "products"] if read => list(catalogue, request, local).await,
        ["api", "products", id] if read => retrieve(catalogue, id).await,
        ["api", "products"] | ["api", "products", _] => Err(not_allowed()),
        _ => Err(Failure::not_found()),
    }
}

/// `GET /api/products/?page_size=N&page=M`: the count, then one page in id order.
async fn list(
    catalogue: &Catalogue,
    request: &Request<Incoming>,
    local: SocketAddr,
) -> Result<Vec<u8>, Failure> {
    let raw_query = request.uri().query().unwrap_or("");
    let query: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    if let Some((name, _)) = query
        .iter()
        .find(|(name, _)| UNSUPPORTED.contains(&name.as_str()))
    {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            &format!("The native baseline does not implement `{name}`."),
        ));
    }
    let pages = PageRequest::from_query(&query)?;
    let count = catalogue.count().await.map_err(Failure::internal)?;
    let window = pages.window_for(count)?;
    let products = catalogue
        .list(window.limit(), window.offset())
        .await
        .map_err(Failure::internal)?;
    // The URL as the host hands it to the guests (`spin-full-url`): the Host header, else the
    // address the server listens on, then the path and query as sent.
    let host = request
        .headers()
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .map_or_else(|| local.to_string(), str::to_owned);
    let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let url = format!("http://{host}{path_and_query}");
    let page = paging::Page::new(&url, &query, window, count, products)?;
    serde_json::to_vec(&page).map_err(Failure::internal)
}

/// `GET /api/products/{id}/`.
async fn retrieve(catalogue: &Catalogue, id: &str) -> Result<Vec<u8>, Failure> {
    let id = parse_id(id).ok_or_else(Failure::not_found)?;
    let product = catalogue
        .find(id)
        .await
        .map_err(Failure::internal)?
        .ok_or_else(Failure::not_found)?;
    serde_json::to_vec(&product).map_err(Failure::internal)
}

/// The path's segments, as `shop_guest::routing::segments` reads them: the path must end in
/// `/` and have no empty segment.
fn segments(path: &str) -> Option<Vec<&str>> {
    let inner = path.strip_prefix('/')?.strip_suffix('/')?;
    let segments: Vec<&str> = inner.split('/').collect();
    if segments.iter().any(|segment| segment.is_empty()) {
        return None;
    }
    Some(segments)
}

/// A positive 64-bit id in plain digits, as `shop_guest::routing::id` reads it.
fn parse_id(segment: &str) -> Option<i64> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse::<i64>().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ids_as_the_service_reads_them() {
        assert_eq!(segments("/api/products/"), Some(vec!["api", "products"]));
        assert_eq!(
            segments("/api/products/7/"),
            Some(vec!["api", "products", "7"])
        );
        assert_eq!(segments("/api/products"), None);
        assert_eq!(segments("/api//products/"), None);
        assert_eq!(parse_id("7"), Some(7));
        for invalid in ["0", "-1", "+1", "x", "", "99999999999999999999"] {
            assert_eq!(parse_id(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn options_need_one_database() {
        let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let options = Options::from_args(
            args(&["--database", "p.db", "--listen=127.0.0.1:8080"]).into_iter(),
        )
        .unwrap();
        assert_eq!(
            options.database,
            Database::Sqlite {
                path: PathBuf::from("p.db"),
                driver: Driver::Rusqlite
            }
        );
        assert_eq!(options.listen.port(), 8080);
        let sqlx =
            Options::from_args(args(&["--database", "p.db", "--driver", "sqlx"]).into_iter());
        assert_eq!(
            sqlx.unwrap().database,
            Database::Sqlite {
                path: PathBuf::from("p.db"),
                driver: Driver::Sqlx
            }
        );
        let postgres = Options::from_args(args(&["--database-url", "postgres://h/d"]).into_iter());
        assert_eq!(
            postgres.unwrap().database,
            Database::Postgres {
                url: "postgres://h/d".to_owned()
            }
        );
        for invalid in [
            &["--listen", "127.0.0.1:0"][..],
            &["--bogus"],
            &["--database", "p.db", "--database-url", "postgres://h/d"],
            &["--database-url", "postgres://h/d", "--driver", "rusqlite"],
            &["--database", "p.db", "--driver", "odbc"],
        ] {
            assert!(
                Options::from_args(args(invalid).into_iter()).is_err(),
                "{invalid:?}"
            );
        }
    }
}
