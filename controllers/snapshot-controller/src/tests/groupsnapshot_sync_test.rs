//! upstream's `pkg/common-controller/groupsnapshot_sync_test.go`, case for case:
//! `TestSyncReadyGroupSnapshot`, `TestGroupSnapshotContentSync`, `TestSetDefaultGroupSnapshotClass`,
//! `TestSetDefaultGroupSnapshotClassMultipleDefaults`, `TestIndividualSnapshotCreation`,
//! `TestSyncGroupSnapshotCreatesIndividualSnapshots`.

use super::framework::group::*;
use super::framework::*;
use csi_crd_types::group_snapshot::v1::{
    VolumeGroupSnapshot, VolumeGroupSnapshotContent, VolumeGroupSnapshotContentStatus,
    VolumeSnapshotInfo,
};
use csi_snapshot_utils as utils;

fn claims(n: &str, class: &str) -> Vec<k8s_openapi::api::core::v1::PersistentVolumeClaim> {
    with_claim_labels(
        new_claim_couple_array(
            &format!("claim{n}"),
            &format!("pvc-uid{n}"),
            "1Gi",
            &format!("volume{n}"),
            "Bound",
            Some(class),
        ),
        postgres(),
    )
}

fn volumes(n: &str, class: &str) -> Vec<k8s_openapi::api::core::v1::PersistentVolume> {
    new_volume_couple_array(
        &format!("volume{n}"),
        &format!("pv-uid{n}"),
        &format!("pv-handle{n}"),
        "1Gi",
        &format!("pvc-uid{n}"),
        &format!("claim{n}"),
        "Bound",
        "Delete",
        class,
    )
}

/// The dynamic group snapshot `group-snap-<n>` bound to `bound`, with its bound finalizer.
fn group(
    n: &str,
    class: &str,
    bound: &str,
    ready: bool,
    error: Option<&str>,
) -> Vec<VolumeGroupSnapshot> {
    with_group_snapshot_finalizers(
        vec![new_group_snapshot(
            &format!("group-snap-{n}"),
            &format!("group-snapuid{n}"),
            Some(postgres()),
            "",
            class,
            bound,
            Some(ready),
            None,
            error.and_then(new_volume_error),
            false,
            false,
            None,
        )],
        utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER,
    )
}

fn content(
    n: &str,
    ref_uid: &str,
    ref_name: &str,
    handles: &[&str],
    with_status: bool,
) -> VolumeGroupSnapshotContent {
    new_group_snapshot_content(
        &format!("groupsnapcontent-group-snapuid{n}"),
        ref_uid,
        ref_name,
        "group-snapshot-handle",
        "gold",
        handles,
        "",
        "Delete",
        None,
        false,
        with_status,
    )
}

fn ready_sync_cases() -> Vec<GroupCase> {
    vec![
        GroupCase {
            name: "6-1 - ready group snapshot with valid content binding",
            initial_group_snapshots: group(
                "6-1",
                "gold",
                "groupsnapcontent-group-snapuid6-1",
                true,
                None,
            ),
            expected_group_snapshots: group(
                "6-1",
                "gold",
                "groupsnapcontent-group-snapuid6-1",
                true,
                None,
            ),
            initial_group_contents: vec![content(
                "6-1",
                "group-snapuid6-1",
                "group-snap-6-1",
                &["1-pv-handle6-1", "2-pv-handle6-1"],
                true,
            )],
            expected_group_contents: vec![content(
                "6-1",
                "group-snapuid6-1",
                "group-snap-6-1",
                &["1-pv-handle6-1", "2-pv-handle6-1"],
                true,
            )],
            initial_claims: claims("6-1", "gold"),
            initial_volumes: volumes("6-1", "gold"),
            expect_success: true,
            ..Default::default()
        },
        GroupCase {
            name: "6-2 - ready group snapshot with missing content",
            initial_group_snapshots: group("6-2", "gold", "groupsnapcontent-missing", true, None),
            expected_group_snapshots: group(
                "6-2",
                "gold",
                "groupsnapcontent-missing",
                false,
                Some("VolumeGroupSnapshotContent is missing"),
            ),
            initial_claims: claims("6-2", "gold"),
            initial_volumes: volumes("6-2", "gold"),
            expected_events: vec!["Warning GroupSnapshotContentMissing"],
            ..Default::default()
        },
        GroupCase {
            name: "6-3 - ready group snapshot with misbound content",
            initial_group_snapshots: group(
                "6-3",
                "gold",
                "groupsnapcontent-group-snapuid6-3",
                true,
                None,
            ),
            expected_group_snapshots: group(
                "6-3",
                "gold",
                "groupsnapcontent-group-snapuid6-3",
                false,
                Some(
                    "VolumeGroupSnapshotContent [groupsnapcontent-group-snapuid6-3] is bound to a different group snapshot",
                ),
            ),
            initial_group_contents: vec![content(
                "6-3",
                "wrong-uid",
                "wrong-snap",
                &["1-pv-handle6-3", "2-pv-handle6-3"],
                true,
            )],
            expected_group_contents: vec![content(
                "6-3",
                "wrong-uid",
                "wrong-snap",
                &["1-pv-handle6-3", "2-pv-handle6-3"],
                true,
            )],
            initial_claims: claims("6-3", "gold"),
            initial_volumes: volumes("6-3", "gold"),
            ..Default::default()
        },
    ]
}

