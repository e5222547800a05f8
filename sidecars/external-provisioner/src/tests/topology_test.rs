//! Port of upstream's `pkg/controller/topology_test.go` (v6.4.0), with its case names:
//! `TestGenerateVolumeNodeAffinity` (5), `TestStatefulSetSpreading` (7 × strict/immediate),
//! `TestAllowedTopologies` (10 × strict/immediate), `TestTopologyAggregation` (24 ×
//! strict/immediate), `TestDistinctTopologyKeySets` (7), `TestRegisteredTopologyKeys` (5),
//! `TestPreferredTopologies` (8 × strict/immediate), `TestProvisionWithDeletedNodeFromCache`
//! (9), `TestNodeTopologyLabelFallback` (2 steps), `TestTopologyTermSort` (4),
//! `TestTopologyTermCompare` (3) and `TestTopologyTermSubset` (9).
//!
//! As upstream's helpers do, every Node also gets the label `net.example.storage/rack=rack1`
//! and every CSINode also registers `net.example.storage/other-driver` with that key.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use csi_proto::csi::v1::{Topology, TopologyRequirement};
use k8s_openapi::api::core::v1::{
    Node, TopologySelectorLabelRequirement, TopologySelectorTerm, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::topology::*;

const DRIVER: &str = "com.example.csi/test-driver";
const PVC_UID: &str = "a9e2d5a3-1c64-4787-97b7-1a22d5a0b123";

type Labels = &'static [(&'static str, &'static str)];
/// One CSINode: driver name → its topology keys (`None`: Go's nil).
type Registration = &'static [(&'static str, Option<&'static [&'static str]>)];
/// One selector term: key → values.
type Allowed = &'static [&'static [(&'static str, &'static [&'static str])]];

fn topology(segments: Labels) -> Topology {
    Topology {
        segments: segments
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn topologies(terms: &[Labels]) -> Vec<Topology> {
    terms.iter().map(|t| topology(t)).collect()
}

fn build_nodes(labels: &[Labels]) -> Vec<Node> {
    labels
        .iter()
        .enumerate()
        .map(|(i, labels)| {
            let mut labels: BTreeMap<String, String> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            labels.insert("net.example.storage/rack".into(), "rack1".into());
            Node {
                metadata: ObjectMeta {
                    name: Some(format!("node-{i}")),
                    labels: Some(labels),
                    ..Default::default()
                },
                ..Default::default()
            }
        })
        .collect()
}

fn build_csi_nodes(registrations: &[Registration]) -> Vec<CSINode> {
    registrations
        .iter()
        .enumerate()
        .map(|(i, drivers)| {
            let node_name = format!("node-{i}");
            let drivers = drivers
                .iter()
                .flat_map(|(driver, keys)| {
                    [
                        CSINodeDriver {
                            name: driver.to_string(),
                            node_id: node_name.clone(),
                            topology_keys: keys.map(|k| k.iter().map(|s| s.to_string()).collect()),
                            ..Default::default()
                        },
                        CSINodeDriver {
                            name: "net.example.storage/other-driver".into(),
                            node_id: node_name.clone(),
                            topology_keys: Some(vec!["net.example.storage/rack".into()]),
                            ..Default::default()
                        },
                    ]
                })
                .collect();
            CSINode {
                metadata: ObjectMeta {
                    name: Some(node_name),
                    ..Default::default()
                },
                spec: CSINodeSpec { drivers },
            }
        })
        .collect()
}

fn allowed_topologies(terms: Allowed) -> Vec<TopologySelectorTerm> {
    terms
        .iter()
        .map(|expressions| TopologySelectorTerm {
            match_label_expressions: Some(
                expressions
                    .iter()
                    .map(|(key, values)| TopologySelectorLabelRequirement {
                        key: key.to_string(),
                        values: values.iter().map(|v| v.to_string()).collect(),
                    })
                    .collect(),
            ),
        })
        .collect()
}

/// Upstream's `requisiteEqual`: the same topologies, in any order.
fn requisite_equal(got: &[Topology], want: &[Topology]) -> bool {
    let mut unchecked: Vec<&Topology> = got.iter().collect();
    for topology in want {
        match unchecked.iter().position(|t| *t == topology) {
            Some(i) => {
                unchecked.remove(i);
            }
            None => return false,
        }
    }
    unchecked.is_empty()
}

const WITH_WITHOUT: [(bool, &str); 2] = [(false, "without"), (true, "with")];

#[allow(clippy::too_many_arguments)]
fn generate(
    pvc_uid: &str,
    pvc_name: &str,
    allowed: &[TopologySelectorTerm],
    selected_node: &str,
    strict_topology: bool,
    immediate_topology: bool,
    cluster: &ClusterTopology<'_>,
    memo: &mut TopologyMemo,
) -> Result<Option<TopologyRequirement>, TopologyError> {
    generate_accessibility_requirements(
        &AccessibilityRequest {
            driver_name: DRIVER,
            pvc_uid,
            pvc_name,
            allowed_topologies: allowed,
            selected_node,
            strict_topology,
            immediate_topology,
        },
        cluster,
        memo,
    )
}

struct AffinityCase {
    name: &'static str,
    accessible_topology: Option<&'static [Labels]>,
    expected: Option<Allowed>,
}

/// Affinity as (key, values) per term, expressions sorted: upstream compares them as sets.
fn affinity_terms(affinity: &VolumeNodeAffinity) -> Vec<Vec<(String, String, Vec<String>)>> {
    affinity
        .required
        .as_ref()
        .unwrap()
        .node_selector_terms
        .iter()
        .map(|term| {
            let mut expressions: Vec<_> = term
                .match_expressions
                .iter()
                .flatten()
                .map(|e| {
                    (
                        e.key.clone(),
                        e.operator.clone(),
                        e.values.clone().unwrap_or_default(),
                    )
                })
                .collect();
            expressions.sort();
            expressions
        })
        .collect()
}

#[test]
fn test_generate_volume_node_affinity() {
    let cases = [
        AffinityCase {
            name: "nil topology",
            accessible_topology: None,
            expected: None,
        },
        AffinityCase {
            name: "non-nil topology but nil segment",
            accessible_topology: Some(&[]),
            expected: None,
        },
        AffinityCase {
            name: "single segment",
            accessible_topology: Some(&[&[("com.example.csi/zone", "zone1")]]),
            expected: Some(&[&[("com.example.csi/zone", &["zone1"])]]),
        },
        AffinityCase {
            name: "multiple segments",
            accessible_topology: Some(&[&[
                ("com.example.csi/zone", "zone1"),
                ("com.example.csi/rack", "rack2"),
            ]]),
            expected: Some(&[&[
                ("com.example.csi/zone", &["zone1"]),
                ("com.example.csi/rack", &["rack2"]),
            ]]),
        },
        AffinityCase {
            name: "multiple topologies",
            accessible_topology: Some(&[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
            ]),
            expected: Some(&[
                &[("com.example.csi/zone", &["zone1"])],
                &[("com.example.csi/zone", &["zone2"])],
            ]),
        },
    ];
    for case in cases {
        let accessible = case.accessible_topology.map(topologies);
        let got = volume_node_affinity(accessible.as_deref().unwrap_or_default());
        match (case.expected, got) {
            (None, None) => {}
            (Some(expected), Some(got)) => {
                let mut want: Vec<Vec<(String, String, Vec<String>)>> = expected
                    .iter()
                    .map(|term| {
                        term.iter()
                            .map(|(k, v)| {
                                (
                                    k.to_string(),
                                    "In".to_string(),
                                    v.iter().map(|s| s.to_string()).collect(),
                                )
                            })
                            .collect()
                    })
                    .collect();
                want.iter_mut().for_each(|t| t.sort());
                assert_eq!(affinity_terms(&got), want, "{}", case.name);
            }
            (expected, got) => panic!("{}: expected {expected:?}, got {got:?}", case.name),
        }
    }
}

struct SpreadingCase {
    name: &'static str,
    pvc_uid: &'static str,
    pvc_name: &'static str,
    allowed_topologies: Allowed,
    expected_preferred: Option<&'static [Labels]>,
}

#[test]
fn test_stateful_set_spreading() {
    let nodes = build_nodes(&[
        &[
            ("com.example.csi/zone", "zone1"),
            ("com.example.csi/rack", "rackA"),
        ],
        &[
            ("com.example.csi/zone", "zone2"),
            ("com.example.csi/rack", "rackB"),
        ],
        &[
            ("com.example.csi/zone", "zone3"),
            ("com.example.csi/rack", "rackC"),
        ],
        &[
            ("com.example.csi/zone", "zone4"),
            ("com.example.csi/rack", "rackD"),
        ],
    ]);
    let keys: Registration = &[(
        DRIVER,
        Some(&["com.example.csi/zone", "com.example.csi/rack"]),
    )];
    let csi_nodes = build_csi_nodes(&[keys, keys, keys, keys]);
    let cluster = ClusterTopology {
        csi_nodes: &csi_nodes,
        nodes: &nodes,
    };
    let cases = [
        SpreadingCase {
            name: "select index 0 among nodes for pvc with statefulset name:testset and id:1; ignore claimname:testpvcA",
            pvc_uid: "a9e2d5a3-1c64-4787-97b7-1a22d5a0b123",
            pvc_name: "testpvcA-testset-1",
            allowed_topologies: &[],
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/rack", "rackA"),
                    ("com.example.csi/zone", "zone1"),
                ],
                &[
                    ("com.example.csi/rack", "rackB"),
                    ("com.example.csi/zone", "zone2"),
                ],
                &[
                    ("com.example.csi/rack", "rackC"),
                    ("com.example.csi/zone", "zone3"),
                ],
                &[
                    ("com.example.csi/rack", "rackD"),
                    ("com.example.csi/zone", "zone4"),
                ],
            ]),
        },
        SpreadingCase {
            name: "select index 0 among nodes for pvc with statefulset name:testset and id:1; ignore claimname:testpvcB",
            pvc_uid: "a9e2d5a3-1c64-4787-97b7-1a22d5a0b123",
            pvc_name: "testpvcB-testset-1",
            allowed_topologies: &[],
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/rack", "rackA"),
                    ("com.example.csi/zone", "zone1"),
                ],
                &[
                    ("com.example.csi/rack", "rackB"),
                    ("com.example.csi/zone", "zone2"),
                ],
                &[
                    ("com.example.csi/rack", "rackC"),
                    ("com.example.csi/zone", "zone3"),
                ],
                &[
                    ("com.example.csi/rack", "rackD"),
                    ("com.example.csi/zone", "zone4"),
                ],
            ]),
        },
        SpreadingCase {
            name: "select index 0 among allowedTopologies with single term/multiple requirements for pvc with statefulset name:testset and id:1; ignore claimname:testpvcC",
            pvc_uid: "a9e2d5a3-1c64-4787-97b7-1a22d5a0b123",
            pvc_name: "testpvcC-testset-1",
            allowed_topologies: &[&[
                ("com.example.csi/zone", &["zone1"]),
                ("com.example.csi/rack", &["rackA"]),
            ]],
            expected_preferred: Some(&[&[
                ("com.example.csi/rack", "rackA"),
                ("com.example.csi/zone", "zone1"),
            ]]),
        },
        SpreadingCase {
            name: "select index 1 among nodes for pvc with statefulset name:testset and id:2",
            pvc_uid: "a9e2d5a3-1c64-4787-97b7-1a22d5a0b123",
            pvc_name: "testset-2",
            allowed_topologies: &[],
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/rack", "rackB"),
                    ("com.example.csi/zone", "zone2"),
                ],
                &[
                    ("com.example.csi/rack", "rackC"),
                    ("com.example.csi/zone", "zone3"),
                ],
                &[
                    ("com.example.csi/rack", "rackD"),
                    ("com.example.csi/zone", "zone4"),
                ],
                &[
                    ("com.example.csi/rack", "rackA"),
                    ("com.example.csi/zone", "zone1"),
                ],
            ]),
        },
        SpreadingCase {
            name: "select index 1 among allowedTopologies with multiple terms/multiple requirements for pvc with statefulset name:testset and id:2; ignore claimname:testpvcB",
            pvc_uid: "a9e2d5a3-1c64-4787-97b7-1a22d5a0b123",
            pvc_name: "testpvcB-testset-2",
            allowed_topologies: &[
                &[
                    ("com.example.csi/zone", &["zone2"]),
                    ("com.example.csi/rack", &["rackB"]),
                ],
                &[
                    ("com.example.csi/zone", &["zone1"]),
                    ("com.example.csi/rack", &["rackA"]),
                ],
            ],
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/rack", "rackB"),
                    ("com.example.csi/zone", "zone2"),
                ],
                &[
                    ("com.example.csi/rack", "rackA"),
                    ("com.example.csi/zone", "zone1"),
                ],
            ]),
        },
        SpreadingCase {
            name: "select index 2 among nodes with statefulset name:testset and id:3; ignore claimname:testpvc",
            pvc_uid: "a9e2d5a3-1c64-4787-97b7-1a22d5a0b123",
            pvc_name: "testpvc-testset-3",
            allowed_topologies: &[],
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/rack", "rackC"),
                    ("com.example.csi/zone", "zone3"),
                ],
                &[
                    ("com.example.csi/rack", "rackD"),
                    ("com.example.csi/zone", "zone4"),
                ],
                &[
                    ("com.example.csi/rack", "rackA"),
                    ("com.example.csi/zone", "zone1"),
                ],
                &[
                    ("com.example.csi/rack", "rackB"),
                    ("com.example.csi/zone", "zone2"),
                ],
            ]),
        },
        SpreadingCase {
            name: "select index 3 among nodes with statefulset name:testset and id:4; ignore claimname:testpvc",
            pvc_uid: "a9e2d5a3-1c64-4787-97b7-1a22d5a0b123",
            pvc_name: "testpvc-testset-4",
            allowed_topologies: &[],
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/rack", "rackD"),
                    ("com.example.csi/zone", "zone4"),
                ],
                &[
                    ("com.example.csi/rack", "rackA"),
                    ("com.example.csi/zone", "zone1"),
                ],
                &[
                    ("com.example.csi/rack", "rackB"),
                    ("com.example.csi/zone", "zone2"),
                ],
                &[
                    ("com.example.csi/rack", "rackC"),
                    ("com.example.csi/zone", "zone3"),
                ],
            ]),
        },
    ];
    for case in cases {
        let allowed = allowed_topologies(case.allowed_topologies);
        for (strict, strict_name) in WITH_WITHOUT {
            let mut memo = TopologyMemo::new();
            for (immediate, immediate_name) in WITH_WITHOUT {
                let name = format!(
                    "{}/{strict_name} strict topology/{immediate_name} immediate topology",
                    case.name
                );
                let requirements = generate(
                    case.pvc_uid,
                    case.pvc_name,
                    &allowed,
                    "",
                    strict,
                    immediate,
                    &cluster,
                    &mut memo,
                )
                .unwrap_or_else(|e| panic!("{name}: unexpected error: {e}"));
                let expected = if !immediate && case.allowed_topologies.is_empty() {
                    None
                } else {
                    case.expected_preferred.map(topologies)
                };
                match expected {
                    None => assert!(
                        requirements.is_none_or(|r| r.preferred.is_empty()),
                        "{name}: expected no preferred"
                    ),
                    Some(expected) => {
                        let requirements = requirements.unwrap_or_else(|| panic!("{name}: nil"));
                        assert_eq!(requirements.preferred, expected, "{name}");
                    }
                }
            }
        }
    }
}

