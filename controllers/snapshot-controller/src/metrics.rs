//! The snapshot controller's operation metrics (upstream's `pkg/metrics`): how long creating a
//! snapshot, creating it until it is ready, and deleting it took, end to end, and how many such
//! operations are under way.
//!
//! `snapshot_controller_operation_total_seconds` is a histogram labelled `driver_name`,
//! `operation_name`, `snapshot_type` (`dynamic` / `pre-provisioned`) and `operation_status`
//! (`success`, `unknown`, `cancel`); `snapshot_controller_operations_in_flight` is a gauge. An
//! operation starts once per key ([`OperationMetrics::operation_start`] again keeps the first
//! start time) and is observed when recorded; deleting a snapshot whose creation never
//! finished records that creation as `cancel`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csi_metrics::{Gauge, HistogramVec, Opts, Registry};
use tokio::time::Instant;

/// `CreateSnapshot`: from the first sight of a snapshot to its `status.creationTime`.
pub const CREATE_SNAPSHOT: &str = "CreateSnapshot";
/// `CreateSnapshotAndReady`: from the first sight of a snapshot to `readyToUse: true`.
pub const CREATE_SNAPSHOT_AND_READY: &str = "CreateSnapshotAndReady";
/// `DeleteSnapshot`: from the deletion timestamp to the finalizers' removal.
pub const DELETE_SNAPSHOT: &str = "DeleteSnapshot";
/// `CreateGroupSnapshot`.
pub const CREATE_GROUP_SNAPSHOT: &str = "CreateGroupSnapshot";
/// `CreateGroupSnapshotAndReady`.
pub const CREATE_GROUP_SNAPSHOT_AND_READY: &str = "CreateGroupSnapshotAndReady";
/// `DeleteGroupSnapshot`.
pub const DELETE_GROUP_SNAPSHOT: &str = "DeleteGroupSnapshot";

/// A snapshot the controller creates the content of.
pub const DYNAMIC: &str = "dynamic";
/// A snapshot bound to an existing content.
pub const PRE_PROVISIONED: &str = "pre-provisioned";

/// The operation finished.
pub const STATUS_SUCCESS: &str = "success";
/// The outcome is not known.
pub const STATUS_UNKNOWN: &str = "unknown";
/// The snapshot was deleted before its creation finished.
pub const STATUS_CANCEL: &str = "cancel";

const UNKNOWN_DRIVER: &str = "unknown";
const BUCKETS: [f64; 13] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// How often the in-flight gauge is set from the operations under way, besides every change.
pub const IN_FLIGHT_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// An operation on one object: its name and the object's UID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OperationKey {
    /// `CreateSnapshot`, ...
    pub name: &'static str,
    /// The (group) snapshot's UID.
    pub uid: String,
}

impl OperationKey {
    /// The key of operation `name` on the object with `uid`.
    pub fn new(name: &'static str, uid: &str) -> Self {
        OperationKey {
            name,
            uid: uid.to_string(),
        }
    }
}

#[derive(Clone, Debug)]
struct OperationValue {
    driver: String,
    snapshot_type: String,
    started: Instant,
}

/// The operation metrics, registered once per process. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OperationMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    operations: Mutex<HashMap<OperationKey, OperationValue>>,
    latency: HistogramVec,
    in_flight: Gauge,
}

impl OperationMetrics {
    /// Creates both metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> csi_metrics::Result<Self> {
        let latency = HistogramVec::new(
            Opts::new(
                "operation_total_seconds",
                "Total number of seconds spent by the controller on an operation",
            )
            .subsystem("snapshot_controller"),
            &BUCKETS,
            &[
                "driver_name",
                "operation_name",
                "snapshot_type",
                "operation_status",
            ],
        )?;
        let in_flight = Gauge::new(
            Opts::new(
                "operations_in_flight",
                "Total number of operations in flight",
            )
            .subsystem("snapshot_controller"),
        )?;
        registry.register(latency.clone())?;
        registry.register(in_flight.clone())?;
        Ok(OperationMetrics {
            inner: Arc::new(Inner {
                operations: Mutex::default(),
                latency,
                in_flight,
            }),
        })
    }

    fn operations(&self) -> std::sync::MutexGuard<'_, HashMap<OperationKey, OperationValue>> {
        self.inner
            .operations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `key` (an empty driver is `unknown`) unless it is under way already.
    pub fn operation_start(&self, key: OperationKey, driver: &str, snapshot_type: &str) {
        let mut operations = self.operations();
        operations.entry(key).or_insert_with(|| OperationValue {
            driver: if driver.is_empty() {
                UNKNOWN_DRIVER.to_string()
            } else {
                driver.to_string()
            },
            snapshot_type: snapshot_type.to_string(),
            started: Instant::now(),
        });
        self.inner.in_flight.set(operations.len() as f64);
    }

    /// Forgets `key` without observing it.
    pub fn drop_operation(&self, key: &OperationKey) {
        let mut operations = self.operations();
        operations.remove(key);
        self.inner.in_flight.set(operations.len() as f64);
    }

    /// Observes `key`'s duration with `status` (`None`: `unknown`) and forgets it; an empty or
    /// unknown `driver` takes the one given at the start. Recording a deletion records the
    /// unfinished creations of the same object as `cancel`, with the deletion's duration.
    /// A key that never started is not observed; but a deletion that never started (the
    /// snapshot went before the controller saw it being deleted) still cancels the
    /// creations, with their own durations: upstream returns early then, and keeps them in
    /// flight for the life of the process.
    pub fn record(&self, key: &OperationKey, status: Option<&str>, driver: &str) {
        let (create, create_and_ready) = match key.name {
            DELETE_SNAPSHOT => (CREATE_SNAPSHOT, CREATE_SNAPSHOT_AND_READY),
            DELETE_GROUP_SNAPSHOT => (CREATE_GROUP_SNAPSHOT, CREATE_GROUP_SNAPSHOT_AND_READY),
            _ => ("", ""),
        };
        let mut operations = self.operations();
        let started = operations.remove(key);
        let duration = started
            .as_ref()
            .map(|value| value.started.elapsed().as_secs_f64());
        if let Some(value) = &started {
            let driver = if driver.is_empty() || driver == UNKNOWN_DRIVER {
                value.driver.as_str()
            } else {
                driver
            };
            self.inner
                .latency
                .with_label_values(&[
                    driver,
                    key.name,
                    &value.snapshot_type,
                    status.unwrap_or(STATUS_UNKNOWN),
                ])
                .observe(duration.unwrap_or_default());
        }
        let mut cancelled = false;
        for name in [create, create_and_ready] {
            if name.is_empty() {
                continue;
            }
            let pending = OperationKey::new(name, &key.uid);
            if let Some(pending_value) = operations.remove(&pending) {
                cancelled = true;
                self.inner
                    .latency
                    .with_label_values(&[
                        &pending_value.driver,
                        name,
                        &pending_value.snapshot_type,
                        STATUS_CANCEL,
                    ])
                    .observe(
                        duration.unwrap_or_else(|| pending_value.started.elapsed().as_secs_f64()),
                    );
            }
        }
        if started.is_some() || cancelled {
            self.inner.in_flight.set(operations.len() as f64);
        }
    }

    /// How many operations are under way.
    pub fn in_flight(&self) -> usize {
        self.operations().len()
    }

    /// Sets the in-flight gauge every `interval` until `shutdown`.
    pub async fn refresh_in_flight(
        &self,
        interval: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {
                    let operations = self.operations();
                    self.inner.in_flight.set(operations.len() as f64);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
