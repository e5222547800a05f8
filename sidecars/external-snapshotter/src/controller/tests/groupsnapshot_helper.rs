//! `groupsnapshot_helper_test.go`, ported (14 tests; upstream's handler-level
//! `fakeGroupSnapshotHandler` is our real handler over `FakeGroupSnapshotter`, which answers
//! the same): `TestDeleteCSIGroupSnapshotOperation` (its nil-content half has no counterpart:
//! a Rust reference is never nil), `TestCreateGroupSnapshotErrorPath`,
//! `TestCheckandUpdateGroupSnapshotContentStatusErrorPath`,
//! `TestDeleteCSIGroupSnapshotOperationSuccess`, `TestDeleteCSIGroupSnapshotOperationResyncError`,
//! `TestUpdateGroupSnapshotContentStatusExistingStatus`, `TestUpdateGroupSnapshotContentStatusNoUpdate`,
//! `TestCheckandUpdateGroupSnapshotContentStatusOperationSuccess`,
//! `TestCheckandUpdateGroupSnapshotContentStatusSuccess`,
//! `TestCheckandUpdateGroupSnapshotContentStatusNotReadyRequeues`,
//! `TestCreateGroupSnapshotWrapperSuccess`, `TestCreateGroupSnapshotWrapperFinalError`,
//! `TestCreateGroupSnapshotSuccess`, `TestCreateGroupSnapshotNotReadyRequeues`.

use csi_controller::ApiError;
use csi_crd_types::VolumeGroupSnapshotContent;
use csi_crd_types::group_snapshot::v1::{VolumeGroupSnapshotContentStatus, VolumeSnapshotInfo};
use csi_proto::csi::v1::Snapshot;
use csi_test_support::fake_api::Verb;

use super::csi_handler::{FakeGroupSnapshotter, now_nanos};
use super::framework::*;
use super::groupsnapshot_fixture::*;
use crate::group_snapshotter::{CreatedGroupSnapshot, GroupSnapshotStatus};
use crate::snapshotter::CsiError;
use csi_snapshot_utils::ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED;

fn dynamic(name: &str) -> VolumeGroupSnapshotContent {
    let mut content = new_group_content(
        name,
        "uid",
        "snap",
        NS,
        "",
        "class-a",
        &["vol-1"],
        DELETE,
        None,
        false,
        None,
    );
    content.status = None;
    content
}

fn preprovisioned(name: &str) -> VolumeGroupSnapshotContent {
    new_group_content_with_handles(
        name,
        "uid",
        "snap",
        NS,
        "group-h",
        &["snap-1"],
        "",
        DELETE,
        None,
        false,
        None,
    )
}

fn class_without_parameters() -> csi_crd_types::VolumeGroupSnapshotClass {
    let mut class = new_group_class("class-a", DRIVER);
    class.parameters = None;
    class
}