struct AllowedCase {
    name: &'static str,
    allowed_topologies: Allowed,
    expected_requisite: Option<&'static [Labels]>,
}

#[test]
fn test_allowed_topologies() {
    let cases = [
        AllowedCase {
            name: "single expression, single value",
            allowed_topologies: &[&[("com.example.csi/zone", &["zone1"])]],
            expected_requisite: Some(&[&[("com.example.csi/zone", "zone1")]]),
        },
        AllowedCase {
            name: "single expression, multiple values",
            allowed_topologies: &[&[("com.example.csi/zone", &["zone1", "zone2"])]],
            expected_requisite: Some(&[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
            ]),
        },
        AllowedCase {
            name: "multiple expressions, single value",
            allowed_topologies: &[&[
                ("com.example.csi/zone", &["zone1"]),
                ("com.example.csi/rack", &["rackA"]),
            ]],
            expected_requisite: Some(&[&[
                ("com.example.csi/zone", "zone1"),
                ("com.example.csi/rack", "rackA"),
            ]]),
        },
        AllowedCase {
            name: "multiple expressions, 1 single value, 1 multiple values",
            allowed_topologies: &[&[
                ("com.example.csi/zone", &["zone1"]),
                ("com.example.csi/rack", &["rackA", "rackB"]),
            ]],
            expected_requisite: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ]),
        },
        AllowedCase {
            name: "multiple expressions, both multiple values",
            allowed_topologies: &[&[
                ("com.example.csi/zone", &["zone1", "zone2"]),
                ("com.example.csi/rack", &["rackA", "rackB"]),
            ]],
            expected_requisite: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackB"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ]),
        },
        AllowedCase {
            name: "multiple terms: single expression, single values",
            allowed_topologies: &[
                &[("com.example.csi/zone", &["zone1"])],
                &[("com.example.csi/rack", &["rackA"])],
            ],
            expected_requisite: Some(&[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/rack", "rackA")],
            ]),
        },
        AllowedCase {
            name: "multiple terms: single expression, overlapping keys, distinct values",
            allowed_topologies: &[
                &[("com.example.csi/zone", &["zone1"])],
                &[("com.example.csi/zone", &["zone2"])],
            ],
            expected_requisite: Some(&[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
            ]),
        },
        AllowedCase {
            name: "multiple terms: single expression, overlapping keys, overlapping values",
            allowed_topologies: &[
                &[("com.example.csi/zone", &["zone1", "zone2"])],
                &[("com.example.csi/zone", &["zone2", "zone3"])],
            ],
            expected_requisite: Some(&[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
                &[("com.example.csi/zone", "zone3")],
            ]),
        },
        AllowedCase {
            name: "multiple terms: 1 single expression, 1 multiple expressions; contains a subset duplicate",
            allowed_topologies: &[
                &[("com.example.csi/zone", &["zone1"])],
                &[
                    ("com.example.csi/zone", &["zone1", "zone2"]),
                    ("com.example.csi/rack", &["rackA", "rackB"]),
                ],
            ],
            expected_requisite: Some(&[
                &[("com.example.csi/zone", "zone1")],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackB"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ]),
        },
        AllowedCase {
            name: "multiple terms: both contains multiple expressions; contains an identical duplicate",
            allowed_topologies: &[
                &[
                    ("com.example.csi/zone", &["zone1"]),
                    ("com.example.csi/rack", &["rackB"]),
                ],
                &[
                    ("com.example.csi/zone", &["zone1", "zone2"]),
                    ("com.example.csi/rack", &["rackA", "rackB"]),
                ],
            ],
            expected_requisite: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackB"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ]),
        },
    ];
    for case in cases {
        let allowed = allowed_topologies(case.allowed_topologies);
        let mut memo = TopologyMemo::new();
        for (strict, strict_name) in WITH_WITHOUT {
            for (immediate, immediate_name) in WITH_WITHOUT {
                let name = format!(
                    "{}/{strict_name} strict topology/{immediate_name} immediate topology",
                    case.name
                );
                let requirements = generate(
                    PVC_UID,
                    "testpvc",
                    &allowed,
                    "",
                    strict,
                    immediate,
                    &ClusterTopology::default(),
                    &mut memo,
                )
                .unwrap_or_else(|e| panic!("{name}: unexpected error: {e}"))
                .unwrap_or_else(|| panic!("{name}: expected requirements"));
                let expected = topologies(case.expected_requisite.unwrap_or_default());
                assert!(
                    requisite_equal(&requirements.requisite, &expected),
                    "{name}: expected requisite {expected:?}, got {:?}",
                    requirements.requisite
                );
            }
        }
    }
}

