//! The pieces of the OpenAPI document every service shares: how money and timestamps look,
//! the two error shapes, and the bearer-token scheme. Each service describes its own
//! operations with these (its `openapi` module in shop-api); the docs component merges them into
//! one document.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{KnownFormat, RefOr, SchemaFormat};
use utoipa::{PartialSchema, ToSchema};

use crate::money::Money;
use crate::time::Timestamp;

/// The name of the bearer-token security scheme (`Authorization: Bearer <access token>`).
pub const BEARER: &str = "jwtAuth";

/// The regular expression of a money amount as the API writes it.
const MONEY_OUT: &str = r"^[0-9]+\.[0-9]{2}$";

impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(MONEY_OUT))
            .description(Some(
                "An exact amount with two decimal places: a price is at most \"99999999.99\", \
                 a total (price times quantity, summed) may be more.",
            ))
            .examples([json!("19.99")])
            .into()
    }
}

impl ToSchema for Money {}

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("An instant in UTC (RFC 3339), to the microsecond."))
            .examples([json!("2026-11-25T13:00:00.000000Z")])
            .into()
    }
}

impl ToSchema for Timestamp {}

/// A money amount as clients may send it: a decimal string or a JSON number, at most two
/// decimal places, from 0 to 99999999.99 (more places, negative or larger is a 400).
pub struct MoneyInput;

impl PartialSchema for MoneyInput {
    fn schema() -> RefOr<Schema> {
        let text = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^\s*\+?([0-9]{1,8}(\.[0-9]{0,2})?|\.[0-9]{1,2})\s*$"))
            .examples([json!("19.99")]);
        let number = ObjectBuilder::new()
            .schema_type(Type::Number)
            .minimum(Some(0))
            .maximum(Some(99_999_999.99))
            .multiple_of(Some(0.01))
            .examples([json!(19.99)]);
        OneOfBuilder::new()
            .item(text)
            .item(number)
            .description(Some(
                "An amount with at most two decimal places, from 0 to 99999999.99, as a decimal \
                 string (preferred: exact) or a JSON number.",
            ))
            .into()
    }
}

impl ToSchema for MoneyInput {}

/// Every error but a validation error: `{"detail": "message"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"detail": "Not found."}))]
pub struct ErrorDetail {
    /// What went wrong, for people.
    pub detail: String,
}

/// A validation error: each field's messages (`non_field_errors` for the whole body).
pub struct ValidationErrors(pub BTreeMap<String, Vec<String>>);

impl PartialSchema for ValidationErrors {
    fn schema() -> RefOr<Schema> {
        let messages =
            ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String).build());
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(messages))
            .description(Some(
                "Field name to its messages; `non_field_errors` for the body as a whole. \
                 Some errors (a body that is not JSON) are `{\"detail\": ...}` instead.",
            ))
            .examples([json!({"price": ["Ensure that there are no more than 2 decimal places."]})])
            .into()
    }
}

impl ToSchema for ValidationErrors {}

/// The bearer-token scheme: an access token from `POST /api/accounts/login/`.
pub fn bearer_scheme() -> SecurityScheme {
    SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "An access token from POST /api/accounts/login/ (an EdDSA JWT, 15 minutes).",
            ))
            .build(),
    )
}

/// A 400 body: the fields' messages, or a `detail` for a body that is not JSON at all.
pub struct BadRequestBody;

impl PartialSchema for BadRequestBody {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ValidationErrors::schema())
            .item(ErrorDetail::schema())
            .into()
    }
}

impl ToSchema for BadRequestBody {}

/// Declares one reusable error response (`#/components/responses/<Name>`) per status.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => $body:ty, $description:literal;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl<'s> utoipa::ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<utoipa::openapi::response::Response>) {
                let content = utoipa::openapi::ContentBuilder::new()
                    .schema(Some(<$body as PartialSchema>::schema()))
                    .build();
                let response = utoipa::openapi::ResponseBuilder::new()
                    .description($description)
                    .content("application/json", content)
                    .build();
                (stringify!($name), RefOr::T(response))
            }
        }
    )*};
}

