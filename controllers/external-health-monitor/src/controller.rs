//! Upstream's `PVMonitorController` (`pkg/controller/pv_monitor_controller.go`,
//! `event_handler.go`): which volumes are checked, how often, by whom.
//!
//! - A driver with LIST_VOLUME_HEALTH (CSI 1.13), or else LIST_VOLUMES with VOLUME_CONDITION
//!   (CSI <= 1.12): one `ControllerListVolumeHealth` / `ListVolumes` sweep every
//!   `--list-volumes-interval`.
//! - Otherwise (GET_VOLUME_HEALTH, or GET_VOLUME with VOLUME_CONDITION): bound PVs of this
//!   driver go into the queue `csi-monitor-pv-queue` when they are added and every
//!   `--volume-list-add-interval`; each of `--worker-threads` workers takes one, calls
//!   `ControllerGetVolumeHealth` / `ControllerGetVolume`, puts it back, and waits
//!   `--monitor-interval`.
//! - With `--enable-node-watcher`: Pods and Nodes are watched too ([`crate::node_watcher`]);
//!   a Node change (and, every `--node-list-add-interval`, every Node) goes into the queue
//!   `nodes`.
//!
//! Watches: PVs (handler), claims (lister), and with the node watcher Pods and Nodes: two to
//! four streams. Upstream also watches every Event of the cluster; see [`crate::health`] for
//! why this one does not.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use csi_kube::{Caches, Change, Selector, Store, Subscription};
use csi_workqueue::{QueueConfig, WorkQueue};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

use crate::checker::{Listers, PvHealthChecker, is_bound, is_managed};
use crate::csi::HealthMode;
use crate::node_watcher::{NodeWatcher, PodOnNode, PvcToPodsCache};

/// The PV queue's name.
pub const PV_QUEUE: &str = "csi-monitor-pv-queue";
/// The node queue's name.
pub const NODE_QUEUE: &str = "nodes";

/// The controller's settings, from the flags and the driver's capabilities.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// The driver's name.
    pub driver_name: String,
    /// `--enable-node-watcher`.
    pub enable_node_watcher: bool,
    /// Which RPCs the driver is asked ([`HealthMode::is_list`]: sweeps, else per-PV workers).
    pub mode: HealthMode,
    /// `--list-volumes-interval`.
    pub list_volumes_interval: Duration,
    /// `--monitor-interval`: each PV worker's and the node worker's pause.
    pub monitor_interval: Duration,
    /// `--volume-list-add-interval`.
    pub volume_list_add_interval: Duration,
    /// `--node-list-add-interval`.
    pub node_list_add_interval: Duration,
    /// `--worker-threads`.
    pub workers: usize,
    /// `--resync`: Nodes are delivered again this often (the only handler upstream's resync
    /// reaches: the PV handler handles additions only).
    pub resync: Duration,
}

/// The watches the controller declared.
#[derive(Debug)]
pub struct Watches {
    /// PVs.
    pub volumes: Subscription<PersistentVolume>,
    /// Claims (read only).
    pub claims: Store<PersistentVolumeClaim>,
    /// Pods, compact, with the node watcher.
    pub pods: Option<Subscription<PodOnNode>>,
    /// Nodes, with the node watcher.
    pub nodes: Option<Subscription<Node>>,
}

/// Declares the controller's watches on the shared caches (before they start).
pub fn declare(caches: &Caches, config: &MonitorConfig) -> Result<Watches, csi_kube::cache::Error> {
    let all = Selector::all();
    let volumes = caches.subscribe::<PersistentVolume>(&all)?;
    let claims = caches.store::<PersistentVolumeClaim>(&all)?;
    let (pods, nodes) = if config.enable_node_watcher {
        (
            Some(caches.subscribe::<PodOnNode>(&all)?),
            Some(caches.subscribe::<Node>(&all)?.with_resync(config.resync)),
        )
    } else {
        (None, None)
    };
    Ok(Watches {
        volumes,
        claims,
        pods,
        nodes,
    })
}

/// The health monitor controller.
#[derive(Debug)]
pub struct PvMonitorController {
    config: MonitorConfig,
    watches: Watches,
    checker: Arc<PvHealthChecker>,
    listers: Arc<dyn Listers>,
    node_watcher: Option<Arc<NodeWatcher>>,
    pvc_to_pods: Arc<PvcToPodsCache>,
    pv_queue: WorkQueue<String>,
    pv_enqueued: Arc<Mutex<HashSet<String>>>,
    seed: Option<Arc<dyn crate::kube::HealthApi>>,
}

