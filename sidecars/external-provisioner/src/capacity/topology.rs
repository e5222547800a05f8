//! Topology segments for capacity tracking (upstream's `pkg/capacity/topology`): which
//! segments exist, and who is told when that changes.
//!
//! Owns: the [`Segment`] type, the [`Topology`] trait the capacity controller reads, the
//! segments of a central controller ([`NodeTopology`]: one segment per distinct set of
//! topology labels among the Nodes whose CSINode registered this driver, recomputed by one
//! worker fed from the `csitopology` queue) and the single segment of a node deployment
//! ([`FixedTopology`]). It does not know about StorageClasses or CSIStorageCapacity objects.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use csi_kube::Change;
use csi_workqueue::WorkQueue;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::CSINode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::Lister;

/// One topology key and its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentEntry {
    /// The topology key (a node label name).
    pub key: String,
    /// Its value.
    pub value: String,
}

impl fmt::Display for SegmentEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.value)
    }
}

/// A topology segment: key/value pairs, sorted by key, each key once. Two segments with the
/// same pairs are equal. The empty segment stands for every node (a driver without topology).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Segment {
    entries: Vec<SegmentEntry>,
}

impl Segment {
    /// The segment of these pairs, sorted by key (then value).
    pub fn new<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut entries: Vec<SegmentEntry> = pairs
            .into_iter()
            .map(|(key, value)| SegmentEntry {
                key: key.into(),
                value: value.into(),
            })
            .collect();
        entries.sort();
        Segment { entries }
    }

    /// The pairs, sorted by key.
    pub fn entries(&self) -> &[SegmentEntry] {
        &self.entries
    }

    /// The pairs as a map: the `accessible_topology` of a `GetCapacity` request.
    pub fn label_map(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect()
    }

    /// The pairs as a CSIStorageCapacity's `nodeTopology` (`matchLabels` only).
    pub fn label_selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: (!self.entries.is_empty()).then(|| self.label_map()),
            match_expressions: None,
        }
    }

    /// Whether `selector` (a CSIStorageCapacity's `nodeTopology`) is this segment's
    /// [`Segment::label_selector`]. An absent and an empty `matchLabels` are the same (the API
    /// server drops an empty map); a missing selector matches no segment.
    pub fn matches_selector(&self, selector: Option<&LabelSelector>) -> bool {
        let Some(selector) = selector else {
            return false;
        };
        if selector
            .match_expressions
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            return false;
        }
        let labels = selector.match_labels.clone().unwrap_or_default();
        labels == self.label_map()
    }
}

impl fmt::Display for Segment {
    /// Upstream's `SimpleString`: `key: value+ key2: value2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str("+ ")?;
            }
            write!(f, "{entry}")?;
        }
        Ok(())
    }
}

/// Segments as a log line: `[a: 1, b: 2+ c: 3]`.
pub(crate) struct Segments<'a>(pub &'a [Arc<Segment>]);

impl fmt::Display for Segments<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, segment) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{segment}")?;
        }
        f.write_str("]")
    }
}

/// What a [`Topology`] calls when segments appear (`added`) or go away (`removed`).
pub type Callback = Box<dyn Fn(&[Arc<Segment>], &[Arc<Segment>]) + Send + Sync>;

/// The known topology segments, and change notification (upstream's `topology.Informer`).
pub trait Topology: Send + Sync + fmt::Debug {
    /// Calls `callback` after every change of the segments. A topology that already knows its
    /// segments when the callback is added may call it at once with all of them.
    fn add_callback(&self, callback: Callback);

    /// Every known segment, each once, in no particular order.
    fn list(&self) -> Vec<Arc<Segment>>;

    /// Whether the segments have been computed from complete caches at least once.
    fn has_synced(&self) -> bool;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct FixedState {
    segments: Vec<Arc<Segment>>,
    callbacks: Vec<Arc<Callback>>,
}

/// A topology whose segments are given: the one segment of a node deployment (the driver's
/// `NodeGetInfo` accessible topology; upstream's `NewFixedNodeTopology`), and a hand-driven
/// topology for tests ([`FixedTopology::modify`], upstream's `topology.Mock`).
#[derive(Default)]
pub struct FixedTopology {
    state: Mutex<FixedState>,
}

impl fmt::Debug for FixedTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedTopology")
            .field("segments", &lock(&self.state).segments)
            .finish_non_exhaustive()
    }
}

impl FixedTopology {
    /// A topology of exactly these segments.
    pub fn new(segments: impl IntoIterator<Item = Segment>) -> Self {
        FixedTopology {
            state: Mutex::new(FixedState {
                segments: segments.into_iter().map(Arc::new).collect(),
                callbacks: Vec::new(),
            }),
        }
    }

