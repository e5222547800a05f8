//! Prometheus metrics for the sidecars, exposed exactly as the Go sidecars expose them.
//!
//! This crate owns the metrics registry, the text exposition, the `process_*` metrics and the
//! CSI operation histogram. It does not serve HTTP (the runtime crate does) and knows nothing of
//! gRPC beyond status code names.
//!
//! We do not use a Prometheus crate: the Go sidecars' `/metrics` is written by client_golang's
//! `expfmt` (through Kubernetes component-base, which prefixes help texts with `[ALPHA] `), and
//! dashboards, alerts and scrape tests compare against that. [`Registry::gather_text`] writes the
//! text format 0.0.4 byte for byte as Go does:
//!
//! - families sorted by name, families without samples left out;
//! - `# HELP name text` (with `\` and newline escaped) then `# TYPE name type`;
//! - labels sorted by name, values escaped (`\\`, `\"`, `\n`), samples sorted by label values;
//! - values as Go's `strconv.FormatFloat(v, 'g', -1, 64)`: the shortest round-tripping digits,
//!   in exponent form when the decimal exponent is below -4 or at least 6 (`1.5e+09`,
//!   `1.234567e+06`, `1e-05`, but `123456` and `0.0001`), `+Inf`, `-Inf`, `NaN`, and `0` for
//!   negative zero;
//! - histograms as cumulative `_bucket{...,le="..."}` lines ending with `le="+Inf"`, then
//!   `_sum` and `_count`.
//!
//! Serve it with [`TEXT_CONTENT_TYPE`] (or [`negotiate_text_content_type`] to echo a scraper's
//! escaping preference, as Go does).
//!
//! # Metrics
//!
//! [`Counter`], [`Gauge`] and [`Histogram`] and their label-partitioned `*Vec` forms are updated
//! with atomics; `with_label_values` returns a handle that can be kept for the hot path. Each
//! has a name, a help text, a [`Stability`] ([`Stability::Alpha`] for component-base metrics,
//! which adds `[ALPHA] `; [`Stability::Raw`] for plain client_golang metrics) and fixed label
//! names. Values computed at scrape time come from a [`Collector`] of your own.
//!
//! ```no_run
//! use csi_metrics::{GaugeVec, Opts, Registry};
//!
//! let registry = Registry::new();
//! let depth = GaugeVec::new(Opts::new("workqueue_depth", "Current depth of workqueue"), &["name"])?;
//! registry.register(depth.clone())?;
//! depth.with_label_values(&["volumes"]).inc();
//! print!("{}", registry.gather_text());
//! # Ok::<(), csi_metrics::Error>(())
//! ```
//!
//! # `process_start_time_seconds`: which one
//!
//! Upstream serves its csi-lib-utils metrics manager's registry first and the legacy registry
//! second through Go's `Gatherers`, which keeps the first family of a name and drops a later one
//! whose help text differs. So each sidecar exposes exactly one of the two, and we register the
//! same one:
//!
//! | upstream wiring | exposed | ours |
//! |---|---|---|
//! | manager with default options + legacy registry (attacher, resizer, snapshotter) | `[ALPHA]` one | [`CsiOperationMetrics::for_sidecar`] + [`ProcessCollector::without_start_time`] |
//! | manager `WithProcessStartTime(false)` + legacy registry (provisioner) | Go client's | builder with `.process_start_time(false)` + [`ProcessCollector::new`] |
//! | manager only (health monitor, livenessprobe) | `[ALPHA]` one, no other `process_*` | [`CsiOperationMetrics::for_sidecar`] alone |
//!
//! Registering both is an [`Error::AlreadyRegistered`]. The Go runtime's `go_*` metrics of the
//! legacy registry have no Rust counterpart and are not exposed.

#![deny(missing_docs)]

mod csi;
mod family;
mod metric;
mod process;
mod registry;
mod text;

pub use csi::{
    CsiOperationMetrics, CsiOperationMetricsBuilder, LABEL_MIGRATED, NON_GRPC_ERROR_CODE,
    OPERATIONS_LATENCY_BUCKETS, OPERATIONS_LATENCY_HELP, OPERATIONS_LATENCY_NAME, SUBSYSTEM_PLUGIN,
    SUBSYSTEM_SIDECAR, UNKNOWN_DRIVER_NAME, grpc_code_name,
};
pub use family::{HistogramValue, MetricFamily, MetricType, Sample, SampleValue, Stability};
pub use metric::{
    Counter, CounterVec, DEFAULT_BUCKETS, Gauge, GaugeVec, Histogram, HistogramVec, Opts,
    exponential_buckets, linear_buckets,
};
pub use process::{ProcessCollector, USER_HZ, register_process_start_time};
pub use registry::{Collector, Registry};
pub use text::{TEXT_CONTENT_TYPE, negotiate_text_content_type};

/// What can go wrong creating or registering metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A family of this name is already in the registry.
    #[error("a metric family named {name:?} is already registered")]
    AlreadyRegistered {
        /// The taken name.
        name: String,
    },
    /// The name is not a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
    #[error("{name:?} is not a valid metric name")]
    InvalidMetricName {
        /// The refused name.
        name: String,
    },
    /// A label name is invalid (`[a-zA-Z_][a-zA-Z0-9_]*`), reserved (a `__` prefix, or `le` on
    /// a histogram) or given twice.
    #[error("metric {metric:?}: label name {label:?} {reason}")]
    InvalidLabelName {
        /// The metric's name.
        metric: String,
        /// The refused label name.
        label: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The number of label values given is not the number of label names.
    #[error("metric {metric:?} has {expected} variable labels but {given} values were given")]
    LabelValueCount {
        /// The metric's name.
        metric: String,
        /// How many label names it has.
        expected: usize,
        /// How many values were given.
        given: usize,
    },
    /// Histogram buckets, or the arguments of a bucket helper, are unusable.
    #[error("invalid histogram buckets: {reason}")]
    InvalidBuckets {
        /// What is wrong with them.
        reason: String,
    },
}

/// The result of this crate's fallible operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
