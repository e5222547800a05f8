//! `--enable-node-watcher` (upstream's `pkg/controller/node_watcher.go` and
//! `pkg/util/pvc_to_pods_cache.go`): a node that is gone, terminated, or not Ready for more than
//! five minutes is reported on the claims of this driver's bound volumes used by Pods on it
//! (Warning `NodeFailed`), and its return to Ready on the same claims (Warning
//! `NodeRecovered`, as upstream records it).
//!
//! Upstream caches whole Pods; here a Pod is decoded into [`PodOnNode`] (name, namespace,
//! node, claim names), so the Pod cache holds a few hundred bytes per Pod.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use csi_kube::{EventRecorder, EventType};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer, Serialize};
use tracing::{error, info};

use crate::checker::{Listers, claim_of, is_bound, is_managed};

/// How long a node may be not Ready before it counts as failed (upstream's
/// `DefaultNodeNotReadyTimeDuration`).
pub const NODE_NOT_READY_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// What the node watcher reads of a Pod. Its JSON form is a Pod's, so it is watched and
/// cached as `pods`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodOnNode {
    /// Name, namespace, UID and resource version only.
    #[serde(deserialize_with = "slim_metadata")]
    pub metadata: ObjectMeta,
    /// The node and the claims.
    #[serde(default)]
    pub spec: PodOnNodeSpec,
}

/// The part of a Pod's spec the node watcher reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodOnNodeSpec {
    /// The node the Pod is scheduled to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Only the volumes backed by claims.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "claim_volumes"
    )]
    pub volumes: Vec<ClaimVolume>,
}

/// A Pod volume backed by a claim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimVolume {
    /// The claim.
    pub persistent_volume_claim: ClaimSource,
}

/// A volume's `persistentVolumeClaim`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimSource {
    /// The claim's name, in the Pod's namespace.
    pub claim_name: String,
}

impl k8s_openapi::Resource for PodOnNode {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Pod";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "pods";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for PodOnNode {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

fn slim_metadata<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Slim {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
    }
    let slim = Slim::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: slim.name,
        namespace: slim.namespace,
        uid: slim.uid,
        resource_version: slim.resource_version,
        ..ObjectMeta::default()
    })
}

fn claim_volumes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<ClaimVolume>, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct AnyVolume {
        persistent_volume_claim: Option<ClaimSource>,
    }
    let volumes = Option::<Vec<AnyVolume>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(volumes
        .into_iter()
        .filter_map(|v| v.persistent_volume_claim)
        .map(|persistent_volume_claim| ClaimVolume {
            persistent_volume_claim,
        })
        .collect())
}

/// The Pods using each claim (upstream's `PVCToPodsCache`), keyed `namespace/claim`, then
/// `namespace/pod`.
#[derive(Debug, Default)]
pub struct PvcToPodsCache {
    map: Mutex<HashMap<String, BTreeMap<String, Arc<PodOnNode>>>>,
}

impl PvcToPodsCache {
    fn map(&self) -> MutexGuard<'_, HashMap<String, BTreeMap<String, Arc<PodOnNode>>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn claim_keys(pod: &PodOnNode) -> impl Iterator<Item = String> + '_ {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        pod.spec
            .volumes
            .iter()
            .map(move |v| format!("{namespace}/{}", v.persistent_volume_claim.claim_name))
    }

