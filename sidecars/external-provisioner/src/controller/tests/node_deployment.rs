//! The 8 cases of external-provisioner's `provisionTestcases` (`pkg/controller/controller_test.go`,
//! v6.4.0) that need `--node-deployment` ("distributed, …"), with their names, for both tests
//! that run the table: `TestProvision` as [`ProvisionController::provision_volume`] (the node
//! check, then provisioning: upstream's `Provision`) and `TestShouldProvision` as
//! [`ProvisionController::should_provision`] (upstream's `ShouldProvision`). The node check is
//! the real [`NodeOwner`] over the fake cluster (its caches, and its API server for the
//! selected-node update), with upstream's Node and CSINode `foo` and a `GetCapacity` that
//! answers upstream's capacity. After each call, as upstream, the claim on the server has the
//! expected selected node (`becomeOwner` sets it for an Immediate claim when there is room and
//! the allowed topologies fit this node).
//!
//! [`ProvisionController::provision_volume`]: crate::controller::ProvisionController
//! [`ProvisionController::should_provision`]: crate::controller::ProvisionController

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use csi_proto::csi::v1::{CreateVolumeResponse, GetCapacityRequest, GetCapacityResponse, Volume};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    TopologySelectorLabelRequirement, TopologySelectorTerm, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec, StorageClass};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::fakes::*;
use crate::controller::{NodeCheck, SyncError};
use crate::csi::{CapacityDriver, CsiError};
use crate::node_deployment::{NodeDeploymentConfig, NodeOwner};
use crate::provision::{
    ANN_BETA_STORAGE_PROVISIONER, ANN_SELECTED_NODE, DriverCapabilities, NodeDeployment,
    PROVISIONER_IDENTITY_KEY, ProvisioningState,
};

/// upstream's `driverName`, `driverTopologyKey`, `fakeSCName` and `requestedBytes`.
const TEST_DRIVER: &str = "test-driver";
const TOPOLOGY_KEY: &str = "test-driver-node";
const FAKE_SC: &str = "fake-test-sc";
const REQUESTED_BYTES: i64 = 100;
/// The node this provisioner runs on (upstream's `deploymentNode`).
const NODE: &str = "foo";

/// `GetCapacity` answering one capacity (upstream's mock: 1 TiB unless the case says).
#[derive(Debug)]
struct FakeCapacity(i64);

impl CapacityDriver for FakeCapacity {
    fn get_capacity(
        &self,
        _request: GetCapacityRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<GetCapacityResponse, CsiError>> {
        let available = self.0;
        Box::pin(async move {
            Ok(GetCapacityResponse {
                available_capacity: available,
                ..Default::default()
            })
        })
    }
}

/// upstream's `createFakePVC(requestedBytes)`, with `selected` as its selected node.
fn fake_pvc(selected: &str) -> PersistentVolumeClaim {
    let mut annotations = BTreeMap::from([(
        ANN_BETA_STORAGE_PROVISIONER.to_string(),
        TEST_DRIVER.to_string(),
    )]);
    if !selected.is_empty() {
        annotations.insert(ANN_SELECTED_NODE.into(), selected.into());
    }
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            uid: Some("testid".into()),
            name: Some("fake-pvc".into()),
            namespace: Some("fake-ns".into()),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(REQUESTED_BYTES.to_string()),
                )])),
                ..Default::default()
            }),
            storage_class_name: Some(FAKE_SC.into()),
            ..Default::default()
        }),
        status: None,
    }
}

struct Case {
    name: &'static str,
    /// The claim's selected node.
    selected: &'static str,
    /// `--node-deployment-immediate-binding`.
    immediate_binding: bool,
    /// The class has `volumeBindingMode: Immediate`.
    class_immediate: bool,
    /// The class allows only `test-driver-node=<value>`.
    allowed: Option<&'static str>,
    /// The driver reports topology.
    topology: bool,
    /// What `GetCapacity` answers.
    capacity: i64,
    /// `TestProvision`: a PV (`None`: an error with state NoChange).
    expect_pv: bool,
    /// `TestShouldProvision`.
    expect_should: bool,
    /// The claim's selected node on the server afterwards.
    expect_selected: &'static str,
}

