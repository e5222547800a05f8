//! Volume expansion (upstream v2.3.0's `pkg/resizer`, `pkg/controller`, `pkg/util`): PVCs
//! bound to this driver's PVs whose requested size grew are expanded with
//! `ControllerExpandVolume` (or, for a driver that expands only on the node, handed to the
//! kubelet with `FileSystemResizePending`), the PV's capacity is updated, and a failed
//! expansion can be recovered from by lowering the request (always on since v2.3.0).
//!
//! - [`resizer`]: what expands one volume ([`new_resizer`] checks the driver's capabilities).
//! - [`controller`]: what one PVC key leads to ([`Reconciler`]), and which claim changes queue
//!   one ([`controller::should_enqueue_update`]).
//! - [`inuse`]: `--handle-volume-inuse-error`'s claims in use, from a compact Pod watch.
//! - [`kube`], [`csi`]: the Kubernetes and CSI calls, behind traits; [`util`]: upstream's
//!   helpers (conditions, patches, sizes, error classes).
//!
//! This module owns the watches it declares and its queue (`<driver>-pvc`) and workers. It
//! does not own flags, the driver connection, the Event recorder or leader election: the
//! component hands those in.
//!
//! # Wiring
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::time::Duration;
//! # use csi_kube::Caches;
//! # use external_resizer::kube::ApiClient;
//! # use external_resizer::resize::*;
//! # async fn wire(caches: Caches, client: ::kube::Client, connection: csi_connection::Connection,
//! #     shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
//! let driver = "hostpath.csi.k8s.io".to_string(); // GetPluginInfo
//! let config = ResizeConfig {
//!     driver_name: driver.clone(),
//!     timeout: Duration::from_secs(10), // --resize-timeout (an explicit --timeout wins)
//!     workers: 10,                        // --workers
//!     retry_interval_start: Duration::from_secs(1), // --retry-interval-start
//!     retry_interval_max: Duration::from_secs(300), // --retry-interval-max
//!     handle_volume_inuse_error: true,    // --handle-volume-inuse-error
//!     resync_period: Duration::from_secs(600), // --resync-period
//!     annotate_fs_resize: true,           // --feature-gates AnnotateFsResize (Beta, on)
//! };
//! // Before the caches start:
//! let watches = declare(&caches, &config)?;
//! // After the driver answered (`None`: ResizeNotSupported, run without expansion):
//! let api = Arc::new(ApiClient::new(client.clone()));
//! let resizer = new_resizer(
//!     Arc::new(CsiExpandDriver::new(connection)),
//!     api.clone(),
//!     &driver,
//!     config.timeout,
//! )
//! .await?;
//! let controller = ResizeController::new(
//!     config,
//!     watches,
//!     Parts {
//!         resizer,
//!         api,
//!         events: Arc::new(csi_kube::Recorder::new(
//!             client,
//!             format!("external-resizer {driver}"),
//!             "",
//!         )),
//!         workqueue_metrics: None,
//!     },
//! );
//! controller.run(shutdown).await;
//! # Ok(()) }
//! ```

pub mod controller;
pub mod csi;
pub mod inuse;
pub mod kube;
pub mod resizer;
pub mod util;

use std::sync::Arc;
use std::time::Duration;

use csi_kube::{Caches, Change, EventRecorder, Selector, Store, Subscription};
use csi_workqueue::{ItemExponentialFailureRateLimiter, QueueConfig, WorkQueue};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use controller::{Reconciler, ReconcilerParts, SyncError};
pub use csi::{CsiError, CsiExpandDriver, ExpandDriver};
pub use inuse::{InUseClaims, PodClaims};
pub use kube::{Listers, ResizerApi, StoreListers};
pub use resizer::{NewResizerError, Resizer, new_resizer};

