//! Topology: the accessibility requirements of a `CreateVolume` request, and the node affinity
//! of the PersistentVolume made from the volume's accessible topology (upstream's
//! `pkg/controller/topology.go` as of v6.4.0).
//!
//! Owns: which topology segments are *requisite* and in which order they are *preferred*,
//! from the StorageClass's `allowedTopologies`, the selected node (`--strict-topology`), the
//! CSINodes that registered this driver's topology keys and the labels of their Nodes
//! (`--immediate-topology`), and the StatefulSet-name spreading of Immediate claims.
//!
//! Reads no API: the caller passes the CSINodes and Nodes it has ([`ClusterTopology`]), and a
//! per-claim [`TopologyMemo`] that keeps what one claim already learned (its selected node's
//! keys and labels, its requisite terms) across retries, so that a claim whose node vanished
//! meanwhile is still provisioned for the same topology, as upstream's in-memory store does.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use csi_proto::csi::v1::{Topology, TopologyRequirement};
use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, TopologySelectorTerm,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::CSINode;
use tracing::warn;

/// One `key=value` pair of a topology term.
pub type Segment = (String, String);

/// A topology term: segments that hold together (AND). Kept sorted by key, then value, so that
/// [`TopologyTerm::compare`] and [`TopologyTerm::subset`] work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopologyTerm(pub Vec<Segment>);

impl TopologyTerm {
    /// A term of `segments`, sorted.
    pub fn new(segments: impl IntoIterator<Item = Segment>) -> Self {
        let mut term = TopologyTerm(segments.into_iter().collect());
        term.sort();
        term
    }

    /// Sorts the segments by key, then by value.
    pub fn sort(&mut self) {
        self.0.sort();
    }

    /// Upstream's term order: a shorter term first, then segment by segment (key, then value).
    pub fn compare(&self, other: &TopologyTerm) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }

    /// Whether every segment of `self` is in `other` (both sorted). An empty term is a subset
    /// of everything.
    pub fn subset(&self, other: &TopologyTerm) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let mut j = 0;
        for (key, value) in &other.0 {
            let (own_key, own_value) = &self.0[j];
            if own_key != key {
                continue;
            }
            if own_value != value {
                return false;
            }
            j += 1;
            if j == self.0.len() {
                return true;
            }
        }
        false
    }

    /// The term as a CSI topology.
    pub fn to_csi(&self) -> Topology {
        Topology {
            segments: self.0.iter().cloned().collect(),
        }
    }
}

/// Go's `%v` of a term: `[{key value} {key value}]`.
impl fmt::Display for TopologyTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let segments: Vec<String> = self.0.iter().map(|(k, v)| format!("{{{k} {v}}}")).collect();
        write!(f, "[{}]", segments.join(" "))
    }
}

fn terms_display(terms: &[TopologyTerm]) -> String {
    let terms: Vec<String> = terms.iter().map(|t| t.to_string()).collect();
    format!("[{}]", terms.join(" "))
}

fn keys_display(keys: &[String]) -> String {
    format!("[{}]", keys.join(" "))
}

fn labels_display(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", pairs.join(" "))
}