error_responses! {
    /// 400.
    BadRequest => BadRequestBody, "Bad input: each field's messages, or `detail`.";
    /// 401.
    Unauthorized => ErrorDetail, "No token, or a bad or expired one.";
    /// 403.
    Forbidden => ErrorDetail, "Authenticated, but not allowed (staff only).";
    /// 404.
    NotFound => ErrorDetail, "Not found, or not yours.";
    /// 409.
    Conflict => ErrorDetail, "Conflicts with the current state (stock, status).";
    /// 413.
    PayloadTooLarge => ErrorDetail, "The body is over 1 MiB.";
    /// 415.
    UnsupportedMediaType => ErrorDetail, "The body is not `application/json`.";
    /// 429.
    TooManyRequests => ErrorDetail, "Too many attempts; retry after `Retry-After` seconds.";
    /// 503.
    ServiceUnavailable => ErrorDetail, "A service or database is unavailable; retry later.";
}

/// Marks every PATCH body optional, and the PUT bodies of the paths listed: such a write
/// changes any subset of the fields, none included (utoipa has no attribute for it). Use as
/// `#[openapi(modifiers(&OptionalBodies { put: &[...] }))]`.
pub struct OptionalBodies {
    /// The paths whose PUT body is optional too.
    pub put: &'static [&'static str],
}

impl utoipa::Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let bodies = openapi.paths.paths.iter_mut().flat_map(|(path, item)| {
            let put = item
                .put
                .as_mut()
                .filter(|_| self.put.contains(&path.as_str()));
            [item.patch.as_mut(), put]
                .into_iter()
                .flatten()
                .filter_map(|operation| operation.request_body.as_mut())
        });
        for body in bodies {
            if let RefOr::T(body) = body {
                body.required = Some(utoipa::openapi::Required::False);
            }
        }
    }
}

/// The answers every operation that reads a JSON body may give besides its own: 400, 413 and
/// 415. List it among an operation's responses: `responses((status = 200, ...), BodyErrors)`.
pub struct BodyErrors;

impl utoipa::IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        [
            ("400", "BadRequest"),
            ("413", "PayloadTooLarge"),
            ("415", "UnsupportedMediaType"),
        ]
        .into_iter()
        .map(|(status, name)| {
            let reference = utoipa::openapi::schema::Ref::from_response_name(name);
            (status.to_owned(), RefOr::Ref(reference))
        })
        .collect()
    }
}

/// The paging parameters of every list (`?page=N&page_size=M`).
#[allow(dead_code)] // only its parameters are read
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The 1-based page number, or `last`; a page past the end is 404.
    #[param(required = false, minimum = 1)]
    pub page: u64,
    /// Items per page: default 20, at most 100 (larger sizes are cut to 100).
    #[param(required = false, schema_with = page_size)]
    pub page_size: u32,
}

/// A page size: any positive integer, without a format's bounds (sizes above 100 are cut).
fn page_size() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .examples([json!(20)])
}

/// What is wrong with a service's part of the document, by the conventions of this API (empty
/// if nothing): every path ends in `/`; every operation has an id, a tag, a success answer; one
/// that needs a token documents the 401, one with a body documents the 400, 413 and 415.
/// Each service's unit tests run it on its own description.
pub fn convention_problems(document: &utoipa::openapi::OpenApi) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, item) in &document.paths.paths {
        if !path.ends_with('/') {
            problems.push(format!("{path}: does not end in `/`"));
        }
        let operations = [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let name = format!("{method} {path}");
            let statuses: Vec<&str> = operation
                .responses
                .responses
                .keys()
                .map(String::as_str)
                .collect();
            if operation.operation_id.is_none() || operation.tags.is_none() {
                problems.push(format!("{name}: no operation id or tag"));
            }
            if !statuses.iter().any(|status| status.starts_with('2')) {
                problems.push(format!("{name}: no success answer"));
            }
            let secured = operation
                .security
                .as_ref()
                .is_some_and(|security| !security.is_empty());
            if secured && !statuses.contains(&"401") {
                problems.push(format!("{name}: needs a token but documents no 401"));
            }
            if operation.request_body.is_some() {
                for status in ["400", "413", "415"] {
                    if !statuses.contains(&status) {
                        problems.push(format!("{name}: takes a body but documents no {status}"));
                    }
                }
            }
        }
    }
    problems
}