struct AggregationCase {
    name: &'static str,
    node_labels: &'static [Labels],
    topology_keys: &'static [Registration],
    /// The first node is the selected one.
    has_selected_node: bool,
    expected_requisite: Option<&'static [Labels]>,
    expected_strict_requisite: Option<&'static [Labels]>,
    expect_error: bool,
}

#[test]
fn test_topology_aggregation() {
    let cases = [
        AggregationCase {
            name: "same keys and values across cluster",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone1")],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            has_selected_node: false,
            expected_requisite: Some(&[&[("com.example.csi/zone", "zone1")]]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "selected node; same keys and values across cluster",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone1")],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            has_selected_node: true,
            expected_requisite: Some(&[&[("com.example.csi/zone", "zone1")]]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "different values across cluster",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
                &[("com.example.csi/zone", "zone2")],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            has_selected_node: false,
            expected_requisite: Some(&[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
            ]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "selected node; different values across cluster",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
                &[("com.example.csi/zone", "zone2")],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            has_selected_node: true,
            expected_requisite: Some(&[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
            ]),
            expected_strict_requisite: Some(&[&[("com.example.csi/zone", "zone1")]]),
            expect_error: false,
        },
        AggregationCase {
            name: "different keys across cluster",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/rack"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/rack"]),
                )],
            ],
            has_selected_node: false,
            expected_requisite: Some(&[
                &[("com.example.csi/zone", "zone1")],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
            ]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "different keys across cluster: node reporting fewer keys is not dropped",
            node_labels: &[
                &[("com.example.csi/region", "us-east")],
                &[
                    ("com.example.csi/region", "us-west"),
                    ("com.example.csi/zone", "zone1"),
                ],
                &[
                    ("com.example.csi/region", "us-west"),
                    ("com.example.csi/zone", "zone2"),
                ],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/region"]))],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/region", "com.example.csi/zone"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/region", "com.example.csi/zone"]),
                )],
            ],
            has_selected_node: false,
            expected_requisite: Some(&[
                &[("com.example.csi/region", "us-east")],
                &[("com.example.csi/region", "us-west")],
                &[
                    ("com.example.csi/region", "us-west"),
                    ("com.example.csi/zone", "zone1"),
                ],
                &[
                    ("com.example.csi/region", "us-west"),
                    ("com.example.csi/zone", "zone2"),
                ],
            ]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "disjoint keys across cluster",
            node_labels: &[
                &[("com.example.csi/region", "us-east")],
                &[("com.example.csi/zone", "zone1")],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/region"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            has_selected_node: false,
            expected_requisite: Some(&[
                &[("com.example.csi/region", "us-east")],
                &[("com.example.csi/zone", "zone1")],
            ]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "disjoint keys across cluster, both labels on every node",
            node_labels: &[
                &[
                    ("com.example.csi/region", "us-east"),
                    ("com.example.csi/zone", "zone1"),
                ],
                &[
                    ("com.example.csi/region", "us-west"),
                    ("com.example.csi/zone", "zone2"),
                ],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/region"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            has_selected_node: false,
            expected_requisite: Some(&[
                &[("com.example.csi/region", "us-east")],
                &[("com.example.csi/zone", "zone2")],
            ]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "unregistered node with labels for multiple key sets",
            node_labels: &[
                &[("com.example.csi/region", "us-east")],
                &[("com.example.csi/zone", "zone1")],
                &[
                    ("com.example.csi/region", "us-west"),
                    ("com.example.csi/zone", "zone2"),
                ],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/region"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, None)],
            ],
            has_selected_node: false,
            expected_requisite: Some(&[
                &[("com.example.csi/region", "us-east")],
                &[("com.example.csi/zone", "zone1")],
            ]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "finer registration contributes to the coarser key set",
            node_labels: &[
                &[
                    ("com.example.csi/region", "us-east"),
                    ("com.example.csi/zone", "zone1"),
                ],
                &[
                    ("com.example.csi/region", "us-east"),
                    ("com.example.csi/zone", "zone2"),
                ],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/region"]))],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/region", "com.example.csi/zone"]),
                )],
            ],
            has_selected_node: false,
            expected_requisite: Some(&[
                &[("com.example.csi/region", "us-east")],
                &[
                    ("com.example.csi/region", "us-east"),
                    ("com.example.csi/zone", "zone2"),
                ],
            ]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "selected node: different keys across cluster",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/rack"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/rack"]),
                )],
            ],
            has_selected_node: true,
            expected_requisite: Some(&[&[("com.example.csi/zone", "zone1")]]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "selected node: labeled node whose driver reported no topology keys is not included",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
                &[("com.example.csi/zone", "zone3")],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, None)],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            has_selected_node: true,
            expected_requisite: Some(&[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone3")],
            ]),
            expected_strict_requisite: Some(&[&[("com.example.csi/zone", "zone1")]]),
            expect_error: false,
        },
        AggregationCase {
            name: "selected node: labeled node without the driver registered is not included",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
            ],
            topology_keys: &[&[(DRIVER, Some(&["com.example.csi/zone"]))], &[]],
            has_selected_node: true,
            expected_requisite: Some(&[&[("com.example.csi/zone", "zone1")]]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "selected node: node that registered different keys is not included",
            node_labels: &[
                &[("com.example.csi/region", "us-east")],
                &[
                    ("com.example.csi/region", "us-west"),
                    ("com.example.csi/zone", "zone1"),
                ],
                &[
                    ("com.example.csi/region", "us-central"),
                    ("com.example.csi/zone", "zone2"),
                ],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/region"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/region", "com.example.csi/zone"]),
                )],
            ],
            has_selected_node: true,
            expected_requisite: Some(&[
                &[("com.example.csi/region", "us-east")],
                &[("com.example.csi/region", "us-central")],
            ]),
            expected_strict_requisite: Some(&[&[("com.example.csi/region", "us-east")]]),
            expect_error: false,
        },
        AggregationCase {
            name: "random node: no nodes",
            node_labels: &[],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            has_selected_node: false,
            expected_requisite: None,
            expected_strict_requisite: None,
            expect_error: true,
        },
        AggregationCase {
            name: "random node: missing matching node info",
            node_labels: &[&[("com.example.csi/foo", "bar")]],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            has_selected_node: false,
            expected_requisite: None,
            expected_strict_requisite: None,
            expect_error: true,
        },
        AggregationCase {
            name: "random node: no CSINodes",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
                &[("com.example.csi/zone", "zone2")],
            ],
            topology_keys: &[],
            has_selected_node: false,
            expected_requisite: None,
            expected_strict_requisite: None,
            expect_error: true,
        },
        AggregationCase {
            name: "random node: missing keys",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
                &[("com.example.csi/zone", "zone2")],
            ],
            topology_keys: &[&[(DRIVER, None)], &[(DRIVER, None)], &[(DRIVER, None)]],
            has_selected_node: false,
            expected_requisite: None,
            expected_strict_requisite: None,
            expect_error: true,
        },
        AggregationCase {
            name: "random node: one node has been upgraded",
            node_labels: &[
                &[("com.example.another/zone", "zone1")],
                &[("com.example.another/zone", "zone2")],
                &[("com.example.csi/zone", "zone3")],
            ],
            topology_keys: &[
                &[(DRIVER, None)],
                &[(DRIVER, None)],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            has_selected_node: false,
            expected_requisite: Some(&[&[("com.example.csi/zone", "zone3")]]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "random node: labeled nodes whose driver reported no topology keys are not included",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
                &[("com.example.csi/zone", "zone3")],
            ],
            topology_keys: &[
                &[(DRIVER, None)],
                &[(DRIVER, None)],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            has_selected_node: false,
            expected_requisite: Some(&[&[("com.example.csi/zone", "zone3")]]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "random node: labeled node without the driver registered is not included",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
            ],
            topology_keys: &[&[(DRIVER, Some(&["com.example.csi/zone"]))], &[]],
            has_selected_node: false,
            expected_requisite: Some(&[&[("com.example.csi/zone", "zone1")]]),
            expected_strict_requisite: None,
            expect_error: false,
        },
        AggregationCase {
            name: "selected node: missing matching node info",
            node_labels: &[&[("com.example.csi/foo", "bar")]],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            has_selected_node: true,
            expected_requisite: None,
            expected_strict_requisite: None,
            expect_error: true,
        },
        AggregationCase {
            name: "selected node: no CSINode info",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
                &[("com.example.csi/zone", "zone2")],
            ],
            topology_keys: &[],
            has_selected_node: true,
            expected_requisite: None,
            expected_strict_requisite: None,
            expect_error: true,
        },
        AggregationCase {
            name: "selected node is missing keys",
            node_labels: &[
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone2")],
                &[("com.example.csi/zone", "zone2")],
            ],
            topology_keys: &[&[(DRIVER, None)], &[(DRIVER, None)], &[(DRIVER, None)]],
            has_selected_node: true,
            expected_requisite: None,
            expected_strict_requisite: None,
            expect_error: true,
        },
    ];
    for case in cases {
        for (strict, strict_name) in WITH_WITHOUT {
            for (immediate, immediate_name) in WITH_WITHOUT {
                let name = format!(
                    "{}/{strict_name} strict topology/{immediate_name} immediate topology",
                    case.name
                );
                let nodes = build_nodes(case.node_labels);
                let csi_nodes = build_csi_nodes(case.topology_keys);
                let cluster = ClusterTopology {
                    csi_nodes: &csi_nodes,
                    nodes: &nodes,
                };
                let selected = if case.has_selected_node { "node-0" } else { "" };
                let result = generate(
                    PVC_UID,
                    "testpvc",
                    &[],
                    selected,
                    strict,
                    immediate,
                    &cluster,
                    &mut TopologyMemo::new(),
                );
                let mut expect_error = case.expect_error;
                let mut expected = case.expected_requisite;
                if strict && case.expected_strict_requisite.is_some() {
                    expected = case.expected_strict_requisite;
                }
                if !immediate && !case.has_selected_node {
                    expected = None;
                    expect_error = false;
                }
                match (expect_error, &result) {
                    (true, Ok(_)) => panic!("{name}: expected error but got none"),
                    (false, Err(e)) => panic!("{name}: expected no error but got: {e}"),
                    _ => {}
                }
                let requirements = result.ok().flatten();
                match expected {
                    None => assert!(
                        requirements.is_none(),
                        "{name}: expected requirements to be nil, got {requirements:?}"
                    ),
                    Some(expected) => {
                        let requirements =
                            requirements.unwrap_or_else(|| panic!("{name}: requirements is nil"));
                        let expected = topologies(expected);
                        assert!(
                            requisite_equal(&requirements.requisite, &expected),
                            "{name}: expected requisite {expected:?}, got {:?}",
                            requirements.requisite
                        );
                    }
                }
            }
        }
    }
}

