//! upstream's `pkg/common-controller/groupsnapshot_delete_test.go` `TestDeleteGroupSnapshotSync`,
//! case for case.

use super::framework::group::*;
use super::framework::*;
use csi_crd_types::group_snapshot::v1::{VolumeGroupSnapshot, VolumeGroupSnapshotContent};
use csi_snapshot_utils as utils;

pub(super) fn claims() -> Vec<k8s_openapi::api::core::v1::PersistentVolumeClaim> {
    with_claim_labels(
        new_claim_couple_array(
            "claim1-1",
            "pvc-uid6-1",
            "1Gi",
            "volume6-1",
            "Bound",
            Some("gold"),
        ),
        postgres(),
    )
}

pub(super) fn volumes() -> Vec<k8s_openapi::api::core::v1::PersistentVolume> {
    new_volume_couple_array(
        "volume6-1",
        "pv-uid6-1",
        "pv-handle6-1",
        "1Gi",
        "pvc-uid6-1",
        "claim1-1",
        "Bound",
        "Delete",
        "gold",
    )
}

/// The bound dynamic group snapshot `group-snap-1-1`, deleted.
pub(super) fn deleted_group(bound: &str, nil_status: bool) -> Vec<VolumeGroupSnapshot> {
    let ready = (!nil_status).then_some(false);
    vec![new_group_snapshot(
        "group-snap-1-1",
        "group-snapuid1-1",
        Some(postgres()),
        "",
        "gold",
        bound,
        ready,
        None,
        None,
        nil_status,
        false,
        Some(meta_time_now()),
    )]
}

/// Its group content with `policy`.
pub(super) fn group_content(policy: &str) -> Vec<VolumeGroupSnapshotContent> {
    vec![new_group_snapshot_content(
        "groupsnapcontent-group-snapuid1-1",
        "group-snapuid1-1",
        "group-snap-1-1",
        "group-snapshot-handle",
        "gold",
        &["1-pv-handle6-1", "2-pv-handle6-1"],
        "",
        policy,
        None,
        false,
        false,
    )]
}

pub(super) fn being_deleted(
    contents: Vec<VolumeGroupSnapshotContent>,
) -> Vec<VolumeGroupSnapshotContent> {
    with_group_content_annotations(
        contents,
        map(&[(utils::ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED, "yes")]),
    )
}

#[tokio::test]
async fn delete_group_snapshot_sync() {
    let bound = "groupsnapcontent-group-snapuid1-1";
    let cases = vec![
        GroupCase {
            name: "2-1 - group snapshot have been deleted, but no content was present - no op",
            initial_group_snapshots: deleted_group(bound, false),
            expected_group_snapshots: deleted_group(bound, false),
            initial_claims: claims(),
            initial_volumes: volumes(),
            expect_success: true,
            ..Default::default()
        },
        GroupCase {
            name: "2-2 - dynamic group snapshot have been deleted, was not provisioned, no-op",
            initial_group_snapshots: deleted_group("", true),
            expected_group_snapshots: deleted_group("", true),
            initial_claims: claims(),
            expect_success: true,
            ..Default::default()
        },
        GroupCase {
            name: "2-3 - pre-provisioned group snapshot have been deleted, retention policy set to retain - set 'being deleted' annotation",
            initial_group_snapshots: with_group_snapshot_finalizers(
                deleted_group(bound, false),
                utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER,
            ),
            expected_group_snapshots: deleted_group(bound, false),
            initial_group_contents: group_content("Retain"),
            expected_group_contents: being_deleted(group_content("Retain")),
            initial_claims: claims(),
            initial_volumes: volumes(),
            expect_success: true,
            ..Default::default()
        },
        GroupCase {
            name: "2-4 - pre-provisioned snapshot have been deleted, retention policy set to delete - volume snapshot content will be deleted",
            initial_group_snapshots: with_group_snapshot_finalizers(
                deleted_group(bound, false),
                utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER,
            ),
            expected_group_snapshots: with_group_snapshot_finalizers(
                deleted_group(bound, false),
                utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER,
            ),
            initial_group_contents: group_content("Delete"),
            expected_group_contents: Vec::new(),
            initial_claims: claims(),
            initial_volumes: volumes(),
            expect_success: true,
            ..Default::default()
        },
    ];
    run_group_sync_tests(cases, &group_snapshot_classes()).await;
}
