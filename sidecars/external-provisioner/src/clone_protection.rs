//! The cloning-protection controller (upstream's `CloningProtectionController`): removes
//! [`CLONE_FINALIZER`] from a source PVC that is being deleted once no claim in its
//! namespace is still `Pending` with it as `spec.dataSource` (a clone in progress).
//!
//! Provisioning adds the finalizer ([`DataSources::add_finalizer`](crate::data_source::DataSources::add_finalizer)).
//! This controller runs only when the driver has `CLONE_VOLUME`, with
//! `--cloning-protection-threads` workers on its own `claims` queue (backoff
//! `--retry-interval-start` to `--retry-interval-max`), fed by the shared PVC watch with a
//! 15-minute resync, as upstream registers its handler.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use external_provisioner::clone_protection::*;
//! # use external_provisioner::data_source::KubeDataSourceClient;
//! # async fn example(caches: csi_kube::Caches, client: kube::Client, shutdown: tokio_util::sync::CancellationToken)
//! # -> Result<(), csi_kube::cache::Error> {
//! let config = CloningProtectionConfig::default(); // threads, retry interval start / max
//! let clone_volume = true; // the driver's CLONE_VOLUME capability
//! // In the component's init, before the caches start:
//! if let Some(controller) = CloningProtection::declare(
//!     &caches,
//!     clone_volume,
//!     config,
//!     Arc::new(KubeDataSourceClient::new(client, "csi-provisioner")),
//!     None, // the workqueue metrics
//! )? {
//!     // While leading, once the caches synced:
//!     controller.run(shutdown).await;
//! }
//! # Ok(()) }
//! ```
//!
//! Upstream's limits are kept: only same-namespace clones named by `spec.dataSource` hold the
//! finalizer back (a cross-namespace clone names its source only in `dataSourceRef`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use csi_controller::ApiError;
use csi_controller::finalizer::remove_finalizer_patch;
use csi_kube::{Caches, Change, Selector, Store, Subscription, key_of};
use csi_workqueue::{ItemExponentialFailureRateLimiter, Metrics, Outcome, QueueConfig, WorkQueue};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::data_source::{CLONE_FINALIZER, DataSourceClient, PVC_KIND};

/// The queue's name (upstream's, for the `workqueue_*` metrics).
pub const QUEUE_NAME: &str = "claims";
/// How often every claim is looked at again (the library's `DefaultResyncPeriod`).
pub const RESYNC_PERIOD: Duration = Duration::from_secs(15 * 60);
/// The index of claims by the `namespace/name` of the PVC they clone.
pub const CLONE_SOURCE_INDEX: &str = "external-provisioner.clone-source";

/// Why a source PVC keeps its finalizer for now (the claim is retried with backoff).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloneProtectionError {
    /// A clone of it is still `Pending`.
    #[error("PVC '{0}' is in 'Pending' state, cloning in progress")]
    CloneInProgress(String),
    /// The finalizer could not be removed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The cached reads of the controller.
pub trait CloneLister: Send + Sync + fmt::Debug {
    /// A claim by namespace and name.
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>>;
    /// The claims in `namespace` whose `spec.dataSource` is the PVC `name`.
    fn clones_of(&self, namespace: &str, name: &str) -> Vec<Arc<PersistentVolumeClaim>>;
}

/// [`CloneLister`] over the shared PVC cache with the [`CLONE_SOURCE_INDEX`] index.
#[derive(Clone, Debug)]
pub struct StoreCloneLister {
    claims: Store<PersistentVolumeClaim>,
}

impl CloneLister for StoreCloneLister {
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.get_key(&format!("{namespace}/{name}"))
    }

    fn clones_of(&self, namespace: &str, name: &str) -> Vec<Arc<PersistentVolumeClaim>> {
        self.claims
            .by_index(CLONE_SOURCE_INDEX, &format!("{namespace}/{name}"))
            .unwrap_or_default()
    }
}

/// The `namespace/name` of the PVC a claim clones (by `spec.dataSource`), for the index.
pub fn clone_source_key(claim: &PersistentVolumeClaim) -> Vec<String> {
    let source = claim.spec.as_ref().and_then(|s| s.data_source.as_ref());
    match source {
        Some(source) if source.kind == PVC_KIND => vec![format!(
            "{}/{}",
            claim.metadata.namespace.as_deref().unwrap_or_default(),
            source.name
        )],
        _ => Vec::new(),
    }
}

/// Upstream's `enqueueClaimUpdate`: a claim being deleted is queued; others are not.
pub fn enqueue(queue: &WorkQueue<String>, claim: &PersistentVolumeClaim) {
    if claim.metadata.deletion_timestamp.is_some() {
        queue.add(key_of(claim));
    }
}

