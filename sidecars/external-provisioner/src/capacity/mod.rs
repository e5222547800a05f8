//! Storage capacity tracking (`--enable-capacity`; upstream v6.4.0 `pkg/capacity`,
//! `pkg/capacity/topology`, `pkg/owner` and `getNameWithMaxLength` of its `main`): one
//! `storage.k8s.io/v1` CSIStorageCapacity object per (topology segment, StorageClass of this
//! driver) in the provisioner's namespace, with the driver's `GetCapacity` answer.
//!
//! - [`topology`]: the segments (from Nodes and CSINodes, or the node deployment's one).
//! - [`controller`]: the objects, their refresh and cleanup, and the metrics.
//! - [`owner`]: the owner reference put on the objects.
//!
//! # Wiring it (the component's side)
//!
//! Before the caches start, [`declare`] the watches: StorageClasses, CSIStorageCapacities
//! of `$NAMESPACE` with this instance's labels, and, for a central controller, Nodes and
//! CSINodes. Then build a [`Capacity`], hand its [`Capacity::refresh_handle`] to the
//! provisioning loop (call [`CapacityRefresh::provisioned`], [`CapacityRefresh::provision_failed`]
//! and [`CapacityRefresh::deleted`] after each attempt, as upstream's provision wrapper does),
//! register its [`CapacityMetrics`] once, and [`Capacity::run`] it while leading.
//!
//! | upstream flag / environment | here |
//! |---|---|
//! | `--enable-capacity` | whether to build a [`Capacity`] at all |
//! | `--kube-api-capacity-qps` / `-burst` (1 / 5) | the client given to [`KubeCapacityApi`] |
//! | `NAMESPACE` (required) | [`CapacityOptions::namespace`] |
//! | `POD_NAME` + `--capacity-ownerref-level` (1) | [`lookup_owner`] → [`CapacityOptions::owner`] |
//! | `--node-deployment` + `NODE_NAME` | [`managed_by_id`] → [`CapacityOptions::managed_by`], [`CapacityOptions::node_topology`] |
//! | `--capacity-poll-interval` (1m) | [`CapacityOptions::poll_interval`] |
//! | `--capacity-for-immediate-binding` | [`CapacityOptions::immediate_binding`] |
//! | `--capacity-threads` (1) | [`CapacityOptions::workers`] |
//! | `--timeout` (10s) | [`CapacityOptions::timeout`] |
//! | `--retry-interval-start` / `-max` | the backoff of both queues |
//!
//! ```no_run
//! # async fn wire(caches: csi_kube::Caches, capacity_client: kube::Client, client: kube::Client,
//! #     driver: external_provisioner::CsiVolumeDriver, registry: csi_metrics::Registry,
//! #     queue_metrics: Option<&csi_workqueue::Metrics>, shutdown: tokio_util::sync::CancellationToken)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use external_provisioner::capacity::*;
//! let namespace = std::env::var("NAMESPACE")?;
//! let owner = lookup_owner(&KubeObjectReader::new(client), &namespace, &std::env::var("POD_NAME")?, 1).await?;
//! let options = CapacityOptions { owner, ..CapacityOptions::new("hostpath.csi.k8s.io", namespace) };
//! let watches = declare(&caches, &options)?;
//! let capacity = Capacity::new(options, watches, Arc::new(driver), Arc::new(KubeCapacityApi::new(capacity_client)), queue_metrics);
//! let metrics = CapacityMetrics::default();
//! registry.register(metrics.clone())?;
//! capacity.report_to(&metrics);
//! let refresh = capacity.refresh_handle(); // for the provisioning loop
//! capacity.run(shutdown).await?;
//! # Ok(()) }
//! ```