/// Why no accessibility requirements could be made. The messages are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The selected node has no CSINode. Upstream asks the scheduler to pick another node
    /// (provisioning state Reschedule): see [`TopologyError::is_not_found`].
    #[error("failed to get selected CSINode {node}: csinode.storage.k8s.io \"{node}\" not found")]
    SelectedCsiNodeNotFound {
        /// The selected node.
        node: String,
    },
    /// The driver registered no topology key on the selected node's CSINode.
    #[error("no topology key found for node {node}")]
    NoTopologyKeys {
        /// The selected node.
        node: String,
    },
    /// The selected Node lacks a label for one of the keys its CSINode registered (or the Node
    /// does not exist).
    #[error(
        "topology labels from selected node {} does not match topology keys from CSINode {}",
        labels_display(.labels),
        keys_display(.keys)
    )]
    SelectedNodeLabelsMissing {
        /// The Node's labels, as far as known.
        labels: BTreeMap<String, String>,
        /// The keys the CSINode registered.
        keys: Vec<String>,
    },
    /// With `--strict-topology`, the selected node's topology is outside `allowedTopologies`.
    #[error(
        "selected node '\"{node}\"' topology '{topology}' is not in allowed topologies: {}",
        terms_display(.allowed)
    )]
    NotInAllowedTopologies {
        /// The selected node.
        node: String,
        /// Its topology.
        topology: TopologyTerm,
        /// The flattened allowed topologies.
        allowed: Vec<TopologyTerm>,
    },
    /// No CSINode registered topology keys for the driver (it runs on no node yet).
    #[error("no available topology found")]
    NoAvailableTopology,
    /// CSINodes registered keys, but no Node carries the labels.
    #[error("topologyKeys {keys} were not found on any nodes")]
    KeysNotOnAnyNode {
        /// The key sets, as Go prints them (`[[a b]]` or `[a b]`).
        keys: String,
    },
    /// The selected node's topology is not among the requisite terms.
    #[error("topology {topology} from selected node \"{node}\" is not in requisite: {}", terms_display(.requisite))]
    SelectedNotInRequisite {
        /// The selected node.
        node: String,
        /// Its topology.
        topology: TopologyTerm,
        /// The requisite terms.
        requisite: Vec<TopologyTerm>,
    },
}

impl TopologyError {
    /// Whether an object was not found (upstream's `apierrors.IsNotFound` on the error): then
    /// the provisioner asks for the claim to be rescheduled.
    pub fn is_not_found(&self) -> bool {
        matches!(self, TopologyError::SelectedCsiNodeNotFound { .. })
    }
}

/// The CSINodes and Nodes the requirements are computed from (from the caller's caches).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterTopology<'a> {
    /// Every CSINode.
    pub csi_nodes: &'a [CSINode],
    /// Every Node.
    pub nodes: &'a [Node],
}

impl<'a> ClusterTopology<'a> {
    fn csi_node(&self, name: &str) -> Option<&'a CSINode> {
        self.csi_nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
    }

    fn node(&self, name: &str) -> Option<&'a Node> {
        self.nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
    }
}

/// What one claim learned while its requirements were computed (upstream's `TopologyInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopologyInfo {
    /// The selected Node's labels.
    pub node_labels: BTreeMap<String, String>,
    /// The topology keys of the selected node's CSINode.
    pub topology_keys: Vec<String>,
    /// The aggregated requisite terms (not yet sorted).
    pub requisite_terms: Vec<TopologyTerm>,
}

/// Per-claim topology memory, keyed by PVC UID (upstream's `InMemoryStore`). [`crate::provision()`]
/// forgets a claim once it is provisioned or `CreateVolume` failed with Finished or Reschedule;
/// the caller must also forget a claim that is deleted before that (upstream never does, so its
/// store keeps such entries for the life of the process).
#[derive(Debug, Clone, Default)]
pub struct TopologyMemo {
    claims: HashMap<String, TopologyInfo>,
}

impl TopologyMemo {
    /// An empty memo.
    pub fn new() -> Self {
        Self::default()
    }

    /// What is known about the claim `pvc_uid`.
    pub fn get(&self, pvc_uid: &str) -> Option<&TopologyInfo> {
        self.claims.get(pvc_uid)
    }

    /// Forgets the claim `pvc_uid`.
    pub fn forget(&mut self, pvc_uid: &str) {
        self.claims.remove(pvc_uid);
    }

    /// Takes what is known about `pvc_uid` out into a memo of its own, so that one attempt
    /// can run without holding the shared memo; [`TopologyMemo::absorb`] puts it back.
    pub fn take(&mut self, pvc_uid: &str) -> TopologyMemo {
        let mut taken = TopologyMemo::new();
        if let Some(info) = self.claims.remove(pvc_uid) {
            taken.claims.insert(pvc_uid.to_string(), info);
        }
        taken
    }

