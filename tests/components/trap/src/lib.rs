//! Traps (a Rust panic aborts the instance) before it answers.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    if std::hint::black_box(!request.path_with_query().unwrap_or_default().is_empty()) {
        panic!("the trap test component fails every request");
    }
    Response::new(200, "unreachable")
}