struct KeySetsCase {
    name: &'static str,
    topology_keys: &'static [Registration],
    expected: Option<&'static [&'static [&'static str]]>,
}

#[test]
fn test_distinct_topology_key_sets() {
    let cases = [
        KeySetsCase {
            name: "no CSINodes",
            topology_keys: &[],
            expected: None,
        },
        KeySetsCase {
            name: "driver has not registered any topology key",
            topology_keys: &[&[(DRIVER, None)], &[(DRIVER, None)]],
            expected: None,
        },
        KeySetsCase {
            name: "same key set on every node",
            topology_keys: &[
                &[(
                    DRIVER,
                    Some(&["com.example.csi/region", "com.example.csi/zone"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/region", "com.example.csi/zone"]),
                )],
            ],
            expected: Some(&[&["com.example.csi/region", "com.example.csi/zone"]]),
        },
        KeySetsCase {
            name: "same key set reported in a different order",
            topology_keys: &[
                &[(
                    DRIVER,
                    Some(&["com.example.csi/region", "com.example.csi/zone"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/region"]),
                )],
            ],
            expected: Some(&[&["com.example.csi/region", "com.example.csi/zone"]]),
        },
        KeySetsCase {
            name: "different key sets across cluster",
            topology_keys: &[
                &[(
                    DRIVER,
                    Some(&["com.example.csi/region", "com.example.csi/zone"]),
                )],
                &[(DRIVER, Some(&["com.example.csi/region"]))],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/region", "com.example.csi/zone"]),
                )],
            ],
            expected: Some(&[
                &["com.example.csi/region"],
                &["com.example.csi/region", "com.example.csi/zone"],
            ]),
        },
        KeySetsCase {
            name: "nodes without registered keys are skipped",
            topology_keys: &[
                &[(DRIVER, None)],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            expected: Some(&[&["com.example.csi/zone"]]),
        },
        KeySetsCase {
            name: "disjoint key sets",
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/region"]))],
            ],
            expected: Some(&[&["com.example.csi/region"], &["com.example.csi/zone"]]),
        },
    ];
    for case in cases {
        let csi_nodes = build_csi_nodes(case.topology_keys);
        let expected: Vec<Vec<String>> = case
            .expected
            .unwrap_or_default()
            .iter()
            .map(|set| set.iter().map(|k| k.to_string()).collect())
            .collect();
        assert_eq!(
            distinct_topology_key_sets(&csi_nodes, DRIVER),
            expected,
            "{}",
            case.name
        );
    }
}

struct RegisteredCase {
    name: &'static str,
    topology_keys: &'static [Registration],
    expected: &'static [(&'static str, &'static [&'static str])],
}