    /// The topology of a node deployment: one segment made of the node's accessible topology
    /// as `NodeGetInfo` reported it (empty for a driver without topology).
    pub fn for_node<K: Into<String>, V: Into<String>>(
        accessible_topology: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let segment = Segment::new(accessible_topology);
        info!(segment = %segment, "producing CSIStorageCapacity objects with fixed topology segment");
        FixedTopology::new([segment])
    }

    /// Adds the segments of `add` that are not known and removes those of `remove` that are,
    /// then tells every callback what changed.
    pub fn modify(&self, add: &[Segment], remove: &[Segment]) {
        let (added, removed, callbacks) = {
            let mut state = lock(&self.state);
            let mut added = Vec::new();
            let mut removed = Vec::new();
            for segment in add {
                if !state.segments.iter().any(|s| **s == *segment) {
                    let segment = Arc::new(segment.clone());
                    added.push(segment.clone());
                    state.segments.push(segment);
                }
            }
            for segment in remove {
                if let Some(index) = state.segments.iter().position(|s| **s == *segment) {
                    removed.push(state.segments.remove(index));
                }
            }
            (added, removed, state.callbacks.clone())
        };
        for callback in callbacks {
            callback(&added, &removed);
        }
    }
}

impl Topology for FixedTopology {
    fn add_callback(&self, callback: Callback) {
        let callback = Arc::new(callback);
        let segments = {
            let mut state = lock(&self.state);
            state.callbacks.push(callback.clone());
            state.segments.clone()
        };
        callback(&segments, &[]);
    }

    fn list(&self) -> Vec<Arc<Segment>> {
        lock(&self.state).segments.clone()
    }

    fn has_synced(&self) -> bool {
        true
    }
}

#[derive(Default)]
struct NodeState {
    segments: Vec<Arc<Segment>>,
    callbacks: Vec<Arc<Callback>>,
}

/// The segments of a central controller (upstream's `NewNodeTopology`): for every CSINode that
/// registered this driver, the values of the driver's topology keys among its Node's labels.
/// Nodes whose labels lack one of the keys are left out until the labels arrive.
///
/// Node and CSINode changes only queue a recomputation (the key `""` in the `csitopology`
/// queue), so that a burst of changes settles into one; [`NodeTopology::run_worker`] does the
/// recomputing. A segment that stays keeps its `Arc`.
pub struct NodeTopology {
    driver_name: String,
    nodes: Arc<dyn Lister<Node>>,
    csi_nodes: Arc<dyn Lister<CSINode>>,
    queue: WorkQueue<String>,
    has_synced: AtomicBool,
    state: Mutex<NodeState>,
}

impl fmt::Debug for NodeTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeTopology")
            .field("driver_name", &self.driver_name)
            .field("segments", &lock(&self.state).segments)
            .finish_non_exhaustive()
    }
}

impl NodeTopology {
    /// The topology of `driver_name`, read from `nodes` and `csi_nodes`, recomputed through
    /// `queue` (upstream names it `csitopology`).
    pub fn new(
        driver_name: impl Into<String>,
        nodes: Arc<dyn Lister<Node>>,
        csi_nodes: Arc<dyn Lister<CSINode>>,
        queue: WorkQueue<String>,
    ) -> Self {
        NodeTopology {
            driver_name: driver_name.into(),
            nodes,
            csi_nodes,
            queue,
            has_synced: AtomicBool::new(false),
            state: Mutex::default(),
        }
    }

    /// The queue that asks for a recomputation.
    pub fn queue(&self) -> &WorkQueue<String> {
        &self.queue
    }

    /// The driver's topology keys on this CSINode: `None` when the driver is not registered
    /// there, else the keys (perhaps none).
    pub fn driver_topology_keys(&self, csi_node: &CSINode) -> Option<Vec<String>> {
        csi_node
            .spec
            .drivers
            .iter()
            .find(|d| d.name == self.driver_name)
            .map(|d| d.topology_keys.clone().unwrap_or_default())
    }

    /// A Node changed: recompute when one was added or deleted, or its labels changed.
    pub fn node_changed(&self, change: &Change<Node>) {
        match change {
            Change::Added(node) => {
                debug!(
                    node = node.metadata.name.as_deref().unwrap_or_default(),
                    "capacity topology: new node"
                );
            }
            Change::Updated { old, new } => {
                if old.metadata.labels == new.metadata.labels {
                    return;
                }
                debug!(
                    node = new.metadata.name.as_deref().unwrap_or_default(),
                    "capacity topology: updated node"
                );
            }
            Change::Deleted { last, .. } => {
                debug!(
                    node = last.metadata.name.as_deref().unwrap_or_default(),
                    "capacity topology: removed node"
                );
            }
        }
        self.queue.add(String::new());
    }

