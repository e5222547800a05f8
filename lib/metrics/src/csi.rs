//! `csi_sidecar_operations_seconds`: how long each CSI call took, by driver, method and gRPC
//! status code — csi-lib-utils `metrics.CSIMetricsManager` (v0.24.0).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::family::Stability;
use crate::metric::{HistogramVec, Opts};
use crate::process::{PROCESS_START_TIME, register_process_start_time};
use crate::registry::Registry;
use crate::{Error, Result};

/// The subsystem (name prefix) of sidecars' metrics: `csi_sidecar_operations_seconds`.
pub const SUBSYSTEM_SIDECAR: &str = "csi_sidecar";
/// The subsystem CSI drivers use for their own metrics: `csi_plugin_operations_seconds`.
pub const SUBSYSTEM_PLUGIN: &str = "csi_plugin";
/// The `driver_name` recorded until the driver name is known.
pub const UNKNOWN_DRIVER_NAME: &str = "unknown-driver";
/// The `grpc_status_code` upstream records for an error that is not a gRPC status (the call
/// failed before it reached the driver).
pub const NON_GRPC_ERROR_CODE: &str = "unknown-non-grpc";
/// The extra label that tells whether an operation was for a migrated in-tree volume.
pub const LABEL_MIGRATED: &str = "migrated";
/// The histogram's name after the subsystem.
pub const OPERATIONS_LATENCY_NAME: &str = "operations_seconds";
/// The histogram's help text (component-base adds the stability prefix).
pub const OPERATIONS_LATENCY_HELP: &str =
    "Container Storage Interface operation duration with gRPC error code status total";
/// The histogram's buckets, in seconds.
pub const OPERATIONS_LATENCY_BUCKETS: [f64; 13] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 25.0, 50.0, 120.0, 300.0, 600.0,
];

/// The name grpc-go's `codes.Code.String()` gives a status code: `"OK"`, `"DeadlineExceeded"`,
/// `"Unavailable"`, ...
///
/// Go prints a code outside 0–16 as `Code(17)`; such codes cannot reach us (tonic reads them as
/// `Unknown`), so this returns `"Unknown"` for them.
pub fn grpc_code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

/// The CSI operation histogram of one connection. Cheap to clone: clones record into the same
/// histogram and share the driver name.
#[derive(Clone, Debug)]
pub struct CsiOperationMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    histogram: HistogramVec,
    driver_name: RwLock<Arc<str>>,
    additional_label_names: Vec<String>,
}

impl CsiOperationMetrics {
    /// Options with upstream's defaults: subsystem `csi_sidecar`, ALPHA stability, no extra
    /// labels, and `process_start_time_seconds` registered too.
    pub fn builder() -> CsiOperationMetricsBuilder {
        CsiOperationMetricsBuilder::default()
    }

    /// `csi_sidecar_operations_seconds` and component-base's `process_start_time_seconds` in
    /// `registry` (csi-lib-utils `NewCSIMetricsManagerForSidecar("")`).
    pub fn for_sidecar(registry: &Registry) -> Result<CsiOperationMetrics> {
        CsiOperationMetrics::builder().register(registry)
    }

    /// `csi_plugin_operations_seconds` and component-base's `process_start_time_seconds` in
    /// `registry` (csi-lib-utils `NewCSIMetricsManagerForPlugin("")`).
    pub fn for_plugin(registry: &Registry) -> Result<CsiOperationMetrics> {
        CsiOperationMetrics::builder()
            .subsystem(SUBSYSTEM_PLUGIN)
            .register(registry)
    }

    /// Sets the driver name recorded from now on; an empty name records
    /// [`UNKNOWN_DRIVER_NAME`].
    pub fn set_driver_name(&self, name: &str) {
        let name: Arc<str> = if name.is_empty() {
            Arc::from(UNKNOWN_DRIVER_NAME)
        } else {
            Arc::from(name)
        };
        *self
            .inner
            .driver_name
            .write()
            .unwrap_or_else(PoisonError::into_inner) = name;
    }

