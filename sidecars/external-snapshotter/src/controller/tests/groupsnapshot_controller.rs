//! `groupsnapshot_controller_test.go`, ported: `TestShouldDeleteGroupSnapshotContent` (5),
//! `TestRemoveGroupSnapshotContentFinalizer` (2), `TestGetCredentialsFromAnnotationForGroupSnapshot`
//! (4), `TestStoreGroupSnapshotContentUpdate`, `TestDeleteGroupSnapshotContentInCacheStore`,
//! `TestGetGroupSnapshotClass`, `TestGetCSIGroupSnapshotInput` (4), `TestClearGroupSnapshotContentStatus`,
//! `TestUpdateGroupSnapshotContentStatus`, `TestUpdateGroupSnapshotContentErrorStatusWithEvent`,
//! `TestSetAnnVolumeGroupSnapshotBeingCreated`, `TestRemoveAnnVolumeGroupSnapshotBeingCreated`,
//! `TestSyncGroupSnapshotContent` (2), `TestUpdateGroupSnapshotContentInInformerCache`,
//! `TestIsDriverMatchGroupSnapshotContent` (6), `TestSyncGroupSnapshotContentByKeyNotFoundRemovesFromCache`,
//! `TestGroupSnapshotContentWorker` (the success, error and not-ready paths).
//!
//! Not ported, with the reason: `TestGetSnapshotNameForVolumeGroupSnapshotContent` and
//! `TestGetSnapshotContentNameForVolumeGroupSnapshotContent` test two exported name helpers
//! the sidecar never calls (the snapshot-controller names member objects); the `enqueue*`
//! tests and the invalid-key / lister-error tests exercise Go's `interface{}` type switches,
//! `DeletedFinalStateUnknown` and `SplitMetaNamespaceKey`, which have no counterpart here
//! (our caches deliver typed changes and keys are names); `TestGroupSnapshotControllerCache`
//! is `TestControllerCache` again (see `snapshot_controller`); the worker's quit path is the
//! work queue's own (`csi-workqueue`).

use std::collections::BTreeMap;

use csi_crd_types::VolumeGroupSnapshotContent;
use csi_crd_types::group_snapshot::v1::VolumeGroupSnapshotContentStatus;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::csi_handler::FakeGroupSnapshotter;
use super::framework::*;
use crate::controller::Listers;
use csi_snapshot_utils::{
    ANN_DELETION_GROUP_SECRET_REF_NAME, ANN_DELETION_GROUP_SECRET_REF_NAMESPACE,
    ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED, ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
};

use super::groupsnapshot_fixture::*;

#[test]
fn test_should_delete_group_snapshot_content() {
    let f = fixture(Default::default(), &[], &[]);
    let mut being_created = new_group_content(
        "group-content-being-created",
        "group-snap-uid-1",
        "group-snap-1",
        NS,
        "",
        "group-class-1",
        &["vol-handle-1", "vol-handle-2"],
        DELETE,
        None,
        false,
        now(),
    );
    set_annotation(
        &mut being_created,
        ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED,
        "yes",
    );
    let mut being_deleted = new_group_content(
        "group-content-being-deleted",
        "group-snap-uid-1",
        "group-snap-1",
        NS,
        "group-handle-1",
        "group-class-1",
        &["vol-handle-1", "vol-handle-2"],
        DELETE,
        None,
        false,
        now(),
    );
    set_annotation(
        &mut being_deleted,
        ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
        "yes",
    );
    let mut default = VolumeGroupSnapshotContent {
        metadata: ObjectMeta {
            name: Some("group-content-default".into()),
            deletion_timestamp: now(),
            ..Default::default()
        },
        ..Default::default()
    };
    default.spec.volume_group_snapshot_ref.uid = Some("some-uid".into());
    default.spec.source.volume_handles = vec!["vol-1".into()];
    let cases = [
        (
            "DeletionTimestamp is nil",
            false,
            new_group_content(
                "group-content-1",
                "group-snap-uid-1",
                "group-snap-1",
                NS,
                "group-handle-1",
                "group-class-1",
                &["vol-handle-1", "vol-handle-2"],
                DELETE,
                None,
                false,
                None,
            ),
        ),
        (
            "Content is not bound (pre-provisioned)",
            true,
            new_group_content_with_handles(
                "group-content-not-bound",
                "",
                "",
                "",
                "group-handle-1",
                &["snap-handle-1", "snap-handle-2"],
                "group-class-1",
                DELETE,
                None,
                false,
                now(),
            ),
        ),
        (
            "AnnVolumeGroupSnapshotBeingCreated annotation is set",
            false,
            being_created,
        ),
        (
            "AnnVolumeGroupSnapshotBeingDeleted annotation is set",
            true,
            being_deleted,
        ),
        ("If no other cases match, should not delete", false, default),
    ];
    for (name, expected, content) in cases {
        assert_eq!(f.ctrl.should_delete_group(&content), expected, "{name}");
    }
}

