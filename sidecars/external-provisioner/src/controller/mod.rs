//! The provisioning loop: sig-storage-lib-external-provisioner v13.1.0's `ProvisionController`
//! with external-provisioner's `Provision` and `Delete` plugged in, without the machinery.
//! The component owns the watches, the queues, the workers and the timers and calls in here:
//!
//! | event | call | queue |
//! |---|---|---|
//! | PVC added / updated / resynced | [`ProvisionController::claim_key`] | `claims` (PVC UID) |
//! | PVC deleted | [`ProvisionController::claim_deleted`] | |
//! | PV added / updated / resynced | PV name | `volumes` |
//! | PV deleted | forget the PV name | `volumes` |
//! | `claims` worker | [`ProvisionController::sync_claim`] | |
//! | `volumes` worker | [`ProvisionController::sync_volume`] | |
//! | `unsavedpvs` worker | [`ProvisionController::save_unsaved`] | |
//!
//! What the library keeps in memory — claims whose `CreateVolume` may still be running in the
//! driver ("in background") and created volumes whose PV could not be saved yet — it loses
//! when the process dies; a claim deleted meanwhile then leaks its volume. Here such a claim
//! also gets the finalizer [`PROVISIONING_FINALIZER`] (only on those rare paths: a normal
//! provision writes nothing more than upstream), so after a restart the terminating claim is
//! still seen, provisioned again (`CreateVolume` is idempotent by name) and its PV saved,
//! after which the finalizer goes and the PV controller releases the PV for deletion.

mod claims;
mod volumes;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use csi_controller::SlowSet;
use csi_kube::EventRecorder;
use csi_workqueue::WorkQueue;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use crate::csi::VolumeDriver;
use crate::kube::{Listers, ProvisionerApi};
use crate::metrics::ProvisionMetrics;
use crate::provision::ProvisionerConfig;
use crate::topology::TopologyMemo;

pub use claims::{ANN_ALPHA_SELECTED_NODE, SyncError};

/// The name of the claim queue (its `workqueue_*{name}` label), as the library's.
pub const CLAIM_QUEUE_NAME: &str = "claims";
/// The name of the PersistentVolume queue.
pub const VOLUME_QUEUE_NAME: &str = "volumes";
/// The name of the queue of PVs whose save failed.
pub const UNSAVED_QUEUE_NAME: &str = "unsavedpvs";
/// Workers saving PVs (the library's `DefaultThreadiness`).
pub const UNSAVED_WORKERS: usize = 4;
/// How often the library re-handles every claim and volume (its `DefaultResyncPeriod`).
pub const RESYNC_PERIOD: Duration = Duration::from_secs(15 * 60);

/// The finalizer that keeps a claim while a volume may exist for it in the driver without a
/// saved PV (its `CreateVolume` is running in the background, or its PV is not saved yet).
pub const PROVISIONING_FINALIZER: &str = "external-provisioner.volume.kubernetes.io/provisioning";

/// Event reasons, as upstream's.
pub mod reasons {
    /// Normal, before each provisioning attempt; also for a claim an external populator fills.
    pub const PROVISIONING: &str = "Provisioning";
    /// Warning, a provisioning attempt failed.
    pub const PROVISIONING_FAILED: &str = "ProvisioningFailed";
    /// Normal, the PV was saved.
    pub const PROVISIONING_SUCCEEDED: &str = "ProvisioningSucceeded";
    /// Normal, the volume is still attached: deletion waits.
    pub const VOLUME_DELETE: &str = "VolumeDelete";
    /// Warning, deleting the volume failed.
    pub const VOLUME_FAILED_DELETE: &str = "VolumeFailedDelete";
}

/// What the loop tells others about provisioning and deletion (capacity tracking refreshes
/// the capacity that probably changed; upstream wraps its provisioner for this).
pub trait ProvisionObserver: Send + Sync + fmt::Debug {
    /// A claim of `class` got its volume, `pv`.
    fn provisioned(&self, class: Option<&str>, pv: &PersistentVolume);
    /// Provisioning a claim of `class` failed, leaving `state`.
    fn provision_failed(&self, class: Option<&str>, state: crate::ProvisioningState);
    /// The volume of `pv` was deleted.
    fn deleted(&self, pv: &PersistentVolume);
}

impl ProvisionObserver for crate::capacity::CapacityRefresh {
    fn provisioned(&self, class: Option<&str>, pv: &PersistentVolume) {
        crate::capacity::CapacityRefresh::provisioned(self, class, pv);
    }

    fn provision_failed(&self, class: Option<&str>, state: crate::ProvisioningState) {
        crate::capacity::CapacityRefresh::provision_failed(self, class, state);
    }

    fn deleted(&self, pv: &PersistentVolume) {
        crate::capacity::CapacityRefresh::deleted(self, pv);
    }
}

