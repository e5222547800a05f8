//! upstream's `pkg/common-controller/groupsnapshot_finalizer_test.go`
//! `TestGroupSnapshotFinalizer`, case for case.

use super::framework::group::*;
use super::groupsnapshot_delete_test::{being_deleted, deleted_group};
use csi_crd_types::group_snapshot::v1::{VolumeGroupSnapshot, VolumeGroupSnapshotContent};
use csi_snapshot_utils as utils;

fn claims(class: &str) -> Vec<k8s_openapi::api::core::v1::PersistentVolumeClaim> {
    with_claim_labels(
        new_claim_couple_array(
            "claim1-1",
            "pvc-uid6-1",
            "1Gi",
            "volume6-1",
            "Bound",
            Some(class),
        ),
        postgres(),
    )
}

fn volumes(class: &str) -> Vec<k8s_openapi::api::core::v1::PersistentVolume> {
    new_volume_couple_array(
        "volume6-1",
        "pv-uid6-1",
        "pv-handle6-1",
        "1Gi",
        "pvc-uid6-1",
        "claim1-1",
        "Bound",
        "Delete",
        class,
    )
}

fn bound_group(class: &str) -> Vec<VolumeGroupSnapshot> {
    vec![new_group_snapshot(
        "group-snap-1-1",
        "group-snapuid1-1",
        Some(postgres()),
        "",
        class,
        "groupsnapcontent-group-snapuid1-1",
        Some(false),
        None,
        None,
        false,
        false,
        None,
    )]
}

fn group_content(class: &str, policy: &str) -> Vec<VolumeGroupSnapshotContent> {
    vec![new_group_snapshot_content(
        "groupsnapcontent-group-snapuid1-1",
        "group-snapuid1-1",
        "group-snap-1-1",
        "group-snapshot-handle",
        class,
        &["1-pv-handle6-1", "2-pv-handle6-1"],
        "",
        policy,
        None,
        false,
        false,
    )]
}

#[tokio::test]
async fn group_snapshot_finalizer() {
    let bound = "groupsnapcontent-group-snapuid1-1";
    let cases = vec![
        GroupCase {
            name: "3-1 - finalizer is added on dynamically provisioned group contents if the volume group snapshot class specify a Deletion retain policy",
            initial_group_snapshots: bound_group("gold"),
            expected_group_snapshots: with_group_snapshot_finalizers(
                bound_group("gold"),
                utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER,
            ),
            initial_group_contents: group_content("gold", "Delete"),
            expected_group_contents: group_content("gold", "Delete"),
            initial_claims: claims("gold"),
            initial_volumes: volumes("gold"),
            expect_success: true,
            ..Default::default()
        },
        GroupCase {
            name: "3-2 - finalizer is not added on dynamically provisioned group contents if the volume group snapshot class specify the Retain retain policy",
            initial_group_snapshots: bound_group("silver"),
            expected_group_snapshots: with_group_snapshot_finalizers(
                bound_group("silver"),
                utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER,
            ),
            initial_group_contents: group_content("silver", "Delete"),
            expected_group_contents: group_content("silver", "Delete"),
            initial_claims: claims("silver"),
            initial_volumes: volumes("silver"),
            expect_success: true,
            ..Default::default()
        },
        GroupCase {
            name: "3-3 - dynamic group snapshot have been deleted, retention policy set to Delete - the finalizer will be removed",
            initial_group_snapshots: with_group_snapshot_finalizers(
                deleted_group(bound, false),
                utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER,
            ),
            expected_group_snapshots: deleted_group(bound, false),
            initial_group_contents: group_content("gold", "Retain"),
            expected_group_contents: being_deleted(group_content("gold", "Retain")),
            initial_claims: claims("gold"),
            initial_volumes: volumes("gold"),
            expect_success: true,
            ..Default::default()
        },
    ];
    run_group_sync_tests(cases, &group_snapshot_classes()).await;
}
