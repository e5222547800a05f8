//! The volume side: the deletion and finalizer cases of the library's `TestController`, its
//! `TestShouldDelete`, `TestShouldDeleteWithFinalizer`, `TestIsProvisionerForVolume`,
//! `TestAddFinalizer` / `TestRemoveFinalizer` (as what `sync_volume` sends),
//! `TestDeleteVolumeErrorHandling`, `TestControllerSharedInformers` (deletion), and
//! external-provisioner's `TestDelete` run through `sync_volume`.

use std::collections::BTreeMap;

use csi_controller::ApiError;
use csi_proto::csi::v1::Topology;
use csi_workqueue::Outcome;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeSpec, PersistentVolumeStatus,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::{
    StorageClass, VolumeAttachment, VolumeAttachmentSource, VolumeAttachmentSpec,
    VolumeAttachmentStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tonic::Code;

use super::fakes::*;
use crate::provision::{
    ANN_BETA_STORAGE_CLASS, ANN_DELETION_SECRET_NAME, ANN_DELETION_SECRET_NAMESPACE,
    ANN_MIGRATED_TO, ANN_PROVISIONED_BY, NodeDeployment, PV_FINALIZER,
};

const F: &str = PV_FINALIZER;

fn provisioned_by(driver: &str) -> [(&str, &str); 1] {
    [(ANN_PROVISIONED_BY, driver)]
}

/// A CSI PV of [`DRIVER`] that this provisioner made.
fn ours(
    phase: &str,
    policy: &str,
    finalizers: Option<&[&str]>,
    deleting: bool,
) -> PersistentVolume {
    new_csi_volume(
        "volume-1",
        phase,
        policy,
        &provisioned_by(DRIVER),
        finalizers,
        deleting.then(now),
        DRIVER,
    )
}

fn harness_with(pv: PersistentVolume) -> Harness {
    let h = Harness::new();
    h.cluster.add_volume(pv);
    h
}

fn deleted(success: u32, failed: u32) -> TestMetrics {
    TestMetrics {
        deleted: counts(&[("", success, failed)]),
        ..Default::default()
    }
}

fn server_finalizers(h: &Harness, name: &str) -> Option<Vec<String>> {
    h.cluster
        .volume_on_server(name)
        .map(|pv| finalizers_of(&pv.metadata))
}

// ----- TestController ------------------------------------------------------------------------

/// "delete volume-1 but not volume-2"
#[tokio::test]
async fn delete_volume_1_but_not_volume_2() {
    let h = Harness::new();
    h.cluster
        .add_volume(ours("Released", "Delete", None, false));
    let other = new_csi_volume(
        "volume-2",
        "Released",
        "Delete",
        &provisioned_by(OTHER),
        None,
        None,
        OTHER,
    );
    h.cluster.add_volume(other);

    assert_eq!(
        h.sync_volumes().await,
        vec![Outcome::Forget, Outcome::Forget]
    );

    assert_eq!(h.cluster.volume_names(), vec!["volume-2"]);
    assert_eq!(h.driver.deleted_ids(), vec!["test-volume-id-1"]);
    assert_eq!(h.metrics(), deleted(1, 0));
    assert!(h.events.all().is_empty());
}

/// "don't delete volume-1 because it's still bound": nothing is deleted; the Bound PV gets
/// the finalizer (external-provisioner always runs with `AddFinalizer(true)`).
#[tokio::test]
async fn dont_delete_volume_1_because_its_still_bound() {
    let h = harness_with(ours("Bound", "Delete", None, false));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Forget]);

    assert!(h.driver.deleted_ids().is_empty());
    assert_eq!(server_finalizers(&h, "volume-1"), Some(vec![F.to_string()]));
    assert_eq!(h.metrics(), TestMetrics::default());
}

/// "don't delete volume-1 because its reclaim policy is not delete"
#[tokio::test]
async fn dont_delete_volume_1_because_its_reclaim_policy_is_not_delete() {
    let h = harness_with(ours("Released", "Retain", None, false));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Forget]);

    assert!(h.driver.deleted_ids().is_empty());
    assert!(h.cluster.writes().is_empty(), "{:?}", h.cluster.writes());
    assert_eq!(h.cluster.volume_names(), vec!["volume-1"]);
    assert_eq!(h.metrics(), TestMetrics::default());
}

/// "provisioner fails to delete volume-1: pv is not deleted"
#[tokio::test]
async fn provisioner_fails_to_delete_volume_1_pv_is_not_deleted() {
    let h = harness_with(ours("Released", "Delete", None, false));
    h.driver.delete_fails(grpc(Code::Internal, "fake error"));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Requeue]);

    assert_eq!(h.cluster.volume_names(), vec!["volume-1"]);
    assert!(h.cluster.writes().is_empty(), "{:?}", h.cluster.writes());
    assert_eq!(h.metrics(), deleted(0, 1));
    let events = h.events.all();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.object_key(), e.line()))
            .collect::<Vec<_>>(),
        vec![(
            "PersistentVolume volume-1".to_string(),
            "Warning VolumeFailedDelete rpc error: code = Internal desc = fake error".to_string(),
        )]
    );
}