pub mod controller;
pub mod owner;
pub mod topology;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use csi_kube::{Caches, Change, Selector, Store, Subscription};
use csi_metrics::{Collector, MetricFamily};
use csi_workqueue::{ItemExponentialFailureRateLimiter, QueueConfig, WorkQueue};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, PersistentVolume};
use k8s_openapi::api::storage::v1::{CSINode, CSIStorageCapacity, StorageClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use controller::{
    CapacityApi, Controller, ControllerConfig, KubeCapacityApi, QueueKey, WorkItem,
};
pub use owner::{KubeObjectReader, ObjectReader, OwnerError, lookup_owner};
pub use topology::{FixedTopology, NodeTopology, Segment, Topology};

use crate::csi::CapacityDriver;
use crate::provision::ProvisioningState;

/// The label with the driver name on every CSIStorageCapacity object the controller manages.
pub const DRIVER_NAME_LABEL: &str = "csi.storage.k8s.io/drivername";
/// The label naming the instance that manages an object ([`managed_by_id`]).
pub const MANAGED_BY_LABEL: &str = "csi.storage.k8s.io/managed-by";
/// The name of the queue of CSIStorageCapacity work (its `workqueue_*` metrics label).
pub const CAPACITY_QUEUE_NAME: &str = "csistoragecapacity";
/// The name of the queue of topology recomputations.
pub const TOPOLOGY_QUEUE_NAME: &str = "csitopology";
/// The managed-by value of a central controller.
pub const MANAGED_BY_CENTRAL: &str = "external-provisioner";
/// The longest label value (a DNS-1035 label).
const LABEL_MAX_LENGTH: usize = 63;
/// The resync period of the StorageClass subscription (upstream's informer factory's).
const CLASS_RESYNC: Duration = Duration::from_secs(3600);
/// How often the start-up wait looks at the topology (client-go's `WaitForCacheSync` period).
const SYNC_POLL: Duration = Duration::from_millis(100);

/// The `csi.storage.k8s.io/managed-by` value: `external-provisioner` for a central controller,
/// `external-provisioner-<node>` (shortened with a hash to 63 characters) in a node deployment.
pub fn managed_by_id(node: Option<&str>) -> String {
    match node {
        None => MANAGED_BY_CENTRAL.to_string(),
        Some(node) => name_with_max_length(MANAGED_BY_CENTRAL, node, LABEL_MAX_LENGTH),
    }
}

/// `base-suffix`, shortened to `max_length` as openshift's namer does (upstream's
/// `getNameWithMaxLength`): if it is too long, the base is cut and the FNV-1a hash of the
/// base goes between (`base-hash-suffix`); if the suffix alone is too long, it is dropped
/// and the hash of the whole name follows what fits of the base.
pub fn name_with_max_length(base: &str, suffix: &str, max_length: usize) -> String {
    let name = if base.is_empty() {
        suffix.to_string()
    } else {
        format!("{base}-{suffix}")
    };
    if name.len() <= max_length {
        return name;
    }
    // 10 = the length of `-hash-`.
    let base_length = max_length as isize - 10 - suffix.len() as isize;
    if base_length <= 0 {
        let prefix = &base[..base.len().min(max_length.saturating_sub(9))];
        let short = if prefix.is_empty() {
            fnv_hex(&name)
        } else {
            format!("{prefix}-{}", fnv_hex(&name))
        };
        return short[..short.len().min(max_length)].to_string();
    }
    let prefix = &base[..(base_length as usize).min(base.len())];
    format!("{prefix}-{}-{suffix}", fnv_hex(base))
}

/// The 32-bit FNV-1a hash of `s`, as 8 hex digits.
fn fnv_hex(s: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in s.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

/// Reading objects of one type from a cache (a lister): a [`Store`], or a fake in tests.
pub trait Lister<K>: Send + Sync {
    /// Every cached object.
    fn list(&self) -> Vec<Arc<K>>;
    /// The object with this key (`name`, or `namespace/name`).
    fn get(&self, key: &str) -> Option<Arc<K>>;
    /// Resolves once the cache holds a complete list.
    fn synced(&self) -> BoxFuture<'static, ()>;
    /// Whether the cache holds a complete list.
    fn is_synced(&self) -> bool;
}

impl<K: csi_kube::cache::Cacheable> Lister<K> for Store<K> {
    fn list(&self) -> Vec<Arc<K>> {
        self.state()
    }

    fn get(&self, key: &str) -> Option<Arc<K>> {
        self.get_key(key)
    }

    fn synced(&self) -> BoxFuture<'static, ()> {
        let store = self.clone();
        Box::pin(async move { store.wait_until_ready().await })
    }

    fn is_synced(&self) -> bool {
        Store::is_synced(self)
    }
}

/// What capacity tracking is configured with.
#[derive(Debug, Clone)]
pub struct CapacityOptions {
    /// The driver name (StorageClasses' `provisioner`, the objects' driver label).
    pub driver_name: String,
    /// `$NAMESPACE`: where the objects live and are watched.
    pub namespace: String,
    /// The objects' owner ([`lookup_owner`]); `None` for `--capacity-ownerref-level=-1`.
    pub owner: Option<OwnerReference>,
    /// The objects' managed-by label ([`managed_by_id`]).
    pub managed_by: String,
    /// `--capacity-poll-interval`: how often every object is refreshed.
    pub poll_interval: Duration,
    /// `--capacity-for-immediate-binding`: also StorageClasses with Immediate binding.
    pub immediate_binding: bool,
    /// `--timeout`: of each `GetCapacity`.
    pub timeout: Duration,
    /// `--capacity-threads`: workers of the `csistoragecapacity` queue.
    pub workers: usize,
    /// `--retry-interval-start`: the first backoff of a failed key.
    pub retry_interval_start: Duration,
    /// `--retry-interval-max`: the longest backoff.
    pub retry_interval_max: Duration,
    /// In a node deployment: the node's accessible topology from `NodeGetInfo` (one fixed
    /// segment; no Node or CSINode watch). `None` for a central controller.
    pub node_topology: Option<BTreeMap<String, String>>,
}

impl CapacityOptions {
    /// A central controller for `driver_name` in `namespace`, with upstream's defaults.
    pub fn new(driver_name: impl Into<String>, namespace: impl Into<String>) -> Self {
        CapacityOptions {
            driver_name: driver_name.into(),
            namespace: namespace.into(),
            owner: None,
            managed_by: managed_by_id(None),
            poll_interval: Duration::from_secs(60),
            immediate_binding: false,
            timeout: Duration::from_secs(10),
            workers: 1,
            retry_interval_start: Duration::from_secs(1),
            retry_interval_max: Duration::from_secs(300),
            node_topology: None,
        }
    }

    /// The watch of this instance's objects: its namespace, its two labels.
    pub fn capacity_selector(&self) -> Selector {
        // labels.Set{...}.AsSelector().String(): sorted by key.
        Selector::labels(format!(
            "{DRIVER_NAME_LABEL}={},{MANAGED_BY_LABEL}={}",
            self.driver_name, self.managed_by
        ))
        .in_namespace(self.namespace.clone())
    }

    fn controller_config(&self) -> ControllerConfig {
        ControllerConfig {
            driver_name: self.driver_name.clone(),
            managed_by: self.managed_by.clone(),
            namespace: self.namespace.clone(),
            owner: self.owner.clone(),
            immediate_binding: self.immediate_binding,
            timeout: self.timeout,
        }
    }
}

/// The watches capacity tracking reads, declared before the caches start.
#[derive(Debug)]
pub struct Watches {
    classes: Subscription<StorageClass>,
    capacities: Subscription<CSIStorageCapacity>,
    nodes: Option<(Subscription<Node>, Subscription<CSINode>)>,
}

/// Declares the watches of capacity tracking: every StorageClass, this instance's
/// CSIStorageCapacities ([`CapacityOptions::capacity_selector`]) and, for a central controller,
/// every Node and CSINode (shared with any other controller that watches them).
pub fn declare(
    caches: &Caches,
    options: &CapacityOptions,
) -> Result<Watches, csi_kube::cache::Error> {
    let all = Selector::all();
    let nodes = if options.node_topology.is_none() {
        Some((
            caches.subscribe::<Node>(&all)?,
            caches.subscribe::<CSINode>(&all)?,
        ))
    } else {
        None
    };
    Ok(Watches {
        classes: caches
            .subscribe::<StorageClass>(&all)?
            .with_resync(CLASS_RESYNC),
        capacities: caches.subscribe::<CSIStorageCapacity>(&options.capacity_selector())?,
        nodes,
    })
}

/// Why capacity tracking stopped before shutdown.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// One of its tasks panicked.
    #[error("capacity controller task panicked: {0}")]
    Panicked(String),
}

