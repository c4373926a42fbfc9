//! Page-number pagination as DRF's `PageNumberPagination` answers it:
//! `?page=N&page_size=M`, `{"count", "next", "previous", "results"}` with absolute links.

use serde::Serialize;

use crate::error::ApiError;
use crate::request::{ApiRequest, Query};

/// Items per page when the client does not ask.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// The most items per page; larger requests are clamped to it.
pub const MAX_PAGE_SIZE: u32 = 100;

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

fn invalid_page() -> ApiError {
    ApiError::NotFound("Invalid page.".to_owned())
}

impl PageRequest {
    /// Reads `page` and `page_size`: a `page_size` that is not a positive integer is a 400 (the
    /// schema says so; DRF would quietly use the default), a large one is cut to the maximum; a
    /// `page` that is not a positive integer (or `last`) is a 404.
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        let size = match query.get("page_size") {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => parse_page_size(text).ok_or_else(|| {
                ApiError::field("page_size", "A valid positive integer is required.")
            })?,
        };
        let number = match query.get("page").map(str::trim) {
            None => PageNumber::Number(1),
            Some("last") => PageNumber::Last,
            Some(text) => match text.parse::<u64>() {
                Ok(number) if number >= 1 => PageNumber::Number(number),
                _ => return Err(invalid_page()),
            },
        };
        Ok(Self { number, size })
    }

    /// Items per page.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The rows to fetch, when known without counting (i.e. unless the client asked for `last`).
    pub fn window(&self) -> Result<Option<PageWindow>, ApiError> {
        match self.number {
            PageNumber::Number(number) => PageWindow::new(number, self.size).map(Some),
            PageNumber::Last => Ok(None),
        }
    }

    /// The rows to fetch once the total is known (the last page for `last`); a page past the
    /// end is the 404 here, so that its offset (up to `i64::MAX`) never reaches a statement.
    pub fn window_for(&self, count: u64) -> Result<PageWindow, ApiError> {
        let pages = page_count(count, self.size);
        match self.number {
            PageNumber::Number(number) if number > pages => Err(invalid_page()),
            PageNumber::Number(number) => PageWindow::new(number, self.size),
            PageNumber::Last => PageWindow::new(pages, self.size),
        }
    }
}

impl PageWindow {
    fn new(number: u64, size: u32) -> Result<Self, ApiError> {
        let offset = (number - 1)
            .checked_mul(u64::from(size))
            .and_then(|offset| i64::try_from(offset).ok())
            .ok_or_else(invalid_page)?;
        Ok(Self {
            number,
            size,
            offset,
        })
    }

    /// The 1-based page number.
    pub fn number(&self) -> u64 {
        self.number
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// Items across all pages.
    pub count: u64,
    /// The next page's absolute URL.
    pub next: Option<String>,
    /// The previous page's absolute URL.
    pub previous: Option<String>,
    /// This page's items.
    pub results: Vec<T>,
}

impl<T> Page<T> {
    /// Assembles the page; a page past the end is a 404 `{"detail": "Invalid page."}`
    /// (page 1 of an empty list is fine).
    pub fn new(
        request: &ApiRequest,
        window: PageWindow,
        count: u64,
        results: Vec<T>,
    ) -> Result<Self, ApiError> {
        let pages = page_count(count, window.size);
        if window.number > pages {
            return Err(invalid_page());
        }
        let url = request.full_url();
        let next = (window.number < pages).then(|| with_page(&url, Some(window.number + 1)));
        let previous = (window.number > 1)
            .then(|| with_page(&url, (window.number > 2).then_some(window.number - 1)));
        Ok(Self {
            count,
            next,
            previous,
            results,
        })
    }

    /// Assembles the page from a query that returned the total with every row
    /// (`COUNT(*) OVER ()`): `total` is `None` when the window held no rows, which is an
    /// empty list on page 1 and a page past the end on any other.
    pub fn from_windowed(
        request: &ApiRequest,
        window: PageWindow,
        total: Option<u64>,
        results: Vec<T>,
    ) -> Result<Self, ApiError> {
        match total {
            Some(count) => Self::new(request, window, count, results),
            None if window.number == 1 => Self::new(request, window, 0, results),
            None => Err(invalid_page()),
        }
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
    // All digits and not zero: anything too long for u32 is far above the cutoff.
    Some(
        digits
            .parse::<u32>()
            .map_or(MAX_PAGE_SIZE, |size| size.min(MAX_PAGE_SIZE)),
    )
}

/// `url` with its `page` parameter set (or removed for page 1), the other parameters kept,
/// sorted and re-encoded as DRF's `replace_query_param` does.
fn with_page(url: &str, page: Option<u64>) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = base.split('#').next().unwrap_or(base);
    let query = query.split('#').next().unwrap_or(query);
    // Group values by name in first-seen order, as Python's parse_qs does; then sort by name.
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in Query::parse(query).pairs() {
        if name == "page" {
            continue;
        }
        match grouped.iter_mut().find(|(key, _)| key == name) {
            Some((_, values)) => values.push(value.clone()),
            None => grouped.push((name.clone(), vec![value.clone()])),
        }
    }
    if let Some(page) = page {
        grouped.push(("page".to_owned(), vec![page.to_string()]));
    }
    grouped.sort_by(|a, b| a.0.cmp(&b.0));
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