impl PvMonitorController {
    /// The controller over `watches`. `seed`: where to list the claims' stored health when it
    /// starts.
    pub fn new(
        config: MonitorConfig,
        watches: Watches,
        checker: Arc<PvHealthChecker>,
        listers: Arc<dyn Listers>,
        node_watcher: Option<Arc<NodeWatcher>>,
        pvc_to_pods: Arc<PvcToPodsCache>,
        seed: Option<Arc<dyn crate::kube::HealthApi>>,
    ) -> Self {
        PvMonitorController {
            config,
            watches,
            checker,
            listers,
            node_watcher,
            pvc_to_pods,
            pv_queue: WorkQueue::with_config(
                csi_workqueue::default_item_based_rate_limiter(),
                QueueConfig::new(PV_QUEUE),
            ),
            pv_enqueued: Arc::default(),
            seed,
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        info!("Starting CSI External PV Health Monitor Controller");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = async {
                self.watches.volumes.store().wait_until_ready().await;
                self.watches.claims.wait_until_ready().await;
                if let Some(pods) = &self.watches.pods {
                    pods.store().wait_until_ready().await;
                }
            } => {}
        }
        if let Some(api) = &self.seed {
            match api.list_stored_health().await {
                Ok(stored) => self.checker.reports().seed(stored),
                Err(err) => error!(%err, "Cannot list the health status stored on claims"),
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        if let (Some(watcher), Some(nodes), Some(pods)) =
            (&self.node_watcher, &self.watches.nodes, &self.watches.pods)
        {
            tasks.spawn(feed_pods(
                pods.events(),
                self.pvc_to_pods.clone(),
                shutdown.clone(),
            ));
            tasks.spawn(run_node_watcher(
                watcher.clone(),
                nodes.events(),
                nodes.store(),
                self.config.node_list_add_interval,
                shutdown.clone(),
            ));
        }
        // Claims deleted while reported abnormal leave the memory at each resync.
        let claims = self.watches.claims.clone();
        let reports = self.checker.reports().clone();
        tasks.spawn(until(shutdown.clone(), self.config.resync, move || {
            let live: HashSet<String> = claims
                .state()
                .iter()
                .filter_map(|c| c.metadata.uid.clone())
                .collect();
            reports.retain(&live);
            std::future::ready(())
        }));
        if self.config.mode.is_list() {
            let checker = self.checker.clone();
            let interval = self.config.list_volumes_interval;
            tasks.spawn(until(shutdown.clone(), interval, move || {
                let checker = checker.clone();
                async move {
                    if let Err(err) = checker.check_list().await {
                        error!(%err, "Check controller volume status error");
                    }
                }
            }));
        } else {
            tasks.spawn(feed_volumes(
                self.watches.volumes.events(),
                self.config.driver_name.clone(),
                self.pv_queue.clone(),
                self.pv_enqueued.clone(),
                shutdown.clone(),
            ));
            for _ in 0..self.config.workers.max(1) {
                tasks.spawn(pv_worker(
                    self.pv_queue.clone(),
                    self.checker.clone(),
                    self.listers.clone(),
                    self.pv_enqueued.clone(),
                    self.config.monitor_interval,
                    shutdown.clone(),
                ));
            }
            let listers = self.listers.clone();
            let queue = self.pv_queue.clone();
            let enqueued = self.pv_enqueued.clone();
            let driver = self.config.driver_name.clone();
            tasks.spawn(until(
                shutdown.clone(),
                self.config.volume_list_add_interval,
                move || {
                    add_pvs_to_queue(&*listers, &driver, &queue, &enqueued);
                    std::future::ready(())
                },
            ));
        }
        shutdown.cancelled().await;
        self.pv_queue.shut_down();
        tasks.shutdown().await;
        info!("Shutting down CSI External PV Health Monitor Controller");
    }
}

/// Calls `f`, waits `period`, and again (apimachinery's `wait.UntilWithContext`), until
/// `shutdown`.
pub(crate) async fn until<F, Fut>(shutdown: CancellationToken, period: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = f() => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
    }
}

/// Upstream's `AddPVsToQueue`: every PV of this driver not yet in the queue.
pub fn add_pvs_to_queue(
    listers: &dyn Listers,
    driver: &str,
    queue: &WorkQueue<String>,
    enqueued: &Mutex<HashSet<String>>,
) {
    let mut enqueued = enqueued.lock().unwrap_or_else(PoisonError::into_inner);
    for pv in listers.volumes() {
        if !is_managed(&pv, driver) {
            continue;
        }
        let name = pv.metadata.name.clone().unwrap_or_default();
        if enqueued.insert(name.clone()) {
            queue.add(name);
        }
    }
}

/// Upstream's PV add handler: bound PVs of this driver go into the queue.
async fn feed_volumes(
    events: csi_kube::Events<PersistentVolume>,
    driver: String,
    queue: WorkQueue<String>,
    enqueued: Arc<Mutex<HashSet<String>>>,
    shutdown: CancellationToken,
) {
    let mut events = std::pin::pin!(events);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            change = events.next() => match change {
                None => return,
                Some(Change::Added(pv)) => {
                    if is_bound(&pv) && is_managed(&pv, &driver) {
                        let name = pv.metadata.name.clone().unwrap_or_default();
                        enqueued.lock().unwrap_or_else(PoisonError::into_inner).insert(name.clone());
                        queue.add(name);
                    }
                }
                Some(_) => {}
            },
        }
    }
}