    /// Adds everything `other` knows (what an attempt left after [`TopologyMemo::take`]).
    pub fn absorb(&mut self, other: TopologyMemo) {
        self.claims.extend(other.claims);
    }

    fn entry(&mut self, pvc_uid: &str) -> &mut TopologyInfo {
        self.claims.entry(pvc_uid.to_string()).or_default()
    }
}

/// The claim and the flags the requirements depend on.
#[derive(Debug, Clone, Copy)]
pub struct AccessibilityRequest<'a> {
    /// This driver's name.
    pub driver_name: &'a str,
    /// The PVC's UID (the memo's key).
    pub pvc_uid: &'a str,
    /// The PVC's name (StatefulSet spreading).
    pub pvc_name: &'a str,
    /// The StorageClass's `allowedTopologies`.
    pub allowed_topologies: &'a [TopologySelectorTerm],
    /// `volume.kubernetes.io/selected-node`; empty for Immediate binding.
    pub selected_node: &'a str,
    /// `--strict-topology`.
    pub strict_topology: bool,
    /// `--immediate-topology`.
    pub immediate_topology: bool,
}

/// The topology requirements of `CreateVolume` (upstream's `GenerateAccessibilityRequirements`),
/// or `None` when the claim and its class put no limit on where the volume goes.
///
/// With a selected node (WaitForFirstConsumer), its CSINode's keys for this driver and its
/// Node's labels give the selected topology. With `strict_topology` that is the only requisite
/// term (it must be inside `allowedTopologies`, if any). Otherwise the requisite terms are the
/// flattened `allowedTopologies`, or else the topologies of every Node whose CSINode registered
/// the keys (the selected node's keys; for Immediate binding, each distinct key set the driver
/// registered, and only when `immediate_topology`). The terms are sorted and deduplicated.
/// Preferred is requisite rotated so that it starts with the selected node's topology, or for
/// Immediate binding at an offset from the hash of the StatefulSet name in the PVC name plus
/// its ordinal, so that a StatefulSet's volumes spread over the topologies.
pub fn generate_accessibility_requirements(
    request: &AccessibilityRequest<'_>,
    cluster: &ClusterTopology<'_>,
    memo: &mut TopologyMemo,
) -> Result<Option<TopologyRequirement>, TopologyError> {
    let selected_node = request.selected_node;
    let mut selected_topology = TopologyTerm::default();
    let mut topology_keys: Vec<String> = Vec::new();
    let mut requisite: Vec<TopologyTerm> = Vec::new();

    // 1. The selected node's topology.
    if !selected_node.is_empty() {
        topology_keys = topology_keys_lookup(request, cluster, memo)?;
        if topology_keys.is_empty() {
            return Err(TopologyError::NoTopologyKeys {
                node: selected_node.to_string(),
            });
        }
        selected_topology = topology_from_node_name(request, &topology_keys, cluster, memo)?;
        if request.strict_topology {
            if !request.allowed_topologies.is_empty() {
                let allowed = flatten(request.allowed_topologies);
                if !allowed.iter().any(|t| t.subset(&selected_topology)) {
                    return Err(TopologyError::NotInAllowedTopologies {
                        node: selected_node.to_string(),
                        topology: selected_topology,
                        allowed,
                    });
                }
            }
            requisite.push(selected_topology.clone());
        }
    }

    // 2. Requisite.
    if requisite.is_empty() {
        if !request.allowed_topologies.is_empty() {
            requisite = flatten(request.allowed_topologies);
        } else {
            if selected_node.is_empty() && !request.immediate_topology {
                return Ok(None);
            }
            requisite = aggregate_topologies(request, &topology_keys, cluster, memo)?;
            if requisite.is_empty() {
                return Err(TopologyError::NoAvailableTopology);
            }
        }
    }
    // Only possible when allowedTopologies has empty entries: no requirement then.
    if requisite.is_empty() {
        return Ok(None);
    }
    requisite.sort_by(TopologyTerm::compare);
    requisite.dedup();

    // 3. Preferred.
    let preferred: Vec<TopologyTerm> = if selected_node.is_empty() {
        let (hash, index) = pvc_name_hash_and_index_offset(request.pvc_name);
        let i = (hash.wrapping_add(index) % requisite.len() as u32) as usize;
        rotate(&requisite, i)
    } else if request.strict_topology {
        requisite.clone()
    } else {
        match requisite.iter().position(|t| t.subset(&selected_topology)) {
            Some(i) => rotate(&requisite, i),
            None => {
                return Err(TopologyError::SelectedNotInRequisite {
                    node: selected_node.to_string(),
                    topology: selected_topology,
                    requisite,
                });
            }
        }
    };

    Ok(Some(TopologyRequirement {
        requisite: to_csi_topology(&requisite),
        preferred: to_csi_topology(&preferred),
    }))
}