/// Capacity tracking, ready to run.
#[derive(Debug)]
pub struct Capacity {
    options: CapacityOptions,
    controller: Arc<Controller>,
    node_topology: Option<Arc<NodeTopology>>,
    watches: Watches,
}

impl Capacity {
    /// Capacity tracking on `watches` (from [`declare`] with the same options), asking
    /// `driver` and writing through `api`; its queues report to `queue_metrics`.
    pub fn new(
        options: CapacityOptions,
        watches: Watches,
        driver: Arc<dyn CapacityDriver>,
        api: Arc<dyn CapacityApi>,
        queue_metrics: Option<&csi_workqueue::Metrics>,
    ) -> Self {
        let queue_config = |name: &str| {
            let config = QueueConfig::new(name);
            match queue_metrics {
                Some(metrics) => config.metrics(metrics),
                None => config,
            }
        };
        let (topology, node_topology): (Arc<dyn Topology>, _) =
            match (&options.node_topology, &watches.nodes) {
                (Some(segment), _) => (Arc::new(FixedTopology::for_node(segment.clone())), None),
                (None, Some((nodes, csi_nodes))) => {
                    let topology = Arc::new(NodeTopology::new(
                        options.driver_name.clone(),
                        Arc::new(nodes.store()),
                        Arc::new(csi_nodes.store()),
                        WorkQueue::with_config(
                            ItemExponentialFailureRateLimiter::<String>::new(
                                options.retry_interval_start,
                                options.retry_interval_max,
                            ),
                            queue_config(TOPOLOGY_QUEUE_NAME),
                        ),
                    ));
                    (topology.clone(), Some(topology))
                }
                // Declared for a node deployment, run as a central controller: no segment at all.
                (None, None) => (Arc::new(FixedTopology::new([])), None),
            };
        let controller = Controller::new(
            options.controller_config(),
            driver,
            api,
            Arc::new(watches.classes.store()),
            Arc::new(watches.capacities.store()),
            topology,
            WorkQueue::with_config(
                ItemExponentialFailureRateLimiter::<QueueKey>::new(
                    options.retry_interval_start,
                    options.retry_interval_max,
                ),
                queue_config(CAPACITY_QUEUE_NAME),
            ),
        );
        Capacity {
            options,
            controller,
            node_topology,
            watches,
        }
    }

