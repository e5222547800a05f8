//! Upstream's `pkg/capacity/topology/nodes_test.go`: `TestNodeTopology` (22 cases) and
//! `TestHasSynced`, plus what the Node and CSINode handlers ignore (our own).
//!
//! Upstream's test runs informers on a fake clientset and calls `sync` until the segments
//! match; here the objects are in fake listers, each change of the `update` step goes through
//! the topology's handlers (which must queue a recomputation), and `sync` runs once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csi_kube::Change;
use csi_workqueue::{ItemExponentialFailureRateLimiter, WorkQueue};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio_util::sync::CancellationToken;

use super::FakeLister;
use crate::capacity::topology::{NodeTopology, Segment, Topology};

const DRIVER_NAME: &str = "my-csi-driver";
const NODE1: &str = "node1";
const NODE2: &str = "node2";
const LOCAL_STORAGE_KEY: &str = "nodename";
const NETWORK_STORAGE_KEYS: [&str; 3] = ["A", "B", "C"];

fn local_storage_labels(node: &str) -> Vec<(&'static str, String)> {
    vec![(LOCAL_STORAGE_KEY, node.to_string())]
}

fn local_storage(node: &str) -> Segment {
    Segment::new([(LOCAL_STORAGE_KEY, node)])
}

fn network_storage_labels(c: &str) -> Vec<(&'static str, String)> {
    vec![("A", "US".into()), ("B", "NY".into()), ("C", c.to_string())]
}

fn network_storage(c: &str) -> Segment {
    Segment::new([("A", "US"), ("B", "NY"), ("C", c)])
}

#[derive(Clone, Default)]
struct TestNode {
    name: &'static str,
    driver_keys: Vec<(&'static str, Vec<&'static str>)>,
    labels: Vec<(&'static str, String)>,
    skip_node_creation: bool,
    skip_csi_node_creation: bool,
}

fn node_object(name: &str, labels: &[(&str, String)]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect()
            }),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

fn csi_node_object(name: &str, drivers: &[(&str, Vec<&str>)]) -> CSINode {
    CSINode {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: CSINodeSpec {
            drivers: drivers
                .iter()
                .map(|(driver, keys)| CSINodeDriver {
                    name: driver.to_string(),
                    node_id: String::new(),
                    topology_keys: Some(keys.iter().map(|k| k.to_string()).collect()),
                    allocatable: None,
                })
                .collect(),
        },
    }
}

/// The cluster the topology reads, and what a client's writes would make the informers say.
struct Cluster {
    nodes: Arc<FakeLister<Node>>,
    csi_nodes: Arc<FakeLister<CSINode>>,
    topology: Arc<NodeTopology>,
}

impl Cluster {
    fn new(driver_name: &str, nodes: &[TestNode]) -> Self {
        let node_objects = nodes
            .iter()
            .filter(|n| !n.skip_node_creation)
            .map(|n| node_object(n.name, &n.labels));
        let csi_node_objects = nodes
            .iter()
            .filter(|n| !n.skip_csi_node_creation)
            .map(|n| csi_node_object(n.name, &n.driver_keys));
        let nodes = Arc::new(FakeLister::new(node_objects));
        let csi_nodes = Arc::new(FakeLister::new(csi_node_objects));
        let queue = WorkQueue::new(ItemExponentialFailureRateLimiter::<String>::new(
            Duration::from_secs(1),
            Duration::from_secs(2),
        ));
        let topology = Arc::new(NodeTopology::new(
            driver_name,
            nodes.clone(),
            csi_nodes.clone(),
            queue,
        ));
        Cluster {
            nodes,
            csi_nodes,
            topology,
        }
    }

    fn create_node(&self, node: Node) {
        self.nodes.put(node.clone());
        self.topology.node_changed(&Change::Added(Arc::new(node)));
    }

    fn update_node(&self, name: &str, change: impl FnOnce(&mut Node)) {
        let old = self.nodes.get_cloned(name);
        let mut new = (*old).clone();
        change(&mut new);
        self.nodes.put(new.clone());
        self.topology.node_changed(&Change::Updated {
            old,
            new: Arc::new(new),
        });
    }

    fn remove_node(&self, name: &str) {
        let last = self.nodes.remove(name).expect("node exists");
        self.topology.node_changed(&Change::Deleted {
            last,
            final_state_unknown: false,
        });
    }

    fn create_csi_node(&self, csi_node: CSINode) {
        self.csi_nodes.put(csi_node.clone());
        self.topology
            .csi_node_changed(&Change::Added(Arc::new(csi_node)));
    }