    /// The driver name being recorded.
    pub fn driver_name(&self) -> Arc<str> {
        Arc::clone(
            &self
                .inner
                .driver_name
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Whether `name` is one of the extra label names this histogram was built with.
    pub fn has_additional_label(&self, name: &str) -> bool {
        self.inner.additional_label_names.iter().any(|n| n == name)
    }

    /// Records one finished call: `method` is the full gRPC method
    /// (`/csi.v1.Controller/CreateVolume`), `grpc_status_code` the code's name from
    /// [`grpc_code_name`] (or [`NON_GRPC_ERROR_CODE`]). Extra labels are recorded empty.
    pub fn record(&self, method: &str, grpc_status_code: &str, elapsed: Duration) {
        self.record_with_labels(method, grpc_status_code, elapsed, &[]);
    }

    /// Like [`CsiOperationMetrics::record`], with values for the extra labels as
    /// `(name, value)` pairs; extra labels not given are recorded empty, names that were not
    /// declared are ignored.
    pub fn record_with_labels(
        &self,
        method: &str,
        grpc_status_code: &str,
        elapsed: Duration,
        labels: &[(&str, &str)],
    ) {
        let driver = self.driver_name();
        let mut values: Vec<&str> = Vec::with_capacity(3 + self.inner.additional_label_names.len());
        values.extend([&*driver, method, grpc_status_code]);
        for name in &self.inner.additional_label_names {
            let value = labels
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map_or("", |(_, v)| *v);
            values.push(value);
        }
        self.inner
            .histogram
            .with_label_values(&values)
            .observe_duration(elapsed);
    }
}

/// How to build [`CsiOperationMetrics`]: csi-lib-utils' `MetricsManagerOption`s.
#[derive(Clone, Debug)]
pub struct CsiOperationMetricsBuilder {
    subsystem: String,
    stability: Stability,
    driver_name: String,
    additional_label_names: Vec<String>,
    labels: BTreeMap<String, String>,
    process_start_time: bool,
}

impl Default for CsiOperationMetricsBuilder {
    fn default() -> Self {
        CsiOperationMetricsBuilder {
            subsystem: SUBSYSTEM_SIDECAR.to_string(),
            stability: Stability::Alpha,
            driver_name: String::new(),
            additional_label_names: Vec::new(),
            labels: BTreeMap::new(),
            process_start_time: true,
        }
    }
}

impl CsiOperationMetricsBuilder {
    /// The name prefix (`WithSubsystem`); [`SUBSYSTEM_SIDECAR`] by default.
    pub fn subsystem(mut self, subsystem: impl Into<String>) -> Self {
        self.subsystem = subsystem.into();
        self
    }

    /// The stability level (`WithStabilityLevel`); ALPHA by default.
    pub fn stability(mut self, stability: Stability) -> Self {
        self.stability = stability;
        self
    }

    /// The driver name, if already known (it can be set later with
    /// [`CsiOperationMetrics::set_driver_name`]).
    pub fn driver_name(mut self, name: impl Into<String>) -> Self {
        self.driver_name = name.into();
        self
    }

    /// Extra labels whose values are given per call (`WithLabelNames`).
    pub fn label_names(mut self, names: &[&str]) -> Self {
        self.additional_label_names
            .extend(names.iter().map(|n| n.to_string()));
        self
    }

    /// Adds the [`LABEL_MIGRATED`] extra label (`WithMigration`).
    pub fn migration(mut self) -> Self {
        self.additional_label_names.push(LABEL_MIGRATED.to_string());
        self
    }

    /// Labels with a fixed value on every sample (`WithLabels`).
    pub fn labels<K: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.labels
            .extend(labels.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Whether to register component-base's `process_start_time_seconds` too
    /// (`WithProcessStartTime`); `true` by default, as upstream.
    pub fn process_start_time(mut self, register: bool) -> Self {
        self.process_start_time = register;
        self
    }

    /// Creates the histogram and registers it (and `process_start_time_seconds` if asked) in
    /// `registry`. Fails if a name is taken or a label name is invalid.
    pub fn register(self, registry: &Registry) -> Result<CsiOperationMetrics> {
        let mut opts = Opts::new(OPERATIONS_LATENCY_NAME, OPERATIONS_LATENCY_HELP)
            .subsystem(self.subsystem)
            .stability(self.stability);
        opts.const_labels = self.labels.into_iter().collect();
        let mut label_names = vec!["driver_name", "method_name", "grpc_status_code"];
        label_names.extend(self.additional_label_names.iter().map(String::as_str));
        let histogram = HistogramVec::new(opts, &OPERATIONS_LATENCY_BUCKETS, &label_names)?;
        // Check both names first so that a clash leaves nothing half registered.
        if self.process_start_time && registry.is_registered(PROCESS_START_TIME) {
            return Err(Error::AlreadyRegistered {
                name: PROCESS_START_TIME.to_string(),
            });
        }
        registry.register(histogram.clone())?;
        if self.process_start_time {
            register_process_start_time(registry)?;
        }
        let metrics = CsiOperationMetrics {
            inner: Arc::new(Inner {
                histogram,
                driver_name: RwLock::new(Arc::from(UNKNOWN_DRIVER_NAME)),
                additional_label_names: self.additional_label_names,
            }),
        };
        metrics.set_driver_name(&self.driver_name);
        Ok(metrics)
    }
}