/// One PV worker (upstream's `checkPVWorker` under `wait.UntilWithContext`): takes a PV,
/// checks it, puts it back, and waits `interval`. A PV that is gone leaves the queue; one
/// being deleted or not bound leaves it until `--volume-list-add-interval` adds it again.
pub(crate) async fn pv_worker(
    queue: WorkQueue<String>,
    checker: Arc<PvHealthChecker>,
    listers: Arc<dyn Listers>,
    enqueued: Arc<Mutex<HashSet<String>>>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let Some(name) = queue.get().await else {
            return;
        };
        debug!(pv = name, "Started PV processing");
        let forget = |name: &str| {
            enqueued
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(name);
        };
        match listers.volume(&name) {
            None => {
                forget(&name);
                info!(pv = name, "PV deleted, ignoring");
            }
            Some(pv) if pv.metadata.deletion_timestamp.is_some() => {
                forget(&name);
                info!(
                    pv = name,
                    "PV is being deleted now, skip checking health condition"
                );
            }
            Some(pv) if !is_bound(&pv) => {
                forget(&name);
                info!(
                    pv = name,
                    "PV status is not bound, remove it from the queue"
                );
            }
            Some(pv) => {
                if let Err(err) = checker.check_volume(&pv).await {
                    error!(%err, "Check controller volume status error");
                }
                queue.add(name.clone());
            }
        }
        queue.done(&name);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Upstream's Pod handlers.
async fn feed_pods(
    events: csi_kube::Events<PodOnNode>,
    cache: Arc<PvcToPodsCache>,
    shutdown: CancellationToken,
) {
    let mut events = std::pin::pin!(events);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            change = events.next() => match change {
                None => return,
                Some(Change::Added(pod)) => cache.add_pod(&pod),
                // Upstream has no update handler; a Pod's node and volumes do not change.
                Some(Change::Updated { .. }) => {}
                Some(Change::Deleted { last, .. }) => cache.delete_pod(&last),
            },
        }
    }
}

/// The node watcher's loop: every Node change goes into the `nodes` queue, every Node again
/// each `list_interval`, and one worker handles the queue.
async fn run_node_watcher(
    watcher: Arc<NodeWatcher>,
    events: csi_kube::Events<Node>,
    nodes: Store<Node>,
    list_interval: Duration,
    shutdown: CancellationToken,
) {
    let queue: WorkQueue<String> = WorkQueue::with_config(
        csi_workqueue::default_item_based_rate_limiter(),
        QueueConfig::new(NODE_QUEUE),
    );
    let feed = {
        let queue = queue.clone();
        async move {
            let mut events = std::pin::pin!(events);
            while let Some(change) = events.next().await {
                let node = match change {
                    Change::Added(node) | Change::Updated { new: node, .. } => node,
                    Change::Deleted { last, .. } => last,
                };
                queue.add(node.metadata.name.clone().unwrap_or_default());
            }
        }
    };
    let relist = {
        let queue = queue.clone();
        let nodes = nodes.clone();
        until(shutdown.clone(), list_interval, move || {
            debug!("Resyncing Node watcher");
            for key in nodes.keys() {
                queue.add(key);
            }
            std::future::ready(())
        })
    };
    let work = {
        let queue = queue.clone();
        async move {
            while let Some(name) = queue.get().await {
                match nodes.get_key(&name) {
                    Some(node) => watcher.update_node(&node, Instant::now()),
                    None => watcher.delete_node(&name),
                }
                queue.done(&name);
            }
        }
    };
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = feed => {}
        () = relist => {}
        () = work => {}
    }
    queue.shut_down();
}