#[tokio::test]
async fn sync_ready_group_snapshot() {
    run_group_sync_tests(ready_sync_cases(), &group_snapshot_classes()).await;
}

#[tokio::test]
async fn group_snapshot_content_sync() {
    let initial = vec![content(
        "7-1",
        "group-snapuid7-1",
        "group-snap-7-1",
        &["1-pv-handle7-1", "2-pv-handle7-1"],
        true,
    )];
    let cases = vec![GroupCase {
        name: "7-1 - sync group snapshot content adds finalizer to content",
        initial_group_snapshots: group(
            "7-1",
            "gold",
            "groupsnapcontent-group-snapuid7-1",
            false,
            None,
        ),
        expected_group_snapshots: group(
            "7-1",
            "gold",
            "groupsnapcontent-group-snapuid7-1",
            false,
            None,
        ),
        expected_group_contents: with_group_content_finalizers(
            initial.clone(),
            utils::VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER,
        ),
        initial_group_contents: initial,
        initial_claims: claims("7-1", "gold"),
        initial_volumes: volumes("7-1", "gold"),
        expect_success: true,
        test: GroupTestFn::SyncGroupSnapshotContent,
        ..Default::default()
    }];
    run_group_sync_tests(cases, &group_snapshot_classes()).await;
}

fn unbound_dynamic(n: &str, class: &str) -> Vec<VolumeGroupSnapshot> {
    vec![new_group_snapshot(
        &format!("group-snap-{n}"),
        &format!("group-snapuid{n}"),
        Some(postgres()),
        "",
        class,
        "",
        None,
        None,
        None,
        true,
        false,
        None,
    )]
}

#[tokio::test]
async fn set_default_group_snapshot_class() {
    let single_default = vec![new_group_class("default-class", true, "Delete")];
    let preprovisioned = vec![new_group_snapshot(
        "group-snap-5-2",
        "group-snapuid5-2",
        None,
        "groupsnapcontent-snapuid5-2",
        "",
        "",
        Some(false),
        None,
        None,
        false,
        false,
        None,
    )];
    let preprovisioned_content = vec![new_group_snapshot_content(
        "groupsnapcontent-snapuid5-2",
        "group-snapuid5-2",
        "group-snap-5-2",
        "",
        "",
        &[],
        "group-snapshot-handle",
        "Delete",
        None,
        false,
        true,
    )];
    let cases = vec![
        GroupCase {
            name: "5-1 - SetDefaultGroupSnapshotClass returns default class for dynamic snapshot",
            initial_group_snapshots: unbound_dynamic("5-1", ""),
            expected_group_snapshots: unbound_dynamic("5-1", "default-class"),
            initial_claims: claims("5-1", "default-class"),
            initial_volumes: volumes("5-1", "default-class"),
            expect_success: true,
            test: GroupTestFn::SetDefaultGroupSnapshotClass,
            ..Default::default()
        },
        GroupCase {
            name: "5-2 - SetDefaultGroupSnapshotClass returns nil for pre-provisioned snapshot",
            initial_group_snapshots: preprovisioned.clone(),
            expected_group_snapshots: preprovisioned,
            initial_group_contents: preprovisioned_content.clone(),
            expected_group_contents: preprovisioned_content,
            expect_success: true,
            test: GroupTestFn::SetDefaultGroupSnapshotClass,
            ..Default::default()
        },
    ];
    run_group_sync_tests(cases, &single_default).await;
}

#[tokio::test]
async fn set_default_group_snapshot_class_multiple_defaults() {
    let multiple_defaults = vec![
        new_group_class("default-class", true, "Delete"),
        new_group_class("silver", true, "Retain"),
    ];
    let cases = vec![GroupCase {
        name: "5-3 - SetDefaultGroupSnapshotClass fails when multiple default classes exist",
        initial_group_snapshots: unbound_dynamic("5-3", ""),
        expected_group_snapshots: unbound_dynamic("5-3", ""),
        initial_claims: claims("5-3", "default-class"),
        initial_volumes: volumes("5-3", "default-class"),
        test: GroupTestFn::SetDefaultGroupSnapshotClassMultipleDefaults,
        ..Default::default()
    }];
    run_group_sync_tests(cases, &multiple_defaults).await;
}

