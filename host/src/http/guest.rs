//! One request in a fresh guest instance: its store, the call to `wasi:http/incoming-handler`,
//! the answer streamed back, and what a guest's failure (deadline, memory, trap) turns into.

use std::time::{Duration, Instant};

use http::{Request, Response};
use tracing::Instrument as _;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::WasiHttpView;

use crate::app::App;
use crate::http::admission::Admitted;
use crate::http::body::GuestBody;
use crate::http::responses::{
    deadline_response, internal_error, internal_error_response, json, ResponseBody,
};
use crate::links::LinkHost;
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
    request: Request<GuestBody>,
    admitted: Admitted,
) -> Response<ResponseBody> {
    let component = &app.components[index];
    let id = component.config.id.clone();
    let state = HostState::new(component.config.clone(), app.databases.clone(), app.limits);
    // The request runs to its end on the version it draws now, whatever swaps meanwhile.
    let version = component.pick(state.linked().draw());
    let answered_by = version.clone();
    let served = metrics().version(&id, &version.version);
    let started = Instant::now();
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

    // The guest runs on this task: a JSON answer is written whole within the guest's first
    // run, so most requests end here with no task spawned and no thread woken. A guest still
    // running when this ends (streaming its body, or its client gone) goes on in a task of its
    // own, as `Unfinished` says.
    let id_for_count = id.clone();
    let mut guest = Unfinished {
        id: id.clone(),
        deadline,
        started,
        answered: false,
        run: Some(Box::pin(
            async move {
                // The permits count guest instances: they go when the store does.
                let _admitted = admitted;
                metrics().instance_made(&id_for_count);
                let proxy = version.pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, outparam)
                    .await
            }
            // The guest's statements and link calls are the request's spans' children, also
            // when the run goes on in a task of its own.
            .in_current_span(),
        )),
    };
    let mut receiver = receiver;
    let until = (deadline + DEADLINE_GRACE).into();
    let first = tokio::time::timeout_at(until, async {
        let Some(run) = guest.run.as_mut() else {
            unreachable!("the guest's run is taken only once it is over")
        };
        tokio::select! {
            biased;
            finished = run => First::Finished(finished),
            head = &mut receiver => First::Head(head),
        }
    })
    .await;
    let response = match first {
        Ok(First::Finished(finished)) => {
            guest.run = None;
            match receiver.try_recv() {
                Ok(answer) => {
                    // It answered, then failed while writing its body: the client sees the body
                    // cut short, the log says why.
                    if let Err(err) = &finished {
                        log_guest_failure(&id, err, deadline);
                    }
                    answered(&id, answer)
                }
                // No response was set: the guest failed, or returned without one (a bug).
                Err(_) => no_answer(&id, finished, deadline),
            }
        }
        // The guest streams the rest of its body on its own (when `guest` drops).
        Ok(First::Head(Ok(answer))) => {
            guest.answered = true;
            answered(&id, answer)
        }
        Ok(First::Head(Err(_))) => {
            // The outparam went without a response: the guest failed, or returned without one.
            let run = guest.run.take();
            match tokio::time::timeout_at(until, async move { run?.await.into() }).await {
                Ok(Some(finished)) => no_answer(&id, finished, deadline),
                Ok(None) => internal_error_response(),
                Err(_elapsed) => passed_deadline(&id),
            }
        }
        Err(_elapsed) => {
            // Dropping the guest's run stops it and frees its instance.
            guest.run = None;
            passed_deadline(&id)
        }
    };
    answered_by.tally.count(response.status().as_u16());
    served.observe(response.status(), started.elapsed());
    response
}

/// A guest's run: its instance made, its handler called to its end.
type GuestRun = std::pin::Pin<Box<dyn std::future::Future<Output = wasmtime::Result<()>> + Send>>;

/// The answer on the outparam.
type Answer =
    Result<Response<ResponseBody>, wasmtime_wasi_http::p2::bindings::http::types::ErrorCode>;

/// What came first of a guest's run: its end, or the head of its answer.
enum First {
    Finished(wasmtime::Result<()>),
    Head(Result<Answer, tokio::sync::oneshot::error::RecvError>),
}

/// The response a guest answered, or a 500 for an error code in its place.
fn answered(id: &str, answer: Answer) -> Response<ResponseBody> {
    answer.unwrap_or_else(|code| {
        tracing::error!(component = %id, "the guest answered with error code {code:?}");
        internal_error_response()
    })
}

/// A guest's run that may outlive the request's task: when it is dropped unfinished (the head
/// of the answer is out and the body still streams, or the client went away and hyper dropped
/// the request), the run goes on in a task of its own, so that what the guest began (a
/// checkout, say) ends as it would have. Failures then can only be logged. A guest blocked on a
/// client that does not read is waiting on the host, where no epoch stops it: the deadline
/// does, or its instance (and admission permit) would be held for as long as the client likes.
struct Unfinished {
    id: String,
    deadline: Instant,
    started: Instant,
    /// Whether the head of the answer went out: if not, the run is dropped because its client
    /// went away, and its end is logged (the request's own line, a 499, was written then).
    answered: bool,
    /// `None` once it is over, or stopped on purpose.
    run: Option<GuestRun>,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(run) = self.run.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (id, deadline, started) = (std::mem::take(&mut self.id), self.deadline, self.started);
        let orphaned = !self.answered;
        runtime.spawn(async move {
            let streamed = (deadline + DEADLINE_GRACE).into();
            match tokio::time::timeout_at(streamed, run).await {
                Ok(Err(err)) => log_guest_failure(&id, &err, deadline),
                Ok(Ok(())) if orphaned => tracing::info!(
                    component = %id,
                    duration = ?started.elapsed(),
                    "the guest of a request whose client went away has finished"
                ),
                Ok(Ok(())) => {}
                Err(_elapsed) => {
                    metrics().guest_failure(&id, FailureReason::Deadline);
                    tracing::error!(
                        component = %id,
                        reason = "deadline",
                        "the answer was still streaming at the request's deadline; stopped"
                    )
                }
            }
        });
    }
}

/// The answer to a request whose guest ended without setting a response.
fn no_answer(
    id: &str,
    finished: wasmtime::Result<()>,
    deadline: Instant,
) -> Response<ResponseBody> {
    match finished {
        Err(err) => guest_failure(id, &err, deadline),
        Ok(()) => {
            tracing::error!(component = %id, "the guest returned without setting a response");
            internal_error_response()
        }
    }
}

/// The answer to a request past its deadline, whose guest waited on the host (a guest that
/// runs is stopped by the epoch and fails with a trap).
fn passed_deadline(id: &str) -> Response<ResponseBody> {
    metrics().guest_failure(id, FailureReason::Deadline);
    tracing::error!(
        component = %id,
        reason = "deadline",
        "the request passed its deadline waiting on the host; stopped"
    );
    deadline_response()
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