fn rotate(terms: &[TopologyTerm], i: usize) -> Vec<TopologyTerm> {
    terms[i..].iter().chain(&terms[..i]).cloned().collect()
}

fn to_csi_topology(terms: &[TopologyTerm]) -> Vec<Topology> {
    terms
        .iter()
        .filter(|t| !t.0.is_empty())
        .map(TopologyTerm::to_csi)
        .collect()
}

fn topology_keys_lookup(
    request: &AccessibilityRequest<'_>,
    cluster: &ClusterTopology<'_>,
    memo: &mut TopologyMemo,
) -> Result<Vec<String>, TopologyError> {
    if let Some(info) = memo.get(request.pvc_uid)
        && !info.topology_keys.is_empty()
    {
        return Ok(info.topology_keys.clone());
    }
    let csi_node = cluster.csi_node(request.selected_node).ok_or_else(|| {
        TopologyError::SelectedCsiNodeNotFound {
            node: request.selected_node.to_string(),
        }
    })?;
    let keys = topology_keys(csi_node, request.driver_name);
    if !keys.is_empty() {
        memo.entry(request.pvc_uid).topology_keys = keys.clone();
    }
    Ok(keys)
}

/// The topology keys `driver_name` registered in `csi_node` (empty when it is not there).
pub fn topology_keys(csi_node: &CSINode, driver_name: &str) -> Vec<String> {
    csi_node
        .spec
        .drivers
        .iter()
        .find(|d| d.name == driver_name)
        .and_then(|d| d.topology_keys.clone())
        .unwrap_or_default()
}

/// The term of `keys` in `labels`, or `None` when a key is missing.
fn extract_term(labels: &BTreeMap<String, String>, keys: &[String]) -> Option<TopologyTerm> {
    let mut segments = Vec::with_capacity(keys.len());
    for key in keys {
        segments.push((key.clone(), labels.get(key)?.clone()));
    }
    Some(TopologyTerm::new(segments))
}

fn topology_from_node_name(
    request: &AccessibilityRequest<'_>,
    keys: &[String],
    cluster: &ClusterTopology<'_>,
    memo: &mut TopologyMemo,
) -> Result<TopologyTerm, TopologyError> {
    let remembered = memo
        .get(request.pvc_uid)
        .map(|info| info.node_labels.clone())
        .unwrap_or_default();
    if !remembered.is_empty()
        && let Some(term) = extract_term(&remembered, keys)
    {
        return Ok(term);
    }
    // Remembered labels that lack a key may be stale: read the Node again.
    let Some(node) = cluster.node(request.selected_node) else {
        return Err(TopologyError::SelectedNodeLabelsMissing {
            labels: remembered,
            keys: keys.to_vec(),
        });
    };
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if !labels.is_empty() {
        memo.entry(request.pvc_uid).node_labels = labels.clone();
    }
    extract_term(&labels, keys).ok_or_else(|| TopologyError::SelectedNodeLabelsMissing {
        labels,
        keys: keys.to_vec(),
    })
}