fn case(name: &'static str, selected: &'static str) -> Case {
    Case {
        name,
        selected,
        immediate_binding: false,
        class_immediate: false,
        allowed: None,
        topology: false,
        capacity: 1024 * 1024 * 1024 * 1024,
        expect_pv: false,
        expect_should: false,
        expect_selected: selected,
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            expect_pv: true,
            expect_should: true,
            ..case("distributed, right node selected", NODE)
        },
        // Not the owner.
        case("distributed, no node selected", ""),
        case("distributed, wrong node selected", "bar"),
        Case {
            immediate_binding: true,
            expect_pv: true,
            expect_should: true,
            ..case("distributed immediate, right node selected", NODE)
        },
        // Not the owner yet: the check selects this node.
        Case {
            immediate_binding: true,
            class_immediate: true,
            expect_selected: NODE,
            ..case("distributed immediate, no node selected", "")
        },
        // Not the owner, and not becoming it: too little room.
        Case {
            immediate_binding: true,
            class_immediate: true,
            capacity: REQUESTED_BYTES - 1,
            ..case("distributed immediate, no capacity ", "")
        },
        // The driver has no topology: the allowed topologies do not matter.
        Case {
            immediate_binding: true,
            class_immediate: true,
            allowed: Some(NODE),
            expect_selected: NODE,
            ..case("distributed immediate, allowed topologies okay", "")
        },
        // Accessibility requirements for this node would fail: not becoming the owner.
        Case {
            immediate_binding: true,
            class_immediate: true,
            allowed: Some("bar"),
            topology: true,
            ..case("distributed immediate, allowed topologies not okay", "")
        },
    ]
}

impl Case {
    fn class(&self) -> StorageClass {
        StorageClass {
            metadata: ObjectMeta {
                name: Some(FAKE_SC.into()),
                ..Default::default()
            },
            reclaim_policy: Some("Delete".into()),
            parameters: Some(BTreeMap::from([("fstype".to_string(), "ext3".to_string())])),
            volume_binding_mode: self.class_immediate.then(|| "Immediate".to_string()),
            allowed_topologies: self.allowed.map(|value| {
                vec![TopologySelectorTerm {
                    match_label_expressions: Some(vec![TopologySelectorLabelRequirement {
                        key: TOPOLOGY_KEY.into(),
                        values: vec![value.into()],
                    }]),
                }]
            }),
            ..Default::default()
        }
    }

    /// The loop of a provisioner on [`NODE`], over a cluster with the claim, the class and
    /// upstream's Node and CSINode.
    fn harness(&self) -> Harness {
        let cluster = Arc::new(FakeCluster::default());
        cluster.add_claim(fake_pvc(self.selected));
        cluster.add_class(self.class());
        cluster.add_node(new_node(NODE, &[(TOPOLOGY_KEY, NODE)]));
        cluster.add_csi_node(CSINode {
            metadata: ObjectMeta {
                name: Some(NODE.into()),
                ..Default::default()
            },
            spec: CSINodeSpec {
                drivers: vec![CSINodeDriver {
                    name: TEST_DRIVER.into(),
                    node_id: NODE.into(),
                    topology_keys: Some(vec![TOPOLOGY_KEY.into()]),
                    ..Default::default()
                }],
            },
        });
        let mut config = config();
        config.driver_name = TEST_DRIVER.into();
        config.volume_name_prefix = "test".into();
        config.volume_name_uuid_length = 5;
        config.capabilities = DriverCapabilities {
            topology: self.topology,
            ..config.capabilities
        };
        config.node_deployment = Some(NodeDeployment {
            node_name: NODE.into(),
            accessible_topology: None,
        });
        let owner = NodeOwner::new(
            NodeDeploymentConfig {
                node_name: NODE.into(),
                immediate_binding: self.immediate_binding,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(10),
            },
            config.clone(),
            cluster.clone(),
            cluster.clone(),
            Arc::new(FakeCapacity(self.capacity)),
        );
        let h = Setup {
            config,
            node_check: Some(Arc::new(owner) as Arc<dyn NodeCheck>),
            cluster,
            ..Setup::default()
        }
        .build();
        h.driver.create_returns(CreateVolumeResponse {
            volume: Some(Volume {
                capacity_bytes: REQUESTED_BYTES,
                volume_id: "test-volume-id".into(),
                ..Default::default()
            }),
        });
        h
    }

