//! `pkg/group_snapshotter/group_snapshotter_test.go` (10 tests), against the in-process mock
//! CSI driver in place of upstream's fake gRPC server; the requests the driver received are
//! checked too.

use std::collections::HashMap;
use std::time::Duration;

use csi_connection::{ConnectOptions, Connection};
use csi_proto::csi::v1::{
    CreateVolumeGroupSnapshotRequest, CreateVolumeGroupSnapshotResponse,
    DeleteVolumeGroupSnapshotRequest, DeleteVolumeGroupSnapshotResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, GetVolumeGroupSnapshotRequest, GetVolumeGroupSnapshotResponse, Snapshot,
    VolumeGroupSnapshot,
};
use csi_test_support::MockCsiDriver;
use tonic::{Code, Status};

use super::{CsiGroupSnapshotter, GroupSnapshotter};
use crate::snapshotter::CsiError;

const TIMEOUT: Duration = Duration::from_secs(10);

/// 2024-01-15T10:00:00Z, upstream's default creation time.
const JAN_2024: i64 = 1_705_312_800;

fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn snapshot(id: &str) -> Snapshot {
    Snapshot {
        snapshot_id: id.into(),
        ..Default::default()
    }
}

/// upstream's `fakeCSIServer` defaults: driver `test-driver`, a ready group `group-snap-123`
/// of two snapshots created 2024-01-15, GetVolumeGroupSnapshot echoing the ID.
async fn setup(driver_name: &str) -> (MockCsiDriver, CsiGroupSnapshotter) {
    let mock = MockCsiDriver::start().await.unwrap();
    mock.set_driver_name(driver_name);
    mock.handle(
        "CreateVolumeGroupSnapshot",
        |_: CreateVolumeGroupSnapshotRequest| {
            Ok(CreateVolumeGroupSnapshotResponse {
                group_snapshot: Some(VolumeGroupSnapshot {
                    group_snapshot_id: "group-snap-123".into(),
                    snapshots: vec![snapshot("snap-1"), snapshot("snap-2")],
                    creation_time: ts(JAN_2024),
                    ready_to_use: true,
                }),
            })
        },
    );
    mock.handle(
        "DeleteVolumeGroupSnapshot",
        |_: DeleteVolumeGroupSnapshotRequest| Ok(DeleteVolumeGroupSnapshotResponse {}),
    );
    mock.handle(
        "GetVolumeGroupSnapshot",
        |req: GetVolumeGroupSnapshotRequest| {
            Ok(GetVolumeGroupSnapshotResponse {
                group_snapshot: Some(VolumeGroupSnapshot {
                    group_snapshot_id: req.group_snapshot_id,
                    snapshots: Vec::new(),
                    creation_time: ts(JAN_2024),
                    ready_to_use: true,
                }),
            })
        },
    );
    let conn = Connection::connect(&mock.endpoint(), ConnectOptions::default())
        .await
        .unwrap();
    (mock, CsiGroupSnapshotter::new(conn))
}

fn code(err: &CsiError) -> Option<Code> {
    err.code()
}

