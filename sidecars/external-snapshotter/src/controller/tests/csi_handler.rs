//! `csi_handler_test.go`: `TestCreateGroupSnapshot` (5 subtests), `TestDeleteGroupSnapshot`
//! (5), `TestGetGroupSnapshotStatus` (5), with upstream's `fakeGroupSnapshotter`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use csi_crd_types::VolumeGroupSnapshotContent;
use csi_crd_types::group_snapshot::v1::{
    GroupSnapshotHandles, VolumeGroupSnapshotContentSource, VolumeGroupSnapshotContentStatus,
};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::framework::FakeSnapshotter;
use crate::controller::Handler;
use crate::group_snapshotter::{CreatedGroupSnapshot, GroupSnapshotStatus, GroupSnapshotter};
use crate::snapshotter::CsiError;

/// upstream's `fakeGroupSnapshotter`.
#[derive(Debug, Default)]
pub struct FakeGroupSnapshotter {
    pub create_result: Option<Result<CreatedGroupSnapshot, CsiError>>,
    pub delete_err: Option<CsiError>,
    pub status_result: Option<Result<GroupSnapshotStatus, CsiError>>,
}

pub fn now_nanos() -> Option<i64> {
    Some(crate::controller::now_nanos())
}

impl GroupSnapshotter for FakeGroupSnapshotter {
    fn create_group_snapshot<'a>(
        &'a self,
        _name: &'a str,
        _volume_ids: Vec<String>,
        _parameters: HashMap<String, String>,
        _secrets: HashMap<String, String>,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<CreatedGroupSnapshot, CsiError>> {
        Box::pin(async move {
            self.create_result.clone().unwrap_or_else(|| {
                Ok(CreatedGroupSnapshot {
                    driver_name: "driver".into(),
                    group_snapshot_id: "group-snap-id".into(),
                    snapshots: Vec::new(),
                    creation_time: now_nanos(),
                    ready_to_use: true,
                })
            })
        })
    }

    fn delete_group_snapshot<'a>(
        &'a self,
        _id: &'a str,
        _snapshot_ids: Vec<String>,
        _secrets: HashMap<String, String>,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<(), CsiError>> {
        Box::pin(async move { self.delete_err.clone().map_or(Ok(()), Err) })
    }

    fn get_group_snapshot_status<'a>(
        &'a self,
        _id: &'a str,
        _snapshot_ids: Vec<String>,
        _secrets: HashMap<String, String>,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<GroupSnapshotStatus, CsiError>> {
        Box::pin(async move {
            self.status_result.clone().unwrap_or_else(|| {
                Ok(GroupSnapshotStatus {
                    ready_to_use: true,
                    creation_time: now_nanos(),
                })
            })
        })
    }
}

/// upstream's `NewCSIHandler(nil, f, 5s, "snapshot", 8, group_prefix, group_length)`.
fn handler(fake: FakeGroupSnapshotter, group_prefix: &str, group_length: i64) -> Handler {
    Handler {
        snapshotter: Arc::new(FakeSnapshotter::default()),
        group_snapshotter: Some(Arc::new(fake)),
        timeout: Duration::from_secs(5),
        snapshot_name_prefix: "snapshot".into(),
        snapshot_name_uuid_length: 8,
        group_snapshot_name_prefix: group_prefix.into(),
        group_snapshot_name_uuid_length: group_length,
    }
}

/// upstream's `newCSIHandlerWithFakeGroupSnapshotter`.
fn default_handler(fake: FakeGroupSnapshotter) -> Handler {
    handler(fake, "group-snapshot", 8)
}

