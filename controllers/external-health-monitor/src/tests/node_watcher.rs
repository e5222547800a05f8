//! Upstream's `pkg/util/pvc_to_pods_cache_test.go`, and the node watcher's reports (upstream
//! has no test of them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::fixtures::*;
use crate::node_watcher::{
    ClaimSource, ClaimVolume, NODE_NOT_READY_TIMEOUT, NodeWatcher, PodOnNode, PodOnNodeSpec,
    PvcToPodsCache,
};

fn pod(name: &str, namespace: &str, claim: &str, node: &str) -> Arc<PodOnNode> {
    Arc::new(PodOnNode {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        spec: PodOnNodeSpec {
            node_name: Some(node.to_string()),
            volumes: vec![ClaimVolume {
                persistent_volume_claim: ClaimSource {
                    claim_name: claim.to_string(),
                },
            }],
        },
    })
}

/// `TestPVCToPodsCache_AddPod` and `TestPVCToPodsCache_DeletePod` (case1 each), which upstream
/// runs in this order on one cache.
#[test]
fn pvc_to_pods_cache_add_then_delete() {
    let cache = PvcToPodsCache::default();
    let pod1 = pod("pod1", "default", "pvc1", "node1");
    cache.add_pod(&pod1);
    let got = cache.pods_by_pvc("default", "pvc1");
    assert_eq!(got.len(), 1, "AddPod case1");
    assert_eq!(got["default/pod1"], pod1, "AddPod case1");
    cache.delete_pod(&pod1);
    assert!(
        cache.pods_by_pvc("default", "pvc1").is_empty(),
        "DeletePod case1"
    );
}

#[test]
fn pod_on_node_decodes_a_pod() {
    let json = serde_json::json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"a": "b"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}],
                 "volumes": [{"name": "a", "emptyDir": {}},
                             {"name": "b", "persistentVolumeClaim": {"claimName": "data"}}]},
        "status": {"phase": "Running"}
    });
    let pod: PodOnNode = serde_json::from_value(json).unwrap();
    assert_eq!(pod.metadata.labels, None);
    assert_eq!(pod.spec.node_name.as_deref(), Some("n1"));
    assert_eq!(pod.spec.volumes.len(), 1);
    assert_eq!(
        pod.spec.volumes[0].persistent_volume_claim.claim_name,
        "data"
    );
}

fn ready(name: &str, ready: bool) -> k8s_openapi::api::core::v1::Node {
    let mut node = create_node(name);
    node.status = Some(NodeStatus {
        conditions: Some(vec![NodeCondition {
            type_: "Ready".to_string(),
            status: if ready { "True" } else { "False" }.to_string(),
            ..NodeCondition::default()
        }]),
        ..NodeStatus::default()
    });
    node
}

#[tokio::test]
async fn node_failure_and_recovery_are_reported_on_the_claims_of_pods_there() {
    let h = Harness::new().await;
    h.listers
        .add_pv(create_pv("pvc", "pv", DEFAULT_NS, "1", "Bound"));
    h.listers
        .add_pvc(create_pvc("pvc", "uid", DEFAULT_NS, "pv"));
    // A claim of another driver's volume on the same node is left alone.
    let mut other = create_pv("other", "pv2", DEFAULT_NS, "2", "Bound");
    other.spec.as_mut().unwrap().csi.as_mut().unwrap().driver = "other.csi".to_string();
    h.listers.add_pv(other);
    h.listers
        .add_pvc(create_pvc("other", "uid2", DEFAULT_NS, "pv2"));
    let pods = Arc::new(PvcToPodsCache::default());
    pods.add_pod(&pod("app-0", DEFAULT_NS, "pvc", "node1"));
    pods.add_pod(&pod("app-1", DEFAULT_NS, "other", "node1"));
    pods.add_pod(&pod("elsewhere", DEFAULT_NS, "pvc", "node2"));
    let watcher = NodeWatcher::new(
        DRIVER_NAME.to_string(),
        h.listers.clone(),
        h.events.clone(),
        pods,
    );

    let t0 = Instant::now();
    watcher.update_node(&ready("node1", false), t0);
    watcher.update_node(&ready("node1", false), t0 + Duration::from_secs(60));
    assert!(
        h.events.lines().is_empty(),
        "not Ready for less than five minutes"
    );
    watcher.update_node(
        &ready("node1", false),
        t0 + NODE_NOT_READY_TIMEOUT + Duration::from_secs(1),
    );
    assert_eq!(
        h.events.lines(),
        [
            "Warning NodeFailed Pods: [ app-0 ] consuming PVC: pvc in namespace: test are now on a failed node: node1"
        ]
    );
    assert_eq!(
        h.events.all()[0].object_key(),
        "PersistentVolumeClaim test/pvc"
    );
    h.events.take();
    watcher.update_node(&ready("node1", true), t0 + Duration::from_secs(400));
    assert_eq!(
        h.events.lines(),
        ["Warning NodeRecovered Node: node1 recovered"]
    );
    h.events.take();
    watcher.update_node(&ready("node1", true), t0 + Duration::from_secs(500));
    assert!(h.events.lines().is_empty(), "recovered once");

    watcher.delete_node("node2");
    assert_eq!(
        h.events.lines(),
        [
            "Warning NodeFailed Pods: [ elsewhere ] consuming PVC: pvc in namespace: test are now on a failed node: node2"
        ]
    );
}

#[tokio::test]
async fn a_terminated_node_is_broken_at_once() {
    let h = Harness::new().await;
    h.listers
        .add_pv(create_pv("pvc", "pv", DEFAULT_NS, "1", "Bound"));
    h.listers
        .add_pvc(create_pvc("pvc", "uid", DEFAULT_NS, "pv"));
    let pods = Arc::new(PvcToPodsCache::default());
    pods.add_pod(&pod("app-0", DEFAULT_NS, "pvc", "node1"));
    let watcher = NodeWatcher::new(
        DRIVER_NAME.to_string(),
        h.listers.clone(),
        h.events.clone(),
        pods,
    );
    let mut node = create_node("node1");
    node.status = Some(NodeStatus {
        phase: Some("Terminated".to_string()),
        ..NodeStatus::default()
    });
    watcher.update_node(&node, Instant::now());
    assert_eq!(h.events.reasons(), ["NodeFailed"]);
}
