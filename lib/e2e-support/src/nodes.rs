//! Fake Nodes that kube-controller-manager's attach/detach
//! controller accepts (no kubelet runs them), and their CSINode objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};

/// The annotation that lets kube-controller-manager's attach/detach controller manage a Node
/// that no kubelet runs.
pub const CONTROLLER_MANAGED_ATTACH_DETACH: &str =
    "volumes.kubernetes.io/controller-managed-attach-detach";

/// Creates a Node object that no kubelet runs, annotated so the attach/detach controller
/// manages its volumes.
pub async fn create_fake_node(client: &Client, name: &str) -> anyhow::Result<Node> {
    create_fake_node_with_labels(client, name, &[]).await
}

/// [`create_fake_node`] with more labels (topology segments).
pub async fn create_fake_node_with_labels(
    client: &Client,
    name: &str,
    labels: &[(&str, &str)],
) -> anyhow::Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut all = BTreeMap::from([("kubernetes.io/hostname".to_string(), name.to_string())]);
    all.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            annotations: Some(BTreeMap::from([(
                CONTROLLER_MANAGED_ATTACH_DETACH.to_string(),
                "true".to_string(),
            )])),
            labels: Some(all),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    Ok(nodes.create(&PostParams::default(), &node).await?)
}

/// Creates the CSINode of `node` with one driver entry, as the kubelet would after
/// registration.
pub async fn create_csinode(
    client: &Client,
    node: &str,
    driver: &str,
    node_id: &str,
) -> anyhow::Result<CSINode> {
    create_csinode_with_topology(client, node, driver, node_id, &[]).await
}

/// [`create_csinode`] with the topology keys the driver reported for the node.
pub async fn create_csinode_with_topology(
    client: &Client,
    node: &str,
    driver: &str,
    node_id: &str,
    topology_keys: &[&str],
) -> anyhow::Result<CSINode> {
    let csinodes: Api<CSINode> = Api::all(client.clone());
    let object = CSINode {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            ..ObjectMeta::default()
        },
        spec: CSINodeSpec {
            drivers: vec![CSINodeDriver {
                name: driver.to_string(),
                node_id: node_id.to_string(),
                topology_keys: (!topology_keys.is_empty())
                    .then(|| topology_keys.iter().map(|k| k.to_string()).collect()),
                allocatable: None,
            }],
        },
    };
    Ok(csinodes.create(&PostParams::default(), &object).await?)
}

/// Deletes cluster-scoped objects a test created (nodes, CSINodes), ignoring "not found".
pub async fn delete_nodes(client: &Client, names: &[&str]) {
    let nodes: Api<Node> = Api::all(client.clone());
    let csinodes: Api<CSINode> = Api::all(client.clone());
    for name in names {
        let _ = csinodes.delete(name, &DeleteParams::default()).await;
        let _ = nodes.delete(name, &DeleteParams::default()).await;
    }
}
