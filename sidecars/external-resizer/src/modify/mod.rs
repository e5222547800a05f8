//! Volume modification (external-resizer v2.3.0's `pkg/modifier` and `pkg/modifycontroller`):
//! a bound PVC whose `spec.volumeAttributesClassName` names a class other than its
//! `status.currentVolumeAttributesClassName` has its volume modified with
//! `ControllerModifyVolume`, the class's parameters as mutable parameters.
//!
//! What the controller writes, as upstream:
//! - PVC `status.modifyVolumeStatus`: `Pending` while the class does not exist, `InProgress`
//!   while modifying (also after a failure that may still be under way in the driver),
//!   `Infeasible` after `InvalidArgument`; removed on success, when
//!   `status.currentVolumeAttributesClassName` becomes the target and the PV's
//!   `spec.volumeAttributesClassName` is set to it (the PV first);
//! - PVC conditions `ModifyingVolume` and `ModifyVolumeError` (the gRPC code and message);
//! - Events `VolumeModify`, `VolumeModifySuccessful`, `VolumeModifyFailed`,
//!   `VolumeModifyCanceled` on the PVC.
//!
//! Rules kept from upstream: a modification whose outcome is uncertain (a non-final gRPC
//! error, or `InProgress` found at start-up) keeps its target whatever the spec says until a
//! final answer; an infeasible target is retried only after `--retry-interval-max` unless the
//! spec changes; a spec set back to empty (roll back) stops the work and clears
//! `ModifyingVolume`.
//!
//! Modification is off when the driver lacks `MODIFY_VOLUME` ([`Modifier::new`] says
//! [`NewModifierError::NotSupported`]) or the API server does not serve
//! `storage.k8s.io/v1` VolumeAttributesClass ([`vac_gate`]): [`declare`] then declares nothing
//! and returns `None`, and the component runs without it (never an exit).
//!
//! Layout: [`kube`] (cache reads and API writes), [`csi`] (the driver call), [`modifier`]
//! (`pkg/modifier`), and private modules for upstream's `controller.go`, `modify_status.go`
//! and `modify_volume.go`.
//!
//! # Wiring
//!
//! Before the caches start, the component decides whether modification runs and declares its
//! watches; it builds the controller and runs it while it leads.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use external_resizer::modify::csi::CsiModifyDriver;
//! use external_resizer::kube::ApiClient;
//! use external_resizer::modify::modifier::{Modifier, NewModifierError};
//! use external_resizer::modify::{self, ModifyConfig, ModifyController, Parts, Support};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn wire(
//! #     client: kube::Client,
//! #     caches: &csi_kube::Caches,
//! #     connection: csi_connection::Connection,
//! #     shutdown: CancellationToken,
//! # ) -> anyhow::Result<()> {
//! let config = ModifyConfig::new("hostpath.csi.k8s.io");
//! let api = Arc::new(ApiClient::new(client.clone()));
//! let driver = Arc::new(CsiModifyDriver::new(connection));
//! let modifier = match Modifier::new(driver, api.clone(), config.timeout, &config.driver_name).await {
//!     Ok(modifier) => Some(Arc::new(modifier)),
//!     Err(NewModifierError::NotSupported) => None, // logged: "Modify not supported"
//!     Err(err) => return Err(err.into()),           // upstream exits here
//! };
//! let support = Support {
//!     driver_modify: modifier.is_some(),
//!     vac_api: modify::vac_gate(&client, None).await, // None: the gate was not set
//! };
//! let (Some(watches), Some(modifier)) = (modify::declare(caches, &config, support)?, modifier)
//! else {
//!     return Ok(()); // disabled: report it, run the other controllers
//! };
//! // ... every component declares, then the caches start ...
//! let events = Arc::new(csi_kube::Recorder::new(
//!     client,
//!     modify::event_component(&config.driver_name),
//!     "",
//! ));
//! let controller = ModifyController::new(
//!     watches,
//!     Parts { config, modifier, api, events, workqueue_metrics: None },
//! );
//! controller.run(shutdown).await; // while leading
//! # Ok(())
//! # }
//! ```

pub mod csi;
pub mod kube;
pub mod modifier;

mod controller;
mod status;
mod volume;

use std::sync::Arc;
use std::time::Duration;