    fn update_csi_node(&self, name: &str, change: impl FnOnce(&mut CSINode)) {
        let old = self.csi_nodes.get_cloned(name);
        let mut new = (*old).clone();
        change(&mut new);
        self.csi_nodes.put(new.clone());
        self.topology.csi_node_changed(&Change::Updated {
            old,
            new: Arc::new(new),
        });
    }

    fn remove_csi_node(&self, name: &str) {
        let last = self.csi_nodes.remove(name).expect("CSINode exists");
        self.topology.csi_node_changed(&Change::Deleted {
            last,
            final_state_unknown: false,
        });
    }
}

impl<K: Send + Sync + 'static> FakeLister<K> {
    fn get_cloned(&self, key: &str) -> Arc<K> {
        crate::capacity::Lister::get(self, key).expect("object exists")
    }
}

type Seen = Arc<Mutex<(bool, Vec<Segment>, Vec<Segment>)>>;

fn add_test_callback(topology: &NodeTopology) -> Seen {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    topology.add_callback(Box::new(move |added, removed| {
        let mut s = s.lock().unwrap();
        s.0 = true;
        s.1.extend(added.iter().map(|a| (**a).clone()));
        s.2.extend(removed.iter().map(|r| (**r).clone()));
    }));
    seen
}

fn strings(segments: impl IntoIterator<Item = Segment>) -> Vec<String> {
    let mut strings: Vec<String> = segments.into_iter().map(|s| s.to_string()).collect();
    strings.sort();
    strings
}

fn validate(
    case: &str,
    topology: &NodeTopology,
    expected_added: &[Segment],
    expected_removed: &[Segment],
    expected_all: &[Segment],
) {
    let seen = add_test_callback(topology);
    topology.sync();
    let (called, added, removed) = seen.lock().unwrap().clone();
    let changes = !expected_added.is_empty() || !expected_removed.is_empty();
    assert_eq!(called, changes, "{case}: callback invoked");
    assert_eq!(
        strings(added),
        strings(expected_added.to_vec()),
        "{case}: added"
    );
    assert_eq!(
        strings(removed),
        strings(expected_removed.to_vec()),
        "{case}: removed"
    );
    let all: Vec<Segment> = topology.list().iter().map(|s| (**s).clone()).collect();
    assert_eq!(
        strings(all),
        strings(expected_all.to_vec()),
        "{case}: final"
    );
}

type Update = fn(&Cluster);

#[derive(Default)]
struct Case {
    name: &'static str,
    driver_name: Option<&'static str>,
    initial_nodes: Vec<TestNode>,
    expected_segments: Vec<Segment>,
    update: Option<Update>,
    expected_updated_segments: Vec<Segment>,
}

fn local_node(name: &'static str, labels_of: &str) -> TestNode {
    TestNode {
        name,
        driver_keys: vec![(DRIVER_NAME, vec![LOCAL_STORAGE_KEY])],
        labels: local_storage_labels(labels_of),
        ..TestNode::default()
    }
}

fn network_node(name: &'static str, keys: Vec<&'static str>, c: &str) -> TestNode {
    TestNode {
        name,
        driver_keys: vec![(DRIVER_NAME, keys)],
        labels: network_storage_labels(c),
        ..TestNode::default()
    }
}

fn bare_node(name: &'static str) -> TestNode {
    TestNode {
        name,
        ..TestNode::default()
    }
}

