//! Port of csi-translation-lib v0.36.3 `translate_test.go`: `TestTranslationStability` (2),
//! `TestTopologyTranslation` (16), `TestTranslateInTreeInlineVolumeToCSINameUniqueness` (7
//! drivers), `TestPluginNameMappings` (2).

mod common;

use common::*;
use csi_translation::topology_key_exist;
use serde_json::{Value, json};

const BETA_ZONE: &str = "failure-domain.beta.kubernetes.io/zone";
const BETA_REGION: &str = "failure-domain.beta.kubernetes.io/region";
const GA_ZONE: &str = "topology.kubernetes.io/zone";
const GA_REGION: &str = "topology.kubernetes.io/region";
const GCE_KEY: &str = "topology.gke.io/zone";
const EBS_KEY: &str = "topology.ebs.csi.aws.com/zone";
const CINDER_KEY: &str = "topology.cinder.csi.openstack.org/zone";

#[test]
fn test_translation_stability() {
    let cases = [
        (
            "GCE PD PV Source",
            json!({"metadata": {}, "spec": {"gcePersistentDisk": {"pdName": "test-disk", "fsType": "ext4"}}}),
        ),
        (
            "AWS EBS PV Source",
            json!({"metadata": {}, "spec": {"awsElasticBlockStore": {"volumeID": "vol01", "fsType": "ext3", "partition": 1, "readOnly": true}}}),
        ),
    ];
    for (name, original) in cases {
        let original = pv(original);
        let csi = csi_translation::translate_in_tree_pv_to_csi(&original).expect(name);
        let back = csi_translation::translate_csi_pv_to_in_tree(&csi).expect(name);
        assert_same(&back, &original, name);
    }
}

fn labels_beta() -> Value {
    json!({BETA_ZONE: "us-east-1a", BETA_REGION: "us-east-1"})
}
fn labels_ga() -> Value {
    json!({GA_ZONE: "us-east-1a", GA_REGION: "us-east-1"})
}
fn regional_beta() -> Value {
    json!({BETA_ZONE: "europe-west1-b__europe-west1-c"})
}
fn regional_ga() -> Value {
    json!({GA_ZONE: "europe-west1-b__europe-west1-c"})
}

fn topology(key: &str, values: &[&str]) -> Value {
    json!({"key": key, "operator": "In", "values": values})
}

/// upstream's `makePV` with a source, and one term per topology.
fn make_pv(source: Value, labels: Value, topologies: &[Value]) -> Value {
    let mut pv = json!({"metadata": {"labels": labels}, "spec": source});
    if !topologies.is_empty() {
        let terms: Vec<Value> = topologies
            .iter()
            .map(|t| json!({"matchExpressions": [t]}))
            .collect();
        pv["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": terms}});
    }
    pv
}

fn gce(labels: Value, topologies: &[Value]) -> Value {
    make_pv(
        json!({"gcePersistentDisk": {"pdName": "test-disk", "fsType": "ext4"}}),
        labels,
        topologies,
    )
}
fn ebs(labels: Value, topologies: &[Value]) -> Value {
    make_pv(
        json!({"awsElasticBlockStore": {"volumeID": "vol01", "fsType": "ext3", "partition": 1, "readOnly": true}}),
        labels,
        topologies,
    )
}
fn cinder(labels: Value, topologies: &[Value]) -> Value {
    make_pv(
        json!({"cinder": {"volumeID": "vol1", "fsType": "ext4"}}),
        labels,
        topologies,
    )
}

/// upstream's `makeNodeAffinity`.
fn node_affinity(multi_terms: bool, key: &str, values: &[&str]) -> Value {
    let terms: Vec<Value> = if multi_terms {
        values
            .iter()
            .map(|v| json!({"matchExpressions": [topology(key, &[v])]}))
            .collect()
    } else {
        vec![json!({"matchExpressions": [topology(key, values)]})]
    };
    json!({"required": {"nodeSelectorTerms": terms}})
}

