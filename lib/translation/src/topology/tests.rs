//! Port of csi-translation-lib v0.36.3 `plugins/in_tree_volume_test.go`:
//! `TestTranslateTopologyFromCSIToInTree` (9), `TestTranslateTopologyFromInTreeToCSI` (2),
//! `TestTranslateAllowedTopologies` (4), `TestAddTopology` (4), `TestReplaceTopology` (4).

// The tables are tuples, as upstream's are anonymous structs.
#![allow(clippy::type_complexity)]

use k8s_openapi::api::core::v1::{NodeSelectorTerm, PersistentVolume, TopologySelectorTerm};
use serde_json::{Value, json};

use super::*;
use crate::plugins::{CINDER_TOPOLOGY_KEY, GCE_PD_TOPOLOGY_KEY};

const GCE: &str = GCE_PD_TOPOLOGY_KEY;

fn req(key: &str, values: &[&str]) -> Value {
    json!({"key": key, "operator": "In", "values": values})
}

fn terms(value: Value) -> Vec<NodeSelectorTerm> {
    serde_json::from_value(value).unwrap()
}

fn pv_with(name: &str, labels: Value, terms: Value) -> PersistentVolume {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "myns", "labels": labels},
        "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": terms}}},
    }))
    .unwrap()
}

fn ga_labels() -> Value {
    json!({LABEL_TOPOLOGY_ZONE: "us-east1-a", LABEL_TOPOLOGY_REGION: "us-east1"})
}
fn ga_zone_first() -> Value {
    json!([{"matchExpressions": [req(LABEL_TOPOLOGY_ZONE, &["us-east1-a"]), req(LABEL_TOPOLOGY_REGION, &["us-east1"])]}])
}
fn ga_region_first() -> Value {
    json!([{"matchExpressions": [req(LABEL_TOPOLOGY_REGION, &["us-east1"]), req(LABEL_TOPOLOGY_ZONE, &["us-east1-a"])]}])
}
fn beta_labels() -> Value {
    json!({LABEL_FAILURE_DOMAIN_BETA_ZONE: "us-west2-b", LABEL_FAILURE_DOMAIN_BETA_REGION: "us-west2"})
}
fn beta_zone_first() -> Value {
    json!([{"matchExpressions": [req(LABEL_FAILURE_DOMAIN_BETA_ZONE, &["us-west2-b"]), req(LABEL_FAILURE_DOMAIN_BETA_REGION, &["us-west2"])]}])
}
fn beta_region_first() -> Value {
    json!([{"matchExpressions": [req(LABEL_FAILURE_DOMAIN_BETA_REGION, &["us-west2"]), req(LABEL_FAILURE_DOMAIN_BETA_ZONE, &["us-west2-b"])]}])
}

fn labels_of(pv: &PersistentVolume) -> Value {
    serde_json::to_value(pv.metadata.labels.clone().unwrap_or_default()).unwrap()
}

fn terms_of(pv: &PersistentVolume) -> Vec<NodeSelectorTerm> {
    pv.spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .map(|r| r.node_selector_terms.clone())
        .unwrap_or_default()
}

