//! The incoming request as the handlers see it: method, path, query, headers and a bounded body.

use spin_sdk::http::{IncomingRequest, Method};

use crate::error::ApiError;

/// The largest body a service accepts (API.md: "413 body over 1 MiB"). The shop host mirrors
/// it (`MAX_BODY_BYTES` in host/src/server.rs) to refuse a declared `Content-Length` over it
/// without starting a guest; a chunked body is counted here, as it is read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An HTTP request with its body read (at most [`MAX_BODY_BYTES`]).
#[derive(Debug, Clone)]
pub struct ApiRequest {
    method: String,
    path: String,
    query: String,
    /// Header names in lower case, in arrival order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl ApiRequest {
    /// Builds a request from its parts (`path_and_query` like `/api/products/?page=2`).
    pub fn new(
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Self {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), (*value).to_owned()))
                .collect(),
            body: body.into(),
        }
    }

    /// Reads a WASI request, its body included; a body over [`MAX_BODY_BYTES`] is a 413.
    pub fn read(incoming: IncomingRequest) -> Result<Self, ApiError> {
        let method = method_name(&incoming.method());
        let path_and_query = incoming.path_with_query().unwrap_or_else(|| "/".to_owned());
        // The owned name and value are reused: lower-cased in place, and a UTF-8 value (all but
        // a rare few) taken as it is, not copied.
        let headers: Vec<(String, String)> = incoming
            .headers()
            .entries()
            .into_iter()
            .map(|(mut name, value)| {
                name.make_ascii_lowercase();
                let value = String::from_utf8(value).unwrap_or_else(|invalid| {
                    String::from_utf8_lossy(invalid.as_bytes()).into_owned()
                });
                (name, value)
            })
            .collect();
        let declared_length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.trim().parse::<u64>().ok());
        if declared_length.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(ApiError::PayloadTooLarge);
        }
        let body = read_body(incoming)?;
        let mut path = path_and_query;
        let query = match path.find('?') {
            Some(mark) => {
                let query = path[mark + 1..].to_owned();
                path.truncate(mark);
                query
            }
            None => String::new(),
        };
        Ok(Self {
            method,
            path,
            query,
            headers,
            body,
        })
    }

    /// The method in upper case (`GET`, `POST`, ...).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path, without the query (e.g. `/api/products/7/`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw query string, without the `?`.
    pub fn raw_query(&self) -> &str {
        &self.query
    }

    /// The query string's parameters, percent-decoded.
    pub fn query(&self) -> Query {
        Query::parse(&self.query)
    }

    /// The value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The absolute URL the client asked for, query included: Spin's `spin-full-url` header,
    /// else rebuilt from the `Host` header and the path.
    pub fn full_url(&self) -> String {
        if let Some(url) = self.header("spin-full-url").filter(|url| !url.is_empty()) {
            return url.to_owned();
        }
        let host = self.header("host").unwrap_or("localhost");
        if self.query.is_empty() {
            format!("http://{host}{}", self.path)
        } else {
            format!("http://{host}{}?{}", self.path, self.query)
        }
    }
}

/// The name of a WASI method. An extension method is kept as it was written: method names are
/// case-sensitive (RFC 9110), so `post` is not `POST`, matches no route and is answered 405,
/// as the shop host answers it 501 before any guest runs: no spelling of a method reaches a
/// handler, or a bound, that another spelling would not.
fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".to_owned(),
        Method::Head => "HEAD".to_owned(),
        Method::Post => "POST".to_owned(),
        Method::Put => "PUT".to_owned(),
        Method::Delete => "DELETE".to_owned(),
        Method::Connect => "CONNECT".to_owned(),
        Method::Options => "OPTIONS".to_owned(),
        Method::Trace => "TRACE".to_owned(),
        Method::Patch => "PATCH".to_owned(),
        Method::Other(other) => other.clone(),
    }
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`].
fn read_body(incoming: IncomingRequest) -> Result<Vec<u8>, ApiError> {
    use wasi::io::streams::StreamError;

    let unreadable = || ApiError::BadRequest("The request body could not be read.".to_owned());
    let body = incoming.consume().map_err(|()| unreadable())?;
    let stream = body.stream().map_err(|()| unreadable())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ApiError::PayloadTooLarge);
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(_)) => return Err(unreadable()),
        }
    }
    Ok(bytes)
}

/// A query string's parameters, in order, percent-decoded (`+` is a space).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `a=1&b=x%20y`.
    pub fn parse(query: &str) -> Self {
        Self {
            pairs: form_urlencoded::parse(query.as_bytes())
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        }
    }

    /// The last value of a parameter, as Django's `QueryDict.get` answers.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every parameter in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extension_method_keeps_its_spelling() {
        assert_eq!(method_name(&Method::Post), "POST");
        assert_eq!(method_name(&Method::Other("post".to_owned())), "post");
        assert_eq!(
            method_name(&Method::Other("PROPFIND".to_owned())),
            "PROPFIND"
        );
    }

    #[test]
    fn query_is_percent_decoded_and_last_value_wins() {
        let query = Query::parse("search=red%20shoe&page=1&page=3&x=a+b&empty=");
        assert_eq!(query.get("search"), Some("red shoe"));
        assert_eq!(query.get("page"), Some("3"));
        assert_eq!(query.get("x"), Some("a b"));
        assert_eq!(query.get("empty"), Some(""));
        assert_eq!(query.get("missing"), None);
    }

    #[test]
    fn full_url_prefers_spin_header() {
        let request = ApiRequest::new(
            "get",
            "/api/products/?page=2",
            &[
                ("Host", "example.com"),
                (
                    "spin-full-url",
                    "http://127.0.0.1:3000/api/products/?page=2",
                ),
            ],
            Vec::new(),
        );
        assert_eq!(request.method(), "GET");
        assert_eq!(request.path(), "/api/products/");
        assert_eq!(request.raw_query(), "page=2");
        assert_eq!(
            request.full_url(),
            "http://127.0.0.1:3000/api/products/?page=2"
        );
        let without = ApiRequest::new(
            "GET",
            "/api/products/?page=2",
            &[("Host", "example.com")],
            Vec::new(),
        );
        assert_eq!(
            without.full_url(),
            "http://example.com/api/products/?page=2"
        );
    }
}