/// The settings of expansion, from the flags.
#[derive(Debug, Clone)]
pub struct ResizeConfig {
    /// The CSI driver's name (the resizer's and the queue's name).
    pub driver_name: String,
    /// `--resize-timeout` (default 10s; an explicitly set `--timeout` overrides it): the
    /// deadline of each `ControllerExpandVolume` and capability check.
    pub timeout: Duration,
    /// `--workers`: claims expanded at once.
    pub workers: usize,
    /// `--retry-interval-start`: the first backoff of a failed claim.
    pub retry_interval_start: Duration,
    /// `--retry-interval-max`: the longest backoff, and how long an infeasible expansion waits.
    pub retry_interval_max: Duration,
    /// `--handle-volume-inuse-error`: watch Pods, and do not retry an expansion that failed
    /// because the volume is in use while it still is.
    pub handle_volume_inuse_error: bool,
    /// `--resync-period`: every claim handled again this often.
    pub resync_period: Duration,
    /// The AnnotateFsResize feature gate: the PV keeps the claim's pre-expansion capacity
    /// while the node grows the file system.
    pub annotate_fs_resize: bool,
}

/// The watches expansion declared; [`ResizeController::new`] takes them.
#[derive(Debug)]
pub struct Watches {
    /// PVCs, with the resync period.
    pub claims: Subscription<PersistentVolumeClaim>,
    /// PVs (read only).
    pub volumes: Store<PersistentVolume>,
    /// Pods, compact, when `--handle-volume-inuse-error` is on.
    pub pods: Option<Subscription<PodClaims>>,
}

/// Declares expansion's watches on the shared caches (before they start): PVCs (with the
/// handlers and `--resync-period`), PVs, and — only with `--handle-volume-inuse-error` —
/// Pods, decoded as [`PodClaims`].
pub fn declare(caches: &Caches, config: &ResizeConfig) -> Result<Watches, csi_kube::cache::Error> {
    let all = Selector::all();
    let claims = caches
        .subscribe::<PersistentVolumeClaim>(&all)?
        .with_resync(config.resync_period);
    let volumes = caches.store::<PersistentVolume>(&all)?;
    let pods = if config.handle_volume_inuse_error {
        info!(controller = %config.driver_name, "Register Pod informer for resizer");
        Some(caches.subscribe::<PodClaims>(&all)?)
    } else {
        None
    };
    Ok(Watches {
        claims,
        volumes,
        pods,
    })
}

/// The queue's name (its `workqueue_*{name}` label): `<driver>-pvc`, as upstream's.
pub fn queue_name(driver: &str) -> String {
    format!("{driver}-pvc")
}

/// What [`ResizeController::new`] needs besides the config and the watches.
#[derive(Debug, Clone)]
pub struct Parts {
    /// The resizer ([`new_resizer`]).
    pub resizer: Arc<dyn Resizer>,
    /// The API (a [`crate::kube::ApiClient`]).
    pub api: Arc<dyn ResizerApi>,
    /// Events (a `Recorder` with component `external-resizer <driver>`).
    pub events: Arc<dyn EventRecorder>,
    /// The process's work queue metrics, when served.
    pub workqueue_metrics: Option<csi_workqueue::Metrics>,
}

/// The resize controller: feeds claim changes into the queue, keeps the claims in use, and
/// runs the workers.
#[derive(Debug)]
pub struct ResizeController {
    config: ResizeConfig,
    watches: Watches,
    reconciler: Arc<Reconciler>,
    in_use: Arc<InUseClaims>,
    queue: WorkQueue<String>,
}

impl ResizeController {
    /// The controller over `watches` (from [`declare`]).
    pub fn new(config: ResizeConfig, watches: Watches, parts: Parts) -> Self {
        let in_use = Arc::new(InUseClaims::new());
        let listers = Arc::new(StoreListers {
            claims: watches.claims.store(),
            volumes: watches.volumes.clone(),
        });
        let reconciler = Arc::new(Reconciler::new(ReconcilerParts {
            name: config.driver_name.clone(),
            resizer: parts.resizer,
            listers,
            api: parts.api,
            events: parts.events,
            in_use: in_use.clone(),
            annotate_fs_resize: config.annotate_fs_resize,
            retry_interval_max: config.retry_interval_max,
        }));
        let mut queue_config = QueueConfig::new(queue_name(&config.driver_name));
        if let Some(metrics) = &parts.workqueue_metrics {
            queue_config = queue_config.metrics(metrics);
        }
        let queue = WorkQueue::with_config(
            ItemExponentialFailureRateLimiter::<String>::new(
                config.retry_interval_start,
                config.retry_interval_max,
            ),
            queue_config,
        );
        ResizeController {
            config,
            watches,
            reconciler,
            in_use,
            queue,
        }
    }