#[tokio::test]
async fn test_remove_group_snapshot_content_finalizer() {
    // Remove existing finalizer
    let content = new_group_content(
        "group-content-with-finalizer",
        "group-snap-uid-1",
        "group-snap-1",
        NS,
        "group-handle-1",
        "group-class-1",
        &["vol-handle-1", "vol-handle-2"],
        DELETE,
        None,
        true,
        None,
    );
    let f = fixture(Default::default(), &[&content], &[]);
    f.ctrl.remove_group_finalizer(&content).await.unwrap();
    assert_eq!(
        f.server("group-content-with-finalizer").metadata.finalizers,
        None
    );

    // No finalizer to remove: nothing is sent.
    let content = new_group_content(
        "group-content-no-finalizer",
        "group-snap-uid-1",
        "group-snap-1",
        NS,
        "group-handle-1",
        "group-class-1",
        &["vol-handle-1", "vol-handle-2"],
        DELETE,
        None,
        false,
        None,
    );
    let f = fixture(Default::default(), &[], &[]);
    f.ctrl.remove_group_finalizer(&content).await.unwrap();
    assert_eq!(f.cluster.api.action_count(), 0);
}

#[tokio::test]
async fn test_get_credentials_from_annotation_for_group_snapshot() {
    let base = |name: &str| {
        new_group_content(
            name,
            "group-snap-uid-1",
            "group-snap-1",
            NS,
            "group-handle-1",
            "group-class-1",
            &["vol-handle-1"],
            DELETE,
            None,
            false,
            None,
        )
    };
    let f = fixture(Default::default(), &[], &[]);
    f.cluster.api.add_to_server(&Secret {
        metadata: ObjectMeta {
            name: Some("my-secret".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "key1".into(),
            ByteString(b"val1".to_vec()),
        )])),
        ..Default::default()
    });

    // No annotation - should succeed with nil credentials
    let creds = f
        .ctrl
        .group_credentials_from_annotation(&base("group-content-no-secret"))
        .await
        .unwrap();
    assert!(creds.is_empty());

    // Empty secret name annotation - should fail
    let mut content = base("group-content-empty-secret-name");
    set_annotation(&mut content, ANN_DELETION_GROUP_SECRET_REF_NAME, "");
    set_annotation(
        &mut content,
        ANN_DELETION_GROUP_SECRET_REF_NAMESPACE,
        "default",
    );
    let err = f
        .ctrl
        .group_credentials_from_annotation(&content)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        "cannot retrieve secrets for group snapshot content \"group-content-empty-secret-name\", err: secret name or namespace not specified"
    );

    // Empty secret namespace annotation - should fail
    let mut content = base("group-content-empty-secret-namespace");
    set_annotation(
        &mut content,
        ANN_DELETION_GROUP_SECRET_REF_NAME,
        "secret-name",
    );
    set_annotation(&mut content, ANN_DELETION_GROUP_SECRET_REF_NAMESPACE, "");
    assert!(
        f.ctrl
            .group_credentials_from_annotation(&content)
            .await
            .is_err()
    );

    // Valid secret annotations - should succeed with credentials
    let mut content = base("group-content-with-secret");
    set_annotation(
        &mut content,
        ANN_DELETION_GROUP_SECRET_REF_NAME,
        "my-secret",
    );
    set_annotation(&mut content, ANN_DELETION_GROUP_SECRET_REF_NAMESPACE, NS);
    let creds = f
        .ctrl
        .group_credentials_from_annotation(&content)
        .await
        .unwrap();
    assert_eq!(creds.get("key1").map(String::as_str), Some("val1"));
}