fn secrets(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn test_new_group_snapshotter() {
    let (mock, gs) = setup("test-driver").await;
    gs.get_group_snapshot_status("g", vec!["s".into()], HashMap::new(), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(short_methods(&mock), ["GetVolumeGroupSnapshot"]);
}

#[tokio::test]
async fn test_create_group_snapshot_success() {
    let (mock, gs) = setup("my-driver").await;
    let created = gs
        .create_group_snapshot(
            "my-name",
            vec!["vol-1".into(), "vol-2".into()],
            secrets(&[("key", "val")]),
            HashMap::new(),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(created.driver_name, "my-driver");
    assert_eq!(created.group_snapshot_id, "group-snap-123");
    assert_eq!(created.snapshots.len(), 2);
    assert_eq!(created.creation_time, Some(JAN_2024 * 1_000_000_000));
    assert!(created.ready_to_use);
    assert_eq!(
        mock.calls_to("CreateVolumeGroupSnapshot")[0].request::<CreateVolumeGroupSnapshotRequest>(),
        Some(&CreateVolumeGroupSnapshotRequest {
            name: "my-name".into(),
            source_volume_ids: vec!["vol-1".into(), "vol-2".into()],
            secrets: HashMap::new(),
            parameters: secrets(&[("key", "val")]),
        })
    );
}

#[tokio::test]
async fn test_create_group_snapshot_get_driver_name_error() {
    let (mock, gs) = setup("test-driver").await;
    mock.handle("GetPluginInfo", |_: GetPluginInfoRequest| {
        Err::<GetPluginInfoResponse, _>(Status::unknown("identity error"))
    });
    let err = gs
        .create_group_snapshot(
            "name",
            vec!["vol-1".into()],
            HashMap::new(),
            HashMap::new(),
            TIMEOUT,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("identity"), "{err}");
    assert!(mock.calls_to("CreateVolumeGroupSnapshot").is_empty());
}

#[tokio::test]
async fn test_create_group_snapshot_create_rpc_error() {
    let (mock, gs) = setup("test-driver").await;
    mock.handle(
        "CreateVolumeGroupSnapshot",
        |_: CreateVolumeGroupSnapshotRequest| {
            Err::<CreateVolumeGroupSnapshotResponse, _>(Status::internal("create failed"))
        },
    );
    let err = gs
        .create_group_snapshot(
            "name",
            vec!["vol-1".into()],
            HashMap::new(),
            HashMap::new(),
            TIMEOUT,
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(Code::Internal), "{err}");
}

#[tokio::test]
async fn test_create_group_snapshot_custom_response() {
    let (mock, gs) = setup("custom-driver").await;
    mock.handle(
        "CreateVolumeGroupSnapshot",
        |_: CreateVolumeGroupSnapshotRequest| {
            Ok(CreateVolumeGroupSnapshotResponse {
                group_snapshot: Some(VolumeGroupSnapshot {
                    group_snapshot_id: "custom-id".into(),
                    snapshots: vec![snapshot("s1")],
                    // 2025-06-01T12:30:00Z
                    creation_time: ts(1_748_781_000),
                    ready_to_use: false,
                }),
            })
        },
    );
    let created = gs
        .create_group_snapshot(
            "name",
            vec!["v1".into()],
            HashMap::new(),
            HashMap::new(),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(created.driver_name, "custom-driver");
    assert_eq!(created.group_snapshot_id, "custom-id");
    assert_eq!(created.snapshots.len(), 1);
    assert_eq!(created.snapshots[0].snapshot_id, "s1");
    assert_eq!(created.creation_time, Some(1_748_781_000 * 1_000_000_000));
    assert!(!created.ready_to_use);
}

#[tokio::test]
async fn test_delete_group_snapshot_success() {
    let (mock, gs) = setup("test-driver").await;
    gs.delete_group_snapshot(
        "group-id",
        vec!["snap-1".into(), "snap-2".into()],
        secrets(&[("secret", "val")]),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(
        mock.calls_to("DeleteVolumeGroupSnapshot")[0].request::<DeleteVolumeGroupSnapshotRequest>(),
        Some(&DeleteVolumeGroupSnapshotRequest {
            group_snapshot_id: "group-id".into(),
            snapshot_ids: vec!["snap-1".into(), "snap-2".into()],
            secrets: secrets(&[("secret", "val")]),
        })
    );
}

#[tokio::test]
async fn test_delete_group_snapshot_error() {
    let (mock, gs) = setup("test-driver").await;
    mock.handle(
        "DeleteVolumeGroupSnapshot",
        |_: DeleteVolumeGroupSnapshotRequest| {
            Err::<DeleteVolumeGroupSnapshotResponse, _>(Status::not_found("not found"))
        },
    );
    let err = gs
        .delete_group_snapshot("group-id", vec!["snap-1".into()], HashMap::new(), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(Code::NotFound));
}

#[tokio::test]
async fn test_get_group_snapshot_status_success() {
    let (mock, gs) = setup("test-driver").await;
    let status = gs
        .get_group_snapshot_status("group-id", vec!["snap-1".into()], HashMap::new(), TIMEOUT)
        .await
        .unwrap();
    assert!(status.ready_to_use);
    assert_eq!(status.creation_time, Some(JAN_2024 * 1_000_000_000));
    assert_eq!(
        mock.calls_to("GetVolumeGroupSnapshot")[0].request::<GetVolumeGroupSnapshotRequest>(),
        Some(&GetVolumeGroupSnapshotRequest {
            group_snapshot_id: "group-id".into(),
            snapshot_ids: vec!["snap-1".into()],
            secrets: HashMap::new(),
        })
    );
}

#[tokio::test]
async fn test_get_group_snapshot_status_custom_response() {
    let (mock, gs) = setup("test-driver").await;
    mock.handle(
        "GetVolumeGroupSnapshot",
        |_: GetVolumeGroupSnapshotRequest| {
            Ok(GetVolumeGroupSnapshotResponse {
                group_snapshot: Some(VolumeGroupSnapshot {
                    group_snapshot_id: "gid".into(),
                    snapshots: Vec::new(),
                    // 2026-03-02T00:00:00Z
                    creation_time: ts(1_772_409_600),
                    ready_to_use: false,
                }),
            })
        },
    );
    let status = gs
        .get_group_snapshot_status("gid", vec!["s1".into()], HashMap::new(), TIMEOUT)
        .await
        .unwrap();
    assert!(!status.ready_to_use);
    assert_eq!(status.creation_time, Some(1_772_409_600 * 1_000_000_000));
}

#[tokio::test]
async fn test_get_group_snapshot_status_error() {
    let (mock, gs) = setup("test-driver").await;
    mock.handle(
        "GetVolumeGroupSnapshot",
        |_: GetVolumeGroupSnapshotRequest| {
            Err::<GetVolumeGroupSnapshotResponse, _>(Status::not_found("group snapshot not found"))
        },
    );
    let err = gs
        .get_group_snapshot_status("group-id", vec!["snap-1".into()], HashMap::new(), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(Code::NotFound));
}

/// The short names of the methods the driver was called with, in order.
fn short_methods(mock: &MockCsiDriver) -> Vec<String> {
    mock.calls()
        .iter()
        .map(|call| call.short_method().to_string())
        .collect()
}