#[test]
fn test_topology_translation() {
    let n = Value::Null;
    // (name, key checked after the round trip, PV, expected node affinity of the CSI PV)
    let cases: Vec<(&str, &str, Value, Value)> = vec![
        (
            "GCE PD with beta zone labels",
            GCE_KEY,
            gce(labels_beta(), &[]),
            node_affinity(false, GCE_KEY, &["us-east-1a"]),
        ),
        (
            "GCE PD with GA kubernetes zone labels",
            GCE_KEY,
            gce(labels_ga(), &[]),
            node_affinity(false, GCE_KEY, &["us-east-1a"]),
        ),
        (
            "GCE PD with existing topology (beta keys)",
            "",
            gce(n.clone(), &[topology(BETA_ZONE, &["us-east-2a"])]),
            node_affinity(false, GCE_KEY, &["us-east-2a"]),
        ),
        (
            "GCE PD with existing topology (CSI keys)",
            GCE_KEY,
            gce(n.clone(), &[topology(GCE_KEY, &["us-east-2a"])]),
            node_affinity(false, GCE_KEY, &["us-east-2a"]),
        ),
        (
            "GCE PD with zone labels and topology",
            "",
            gce(labels_beta(), &[topology(BETA_ZONE, &["us-east-2a"])]),
            node_affinity(false, GCE_KEY, &["us-east-2a"]),
        ),
        (
            "GCE PD with regional zones",
            GCE_KEY,
            gce(regional_beta(), &[]),
            node_affinity(false, GCE_KEY, &["europe-west1-b", "europe-west1-c"]),
        ),
        (
            "GCE PD with regional topology",
            GCE_KEY,
            gce(
                n.clone(),
                &[topology(GA_ZONE, &["europe-west1-b", "europe-west1-c"])],
            ),
            node_affinity(false, GCE_KEY, &["europe-west1-b", "europe-west1-c"]),
        ),
        (
            "GCE PD with Beta regional zone and topology",
            GCE_KEY,
            gce(
                regional_beta(),
                &[topology(BETA_ZONE, &["europe-west1-f", "europe-west1-g"])],
            ),
            node_affinity(false, GCE_KEY, &["europe-west1-f", "europe-west1-g"]),
        ),
        (
            "GCE PD with GA regional zone and topology",
            GCE_KEY,
            gce(
                regional_ga(),
                &[topology(GA_ZONE, &["europe-west1-f", "europe-west1-g"])],
            ),
            node_affinity(false, GCE_KEY, &["europe-west1-f", "europe-west1-g"]),
        ),
        (
            "GCE PD with multiple node selector terms",
            GCE_KEY,
            gce(
                n.clone(),
                &[
                    topology(GA_ZONE, &["europe-west1-f"]),
                    topology(GA_ZONE, &["europe-west1-g"]),
                ],
            ),
            node_affinity(true, GCE_KEY, &["europe-west1-f", "europe-west1-g"]),
        ),
        (
            "AWS EBS with beta zone labels",
            "",
            ebs(labels_beta(), &[]),
            node_affinity(false, EBS_KEY, &["us-east-1a"]),
        ),
        (
            "AWS EBS with beta zone labels and topology",
            "",
            ebs(labels_beta(), &[topology(BETA_ZONE, &["us-east-2a"])]),
            node_affinity(false, EBS_KEY, &["us-east-2a"]),
        ),
        (
            "AWS EBS with GA zone labels",
            "",
            ebs(labels_ga(), &[]),
            node_affinity(false, EBS_KEY, &["us-east-1a"]),
        ),
        (
            "AWS EBS with GA zone labels and topology",
            "",
            ebs(labels_ga(), &[topology(GA_ZONE, &["us-east-2a"])]),
            node_affinity(false, EBS_KEY, &["us-east-2a"]),
        ),
        (
            "OpenStack Cinder with zone labels",
            "",
            cinder(labels_beta(), &[]),
            node_affinity(false, CINDER_KEY, &["us-east-1a"]),
        ),
        (
            "OpenStack Cinder with zone labels and topology",
            "",
            cinder(labels_beta(), &[topology(BETA_ZONE, &["us-east-2a"])]),
            node_affinity(false, CINDER_KEY, &["us-east-2a"]),
        ),
    ];
    assert_eq!(cases.len(), 16);
    for (name, key, original, expected) in cases {
        let csi = csi_translation::translate_in_tree_pv_to_csi(&pv(original)).expect(name);
        let affinity = csi.spec.as_ref().unwrap().node_affinity.clone();
        assert_same(&affinity, &expected, name);
        let back = csi_translation::translate_csi_pv_to_in_tree(&csi).expect(name);
        if !key.is_empty() {
            let affinity = back.spec.as_ref().unwrap().node_affinity.as_ref();
            assert!(
                !topology_key_exist(key, affinity),
                "{name}: {key} still there"
            );
            assert!(
                topology_key_exist(BETA_ZONE, affinity) || topology_key_exist(GA_ZONE, affinity),
                "{name}: no kubernetes zone key"
            );
        }
    }
}

