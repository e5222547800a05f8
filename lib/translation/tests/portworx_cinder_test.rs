//! Port of csi-translation-lib v0.36.3 `plugins/portworx_test.go`:
//! `TestTranslatePortworxInTreeStorageClassToCSI` (3 of 4), `TestTranslatePortworxInTreeInlineVolumeToCSI`
//! (1 of 2), `TestTranslatePortworxInTreePVToCSI` (3 of 4), `TestTranslatePortworxCSIPvToInTree`
//! (2 of 3) — the "nil" cases cannot be written: the translations take references — and of
//! `plugins/openstack_cinder_test.go`: `TestTranslateCinderInTreeStorageClassToCSI` (5).

mod common;

use common::*;
use csi_translation::plugins::{CINDER_TOPOLOGY_KEY, by_csi_name};
use serde_json::{Value, json};

fn portworx() -> &'static dyn csi_translation::InTreePlugin {
    by_csi_name("pxd.portworx.com").unwrap()
}

#[test]
fn test_translate_portworx_in_tree_storage_class_to_csi() {
    let secrets = |name: &str, namespace: &str| {
        let mut params = serde_json::Map::new();
        for kind in [
            "provisioner",
            "controller-publish",
            "node-stage",
            "node-publish",
            "controller-expand",
            "node-expand",
        ] {
            params.insert(
                format!("csi.storage.k8s.io/{kind}-secret-name"),
                json!(name),
            );
            params.insert(
                format!("csi.storage.k8s.io/{kind}-secret-namespace"),
                json!(namespace),
            );
        }
        params.insert("repl".into(), json!("1"));
        Value::Object(params)
    };
    let params = json!({"repl": "1", "fs": "ext4", "shared": "true", "priority_io": "high"});
    let cases = [
        (
            "correct",
            json!({"metadata": {}, "provisioner": "kubernetes.io/portworx-volume", "parameters": params}),
            json!({"metadata": {}, "provisioner": "pxd.portworx.com", "parameters": params}),
        ),
        (
            "empty",
            json!({"metadata": {}, "provisioner": ""}),
            json!({"metadata": {}, "provisioner": "pxd.portworx.com"}),
        ),
        (
            "with secret params",
            json!({"metadata": {}, "provisioner": "", "parameters": {
                "repl": "1",
                "openstorage.io/auth-secret-name": "test-secret",
                "openstorage.io/auth-secret-namespace": "test-namespace",
            }}),
            json!({"metadata": {}, "provisioner": "pxd.portworx.com", "parameters": secrets("test-secret", "test-namespace")}),
        ),
    ];
    for (name, in_tree, expected) in cases {
        let got = portworx()
            .translate_in_tree_storage_class_to_csi(sc(in_tree))
            .expect(name);
        assert_same(&got, &sc(expected), name);
    }
}

#[test]
fn test_translate_portworx_in_tree_inline_volume_to_csi() {
    let got = portworx()
        .translate_in_tree_inline_volume_to_csi(
            &volume(json!({"name": "PortworxVol", "portworxVolume": {"volumeID": "ID", "fsType": "type"}})),
            "ns",
        )
        .expect("normal");
    assert_same(
        &got,
        &pv(json!({
            // Unique per disk: it is the unique part of the staging path.
            "metadata": {"name": "pxd.portworx.com-ID"},
            "spec": {
                "csi": {"driver": "pxd.portworx.com", "volumeHandle": "ID", "fsType": "type"},
                "accessModes": ["ReadWriteOnce"],
            }
        })),
        "normal",
    );
}

fn px_pv(annotations: Value, source: Value) -> Value {
    json!({
        "metadata": {"name": "pxd.portworx.com", "annotations": annotations},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "claimRef": {"name": "test-pvc", "namespace": "default"},
            "portworxVolume": source,
        }
    })
}