#[test]
fn test_store_and_delete_group_snapshot_content_in_cache_store() {
    let f = fixture(Default::default(), &[], &[]);
    let content = new_group_content(
        "group-content-store-test",
        "group-snap-uid-1",
        "group-snap-1",
        NS,
        "group-handle-1",
        "group-class-1",
        &["vol-handle-1"],
        DELETE,
        None,
        false,
        None,
    );
    // TestStoreGroupSnapshotContentUpdate
    assert!(f.ctrl.store_group_content(&content).unwrap());
    assert!(f.ctrl.store_group_content(&content).unwrap());
    // TestDeleteGroupSnapshotContentInCacheStore
    assert!(f.ctrl.forget_group_content("group-content-store-test"));
    assert!(!f.ctrl.forget_group_content("group-content-store-test"));
}

#[tokio::test]
async fn test_get_csi_group_snapshot_input() {
    let f = fixture(
        Default::default(),
        &[],
        &[new_group_class("class-a", DRIVER)],
    );
    // TestGetGroupSnapshotClass
    assert!(f.cluster.group_class("class-a").is_some());
    assert!(f.cluster.group_class("nonexistent").is_none());

    // with class name and no credentials
    let (class, creds) = f
        .ctrl
        .csi_group_snapshot_input(&plain("with-class", "class-a"))
        .await
        .unwrap();
    assert!(class.is_some());
    assert!(creds.is_empty());
    // dynamic without class returns error
    let err = f
        .ctrl
        .csi_group_snapshot_input(&plain("no-class", ""))
        .await
        .unwrap_err();
    assert!(err.contains("without a group snapshot class"), "{err}");
    // pre-provisioned without class succeeds with nil class
    let preprov = new_group_content_with_handles(
        "preprov",
        "uid",
        "snap",
        NS,
        "group-h",
        &["s1"],
        "",
        DELETE,
        None,
        false,
        None,
    );
    let (class, _) = f.ctrl.csi_group_snapshot_input(&preprov).await.unwrap();
    assert!(class.is_none());
    // with class name but class not found
    let err = f
        .ctrl
        .csi_group_snapshot_input(&plain("missing-class", "missing"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        "volumegroupsnapshotclass.groupsnapshot.storage.k8s.io \"missing\" not found"
    );
}

#[tokio::test]
async fn test_clear_group_snapshot_content_status() {
    let mut content = new_group_content(
        "clear-status",
        "uid",
        "snap",
        NS,
        "group-h",
        "class-a",
        &["vol-1"],
        DELETE,
        None,
        false,
        None,
    );
    content.status = Some(VolumeGroupSnapshotContentStatus {
        volume_group_snapshot_handle: Some("group-handle-123".into()),
        ready_to_use: Some(true),
        creation_time: now(),
        ..Default::default()
    });
    let f = fixture(Default::default(), &[&content], &[]);
    let got = f
        .ctrl
        .clear_group_content_status("clear-status")
        .await
        .unwrap();
    let status = got.status.unwrap_or_default();
    assert!(
        status.volume_group_snapshot_handle.is_none()
            && status.ready_to_use.is_none()
            && status.creation_time.is_none()
    );
}

#[tokio::test]
async fn test_update_group_snapshot_content_status() {
    let mut content = plain("update-status", "class-a");
    content.status = None;
    let f = fixture(Default::default(), &[&content], &[]);
    let got = f
        .ctrl
        .update_group_content_status(
            &content,
            "group-handle-1",
            true,
            crate::controller::now_nanos(),
            &[],
        )
        .await
        .unwrap();
    let status = got.status.expect("status");
    assert_eq!(
        status.volume_group_snapshot_handle.as_deref(),
        Some("group-handle-1")
    );
    assert_eq!(status.ready_to_use, Some(true));
}

#[tokio::test]
async fn test_update_group_snapshot_content_error_status_with_event() {
    let mut content = plain("error-status", "class-a");
    content.status = None;
    let f = fixture(Default::default(), &[&content], &[]);
    f.ctrl
        .update_group_error_status_with_event(
            &content,
            csi_kube::EventType::Warning,
            "TestReason",
            "test error message",
        )
        .await
        .unwrap();
    let status = f.server("error-status").status.expect("status");
    assert_eq!(
        status.error.and_then(|e| e.message).as_deref(),
        Some("test error message")
    );
    assert_eq!(status.ready_to_use, Some(false));
    assert_eq!(f.events.lines(), ["Warning TestReason test error message"]);
}

#[tokio::test]
async fn test_set_ann_volume_group_snapshot_being_created() {
    let mut content = plain("set-ann", "class-a");
    set_annotation(&mut content, ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED, "yes");
    let f = fixture(Default::default(), &[], &[]);
    // Already set: the same content, nothing sent.
    let got = f
        .ctrl
        .set_ann_group_being_created(content.clone())
        .await
        .unwrap();
    assert_eq!(got, content);
    assert_eq!(f.cluster.api.action_count(), 0);

    let content = plain("set-ann", "class-a");
    let f = fixture(Default::default(), &[&content], &[]);
    let got = f.ctrl.set_ann_group_being_created(content).await.unwrap();
    assert!(has_annotation(
        &got,
        ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED
    ));
}

#[tokio::test]
async fn test_remove_ann_volume_group_snapshot_being_created() {
    let without = plain("remove-ann-no", "class-a");
    let f = fixture(Default::default(), &[&without], &[]);
    let got = f
        .ctrl
        .remove_ann_group_being_created(without.clone())
        .await
        .unwrap();
    assert_eq!(got, without);

    let mut with = plain("remove-ann", "class-a");
    set_annotation(&mut with, ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED, "yes");
    let f = fixture(Default::default(), &[&with], &[]);
    let got = f.ctrl.remove_ann_group_being_created(with).await.unwrap();
    assert!(!has_annotation(
        &got,
        ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED
    ));
}

#[tokio::test]
async fn test_sync_group_snapshot_content() {
    // shouldDelete with Retain policy removes finalizer
    let content = deleting("retain-finalizer", RETAIN, "group-h", true);
    let f = fixture(Default::default(), &[&content], &[]);
    assert!(!f.ctrl.sync_group_content(&content).await.unwrap());
    assert_eq!(f.server("retain-finalizer").metadata.finalizers, None);

    // ReadyToUse true calls removeAnnVolumeGroupSnapshotBeingCreated
    let mut content = new_group_content(
        "ready-remove-ann",
        "uid",
        "snap",
        NS,
        "group-h",
        "class-a",
        &["vol-1"],
        DELETE,
        None,
        false,
        None,
    );
    content.status = Some(VolumeGroupSnapshotContentStatus {
        ready_to_use: Some(true),
        ..Default::default()
    });
    set_annotation(&mut content, ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED, "yes");
    let f = fixture(Default::default(), &[&content], &[]);
    assert!(!f.ctrl.sync_group_content(&content).await.unwrap());
    assert!(!has_annotation(
        &f.server("ready-remove-ann"),
        ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED
    ));
}

#[tokio::test]
async fn test_update_group_snapshot_content_in_informer_cache() {
    let mut content = new_group_content(
        "informer-cache",
        "uid",
        "snap",
        NS,
        "group-h",
        "class-a",
        &["vol-1"],
        DELETE,
        None,
        false,
        None,
    );
    content.status = Some(VolumeGroupSnapshotContentStatus {
        ready_to_use: Some(true),
        ..Default::default()
    });
    set_annotation(&mut content, ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED, "yes");
    content.metadata.resource_version = Some("2".into());
    let f = fixture(Default::default(), &[&content], &[]);
    let mut old = content.clone();
    old.metadata.resource_version = Some("1".into());
    f.ctrl.store_group_content(&old).unwrap();
    assert!(
        !f.ctrl
            .update_group_content_in_cache(&content)
            .await
            .unwrap()
    );
    assert!(!has_annotation(
        &f.server("informer-cache"),
        ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED
    ));
}

#[test]
fn test_is_driver_match_group_snapshot_content() {
    let f = fixture(
        Default::default(),
        &[],
        &[
            new_group_class("class-same", DRIVER),
            new_group_class("class-other", "other-driver"),
        ],
    );
    let mut no_source = plain("no-source", "");
    no_source.spec.source = Default::default();
    let mut mismatch = plain("mismatch", "");
    mismatch.spec.driver = "other-driver".into();
    let cases = [
        (
            "no source (no VolumeHandles and no GroupSnapshotHandles)",
            false,
            no_source,
        ),
        ("driver mismatch", false, mismatch),
        (
            "driver match with VolumeHandles, no class",
            true,
            plain("match", ""),
        ),
        (
            "driver match but class has different driver",
            false,
            plain("class-other", "class-other"),
        ),
        (
            "driver and class match (VolumeHandles)",
            true,
            plain("class-same", "class-same"),
        ),
        (
            "driver and class match (GroupSnapshotHandles)",
            true,
            new_group_content_with_handles(
                "handles",
                "uid",
                "snap",
                NS,
                "h",
                &["s1"],
                "class-same",
                DELETE,
                None,
                false,
                None,
            ),
        ),
    ];
    for (name, expected, content) in cases {
        assert_eq!(f.ctrl.is_group_driver_match(&content), expected, "{name}");
    }
}

#[tokio::test]
async fn test_sync_group_snapshot_content_by_key_not_found_removes_from_cache() {
    let content = plain("gone", "class-a");
    let f = fixture(Default::default(), &[], &[]);
    f.ctrl.store_group_content(&content).unwrap();
    assert!(!f.ctrl.sync_group_content_by_key("gone").await.unwrap());
    assert!(
        !f.ctrl.forget_group_content("gone"),
        "the deletion removed it already"
    );
}

#[tokio::test]
async fn test_group_snapshot_content_worker() {
    // success path - delete from store when lister returns NotFound: see the test above.
    // error path - sync returns an error (CreateVolumeGroupSnapshot fails): requeued.
    let content = plain("worker-error", "class-a");
    let f = fixture(
        FakeGroupSnapshotter {
            create_result: Some(Err(crate::snapshotter::CsiError::Other(
                "csi create failed".into(),
            ))),
            ..Default::default()
        },
        &[&content],
        &[new_group_class("class-a", DRIVER)],
    );
    let mut uncreated = content.clone();
    uncreated.status = None;
    f.cluster.api.add(&uncreated);
    let err = f
        .ctrl
        .sync_group_content_by_key("worker-error")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("csi create failed"), "{err}");

    // not ready path - requeued while readyToUse is false.
    let mut pending = new_group_content_with_handles(
        "worker-not-ready",
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
    );
    pending.status = None;
    let f = fixture(
        FakeGroupSnapshotter {
            status_result: Some(Ok(crate::group_snapshotter::GroupSnapshotStatus {
                ready_to_use: false,
                creation_time: super::csi_handler::now_nanos(),
            })),
            ..Default::default()
        },
        &[],
        &[],
    );
    f.cluster.api.add(&pending);
    assert!(
        f.ctrl
            .sync_group_content_by_key("worker-not-ready")
            .await
            .unwrap()
    );
}
