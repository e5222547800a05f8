//! upstream's `pkg/common-controller/snapshot_controller_test.go`: the controller's own store
//! (`storeObjectUpdate`) and the managed-by node.

use std::sync::Arc;

use csi_crd_types::snapshot::v1::VolumeSnapshotContent;
use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolume,
    PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::framework::*;
use crate::controller::store::VersionedStore;

fn store_version(
    prefix: &str,
    store: &VersionedStore<VolumeSnapshotContent>,
    version: &str,
    expected: bool,
) {
    let mut content = new_content(
        "contentName",
        "snapuid1-1",
        "snap1-1",
        "sid1-1",
        "gold",
        "",
        "pv-handle-1-1",
        "Delete",
        None,
        None,
        false,
        true,
    );
    content.metadata.resource_version = Some(version.into());
    let stored = store.update("contentName", Arc::new(content)).unwrap();
    assert_eq!(stored, expected, "{prefix}");
    let now = store.get("contentName").expect("stored");
    let now_version = now.metadata.resource_version.as_deref().unwrap();
    if stored {
        assert_eq!(now_version, version, "{prefix}");
    } else {
        assert_ne!(now_version, version, "{prefix}");
    }
}

// TestControllerCache
#[test]
fn controller_cache() {
    let store = VersionedStore::new("content");
    store_version("Step1", &store, "1", true);
    store_version("Step2", &store, "1", true);
    store_version("Step3", &store, "2", true);
    store_version("Step4", &store, "1", false);
    // "2" > "10" as strings, 2 < 10 as integers.
    store_version("Step5", &store, "10", true);
}

// TestControllerCacheParsingError
#[test]
fn controller_cache_parsing_error() {
    let store = VersionedStore::new("content");
    store_version("Step1", &store, "1", true);
    let mut content = new_content(
        "contentName",
        "snapuid1-1",
        "snap1-1",
        "sid1-1",
        "gold",
        "",
        "pv-handle-1-1",
        "Delete",
        None,
        None,
        false,
        true,
    );
    content.metadata.resource_version = Some("xxx".into());
    let err = store.update("contentName", Arc::new(content)).unwrap_err();
    assert!(
        err.contains("error parsing ResourceVersion \"xxx\" of content \"contentName\""),
        "{err}"
    );
}

fn node(name: &str, labels: &[(&str, &str)]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: (!labels.is_empty()).then(|| map(labels)),
            ..Default::default()
        },
        ..Default::default()
    }
}

// TestGetManagedByNode
#[tokio::test]
async fn get_managed_by_node() {
    let pv = PersistentVolume {
        spec: Some(PersistentVolumeSpec {
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "key1".into(),
                            operator: "In".into(),
                            values: Some(vec!["value1".into()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let with_nodes = |nodes: Vec<Node>| {
        let mut h = harness(&Case::default(), &[]);
        h.ctrl.listers = Arc::new(FakeListers {
            nodes,
            ..FakeListers::default()
        });
        h
    };
    let h = with_nodes(vec![
        node("node1", &[("key1", "value1")]),
        node("node2", &[("key2", "value2")]),
    ]);
    assert_eq!(h.ctrl.managed_by_node(&pv), "node1");
    let h = with_nodes(vec![node("node1", &[])]);
    assert_eq!(h.ctrl.managed_by_node(&pv), "");
}
