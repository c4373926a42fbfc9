//! The host's Prometheus metrics: requests by component and version, guest failures, calls
//! over the links, database pools, and the process itself, in one registry that `GET
//! /metrics` renders in the text format.
//!
//! Counting sits on every request's path, so the labelled handles are resolved once (per
//! component version, per link and caller) and kept: a request costs a map look-up under a read
//! lock and a few atomic additions, no formatting and no allocation.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};
use std::time::Duration;

use http::StatusCode;
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// How many hex digits of a version's SHA-256 its `version` label keeps: enough to tell the
/// kept versions apart, short enough to read on a dashboard.
pub const VERSION_LABEL_DIGITS: usize = 12;

/// Request durations, in seconds: a catalogue read takes about a millisecond, a login tens.
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Link call durations, in seconds: a call into a kept instance takes microseconds.
const LINK_BUCKETS: &[f64] = &[
    0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
];

/// Why a guest failed its request: the `reason` label of `shop_guest_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// It ran past its deadline (a 504).
    Deadline,
    /// It grew its memory or a table past the cap (a 503).
    Memory,
    /// It trapped (a 503).
    Trap,
    /// The host turned it away before it ran: too many requests in flight (a 503).
    Overloaded,
}

impl FailureReason {
    /// The label value, as the log says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::Memory => "memory",
            Self::Trap => "trap",
            Self::Overloaded => "overloaded",
        }
    }
}

/// The host's metrics, registered once in their own registry.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    guest_failures: IntCounterVec,
    link_calls: IntCounterVec,
    link_duration: HistogramVec,
    pool_size: IntGaugeVec,
    pool_idle: IntGaugeVec,
    instances: IntCounterVec,
    statements: IntCounterVec,
    /// The resolved handles, by component, then full version.
    versions: RwLock<HashMap<String, HashMap<String, Arc<VersionMetrics>>>>,
}

/// The metrics of one version of one component, its labels resolved.
pub struct VersionMetrics {
    component: String,
    version: String,
    duration: Histogram,
    /// By status: a version answers few distinct ones, so a short list.
    statuses: RwLock<Vec<(StatusCode, IntCounter)>>,
}

/// The metrics of the calls over one linked interface, by caller and provider.
pub struct LinkMetrics {
    interface: String,
    pairs: RwLock<Vec<LinkPair>>,
}

/// The resolved handles of calls from one component to another over one interface.
struct LinkPair {
    from: String,
    to: String,
    calls: IntCounter,
    duration: Histogram,
}

/// How full one service's database pool is, read when metrics are scraped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// `sqlite` or `postgres`.
    pub engine: &'static str,
    /// The connections the pool holds (idle and in use).
    pub size: u32,
    /// The connections idle in it.
    pub idle: usize,
}