/// "try to delete volume-1 but fail to delete the pv object"
#[tokio::test]
async fn try_to_delete_volume_1_but_fail_to_delete_the_pv_object() {
    let h = harness_with(ours("Released", "Delete", None, false));
    h.cluster
        .fail(Verb::DeleteVolume, None, ApiError::other("fake error"));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Requeue]);

    assert_eq!(h.driver.deleted_ids(), vec!["test-volume-id-1"]);
    assert_eq!(h.cluster.volume_names(), vec!["volume-1"]);
    assert_eq!(h.metrics(), deleted(0, 1));
    assert!(h.events.all().is_empty());
}

/// "ensure finalizer is removed if the reclaim policy is Retain or Recycle with addFinalizer
/// enabled"
#[tokio::test]
async fn ensure_finalizer_is_removed_if_the_reclaim_policy_is_retain_or_recycle() {
    for policy in ["Retain", "Recycle"] {
        let h = harness_with(ours("Bound", policy, Some(&[F]), false));

        assert_eq!(h.sync_volumes().await, vec![Outcome::Forget], "{policy}");

        assert_eq!(server_finalizers(&h, "volume-1"), Some(vec![]), "{policy}");
        assert!(h.driver.deleted_ids().is_empty(), "{policy}");
    }
}

/// "ensure finalizer is not added if the volume is under deletion, also ensures that volume is
/// not deleted"
#[tokio::test]
async fn ensure_finalizer_is_not_added_if_the_volume_is_under_deletion() {
    let h = harness_with(ours("Released", "Delete", None, true));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Forget]);

    assert!(h.cluster.writes().is_empty(), "{:?}", h.cluster.writes());
    assert!(h.driver.deleted_ids().is_empty());
    assert_eq!(h.cluster.volume_names(), vec!["volume-1"]);
    assert_eq!(h.metrics(), TestMetrics::default());
}

/// "ensure volume with finalizer is deleted if it is in a Released state and reclaim policy is
/// Delete"
#[tokio::test]
async fn ensure_volume_with_finalizer_is_deleted_if_released_and_delete() {
    let h = harness_with(ours("Released", "Delete", Some(&[F]), false));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Forget]);

    assert_eq!(h.driver.deleted_ids(), vec!["test-volume-id-1"]);
    // DELETE, then the finalizer goes and the API server removes the PV.
    assert!(h.cluster.volumes().is_empty());
    let writes = h.cluster.writes();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(writes[0], "delete persistentvolumes/volume-1");
    assert!(
        writes[1].starts_with("patch persistentvolumes/volume-1 "),
        "{writes:?}"
    );
    assert_eq!(h.metrics(), deleted(1, 0));
}

/// "ensure volume with finalizer is deleted if it is in a Released state and reclaim policy is
/// Delete and already under deletion"
#[tokio::test]
async fn ensure_volume_with_finalizer_is_deleted_if_released_and_delete_and_under_deletion() {
    let h = harness_with(ours("Released", "Delete", Some(&[F]), true));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Forget]);

    assert_eq!(h.driver.deleted_ids(), vec!["test-volume-id-1"]);
    assert!(h.cluster.volumes().is_empty());
    assert_eq!(h.metrics(), deleted(1, 0));
}

/// "provisioner fails to delete the volume with finalizer, the pv is not deleted"
#[tokio::test]
async fn provisioner_fails_to_delete_the_volume_with_finalizer_the_pv_is_not_deleted() {
    let h = harness_with(ours("Released", "Delete", Some(&[F]), false));
    h.driver.delete_fails(grpc(Code::Internal, "fake error"));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Requeue]);

    assert_eq!(server_finalizers(&h, "volume-1"), Some(vec![F.to_string()]));
    assert!(h.cluster.writes().is_empty(), "{:?}", h.cluster.writes());
    assert_eq!(h.metrics(), deleted(0, 1));
}

/// "volume deletion succeeds but the pv deletion fails, the pv still exists"
#[tokio::test]
async fn volume_deletion_succeeds_but_the_pv_deletion_fails_the_pv_still_exists() {
    let h = harness_with(ours("Released", "Delete", Some(&[F]), false));
    h.cluster
        .fail(Verb::DeleteVolume, None, ApiError::other("fake error"));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Requeue]);

    assert_eq!(h.driver.deleted_ids(), vec!["test-volume-id-1"]);
    assert_eq!(server_finalizers(&h, "volume-1"), Some(vec![F.to_string()]));
    assert_eq!(h.metrics(), deleted(0, 1));
}

