//! Page-number pagination as the services answer it (components/shop-guest/src/paging.rs, DRF's
//! `PageNumberPagination`): `?page=N&page_size=M`, `{"count", "next", "previous", "results"}`
//! with absolute links.

use serde::Serialize;

use crate::Failure;

/// Items per page when the client does not ask.
const DEFAULT_PAGE_SIZE: u32 = 20;
/// The most items per page; larger requests are clamped to it.
const MAX_PAGE_SIZE: u32 = 100;

/// The page the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    number: PageNumber,
    size: u32,
}

/// A page number, or "the last page" (which needs the count to resolve).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageNumber {
    Number(u64),
    Last,
}

/// One resolved page: which rows to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageWindow {
    number: u64,
    size: u32,
    offset: i64,
}

/// The last value of a parameter, as Django's `QueryDict.get` answers.
fn get<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

impl PageRequest {
    /// Reads `page_size` (not a positive integer: 400; large: clamped) and `page` (not a
    /// positive integer or `last`: 404).
    pub fn from_query(query: &[(String, String)]) -> Result<Self, Failure> {
        let size = match get(query, "page_size") {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => parse_page_size(text).ok_or_else(|| {
                Failure::field("page_size", "A valid positive integer is required.")
            })?,
        };
        let number = match get(query, "page").map(str::trim) {
            None => PageNumber::Number(1),
            Some("last") => PageNumber::Last,
            Some(text) => match text.parse::<u64>() {
                Ok(number) if number >= 1 => PageNumber::Number(number),
                _ => return Err(Failure::invalid_page()),
            },
        };
        Ok(Self { number, size })
    }

    /// The rows to fetch once the total is known; a page past the end is a 404.
    pub fn window_for(&self, count: u64) -> Result<PageWindow, Failure> {
        let pages = page_count(count, self.size);
        match self.number {
            PageNumber::Number(number) if number > pages => Err(Failure::invalid_page()),
            PageNumber::Number(number) => PageWindow::new(number, self.size),
            PageNumber::Last => PageWindow::new(pages, self.size),
        }
    }
}

impl PageWindow {
    fn new(number: u64, size: u32) -> Result<Self, Failure> {
        let offset = (number - 1)
            .checked_mul(u64::from(size))
            .and_then(|offset| i64::try_from(offset).ok())
            .ok_or_else(Failure::invalid_page)?;
        Ok(Self {
            number,
            size,
            offset,
        })
    }

    /// How many rows to fetch (SQL `LIMIT`).
    pub fn limit(&self) -> i64 {
        i64::from(self.size)
    }

    /// How many rows to skip (SQL `OFFSET`).
    pub fn offset(&self) -> i64 {
        self.offset
    }
}

/// One page of results, serialized as DRF does.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub count: u64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

impl<T> Page<T> {
    /// Assembles the page, its links built from `url` (the absolute URL asked for) and `query`
    /// (its parameters, decoded).
    pub fn new(
        url: &str,
        query: &[(String, String)],
        window: PageWindow,
        count: u64,
        results: Vec<T>,
    ) -> Result<Self, Failure> {
        let pages = page_count(count, window.size);
        if window.number > pages {
            return Err(Failure::invalid_page());
        }
        let next = (window.number < pages).then(|| with_page(url, query, Some(window.number + 1)));
        let previous = (window.number > 1)
            .then(|| with_page(url, query, (window.number > 2).then_some(window.number - 1)));
        Ok(Self {
            count,
            next,
            previous,
            results,
        })
    }
}

/// Pages needed for `count` items (at least one: an empty list has an empty first page).
fn page_count(count: u64, size: u32) -> u64 {
    count.div_ceil(u64::from(size.max(1))).max(1)
}