#[test]
fn test_registered_topology_keys() {
    let cases = [
        RegisteredCase {
            name: "no CSINodes",
            topology_keys: &[],
            expected: &[],
        },
        RegisteredCase {
            name: "driver registered on every node",
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            expected: &[
                ("node-0", &["com.example.csi/zone"]),
                ("node-1", &["com.example.csi/zone"]),
            ],
        },
        RegisteredCase {
            name: "nodes without registered keys are omitted",
            topology_keys: &[
                &[(DRIVER, None)],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            expected: &[("node-1", &["com.example.csi/zone"])],
        },
        RegisteredCase {
            name: "different key sets are recorded per node",
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/region"]))],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/region", "com.example.csi/zone"]),
                )],
            ],
            expected: &[
                ("node-0", &["com.example.csi/region"]),
                (
                    "node-1",
                    &["com.example.csi/region", "com.example.csi/zone"],
                ),
            ],
        },
        RegisteredCase {
            name: "key order does not matter",
            topology_keys: &[
                &[(
                    DRIVER,
                    Some(&["com.example.csi/region", "com.example.csi/zone"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/region"]),
                )],
            ],
            expected: &[
                (
                    "node-0",
                    &["com.example.csi/region", "com.example.csi/zone"],
                ),
                (
                    "node-1",
                    &["com.example.csi/region", "com.example.csi/zone"],
                ),
            ],
        },
    ];
    for case in cases {
        let csi_nodes = build_csi_nodes(case.topology_keys);
        let expected: BTreeMap<String, BTreeSet<String>> = case
            .expected
            .iter()
            .map(|(node, keys)| {
                (
                    node.to_string(),
                    keys.iter().map(|k| k.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(
            registered_topology_keys(&csi_nodes, DRIVER),
            expected,
            "{}",
            case.name
        );
    }
}

struct PreferredCase {
    name: &'static str,
    allowed_topologies: Allowed,
    /// The first node is the selected one.
    node_labels: &'static [Labels],
    topology_keys: &'static [Registration],
    expected_preferred: Option<&'static [Labels]>,
    expected_strict_preferred: Option<&'static [Labels]>,
    expect_error: bool,
}

#[test]
fn test_preferred_topologies() {
    let cases = [
        PreferredCase {
            name: "allowedTopologies specified",
            allowed_topologies: &[&[
                ("com.example.csi/zone", &["zone1", "zone2"]),
                ("com.example.csi/rack", &["rackA", "rackB"]),
            ]],
            node_labels: &[
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ],
            topology_keys: &[
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/rack"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/rack"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/rack"]),
                )],
            ],
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/rack", "rackA"),
                    ("com.example.csi/zone", "zone2"),
                ],
                &[
                    ("com.example.csi/rack", "rackB"),
                    ("com.example.csi/zone", "zone1"),
                ],
                &[
                    ("com.example.csi/rack", "rackB"),
                    ("com.example.csi/zone", "zone2"),
                ],
                &[
                    ("com.example.csi/rack", "rackA"),
                    ("com.example.csi/zone", "zone1"),
                ],
            ]),
            expected_strict_preferred: Some(&[&[
                ("com.example.csi/rack", "rackA"),
                ("com.example.csi/zone", "zone2"),
            ]]),
            expect_error: false,
        },
        PreferredCase {
            name: "allowedTopologies specified: no CSINode",
            allowed_topologies: &[&[
                ("com.example.csi/zone", &["zone1", "zone2"]),
                ("com.example.csi/rack", &["rackA", "rackB"]),
            ]],
            node_labels: &[
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ],
            topology_keys: &[],
            expected_preferred: None,
            expected_strict_preferred: None,
            expect_error: true,
        },
        PreferredCase {
            name: "allowedTopologies specified: mismatched key",
            allowed_topologies: &[&[
                ("com.example.csi/zone", &["zone1", "zone2"]),
                ("com.example.csi/rack", &["rackA", "rackB"]),
            ]],
            node_labels: &[
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ],
            topology_keys: &[
                &[(
                    DRIVER,
                    Some(&["com.example.csi/foo", "com.example.csi/rack"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/foo", "com.example.csi/rack"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/foo", "com.example.csi/rack"]),
                )],
            ],
            expected_preferred: None,
            expected_strict_preferred: None,
            expect_error: true,
        },
        PreferredCase {
            name: "topology aggregation",
            allowed_topologies: &[],
            node_labels: &[
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ],
            topology_keys: &[
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/rack"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/rack"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/rack"]),
                )],
            ],
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/rack", "rackA"),
                    ("com.example.csi/zone", "zone2"),
                ],
                &[
                    ("com.example.csi/rack", "rackB"),
                    ("com.example.csi/zone", "zone1"),
                ],
                &[
                    ("com.example.csi/rack", "rackA"),
                    ("com.example.csi/zone", "zone1"),
                ],
            ]),
            expected_strict_preferred: Some(&[&[
                ("com.example.csi/rack", "rackA"),
                ("com.example.csi/zone", "zone2"),
            ]]),
            expect_error: false,
        },
        PreferredCase {
            name: "topology aggregation with no topology info",
            allowed_topologies: &[],
            node_labels: &[&[], &[], &[]],
            topology_keys: &[&[], &[], &[]],
            expected_preferred: None,
            expected_strict_preferred: None,
            expect_error: true,
        },
        PreferredCase {
            name: "topology from selected node is not in allowedTopologies",
            allowed_topologies: &[&[("com.example.csi/zone", &["zone1"])]],
            node_labels: &[
                &[("com.example.csi/zone", "zone2")],
                &[("com.example.csi/zone", "zone1")],
                &[("com.example.csi/zone", "zone1")],
            ],
            topology_keys: &[
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
                &[(DRIVER, Some(&["com.example.csi/zone"]))],
            ],
            expected_preferred: None,
            expected_strict_preferred: None,
            expect_error: true,
        },
        PreferredCase {
            name: "allowedTopologies is subset of selected node's topology",
            allowed_topologies: &[&[
                ("com.example.csi/disk", &["ssd"]),
                ("com.example.csi/zone", &["zone1"]),
            ]],
            node_labels: &[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rack1"),
                    ("com.example.csi/disk", "ssd"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rack2"),
                    ("com.example.csi/disk", "ssd"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rack1"),
                    ("com.example.csi/disk", "nvme"),
                ],
            ],
            topology_keys: &[
                &[(
                    DRIVER,
                    Some(&[
                        "com.example.csi/zone",
                        "com.example.csi/rack",
                        "com.example.csi/disk",
                    ]),
                )],
                &[(
                    DRIVER,
                    Some(&[
                        "com.example.csi/zone",
                        "com.example.csi/rack",
                        "com.example.csi/disk",
                    ]),
                )],
                &[(
                    DRIVER,
                    Some(&[
                        "com.example.csi/zone",
                        "com.example.csi/rack",
                        "com.example.csi/disk",
                    ]),
                )],
            ],
            expected_preferred: Some(&[&[
                ("com.example.csi/disk", "ssd"),
                ("com.example.csi/zone", "zone1"),
            ]]),
            expected_strict_preferred: Some(&[&[
                ("com.example.csi/disk", "ssd"),
                ("com.example.csi/rack", "rack1"),
                ("com.example.csi/zone", "zone1"),
            ]]),
            expect_error: false,
        },
        PreferredCase {
            name: "allowedTopologies is not the subset of selected node's topology",
            allowed_topologies: &[&[("com.example.csi/zone", &["zone1"])]],
            node_labels: &[
                &[
                    ("com.example.csi/zone", "zone10"),
                    ("com.example.csi/rack", "rack1"),
                ],
                &[
                    ("com.example.csi/zone", "zone11"),
                    ("com.example.csi/rack", "rack2"),
                ],
                &[
                    ("com.example.csi/zone", "zone12"),
                    ("com.example.csi/rack", "rack1"),
                ],
            ],
            topology_keys: &[
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/rack"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/rack"]),
                )],
                &[(
                    DRIVER,
                    Some(&["com.example.csi/zone", "com.example.csi/rack"]),
                )],
            ],
            expected_preferred: None,
            expected_strict_preferred: None,
            expect_error: true,
        },
    ];
    for case in cases {
        let allowed = allowed_topologies(case.allowed_topologies);
        for (strict, strict_name) in WITH_WITHOUT {
            for (immediate, immediate_name) in WITH_WITHOUT {
                let name = format!(
                    "{}/{strict_name} strict topology/{immediate_name} immediate topology",
                    case.name
                );
                let nodes = build_nodes(case.node_labels);
                let csi_nodes = build_csi_nodes(case.topology_keys);
                let cluster = ClusterTopology {
                    csi_nodes: &csi_nodes,
                    nodes: &nodes,
                };
                let result = generate(
                    PVC_UID,
                    "testpvc",
                    &allowed,
                    "node-0",
                    strict,
                    immediate,
                    &cluster,
                    &mut TopologyMemo::new(),
                );
                match (case.expect_error, &result) {
                    (true, Ok(_)) => panic!("{name}: expected error but got none"),
                    (false, Err(e)) => panic!("{name}: expected no error but got: {e}"),
                    _ => {}
                }
                let mut expected = case.expected_preferred;
                if strict && case.expected_strict_preferred.is_some() {
                    expected = case.expected_strict_preferred;
                }
                let requirements = result.ok().flatten();
                match expected {
                    None => assert!(
                        requirements.is_none(),
                        "{name}: expected requirements to be nil, got {requirements:?}"
                    ),
                    Some(expected) => {
                        let requirements =
                            requirements.unwrap_or_else(|| panic!("{name}: requirements is nil"));
                        assert_eq!(requirements.preferred, topologies(expected), "{name}");
                    }
                }
            }
        }
    }
}