#[tokio::test]
async fn node_topology() {
    let keys = NETWORK_STORAGE_KEYS.to_vec();
    let cases = vec![
        Case {
            name: "empty",
            ..Case::default()
        },
        Case {
            name: "one-node",
            initial_nodes: vec![local_node(NODE1, NODE1)],
            expected_segments: vec![local_storage(NODE1)],
            ..Case::default()
        },
        Case {
            name: "missing-csi-node",
            initial_nodes: vec![TestNode {
                skip_csi_node_creation: true,
                ..local_node(NODE1, NODE1)
            }],
            ..Case::default()
        },
        Case {
            name: "missing-node",
            initial_nodes: vec![TestNode {
                skip_node_creation: true,
                ..local_node(NODE1, NODE1)
            }],
            ..Case::default()
        },
        Case {
            name: "missing-node-labels",
            initial_nodes: vec![TestNode {
                labels: vec![],
                ..local_node(NODE1, NODE1)
            }],
            ..Case::default()
        },
        Case {
            name: "two-nodes",
            initial_nodes: vec![local_node(NODE1, NODE1), local_node(NODE2, NODE2)],
            expected_segments: vec![local_storage(NODE1), local_storage(NODE2)],
            ..Case::default()
        },
        Case {
            name: "shared-storage",
            initial_nodes: vec![local_node(NODE1, NODE1), local_node(NODE2, NODE1)],
            expected_segments: vec![local_storage(NODE1)],
            ..Case::default()
        },
        Case {
            name: "other-shared-storage",
            initial_nodes: vec![local_node(NODE1, NODE2), local_node(NODE2, NODE2)],
            expected_segments: vec![local_storage(NODE2)],
            ..Case::default()
        },
        Case {
            name: "deep-topology",
            initial_nodes: vec![
                network_node(NODE1, keys.clone(), "1"),
                network_node(NODE2, keys.clone(), "1"),
            ],
            expected_segments: vec![network_storage("1")],
            ..Case::default()
        },
        Case {
            name: "mixed-topology",
            initial_nodes: vec![
                local_node(NODE1, NODE1),
                network_node(NODE2, keys.clone(), "1"),
            ],
            expected_segments: vec![local_storage(NODE1), network_storage("1")],
            ..Case::default()
        },
        Case {
            name: "partial-match",
            initial_nodes: vec![
                network_node(NODE1, keys.clone(), "1"),
                network_node(NODE2, keys.clone(), "2"),
            ],
            expected_segments: vec![network_storage("1"), network_storage("2")],
            ..Case::default()
        },
        Case {
            name: "unsorted-keys",
            initial_nodes: vec![
                // Keys in reverse order make no difference.
                network_node(NODE1, vec!["C", "B", "A"], "1"),
                network_node(NODE2, keys.clone(), "1"),
            ],
            expected_segments: vec![network_storage("1")],
            ..Case::default()
        },
        Case {
            name: "wrong-driver",
            driver_name: Some("other-driver"),
            initial_nodes: vec![local_node(NODE1, NODE1)],
            ..Case::default()
        },
        Case {
            name: "remove-csi-node",
            initial_nodes: vec![local_node(NODE1, NODE1)],
            expected_segments: vec![local_storage(NODE1)],
            update: Some(|c| c.remove_csi_node(NODE1)),
            ..Case::default()
        },
        Case {
            name: "remove-node",
            initial_nodes: vec![local_node(NODE1, NODE1)],
            expected_segments: vec![local_storage(NODE1)],
            update: Some(|c| c.remove_node(NODE1)),
            ..Case::default()
        },
        Case {
            name: "remove-driver",
            initial_nodes: vec![local_node(NODE1, NODE1)],
            expected_segments: vec![local_storage(NODE1)],
            update: Some(|c| c.update_csi_node(NODE1, |n| n.spec.drivers.clear())),
            ..Case::default()
        },
        Case {
            name: "add-driver",
            initial_nodes: vec![bare_node(NODE1)],
            update: Some(|c| {
                c.update_csi_node(NODE1, |n| {
                    n.spec.drivers.push(CSINodeDriver {
                        name: DRIVER_NAME.into(),
                        topology_keys: Some(vec![LOCAL_STORAGE_KEY.into()]),
                        ..CSINodeDriver::default()
                    })
                });
                c.update_node(NODE1, |n| {
                    n.metadata
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(LOCAL_STORAGE_KEY.into(), NODE1.into());
                });
            }),
            expected_updated_segments: vec![local_storage(NODE1)],
            ..Case::default()
        },
        Case {
            name: "update-node",
            initial_nodes: vec![bare_node(NODE1)],
            update: Some(|c| {
                c.update_node(NODE1, |n| {
                    n.metadata
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(LOCAL_STORAGE_KEY.into(), NODE1.into());
                })
            }),
            ..Case::default()
        },
        Case {
            name: "update-csi-node",
            initial_nodes: vec![bare_node(NODE1)],
            update: Some(|c| {
                c.update_csi_node(NODE1, |n| {
                    n.spec.drivers.push(CSINodeDriver {
                        name: DRIVER_NAME.into(),
                        topology_keys: Some(vec![LOCAL_STORAGE_KEY.into()]),
                        ..CSINodeDriver::default()
                    })
                })
            }),
            ..Case::default()
        },
        Case {
            name: "add-node",
            initial_nodes: vec![TestNode {
                skip_node_creation: true,
                ..local_node(NODE1, NODE1)
            }],
            update: Some(|c| c.create_node(node_object(NODE1, &local_storage_labels(NODE1)))),
            expected_updated_segments: vec![local_storage(NODE1)],
            ..Case::default()
        },
        Case {
            name: "add-csi-node",
            initial_nodes: vec![TestNode {
                skip_csi_node_creation: true,
                ..local_node(NODE1, NODE1)
            }],
            update: Some(|c| {
                c.create_csi_node(csi_node_object(
                    NODE1,
                    &[(DRIVER_NAME, vec![LOCAL_STORAGE_KEY])],
                ))
            }),
            expected_updated_segments: vec![local_storage(NODE1)],
            ..Case::default()
        },
        Case {
            name: "change-labels",
            initial_nodes: vec![local_node(NODE1, NODE1)],
            expected_segments: vec![local_storage(NODE1)],
            // Drivers are not expected to change their topology, but it is supported.
            update: Some(|c| {
                c.update_node(NODE1, |n| {
                    n.metadata
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(LOCAL_STORAGE_KEY.into(), NODE2.into());
                })
            }),
            expected_updated_segments: vec![local_storage(NODE2)],
            ..Case::default()
        },
    ];
    assert_eq!(cases.len(), 22);

    for case in cases {
        let cluster = Cluster::new(case.driver_name.unwrap_or(DRIVER_NAME), &case.initial_nodes);
        validate(
            case.name,
            &cluster.topology,
            &case.expected_segments,
            &[],
            &case.expected_segments,
        );
        let Some(update) = case.update else {
            continue;
        };
        let queue = cluster.topology.queue().clone();
        assert!(queue.is_empty(), "{}", case.name);
        update(&cluster);
        // Every update of the table changes something the topology depends on.
        assert!(
            !queue.is_empty(),
            "{}: the change was not noticed",
            case.name
        );
        let contains =
            |segments: &[Segment], segment: &Segment| segments.iter().any(|s| s == segment);
        let expected_added: Vec<Segment> = case
            .expected_updated_segments
            .iter()
            .filter(|s| !contains(&case.expected_segments, s))
            .cloned()
            .collect();
        let expected_removed: Vec<Segment> = case
            .expected_segments
            .iter()
            .filter(|s| !contains(&case.expected_updated_segments, s))
            .cloned()
            .collect();
        validate(
            case.name,
            &cluster.topology,
            &expected_added,
            &expected_removed,
            &case.expected_updated_segments,
        );
    }
}