/// The distinct key sets `driver_name` registered across `csi_nodes`, each sorted, in sorted
/// order; CSINodes without the driver or without keys are skipped (upstream's
/// `distinctTopologyKeySets`).
pub fn distinct_topology_key_sets(csi_nodes: &[CSINode], driver_name: &str) -> Vec<Vec<String>> {
    let mut sets = BTreeSet::new();
    for csi_node in csi_nodes {
        let mut keys = topology_keys(csi_node, driver_name);
        if keys.is_empty() {
            continue;
        }
        keys.sort();
        sets.insert(keys);
    }
    sets.into_iter().collect()
}

/// Node name → the keys `driver_name` registered on it; nodes without keys are left out
/// (upstream's `registeredTopologyKeys`).
pub fn registered_topology_keys(
    csi_nodes: &[CSINode],
    driver_name: &str,
) -> BTreeMap<String, BTreeSet<String>> {
    csi_nodes
        .iter()
        .filter_map(|csi_node| {
            let keys = topology_keys(csi_node, driver_name);
            (!keys.is_empty()).then(|| {
                (
                    csi_node.metadata.name.clone().unwrap_or_default(),
                    keys.into_iter().collect(),
                )
            })
        })
        .collect()
}

/// One term per Node that has every key as a label and whose CSINode registered every key
/// (node labels alone are not enough: the driver must have reported the keys there).
fn aggregate_for_keys(
    keys: &[String],
    nodes: &[Node],
    registered: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<TopologyTerm> {
    let empty = BTreeMap::new();
    nodes
        .iter()
        .filter(|node| {
            let name = node.metadata.name.as_deref().unwrap_or_default();
            registered
                .get(name)
                .is_some_and(|own| keys.iter().all(|k| own.contains(k)))
        })
        .filter_map(|node| extract_term(node.metadata.labels.as_ref().unwrap_or(&empty), keys))
        .filter(|term| !term.0.is_empty())
        .collect()
}

fn aggregate_topologies(
    request: &AccessibilityRequest<'_>,
    selected_keys: &[String],
    cluster: &ClusterTopology<'_>,
    memo: &mut TopologyMemo,
) -> Result<Vec<TopologyTerm>, TopologyError> {
    if let Some(info) = memo.get(request.pvc_uid)
        && !info.requisite_terms.is_empty()
    {
        return Ok(info.requisite_terms.clone());
    }
    let registered = registered_topology_keys(cluster.csi_nodes, request.driver_name);
    let terms = if request.selected_node.is_empty() {
        let key_sets = distinct_topology_key_sets(cluster.csi_nodes, request.driver_name);
        if key_sets.is_empty() {
            warn!("No topology keys found on any node");
            return Ok(Vec::new());
        }
        let terms: Vec<TopologyTerm> = key_sets
            .iter()
            .flat_map(|keys| aggregate_for_keys(keys, cluster.nodes, &registered))
            .collect();
        if terms.is_empty() {
            let sets: Vec<String> = key_sets.iter().map(|k| keys_display(k)).collect();
            return Err(TopologyError::KeysNotOnAnyNode {
                keys: format!("[{}]", sets.join(" ")),
            });
        }
        terms
    } else {
        let terms = aggregate_for_keys(selected_keys, cluster.nodes, &registered);
        if terms.is_empty() {
            return Err(TopologyError::KeysNotOnAnyNode {
                keys: keys_display(selected_keys),
            });
        }
        terms
    };
    memo.entry(request.pvc_uid).requisite_terms = terms.clone();
    Ok(terms)
}

/// `allowedTopologies` as terms: within a selector term the values of each key are ORed and the
/// keys ANDed, so the OR is distributed over the AND (`{zone: [z1, z2], rack: [a]}` becomes
/// `{z1, a}`, `{z2, a}`); the terms of all selector terms are ORed (upstream's `flatten`).
pub fn flatten(allowed_topologies: &[TopologySelectorTerm]) -> Vec<TopologyTerm> {
    let mut out = Vec::new();
    for selector in allowed_topologies {
        let mut terms: Vec<Vec<Segment>> = Vec::new();
        for expression in selector.match_label_expressions.iter().flatten() {
            let mut next = Vec::new();
            for value in &expression.values {
                let segment = (expression.key.clone(), value.clone());
                if terms.is_empty() {
                    next.push(vec![segment]);
                } else {
                    for term in &terms {
                        let mut term = term.clone();
                        term.push(segment.clone());
                        next.push(term);
                    }
                }
            }
            terms = next;
        }
        out.extend(terms.into_iter().map(TopologyTerm::new));
    }
    out
}

/// The node affinity of a volume with `accessible_topology`: one term per topology, one `In`
/// requirement per segment, or `None` without topology (upstream's
/// `GenerateVolumeNodeAffinity`). Requirements are ordered by key (upstream's follow Go's map
/// order, which varies).
pub fn volume_node_affinity(accessible_topology: &[Topology]) -> Option<VolumeNodeAffinity> {
    if accessible_topology.is_empty() {
        return None;
    }
    let terms: Vec<NodeSelectorTerm> = accessible_topology
        .iter()
        .filter(|t| !t.segments.is_empty())
        .map(|t| {
            let segments: BTreeMap<&String, &String> = t.segments.iter().collect();
            NodeSelectorTerm {
                match_expressions: Some(
                    segments
                        .into_iter()
                        .map(|(k, v)| NodeSelectorRequirement {
                            key: k.clone(),
                            operator: "In".to_string(),
                            values: Some(vec![v.clone()]),
                        })
                        .collect(),
                ),
                match_fields: None,
            }
        })
        .collect();
    Some(VolumeNodeAffinity {
        required: Some(NodeSelector {
            node_selector_terms: terms,
        }),
    })
}

/// Whether a node with `node_topology` (its NodeGetInfo accessible topology) may use a volume
/// with `affinity` (upstream's `VolumeIsAccessible`): without either, yes; else whether the
/// topology, taken as the node's labels, matches one of the required node selector terms
/// (component-helpers' `MatchNodeSelectorTerms`). An invalid requirement is an error when no
/// term matches.
pub fn volume_is_accessible(
    affinity: Option<&VolumeNodeAffinity>,
    node_topology: Option<&Topology>,
) -> Result<bool, String> {
    let (Some(node_topology), Some(required)) =
        (node_topology, affinity.and_then(|a| a.required.as_ref()))
    else {
        return Ok(true);
    };
    let labels = &node_topology.segments;
    let mut errors = Vec::new();
    for term in &required.node_selector_terms {
        let expressions = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        if expressions.is_empty() && fields.is_empty() {
            continue;
        }
        let mut matches = true;
        for requirement in expressions {
            match requirement_matches(requirement, labels.get(&requirement.key)) {
                Ok(true) => {}
                Ok(false) => matches = false,
                Err(e) => {
                    errors.push(e);
                    matches = false;
                }
            }
        }
        // The node here has no name: a field requirement (`metadata.name`) sees "".
        for requirement in fields {
            let empty = String::new();
            match requirement_matches(requirement, Some(&empty)) {
                Ok(true) => {}
                Ok(false) => matches = false,
                Err(e) => {
                    errors.push(e);
                    matches = false;
                }
            }
        }
        if matches {
            return Ok(true);
        }
    }
    if errors.is_empty() {
        Ok(false)
    } else {
        Err(errors.join(", "))
    }
}

fn requirement_matches(
    requirement: &NodeSelectorRequirement,
    value: Option<&String>,
) -> Result<bool, String> {
    let values = requirement.values.as_deref().unwrap_or_default();
    match requirement.operator.as_str() {
        "In" => Ok(value.is_some_and(|v| values.contains(v))),
        "NotIn" => Ok(!value.is_some_and(|v| values.contains(v))),
        "Exists" => Ok(value.is_some()),
        "DoesNotExist" => Ok(value.is_none()),
        op @ ("Gt" | "Lt") => {
            let [bound] = values else {
                return Err(format!(
                    "for '{op}' operator, exactly one value is required"
                ));
            };
            let bound: i64 = bound
                .parse()
                .map_err(|_| format!("for '{op}' operator, the value must be an integer"))?;
            Ok(value
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| if op == "Gt" { v > bound } else { v < bound }))
        }
        op => Err(format!("{op:?} is not a valid label selector operator")),
    }
}