    fn pod_key(pod: &PodOnNode) -> String {
        format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// Adds (or replaces) `pod` under each claim it uses.
    pub fn add_pod(&self, pod: &Arc<PodOnNode>) {
        let mut map = self.map();
        for claim in Self::claim_keys(pod) {
            map.entry(claim)
                .or_default()
                .insert(Self::pod_key(pod), pod.clone());
        }
    }

    /// Removes `pod` from each claim it uses.
    pub fn delete_pod(&self, pod: &PodOnNode) {
        let mut map = self.map();
        for claim in Self::claim_keys(pod) {
            if let Some(pods) = map.get_mut(&claim) {
                pods.remove(&Self::pod_key(pod));
                if pods.is_empty() {
                    map.remove(&claim);
                }
            }
        }
    }

    /// The Pods using claim `namespace/name`, by `namespace/pod` key.
    pub fn pods_by_pvc(&self, namespace: &str, name: &str) -> BTreeMap<String, Arc<PodOnNode>> {
        self.map()
            .get(&format!("{namespace}/{name}"))
            .cloned()
            .unwrap_or_default()
    }
}

/// Whether `node` is Ready.
pub fn is_node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// The node watcher's state and reports.
#[derive(Debug)]
pub struct NodeWatcher {
    driver_name: String,
    listers: Arc<dyn Listers>,
    events: Arc<dyn EventRecorder>,
    pods: Arc<PvcToPodsCache>,
    state: Mutex<NodeState>,
}

#[derive(Debug, Default)]
struct NodeState {
    /// When each not-Ready node was first seen not Ready.
    first_broken: HashMap<String, Instant>,
    /// Nodes reported failed and not yet recovered.
    marked_down: HashSet<String>,
}

impl NodeWatcher {
    /// A watcher reporting on `driver_name`'s volumes.
    pub fn new(
        driver_name: String,
        listers: Arc<dyn Listers>,
        events: Arc<dyn EventRecorder>,
        pods: Arc<PvcToPodsCache>,
    ) -> Self {
        NodeWatcher {
            driver_name,
            listers,
            events,
            pods,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Upstream's `updateNode`: a Ready node clears its not-Ready time and, if it was
    /// reported failed, is reported recovered; a broken node is reported failed.
    pub fn update_node(&self, node: &Node, now: Instant) {
        let name = node.metadata.name.clone().unwrap_or_default();
        if is_node_ready(node) {
            let was_down = {
                let mut state = self.state();
                state.first_broken.remove(&name);
                state.marked_down.contains(&name)
            };
            if was_down {
                self.report(&name, |_| {
                    (
                        "NodeRecovered".to_string(),
                        format!("Node: {name} recovered"),
                    )
                });
                self.state().marked_down.remove(&name);
            }
            return;
        }
        if self.is_node_broken(node, now) {
            info!(node = name, "Node is broken");
            self.mark_failed(&name);
            let mut state = self.state();
            state.first_broken.remove(&name);
            state.marked_down.insert(name);
        }
    }

    /// Upstream's `deleteNode`: a node that is gone is reported failed.
    pub fn delete_node(&self, name: &str) {
        info!(node = name, "Node is deleted, so mark the PVs on the node");
        self.mark_failed(name);
    }

    /// Upstream's `isNodeBroken`: terminated, or not Ready since more than
    /// [`NODE_NOT_READY_TIMEOUT`] (the first sighting only starts the clock).
    fn is_node_broken(&self, node: &Node, now: Instant) -> bool {
        let status = node.status.as_ref();
        if status.and_then(|s| s.phase.as_deref()) == Some("Terminated") {
            return true;
        }
        let name = node.metadata.name.clone().unwrap_or_default();
        let not_ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status != "True"));
        if !not_ready {
            return false;
        }
        let mut state = self.state();
        match state.first_broken.get(&name) {
            Some(first) => now.saturating_duration_since(*first) > NODE_NOT_READY_TIMEOUT,
            None => {
                state.first_broken.insert(name, now);
                false
            }
        }
    }

    fn mark_failed(&self, node: &str) {
        self.report(node, |pods| {
            let names: Vec<&str> = pods
                .iter()
                .map(|p| p.metadata.name.as_deref().unwrap_or_default())
                .collect();
            let listed: String = names.iter().map(|n| format!("{n} ")).collect();
            ("NodeFailed".to_string(), format!("Pods: [ {listed}]"))
        });
    }

    /// Records a Warning on the claim of every bound volume of this driver used by a Pod on
    /// `node`; `event` makes the reason and message from those Pods.
    fn report(&self, node: &str, event: impl Fn(&[Arc<PodOnNode>]) -> (String, String)) {
        for pv in self.listers.volumes() {
            if !is_managed(&pv, &self.driver_name) || !is_bound(&pv) {
                continue;
            }
            let (namespace, name) = claim_of(&pv);
            let on_node: Vec<Arc<PodOnNode>> = self
                .pods
                .pods_by_pvc(&namespace, &name)
                .into_values()
                .filter(|p| p.spec.node_name.as_deref() == Some(node))
                .collect();
            if on_node.is_empty() {
                continue;
            }
            let Some(claim) = self.listers.claim(&namespace, &name) else {
                error!(
                    pvc = format!("{namespace}/{name}"),
                    "Get PVC from PVC lister error"
                );
                continue;
            };
            let (reason, mut message) = event(&on_node);
            if reason == "NodeFailed" {
                message = format!(
                    "{message} consuming PVC: {name} in namespace: {namespace} are now on a failed node: {node}"
                );
            }
            self.events
                .record(&*claim, EventType::Warning, &reason, &message);
        }
    }
}