    /// What the provisioning loop calls after each attempt, to refresh the objects that
    /// probably changed.
    pub fn refresh_handle(&self) -> CapacityRefresh {
        CapacityRefresh {
            controller: Arc::downgrade(&self.controller),
        }
    }

    /// Makes `metrics` report this instance's gauges (replacing a previous instance's).
    pub fn report_to(&self, metrics: &CapacityMetrics) {
        metrics.report(&self.controller);
    }

    /// The controller itself.
    pub fn controller(&self) -> &Arc<Controller> {
        &self.controller
    }

    /// Runs until `shutdown`: the topology worker, then, once the StorageClass, capacity and
    /// topology caches are complete, the `--capacity-threads` workers and the periodic refresh.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), CapacityError> {
        info!("Starting Capacity Controller");
        let Capacity {
            options,
            controller,
            node_topology,
            watches,
        } = self;
        let mut tasks = JoinSet::new();
        if let (Some(topology), Some((nodes, csi_nodes))) = (node_topology, watches.nodes) {
            let (t, s) = (topology.clone(), shutdown.clone());
            tasks.spawn(feed(nodes, s, move |change| t.node_changed(&change)));
            let (t, s) = (topology.clone(), shutdown.clone());
            tasks.spawn(feed(csi_nodes, s, move |change| {
                t.csi_node_changed(&change)
            }));
            let s = shutdown.clone();
            tasks.spawn(async move { topology.run_worker(s).await });
        }
        let classes = watches.classes.store();
        let c = controller.clone();
        tasks.spawn(feed(
            watches.classes,
            shutdown.clone(),
            move |change| match change {
                Change::Added(class) => c.on_class_add_or_update(&class),
                Change::Updated { new, .. } => c.on_class_add_or_update(&new),
                Change::Deleted { last, .. } => c.on_class_delete(&last),
            },
        ));