use csi_controller::SlowSet;
use csi_kube::{Caches, Change, EventRecorder, Selector, Store, Subscription};
use csi_workqueue::{ItemExponentialFailureRateLimiter, QueueConfig, WorkQueue};
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::VolumeAttributesClass;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use self::controller::Inner;
use self::kube::{ModifyApi, StoreListers};
pub use self::modifier::{Modifier, NewModifierError};

/// Event reasons, as upstream's.
pub mod reasons {
    /// Normal, before `ControllerModifyVolume`.
    pub const VOLUME_MODIFY: &str = "VolumeModify";
    /// Warning, the modification failed (or the class does not exist).
    pub const VOLUME_MODIFY_FAILED: &str = "VolumeModifyFailed";
    /// Normal, the volume was modified.
    pub const VOLUME_MODIFY_SUCCESS: &str = "VolumeModifySuccessful";
    /// Normal, the spec was set back to empty while modifying.
    pub const VOLUME_MODIFY_CANCELLED: &str = "VolumeModifyCanceled";
}

/// `status.modifyVolumeStatus.status` values.
pub mod modify_status {
    /// The class does not exist (yet).
    pub const PENDING: &str = "Pending";
    /// Being modified, or the last attempt failed and will be retried.
    pub const IN_PROGRESS: &str = "InProgress";
    /// The driver refused the class's parameters (`InvalidArgument`).
    pub const INFEASIBLE: &str = "Infeasible";
}

/// PVC condition types written by modification.
pub mod conditions {
    /// A modification is under way (or waits for a retry).
    pub const MODIFYING_VOLUME: &str = "ModifyingVolume";
    /// The last `ControllerModifyVolume` failed.
    pub const MODIFY_VOLUME_ERROR: &str = "ModifyVolumeError";
}

/// The settings of modification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifyConfig {
    /// The CSI driver's name: only PVs of this driver are modified; it names the queue
    /// (`<driver>-pvc`) and the Event source.
    pub driver_name: String,
    /// The `ControllerModifyVolume` timeout: `--modify-timeout` (10s), or `--timeout` when
    /// that is set explicitly.
    pub timeout: Duration,
    /// `--workers` (10).
    pub workers: usize,
    /// `--retry-interval-start` (1s): the first backoff of a failed PVC.
    pub retry_interval_start: Duration,
    /// `--retry-interval-max` (5m): the longest backoff, and how long an infeasible PVC waits.
    pub retry_interval_max: Duration,
    /// `--extra-modify-metadata`: add `csi.storage.k8s.io/pvc/name`, `…/pvc/namespace` and
    /// `…/pv/name` to the mutable parameters.
    pub extra_modify_metadata: bool,
    /// `--resync-period` (10m): every PVC is handled again this often; zero turns it off.
    pub resync: Duration,
}

impl ModifyConfig {
    /// Upstream's defaults for `driver_name`.
    pub fn new(driver_name: impl Into<String>) -> Self {
        ModifyConfig {
            driver_name: driver_name.into(),
            timeout: Duration::from_secs(10),
            workers: 10,
            retry_interval_start: Duration::from_secs(1),
            retry_interval_max: Duration::from_secs(5 * 60),
            extra_modify_metadata: false,
            resync: Duration::from_secs(10 * 60),
        }
    }

    /// The name of the PVC queue (its `workqueue_*{name}` label), as upstream's.
    pub fn queue_name(&self) -> String {
        format!("{}-pvc", self.driver_name)
    }
}

/// The Event source component of the controller: `external-resizer <driver>`.
pub fn event_component(driver_name: &str) -> String {
    format!("external-resizer {driver_name}")
}

/// What modification needs from the driver and the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Support {
    /// The driver reports `MODIFY_VOLUME`.
    pub driver_modify: bool,
    /// The VolumeAttributesClass gate is on: set so, or (not set) the API server serves
    /// `storage.k8s.io/v1` VolumeAttributesClass ([`vac_gate`]).
    pub vac_api: bool,
}

impl Support {
    /// Why modification is off, or `None` when it runs.
    pub fn disabled_reason(&self) -> Option<&'static str> {
        if !self.driver_modify {
            Some("CSI driver does not support controller modify")
        } else if !self.vac_api {
            Some("the VolumeAttributesClass feature gate is off")
        } else {
            None
        }
    }
}