#[test]
fn test_translate_topology_from_csi_to_in_tree() {
    let gce = Some(crate::plugins::gce_region_parser());
    let cases: Vec<(
        &str,
        &str,
        Option<RegionParser>,
        PersistentVolume,
        Value,
        Value,
    )> = vec![
        (
            "Remove CSI Topology Key and do not change existing GA Kubernetes topology",
            GCE,
            gce,
            pv_with(
                "gcepd",
                ga_labels(),
                json!([{"matchExpressions": [req(LABEL_TOPOLOGY_REGION, &["us-east1"]), req(GCE, &["us-east1-a"])]}]),
            ),
            ga_region_first(),
            ga_labels(),
        ),
        (
            "Remove CSI Topology Key and do not change existing Beta Kubernetes topology",
            GCE,
            gce,
            pv_with(
                "gcepd",
                beta_labels(),
                json!([{"matchExpressions": [req(LABEL_FAILURE_DOMAIN_BETA_REGION, &["us-west2"]), req(GCE, &["us-west2-b"])]}]),
            ),
            beta_region_first(),
            beta_labels(),
        ),
        (
            "Remove CSI Topology Key and add Kubernetes topology from NodeAffinity, ignore labels",
            GCE,
            gce,
            pv_with(
                "gcepd",
                json!({LABEL_TOPOLOGY_ZONE: "existingZone", LABEL_TOPOLOGY_REGION: "existingRegion"}),
                json!([{"matchExpressions": [req(GCE, &["us-east1-a"])]}]),
            ),
            ga_zone_first(),
            json!({LABEL_TOPOLOGY_ZONE: "existingZone", LABEL_TOPOLOGY_REGION: "existingRegion"}),
        ),
        (
            "No CSI topology label exists and no change to the NodeAffinity",
            GCE,
            gce,
            pv_with(
                "gcepd",
                json!({LABEL_TOPOLOGY_ZONE: "existingZone", LABEL_TOPOLOGY_REGION: "existingRegion"}),
                json!([]),
            ),
            json!([]),
            json!({LABEL_TOPOLOGY_ZONE: "existingZone", LABEL_TOPOLOGY_REGION: "existingRegion"}),
        ),
        (
            "Generate GA labels and kubernetes topology only from CSI topology",
            GCE,
            gce,
            pv_with(
                "gcepd",
                Value::Null,
                json!([{"matchExpressions": [req(GCE, &["us-east1-a"])]}]),
            ),
            ga_zone_first(),
            ga_labels(),
        ),
        (
            "Generate Beta labels and kubernetes topology from Beta NodeAffinity",
            GCE,
            gce,
            pv_with(
                "gcepd",
                Value::Null,
                json!([{"matchExpressions": [req(LABEL_FAILURE_DOMAIN_BETA_ZONE, &["us-west2-b"])]}]),
            ),
            beta_zone_first(),
            beta_labels(),
        ),
        (
            "regionParser is missing and only zone labels get generated",
            GCE,
            None,
            pv_with(
                "gcepd",
                Value::Null,
                json!([{"matchExpressions": [req(GCE, &["us-east1-a"])]}]),
            ),
            json!([{"matchExpressions": [req(LABEL_TOPOLOGY_ZONE, &["us-east1-a"])]}]),
            json!({LABEL_TOPOLOGY_ZONE: "us-east1-a"}),
        ),
        (
            "Replace multi-term CSI Topology Key and add Region Kubernetes topology for both",
            GCE,
            gce,
            pv_with(
                "gcepd",
                Value::Null,
                json!([
                    {"matchExpressions": [req(GCE, &["us-east1-a"])]},
                    {"matchExpressions": [req(GCE, &["us-east1-c"])]},
                ]),
            ),
            json!([
                {"matchExpressions": [req(LABEL_TOPOLOGY_ZONE, &["us-east1-a"]), req(LABEL_TOPOLOGY_REGION, &["us-east1"])]},
                {"matchExpressions": [req(LABEL_TOPOLOGY_ZONE, &["us-east1-c"]), req(LABEL_TOPOLOGY_REGION, &["us-east1"])]},
            ]),
            json!({LABEL_TOPOLOGY_ZONE: "us-east1-a__us-east1-c", LABEL_TOPOLOGY_REGION: "us-east1"}),
        ),
        (
            "cinder translation",
            CINDER_TOPOLOGY_KEY,
            None,
            pv_with(
                "cinder",
                Value::Null,
                json!([{"matchExpressions": [req(CINDER_TOPOLOGY_KEY, &["nova"])]}]),
            ),
            json!([{"matchExpressions": [req(LABEL_TOPOLOGY_ZONE, &["nova"])]}]),
            json!({LABEL_TOPOLOGY_ZONE: "nova"}),
        ),
    ];
    for (name, key, parser, mut pv, expected_terms, expected_labels) in cases {
        translate_topology_from_csi_to_in_tree(&mut pv, key, parser).expect(name);
        assert_eq!(terms_of(&pv), terms(expected_terms), "{name}: terms");
        assert_eq!(
            labels_of(&pv),
            expected_labels_or_empty(expected_labels),
            "{name}: labels"
        );
    }
}

fn expected_labels_or_empty(labels: Value) -> Value {
    if labels.is_null() { json!({}) } else { labels }
}

#[test]
fn test_translate_topology_from_in_tree_to_csi() {
    let cases = [
        (
            "Replace GA Kubernetes Zone Topology to GCE CSI Topology",
            pv_with("gcepd", ga_labels(), ga_zone_first()),
            json!([{"matchExpressions": [req(GCE, &["us-east1-a"]), req(LABEL_TOPOLOGY_REGION, &["us-east1"])]}]),
        ),
        (
            "Replace Beta Kubernetes Topology to GCE CSI Topology and upgrade region label",
            pv_with("gcepd", ga_labels(), beta_zone_first()),
            json!([{"matchExpressions": [req(GCE, &["us-west2-b"]), req(LABEL_TOPOLOGY_REGION, &["us-west2"])]}]),
        ),
    ];
    for (name, mut pv, expected) in cases {
        translate_topology_from_in_tree_to_csi(&mut pv, GCE);
        assert_eq!(terms_of(&pv), terms(expected), "{name}");
    }
}

