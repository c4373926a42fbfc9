//! One request in a fresh guest instance: its store, the call to `wasi:http/incoming-handler`,
//! the answer streamed back, and what a guest's failure (deadline, memory, trap) turns into.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use tracing::Instrument as _;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::WasiHttpView;

use crate::app::{App, ServedVersion};
use crate::http::admission::Admitted;
use crate::http::responses::{
    deadline_response, internal_error, internal_error_response, json, ResponseBody,
};
use crate::runtime::store::{self, HostState};
use crate::telemetry::{metrics, FailureReason};

/// How long past its deadline a request's guest may keep the answer waiting: the epoch
/// deadline stops a guest that runs, this one a guest stuck waiting on the host.
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Runs the request through a fresh instance of component `index`. A guest that fails fails
/// its own request only: past its deadline with a JSON 504, trapped (or out of memory) with a
/// JSON 503.
pub async fn call_component(
    app: &App,
    index: usize,
    request: Request<Incoming>,
    admitted: Admitted,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let component = &app.components[index];
    // The request runs to its end on the version current now, whatever swaps meanwhile.
    let version = component.current();
    let served = metrics().version(&component.config.id, &version.version);
    let response = run_version(app, index, version, request, admitted).await;
    served.observe(response.status(), started.elapsed());
    response
}

/// Runs the request through a fresh instance of `version` of component `index`.
async fn run_version(
    app: &App,
    index: usize,
    version: Arc<ServedVersion>,
    request: Request<Incoming>,
    admitted: Admitted,
) -> Response<ResponseBody> {
    let component = &app.components[index];
    let id = component.config.id.clone();
    let state = HostState::new(component.config.clone(), app.databases.clone(), app.limits);
    let deadline = state.deadline();
    let mut store = store::store(&app.engine, state);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let prepared = (|| {
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let outparam = store.data_mut().http().new_response_outparam(sender)?;
        wasmtime::Result::Ok((request, outparam))
    })();
    let (request, outparam) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => return internal_error(&id, &err),
    };

    // The guest keeps running after it has sent the response head: it streams the body.
    let mut guest = tokio::spawn(
        async move {
            // The permits count guest instances: they go when the store does.
            let _admitted = admitted;
            let proxy = version.pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, outparam)
                .await
        }
        // The guest's statements and link calls are the request's spans' children.
        .in_current_span(),
    );

    let answer = tokio::time::timeout_at((deadline + DEADLINE_GRACE).into(), receiver).await;
    match answer {
        Ok(Ok(Ok(response))) => {
            // Failures while the body streams can only be logged. A guest blocked on a client
            // that does not read is waiting on the host, where no epoch stops it: the deadline
            // does, or its instance (and admission permit) would be held for as long as the
            // client likes.
            tokio::spawn(async move {
                let streamed = (deadline + DEADLINE_GRACE).into();
                match tokio::time::timeout_at(streamed, &mut guest).await {
                    Ok(Ok(Err(err))) => log_guest_failure(&id, &err, deadline),
                    Ok(_) => {}
                    Err(_elapsed) => {
                        guest.abort();
                        metrics().guest_failure(&id, FailureReason::Deadline);
                        tracing::error!(
                            component = %id,
                            reason = "deadline",
                            "the answer was still streaming at the request's deadline; stopped"
                        );
                    }
                }
            });
            response
        }
        Ok(Ok(Err(code))) => {
            tracing::error!(component = %id, "the guest answered with error code {code:?}");
            internal_error_response()
        }
        Ok(Err(_)) => match (&mut guest).await {
            // No response was set: the guest failed, or returned without one (a bug).
            Ok(Err(err)) => guest_failure(&id, &err, deadline),
            Ok(Ok(())) => {
                tracing::error!(component = %id, "the guest returned without setting a response");
                internal_error_response()
            }
            Err(join) => {
                tracing::error!(component = %id, "the guest's task ended: {join}");
                internal_error_response()
            }
        },
        Err(_elapsed) => {
            guest.abort();
            metrics().guest_failure(&id, FailureReason::Deadline);
            tracing::error!(
                component = %id,
                reason = "deadline",
                "the request passed its deadline waiting on the host; stopped"
            );
            deadline_response()
        }
    }
}

/// Whether `err`, a guest's failure, is its deadline passing.
fn is_deadline(err: &wasmtime::Error, deadline: Instant) -> bool {
    err.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt)
        || Instant::now() >= deadline
}

/// Logs a guest's failure on one line, naming the component and the reason (`deadline`,
/// `memory` or `trap`); the whole error, with the guest's backtrace, is logged at debug level.
fn log_guest_failure(id: &str, err: &wasmtime::Error, deadline: Instant) {
    let cause = err.root_cause().to_string();
    let reason = if is_deadline(err, deadline) {
        FailureReason::Deadline
    } else if cause.contains("growing memory") || cause.contains("growing table") {
        FailureReason::Memory
    } else {
        FailureReason::Trap
    };
    metrics().guest_failure(id, reason);
    let reason = reason.as_str();
    tracing::error!(component = %id, reason, "the guest failed: {cause}");
    tracing::debug!(component = %id, "the guest's failure in full: {err:?}");
}

/// The answer to a request whose guest failed before it answered.
fn guest_failure(id: &str, err: &wasmtime::Error, deadline: Instant) -> Response<ResponseBody> {
    log_guest_failure(id, err, deadline);
    if is_deadline(err, deadline) {
        deadline_response()
    } else {
        json(
            http::StatusCode::SERVICE_UNAVAILABLE,
            r#"{"detail":"The service failed to answer this request."}"#,
        )
    }
}