/// Whether the API server serves `storage.k8s.io/v1` VolumeAttributesClass (upstream's
/// `IsVolumeAttributesClassV1Enabled`): a 404 for the group version is `false`.
pub async fn vac_api_served(client: &::kube::Client) -> Result<bool, csi_controller::ApiError> {
    match client.list_api_group_resources("storage.k8s.io/v1").await {
        Ok(list) => Ok(list
            .resources
            .iter()
            .any(|r| r.kind == "VolumeAttributesClass")),
        Err(err) => {
            let err = csi_controller::ApiError::from(err);
            if err.is_not_found() {
                Ok(false)
            } else {
                Err(err)
            }
        }
    }
}

/// The VolumeAttributesClass gate as upstream's `main` settles it: `explicitly_set` when the
/// gate was given in `--feature-gates`, else whether the API serves the class
/// ([`vac_api_served`]); a failed discovery is logged and leaves the gate on (its default).
pub async fn vac_gate(client: &::kube::Client, explicitly_set: Option<bool>) -> bool {
    if let Some(value) = explicitly_set {
        return value;
    }
    match vac_api_served(client).await {
        Err(err) => {
            error!(%err, "Failed to check VolumeAttributesClass V1 API availability");
            true
        }
        Ok(true) => {
            info!("VolumeAttributesClass v1 API is available");
            true
        }
        Ok(false) => {
            info!(
                "Disabling VolumeAttributesClass feature gate because the VolumeAttributesClass v1 API is not available"
            );
            false
        }
    }
}

/// The watches of modification, declared before the caches start.
#[derive(Debug)]
pub struct Watches {
    /// PVCs, with handlers (and the resync).
    pub claims: Subscription<PersistentVolumeClaim>,
    /// PVs (a store only).
    pub volumes: Store<PersistentVolume>,
    /// VolumeAttributesClasses (a store only: classes are immutable, and a PVC waiting for
    /// its class is handled again at the PVC resync).
    pub classes: Store<VolumeAttributesClass>,
}

/// Declares the watches of modification on the shared caches — PVCs (resynced every
/// `config.resync`), PVs and VolumeAttributesClasses, all cluster-wide — or nothing, and
/// `None`, when `support` says modification is off.
pub fn declare(
    caches: &Caches,
    config: &ModifyConfig,
    support: Support,
) -> Result<Option<Watches>, csi_kube::cache::Error> {
    if support.disabled_reason().is_some() {
        return Ok(None);
    }
    let all = Selector::all();
    Ok(Some(Watches {
        claims: caches
            .subscribe::<PersistentVolumeClaim>(&all)?
            .with_resync(config.resync),
        volumes: caches.store::<PersistentVolume>(&all)?,
        classes: caches.store::<VolumeAttributesClass>(&all)?,
    }))
}

/// Why handling a PVC failed; its key is queued again with backoff.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModifyError {
    /// `ControllerModifyVolume` answered with a gRPC status.
    #[error("{}", csi_connection::format_status(.0))]
    Csi(tonic::Status),
    /// The PVC's modification was infeasible recently and is not tried again yet
    /// (upstream's `DelayRetryError`).
    #[error("{message}")]
    DelayRetry {
        /// upstream's message.
        message: String,
        /// When the PVC may be tried again.
        try_after: Duration,
    },
    /// Anything else (a cache miss, a failed patch, a modifier error), with upstream's message.
    #[error("{0}")]
    Other(String),
}

impl ModifyError {
    /// The gRPC status, when the driver answered with one (upstream's `status.FromError`).
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            ModifyError::Csi(status) => Some(status),
            _ => None,
        }
    }
}

/// Whether `err` is final: a gRPC status with a final code. Other errors happened before the
/// call or say nothing of it, so it may still run.
pub(crate) fn is_final(err: &ModifyError) -> bool {
    err.status()
        .is_some_and(|s| csi_connection::is_final_code(s.code()))
}