const SIZE_BYTES: i64 = 1_073_741_824;

fn info(volume: &str, snapshot: &str) -> VolumeSnapshotInfo {
    VolumeSnapshotInfo {
        volume_handle: volume.into(),
        snapshot_handle: snapshot.into(),
        ready_to_use: Some(true),
        restore_size: Some(SIZE_BYTES),
        creation_time: None,
    }
}

/// The group content of `group-snap-<n>` with the sidecar's status: the group handle (if
/// any) and `infos`.
fn content_with_infos(
    n: &str,
    volume_handles: &[&str],
    group_handle: Option<&str>,
    infos: Vec<VolumeSnapshotInfo>,
) -> Vec<VolumeGroupSnapshotContent> {
    let mut c = new_group_snapshot_content(
        &format!("groupsnapcontent-group-snapuid{n}"),
        &format!("group-snapuid{n}"),
        &format!("group-snap-{n}"),
        "",
        "gold",
        volume_handles,
        "",
        "Delete",
        None,
        false,
        false,
    );
    c.status = Some(VolumeGroupSnapshotContentStatus {
        ready_to_use: Some(true),
        volume_group_snapshot_handle: group_handle.map(String::from),
        volume_snapshot_info_list: infos,
        ..Default::default()
    });
    vec![c]
}

fn readiness_case(
    name: &'static str,
    n: &str,
    contents: Vec<VolumeGroupSnapshotContent>,
    expected: bool,
) -> GroupCase {
    let bound = format!("groupsnapcontent-group-snapuid{n}");
    GroupCase {
        name,
        initial_group_snapshots: group(n, "gold", &bound, false, None),
        expected_group_snapshots: group(n, "gold", &bound, false, None),
        initial_group_contents: contents.clone(),
        expected_group_contents: contents,
        initial_claims: claims(n, "gold"),
        initial_volumes: volumes(n, "gold"),
        expect_success: true,
        test: GroupTestFn::ContentReadyForSnapshotCreation(expected),
        ..Default::default()
    }
}

#[tokio::test]
async fn individual_snapshot_creation() {
    let no_status = vec![new_group_snapshot_content(
        "groupsnapcontent-group-snapuid8-2",
        "group-snapuid8-2",
        "group-snap-8-2",
        "",
        "gold",
        &["pv-handle8-2"],
        "",
        "Delete",
        None,
        false,
        false,
    )];
    let cases = vec![
        readiness_case(
            "8-1 - content is ready when status and VolumeSnapshotInfoList are populated",
            "8-1",
            content_with_infos(
                "8-1",
                &["pv-handle8-1", "pv-handle8-2"],
                Some("group-snapshot-handle-8-1"),
                vec![
                    info("pv-handle8-1", "snapshot-handle-8-1"),
                    info("pv-handle8-2", "snapshot-handle-8-2"),
                ],
            ),
            true,
        ),
        readiness_case(
            "8-2 - content is not ready when status is nil",
            "8-2",
            no_status,
            false,
        ),
        readiness_case(
            "8-3 - content is not ready when VolumeSnapshotInfoList is empty",
            "8-3",
            content_with_infos(
                "8-3",
                &["pv-handle8-3"],
                Some("group-snapshot-handle-8-3"),
                Vec::new(),
            ),
            false,
        ),
        readiness_case(
            "8-4 - content is not ready when VolumeGroupSnapshotHandle is nil",
            "8-4",
            content_with_infos(
                "8-4",
                &["pv-handle8-4"],
                None,
                vec![info("pv-handle8-4", "snapshot-handle-8-4")],
            ),
            false,
        ),
    ];
    run_group_sync_tests(cases, &group_snapshot_classes()).await;
}

#[tokio::test]
async fn sync_group_snapshot_creates_individual_snapshots() {
    let contents = content_with_infos(
        "9-1",
        &["pv-handle9-1", "pv-handle9-2"],
        Some("group-snapshot-handle-9-1"),
        vec![
            info("pv-handle9-1", "snapshot-handle-9-1"),
            info("pv-handle9-2", "snapshot-handle-9-2"),
        ],
    );
    let bound = "groupsnapcontent-group-snapuid9-1";
    let cases = vec![GroupCase {
        name: "9-1 - syncGroupSnapshot creates individual snapshots when content is ready",
        initial_group_snapshots: group("9-1", "gold", bound, false, None),
        expected_group_snapshots: group("9-1", "gold", bound, true, None),
        initial_group_contents: contents.clone(),
        expected_group_contents: contents,
        initial_claims: claims("9-1", "gold"),
        initial_volumes: volumes("9-1", "gold"),
        expect_success: true,
        test: GroupTestFn::SyncGroupSnapshotCreatesMembers,
        ..Default::default()
    }];
    run_group_sync_tests(cases, &group_snapshot_classes()).await;
}