#[test]
fn test_translate_allowed_topologies() {
    let selectors =
        |value: Value| -> Vec<TopologySelectorTerm> { serde_json::from_value(value).unwrap() };
    let expr = |key: &str, values: &[&str]| json!({"key": key, "values": values});
    let cases = [
        (
            "no translation",
            json!([{"matchLabelExpressions": [expr(GCE, &["foo", "bar"])]}]),
            json!([{"matchLabelExpressions": [expr(GCE, &["foo", "bar"])]}]),
        ),
        (
            "translate",
            json!([{"matchLabelExpressions": [expr("failure-domain.beta.kubernetes.io/zone", &["foo", "bar"])]}]),
            json!([{"matchLabelExpressions": [expr(GCE, &["foo", "bar"])]}]),
        ),
        (
            "combo",
            json!([{"matchLabelExpressions": [expr("failure-domain.beta.kubernetes.io/zone", &["foo", "bar"]), expr(GCE, &["boo", "baz"])]}]),
            json!([{"matchLabelExpressions": [expr(GCE, &["foo", "bar"]), expr(GCE, &["boo", "baz"])]}]),
        ),
        (
            "some other key",
            json!([{"matchLabelExpressions": [expr("test", &["foo", "bar"])]}]),
            json!([{"matchLabelExpressions": [expr("test", &["foo", "bar"])]}]),
        ),
    ];
    for (name, topology, expected) in cases {
        let got = translate_allowed_topologies(&selectors(topology), GCE);
        assert_eq!(got, selectors(expected), "{name}");
    }
}

#[test]
fn test_add_topology() {
    let cases: [(&str, &[&str], Option<Value>); 4] = [
        ("empty zones", &[], None),
        (
            "only whitespace-named zones",
            &[" ", "\n", "\t", "  "],
            None,
        ),
        (
            "including whitespace-named zones",
            &[" ", "us-central1-a"],
            Some(json!([{"matchExpressions": [req(GCE, &["us-central1-a"])]}])),
        ),
        (
            "unsorted zones",
            &[
                "us-central1-f",
                "us-central1-a",
                "us-central1-c",
                "us-central1-b",
            ],
            // Values are expected to be ordered.
            Some(
                json!([{"matchExpressions": [req(GCE, &["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"])]}]),
            ),
        ),
    ];
    for (name, zones, expected) in cases {
        let mut pv = PersistentVolume {
            spec: Some(Default::default()),
            ..Default::default()
        };
        let result = add_topology(&mut pv, GCE, zones);
        match expected {
            None => {
                assert!(result.is_err(), "{name}");
                assert!(pv.spec.unwrap().node_affinity.is_none(), "{name}");
            }
            Some(expected) => {
                result.expect(name);
                assert_eq!(terms_of(&pv), terms(expected), "{name}");
            }
        }
    }
}

#[test]
fn test_replace_topology() {
    let cases = [
        (
            "Replace single csi topology from PV",
            json!([{"matchExpressions": [req(GCE, &["us-east1-a"])]}]),
            json!([{"matchExpressions": [req(LABEL_TOPOLOGY_ZONE, &["us-east1-a"])]}]),
        ),
        (
            "Not found the topology key so do nothing",
            json!([{"matchExpressions": [req(LABEL_TOPOLOGY_ZONE, &["us-east1-a"])]}]),
            json!([{"matchExpressions": [req(LABEL_TOPOLOGY_ZONE, &["us-east1-a"])]}]),
        ),
        (
            "Replace the topology key from multiple terms",
            json!([
                {"matchExpressions": [req(GCE, &["us-east1-a"])]},
                {"matchExpressions": [req(GCE, &["us-east1-c"])]},
            ]),
            json!([
                {"matchExpressions": [req(LABEL_TOPOLOGY_ZONE, &["us-east1-a"])]},
                {"matchExpressions": [req(LABEL_TOPOLOGY_ZONE, &["us-east1-c"])]},
            ]),
        ),
        (
            "Replace the topology key from single term and not combine topology key",
            json!([{"matchExpressions": [req(GCE, &["us-east1-a"]), req(LABEL_TOPOLOGY_ZONE, &["us-east1-c"])]}]),
            json!([{"matchExpressions": [req(LABEL_TOPOLOGY_ZONE, &["us-east1-a"]), req(LABEL_TOPOLOGY_ZONE, &["us-east1-c"])]}]),
        ),
    ];
    for (name, before, expected) in cases {
        let mut pv = pv_with("", Value::Null, before);
        replace_topology(&mut pv, GCE, LABEL_TOPOLOGY_ZONE);
        assert_eq!(terms_of(&pv), terms(expected), "{name}");
    }
}