/// Segments that stay keep their `Arc` (the capacity controller's work items hold them), and a
/// segment shared by many nodes is listed once, however often the topology is recomputed.
#[tokio::test]
async fn kept_segments_keep_their_identity_and_are_listed_once() {
    let cluster = Cluster::new(
        DRIVER_NAME,
        &[
            local_node(NODE1, NODE1),
            local_node(NODE2, NODE1),
            local_node("node3", NODE2),
        ],
    );
    cluster.topology.sync();
    let first = cluster.topology.list();
    assert_eq!(first.len(), 2);
    for _ in 0..3 {
        cluster.topology.sync();
    }
    let again = cluster.topology.list();
    assert_eq!(again.len(), 2);
    for segment in &first {
        assert!(again.iter().any(|s| Arc::ptr_eq(s, segment)), "{segment}");
    }
}

/// What does not change a segment does not queue a recomputation.
#[tokio::test]
async fn irrelevant_changes_are_ignored() {
    let cluster = Cluster::new(DRIVER_NAME, &[local_node(NODE1, NODE1)]);
    let queue = cluster.topology.queue().clone();
    cluster.update_node(NODE1, |n| {
        n.metadata.annotations = Some(BTreeMap::from([("a".into(), "b".into())]));
        n.spec = Some(Default::default());
    });
    assert!(queue.is_empty(), "a Node change without a label change");
    cluster.update_csi_node(NODE1, |n| {
        n.spec.drivers.push(CSINodeDriver {
            name: "other-driver".into(),
            topology_keys: Some(vec!["zone".into()]),
            ..CSINodeDriver::default()
        })
    });
    assert!(queue.is_empty(), "another driver's registration");
    cluster.update_node(NODE1, |n| {
        n.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("unrelated".into(), "label".into());
    });
    // Upstream recomputes on any label change, even of a label that is no topology key.
    assert_eq!(queue.len(), 1);
}

/// Upstream's `TestHasSynced`: the worker does not compute (and the topology is not synced)
/// before the Node and CSINode caches are.
#[tokio::test(start_paused = true)]
async fn has_synced() {
    let cluster = Cluster::new(DRIVER_NAME, &[local_node(NODE1, NODE1)]);
    cluster.nodes.set_synced(false);
    cluster.csi_nodes.set_synced(false);
    let shutdown = CancellationToken::new();
    let topology = cluster.topology.clone();
    let worker = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { topology.run_worker(shutdown).await }
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        !cluster.topology.has_synced(),
        "caches not synced yet, expected has_synced to be false"
    );
    assert!(cluster.topology.list().is_empty());
    cluster.nodes.set_synced(true);
    cluster.csi_nodes.set_synced(true);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(cluster.topology.has_synced(), "should be synced now");
    assert_eq!(cluster.topology.list().len(), 1);
    shutdown.cancel();
    worker.await.unwrap();
}
