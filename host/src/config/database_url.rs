//! What a database URL is, in one place: `--database-url` and the services' `<service>_database`
//! values are checked, read (server, schema) and given a schema here.

use std::str::FromStr;

use anyhow::{bail, Result};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sqlx::postgres::PgConnectOptions;

pub use shop_database_address::{is_postgres_url, DatabaseAddress};

/// What to do when Postgres' certificate cannot be verified: the end of the error that says so.
pub const TLS_ADVICE: &str = "With sslmode=verify-full or verify-ca the server's certificate must \
     chain to the system's roots or to the CA file of sslrootcert=/path/to/ca.pem (for a \
     self-signed server, its own certificate), and with verify-full also name the URL's host; \
     sslmode=require encrypts without verifying";

/// Query-string characters left as they are: RFC 3986's unreserved set.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Checks a `--database-url`: it must be a `postgres://` or `postgresql://` URL.
pub fn check_database_url(url: &str) -> Result<()> {
    if !is_postgres_url(url) {
        bail!("--database-url must be a postgres:// or postgresql:// URL, got `{url}`");
    }
    PgConnectOptions::from_str(url)
        .map(drop)
        .map_err(|err| anyhow::anyhow!("--database-url `{url}` is not a valid Postgres URL: {err}"))
}

/// The URL of `base` with `-c search_path=<schema>` added to its `options` parameter.
pub fn with_search_path(base: &str, schema: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((head, query)) => (head, query),
        None => (base, ""),
    };
    let search_path = format!("-c search_path={schema}");
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match pairs.iter_mut().find(|(key, _)| key == "options") {
        Some((_, options)) => {
            options.push(' ');
            options.push_str(&search_path);
        }
        None => pairs.push(("options".to_string(), search_path)),
    }
    let query = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, QUERY_VALUE),
                utf8_percent_encode(v, QUERY_VALUE)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{head}?{query}")
}

/// The schema a URL's `options=-c search_path=...` selects, if any (its first entry).
pub fn search_path(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    let options = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "options")
        .map(|(_, value)| value.into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut words = options.split_whitespace();
    let mut found = None;
    while let Some(word) = words.next() {
        let setting = match word {
            "-c" => words.next().unwrap_or_default(),
            other => other.strip_prefix("-c").unwrap_or(other),
        };
        let setting = setting.strip_prefix("--").unwrap_or(setting);
        if let Some(value) = setting.strip_prefix("search_path=") {
            let first = value.split(',').next().unwrap_or_default().trim();
            let first = first.trim_matches('"');
            if !first.is_empty() {
                found = Some(first.to_string());
            }
        }
    }
    found
}

/// The server a `postgres://` URL names (a `host`/`port` query parameter wins, as in libpq).
pub fn address_host_port(address: &str) -> Result<(String, u16), String> {
    let url = url::Url::parse(address).map_err(|e| format!("invalid Postgres address: {e}"))?;
    if !is_postgres_url(address) {
        return Err(format!(
            "invalid Postgres address: the scheme must be postgres://, not {}://",
            url.scheme()
        ));
    }
    let mut host = url.host_str().unwrap_or("").to_owned();
    let mut port = url.port().unwrap_or(5432);
    for (key, value) in url.query_pairs() {
        match &*key {
            "host" => host = value.into_owned(),
            "port" => {
                port = value
                    .parse()
                    .map_err(|_| format!("invalid Postgres port {value:?}"))?;
            }
            _ => {}
        }
    }
    if host.starts_with('/') {
        return Err("Unix sockets are not supported: use a TCP address".into());
    }
    if host.is_empty() {
        host = "localhost".into();
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_options_to_a_bare_url() {
        assert_eq!(
            with_search_path("postgres://postgres@127.0.0.1:5432/test", "products"),
            "postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3Dproducts"
        );
    }

    #[test]
    fn merges_with_an_existing_query() {
        let url = with_search_path(
            "postgres://u@h/db?sslmode=disable&options=-c%20statement_timeout%3D5000",
            "carts",
        );
        assert_eq!(
            url,
            "postgres://u@h/db?sslmode=disable&options=-c%20statement_timeout%3D5000%20-c%20search_path%3Dcarts"
        );
        assert_eq!(search_path(&url).as_deref(), Some("carts"));
    }

    #[test]
    fn reads_the_search_path_back() {
        assert_eq!(
            search_path("postgres://h/db?options=-c%20search_path%3Dproducts").as_deref(),
            Some("products")
        );
        assert_eq!(
            search_path("postgres://h/db?options=-csearch_path%3Da,public").as_deref(),
            Some("a")
        );
        assert_eq!(search_path("postgres://h/db"), None);
        assert_eq!(search_path("postgres://h/db?sslmode=disable"), None);
    }

    #[test]
    fn accepts_only_postgres_urls() {
        assert!(check_database_url("postgres://postgres@127.0.0.1:5432/test").is_ok());
        assert!(check_database_url("postgresql://h/db").is_ok());
        assert!(check_database_url("mysql://h/db").is_err());
        assert!(check_database_url("products").is_err());
    }
}