#[test]
fn test_translate_portworx_in_tree_pv_to_csi() {
    let secret = json!({"name": "test-secret", "namespace": "test-namespace"});
    let annotations = json!({
        "openstorage.io/auth-secret-name": "test-secret",
        "openstorage.io/auth-secret-namespace": "test-namespace",
    });
    let csi = |annotations: Value, extra: Value| {
        let mut csi =
            json!({"driver": "pxd.portworx.com", "volumeHandle": "ID1111", "fsType": "type"});
        merge(&mut csi, extra);
        json!({
            "metadata": {"name": "pxd.portworx.com", "annotations": annotations},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "claimRef": {"name": "test-pvc", "namespace": "default"},
                "csi": csi,
            }
        })
    };
    let source = json!({"volumeID": "ID1111", "fsType": "type"});
    let cases = [
        ("no Portworx volume", px_pv(Value::Null, Value::Null), None),
        (
            "normal",
            px_pv(Value::Null, source.clone()),
            Some(csi(Value::Null, json!({}))),
        ),
        (
            "with secret annotations",
            px_pv(annotations.clone(), source),
            Some(csi(
                annotations,
                json!({
                    "controllerPublishSecretRef": secret,
                    "nodeStageSecretRef": secret,
                    "nodePublishSecretRef": secret,
                    "controllerExpandSecretRef": secret,
                    "nodeExpandSecretRef": secret,
                }),
            )),
        ),
    ];
    for (name, in_tree, expected) in cases {
        match (
            portworx().translate_in_tree_pv_to_csi(pv(in_tree)),
            expected,
        ) {
            (Ok(got), Some(expected)) => assert_same(&got, &pv(expected), name),
            (Err(_), None) => {}
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
}

#[test]
fn test_translate_portworx_csi_pv_to_in_tree() {
    let base = |source_key: &str, source: Value| {
        json!({
            "metadata": {"name": "pxd.portworx.com"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "claimRef": {"name": "test-pvc", "namespace": "default"},
                source_key: source,
            }
        })
    };
    let cases = [
        ("no CSI section", base("portworxVolume", Value::Null), None),
        (
            "normal",
            base(
                "csi",
                json!({"driver": "pxd.portworx.com", "volumeHandle": "ID1111", "fsType": "type"}),
            ),
            Some(base(
                "portworxVolume",
                json!({"volumeID": "ID1111", "fsType": "type"}),
            )),
        ),
    ];
    for (name, csi, expected) in cases {
        match (portworx().translate_csi_pv_to_in_tree(pv(csi)), expected) {
            (Ok(got), Some(expected)) => assert_same(&got, &pv(expected), name),
            (Err(_), None) => {}
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
}

#[test]
fn test_translate_cinder_in_tree_storage_class_to_csi() {
    let n = Value::Null;
    let beta = "failure-domain.beta.kubernetes.io/zone";
    let cases = [
        (
            "translate normal",
            json!({"foo": "bar"}),
            n.clone(),
            json!({"foo": "bar"}),
            n.clone(),
        ),
        (
            "translate empty map",
            json!({}),
            n.clone(),
            json!({}),
            n.clone(),
        ),
        (
            "translate with fstype",
            json!({"fstype": "ext3"}),
            n.clone(),
            json!({"csi.storage.k8s.io/fstype": "ext3"}),
            n.clone(),
        ),
        (
            "translate with topology in parameters (no translation expected)",
            json!({"availability": "nova"}),
            n.clone(),
            json!({"availability": "nova"}),
            n.clone(),
        ),
        (
            "translate with topology",
            json!({}),
            topology_selectors(beta, &["nova"]),
            json!({}),
            topology_selectors(CINDER_TOPOLOGY_KEY, &["nova"]),
        ),
    ];
    for (name, params, topologies, expected_params, expected_topologies) in cases {
        let got = csi_translation::translate_in_tree_storage_class_to_csi(
            "kubernetes.io/cinder",
            &new_storage_class(params, topologies),
        )
        .expect(name);
        assert_same(
            &got,
            &new_storage_class(expected_params, expected_topologies),
            name,
        );
    }
}

fn merge(target: &mut Value, patch: Value) {
    if let (Some(t), Value::Object(p)) = (target.as_object_mut(), patch) {
        for (k, v) in p {
            t.insert(k, v);
        }
    }
}
