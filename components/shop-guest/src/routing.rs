//! Small pieces that let a service's `lib.rs` read as a route table.

use serde::Serialize;
use spin_sdk::http::Response;

use crate::error::ApiError;
use crate::request::ApiRequest;
use crate::response;

/// Methods of a collection that can be listed and added to.
pub const LIST_CREATE: &[&str] = &["GET", "POST", "HEAD", "OPTIONS"];
/// Methods of an action that only accepts posts (register, log in, refresh a token).
pub const CREATE: &[&str] = &["POST", "OPTIONS"];
/// Methods of one resource that can only be read.
pub const RETRIEVE: &[&str] = &["GET", "HEAD", "OPTIONS"];
/// Methods of one resource that can be read, replaced and patched, but not deleted.
pub const RETRIEVE_UPDATE: &[&str] = &["GET", "PUT", "PATCH", "HEAD", "OPTIONS"];
/// Methods of one resource that can be read, replaced, patched and deleted.
pub const RETRIEVE_UPDATE_DESTROY: &[&str] = &["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
/// Methods of an action that only accepts a put (e.g. setting a quantity).
pub const UPDATE: &[&str] = &["PUT", "OPTIONS"];

/// The path's segments (`/api/products/7/` -> `["api", "products", "7"]`).
///
/// Every path of the API ends in `/`; a path without it, or with an empty segment,
/// has no segments and so matches no route (404).
pub fn segments(path: &str) -> Option<Vec<&str>> {
    let inner = path.strip_prefix('/')?.strip_suffix('/')?;
    let segments: Vec<&str> = inner.split('/').collect();
    if segments.iter().any(|segment| segment.is_empty()) {
        return None;
    }
    Some(segments)
}

/// The 405 answer for `method` on a path that accepts `allow`.
pub fn method_not_allowed(method: &str, allow: &'static [&'static str]) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_owned(),
        allow,
    }
}

