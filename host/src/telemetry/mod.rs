//! What the host tells its operator: Prometheus metrics (requests by component and version,
//! guest failures, link calls, database pools, the process), and spans of each request, its
//! calls over the links and its statements, exported over OTLP when asked for.

mod export;
pub mod guest_output;
pub mod log_writer;
mod metrics;
mod spans;

pub use export::{init, Telemetry, OTLP_ENDPOINT};
pub use metrics::{
    metrics, FailureReason, LinkMetrics, Metrics, PoolUsage, StatementCounters, StatementKind,
    VersionMetrics, VERSION_LABEL_DIGITS,
};
pub use spans::{continue_trace, link_span, record_status, request_span, statement_span, SPANS};