/// The host's metrics: one set per process, like the process metrics among them.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let metrics = Self {
            requests: counter(
                &registry,
                "shop_http_requests_total",
                "Requests answered, by component, version and status.",
                &["component", "version", "status"],
            ),
            request_duration: histogram(
                &registry,
                "shop_http_request_duration_seconds",
                "Time from a request's admission to its response head, by component and version.",
                &["component", "version"],
                REQUEST_BUCKETS,
            ),
            guest_failures: counter(
                &registry,
                "shop_guest_failures_total",
                "Requests a guest failed or the host turned away, by component and reason.",
                &["component", "reason"],
            ),
            link_calls: counter(
                &registry,
                "shop_link_calls_total",
                "Calls over the WIT links, by caller, provider and interface.",
                &["from", "to", "interface"],
            ),
            link_duration: histogram(
                &registry,
                "shop_link_call_duration_seconds",
                "Duration of calls over the WIT links (a provider instance made included).",
                &["from", "to", "interface"],
                LINK_BUCKETS,
            ),
            pool_size: gauge(
                &registry,
                "shop_database_pool_connections",
                "Connections in each service's database pool, idle or in use.",
            ),
            pool_idle: gauge(
                &registry,
                "shop_database_pool_idle_connections",
                "Idle connections in each service's database pool.",
            ),
            instances: counter(
                &registry,
                "shop_instances_total",
                "Component instances made, for requests and for link calls, by component.",
                &["component"],
            ),
            statements: counter(
                &registry,
                "shop_database_statements_total",
                "Statements the guests ran, by engine, database and kind (read, write, or \
                 transaction control).",
                &["engine", "database", "kind"],
            ),
            registry,
            versions: RwLock::default(),
        };
        #[cfg(target_os = "linux")]
        register(
            &metrics.registry,
            prometheus::process_collector::ProcessCollector::for_self(),
        );
        metrics
    }

    /// The metrics of `component` at `version` (its SHA-256 in hex), resolved on first use.
    pub fn version(&self, component: &str, version: &str) -> Arc<VersionMetrics> {
        let known = self.versions.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = known.get(component).and_then(|v| v.get(version)) {
            return found.clone();
        }
        drop(known);
        let mut known = self
            .versions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let found = known
            .entry(component.to_owned())
            .or_default()
            .entry(version.to_owned())
            .or_insert_with(|| {
                let label = &version[..version.len().min(VERSION_LABEL_DIGITS)];
                Arc::new(VersionMetrics {
                    component: component.to_owned(),
                    version: label.to_owned(),
                    duration: self.request_duration.with_label_values(&[component, label]),
                    statuses: RwLock::default(),
                })
            });
        found.clone()
    }

    /// Counts a request of `component` that failed (or was turned away) for `reason`.
    pub fn guest_failure(&self, component: &str, reason: FailureReason) {
        self.guest_failures
            .with_label_values(&[component, reason.as_str()])
            .inc();
    }

    /// The metrics of calls over `interface`.
    pub fn link(&self, interface: &str) -> LinkMetrics {
        LinkMetrics {
            interface: interface.to_owned(),
            pairs: RwLock::default(),
        }
    }

    /// The metrics in Prometheus' text format, with each service's pool as `pools` reports it.
    pub fn render<'a>(&self, pools: impl IntoIterator<Item = (&'a str, PoolUsage)>) -> String {
        for (service, usage) in pools {
            let labels = [service, usage.engine];
            self.pool_size
                .with_label_values(&labels)
                .set(i64::from(usage.size));
            self.pool_idle
                .with_label_values(&labels)
                .set(i64::try_from(usage.idle).unwrap_or(i64::MAX));
        }
        let mut text = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            tracing::error!("cannot encode the metrics: {err}");
        }
        String::from_utf8(text).unwrap_or_default()
    }
}

/// The statement counters of one database, resolved once for a pool or a connection.
#[derive(Clone)]
pub struct StatementCounters {
    read: IntCounter,
    write: IntCounter,
    control: IntCounter,
}

/// What a statement is, for its counter: the engine's capability reads it from the words it
/// scans anyway (SQLite's statement shape, Postgres's effects), skipping quotes and comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// A query, or anything that neither writes rows nor controls a transaction.
    Read,
    /// INSERT, UPDATE, DELETE, REPLACE, MERGE, or a WITH holding one of them.
    Write,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT and the like.
    Transaction,
}

impl StatementCounters {
    /// Counts one statement of `kind`.
    pub fn count(&self, kind: StatementKind) {
        match kind {
            StatementKind::Read => &self.read,
            StatementKind::Write => &self.write,
            StatementKind::Transaction => &self.control,
        }
        .inc();
    }
}

impl Metrics {
    /// The statement counters of `database` on `engine`.
    pub fn statements(&self, engine: &str, database: &str) -> StatementCounters {
        let kind = |kind: &str| self.statements.with_label_values(&[engine, database, kind]);
        StatementCounters {
            read: kind("read"),
            write: kind("write"),
            control: kind("transaction"),
        }
    }

    /// Counts an instance of `component` made.
    pub fn instance_made(&self, component: &str) {
        self.instances.with_label_values(&[component]).inc();
    }
}

impl VersionMetrics {
    /// Counts one answer with `status`, `elapsed` after its admission.
    pub fn observe(&self, status: StatusCode, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
        self.by_status(status).inc();
    }