/// Claim checks of `--node-deployment` (upstream's `checkNode`): whether this instance
/// provisions the claim, claiming Immediate ones for its node when it can.
pub trait NodeCheck: Send + Sync + fmt::Debug {
    /// `Ok(true)`: the claim's selected node is this node. `Ok(false)`: another node's, or not
    /// yet ours (this call may have tried to become its owner). `Err`: the check failed.
    fn check<'a>(
        &'a self,
        claim: &'a PersistentVolumeClaim,
    ) -> futures::future::BoxFuture<'a, Result<bool, String>>;
    /// The claim is gone: forget its claim delays.
    fn forget(&self, claim_uid: &str);
}

/// The loop's state and collaborators. Every method takes `&self`: workers share one.
pub struct ProvisionController {
    config: ProvisionerConfig,
    listers: Arc<dyn Listers>,
    api: Arc<dyn ProvisionerApi>,
    driver: Arc<dyn VolumeDriver>,
    events: Arc<dyn EventRecorder>,
    populator_events: Option<Arc<dyn EventRecorder>>,
    metrics: Option<ProvisionMetrics>,
    observer: Option<Arc<dyn ProvisionObserver>>,
    node_check: Option<Arc<dyn NodeCheck>>,
    data_sources: Option<Arc<crate::data_source::DataSources>>,
    unsaved_queue: WorkQueue<String>,
    memo: Mutex<TopologyMemo>,
    in_progress: Mutex<HashMap<String, Arc<PersistentVolumeClaim>>>,
    /// Claims (by UID) that failed as infeasible, with the StorageClass UID they failed with.
    slow: SlowSet,
    unsaved: Mutex<HashMap<String, PersistentVolume>>,
    deleted: Mutex<HashMap<String, Instant>>,
}

impl fmt::Debug for ProvisionController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvisionController")
            .field("driver", &self.config.driver_name)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything [`ProvisionController::new`] needs.
#[derive(Debug)]
pub struct Parts {
    /// The provisioner's settings.
    pub config: ProvisionerConfig,
    /// The caches.
    pub listers: Arc<dyn Listers>,
    /// The API.
    pub api: Arc<dyn ProvisionerApi>,
    /// The driver.
    pub driver: Arc<dyn VolumeDriver>,
    /// Events (the library's recorder: component `<driver>_<host>_<uuid>`).
    pub events: Arc<dyn EventRecorder>,
    /// external-provisioner's own recorder (component `external-provisioner`), for the one
    /// Event it records itself (a claim an external populator fills); `None`: `events`.
    pub populator_events: Option<Arc<dyn EventRecorder>>,
    /// The library's metrics, when served.
    pub metrics: Option<ProvisionMetrics>,
    /// Told about every created and deleted volume.
    pub observer: Option<Arc<dyn ProvisionObserver>>,
    /// `--node-deployment`'s claim check.
    pub node_check: Option<Arc<dyn NodeCheck>>,
    /// Data sources read from Kubernetes (snapshots, clones, cross-namespace sources, the
    /// source finalizers); without, clone sources come from the caches and snapshots fail.
    pub data_sources: Option<Arc<crate::data_source::DataSources>>,
    /// `--retry-interval-max`: how long an infeasible claim waits.
    pub retry_interval_max: Duration,
    /// The queue of PVs whose save failed ([`UNSAVED_QUEUE_NAME`]).
    pub unsaved_queue: WorkQueue<String>,
}

impl ProvisionController {
    /// The loop.
    pub fn new(parts: Parts) -> Self {
        ProvisionController {
            config: parts.config,
            listers: parts.listers,
            api: parts.api,
            driver: parts.driver,
            events: parts.events,
            populator_events: parts.populator_events,
            metrics: parts.metrics,
            observer: parts.observer,
            node_check: parts.node_check,
            data_sources: parts.data_sources,
            unsaved_queue: parts.unsaved_queue,
            memo: Mutex::new(TopologyMemo::new()),
            in_progress: Mutex::new(HashMap::new()),
            slow: SlowSet::new(parts.retry_interval_max),
            unsaved: Mutex::new(HashMap::new()),
            deleted: Mutex::new(HashMap::new()),
        }
    }

    /// The provisioner's settings.
    pub fn config(&self) -> &ProvisionerConfig {
        &self.config
    }

    /// The claim queue key of a PVC: its UID.
    pub fn claim_key(&self, claim: &PersistentVolumeClaim) -> Option<String> {
        claim.metadata.uid.clone()
    }

    /// A PVC was deleted. A claim still in progress stays (its `CreateVolume` may still be
    /// running: the retry must run so the volume gets a PV and is then deleted); otherwise its
    /// topology memory and node-deployment delays are forgotten.
    pub fn claim_deleted(&self, claim: &PersistentVolumeClaim) {
        let Some(uid) = claim.metadata.uid.as_deref() else {
            return;
        };
        if let Some(check) = &self.node_check {
            check.forget(uid);
        }
        if !lock(&self.in_progress).contains_key(uid) {
            lock(&self.memo).forget(uid);
        }
    }

    /// Whether a claim is in progress (its `CreateVolume` may be running in the driver).
    pub fn in_progress(&self, uid: &str) -> bool {
        lock(&self.in_progress).contains_key(uid)
    }

    /// How many created volumes wait for their PV to be saved.
    pub fn unsaved_count(&self) -> usize {
        lock(&self.unsaved).len()
    }
}

#[cfg(test)]
mod tests;
