//! The staff console at `/admin/`: one HTML page, one script and one style sheet, served by
//! this component on every runtime. The page signs a staff member in and then works through
//! the public API alone (`/api/...`, with the member's own access token), so the console has
//! no capability of its own: no database, no variables, no link to a service.

mod assets;

use assets::Asset;
use shop_guest::error::ApiError;
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing::{self, RETRIEVE};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    response::finish(ApiRequest::read(request).and_then(|request| route(&request)))
}

/// The route table: the page and its two files; `/admin` goes to `/admin/`, and any other path
/// under `/admin/` is the contract's JSON 404.
fn route(request: &ApiRequest) -> Result<Response, ApiError> {
    let asset = match request.path() {
        // The page's relative URLs resolve against `/admin/`, so the bare prefix is sent there.
        "/admin" => return Ok(assets::redirect_to_page(request.raw_query())),
        "/admin/" => Asset::Page,
        "/admin/console.js" => Asset::Script,
        "/admin/console.css" => Asset::Styles,
        _ => return Err(ApiError::not_found()),
    };
    match request.method() {
        "GET" | "HEAD" => {}
        "OPTIONS" => return routing::options("Staff console", RETRIEVE),
        method => return Err(routing::method_not_allowed(method, RETRIEVE)),
    }
    // HEAD answers are cut to their headers by the runtime.
    Ok(asset.response(request.query().get("v"), request.header("if-none-match")))
}