    fn by_status(&self, status: StatusCode) -> IntCounter {
        let known = self.statuses.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, counter)) = known.iter().find(|(known, _)| *known == status) {
            return counter.clone();
        }
        drop(known);
        let counter = metrics().requests.with_label_values(&[
            self.component.as_str(),
            self.version.as_str(),
            status.as_str(),
        ]);
        let mut known = self
            .statuses
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !known.iter().any(|(known, _)| *known == status) {
            known.push((status, counter.clone()));
        }
        counter
    }
}

impl LinkMetrics {
    /// Counts one call from component `from` to component `to` that took `elapsed`.
    pub fn observe(&self, from: &str, to: &str, elapsed: Duration) {
        let pairs = self.pairs.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(pair) = pairs.iter().find(|p| p.from == from && p.to == to) {
            pair.observe(elapsed);
            return;
        }
        drop(pairs);
        let labels = [from, to, self.interface.as_str()];
        let pair = LinkPair {
            from: from.to_owned(),
            to: to.to_owned(),
            calls: metrics().link_calls.with_label_values(&labels),
            duration: metrics().link_duration.with_label_values(&labels),
        };
        pair.observe(elapsed);
        let mut pairs = self.pairs.write().unwrap_or_else(PoisonError::into_inner);
        if !pairs.iter().any(|p| p.from == from && p.to == to) {
            pairs.push(pair);
        }
    }
}

impl LinkPair {
    fn observe(&self, elapsed: Duration) {
        self.calls.inc();
        self.duration.observe(elapsed.as_secs_f64());
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter");
    register(registry, counter.clone());
    counter
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let histogram = HistogramVec::new(opts, labels).expect("a valid histogram");
    register(registry, histogram.clone());
    histogram
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGaugeVec {
    let gauge = IntGaugeVec::new(Opts::new(name, help), &["service", "engine"]).expect("a gauge");
    register(registry, gauge.clone());
    gauge
}

/// Registers a collector whose names are fixed above: a failure is a bug in this file.
fn register(registry: &Registry, collector: impl prometheus::core::Collector + 'static) {
    registry
        .register(Box::new(collector))
        .expect("each metric is registered once");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_counts_its_answers_by_status_under_a_short_label() {
        let version = "ab".repeat(32);
        let served = metrics().version("unit-test", &version);
        for _ in 0..3 {
            served.observe(StatusCode::OK, Duration::from_millis(2));
        }
        metrics()
            .version("unit-test", &version)
            .observe(StatusCode::NOT_FOUND, Duration::from_millis(1));
        let text = metrics().render([]);
        let short = &version[..VERSION_LABEL_DIGITS];
        let line = format!(
            "shop_http_requests_total{{component=\"unit-test\",status=\"200\",version=\"{short}\"}} 3"
        );
        assert!(text.contains(&line), "{line} missing from:\n{text}");
        assert!(text.contains(&format!(
            "shop_http_request_duration_seconds_count{{component=\"unit-test\",version=\"{short}\"}} 4"
        )));
    }

    #[test]
    fn link_calls_and_pools_are_labelled_by_their_parties() {
        let link = metrics().link("unit:test/iface@1.0.0");
        link.observe("caller", "provider", Duration::from_micros(3));
        link.observe("caller", "provider", Duration::from_micros(5));
        let pool = PoolUsage {
            engine: "sqlite",
            size: 4,
            idle: 3,
        };
        let text = metrics().render([("unit-pool", pool)]);
        assert!(text.contains(
            "shop_link_calls_total{from=\"caller\",interface=\"unit:test/iface@1.0.0\",to=\"provider\"} 2"
        ));
        assert!(text.contains(
            "shop_database_pool_idle_connections{engine=\"sqlite\",service=\"unit-pool\"} 3"
        ));
    }

    #[test]
    fn statements_are_counted_by_kind() {
        let counters = metrics().statements("unit-engine", "unit-counted");
        for kind in [
            StatementKind::Transaction,
            StatementKind::Transaction,
            StatementKind::Write,
            StatementKind::Write,
            StatementKind::Read,
            StatementKind::Read,
        ] {
            counters.count(kind);
        }
        let text = metrics().render([]);
        for (kind, count) in [("transaction", 2), ("write", 2), ("read", 2)] {
            let line = format!(
                "shop_database_statements_total{{database=\"unit-counted\",engine=\"unit-engine\",kind=\"{kind}\"}} {count}"
            );
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
    }
}