        let capacities = watches.capacities.store();
        let topology = controller.topology().clone();
        let synced = async {
            classes.wait_until_ready().await;
            capacities.wait_until_ready().await;
            while !topology.has_synced() {
                tokio::time::sleep(SYNC_POLL).await;
            }
        };
        let ready = tokio::select! {
            () = shutdown.cancelled() => false,
            () = synced => true,
        };
        if ready {
            controller.prepare();
            let c = controller.clone();
            tasks.spawn(feed(
                watches.capacities,
                shutdown.clone(),
                move |change| match change {
                    Change::Added(capacity) => c.on_capacity_add_or_update(capacity),
                    Change::Updated { new, .. } => c.on_capacity_add_or_update(new),
                    Change::Deleted { last, .. } => c.on_capacity_delete(&last),
                },
            ));
            let c = controller.clone();
            tasks.spawn(csi_workqueue::run_workers(
                controller.queue().clone(),
                options.workers.max(1),
                shutdown.clone(),
                move |key: QueueKey| {
                    let c = c.clone();
                    async move { c.process(&key).await }
                },
            ));
            let (c, s) = (controller.clone(), shutdown.clone());
            let period = options.poll_interval;
            tasks.spawn(async move {
                let mut ticker = tokio::time::interval(period);
                loop {
                    tokio::select! {
                        () = s.cancelled() => return,
                        _ = ticker.tick() => c.poll(),
                    }
                }
            });
            info!("Started Capacity Controller");
        }
        let panicked = loop {
            tokio::select! {
                () = shutdown.cancelled() => break None,
                Some(joined) = tasks.join_next() => {
                    if let Err(err) = joined
                        && err.is_panic()
                    {
                        break Some(csi_sidecar_runtime::supervisor::panic_message(err.into_panic()));
                    }
                }
            }
        };
        info!("Shutting down Capacity Controller");
        controller.queue().shut_down();
        if let Some(message) = panicked {
            tasks.shutdown().await;
            return Err(CapacityError::Panicked(message));
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// Feeds a subscription's changes to `handle` until `shutdown`.
async fn feed<K: csi_kube::cache::Cacheable>(
    subscription: Subscription<K>,
    shutdown: CancellationToken,
    handle: impl Fn(Change<K>) + Send + 'static,
) {
    let mut events = std::pin::pin!(subscription.events());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            change = events.next() => match change {
                None => return,
                Some(change) => handle(change),
            },
        }
    }
}

/// How the provisioning loop tells capacity tracking that capacity probably changed
/// (upstream wraps its Provisioner for this). Cheap to clone; does nothing once capacity
/// tracking is gone.
#[derive(Clone, Debug)]
pub struct CapacityRefresh {
    controller: Weak<Controller>,
}

impl CapacityRefresh {
    /// After a successful provision of `pv` for a claim of `storage_class`: refreshes the
    /// segments of the PV's node affinity, or, without one, every segment of the class.
    pub fn provisioned(&self, storage_class: Option<&str>, pv: &PersistentVolume) {
        if let Some(controller) = self.controller.upgrade() {
            controller.provisioned(storage_class, pv);
        }
    }

    /// After a failed provision: refreshes the class, unless the state is
    /// [`ProvisioningState::NoChange`].
    pub fn provision_failed(&self, storage_class: Option<&str>, state: ProvisioningState) {
        if let Some(controller) = self.controller.upgrade() {
            controller.provision_failed(storage_class, state);
        }
    }

    /// After `pv`'s volume was deleted: refreshes the segments of its node affinity.
    pub fn deleted(&self, pv: &PersistentVolume) {
        if let Some(controller) = self.controller.upgrade() {
            controller.deleted(pv);
        }
    }
}

/// The `csistoragecapacities_desired_goal`, `_desired_current` and `_obsolete` gauges, to be
/// registered once in the process's registry; [`Capacity::report_to`] says whose values they
/// show. Without a running instance they are 0, as upstream's before it leads.
#[derive(Clone, Default)]
pub struct CapacityMetrics {
    controller: Arc<Mutex<Weak<Controller>>>,
}

impl fmt::Debug for CapacityMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapacityMetrics").finish_non_exhaustive()
    }
}

impl CapacityMetrics {
    /// Shows `controller`'s values from now on.
    pub fn report(&self, controller: &Arc<Controller>) {
        *self
            .controller
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(controller);
    }
}

impl Collector for CapacityMetrics {
    fn family_names(&self) -> Vec<String> {
        controller::gauges(None)
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    fn collect(&self, out: &mut Vec<MetricFamily>) {
        let controller = self
            .controller
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upgrade();
        out.extend(controller::gauges(controller.as_deref()));
    }
}

#[cfg(test)]
mod tests;