#[test]
fn test_translate_in_tree_inline_volume_to_csi_name_uniqueness() {
    let sources = |id: &str| {
        vec![
            (
                "pd.csi.storage.gke.io",
                json!({"gcePersistentDisk": {"pdName": id}}),
            ),
            (
                "ebs.csi.aws.com",
                json!({"awsElasticBlockStore": {"volumeID": id}}),
            ),
            (
                "cinder.csi.openstack.org",
                json!({"cinder": {"volumeID": id}}),
            ),
            (
                "disk.csi.azure.com",
                json!({"azureDisk": {"diskName": id, "diskURI": id}}),
            ),
            (
                "file.csi.azure.com",
                json!({"azureFile": {"secretName": id, "shareName": id}}),
            ),
            (
                "csi.vsphere.vmware.com",
                json!({"vsphereVolume": {"volumePath": format!(" [vsanDatastore] 6785a85e-268e-6352-a2e8-02008b7afadd/kubernetes-dynamic-pvc-{id}.vmdk"), "fsType": "ext4"}}),
            ),
            (
                "pxd.portworx.com",
                json!({"portworxVolume": {"volumeID": id}}),
            ),
        ]
    };
    for ((driver, first), (_, second)) in
        sources("6a3f0b0e-1").into_iter().zip(sources("9c2d4e5f-2"))
    {
        let translate = |mut v: Value| {
            v["name"] = json!("");
            csi_translation::translate_in_tree_inline_volume_to_csi(&volume(v), "").expect(driver)
        };
        let (pv1, pv2) = (translate(first), translate(second));
        assert_ne!(
            pv1.metadata.name, pv2.metadata.name,
            "{driver}: PV name not unique"
        );
        assert_eq!(pv1.spec.unwrap().csi.unwrap().driver, driver);
    }
}

#[test]
fn test_plugin_name_mappings() {
    for (name, in_tree, csi) in [
        (
            "GCE PD plugin name",
            "kubernetes.io/gce-pd",
            "pd.csi.storage.gke.io",
        ),
        (
            "AWS EBS plugin name",
            "kubernetes.io/aws-ebs",
            "ebs.csi.aws.com",
        ),
    ] {
        let csi_name = csi_translation::get_csi_name_from_in_tree_name(in_tree).expect(name);
        assert!(
            csi_translation::is_migrated_csi_driver_by_name(csi_name),
            "{name}"
        );
        let in_tree_name = csi_translation::get_in_tree_name_from_csi_name(csi_name).expect(name);
        assert!(
            csi_translation::is_migratable_in_tree_plugin_by_name(in_tree_name),
            "{name}"
        );
        assert_eq!((in_tree_name, csi_name), (in_tree, csi), "{name}");
    }
}
