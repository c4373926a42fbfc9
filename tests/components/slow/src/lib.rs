//! Sleeps for `?ms=N` milliseconds (on the host's clock, not the CPU), then answers 200: a
//! request that stays in flight, for the graceful shutdown test.

use std::time::Duration;

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    let query = request.path_with_query().unwrap_or_default();
    let ms: u64 = query
        .split_once("ms=")
        .and_then(|(_, ms)| ms.split('&').next()?.parse().ok())
        .unwrap_or(1000);
    std::thread::sleep(Duration::from_millis(ms));
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(format!("{{\"slept_ms\":{ms}}}"))
        .build()
}