    fn request(query: &str) -> ApiRequest {
        let url = format!("http://127.0.0.1:3000/api/products/?{query}");
        ApiRequest::new(
            "GET",
            &format!("/api/products/?{query}"),
            &[("spin-full-url", url.as_str())],
            Vec::new(),
        )
    }

    fn page_request(query: &str) -> Result<PageRequest, ApiError> {
        PageRequest::from_query(&Query::parse(query))
    }

    #[test]
    fn page_size_defaults_and_clamps() {
        assert_eq!(page_request("").unwrap().size(), 20);
        assert_eq!(page_request("page_size=5").unwrap().size(), 5);
        assert_eq!(page_request("page_size=500").unwrap().size(), 100);
        assert_eq!(
            page_request("page_size=99999999999999999999")
                .unwrap()
                .size(),
            100
        );
        for invalid in ["0", "-3", "abc", "", "2.5"] {
            let error = page_request(&format!("page_size={invalid}")).unwrap_err();
            assert_eq!(error.status(), 400, "{invalid}");
        }
    }

    #[test]
    fn invalid_page_numbers_are_404() {
        for invalid in ["0", "-1", "abc", "", "1.5", "99999999999999999999"] {
            let error = page_request(&format!("page={invalid}")).unwrap_err();
            assert_eq!(error.status(), 404, "{invalid}");
            assert_eq!(error.detail().as_deref(), Some("Invalid page."));
        }
        let huge = page_request("page=18446744073709551615&page_size=100").unwrap();
        assert!(huge.window().is_err());
    }

    #[test]
    fn window_offsets() {
        let window = page_request("page=3&page_size=10")
            .unwrap()
            .window()
            .unwrap()
            .unwrap();
        assert_eq!(
            (window.number(), window.limit(), window.offset()),
            (3, 10, 20)
        );
        let last = page_request("page=last&page_size=10").unwrap();
        assert_eq!(last.window().unwrap(), None);
        assert_eq!(last.window_for(25).unwrap().offset(), 20);
        assert_eq!(last.window_for(0).unwrap().offset(), 0);
    }

    #[test]
    fn pages_past_the_end_are_404_before_any_query() {
        let third = page_request("page=3&page_size=10").unwrap();
        assert_eq!(third.window_for(21).unwrap().offset(), 20);
        assert_eq!(third.window_for(20).unwrap_err().status(), 404);
        // Page 1 of an empty list is a page; page 2 is not.
        assert!(page_request("").unwrap().window_for(0).is_ok());
        assert!(page_request("page=2").unwrap().window_for(0).is_err());
        // A page number far past the end never becomes an offset for a statement.
        for page in [
            "461168601842738791",
            "9223372036854775807",
            "18446744073709551615",
        ] {
            let request = page_request(&format!("page={page}")).unwrap();
            let error = request.window_for(1_000_000).unwrap_err();
            assert_eq!(error.detail().as_deref(), Some("Invalid page."), "{page}");
        }
    }

    #[test]
    fn links_keep_other_parameters() {
        let req = request("search=red%20shoe&page=2&page_size=2&ordering=-price");
        let window = PageRequest::from_query(&req.query())
            .unwrap()
            .window()
            .unwrap()
            .unwrap();
        let page = Page::new(&req, window, 5, vec![3, 4]).unwrap();
        assert_eq!(page.count, 5);
        assert_eq!(
            page.next.as_deref(),
            Some("http://127.0.0.1:3000/api/products/?ordering=-price&page=3&page_size=2&search=red+shoe")
        );
        assert_eq!(
            page.previous.as_deref(),
            Some("http://127.0.0.1:3000/api/products/?ordering=-price&page_size=2&search=red+shoe")
        );
    }

    #[test]
    fn first_and_last_pages() {
        let req = request("");
        let first = PageRequest::from_query(&req.query())
            .unwrap()
            .window()
            .unwrap()
            .unwrap();
        let page = Page::new(&req, first, 0, Vec::<u8>::new()).unwrap();
        assert_eq!((page.next, page.previous), (None, None));
        let page = Page::new(&req, first, 21, vec![0u8; 20]).unwrap();
        assert_eq!(
            page.next.as_deref(),
            Some("http://127.0.0.1:3000/api/products/?page=2")
        );
        let req = request("page=2");
        let second = PageRequest::from_query(&req.query())
            .unwrap()
            .window()
            .unwrap()
            .unwrap();
        let page = Page::new(&req, second, 21, vec![0u8]).unwrap();
        assert_eq!(page.next, None);
        assert_eq!(
            page.previous.as_deref(),
            Some("http://127.0.0.1:3000/api/products/")
        );
        let req = request("page=3");
        let third = PageRequest::from_query(&req.query())
            .unwrap()
            .window()
            .unwrap()
            .unwrap();
        let error = Page::new(&req, third, 21, Vec::<u8>::new()).unwrap_err();
        assert_eq!(error.status(), 404);
    }

    #[test]
    fn quote_plus_matches_python() {
        assert_eq!(quote_plus("a b/c&d=é~"), "a+b%2Fc%26d%3D%C3%A9~");
    }
}
