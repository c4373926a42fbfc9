//! Small pieces that let a service's `lib.rs` read as a route table.

use serde::Serialize;
use spin_sdk::http::Response;

use crate::error::ApiError;
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