/// Go's `hash/fnv` `New32` (FNV-1, 32 bits).
fn fnv1_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2_166_136_261u32, |hash, b| {
        hash.wrapping_mul(16_777_619) ^ u32::from(*b)
    })
}

/// The spreading hash and offset of a PVC name (upstream's and Kubernetes'
/// `getPVCNameHashAndIndexOffset`): for `<claim>-<statefulset>-<ordinal>` the hash of the
/// StatefulSet name only (so one member's claims stay together) and the ordinal as offset (so
/// members go round-robin); for `<name>-<n>` the hash of `<name>` and `n`; else the hash of
/// the whole name and 0. An empty name gets a random hash.
pub fn pvc_name_hash_and_index_offset(pvc_name: &str) -> (u32, u32) {
    if pvc_name.is_empty() {
        use std::hash::{BuildHasher, RandomState};
        return (RandomState::new().hash_one(0u8) as u32, 0);
    }
    let mut hashed = pvc_name;
    let mut index = 0;
    if let Some(last_dash) = pvc_name.rfind('-')
        && let Ok(ordinal) = parse_go_uint32(&pvc_name[last_dash + 1..])
    {
        index = ordinal;
        hashed = &pvc_name[..last_dash];
        if let Some(dash) = hashed.rfind('-') {
            hashed = &hashed[dash + 1..];
        }
    }
    (fnv1_32(hashed.as_bytes()), index)
}