/// Ours: the PV is deleted but its finalizer cannot be removed: retried, counted as failed.
#[tokio::test]
async fn pv_deleted_but_finalizer_removal_fails() {
    let h = harness_with(ours("Released", "Delete", Some(&[F]), false));
    h.cluster
        .fail(Verb::PatchVolume, Some(1), ApiError::other("fake error"));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Requeue]);
    assert_eq!(server_finalizers(&h, "volume-1"), Some(vec![F.to_string()]));
    assert_eq!(h.metrics(), deleted(0, 1));

    // The retry sees the PV being deleted, still with the finalizer: its volume is gone
    // already, so only the finalizer is removed (upstream calls DeleteVolume again).
    h.cluster.sync_cache();
    assert_eq!(h.sync_volumes().await, vec![Outcome::Forget]);
    assert!(h.cluster.volumes().is_empty());
    assert_eq!(h.driver.deleted_ids().len(), 1);
    assert_eq!(h.metrics(), deleted(0, 1));
}

/// "ensure finalizer is added on statically provisioned, migrated, in-tree volumes" and "… if
/// it is in a Bound state" (the same table row twice upstream).
#[tokio::test]
async fn ensure_finalizer_is_added_on_statically_provisioned_migrated_in_tree_volumes() {
    let h = harness_with(new_volume(
        "volume-1",
        "Bound",
        "Delete",
        &[(ANN_MIGRATED_TO, DRIVER)],
        None,
        None,
    ));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Forget]);

    assert_eq!(server_finalizers(&h, "volume-1"), Some(vec![F.to_string()]));
}

/// "ensure finalizer is added on statically provisioned CSI volumes if it is in a Bound state"
#[tokio::test]
async fn ensure_finalizer_is_added_on_statically_provisioned_csi_volumes_if_bound() {
    let h = harness_with(new_csi_volume(
        "volume-1",
        "Bound",
        "Delete",
        &[],
        None,
        None,
        DRIVER,
    ));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Forget]);

    assert_eq!(server_finalizers(&h, "volume-1"), Some(vec![F.to_string()]));
}

/// A finalizer patch that fails: the PV is retried and nothing is deleted.
#[tokio::test]
async fn finalizer_patch_failure_requeues() {
    let h = harness_with(ours("Bound", "Delete", None, false));
    h.cluster
        .fail(Verb::PatchVolume, None, ApiError::other("fake error"));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Requeue]);
    assert_eq!(server_finalizers(&h, "volume-1"), Some(vec![]));
    assert_eq!(h.metrics(), TestMetrics::default());
}

// ----- TestControllerSharedInformers (deletion) ---------------------------------------------

/// "delete volume-1"
#[tokio::test]
async fn shared_informers_delete_volume_1() {
    let h = harness_with(ours("Released", "Delete", None, false));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Forget]);

    assert!(h.cluster.volumes().is_empty());
}

// ----- TestRemoveFinalizer / TestAddFinalizer ------------------------------------------------

/// upstream's `TestRemoveFinalizer` and `TestAddFinalizer` as what `sync_volume` does to a
/// Bound PV with reclaim policy Retain (removes) or Delete (adds): the finalizers the server
/// ends with, and no patch at all when nothing changes.
#[tokio::test]
async fn add_and_remove_finalizer() {
    struct Case {
        name: &'static str,
        policy: &'static str,
        finalizers: Option<&'static [&'static str]>,
        expected: &'static [&'static str],
        expected_modified: bool,
    }
    let cases = [
        // TestRemoveFinalizer
        Case {
            name: "ensure the finalizer removal returns nil finalizers and modified",
            policy: "Retain",
            finalizers: Some(&[F]),
            expected: &[],
            expected_modified: true,
        },
        Case {
            name: "if finalizer does not exist then it should not be modified",
            policy: "Retain",
            finalizers: Some(&["dummy"]),
            expected: &["dummy"],
            expected_modified: false,
        },
        Case {
            name: "remove only the finalizerToAdd from multiple finalizers",
            policy: "Retain",
            finalizers: Some(&["dummy", F]),
            expected: &["dummy"],
            expected_modified: true,
        },
        Case {
            name: "no modified if the original finalizer is empty",
            policy: "Retain",
            finalizers: Some(&[]),
            expected: &[],
            expected_modified: false,
        },
        Case {
            name: "remove from nil finalizer",
            policy: "Retain",
            finalizers: None,
            expected: &[],
            expected_modified: false,
        },
        // TestAddFinalizer
        Case {
            name: "if finalizer already exists then no modification needed",
            policy: "Delete",
            finalizers: Some(&[F]),
            expected: &[F],
            expected_modified: false,
        },
        Case {
            name: "if original finalizer is nil then return with finalizer to add",
            policy: "Delete",
            finalizers: None,
            expected: &[F],
            expected_modified: true,
        },
        Case {
            name: "if original finalizer is empty then return with finalizer to add",
            policy: "Delete",
            finalizers: Some(&[]),
            expected: &[F],
            expected_modified: true,
        },
        Case {
            name: "ensure finalizers are appended to existing finalizer",
            policy: "Delete",
            finalizers: Some(&["dummy"]),
            expected: &["dummy", F],
            expected_modified: true,
        },
    ];
    for case in cases {
        let h = harness_with(ours("Bound", case.policy, case.finalizers, false));

        assert_eq!(
            h.sync_volumes().await,
            vec![Outcome::Forget],
            "{}",
            case.name
        );

        assert_eq!(
            server_finalizers(&h, "volume-1"),
            Some(strings(case.expected)),
            "{}",
            case.name
        );
        assert_eq!(
            !h.cluster.writes().is_empty(),
            case.expected_modified,
            "{}: {:?}",
            case.name,
            h.cluster.writes()
        );
    }
}

