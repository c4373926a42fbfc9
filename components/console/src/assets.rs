//! The console's three files and the headers they are served with: a strict content security
//! policy (the page runs only its own script and style sheet and talks only to its own origin),
//! no framing, no sniffing, and caching that never serves a stale script to a new page.

use spin_sdk::http::Response;

/// The page: a `<noscript>` message, the sign-in form and an empty frame the script fills in.
const PAGE: &str = include_str!("assets/index.html");
/// The whole console: routing, the API client with its tokens, and the four pages.
const SCRIPT: &str = include_str!("assets/console.js");
const STYLES: &str = include_str!("assets/console.css");

/// Where the page names its files; replaced by each file's version (see [`Asset::url`]).
const SCRIPT_URL: &str = "console.js?v=SCRIPT_VERSION";
const STYLES_URL: &str = "console.css?v=STYLES_VERSION";

/// What the page may do: its own script and styles (no inline code, no `eval`), images of its
/// own or `data:` URLs, requests to its own origin (the API), no frames around it, no `<base>`,
/// and forms posted only to itself.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                       base-uri 'none'; form-action 'self'";

/// A year: the longest a versioned file is kept, since a new build has a new URL.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Kept, but checked with the server (its ETag) before every use.
const REVALIDATE: &str = "no-cache";

/// One of the console's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Page,
    Script,
    Styles,
}

impl Asset {
    fn content_type(self) -> &'static str {
        match self {
            Self::Page => "text/html; charset=utf-8",
            Self::Script => "text/javascript; charset=utf-8",
            Self::Styles => "text/css; charset=utf-8",
        }
    }

    /// The file's version: a hash of its bytes (the page's covers the versions it names).
    fn version(self) -> u64 {
        match self {
            Self::Page => PAGE_VERSION,
            Self::Script => fnv1a(SCRIPT.as_bytes()),
            Self::Styles => fnv1a(STYLES.as_bytes()),
        }
    }

    /// The page names its files with their versions (`console.js?v=...`), so that a browser
    /// keeps a file for a year and a new build's page still loads the new one.
    fn body(self) -> Vec<u8> {
        match self {
            Self::Page => page().into_bytes(),
            Self::Script => SCRIPT.as_bytes().to_vec(),
            Self::Styles => STYLES.as_bytes().to_vec(),
        }
    }

    /// The answer to a GET of the file: 200 with it, or 304 when `if_none_match` names its
    /// current version. A file asked for by its current version (`?v=`) is cached for good;
    /// the page, and a file asked for by another name, only after a check.
    pub fn response(
        self,
        requested_version: Option<&str>,
        if_none_match: Option<&str>,
    ) -> Response {
        let version = hex(self.version());
        let etag = format!("\"{version}\"");
        let cache = match (self, requested_version) {
            (Self::Script | Self::Styles, Some(v)) if v == version => IMMUTABLE,
            _ => REVALIDATE,
        };
        let unchanged = if_none_match.is_some_and(|tags| {
            tags.split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == etag || tag == "*")
        });
        let mut builder = Response::builder();
        builder
            .status(if unchanged { 304 } else { 200 })
            .header("cache-control", cache)
            .header("etag", etag);
        security_headers(&mut builder);
        if unchanged {
            return builder.build();
        }
        builder
            .header("content-type", self.content_type())
            .body(self.body())
            .build()
    }
}

/// `/admin` to `/admin/` (308 keeps the method), the query kept.
pub fn redirect_to_page(query: &str) -> Response {
    let location = if query.is_empty() {
        "/admin/".to_owned()
    } else {
        format!("/admin/?{query}")
    };
    let mut builder = Response::builder();
    builder
        .status(308)
        .header("location", location)
        .header("cache-control", REVALIDATE);
    security_headers(&mut builder);
    builder.build()
}

/// The headers every answer of the console carries.
fn security_headers(builder: &mut spin_sdk::http::ResponseBuilder) {
    builder
        .header("content-security-policy", CSP)
        .header("x-frame-options", "DENY")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("cross-origin-opener-policy", "same-origin")
        .header("cross-origin-resource-policy", "same-origin");
}

/// The page as served: its files named by their current versions.
fn page() -> String {
    PAGE.replace(
        SCRIPT_URL,
        &format!("console.js?v={}", hex(Asset::Script.version())),
    )
    .replace(
        STYLES_URL,
        &format!("console.css?v={}", hex(Asset::Styles.version())),
    )
}

/// The page's version covers its own text and the versions of the files it names.
const PAGE_VERSION: u64 = fnv1a(PAGE.as_bytes())
    ^ fnv1a(SCRIPT.as_bytes()).rotate_left(21)
    ^ fnv1a(STYLES.as_bytes()).rotate_left(42);

/// FNV-1a, 64 bits: a cache key for a few kilobytes of text, computed at build time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

fn hex(value: u64) -> String {
    format!("{value:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_files_by_version() {
        let page = page();
        assert!(!page.contains("SCRIPT_VERSION") && !page.contains("STYLES_VERSION"));
        assert!(page.contains(&format!("console.js?v={}", hex(Asset::Script.version()))));
        assert!(page.contains(&format!("console.css?v={}", hex(Asset::Styles.version()))));
    }

    #[test]
    fn the_page_has_no_inline_code_and_no_other_host() {
        let page = page();
        // The CSP would refuse both; the page must not need them.
        assert!(!page.contains("<script>") && !page.contains(" style="));
        let handlers = page
            .split(|c: char| c.is_whitespace())
            .filter(|word| word.starts_with("on") && word.contains('='))
            .count();
        assert_eq!(handlers, 0, "inline event handlers in the page");
        for text in [PAGE, SCRIPT, STYLES] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
    }

    #[test]
    fn versions_differ_by_content() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(hex(1).len(), 16);
    }
}
