//! Port of csi-translation-lib v0.36.3 `plugins/vsphere_volume_test.go`:
//! `TestTranslatevSphereInTreeStorageClassToCSI` (10 of 11), `TestTranslateVSphereCSIPVToInTree`
//! (3 of 4), `TestTranslateVSphereInTreePVToCSI` (4), `TestTranslatevSphereInTreeInlineVolumeToCSI`
//! (2). The cases that pass a nil object cannot be written: the translations take references.

mod common;

use common::*;
use csi_translation::plugins::by_csi_name;
use serde_json::{Value, json};

const DRIVER: &str = "csi.vmware.com";
const VSPHERE: &str = "csi.vsphere.vmware.com";
const PV_NAME: &str = "pvc-d8b4475f-2c47-486e-9b57-43ae006f9b59";
const PATH: &str = "[vsanDatastore] 6785a85e-268e-6352-a2e8-02008b7afadd/kubernetes-dynamic-pvc-68734c9f-a679-42e6-a694-39632c51e31f.vmdk";

fn vsphere() -> &'static dyn csi_translation::InTreePlugin {
    by_csi_name(VSPHERE).unwrap()
}

fn zone_region(zone_key: &str, region_key: &str) -> Value {
    json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": zone_key, "operator": "In", "values": ["z1"]},
        {"key": region_key, "operator": "In", "values": ["r1"]},
    ]}]}})
}

#[test]
fn test_translate_vsphere_in_tree_storage_class_to_csi() {
    let n = Value::Null;
    let term = |key: &str| json!([{"matchLabelExpressions": [{"key": key, "values": ["zone-a"]}]}]);
    let ga = term("topology.kubernetes.io/zone");
    let beta = term("failure-domain.beta.kubernetes.io/zone");
    let expected_term = term(&format!("topology.{DRIVER}/zone"));
    let cases = [
        (
            "translate with no parameter",
            json!({}),
            n.clone(),
            json!({"csimigration": "true"}),
            n.clone(),
        ),
        (
            "translate with unknown parameter",
            json!({"unknownparam": "value"}),
            n.clone(),
            json!({"csimigration": "true"}),
            n.clone(),
        ),
        (
            "translate with storagepolicyname and datastore",
            json!({"storagepolicyname": "test-policy-name", "datastore": "vsanDatastore"}),
            n.clone(),
            json!({"storagepolicyname": "test-policy-name", "datastore-migrationparam": "vsanDatastore", "csimigration": "true"}),
            n.clone(),
        ),
        (
            "translate with fstype",
            json!({"fstype": "ext4"}),
            n.clone(),
            json!({"csi.storage.k8s.io/fstype": "ext4", "csimigration": "true"}),
            n.clone(),
        ),
        (
            "translate with storagepolicyname and fstype",
            json!({"storagepolicyname": "test-policy-name", "fstype": "ext4"}),
            n.clone(),
            json!({"csi.storage.k8s.io/fstype": "ext4", "storagepolicyname": "test-policy-name", "csimigration": "true"}),
            n.clone(),
        ),
        (
            "translate with no parameter and allowedTopology",
            json!({}),
            ga.clone(),
            json!({"csimigration": "true"}),
            expected_term.clone(),
        ),
        (
            "translate with storagepolicyname and allowedTopology",
            json!({"storagepolicyname": "test-policy-name"}),
            ga.clone(),
            json!({"storagepolicyname": "test-policy-name", "csimigration": "true"}),
            expected_term.clone(),
        ),
        (
            "translate with storagepolicyname and allowedTopology beta labels",
            json!({"storagepolicyname": "test-policy-name"}),
            beta,
            json!({"storagepolicyname": "test-policy-name", "csimigration": "true"}),
            expected_term.clone(),
        ),
        (
            "translate with raw vSAN policy parameters, datastore and diskformat",
            json!({"hostfailurestotolerate": "2", "datastore": "vsanDatastore", "diskformat": "thin"}),
            ga.clone(),
            json!({"hostfailurestotolerate-migrationparam": "2", "datastore-migrationparam": "vsanDatastore", "diskformat-migrationparam": "thin", "csimigration": "true"}),
            expected_term.clone(),
        ),
        (
            "translate with all parameters",
            json!({"storagepolicyname": "test-policy-name", "datastore": "test-datastore-name", "fstype": "ext4", "diskformat": "thin", "hostfailurestotolerate": "1", "forceprovisioning": "yes", "cachereservation": "25", "diskstripes": "4", "objectspacereservation": "10", "iopslimit": "32"}),
            ga,
            json!({"storagepolicyname": "test-policy-name", "datastore-migrationparam": "test-datastore-name", "csi.storage.k8s.io/fstype": "ext4", "diskformat-migrationparam": "thin", "hostfailurestotolerate-migrationparam": "1", "forceprovisioning-migrationparam": "yes", "cachereservation-migrationparam": "25", "diskstripes-migrationparam": "4", "objectspacereservation-migrationparam": "10", "iopslimit-migrationparam": "32", "csimigration": "true"}),
            expected_term,
        ),
    ];
    for (name, params, topologies, expected_params, expected_topologies) in cases {
        let got = vsphere()
            .translate_in_tree_storage_class_to_csi(new_storage_class(params, topologies))
            .expect(name);
        assert_same(
            &got,
            &new_storage_class(expected_params, expected_topologies),
            name,
        );
    }
}