// ----- TestDeleteVolumeErrorHandling ---------------------------------------------------------

/// upstream's `TestDeleteVolumeErrorHandling`: the Event and the metric of each kind of
/// `Delete` error (a driver error, a VolumeAttachment, a PV of another node).
#[tokio::test]
async fn delete_volume_error_handling() {
    // "generic error emits a warning event and counts as failure"
    let h = harness_with(ours("Released", "Delete", None, false));
    h.driver.delete_fails(grpc(Code::Internal, "fake error"));
    assert_eq!(h.ctrl.sync_volume("volume-1").await, Outcome::Requeue);
    assert!(h.cluster.volume_on_server("volume-1").is_some());
    assert_eq!(h.metrics(), deleted(0, 1));
    assert_eq!(
        h.events.lines(),
        vec!["Warning VolumeFailedDelete rpc error: code = Internal desc = fake error"]
    );

    // "volume in use emits a normal event and is not counted"
    let h = harness_with(ours("Released", "Delete", None, false));
    h.cluster
        .add_attachment(attachment("volume-1", Some(true), false));
    assert_eq!(h.ctrl.sync_volume("volume-1").await, Outcome::Requeue);
    assert!(h.cluster.volume_on_server("volume-1").is_some());
    assert!(h.driver.deleted_ids().is_empty());
    assert_eq!(h.metrics(), TestMetrics::default());
    assert_eq!(
        h.events.lines(),
        vec![
            "Normal VolumeDelete persistentvolume volume-1 is still attached to node node, waiting for detach"
        ]
    );

    // "ignored error emits no event"
    let mut setup = Setup::default();
    setup.config.node_deployment = Some(node_deployment("foo"));
    let h = setup.build();
    let mut pv = ours("Released", "Delete", None, false);
    pv.spec.as_mut().unwrap().node_affinity = Some(affinity("bar"));
    h.cluster.add_volume(pv);
    assert_eq!(h.ctrl.sync_volume("volume-1").await, Outcome::Forget);
    assert!(h.cluster.volume_on_server("volume-1").is_some());
    assert!(h.driver.deleted_ids().is_empty());
    assert_eq!(h.metrics(), deleted(1, 0));
    assert!(h.events.all().is_empty());
}

// ----- TestShouldDelete, TestShouldDeleteWithFinalizer, TestIsProvisionerForVolume -----------

/// upstream's `TestShouldDelete` (the library with `AddFinalizer(true)`, as external-provisioner
/// runs it: a PV being deleted without the finalizer is not deleted again).
#[test]
fn should_delete() {
    let released = |annotations: &[(&str, &str)]| {
        new_volume("volume-1", "Released", "Delete", annotations, None, None)
    };
    let cases = [
        (
            "should delete",
            DRIVER,
            released(&provisioned_by(DRIVER)),
            false,
            true,
        ),
        (
            "failed: shouldn't delete",
            DRIVER,
            new_volume(
                "volume-1",
                "Failed",
                "Delete",
                &provisioned_by(DRIVER),
                None,
                None,
            ),
            false,
            false,
        ),
        (
            "volume still bound",
            DRIVER,
            new_volume(
                "volume-1",
                "Bound",
                "Delete",
                &provisioned_by(DRIVER),
                None,
                None,
            ),
            false,
            false,
        ),
        (
            "non-delete reclaim policy",
            DRIVER,
            new_volume(
                "volume-1",
                "Released",
                "Retain",
                &provisioned_by(DRIVER),
                None,
                None,
            ),
            false,
            false,
        ),
        (
            "non-nil deletion timestamp",
            DRIVER,
            released(&provisioned_by(DRIVER)),
            true,
            false,
        ),
        (
            "nil deletion timestamp",
            DRIVER,
            released(&provisioned_by(DRIVER)),
            false,
            true,
        ),
        (
            "migrated to",
            "csi.driver",
            released(&[
                (ANN_PROVISIONED_BY, DRIVER),
                (ANN_MIGRATED_TO, "csi.driver"),
            ]),
            false,
            true,
        ),
    ];
    for (name, provisioner, mut volume, deleting, expected) in cases {
        let mut setup = Setup::default();
        setup.config.driver_name = provisioner.into();
        let h = setup.build();
        if deleting {
            volume.metadata.deletion_timestamp = Some(now());
        }
        assert_eq!(h.ctrl.should_delete(&volume), expected, "{name}");
    }
}

