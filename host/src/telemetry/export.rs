//! Where the log and the spans go: the log to stderr, always; the spans over OTLP
//! (HTTP/protobuf) only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Without it there is no
//! exporter, no background task, and no subscriber interested in the spans at all.

use std::io::IsTerminal as _;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use crate::telemetry::log_writer::{self, BatchedWriter, FlushGuard};
use crate::telemetry::spans::SPANS;

/// The variable that turns the export on (OpenTelemetry's own; `OTEL_BSP_*` tune the batches).
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// What must outlive the host's work: the log's writer and the span exporter, flushed at exit.
pub struct Telemetry {
    _log: FlushGuard,
    traces: Option<SdkTracerProvider>,
}

/// Starts the log (`SHOP_LOG` or `RUST_LOG`, default `info`) through a background writer that
/// writes in batches (`log_writer.rs`), so a slow reader never stalls a request and a log line
/// costs a request no system call, and the span export if `OTEL_EXPORTER_OTLP_ENDPOINT` is
/// set. Call it inside the Tokio runtime: the exporter's batches run on it.
pub fn init() -> Telemetry {
    let (writer, guard) = log_writer::batched(std::io::stderr());
    let traces = std::env::var(OTLP_ENDPOINT)
        .is_ok_and(|endpoint| !endpoint.trim().is_empty())
        .then(tracer_provider)
        .and_then(|made| {
            made.map_err(|err| eprintln!("Error: no span export to ${OTLP_ENDPOINT}: {err}"))
                .ok()
        });
    match &traces {
        // The log's filter is global: a span that nobody exports is never even made.
        None => tracing_subscriber::registry()
            .with(log_filter())
            .with(log_layer(writer))
            .init(),
        Some(provider) => {
            let spans = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("shop"))
                .with_filter(Targets::new().with_target(SPANS, LevelFilter::INFO));
            tracing_subscriber::registry()
                .with(log_layer(writer).with_filter(log_filter()))
                .with(spans)
                .init();
        }
    }
    Telemetry {
        _log: guard,
        traces,
    }
}

impl Telemetry {
    /// Sends the spans still batched (the exporter stops waiting after its timeout).
    pub async fn shutdown(self) {
        let Some(provider) = self.traces else { return };
        // The provider's shutdown blocks until the batch task on the runtime has exported.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(err)) = flushed {
            eprintln!("Error: the last spans were not exported: {err}");
        }
    }
}

/// The log's lines, one per event, on `writer`.
fn log_layer<S>(writer: BatchedWriter) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
}

/// The log's levels: `SHOP_LOG`, else `RUST_LOG`, else `info` (quieter for the libraries); the
/// spans are never logged, whatever the levels say.
fn log_filter() -> EnvFilter {
    let filter = EnvFilter::try_from_env("SHOP_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,wasmtime=warn,cranelift=warn"));
    filter.add_directive(format!("{SPANS}=off").parse().expect("a valid directive"))
}

/// The tracer provider exporting to `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` below it), in
/// batches on the Tokio runtime.
fn tracer_provider() -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    let batches = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_resource(Resource::builder().with_service_name("shop").build())
        .build())
}
