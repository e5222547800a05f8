//! `csi_sidecar_operations_seconds`: how long each CSI call took, by driver, method and gRPC
//! status code — csi-lib-utils `metrics.CSIMetricsManager` (v0.25.0).
//!
//! CSI migration: upstream's attacher, provisioner and resizer, once `GetPluginInfo` shows that
//! the driver replaced an in-tree plugin, connect again with a second metrics manager
//! (`WithMigration()`) and serve only that one, so their `/metrics` has a `migrated` label on
//! every series and nothing of what the first connection recorded.
//! [`CsiOperationMetrics::enable_migration`] does the same to the one histogram of a process.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::family::MetricFamily;
use crate::family::Stability;
use crate::metric::{HistogramVec, Opts};
use crate::process::{PROCESS_START_TIME, register_process_start_time};
use crate::registry::{Collector, Registry};
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
    /// The histogram served now; [`CsiOperationMetrics::enable_migration`] replaces it.
    current: RwLock<Current>,
    /// What the histogram is built from, to build its migration twin.
    opts: Opts,
    driver_name: RwLock<Arc<str>>,
}

#[derive(Debug)]
struct Current {
    histogram: HistogramVec,
    additional_label_names: Vec<String>,
}

impl Current {
    fn new(opts: &Opts, additional_label_names: Vec<String>) -> Result<Current> {
        let mut label_names = vec!["driver_name", "method_name", "grpc_status_code"];
        label_names.extend(additional_label_names.iter().map(String::as_str));
        let histogram = HistogramVec::new(opts.clone(), &OPERATIONS_LATENCY_BUCKETS, &label_names)?;
        Ok(Current {
            histogram,
            additional_label_names,
        })
    }
}

/// What the registry holds: the histogram of the moment, whichever it is.
struct CurrentHistogram(Arc<Inner>);

impl Collector for CurrentHistogram {
    fn family_names(&self) -> Vec<String> {
        vec![self.0.opts.fq_name()]
    }

    fn collect(&self, out: &mut Vec<MetricFamily>) {
        self.0.current().histogram.collect(out);
    }
}

impl Inner {
    fn current(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }
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
        self.inner
            .current()
            .additional_label_names
            .iter()
            .any(|n| n == name)
    }

    /// Whether calls are recorded with the [`LABEL_MIGRATED`] label.
    pub fn records_migration(&self) -> bool {
        self.has_additional_label(LABEL_MIGRATED)
    }

    /// Adds the [`LABEL_MIGRATED`] label from now on, as upstream's sidecars do for a driver that
    /// replaced an in-tree plugin: they make a second metrics manager with `WithMigration()` and
    /// serve it instead of the first. So the histogram starts afresh (the series recorded so far
    /// are dropped, as the first manager's are no longer served) with the same name, help,
    /// buckets, driver name and labels plus `migrated`. Returns `false`, changing nothing, when
    /// the label is already there.
    pub fn enable_migration(&self) -> bool {
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if current
            .additional_label_names
            .iter()
            .any(|n| n == LABEL_MIGRATED)
        {
            return false;
        }
        let mut names = current.additional_label_names.clone();
        names.push(LABEL_MIGRATED.to_string());
        // The names were valid once and `migrated` is a valid, unused name: this cannot fail.
        match Current::new(&self.inner.opts, names) {
            Ok(migrated) => {
                *current = migrated;
                true
            }
            Err(_) => false,
        }
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
        let current = self.inner.current();
        let mut values: Vec<&str> = Vec::with_capacity(3 + current.additional_label_names.len());
        values.extend([&*driver, method, grpc_status_code]);
        for name in &current.additional_label_names {
            let value = labels
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map_or("", |(_, v)| *v);
            values.push(value);
        }
        current
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
        let current = Current::new(&opts, self.additional_label_names)?;
        // Check both names first so that a clash leaves nothing half registered.
        if self.process_start_time && registry.is_registered(PROCESS_START_TIME) {
            return Err(Error::AlreadyRegistered {
                name: PROCESS_START_TIME.to_string(),
            });
        }
        let inner = Arc::new(Inner {
            current: RwLock::new(current),
            opts,
            driver_name: RwLock::new(Arc::from(UNKNOWN_DRIVER_NAME)),
        });
        registry.register(CurrentHistogram(inner.clone()))?;
        if self.process_start_time {
            register_process_start_time(registry)?;
        }
        let metrics = CsiOperationMetrics { inner };
        metrics.set_driver_name(&self.driver_name);
        Ok(metrics)
    }
}