    /// Runs until `shutdown`: waits for the caches, then handles claims with `workers`
    /// workers.
    pub async fn run(self, shutdown: CancellationToken) {
        info!(controller = %self.config.driver_name, "Starting external resizer");
        let claims = self.watches.claims.store();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = async {
                claims.wait_until_ready().await;
                self.watches.volumes.wait_until_ready().await;
                if let Some(pods) = &self.watches.pods {
                    pods.store().wait_until_ready().await;
                }
            } => {}
        }
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(feed_claims(
            self.watches.claims.events(),
            self.queue.clone(),
            self.reconciler.clone(),
            shutdown.clone(),
        ));
        if let Some(pods) = &self.watches.pods {
            tasks.spawn(feed_pods(
                pods.events(),
                self.in_use.clone(),
                shutdown.clone(),
            ));
        }
        let reconciler = self.reconciler.clone();
        let queue = self.queue.clone();
        csi_workqueue::run_workers(
            self.queue.clone(),
            self.config.workers.max(1),
            shutdown.clone(),
            move |key: String| {
                let reconciler = reconciler.clone();
                let queue = queue.clone();
                async move {
                    match reconciler.sync_pvc(&key).await {
                        Ok(()) => csi_workqueue::Outcome::Forget,
                        Err(SyncError::DelayRetry { after, .. }) => {
                            // Upstream's AddAfter: the backoff is left as it is.
                            queue.add_after(key, after);
                            csi_workqueue::Outcome::Done
                        }
                        Err(SyncError::Failed(err)) => {
                            tracing::error!(%err, "Error syncing PVC");
                            csi_workqueue::Outcome::Requeue
                        }
                    }
                }
            },
        )
        .await;
        tasks.shutdown().await;
        info!(controller = %self.config.driver_name, "Shutting down external resizer");
    }
}

/// Upstream's PVC handlers: add queues the claim, update queues it when
/// [`controller::should_enqueue_update`] says so, delete forgets its backoff and what failed
/// attempts left ([`Reconciler::forget_claim`]).
async fn feed_claims(
    events: csi_kube::Events<PersistentVolumeClaim>,
    queue: WorkQueue<String>,
    reconciler: Arc<Reconciler>,
    shutdown: CancellationToken,
) {
    let mut events = std::pin::pin!(events);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            change = events.next() => match change {
                None => return,
                Some(Change::Added(claim)) => queue.add(csi_kube::key_of(&*claim)),
                Some(Change::Updated { old, new }) => {
                    if controller::should_enqueue_update(&old, &new) {
                        queue.add(csi_kube::key_of(&*new));
                    }
                }
                Some(Change::Deleted { last, .. }) => {
                    let key = csi_kube::key_of(&*last);
                    queue.forget(&key);
                    reconciler.forget_claim(&key, last.metadata.uid.as_deref().unwrap_or_default());
                }
            },
        }
    }
}

/// Upstream's Pod handlers: a Pod's claims are in use until it terminates or goes.
async fn feed_pods(
    events: csi_kube::Events<PodClaims>,
    in_use: Arc<InUseClaims>,
    shutdown: CancellationToken,
) {
    let mut events = std::pin::pin!(events);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            change = events.next() => match change {
                None => return,
                Some(Change::Added(pod)) => in_use.add_pod(&pod),
                Some(Change::Updated { new, .. }) => {
                    if new.is_terminated() {
                        in_use.remove_pod(&new);
                    } else {
                        in_use.add_pod(&new);
                    }
                }
                Some(Change::Deleted { last, .. }) => in_use.remove_pod(&last),
            },
        }
    }
}

#[cfg(test)]
mod tests;