/// upstream's `TestShouldDeleteWithFinalizer`.
#[test]
fn should_delete_with_finalizer() {
    let cases = [
        (
            "should delete with finalizer present and no deletionTimestamp",
            new_volume(
                "volume-1",
                "Released",
                "Delete",
                &provisioned_by(DRIVER),
                Some(&[F]),
                None,
            ),
            true,
        ),
        (
            "should delete with finalizer present and with deletionTimestamp",
            new_volume(
                "volume-1",
                "Released",
                "Delete",
                &provisioned_by(DRIVER),
                Some(&[F]),
                Some(now()),
            ),
            true,
        ),
        (
            "should not delete when volume still bound and the finalizer exists with no deletionTimestamp",
            new_volume(
                "volume-1",
                "Bound",
                "Delete",
                &provisioned_by(DRIVER),
                Some(&[F]),
                None,
            ),
            false,
        ),
        (
            "should not delete for non-delete reclaim policy",
            new_volume(
                "volume-1",
                "Released",
                "Retain",
                &provisioned_by(DRIVER),
                Some(&[]),
                None,
            ),
            false,
        ),
    ];
    let h = Harness::new();
    for (name, volume, expected) in cases {
        assert_eq!(h.ctrl.should_delete(&volume), expected, "{name}");
    }
}

/// upstream's `TestIsProvisionerForVolume`.
#[test]
fn is_provisioner_for_volume() {
    const UNKNOWN: &str = "foo.bar1/baz1";
    let in_tree = |annotations: &[(&str, &str)]| {
        new_volume("volume-1", "Available", "Delete", annotations, None, None)
    };
    let csi = |annotations: &[(&str, &str)]| {
        new_csi_volume(
            "volume-1",
            "Bound",
            "Delete",
            annotations,
            None,
            None,
            DRIVER,
        )
    };
    let migrated = [(ANN_PROVISIONED_BY, DRIVER), (ANN_MIGRATED_TO, DRIVER)];
    let cases = [
        (
            "known dynamically provisioned in-tree volume",
            DRIVER,
            in_tree(&provisioned_by(DRIVER)),
            true,
        ),
        (
            "known dynamically provisioned in-tree migrated volume",
            DRIVER,
            in_tree(&migrated),
            true,
        ),
        (
            "unknown dynamically provisioned in-tree volume",
            UNKNOWN,
            in_tree(&provisioned_by(DRIVER)),
            false,
        ),
        (
            "unknown dynamically provisioned in-tree migrated volume",
            UNKNOWN,
            in_tree(&migrated),
            false,
        ),
        (
            "known dynamically provisioned csi volume",
            DRIVER,
            csi(&provisioned_by(DRIVER)),
            true,
        ),
        (
            "unknown dynamically provisioned csi volume",
            UNKNOWN,
            csi(&provisioned_by(DRIVER)),
            false,
        ),
        (
            "known statically provisioned csi volume",
            DRIVER,
            csi(&[]),
            true,
        ),
        (
            "unknown statically provisioned csi volume",
            UNKNOWN,
            csi(&[]),
            false,
        ),
        (
            "statically provisioned in-tree volume always return false",
            DRIVER,
            in_tree(&[]),
            false,
        ),
        (
            "known statically provisioned in-tree migrate volume",
            DRIVER,
            in_tree(&[(ANN_MIGRATED_TO, DRIVER)]),
            true,
        ),
        (
            "unknown statically provisioned in-tree migrate volume",
            UNKNOWN,
            in_tree(&[(ANN_MIGRATED_TO, DRIVER)]),
            false,
        ),
    ];
    for (name, provisioner, volume, expected) in cases {
        let mut setup = Setup::default();
        setup.config.driver_name = provisioner.into();
        let h = setup.build();
        assert_eq!(
            h.ctrl.is_provisioner_for_volume(&volume),
            expected,
            "{name}"
        );
    }
}

// ----- external-provisioner's TestDelete, through the loop ------------------------------------

const DRIVER_TOPOLOGY_KEY: &str = "foo.bar/node";

fn node_deployment(node: &str) -> NodeDeployment {
    NodeDeployment {
        node_name: node.into(),
        accessible_topology: Some(Topology {
            segments: [(DRIVER_TOPOLOGY_KEY.to_string(), node.to_string())]
                .into_iter()
                .collect(),
        }),
    }
}

fn affinity(node: &str) -> VolumeNodeAffinity {
    VolumeNodeAffinity {
        required: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: DRIVER_TOPOLOGY_KEY.into(),
                    operator: "In".into(),
                    values: Some(vec![node.into()]),
                }]),
                match_fields: None,
            }],
        }),
    }
}

fn attachment(pv: &str, attached: Option<bool>, deleting: bool) -> VolumeAttachment {
    VolumeAttachment {
        metadata: ObjectMeta {
            name: Some("va".into()),
            deletion_timestamp: deleting.then(now),
            ..Default::default()
        },
        spec: VolumeAttachmentSpec {
            attacher: DRIVER.into(),
            node_name: "node".into(),
            source: VolumeAttachmentSource {
                persistent_volume_name: Some(pv.into()),
                ..Default::default()
            },
        },
        status: attached.map(|attached| VolumeAttachmentStatus {
            attached,
            ..Default::default()
        }),
    }
}