/// Upstream's `syncClaim`: removes [`CLONE_FINALIZER`] from `claim` unless a claim cloning it
/// is still `Pending` (then an error, and the claim is retried). A claim that is gone when
/// patched is fine.
pub async fn sync_claim(
    lister: &dyn CloneLister,
    client: &dyn DataSourceClient,
    claim: &PersistentVolumeClaim,
) -> Result<(), CloneProtectionError> {
    let finalizers = claim.metadata.finalizers.as_deref();
    let Some(patch) = remove_finalizer_patch(finalizers, CLONE_FINALIZER) else {
        return Ok(());
    };
    let namespace = claim.metadata.namespace.clone().unwrap_or_default();
    let name = claim.metadata.name.clone().unwrap_or_default();
    let mut clones = lister.clones_of(&namespace, &name);
    clones.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for clone in clones {
        let phase = clone.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Pending") {
            return Err(CloneProtectionError::CloneInProgress(
                clone.metadata.name.clone().unwrap_or_default(),
            ));
        }
    }
    match client.patch_claim(&namespace, &name, &patch).await {
        Ok(_) => Ok(()),
        Err(error) if error.is_not_found() => Ok(()),
        Err(error) => {
            info!("failed to remove clone finalizer from PVC {name}");
            Err(error.into())
        }
    }
}

/// The settings of the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloningProtectionConfig {
    /// `--cloning-protection-threads` (default 1).
    pub threads: usize,
    /// `--retry-interval-start` (default 1s).
    pub retry_interval_start: Duration,
    /// `--retry-interval-max` (default 5m).
    pub retry_interval_max: Duration,
}

impl Default for CloningProtectionConfig {
    fn default() -> Self {
        CloningProtectionConfig {
            threads: 1,
            retry_interval_start: Duration::from_secs(1),
            retry_interval_max: Duration::from_secs(300),
        }
    }
}

/// The cloning-protection controller, declared and ready to run (see the [module
/// documentation](self)).
#[derive(Debug)]
pub struct CloningProtection {
    events: Subscription<PersistentVolumeClaim>,
    lister: Arc<dyn CloneLister>,
    client: Arc<dyn DataSourceClient>,
    queue: WorkQueue<String>,
    threads: usize,
}

impl CloningProtection {
    /// Declares the PVC watch (with its resync) and the clone-source index on `caches`, and
    /// makes the queue. `None` without `clone_volume` (the driver's `CLONE_VOLUME`): upstream
    /// then has no such controller.
    pub fn declare(
        caches: &Caches,
        clone_volume: bool,
        config: CloningProtectionConfig,
        client: Arc<dyn DataSourceClient>,
        metrics: Option<&Metrics>,
    ) -> Result<Option<Self>, csi_kube::cache::Error> {
        if !clone_volume {
            return Ok(None);
        }
        let all = Selector::all();
        let events = caches
            .subscribe::<PersistentVolumeClaim>(&all)?
            .with_resync(RESYNC_PERIOD);
        match caches.index::<PersistentVolumeClaim, _>(&all, CLONE_SOURCE_INDEX, clone_source_key) {
            // Declared by an earlier instance of this controller: the same function.
            Ok(()) | Err(csi_kube::cache::Error::IndexConflict { .. }) => {}
            Err(error) => return Err(error),
        }
        let lister = Arc::new(StoreCloneLister {
            claims: events.store(),
        });
        let queue_config = QueueConfig::new(QUEUE_NAME);
        let queue_config = match metrics {
            Some(metrics) => queue_config.metrics(metrics),
            None => queue_config,
        };
        let queue = WorkQueue::with_config(
            ItemExponentialFailureRateLimiter::new(
                config.retry_interval_start,
                config.retry_interval_max,
            ),
            queue_config,
        );
        Ok(Some(CloningProtection {
            events,
            lister,
            client,
            queue,
            threads: config.threads.max(1),
        }))
    }

    /// Runs the controller until `shutdown`: queues every claim being deleted (on add, update
    /// and resync) and syncs them with the workers.
    pub async fn run(self, shutdown: CancellationToken) {
        info!("Starting CloningProtection controller");
        let CloningProtection {
            events,
            lister,
            client,
            queue,
            threads,
        } = self;
        let feed = {
            let queue = queue.clone();
            let shutdown = shutdown.clone();
            async move {
                let mut events = std::pin::pin!(events.events());
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        change = events.next() => match change {
                            None => return,
                            Some(Change::Added(claim)) => enqueue(&queue, &claim),
                            Some(Change::Updated { new, .. }) => enqueue(&queue, &new),
                            Some(Change::Deleted { .. }) => {}
                        },
                    }
                }
            }
        };
        let workers = csi_workqueue::run_workers(queue.clone(), threads, shutdown, {
            let queue = queue.clone();
            move |key: String| {
                let (lister, client, queue) = (lister.clone(), client.clone(), queue.clone());
                async move { sync_key(&*lister, &*client, &queue, key).await }
            }
        });
        info!("Started CloningProtection controller");
        tokio::join!(feed, workers);
        info!("Shutting down CloningProtection controller");
    }
}

/// Upstream's `syncClaimHandler` and the retry in `processNextClaimWorkItem`.
async fn sync_key(
    lister: &dyn CloneLister,
    client: &dyn DataSourceClient,
    queue: &WorkQueue<String>,
    key: String,
) -> Outcome {
    let Some((namespace, name)) = key.split_once('/') else {
        warn!("invalid resource key: {key}");
        return Outcome::Forget;
    };
    let Some(claim) = lister.claim(namespace, name) else {
        warn!("item '{key}' in work queue no longer exists");
        return Outcome::Forget;
    };
    match sync_claim(lister, client, &claim).await {
        Ok(()) => Outcome::Forget,
        Err(error) => {
            warn!(
                "Retrying to sync claim {key:?} after {} failures: {error}",
                queue.num_requeues(&key)
            );
            Outcome::Requeue
        }
    }
}