struct DeletedNodeCase {
    name: &'static str,
    strict_topology: bool,
    immediate_topology: bool,
    allowed_topologies: Allowed,
    selected_node: &'static str,
    expected_requisite: Option<&'static [Labels]>,
    expected_preferred: Option<&'static [Labels]>,
}

/// The memo keeps a claim's topology when its selected Node and CSINode are gone.
#[test]
fn test_provision_with_deleted_node_from_cache() {
    let node_labels: &[Labels] = &[
        &[
            ("com.example.csi/zone", "zone1"),
            ("com.example.csi/rack", "rackA"),
        ],
        &[
            ("com.example.csi/zone", "zone2"),
            ("com.example.csi/rack", "rackB"),
        ],
        &[
            ("com.example.csi/zone", "zone3"),
            ("com.example.csi/rack", "rackC"),
        ],
    ];
    let keys: Registration = &[(
        DRIVER,
        Some(&["com.example.csi/zone", "com.example.csi/rack"]),
    )];
    let cases = [
        DeletedNodeCase {
            name: "delayed-binding, non-strict, without-allowed-topology",
            strict_topology: false,
            immediate_topology: false,
            allowed_topologies: &[],
            selected_node: "node-0",
            expected_requisite: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
                &[
                    ("com.example.csi/zone", "zone3"),
                    ("com.example.csi/rack", "rackC"),
                ],
            ]),
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
                &[
                    ("com.example.csi/zone", "zone3"),
                    ("com.example.csi/rack", "rackC"),
                ],
            ]),
        },
        DeletedNodeCase {
            name: "delayed-binding, non-strict, without-allowed-topology, different-order",
            strict_topology: false,
            immediate_topology: false,
            allowed_topologies: &[],
            selected_node: "node-1",
            expected_requisite: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
                &[
                    ("com.example.csi/zone", "zone3"),
                    ("com.example.csi/rack", "rackC"),
                ],
            ]),
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
                &[
                    ("com.example.csi/zone", "zone3"),
                    ("com.example.csi/rack", "rackC"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
            ]),
        },
        DeletedNodeCase {
            name: "delayed-binding, non-strict, with-allowed-topology",
            strict_topology: false,
            immediate_topology: false,
            allowed_topologies: &[
                &[
                    ("com.example.csi/zone", &["zone1"]),
                    ("com.example.csi/rack", &["rackA"]),
                ],
                &[
                    ("com.example.csi/zone", &["zone2"]),
                    ("com.example.csi/rack", &["rackB"]),
                ],
            ],
            selected_node: "node-0",
            expected_requisite: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ]),
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ]),
        },
        DeletedNodeCase {
            name: "delayed-binding, strict, without-allowed-topology",
            strict_topology: true,
            immediate_topology: false,
            allowed_topologies: &[],
            selected_node: "node-0",
            expected_requisite: Some(&[&[
                ("com.example.csi/zone", "zone1"),
                ("com.example.csi/rack", "rackA"),
            ]]),
            expected_preferred: Some(&[&[
                ("com.example.csi/zone", "zone1"),
                ("com.example.csi/rack", "rackA"),
            ]]),
        },
        DeletedNodeCase {
            name: "delayed-binding, strict, with-allowed-topology",
            strict_topology: true,
            immediate_topology: false,
            allowed_topologies: &[
                &[
                    ("com.example.csi/zone", &["zone1"]),
                    ("com.example.csi/rack", &["rackA"]),
                ],
                &[
                    ("com.example.csi/zone", &["zone2"]),
                    ("com.example.csi/rack", &["rackB"]),
                ],
            ],
            selected_node: "node-0",
            expected_requisite: Some(&[&[
                ("com.example.csi/zone", "zone1"),
                ("com.example.csi/rack", "rackA"),
            ]]),
            expected_preferred: Some(&[&[
                ("com.example.csi/zone", "zone1"),
                ("com.example.csi/rack", "rackA"),
            ]]),
        },
        DeletedNodeCase {
            name: "immediate-no-selected-node, non-strict, without-allowed-topology",
            strict_topology: false,
            immediate_topology: true,
            allowed_topologies: &[],
            selected_node: "",
            expected_requisite: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
                &[
                    ("com.example.csi/zone", "zone3"),
                    ("com.example.csi/rack", "rackC"),
                ],
            ]),
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/zone", "zone3"),
                    ("com.example.csi/rack", "rackC"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ]),
        },
        DeletedNodeCase {
            name: "immediate-no-selected-node, non-strict, with-allowed-topology",
            strict_topology: false,
            immediate_topology: true,
            allowed_topologies: &[
                &[
                    ("com.example.csi/zone", &["zone1"]),
                    ("com.example.csi/rack", &["rackA"]),
                ],
                &[
                    ("com.example.csi/zone", &["zone2"]),
                    ("com.example.csi/rack", &["rackB"]),
                ],
            ],
            selected_node: "",
            expected_requisite: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ]),
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ]),
        },
        DeletedNodeCase {
            name: "immediate-no-selected-node, strict, without-allowed-topology",
            strict_topology: true,
            immediate_topology: true,
            allowed_topologies: &[],
            selected_node: "",
            expected_requisite: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
                &[
                    ("com.example.csi/zone", "zone3"),
                    ("com.example.csi/rack", "rackC"),
                ],
            ]),
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/zone", "zone3"),
                    ("com.example.csi/rack", "rackC"),
                ],
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ]),
        },
        DeletedNodeCase {
            name: "immediate-no-selected-node, strict, with-allowed-topology",
            strict_topology: true,
            immediate_topology: true,
            allowed_topologies: &[
                &[
                    ("com.example.csi/zone", &["zone1"]),
                    ("com.example.csi/rack", &["rackA"]),
                ],
                &[
                    ("com.example.csi/zone", &["zone2"]),
                    ("com.example.csi/rack", &["rackB"]),
                ],
            ],
            selected_node: "",
            expected_requisite: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ]),
            expected_preferred: Some(&[
                &[
                    ("com.example.csi/zone", "zone1"),
                    ("com.example.csi/rack", "rackA"),
                ],
                &[
                    ("com.example.csi/zone", "zone2"),
                    ("com.example.csi/rack", "rackB"),
                ],
            ]),
        },
    ];
    for case in cases {
        let name = case.name;
        let allowed = allowed_topologies(case.allowed_topologies);
        let nodes = build_nodes(node_labels);
        let csi_nodes = build_csi_nodes(&[keys, keys, keys]);
        let mut memo = TopologyMemo::new();
        let first = generate(
            PVC_UID,
            "testpvc",
            &allowed,
            case.selected_node,
            case.strict_topology,
            case.immediate_topology,
            &ClusterTopology {
                csi_nodes: &csi_nodes,
                nodes: &nodes,
            },
            &mut memo,
        )
        .unwrap_or_else(|e| panic!("{name}: unexpected error: {e}"))
        .unwrap_or_else(|| panic!("{name}: expected requirements"));

        let deleted = if case.selected_node.is_empty() {
            "node-0"
        } else {
            case.selected_node
        };
        let nodes: Vec<Node> = nodes
            .into_iter()
            .filter(|n| n.metadata.name.as_deref() != Some(deleted))
            .collect();
        let csi_nodes: Vec<CSINode> = csi_nodes
            .into_iter()
            .filter(|n| n.metadata.name.as_deref() != Some(deleted))
            .collect();
        let second = generate(
            PVC_UID,
            "testpvc",
            &allowed,
            case.selected_node,
            case.strict_topology,
            case.immediate_topology,
            &ClusterTopology {
                csi_nodes: &csi_nodes,
                nodes: &nodes,
            },
            &mut memo,
        )
        .unwrap_or_else(|e| panic!("{name}: unexpected error on second call: {e}"))
        .unwrap_or_else(|| panic!("{name}: expected requirements"));
        assert_eq!(first, second, "{name}: requirements from the memo differ");
        let requisite = topologies(case.expected_requisite.unwrap_or_default());
        assert!(
            requisite_equal(&second.requisite, &requisite),
            "{name}: expected requisite {requisite:?}, got {:?}",
            second.requisite
        );
        assert_eq!(
            second.preferred,
            topologies(case.expected_preferred.unwrap_or_default()),
            "{name}"
        );
    }
}