#[test]
fn test_translate_vsphere_csi_pv_to_in_tree() {
    let attributes =
        json!({"storagepolicyname": "vSAN Default Storage Policy", "initialvolumefilepath": PATH});
    let csi = json!({"driver": VSPHERE, "volumeHandle": "e4073a6d-642e-4dff-8f4a-b4e3a47c4bbd", "fsType": "ext4", "volumeAttributes": attributes});
    let in_tree = json!({"volumePath": PATH, "fsType": "ext4"});
    let cases = [
        (
            "expect error when pv.Spec.CSI is nil",
            json!({"metadata": {"name": PV_NAME}, "spec": {"accessModes": ["ReadWriteOnce"]}}),
            None,
        ),
        (
            "translate valid vSphere CSI PV to vSphere in-tree PV",
            json!({"metadata": {"name": PV_NAME}, "spec": {"csi": csi, "accessModes": ["ReadWriteOnce"]}}),
            Some(
                json!({"metadata": {"name": PV_NAME}, "spec": {"vsphereVolume": in_tree, "accessModes": ["ReadWriteOnce"]}}),
            ),
        ),
        (
            "translate valid vSphere CSI PV with topology Node Affinity rules to vSphere CSI PV with topology labels",
            json!({"metadata": {"name": PV_NAME}, "spec": {"csi": csi, "accessModes": ["ReadWriteOnce"], "nodeAffinity": zone_region("topology.csi.vmware.com/zone", "topology.csi.vmware.com/region")}}),
            Some(json!({
                "metadata": {"name": PV_NAME, "labels": {"topology.kubernetes.io/zone": "z1", "topology.kubernetes.io/region": "r1"}},
                "spec": {"vsphereVolume": in_tree, "accessModes": ["ReadWriteOnce"], "nodeAffinity": zone_region("topology.kubernetes.io/zone", "topology.kubernetes.io/region")},
            })),
        ),
    ];
    for (name, csi, expected) in cases {
        match (vsphere().translate_csi_pv_to_in_tree(pv(csi)), expected) {
            (Ok(got), Some(expected)) => assert_same(&got, &pv(expected), name),
            (Err(_), None) => {}
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
}

#[test]
fn test_translate_vsphere_in_tree_pv_to_csi() {
    let source = json!({"volumePath": PATH, "fsType": "ext4", "storagePolicyName": "vSAN Default Storage Policy"});
    let csi = json!({"driver": VSPHERE, "volumeHandle": PATH, "fsType": "ext4", "volumeAttributes": {"storagepolicyname": "vSAN Default Storage Policy"}});
    let beta = json!({"failure-domain.beta.kubernetes.io/zone": "z1", "failure-domain.beta.kubernetes.io/region": "r1"});
    let ga = json!({"topology.kubernetes.io/zone": "z1", "topology.kubernetes.io/region": "r1"});
    let csi_affinity = zone_region(
        "topology.csi.vmware.com/zone",
        "topology.csi.vmware.com/region",
    );
    let in_tree = |labels: Value| json!({"metadata": {"name": PV_NAME, "labels": labels}, "spec": {"vsphereVolume": source, "accessModes": ["ReadWriteOnce"]}});
    let cases = [
        (
            "expect error when in-tree vsphere PV is nil",
            json!({"metadata": {}}),
            None,
        ),
        (
            "translate valid vSphere in-tree PV to vSphere CSI PV",
            in_tree(Value::Null),
            Some(
                json!({"metadata": {"name": PV_NAME}, "spec": {"csi": csi, "accessModes": ["ReadWriteOnce"]}}),
            ),
        ),
        (
            "translate valid vSphere in-tree PV with beta topology labels to vSphere CSI PV",
            in_tree(beta.clone()),
            Some(
                json!({"metadata": {"name": PV_NAME, "labels": beta}, "spec": {"csi": csi, "accessModes": ["ReadWriteOnce"], "nodeAffinity": csi_affinity}}),
            ),
        ),
        (
            "translate valid vSphere in-tree PV with GA topology labels to vSphere CSI PV",
            in_tree(ga.clone()),
            Some(
                json!({"metadata": {"name": PV_NAME, "labels": ga}, "spec": {"csi": csi, "accessModes": ["ReadWriteOnce"], "nodeAffinity": csi_affinity}}),
            ),
        ),
    ];
    for (name, in_tree, expected) in cases {
        match (vsphere().translate_in_tree_pv_to_csi(pv(in_tree)), expected) {
            (Ok(got), Some(expected)) => assert_same(&got, &pv(expected), name),
            (Err(_), None) => {}
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
}

#[test]
fn test_translate_vsphere_in_tree_inline_volume_to_csi() {
    let path = "[vsanDatastore] volume/inlinevolume.vmdk";
    let cases = [
        (
            "expect error when inline vsphere volume is nil",
            json!({"name": ""}),
            None,
        ),
        (
            "translate valid in-tree vsphere volume to vSphere CSI PV",
            json!({"name": "inlinevolume", "vsphereVolume": {"volumePath": path, "fsType": "ext4"}}),
            Some(json!({
                "metadata": {"name": format!("{VSPHERE}-{path}")},
                "spec": {"csi": {"driver": VSPHERE, "volumeHandle": path, "fsType": "ext4"}, "accessModes": ["ReadWriteOnce"]},
            })),
        ),
    ];
    for (name, inline, expected) in cases {
        match (
            vsphere().translate_in_tree_inline_volume_to_csi(&volume(inline), ""),
            expected,
        ) {
            (Ok(got), Some(expected)) => assert_same(&got, &pv(expected), name),
            (Err(_), None) => {}
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
}