    /// A CSINode changed: recompute when one was added or deleted, or this driver's topology
    /// keys on it changed.
    pub fn csi_node_changed(&self, change: &Change<CSINode>) {
        match change {
            Change::Added(csi_node) => {
                debug!(
                    csi_node = csi_node.metadata.name.as_deref().unwrap_or_default(),
                    "capacity topology: new CSINode"
                );
            }
            Change::Updated { old, new } => {
                if self.driver_topology_keys(old) == self.driver_topology_keys(new) {
                    return;
                }
                debug!(
                    csi_node = new.metadata.name.as_deref().unwrap_or_default(),
                    "capacity topology: updated CSINode"
                );
            }
            Change::Deleted { last, .. } => {
                debug!(
                    csi_node = last.metadata.name.as_deref().unwrap_or_default(),
                    "capacity topology: removed CSINode"
                );
            }
        }
        self.queue.add(String::new());
    }

    /// The one worker (there must never be two: they would compute the same new segment
    /// twice): waits for both caches, recomputes once so that [`Topology::has_synced`] turns
    /// true, then once per queued request, until `shutdown`.
    pub async fn run_worker(&self, shutdown: CancellationToken) {
        info!("Started node topology worker");
        tokio::select! {
            () = shutdown.cancelled() => {
                info!("Shutting node topology worker");
                return;
            }
            () = async {
                self.nodes.synced().await;
                self.csi_nodes.synced().await;
            } => {}
        }
        self.queue.add(String::new());
        loop {
            let key = tokio::select! {
                () = shutdown.cancelled() => None,
                key = self.queue.get() => key,
            };
            let Some(key) = key else { break };
            self.sync();
            self.has_synced.store(true, Ordering::SeqCst);
            self.queue.done(&key);
        }
        self.queue.shut_down();
        info!("Shutting node topology worker");
    }

    /// Recomputes the segments and tells the callbacks what was added and removed.
    pub fn sync(&self) {
        let known = self.list();
        let mut kept: HashMap<*const Segment, bool> = HashMap::new();
        let mut current: Vec<Arc<Segment>> = Vec::with_capacity(known.len());
        let mut added: Vec<Arc<Segment>> = Vec::new();
        'csi_nodes: for csi_node in self.csi_nodes.list() {
            let Some(mut keys) = self.driver_topology_keys(&csi_node) else {
                // The driver does not run there.
                continue;
            };
            let name = csi_node.metadata.name.as_deref().unwrap_or_default();
            let Some(node) = self.nodes.get(name) else {
                // A CSINode without its Node: obsolete.
                continue;
            };
            keys.sort();
            keys.dedup();
            let labels = node.metadata.labels.as_ref();
            let mut pairs = Vec::with_capacity(keys.len());
            for key in keys {
                // A key the kubelet recorded before the Node's label arrived: wait for the
                // Node update.
                let Some(value) = labels.and_then(|l| l.get(&key)) else {
                    continue 'csi_nodes;
                };
                pairs.push((key, value.clone()));
            }
            let segment = Segment::new(pairs);
            if let Some(existing) = known.iter().find(|s| ***s == segment) {
                // Keep the known `Arc`.
                if kept.insert(Arc::as_ptr(existing), true).is_none() {
                    current.push(existing.clone());
                }
                continue;
            }
            if added.iter().any(|s| **s == segment) {
                continue;
            }
            let segment = Arc::new(segment);
            added.push(segment.clone());
            current.push(segment);
        }
        let removed: Vec<Arc<Segment>> = known
            .iter()
            .filter(|s| !kept.contains_key(&Arc::as_ptr(s)))
            .cloned()
            .collect();
        let callbacks = {
            let mut state = lock(&self.state);
            state.segments = current;
            state.callbacks.clone()
        };
        if added.is_empty() && removed.is_empty() {
            debug!("topology unchanged");
            return;
        }
        debug!(added = %Segments(&added), removed = %Segments(&removed), "topology changed");
        for callback in callbacks {
            callback(&added, &removed);
        }
    }
}

impl Topology for NodeTopology {
    fn add_callback(&self, callback: Callback) {
        lock(&self.state).callbacks.push(Arc::new(callback));
    }

    fn list(&self) -> Vec<Arc<Segment>> {
        lock(&self.state).segments.clone()
    }

    fn has_synced(&self) -> bool {
        self.has_synced.load(Ordering::SeqCst)
    }
}
