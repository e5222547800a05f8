//! `--node-deployment`: one provisioner per node, each provisioning only the claims whose
//! `volume.kubernetes.io/selected-node` is its node (upstream's `checkNode`). An Immediate
//! claim has no selected node: every instance waits a jittered, growing delay
//! (`--node-deployment-base-delay` → `--node-deployment-max-delay`), gives up early when
//! another instance took the claim, checks its driver's capacity (`GetCapacity` with the
//! request it would make), and then selects its own node with a claim update
//! (`becomeOwner`). A conflict means another instance was faster: it tries again.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use csi_controller::random::random_fraction;
use csi_proto::csi::v1::GetCapacityRequest;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::CSINode;
use tracing::debug;

use crate::controller::NodeCheck;
use crate::csi::CapacityDriver;
use crate::kube::{Listers, ProvisionerApi};
use crate::params::requested_bytes;
use crate::provision::{
    ANN_SELECTED_NODE, DataSourceObjects, ProvisionOptions, ProvisionerConfig, prepare,
};
use crate::topology::{
    AccessibilityRequest, ClusterTopology, TopologyMemo, generate_accessibility_requirements,
};

/// The settings of `--node-deployment`.
#[derive(Debug, Clone)]
pub struct NodeDeploymentConfig {
    /// `NODE_NAME`.
    pub node_name: String,
    /// `--node-deployment-immediate-binding`.
    pub immediate_binding: bool,
    /// `--node-deployment-base-delay`.
    pub base_delay: Duration,
    /// `--node-deployment-max-delay`.
    pub max_delay: Duration,
}

/// Upstream's `rateLimiterWithJitter` over an exponential per-claim limiter: the delay
/// doubles with each attempt from the base to the max, minus a random part of the base.
#[derive(Debug)]
struct JitteredDelays {
    base: Duration,
    max: Duration,
    attempts: Mutex<HashMap<String, u32>>,
}

impl JitteredDelays {
    fn when(&self, uid: &str) -> Duration {
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = attempts.entry(uid.to_string()).or_insert(0);
        let exp = self
            .base
            .checked_mul(2u32.saturating_pow(*n))
            .unwrap_or(self.max)
            .min(self.max);
        *n = n.saturating_add(1);
        let jitter = self.base.mul_f64(random_fraction());
        exp.saturating_sub(jitter)
    }

    fn forget(&self, uid: &str) {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(uid);
    }

    fn attempts(&self, uid: &str) -> u32 {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uid)
            .copied()
            .unwrap_or(0)
    }
}

/// The [`NodeCheck`] of a node-deployed provisioner.
pub struct NodeOwner {
    node: NodeDeploymentConfig,
    config: ProvisionerConfig,
    listers: Arc<dyn Listers>,
    api: Arc<dyn ProvisionerApi>,
    capacity: Arc<dyn CapacityDriver>,
    delays: JitteredDelays,
}

impl fmt::Debug for NodeOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeOwner")
            .field("node", &self.node.node_name)
            .finish_non_exhaustive()
    }
}

fn selected_node(claim: &PersistentVolumeClaim) -> &str {
    claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_SELECTED_NODE))
        .map(String::as_str)
        .unwrap_or_default()
}