fn being_deleted(name: &str) -> VolumeGroupSnapshotContent {
    let mut content = new_group_content(
        name,
        "uid",
        "snap",
        NS,
        "group-h",
        "class-a",
        &["vol-1"],
        DELETE,
        None,
        true,
        now(),
    );
    content.status = Some(VolumeGroupSnapshotContentStatus {
        volume_group_snapshot_handle: Some("group-handle-1".into()),
        volume_snapshot_info_list: vec![VolumeSnapshotInfo {
            volume_handle: "vol-1".into(),
            snapshot_handle: "snap-1".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    content
}

#[tokio::test]
async fn test_delete_csi_group_snapshot_operation() {
    let f = fixture(Default::default(), &[], &[]);
    let content = VolumeGroupSnapshotContent {
        status: Some(VolumeGroupSnapshotContentStatus {
            volume_snapshot_info_list: vec![VolumeSnapshotInfo {
                volume_handle: "test-pv".into(),
                snapshot_handle: "test-vsc".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = f
        .ctrl
        .delete_csi_group_snapshot(&content)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("groupsnapshotHandle is missing"),
        "{err}"
    );
    assert_eq!(f.events.reasons(), ["GroupSnapshotDeleteError"]);
}

#[tokio::test]
async fn test_create_group_snapshot_error_path() {
    let mut content = new_group_content(
        "create-err",
        "uid",
        "snap",
        NS,
        "",
        "class-a",
        &["vol-1"],
        DELETE,
        None,
        false,
        None,
    );
    content.status = None;
    let f = fixture(
        FakeGroupSnapshotter {
            create_result: Some(Err(CsiError::Other("csi create failed".into()))),
            ..Default::default()
        },
        &[&content],
        &[new_group_class("class-a", DRIVER)],
    );
    assert!(f.ctrl.create_group_snapshot(&content).await.is_err());
    let updated = f.server("create-err");
    let error = updated.status.and_then(|s| s.error).and_then(|e| e.message);
    assert_eq!(
        error.as_deref(),
        Some(
            "Failed to create group snapshot: failed to take group snapshot of the volumes [vol-1]: \"csi create failed\""
        )
    );
    assert_eq!(f.events.reasons(), ["GroupSnapshotCreationFailed"]);
    // Not a final error (no gRPC code): the being-created annotation stays.
    assert!(has_annotation(
        &f.server("create-err"),
        ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED
    ));
}

#[tokio::test]
async fn test_checkand_update_group_snapshot_content_status_error_path() {
    let content = new_group_content_with_handles(
        "check-err",
        "uid",
        "snap",
        NS,
        "group-h",
        &["snap-1"],
        "class-a",
        DELETE,
        None,
        false,
        None,
    );
    let f = fixture(
        FakeGroupSnapshotter {
            status_result: Some(Err(CsiError::Other("get status failed".into()))),
            ..Default::default()
        },
        &[&content],
        &[new_group_class("class-a", DRIVER)],
    );
    assert!(
        f.ctrl
            .check_and_update_group_status(&content)
            .await
            .is_err()
    );
    let error = f
        .server("check-err")
        .status
        .and_then(|s| s.error)
        .and_then(|e| e.message);
    assert_eq!(
        error.as_deref(),
        Some(
            "Failed to check and update group snapshot content: failed to list group snapshot for group snapshot content check-err: \"get status failed\""
        )
    );
    assert_eq!(
        f.events.reasons(),
        ["GroupSnapshotContentCheckandUpdateFailed"]
    );
}

#[tokio::test]
async fn test_delete_csi_group_snapshot_operation_success() {
    let content = being_deleted("delete-ok");
    let f = fixture(
        Default::default(),
        &[&content],
        &[new_group_class("class-a", DRIVER)],
    );
    f.ctrl.store_group_content(&content).unwrap();
    f.ctrl.delete_csi_group_snapshot(&content).await.unwrap();
    let updated = f.server("delete-ok");
    assert!(
        updated
            .status
            .and_then(|s| s.volume_group_snapshot_handle)
            .is_none()
    );
    // The re-sync that follows took the finalizer off.
    assert_eq!(updated.metadata.finalizers, None);
}

#[tokio::test]
async fn test_delete_csi_group_snapshot_operation_resync_error() {
    let content = being_deleted("delete-resync-err");
    let f = fixture(
        Default::default(),
        &[&content],
        &[new_group_class("class-a", DRIVER)],
    );
    f.ctrl.store_group_content(&content).unwrap();
    // UpdateStatus (a status patch in the fake) succeeds; the finalizer patch fails.
    f.cluster
        .api
        .prepend_reactor(Verb::Patch, "volumegroupsnapshotcontents", |action| {
            (action.subresource.is_empty()).then(|| ApiError::other("patch failed"))
        });
    assert!(f.ctrl.delete_csi_group_snapshot(&content).await.is_err());
    let updated = f.server("delete-resync-err");
    assert!(
        updated
            .status
            .and_then(|s| s.volume_group_snapshot_handle)
            .is_none()
    );
}

#[tokio::test]
async fn test_update_group_snapshot_content_status_existing_status() {
    let mut content = dynamic("update-existing");
    content.status = Some(VolumeGroupSnapshotContentStatus {
        volume_group_snapshot_handle: Some("old-handle".into()),
        ready_to_use: Some(false),
        creation_time: now(),
        ..Default::default()
    });
    let f = fixture(Default::default(), &[&content], &[]);
    let snapshots = [Snapshot {
        snapshot_id: "snap-1".into(),
        source_volume_id: "vol-1".into(),
        size_bytes: 1024,
        ready_to_use: true,
        ..Default::default()
    }];
    let got = f
        .ctrl
        .update_group_content_status(
            &content,
            "new-handle",
            true,
            crate::controller::now_nanos(),
            &snapshots,
        )
        .await
        .unwrap();
    let status = got.status.unwrap();
    assert_eq!(status.volume_snapshot_info_list.len(), 1);
    assert_eq!(status.volume_snapshot_info_list[0].restore_size, Some(1024));
    assert_eq!(
        status.volume_group_snapshot_handle.as_deref(),
        Some("old-handle")
    );
}

#[tokio::test]
async fn test_update_group_snapshot_content_status_no_update() {
    let mut content = dynamic("no-update");
    content.status = Some(VolumeGroupSnapshotContentStatus {
        volume_group_snapshot_handle: Some("same-handle".into()),
        ready_to_use: Some(true),
        creation_time: now(),
        ..Default::default()
    });
    let f = fixture(Default::default(), &[&content], &[]);
    let got = f
        .ctrl
        .update_group_content_status(
            &content,
            "same-handle",
            true,
            crate::controller::now_nanos(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        got.status
            .and_then(|s| s.volume_group_snapshot_handle)
            .as_deref(),
        Some("same-handle")
    );
    assert!(
        f.cluster
            .api
            .actions()
            .iter()
            .all(|a| a.subresource != "status"),
        "no status write when nothing changed: {:?}",
        f.cluster.api.actions()
    );
}

#[tokio::test]
async fn test_checkand_update_group_snapshot_content_status_operation_success() {
    let content = preprovisioned("check-ok");
    let f = fixture(Default::default(), &[&content], &[]);
    let got = f
        .ctrl
        .check_and_update_group_operation(content)
        .await
        .unwrap();
    assert_eq!(
        got.status
            .and_then(|s| s.volume_group_snapshot_handle)
            .as_deref(),
        Some("group-h")
    );
}

#[tokio::test]
async fn test_checkand_update_group_snapshot_content_status_success() {
    let content = preprovisioned("check-status-ok");
    let f = fixture(Default::default(), &[&content], &[]);
    assert!(
        !f.ctrl
            .check_and_update_group_status(&content)
            .await
            .unwrap()
    );
    assert!(
        f.ctrl.forget_group_content("check-status-ok"),
        "stored after the update"
    );
}

#[tokio::test]
async fn test_checkand_update_group_snapshot_content_status_not_ready_requeues() {
    let content = preprovisioned("check-status-not-ready");
    let f = fixture(
        FakeGroupSnapshotter {
            status_result: Some(Ok(GroupSnapshotStatus {
                ready_to_use: false,
                creation_time: now_nanos(),
            })),
            ..Default::default()
        },
        &[&content],
        &[],
    );
    assert!(
        f.ctrl
            .check_and_update_group_status(&content)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn test_create_group_snapshot_wrapper_success() {
    let content = dynamic("wrapper-ok");
    let f = fixture(
        Default::default(),
        &[&content],
        &[class_without_parameters()],
    );
    let got = f.ctrl.create_group_snapshot_wrapper(content).await.unwrap();
    assert_eq!(
        got.status
            .as_ref()
            .and_then(|s| s.volume_group_snapshot_handle.as_deref()),
        Some("group-snap-id")
    );
    assert!(!has_annotation(
        &got,
        ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED
    ));
}

#[tokio::test]
async fn test_create_group_snapshot_wrapper_final_error() {
    let content = dynamic("wrapper-final-err");
    let f = fixture(
        FakeGroupSnapshotter {
            create_result: Some(Err(CsiError::Status(tonic::Status::invalid_argument(
                "invalid request",
            )))),
            ..Default::default()
        },
        &[&content],
        &[class_without_parameters()],
    );
    assert!(f.ctrl.create_group_snapshot_wrapper(content).await.is_err());
    assert!(!has_annotation(
        &f.server("wrapper-final-err"),
        ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED
    ));
}

#[tokio::test]
async fn test_create_group_snapshot_success() {
    let content = dynamic("create-ok");
    let f = fixture(
        Default::default(),
        &[&content],
        &[class_without_parameters()],
    );
    assert!(!f.ctrl.create_group_snapshot(&content).await.unwrap());
}

#[tokio::test]
async fn test_create_group_snapshot_not_ready_requeues() {
    let content = dynamic("create-not-ready");
    let f = fixture(
        FakeGroupSnapshotter {
            create_result: Some(Ok(CreatedGroupSnapshot {
                driver_name: "driver".into(),
                group_snapshot_id: "group-id".into(),
                snapshots: Vec::new(),
                creation_time: now_nanos(),
                ready_to_use: false,
            })),
            ..Default::default()
        },
        &[&content],
        &[class_without_parameters()],
    );
    assert!(f.ctrl.create_group_snapshot(&content).await.unwrap());
}