/// DRF's `_positive_int(strict=True, cutoff=MAX_PAGE_SIZE)`: a positive integer, clamped.
fn parse_page_size(text: &str) -> Option<u32> {
    let text = text.trim();
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.bytes().all(|b| b == b'0') {
        return None;
    }
    Some(
        digits
            .parse::<u32>()
            .map_or(MAX_PAGE_SIZE, |size| size.min(MAX_PAGE_SIZE)),
    )
}

/// `url` with its `page` parameter set (or removed for page 1), the other parameters kept,
/// sorted and re-encoded as DRF's `replace_query_param` does.
fn with_page(url: &str, query: &[(String, String)], page: Option<u64>) -> String {
    let base = url.split_once('?').map_or(url, |(base, _)| base);
    let base = base.split('#').next().unwrap_or(base);
    // Values grouped by name in first-seen order, as Python's parse_qs does; then by name.
    let mut grouped: Vec<(&str, Vec<String>)> = Vec::new();
    for (name, value) in query {
        if name == "page" {
            continue;
        }
        match grouped.iter_mut().find(|(key, _)| key == name) {
            Some((_, values)) => values.push(value.clone()),
            None => grouped.push((name, vec![value.clone()])),
        }
    }
    if let Some(page) = page {
        grouped.push(("page", vec![page.to_string()]));
    }
    grouped.sort_by(|a, b| a.0.cmp(b.0));
    let encoded: Vec<String> = grouped
        .iter()
        .flat_map(|(name, values)| {
            values
                .iter()
                .map(move |value| format!("{}={}", quote_plus(name), quote_plus(value)))
        })
        .collect();
    if encoded.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", encoded.join("&"))
    }
}

/// Python's `urllib.parse.quote_plus`.
fn quote_plus(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(byte))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(text.as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect()
    }

    fn page(text: &str, count: u64) -> Result<Page<()>, Failure> {
        let query = query(text);
        let url = format!("http://127.0.0.1:3000/api/products/?{text}");
        let window = PageRequest::from_query(&query)?.window_for(count)?;
        Page::new(&url, &query, window, count, Vec::new())
    }

    #[test]
    fn page_size_defaults_and_clamps() {
        let size = |text: &str| PageRequest::from_query(&query(text)).map(|p| p.size);
        assert_eq!(size("").ok(), Some(20));
        assert_eq!(size("page_size=5").ok(), Some(5));
        assert_eq!(size("page_size=500").ok(), Some(100));
        assert_eq!(size("page_size=99999999999999999999").ok(), Some(100));
        for invalid in ["0", "-3", "abc", "", "2.5"] {
            let failure = size(&format!("page_size={invalid}")).unwrap_err();
            assert_eq!(failure.status.as_u16(), 400, "{invalid}");
        }
    }

    #[test]
    fn links_as_the_service_builds_them() {
        let second = page("page_size=20&page=2", 1000).ok().unwrap();
        assert_eq!(
            second.next.as_deref(),
            Some("http://127.0.0.1:3000/api/products/?page=3&page_size=20")
        );
        assert_eq!(
            second.previous.as_deref(),
            Some("http://127.0.0.1:3000/api/products/?page_size=20")
        );
        let first = page("", 21).ok().unwrap();
        assert_eq!(
            first.next.as_deref(),
            Some("http://127.0.0.1:3000/api/products/?page=2")
        );
        assert_eq!(first.previous, None);
        let kept = page("x=a%20b&page=2&page_size=2", 5).ok().unwrap();
        assert_eq!(
            kept.next.as_deref(),
            Some("http://127.0.0.1:3000/api/products/?page=3&page_size=2&x=a+b")
        );
        assert_eq!(page("page=3", 21).err().unwrap().status.as_u16(), 404);
        assert!(page("page=2", 0).is_err());
        assert!(page("page=18446744073709551615&page_size=100", u64::MAX).is_err());
    }

    #[test]
    fn quote_plus_matches_python() {
        assert_eq!(quote_plus("a b/c&d=é~"), "a+b%2Fc%26d%3D%C3%A9~");
    }
}