    /// upstream's check of the claim on the server after the call.
    fn check_selected(&self, h: &Harness) {
        let claim = h.cluster.claim_on_server("fake-ns", "fake-pvc").unwrap();
        let selected = claim
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANN_SELECTED_NODE))
            .map(String::as_str)
            .unwrap_or_default();
        assert_eq!(
            selected, self.expect_selected,
            "{}: selected node",
            self.name
        );
    }
}

/// `TestProvision`'s distributed cases: upstream's `Provision` (the node check, then
/// provisioning) is the loop's `provision_volume`.
#[tokio::test]
async fn test_provision_distributed() {
    let cases = cases();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let name = case.name;
        let h = case.harness();
        let claim = Arc::new(fake_pvc(case.selected));
        let result = h
            .ctrl
            .provision_volume(&claim, &case.class(), case.selected)
            .await;
        match result {
            Ok(pv) => {
                assert!(case.expect_pv, "{name}: expected an error, got {pv:?}");
                assert_eq!(pv.metadata.name.as_deref(), Some("test-testi"), "{name}");
                let spec = pv.spec.unwrap();
                assert_eq!(
                    spec.persistent_volume_reclaim_policy.as_deref(),
                    Some("Delete"),
                    "{name}"
                );
                assert_eq!(
                    spec.capacity,
                    Some(BTreeMap::from([(
                        "storage".to_string(),
                        Quantity(REQUESTED_BYTES.to_string())
                    )])),
                    "{name}"
                );
                assert_eq!(spec.access_modes, None, "{name}: access modes");
                assert_eq!(spec.volume_mode, None, "{name}: volume mode");
                assert_eq!(spec.mount_options, None, "{name}: mount options");
                assert_eq!(
                    spec.csi,
                    Some(CSIPersistentVolumeSource {
                        driver: TEST_DRIVER.into(),
                        volume_handle: "test-volume-id".into(),
                        fs_type: Some("ext3".into()),
                        volume_attributes: Some(BTreeMap::from([(
                            PROVISIONER_IDENTITY_KEY.to_string(),
                            "test-provisioner".to_string(),
                        )])),
                        ..Default::default()
                    }),
                    "{name}"
                );
                assert_eq!(h.driver.create_calls(), 1, "{name}: CreateVolume calls");
            }
            Err(err) => {
                assert!(!case.expect_pv, "{name}: got error: {err}");
                assert_eq!(err.state(), ProvisioningState::NoChange, "{name}: {err}");
                // Upstream's `IgnoredError`: no Event, no retry.
                assert!(
                    matches!(&err, SyncError::Provision(e) if e.is_ignored()),
                    "{name}: not ignored: {err}"
                );
                assert_eq!(
                    err.to_string(),
                    "not responsible for provisioning of PVC fake-ns/fake-pvc because it is not assigned to node \"foo\"",
                    "{name}"
                );
                assert_eq!(h.driver.create_calls(), 0, "{name}: CreateVolume calls");
            }
        }
        case.check_selected(&h);
    }
}

/// `TestShouldProvision`'s distributed cases: upstream's `ShouldProvision` is the loop's
/// `should_provision` (which also asks what the library's `shouldProvision` does).
#[tokio::test]
async fn test_should_provision_distributed() {
    for case in cases() {
        let h = case.harness();
        let should = h
            .ctrl
            .should_provision(&fake_pvc(case.selected))
            .await
            .unwrap();
        assert_eq!(should, case.expect_should, "{}", case.name);
        assert_eq!(h.driver.create_calls(), 0, "{}", case.name);
        case.check_selected(&h);
    }
}