fn content(name: &str, uid: &str, volume_handles: &[&str]) -> VolumeGroupSnapshotContent {
    let mut content = VolumeGroupSnapshotContent {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    content.spec.volume_group_snapshot_ref = ObjectReference {
        uid: Some(uid.into()),
        ..Default::default()
    };
    content.spec.source.volume_handles = volume_handles.iter().map(|s| s.to_string()).collect();
    content
}

fn with_status_handle(name: &str, handle: &str) -> VolumeGroupSnapshotContent {
    VolumeGroupSnapshotContent {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        status: Some(VolumeGroupSnapshotContentStatus {
            volume_group_snapshot_handle: Some(handle.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn with_spec_handles(name: &str, handle: &str) -> VolumeGroupSnapshotContent {
    let mut content = VolumeGroupSnapshotContent {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    content.spec.source = VolumeGroupSnapshotContentSource {
        volume_handles: Vec::new(),
        group_snapshot_handles: Some(GroupSnapshotHandles {
            volume_group_snapshot_handle: handle.into(),
            volume_snapshot_handles: vec!["snap-1".into()],
        }),
    };
    content
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn test_create_group_snapshot() {
    let h = default_handler(FakeGroupSnapshotter::default());

    // empty VolumeGroupSnapshotRef.UID
    let err = h
        .create_group_snapshot(
            &content("gsc-1", "", &["vol-1"]),
            HashMap::new(),
            HashMap::new(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not bound to a group snapshot"),
        "{err}"
    );

    // empty VolumeHandles
    let err = h
        .create_group_snapshot(
            &content("gsc-2", "uid-123", &[]),
            HashMap::new(),
            HashMap::new(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("PVCs to be snapshotted not found"),
        "{err}"
    );

    // makeGroupSnapshotName error with empty UID
    assert!(
        h.create_group_snapshot(
            &content("gsc-3", "", &["vol-1"]),
            HashMap::new(),
            HashMap::new()
        )
        .await
        .is_err()
    );

    // success
    let created = h
        .create_group_snapshot(
            &content("gsc-4", "12345678-1234", &["vol-1", "vol-2"]),
            crate::controller::tests::framework::params(&[("key", "val")]),
            HashMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(created.driver_name, "driver");
    assert_eq!(created.group_snapshot_id, "group-snap-id");
    assert!(created.creation_time.is_some());
    assert!(created.ready_to_use);

    // makeGroupSnapshotName with UUIDLength -1
    let h = handler(FakeGroupSnapshotter::default(), "grp-snap", -1);
    let created = h
        .create_group_snapshot(
            &content("gsc-5", "my-uid-with-dashes", &["vol-1"]),
            HashMap::new(),
            HashMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(created.group_snapshot_id, "group-snap-id");
    assert_eq!(
        h.make_group_snapshot_name("my-uid-with-dashes").unwrap(),
        "grp-snap-my-uid-with-dashes"
    );
    assert_eq!(
        default_handler(FakeGroupSnapshotter::default())
            .make_group_snapshot_name("12345678-1234")
            .unwrap(),
        "group-snapshot-12345678"
    );
}

#[tokio::test]
async fn test_delete_group_snapshot() {
    let h = default_handler(FakeGroupSnapshotter::default());

    // empty snapshotIDs
    let err = h
        .delete_group_snapshot(
            &with_status_handle("gsc-del-1", "handle-1"),
            vec![],
            HashMap::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("No snapshots found"), "{err}");

    // handle from Status
    h.delete_group_snapshot(
        &with_status_handle("gsc-del-2", "handle-from-status"),
        ids(&["snap-1"]),
        HashMap::new(),
    )
    .await
    .unwrap();

    // handle from GroupSnapshotHandles
    h.delete_group_snapshot(
        &with_spec_handles("gsc-del-3", "handle-from-spec"),
        ids(&["snap-1"]),
        HashMap::new(),
    )
    .await
    .unwrap();

    // missing handle
    let err = h
        .delete_group_snapshot(
            &content("gsc-del-4", "", &[]),
            ids(&["snap-1"]),
            HashMap::new(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("groupsnapshotHandle is missing"),
        "{err}"
    );

    // groupSnapshotter returns error
    let h = default_handler(FakeGroupSnapshotter {
        delete_err: Some(CsiError::Other("driver error".into())),
        ..Default::default()
    });
    let err = h
        .delete_group_snapshot(
            &with_status_handle("gsc-del-5", "h"),
            ids(&["s1"]),
            HashMap::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("driver error"), "{err}");
}

#[tokio::test]
async fn test_get_group_snapshot_status() {
    let h = default_handler(FakeGroupSnapshotter::default());

    // empty snapshotIDs
    let err = h
        .get_group_snapshot_status(
            &with_status_handle("gsc-status-1", "h"),
            vec![],
            HashMap::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("No snapshots found"), "{err}");

    // handle from Status
    let status = h
        .get_group_snapshot_status(
            &with_status_handle("gsc-status-2", "handle-status"),
            ids(&["snap-1"]),
            HashMap::new(),
        )
        .await
        .unwrap();
    assert!(status.ready_to_use && status.creation_time.is_some());

    // handle from GroupSnapshotHandles
    let status = h
        .get_group_snapshot_status(
            &with_spec_handles("gsc-status-3", "handle-spec"),
            ids(&["snap-1"]),
            HashMap::new(),
        )
        .await
        .unwrap();
    assert!(status.ready_to_use);

    // missing handle
    let err = h
        .get_group_snapshot_status(
            &content("gsc-status-4", "", &[]),
            ids(&["snap-1"]),
            HashMap::new(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("groupSnapshotHandle is missing"),
        "{err}"
    );

    // groupSnapshotter returns error
    let h = default_handler(FakeGroupSnapshotter {
        status_result: Some(Err(CsiError::Other("driver list error".into()))),
        ..Default::default()
    });
    let err = h
        .get_group_snapshot_status(
            &with_status_handle("gsc-status-5", "h"),
            ids(&["s1"]),
            HashMap::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("driver list error"), "{err}");
}