/// A PV of upstream's `TestDelete`, made Released with reclaim policy Delete and
/// `pv.kubernetes.io/provisioned-by` this driver so that the loop deletes it.
#[derive(Default)]
struct Pv {
    name: &'static str,
    annotations: &'static [(&'static str, &'static str)],
    claim: Option<(&'static str, &'static str)>,
    class: &'static str,
    csi: bool,
    on_node: Option<&'static str>,
}

impl Pv {
    fn build(&self) -> PersistentVolume {
        let mut annotations = map(self.annotations);
        annotations.insert(ANN_PROVISIONED_BY.into(), DRIVER.into());
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some(self.name.into()),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                csi: self.csi.then(|| CSIPersistentVolumeSource {
                    volume_handle: "vol-id-1".into(),
                    ..Default::default()
                }),
                claim_ref: self.claim.map(|(namespace, name)| ObjectReference {
                    namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
                    name: Some(name.into()),
                    ..Default::default()
                }),
                storage_class_name: (!self.class.is_empty()).then(|| self.class.to_string()),
                node_affinity: self.on_node.map(affinity),
                persistent_volume_reclaim_policy: Some("Delete".into()),
                ..Default::default()
            }),
            status: Some(PersistentVolumeStatus {
                phase: Some("Released".into()),
                ..Default::default()
            }),
        }
    }
}

fn sc(params: &[(&str, &str)]) -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some("sc-name".into()),
            ..Default::default()
        },
        provisioner: DRIVER.into(),
        parameters: Some(map(params)),
        ..Default::default()
    }
}

