//! The API's documentation, served by the app itself so that it works on every runtime:
//! `GET /api/schema/` is the OpenAPI 3.1 document, merged from each service's own description
//! (its types and operations in shop-api, the types being those the service answers with),
//! and `GET /api/docs/` is Swagger UI on it, with its script and style sheet served from here
//! too (no CDN).

use shop_guest::error::ApiError;
use shop_guest::openapi::{
    bearer_scheme, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, ServiceUnavailable,
    TooManyRequests, Unauthorized, UnsupportedMediaType, BEARER,
};
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing::{self, RETRIEVE};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;
use utoipa::openapi::{InfoBuilder, OpenApi};
use utoipa::OpenApi as _;

/// Swagger UI's files, from the release that `utoipa-swagger-ui-vendored` packages (build.rs).
const SWAGGER_UI_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui-bundle.js"));
const SWAGGER_UI_CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui.css"));
const FAVICON: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/favicon-32x32.png"));

/// The page and its start-up script (kept out of the page so the CSP can forbid inline scripts).
const PAGE: &str = include_str!("docs.html");
const INIT_JS: &str = include_str!("init.js");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// The page's content security policy: everything from the shop itself.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    response::finish(ApiRequest::read(request).and_then(|request| route(&request)))
}

fn route(request: &ApiRequest) -> Result<Response, ApiError> {
    // The page's files are named like files (no trailing `/`); the API's paths end in `/`.
    let asset = match request.path() {
        "/api/schema/" => None,
        "/api/docs/" => Some(Asset::page()),
        "/api/docs/init.js" => Some(Asset::new(JAVASCRIPT, INIT_JS.as_bytes())),
        "/api/docs/swagger-ui-bundle.js" => Some(Asset::new(JAVASCRIPT, SWAGGER_UI_JS)),
        "/api/docs/swagger-ui.css" => Some(Asset::new("text/css; charset=utf-8", SWAGGER_UI_CSS)),
        "/api/docs/favicon.png" => Some(Asset::new("image/png", FAVICON)),
        _ => return Err(ApiError::not_found()),
    };
    match request.method() {
        "GET" | "HEAD" => {}
        "OPTIONS" => return routing::options("API documentation", RETRIEVE),
        method => return Err(routing::method_not_allowed(method, RETRIEVE)),
    }
    // HEAD answers are cut to their headers by the runtime.
    match asset {
        None => response::ok(&document()),
        Some(asset) => Ok(asset.response()),
    }
}

/// One static file of the docs page.
struct Asset {
    content_type: &'static str,
    body: &'static [u8],
    /// Whether the file is the page itself (which gets the content security policy).
    page: bool,
}

impl Asset {
    fn new(content_type: &'static str, body: &'static [u8]) -> Self {
        Self {
            content_type,
            body,
            page: false,
        }
    }

    fn page() -> Self {
        Self {
            content_type: "text/html; charset=utf-8",
            body: PAGE.as_bytes(),
            page: true,
        }
    }

    fn response(&self) -> Response {
        let mut builder = Response::builder();
        builder
            .status(200)
            .header("content-type", self.content_type)
            .header("x-content-type-options", "nosniff")
            // Swagger UI's files change only with a new build of this component.
            .header("cache-control", "public, max-age=3600");
        if self.page {
            builder
                .header("content-security-policy", CSP)
                .header("referrer-policy", "no-referrer");
        }
        builder.body(self.body.to_vec()).build()
    }
}

/// The whole API's document: every service's operations and schemas, the shared error
/// responses and the bearer-token scheme.
pub fn document() -> OpenApi {
    let mut document = shop_api::products::openapi::ProductsApi::openapi();
    document.merge(shop_api::accounts::openapi::AccountsApi::openapi());
    document.merge(shop_api::cart::openapi::CartsApi::openapi());
    document.merge(shop_api::orders::openapi::OrdersApi::openapi());
    document.info = InfoBuilder::new()
        .title("shop API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The e-commerce backend: products, accounts, carts and orders. Conventions follow \
             Django REST Framework: JSON in and out, paths end in `/`, validation errors are \
             400 with each field's messages, other errors `{\"detail\": ...}`. Money is a \
             decimal string with two places. Authenticate with `Authorization: Bearer <access \
             token>` from `POST /api/accounts/login/`; operations marked **Staff only** need a \
             staff user's token.",
        ))
        .build();
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(BEARER, bearer_scheme());
    for (name, response) in [
        <BadRequest as utoipa::ToResponse>::response(),
        <Unauthorized as utoipa::ToResponse>::response(),
        <Forbidden as utoipa::ToResponse>::response(),
        <NotFound as utoipa::ToResponse>::response(),
        <Conflict as utoipa::ToResponse>::response(),
        <PayloadTooLarge as utoipa::ToResponse>::response(),
        <UnsupportedMediaType as utoipa::ToResponse>::response(),
        <TooManyRequests as utoipa::ToResponse>::response(),
        <ServiceUnavailable as utoipa::ToResponse>::response(),
    ] {
        components.responses.insert(name.to_owned(), response);
    }
    document
}