/// Go's `strconv.ParseUint(s, 10, 32)`: ASCII digits only (underscores are not allowed in base
/// 10), at most `u32::MAX`.
fn parse_go_uint32(s: &str) -> Result<u32, ()> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    s.parse::<u32>().map_err(|_| ())
}

#[cfg(test)]
mod unit {
    use super::*;

    fn affinity(operator: &str, values: &[&str]) -> VolumeNodeAffinity {
        VolumeNodeAffinity {
            required: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: "zone".into(),
                        operator: operator.into(),
                        values: Some(values.iter().map(|v| v.to_string()).collect()),
                    }]),
                    match_fields: None,
                }],
            }),
        }
    }

    #[test]
    fn volume_accessibility() {
        let node = Topology {
            segments: [("zone".to_string(), "3".to_string())].into(),
        };
        let accessible = |a: &VolumeNodeAffinity| volume_is_accessible(Some(a), Some(&node));
        assert_eq!(volume_is_accessible(None, Some(&node)), Ok(true));
        assert_eq!(
            volume_is_accessible(Some(&affinity("In", &["1"])), None),
            Ok(true)
        );
        assert_eq!(accessible(&affinity("In", &["3"])), Ok(true));
        assert_eq!(accessible(&affinity("In", &["1", "2"])), Ok(false));
        assert_eq!(accessible(&affinity("NotIn", &["1"])), Ok(true));
        assert_eq!(accessible(&affinity("Exists", &[])), Ok(true));
        assert_eq!(accessible(&affinity("DoesNotExist", &[])), Ok(false));
        assert_eq!(accessible(&affinity("Gt", &["2"])), Ok(true));
        assert_eq!(accessible(&affinity("Lt", &["2"])), Ok(false));
        assert!(accessible(&affinity("Gt", &["x"])).is_err());
        assert!(accessible(&affinity("Near", &["3"])).is_err());
        let empty = VolumeNodeAffinity {
            required: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm::default()],
            }),
        };
        assert_eq!(accessible(&empty), Ok(false));
    }

    #[test]
    fn fnv_matches_go() {
        // hash/fnv New32 of "" and "a".
        assert_eq!(fnv1_32(b""), 0x811c9dc5);
        assert_eq!(fnv1_32(b"a"), 0x050c5d7e);
    }
}