fn claim_name(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

impl NodeOwner {
    /// The check for `node`, reading from `listers`, selecting the node through `api` and
    /// asking `capacity` for room.
    pub fn new(
        node: NodeDeploymentConfig,
        config: ProvisionerConfig,
        listers: Arc<dyn Listers>,
        api: Arc<dyn ProvisionerApi>,
        capacity: Arc<dyn CapacityDriver>,
    ) -> Self {
        let delays = JitteredDelays {
            base: node.base_delay,
            max: node.max_delay,
            attempts: Mutex::new(HashMap::new()),
        };
        NodeOwner {
            node,
            config,
            listers,
            api,
            capacity,
            delays,
        }
    }

    fn cluster(&self) -> (Vec<CSINode>, Vec<Node>) {
        (
            self.listers
                .csi_nodes()
                .iter()
                .map(|n| (**n).clone())
                .collect(),
            self.listers.nodes().iter().map(|n| (**n).clone()).collect(),
        )
    }

    /// Upstream's `checkNode` for a claim without a selected node.
    async fn check_unselected(&self, claim: &PersistentVolumeClaim) -> Result<bool, String> {
        let class_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
            .unwrap_or_default();
        let class = self
            .listers
            .storage_class(&class_name)
            .ok_or_else(|| format!("storageclass.storage.k8s.io {class_name:?} not found"))?;
        if class.volume_binding_mode.as_deref() != Some("Immediate") || !self.node.immediate_binding
        {
            return Ok(false);
        }
        let allowed = class.allowed_topologies.clone().unwrap_or_default();
        if !allowed.is_empty() && self.config.capabilities.topology {
            if self.listers.node(&self.node.node_name).is_none() {
                return Err(format!("node {:?} not found", self.node.node_name));
            }
            let (csi_nodes, nodes) = self.cluster();
            let request = AccessibilityRequest {
                driver_name: &self.config.driver_name,
                pvc_uid: claim.metadata.uid.as_deref().unwrap_or_default(),
                pvc_name: claim.metadata.name.as_deref().unwrap_or_default(),
                allowed_topologies: &allowed,
                selected_node: &self.node.node_name,
                strict_topology: self.config.strict_topology,
                immediate_topology: self.config.immediate_topology,
            };
            let cluster = ClusterTopology {
                csi_nodes: &csi_nodes,
                nodes: &nodes,
            };
            if let Err(err) =
                generate_accessibility_requirements(&request, &cluster, &mut TopologyMemo::new())
            {
                debug!(
                    "should provision: ignoring PVC {}, allowed topologies is not compatible: {err}",
                    claim_name(claim)
                );
                return Ok(false);
            }
        }
        self.become_owner(claim)
            .await
            .map_err(|err| format!("PVC {}: {err}", claim_name(claim)))?;
        Ok(false)
    }

    /// Upstream's `becomeOwner`.
    async fn become_owner(&self, claim: &PersistentVolumeClaim) -> Result<(), String> {
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        loop {
            let attempt = self.delays.attempts(&uid);
            let delay = self.delays.when(&uid);
            debug!(
                "will try to become owner of PVC {} with resource version {} in {delay:?} (attempt #{attempt})",
                claim_name(claim),
                claim
                    .metadata
                    .resource_version
                    .as_deref()
                    .unwrap_or_default()
            );
            let poll = (self.node.base_delay / 100).max(Duration::from_millis(10));
            let deadline = tokio::time::Instant::now() + delay;
            let (taken, current) = loop {
                let (taken, current) = self.current(claim)?;
                if taken || tokio::time::Instant::now() >= deadline {
                    break (taken, current);
                }
                tokio::time::sleep(poll.min(deadline - tokio::time::Instant::now())).await;
            };
            if taken {
                self.delays.forget(&uid);
                debug!(
                    "did not become owner of PVC {}, now owned by {}",
                    claim_name(claim),
                    selected_node(&current)
                );
                return Ok(());
            }
            match self.has_capacity(claim).await {
                Err(err) => debug!(
                    "proceeding with becoming owner although the capacity check failed: {err}"
                ),
                Ok(false) => {
                    debug!("not enough capacity for PVC {}", claim_name(claim));
                    return Ok(());
                }
                Ok(true) => {}
            }
            let mut current = current;
            if selected_node(&current) == self.node.node_name {
                return Ok(());
            }
            current
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(ANN_SELECTED_NODE.to_string(), self.node.node_name.clone());
            match self.api.update_claim(&current).await {
                Ok(_) => {
                    self.delays.forget(&uid);
                    debug!("became owner of PVC {}", claim_name(claim));
                    return Ok(());
                }
                Err(err) if err.is_conflict() => {
                    debug!(
                        "conflict during PVC {} update, will try again",
                        claim_name(claim)
                    );
                }
                Err(err) => {
                    return Err(format!(
                        "selecting node {:?} for PVC failed: {err}",
                        self.node.node_name
                    ));
                }
            }
        }
    }

    /// The cached claim now, and whether another node took it.
    fn current(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Result<(bool, PersistentVolumeClaim), String> {
        let namespace = claim.metadata.namespace.as_deref().unwrap_or_default();
        let name = claim.metadata.name.as_deref().unwrap_or_default();
        let current = self
            .listers
            .claim(namespace, name)
            .ok_or_else(|| format!("PVC not found: persistentvolumeclaim {name:?} not found"))?;
        if current.metadata.uid != claim.metadata.uid {
            return Err("PVC was replaced".to_string());
        }
        let selected = selected_node(&current);
        Ok((
            !selected.is_empty() && selected != self.node.node_name,
            (*current).clone(),
        ))
    }

    /// Upstream's `checkCapacity`: `GetCapacity` for each requisite topology of the request
    /// this node would make; enough room in one is enough.
    async fn has_capacity(&self, claim: &PersistentVolumeClaim) -> Result<bool, String> {
        let bytes = requested_bytes(claim);
        if bytes == 0 {
            return Ok(true);
        }
        let class_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
            .ok_or("empty storage class name")?;
        let class = self
            .listers
            .storage_class(&class_name)
            .ok_or_else(|| format!("storageclass.storage.k8s.io {class_name:?} not found"))?;
        let (csi_nodes, nodes) = self.cluster();
        let options = ProvisionOptions {
            claim,
            storage_class: &class,
            selected_node: &self.node.node_name,
            volume_attributes_class: None,
            data_source: DataSourceObjects::None,
            cluster: ClusterTopology {
                csi_nodes: &csi_nodes,
                nodes: &nodes,
            },
        };
        let prepared = prepare(
            &self.config,
            &options,
            self.api.as_ref(),
            &mut TopologyMemo::new(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let requisite = prepared
            .request
            .accessibility_requirements
            .as_ref()
            .map(|r| r.requisite.clone())
            .filter(|r| !r.is_empty());
        let topologies: Vec<Option<_>> = match requisite {
            Some(list) => list.into_iter().map(Some).collect(),
            None => vec![None],
        };
        for topology in topologies {
            let request = GetCapacityRequest {
                volume_capabilities: prepared.request.volume_capabilities.clone(),
                parameters: prepared.request.parameters.clone(),
                accessible_topology: topology,
            };
            let response = self
                .capacity
                .get_capacity(request, self.config.timeout)
                .await
                .map_err(|e| format!("GetCapacity: {e}"))?;
            if bytes <= response.available_capacity {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl NodeCheck for NodeOwner {
    fn check<'a>(
        &'a self,
        claim: &'a PersistentVolumeClaim,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            match selected_node(claim) {
                "" => self.check_unselected(claim).await,
                node if node == self.node.node_name => Ok(true),
                _ => Ok(false),
            }
        })
    }

    fn forget(&self, claim_uid: &str) {
        self.delays.forget(claim_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_from_the_base_to_the_max_minus_a_jitter_below_the_base() {
        let delays = JitteredDelays {
            base: Duration::from_secs(20),
            max: Duration::from_secs(60),
            attempts: Mutex::new(HashMap::new()),
        };
        let first = delays.when("a");
        assert!(first <= Duration::from_secs(20), "{first:?}");
        let second = delays.when("a");
        assert!(
            second > Duration::from_secs(20) && second <= Duration::from_secs(40),
            "{second:?}"
        );
        let third = delays.when("a");
        assert!(
            third > Duration::from_secs(40) && third <= Duration::from_secs(60),
            "{third:?}"
        );
        assert_eq!(delays.attempts("a"), 3);
        delays.forget("a");
        assert_eq!(delays.attempts("a"), 0);
        assert!(delays.when("b") <= Duration::from_secs(20));
    }
}