enum Expect {
    /// `DeleteVolume` with these secrets, then the PV is deleted.
    Deleted(BTreeMap<String, String>),
    /// `VolumeFailedDelete` with a message starting so; retried.
    Failed(&'static str),
    /// `VolumeDelete`: still attached; retried, not counted.
    InUse,
    /// Another node's volume: nothing, no Event.
    Ignored,
    /// No such PV in the cache.
    Gone,
}

struct DeleteCase {
    name: &'static str,
    pv: Option<Pv>,
    class: Option<StorageClass>,
    secrets: bool,
    attachment: Option<VolumeAttachment>,
    deployment_node: Option<&'static str>,
    expect: Expect,
}

const SECRET_NAME: &str = "csi.storage.k8s.io/provisioner-secret-name";
const SECRET_NAMESPACE: &str = "csi.storage.k8s.io/provisioner-secret-namespace";
const TEMPLATED: (&str, &str) = (
    SECRET_NAME,
    "static-${pv.name}-${pvc.namespace}-${pvc.name}",
);
const EMPTY_SECRET_ANNOTATIONS: &[(&str, &str)] = &[
    (ANN_DELETION_SECRET_NAME, ""),
    (ANN_DELETION_SECRET_NAMESPACE, ""),
];
const SECRET_ANNOTATIONS: &[(&str, &str)] = &[
    (ANN_DELETION_SECRET_NAME, "provisionersecret"),
    (ANN_DELETION_SECRET_NAMESPACE, NS),
];
const MISSING_SECRET_ANNOTATIONS: &[(&str, &str)] = &[
    (ANN_DELETION_SECRET_NAME, "non-existent-provisionersecret"),
    (ANN_DELETION_SECRET_NAMESPACE, NS),
];

/// external-provisioner's `TestDelete`, every case through `sync_volume`: the `DeleteVolume`
/// and its secrets, and what the loop makes of each error (Events, requeue, metrics).
#[tokio::test]
async fn test_delete() {
    let secret = || map(&[("provisionersecret-key", "provisionersecret-val")]);
    let none = BTreeMap::new;
    let attached_pv = Pv {
        name: "pv",
        claim: Some(("pvc-namespace", "pvc-name")),
        class: "sc-name",
        csi: true,
        ..Default::default()
    };
    let namespaced_class = || sc(&[TEMPLATED, (SECRET_NAMESPACE, "${pvc.namespace}")]);
    let cases = vec![
        DeleteCase {
            name: "fail - nil PV",
            pv: None,
            class: None,
            secrets: false,
            attachment: None,
            deployment_node: None,
            expect: Expect::Gone,
        },
        DeleteCase {
            name: "fail - nil volume.Spec.CSI",
            pv: Some(Pv {
                name: "pv",
                annotations: &[(
                    SECRET_NAME,
                    "static-${pv.name}-${pvc.namespace}-${pvc.name}-${pvc.annotations['akey']}",
                )],
                ..Default::default()
            }),
            class: None,
            secrets: false,
            attachment: None,
            deployment_node: None,
            expect: Expect::Failed("invalid CSI PV"),
        },
        DeleteCase {
            name: "fail - pvc.annotations not supported for Create/Delete Volume Secret",
            pv: Some(Pv {
                name: "pv",
                claim: Some(("", "sc-name")),
                class: "sc-name",
                csi: true,
                ..Default::default()
            }),
            class: Some(sc(&[(
                SECRET_NAME,
                "static-${pv.name}-${pvc.namespace}-${pvc.name}-${pvc.annotations['akey']}",
            )])),
            secrets: false,
            attachment: None,
            deployment_node: None,
            expect: Expect::Failed("failed to get secretreference for volume pv: "),
        },
        DeleteCase {
            name: "fail - delete when attached to node",
            pv: Some(Pv { ..attached_pv }),
            class: Some(namespaced_class()),
            secrets: false,
            attachment: Some(attachment("pv", Some(true), false)),
            deployment_node: None,
            expect: Expect::InUse,
        },
        DeleteCase {
            name: "fail - delete when volumeattachment exists but not attached to node",
            pv: Some(Pv { ..attached_pv }),
            class: Some(namespaced_class()),
            secrets: false,
            attachment: Some(attachment("pv", Some(false), false)),
            deployment_node: None,
            expect: Expect::InUse,
        },
        DeleteCase {
            name: "fail - delete when volumeattachment exists with deletionTimestamp set",
            pv: Some(Pv { ..attached_pv }),
            class: Some(namespaced_class()),
            secrets: false,
            attachment: Some(attachment("pv", None, true)),
            deployment_node: None,
            expect: Expect::InUse,
        },
        DeleteCase {
            name: "simple - valid case",
            pv: Some(Pv {
                name: "pv",
                csi: true,
                ..Default::default()
            }),
            class: Some(sc(&[TEMPLATED])),
            secrets: false,
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(none()),
        },
        DeleteCase {
            name: "simple - valid case with existing volumeattachment on different pv",
            pv: Some(Pv {
                name: "pv-without-attachment",
                claim: Some(("", "pvc-name")),
                csi: true,
                ..Default::default()
            }),
            class: Some(sc(&[TEMPLATED])),
            secrets: false,
            attachment: Some(attachment("pv", Some(true), false)),
            deployment_node: None,
            expect: Expect::Deleted(none()),
        },
        DeleteCase {
            name: "simple - valid case with ClaimRef set",
            pv: Some(Pv {
                name: "pv",
                claim: Some(("", "pvc-name")),
                csi: true,
                ..Default::default()
            }),
            class: Some(sc(&[TEMPLATED])),
            secrets: false,
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(none()),
        },
        DeleteCase {
            name: "Empty provisioner secret is set as PV annotation and StorageClass exists",
            pv: Some(Pv {
                name: "pv",
                annotations: EMPTY_SECRET_ANNOTATIONS,
                csi: true,
                ..Default::default()
            }),
            class: Some(sc(&[])),
            secrets: false,
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(none()),
        },
        DeleteCase {
            name: "Empty provisioner secret is set as PV annotation and StorageClass doesn't exist on deletion",
            pv: Some(Pv {
                name: "pv",
                annotations: EMPTY_SECRET_ANNOTATIONS,
                csi: true,
                ..Default::default()
            }),
            class: None,
            secrets: false,
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(none()),
        },
        DeleteCase {
            name: "Non-empty provisioner secret is set as PV annotation and StorageClass exists",
            pv: Some(Pv {
                name: "pv",
                annotations: SECRET_ANNOTATIONS,
                csi: true,
                ..Default::default()
            }),
            class: Some(sc(&[
                (SECRET_NAME, "provisionersecret"),
                (SECRET_NAMESPACE, NS),
            ])),
            secrets: true,
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(secret()),
        },
        DeleteCase {
            name: "Non-empty provisioner secret is set as PV annotation and StorageClass doesn't exist",
            pv: Some(Pv {
                name: "pv",
                annotations: SECRET_ANNOTATIONS,
                csi: true,
                ..Default::default()
            }),
            class: None,
            secrets: true,
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(secret()),
        },
        DeleteCase {
            name: "Non-empty provisioner secret is set as PV annotation and modified StorageClass exists",
            pv: Some(Pv {
                name: "pv",
                annotations: SECRET_ANNOTATIONS,
                csi: true,
                ..Default::default()
            }),
            class: Some(sc(&[
                (SECRET_NAME, "modified-provisionersecret"),
                (SECRET_NAMESPACE, "modified-namespace"),
            ])),
            secrets: true,
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(secret()),
        },
        DeleteCase {
            name: "Non-existent provisioner secret is set as PV annotation",
            pv: Some(Pv {
                name: "pv",
                annotations: MISSING_SECRET_ANNOTATIONS,
                csi: true,
                ..Default::default()
            }),
            class: None,
            secrets: true,
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(none()),
        },
        DeleteCase {
            name: "Provisioner secret isn't set as PV annotation",
            pv: Some(Pv {
                name: "pv",
                annotations: &[(ANN_BETA_STORAGE_CLASS, "sc-name")],
                claim: Some(("pvc-namespace", "pvc-name")),
                csi: true,
                ..Default::default()
            }),
            class: Some(sc(&[
                (SECRET_NAME, "provisionersecret"),
                (SECRET_NAMESPACE, NS),
            ])),
            secrets: true,
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(secret()),
        },
        DeleteCase {
            name: "distributed, ignore PV from other host",
            pv: Some(Pv {
                name: "pv",
                claim: Some(("", "pvc-name")),
                csi: true,
                on_node: Some("bar"),
                ..Default::default()
            }),
            class: Some(sc(&[TEMPLATED])),
            secrets: false,
            attachment: None,
            deployment_node: Some("foo"),
            expect: Expect::Ignored,
        },
        DeleteCase {
            name: "distributed, delete PV from our host",
            pv: Some(Pv {
                name: "pv",
                claim: Some(("", "pvc-name")),
                csi: true,
                on_node: Some("foo"),
                ..Default::default()
            }),
            class: Some(sc(&[TEMPLATED])),
            secrets: false,
            attachment: None,
            deployment_node: Some("foo"),
            expect: Expect::Deleted(none()),
        },
    ];
    assert_eq!(cases.len(), 18);
    for case in cases {
        let name = case.name;
        let mut setup = Setup::default();
        setup.config.node_deployment = case.deployment_node.map(node_deployment);
        let h = setup.build();
        let pv_name = case.pv.as_ref().map(|p| p.name).unwrap_or("pv");
        // The metrics' class label is the PV's class.
        let class = case.pv.as_ref().map(|p| p.class).unwrap_or_default();
        let deleted = |success, failed| TestMetrics {
            deleted: counts(&[(class, success, failed)]),
            ..Default::default()
        };
        if let Some(pv) = &case.pv {
            h.cluster.add_volume(pv.build());
        }
        if let Some(class) = case.class {
            h.cluster.add_class(class);
        }
        if case.secrets {
            h.cluster.add_secret(new_secret(
                NS,
                "provisionersecret",
                &[("provisionersecret-key", "provisionersecret-val")],
            ));
        }
        if let Some(attachment) = case.attachment {
            h.cluster.add_attachment(attachment);
        }

        let outcome = h.ctrl.sync_volume(pv_name).await;

        let requests = lock(&h.driver.deleted).clone();
        match case.expect {
            Expect::Deleted(secrets) => {
                assert_eq!(outcome, Outcome::Forget, "{name}");
                assert_eq!(requests.len(), 1, "{name}");
                assert_eq!(requests[0].volume_id, "vol-id-1", "{name}");
                let got: BTreeMap<String, String> = requests[0]
                    .secrets
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(got, secrets, "{name}");
                assert!(h.cluster.volume_on_server(pv_name).is_none(), "{name}");
                assert!(h.events.all().is_empty(), "{name}");
                assert_eq!(h.metrics(), deleted(1, 0), "{name}");
            }
            Expect::Failed(prefix) => {
                assert_eq!(outcome, Outcome::Requeue, "{name}");
                assert!(requests.is_empty(), "{name}");
                assert!(h.cluster.volume_on_server(pv_name).is_some(), "{name}");
                let events = h.events.all();
                assert_eq!(events.len(), 1, "{name}");
                assert_eq!(
                    events[0].object_key(),
                    format!("PersistentVolume {pv_name}")
                );
                assert!(
                    events[0]
                        .line()
                        .starts_with(&format!("Warning VolumeFailedDelete {prefix}")),
                    "{name}: {}",
                    events[0].line()
                );
                assert_eq!(h.metrics(), deleted(0, 1), "{name}");
            }
            Expect::InUse => {
                assert_eq!(outcome, Outcome::Requeue, "{name}");
                assert!(requests.is_empty(), "{name}");
                assert!(h.cluster.volume_on_server(pv_name).is_some(), "{name}");
                assert_eq!(
                    h.events.lines(),
                    vec![format!(
                        "Normal VolumeDelete persistentvolume {pv_name} is still attached to node node, waiting for detach"
                    )],
                    "{name}"
                );
                assert_eq!(h.metrics(), TestMetrics::default(), "{name}");
            }
            Expect::Ignored => {
                assert_eq!(outcome, Outcome::Forget, "{name}");
                assert!(requests.is_empty(), "{name}");
                assert!(h.cluster.volume_on_server(pv_name).is_some(), "{name}");
                assert!(h.events.all().is_empty(), "{name}");
                assert!(h.cluster.writes().is_empty(), "{name}");
            }
            Expect::Gone => {
                assert_eq!(outcome, Outcome::Forget, "{name}");
                assert!(requests.is_empty(), "{name}");
                assert!(h.cluster.actions().is_empty(), "{name}");
            }
        }
    }
}

/// Ours: an update of the PV that the worker reads before the cache shows the deletion (or
/// the finalizer's removal) calls no second `DeleteVolume` (upstream's library does).
#[tokio::test]
async fn a_stale_update_after_the_deletion_calls_no_second_delete_volume() {
    let h = harness_with(ours(
        "Released",
        "Delete",
        Some(&[F, "kubernetes.io/pv-protection"]),
        false,
    ));

    assert_eq!(h.sync_volumes().await, vec![Outcome::Forget]);
    assert_eq!(h.driver.deleted_ids(), vec!["test-volume-id-1"]);
    // The cache still holds the PV as it was before the deletion: sync it again.
    assert_eq!(h.sync_volumes().await, vec![Outcome::Forget]);

    assert_eq!(
        h.driver.deleted_ids(),
        vec!["test-volume-id-1"],
        "DeleteVolume once"
    );
    assert_eq!(h.metrics(), deleted(1, 0));
}