/// The answer to `OPTIONS`, shaped like DRF's simple metadata.
pub fn options(name: &str, allow: &'static [&'static str]) -> Result<Response, ApiError> {
    #[derive(Serialize)]
    struct Metadata<'a> {
        name: &'a str,
        description: &'a str,
        renders: [&'a str; 1],
        parses: [&'a str; 1],
    }
    let mut answer = response::ok(&Metadata {
        name,
        description: "",
        renders: [response::JSON],
        parses: [response::JSON],
    })?;
    answer.set_header("allow", allow.join(", "));
    Ok(answer)
}

/// A service's paths, as an enum (one variant per path; an id in the path rides along as
/// the segment sent, for the handler to parse after its own checks): what its route table
/// matches on, with the name and the methods DRF would show for each.
pub trait ApiPath<'a>: Copy {
    /// The path these segments name, if the service has it (`None`: a 404).
    fn from_segments(segments: &[&'a str]) -> Option<Self>;

    /// The name `OPTIONS` shows, as DRF names a view.
    fn name(self) -> &'static str;

    /// The methods the path accepts: the `Allow` of `OPTIONS` and of a 405.
    fn allow(self) -> &'static [&'static str];

    /// The path of a request path (`/api/products/7/`); a 404 when the service has none such.
    fn parse(path: &'a str) -> Result<Self, ApiError> {
        segments(path)
            .and_then(|segments| Self::from_segments(&segments))
            .ok_or_else(ApiError::not_found)
    }
}

/// The whole route table of a service: the request's path (404), then [`answer`].
pub fn route<'a, P: ApiPath<'a>>(
    request: &'a ApiRequest,
    handle: impl FnOnce(P, &str) -> Option<Result<Response, ApiError>>,
) -> Result<Response, ApiError> {
    let path = P::parse(request.path())?;
    answer(path, request.method(), handle)
}

/// Answers `method` on `path`: `OPTIONS` with the path's metadata, any other method with what
/// `handle` answers, or 405 (with the path's `Allow`) when `handle` has no handler for it
/// (`None`).
pub fn answer<'a, P: ApiPath<'a>>(
    path: P,
    method: &str,
    handle: impl FnOnce(P, &str) -> Option<Result<Response, ApiError>>,
) -> Result<Response, ApiError> {
    if method == "OPTIONS" {
        return options(path.name(), path.allow());
    }
    handle(path, method).unwrap_or_else(|| Err(method_not_allowed(method, path.allow())))
}

/// A positive integer id from a path segment; anything else (sign, letters, zero,
/// too large for 64 bits) is a 404 as no such resource can exist.
pub fn id(segment: &str) -> Result<i64, ApiError> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::not_found());
    }
    match segment.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service of two paths, one with an id.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum ShelfPath<'a> {
        List,
        Shelf(&'a str),
    }

    impl<'a> ApiPath<'a> for ShelfPath<'a> {
        fn from_segments(segments: &[&'a str]) -> Option<Self> {
            match *segments {
                ["api", "shelves"] => Some(Self::List),
                ["api", "shelves", id] => Some(Self::Shelf(id)),
                _ => None,
            }
        }

        fn name(self) -> &'static str {
            match self {
                Self::List => "Shelf List",
                Self::Shelf(_) => "Shelf Instance",
            }
        }

        fn allow(self) -> &'static [&'static str] {
            match self {
                Self::List => LIST_CREATE,
                Self::Shelf(_) => RETRIEVE,
            }
        }
    }

    /// Routes `method path` through the shelves' table; the handlers answer 200 or 201.
    fn shelves(method: &str, path: &str) -> Result<Response, ApiError> {
        let request = ApiRequest::new(method, path, &[], Vec::new());
        route(&request, |path, method| {
            Some(match (path, method) {
                (ShelfPath::List, "GET") => response::ok(&"list"),
                (ShelfPath::List, "POST") => response::created(&"created"),
                (ShelfPath::Shelf(id), "GET") => response::ok(&id),
                _ => return None,
            })
        })
    }

    #[test]
    fn paths_carry_their_ids_as_sent() {
        assert_eq!(
            ShelfPath::parse("/api/shelves/").ok(),
            Some(ShelfPath::List)
        );
        assert_eq!(
            ShelfPath::parse("/api/shelves/x1/").ok(),
            Some(ShelfPath::Shelf("x1"))
        );
        for unknown in ["/api/shelves", "/api/shelves/1/2/", "/api/shelf/", "/"] {
            assert!(
                matches!(ShelfPath::parse(unknown), Err(ApiError::NotFound(_))),
                "{unknown}"
            );
        }
    }

    #[test]
    fn a_route_answers_its_handler_options_or_405() {
        assert_eq!(*shelves("GET", "/api/shelves/").unwrap().status(), 200);
        assert_eq!(*shelves("POST", "/api/shelves/").unwrap().status(), 201);
        assert_eq!(*shelves("GET", "/api/shelves/7/").unwrap().status(), 200);
        let options = shelves("OPTIONS", "/api/shelves/7/").unwrap();
        assert_eq!(
            options.header("allow").and_then(|v| v.as_str()),
            Some("GET, HEAD, OPTIONS")
        );
        let body: serde_json::Value = serde_json::from_slice(options.body()).unwrap();
        assert_eq!(body["name"], "Shelf Instance");
        match shelves("DELETE", "/api/shelves/") {
            Err(ApiError::MethodNotAllowed { method, allow }) => {
                assert_eq!((method.as_str(), allow), ("DELETE", LIST_CREATE));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            shelves("GET", "/api/shelves/7/8/"),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn segments_need_the_trailing_slash() {
        assert_eq!(segments("/api/products/"), Some(vec!["api", "products"]));
        assert_eq!(
            segments("/api/products/7/"),
            Some(vec!["api", "products", "7"])
        );
        assert_eq!(segments("/api/products"), None);
        assert_eq!(segments("/api//products/"), None);
        assert_eq!(segments(""), None);
        assert_eq!(segments("/"), None);
    }

    #[test]
    fn ids_are_positive_64_bit_integers() {
        assert_eq!(id("7").ok(), Some(7));
        assert_eq!(id("007").ok(), Some(7));
        assert_eq!(id("9223372036854775807").ok(), Some(i64::MAX));
        for bad in [
            "0",
            "-1",
            "+1",
            "1.0",
            "abc",
            "",
            "9223372036854775808",
            "１",
        ] {
            assert!(matches!(id(bad), Err(ApiError::NotFound(_))), "{bad}");
        }
    }
}