/// Incomplete labels fail, and the memo does not keep them once the Node has them all.
#[test]
fn test_node_topology_label_fallback() {
    let keys: &[&str] = &[
        "com.example.csi/zone",
        "com.example.csi/rack",
        "com.example.csi/region",
        "com.example.csi/compute-type",
    ];
    let node = |labels: &[(&str, &str)]| Node {
        metadata: ObjectMeta {
            name: Some("test-node".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    let csi_node = CSINode {
        metadata: ObjectMeta {
            name: Some("test-node".into()),
            ..Default::default()
        },
        spec: CSINodeSpec {
            drivers: vec![CSINodeDriver {
                name: DRIVER.into(),
                node_id: "test-node".into(),
                topology_keys: Some(keys.iter().map(|k| k.to_string()).collect()),
                ..Default::default()
            }],
        },
    };
    let incomplete = [
        ("com.example.csi/zone", "zone1"),
        ("com.example.csi/rack", "rackA"),
        ("com.example.csi/region", "us-west"),
    ];
    let complete = [
        ("com.example.csi/zone", "zone1"),
        ("com.example.csi/rack", "rackA"),
        ("com.example.csi/region", "us-west"),
        ("com.example.csi/compute-type", "standard"),
    ];
    let mut memo = TopologyMemo::new();
    let csi_nodes = [csi_node];

    // "first provisioning attempt should fail because incomplete node labels"
    let nodes = [node(&incomplete)];
    let cluster = ClusterTopology {
        csi_nodes: &csi_nodes,
        nodes: &nodes,
    };
    let err = generate(
        "test-pvc-uid",
        "test-pvc",
        &[],
        "test-node",
        false,
        false,
        &cluster,
        &mut memo,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("topology labels from selected node"),
        "{err}"
    );

    // "second provisioning attempt should succeed after labels added"
    let nodes = [node(&complete)];
    let cluster = ClusterTopology {
        csi_nodes: &csi_nodes,
        nodes: &nodes,
    };
    let requirements = generate(
        "test-pvc-uid",
        "test-pvc",
        &[],
        "test-node",
        false,
        false,
        &cluster,
        &mut memo,
    )
    .unwrap()
    .unwrap();
    let expected: HashMap<String, String> = complete
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(requirements.requisite.len(), 1);
    assert_eq!(requirements.requisite[0].segments, expected);
    assert_eq!(requirements.preferred.len(), 1);
    assert_eq!(requirements.preferred[0].segments, expected);
}

fn term(segments: &[(&str, &str)]) -> TopologyTerm {
    TopologyTerm(
        segments
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn test_topology_term_sort() {
    let cases: [(&str, Labels, Labels); 4] = [
        ("empty", &[], &[]),
        (
            "single-key",
            &[("zone", "us-east-1a")],
            &[("zone", "us-east-1a")],
        ),
        (
            "multiple-keys",
            &[("zone", "us-east-1a"), ("instance", "i-123")],
            &[("instance", "i-123"), ("zone", "us-east-1a")],
        ),
        (
            "multiple-values",
            &[("zone", "us-east-1b"), ("zone", "us-east-1a")],
            &[("zone", "us-east-1a"), ("zone", "us-east-1b")],
        ),
    ];
    for (name, terms, expected) in cases {
        let mut terms = term(terms);
        terms.sort();
        assert_eq!(terms, term(expected), "{name}");
    }
}

#[test]
fn test_topology_term_compare() {
    use std::cmp::Ordering::*;
    let cases: [(&str, Labels, Labels); 3] = [
        ("shorter", &[], &[("zone", "us-east-1a")]),
        (
            "key-smaller",
            &[("instance", "i-123")],
            &[("zone", "us-east-1a")],
        ),
        (
            "value-smaller",
            &[("instance", "i-123"), ("zone", "us-east-1a")],
            &[("instance", "i-123"), ("zone", "us-east-1b")],
        ),
    ];
    for (name, first, second) in cases {
        let (first, second) = (term(first), term(second));
        assert_eq!(first.compare(&second), Less, "{name}");
        assert_eq!(second.compare(&first), Greater, "{name}");
        assert_eq!(first.compare(&first), Equal, "{name}");
        assert_eq!(second.compare(&second), Equal, "{name}");
    }
}

#[test]
fn test_topology_term_subset() {
    let cases: [(&str, Labels, Labels, bool); 9] = [
        ("empty", &[], &[], true),
        ("shorter", &[], &[("zone", "us-east-1a")], true),
        ("longer", &[("zone", "us-east-1a")], &[], false),
        (
            "same",
            &[("zone", "us-east-1a")],
            &[("zone", "us-east-1a")],
            true,
        ),
        (
            "shorter-2",
            &[("instance", "i-123")],
            &[("instance", "i-123"), ("zone", "us-east-1a")],
            true,
        ),
        (
            "longer-2",
            &[("instance", "i-123"), ("zone", "us-east-1a")],
            &[("instance", "i-123")],
            false,
        ),
        (
            "shorter-3",
            &[("zone", "us-east-1a")],
            &[("instance", "i-123"), ("zone", "us-east-1a")],
            true,
        ),
        (
            "longer-3",
            &[("instance", "i-123"), ("zone", "us-east-1a")],
            &[("zone", "us-east-1a")],
            false,
        ),
        (
            "unrelated",
            &[("instance", "i-123")],
            &[("zone", "us-east-1a")],
            false,
        ),
    ];
    for (name, terms, other, subset) in cases {
        assert_eq!(term(terms).subset(&term(other)), subset, "{name}");
    }
}