/// Everything [`ModifyController::new`] needs besides the watches.
#[derive(Debug)]
pub struct Parts {
    /// The settings.
    pub config: ModifyConfig,
    /// The modifier (made only when the driver supports modification).
    pub modifier: Arc<Modifier>,
    /// The API.
    pub api: Arc<dyn ModifyApi>,
    /// Events (a [`csi_kube::Recorder`] with component [`event_component`]).
    pub events: Arc<dyn EventRecorder>,
    /// Where the PVC queue reports its `workqueue_*` metrics.
    pub workqueue_metrics: Option<csi_workqueue::Metrics>,
}

/// The modify controller (upstream's `modifyController`): built from the declared watches,
/// run while the replica leads.
#[derive(Debug)]
pub struct ModifyController {
    inner: Arc<Inner>,
    watches: Watches,
}

/// How often expired entries leave the infeasible set (they stop counting at once).
const SLOW_SET_SWEEP: Duration = Duration::from_secs(1);

impl ModifyController {
    /// The controller over `watches`.
    pub fn new(watches: Watches, parts: Parts) -> Self {
        let listers = Arc::new(StoreListers {
            claims: watches.claims.store(),
            volumes: watches.volumes.clone(),
            classes: watches.classes.clone(),
        });
        let inner = Inner::new(parts.config.clone(), &parts, listers);
        ModifyController {
            inner: Arc::new(inner),
            watches,
        }
    }

    /// Runs until `shutdown`: waits for the caches, takes every PVC found `InProgress` as
    /// uncertain, then handles PVC changes with `config.workers` workers.
    pub async fn run(self, shutdown: CancellationToken) {
        let ModifyController { inner, watches } = self;
        info!(controller = %inner.config.driver_name, "Starting external resizer for modify volume");
        let claims = watches.claims.store();
        tokio::select! {
            () = shutdown.cancelled() => {
                info!(controller = %inner.config.driver_name, "Shutting down external resizer");
                return;
            }
            _ = futures::future::join3(
                claims.wait_until_ready(),
                watches.volumes.wait_until_ready(),
                watches.classes.wait_until_ready(),
            ) => {}
        }
        inner.init_uncertain_pvcs();
        run_loop(inner.clone(), watches.claims.events(), shutdown).await;
        info!(controller = %inner.config.driver_name, "Shutting down external resizer");
    }
}

/// Feeds PVC changes to the queue, runs the workers and sweeps the infeasible set until
/// `shutdown`.
async fn run_loop(
    inner: Arc<Inner>,
    changes: impl Stream<Item = Change<PersistentVolumeClaim>> + Send + 'static,
    shutdown: CancellationToken,
) {
    let feed = {
        let inner = inner.clone();
        let shutdown = shutdown.clone();
        async move {
            let mut changes = std::pin::pin!(changes);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    change = changes.next() => match change {
                        None => return,
                        Some(Change::Added(pvc)) => inner.add_pvc(&pvc),
                        Some(Change::Updated { old, new }) => inner.update_pvc(&old, &new),
                        Some(Change::Deleted { last, .. }) => inner.delete_pvc(&last),
                    },
                }
            }
        }
    };
    let sweep = {
        let inner = inner.clone();
        let shutdown = shutdown.clone();
        async move {
            let mut tick = tokio::time::interval(SLOW_SET_SWEEP);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => inner.slow_set.remove_expired(),
                }
            }
        }
    };
    let workers = {
        let worker_inner = inner.clone();
        csi_workqueue::run_workers(
            inner.queue.clone(),
            inner.config.workers.max(1),
            shutdown.clone(),
            move |key: String| {
                let inner = worker_inner.clone();
                async move { inner.sync(&key).await }
            },
        )
    };
    futures::future::join3(feed, sweep, workers).await;
}

fn new_queue(config: &ModifyConfig, metrics: Option<&csi_workqueue::Metrics>) -> WorkQueue<String> {
    let mut queue_config = QueueConfig::new(config.queue_name());
    if let Some(metrics) = metrics {
        queue_config = queue_config.metrics(metrics);
    }
    WorkQueue::with_config(
        ItemExponentialFailureRateLimiter::<String>::new(
            config.retry_interval_start,
            config.retry_interval_max,
        ),
        queue_config,
    )
}

fn new_slow_set(config: &ModifyConfig) -> SlowSet {
    SlowSet::new(config.retry_interval_max)
}

#[cfg(test)]
mod tests;
