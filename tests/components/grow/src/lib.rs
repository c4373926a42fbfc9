//! Allocates memory without bound: only the host's memory cap ends the request.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_request: IncomingRequest) -> Response {
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touched, so that the pages are really used.
        held.push(std::hint::black_box(vec![1u8; 1 << 20]));
        if std::hint::black_box(held.len()) == usize::MAX {
            break;
        }
    }
    Response::new(200, format!("{}", held.len()))
}
