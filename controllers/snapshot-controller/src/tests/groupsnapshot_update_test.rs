//! upstream's `pkg/common-controller/groupsnapshot_update_test.go` `TestUpdateGroupSnapshotSync`,
//! case for case.

use super::framework::group::*;
use super::groupsnapshot_delete_test::{claims, volumes};
use csi_crd_types::group_snapshot::v1::{VolumeGroupSnapshot, VolumeGroupSnapshotContent};
use csi_snapshot_utils as utils;

fn preprovisioned() -> Vec<VolumeGroupSnapshot> {
    with_group_snapshot_finalizers(
        vec![new_group_snapshot(
            "group-snap-1-1",
            "group-snapuid1-1",
            None,
            "groupsnapcontent-snapuid1-1",
            "gold",
            "groupsnapcontent-snapuid1-1",
            Some(false),
            None,
            None,
            false,
            false,
            None,
        )],
        utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER,
    )
}

fn preprovisioned_content() -> Vec<VolumeGroupSnapshotContent> {
    vec![new_group_snapshot_content(
        "groupsnapcontent-snapuid1-1",
        "group-snapuid1-1",
        "group-snap-1-1",
        "",
        "gold",
        &[],
        "group-snapshot-handle",
        "Delete",
        None,
        false,
        false,
    )]
}

fn dynamic(ready: bool) -> Vec<VolumeGroupSnapshot> {
    with_group_snapshot_finalizers(
        vec![new_group_snapshot(
            "group-snap-1-1",
            "group-snapuid1-1",
            Some(postgres()),
            "",
            "gold",
            "groupsnapcontent-group-snapuid1-1",
            Some(ready),
            None,
            None,
            false,
            false,
            None,
        )],
        utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER,
    )
}

fn dynamic_content(with_status: bool) -> Vec<VolumeGroupSnapshotContent> {
    vec![new_group_snapshot_content(
        "groupsnapcontent-group-snapuid1-1",
        "group-snapuid1-1",
        "group-snap-1-1",
        "snapshot-handle",
        "gold",
        &["1-pv-handle6-1", "2-pv-handle6-1"],
        "",
        "Delete",
        None,
        false,
        with_status,
    )]
}

#[tokio::test]
async fn update_group_snapshot_sync() {
    let cases = vec![
        GroupCase {
            name: "4-1 - successful pre-provisioned group snapshot but not ready, no-op",
            initial_group_snapshots: preprovisioned(),
            expected_group_snapshots: preprovisioned(),
            initial_group_contents: preprovisioned_content(),
            expected_group_contents: preprovisioned_content(),
            initial_claims: claims(),
            initial_volumes: volumes(),
            expect_success: true,
            ..Default::default()
        },
        GroupCase {
            name: "4-2 - successful dynamically-provisioned create group snapshot with group snapshot class gold but not ready, no-op",
            initial_group_snapshots: dynamic(false),
            expected_group_snapshots: dynamic(false),
            initial_group_contents: dynamic_content(false),
            expected_group_contents: dynamic_content(false),
            initial_claims: claims(),
            initial_volumes: volumes(),
            expect_success: true,
            ..Default::default()
        },
        GroupCase {
            name: "4-3 - group snapshot, setting it ready",
            initial_group_snapshots: dynamic(false),
            expected_group_snapshots: dynamic(true),
            initial_group_contents: dynamic_content(true),
            expected_group_contents: dynamic_content(true),
            initial_claims: claims(),
            initial_volumes: volumes(),
            expected_events: vec!["Normal GroupSnapshotReady"],
            expect_success: true,
            ..Default::default()
        },
    ];
    run_group_sync_tests(cases, &group_snapshot_classes()).await;
}
