//! `snapshot_controller_test.go`: `TestControllerCache`, `TestControllerCacheParsingError`
//! and `TestShouldDelete` (4 cases). (`snapshot_finalizer_test.go` has no cases.)

use std::collections::HashMap;
use std::sync::Mutex;

use csi_crd_types::VolumeSnapshotContent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::framework::*;
use crate::controller::store_update;

fn store_version(step: &str, store: &Mutex<HashMap<String, i64>>, version: &str, expected: bool) {
    let mut content = new_content(
        "contentName",
        "snapuid1-1",
        "snap1-1",
        "sid1-1",
        CLASS_GOLD,
        "",
        "pv-handle-1-1",
        DELETE,
        None,
        None,
        false,
        None,
    );
    content.metadata.resource_version = Some(version.into());
    let stored = store_update(
        store,
        "contentName",
        content.metadata.resource_version.as_deref(),
        "content",
    )
    .unwrap_or_else(|err| panic!("{step}: expected storeObjectUpdate to succeed, got: {err}"));
    assert_eq!(stored, expected, "{step}");
    let kept = store.lock().unwrap()["contentName"];
    if stored {
        assert_eq!(kept.to_string(), version, "{step}");
    } else {
        assert_ne!(kept.to_string(), version, "{step}");
    }
}

#[test]
fn test_controller_cache() {
    let store = Mutex::default();
    store_version("Step1", &store, "1", true);
    store_version("Step2", &store, "1", true);
    store_version("Step3", &store, "2", true);
    store_version("Step4", &store, "1", false);
    store_version("Step5", &store, "10", true);
}

#[test]
fn test_controller_cache_parsing_error() {
    let store = Mutex::default();
    store_version("Step1", &store, "1", true);
    assert!(store_update(&store, "contentName", Some("xxx"), "content").is_err());
}

#[test]
fn test_should_delete() {
    let cluster = Cluster::default();
    let ctrl = reconciler(
        &cluster,
        std::sync::Arc::new(FakeSnapshotter::default()),
        None,
        Default::default(),
    );
    let size = Some(DEFAULT_SIZE);
    let cases: Vec<(&str, bool, VolumeSnapshotContent)> = vec![
        (
            "DeletionTimeStamp is nil",
            false,
            new_content(
                "test-content",
                "snap-uuid",
                "snapName",
                "desiredHandle",
                "default",
                "desiredHandle",
                "volHandle",
                DELETE,
                None,
                size,
                false,
                None,
            ),
        ),
        (
            "Content is not bound",
            true,
            new_content(
                "test-content-not-bound",
                "",
                "",
                "snapshotHandle",
                "",
                "",
                "",
                DELETE,
                None,
                size,
                false,
                now(),
            ),
        ),
        (
            "AnnVolumeSnapshotBeingDeleted annotation is set. ",
            true,
            new_content(
                "test-content",
                "snap-uuid",
                "snapName",
                "desiredHandle",
                "default",
                "desiredHandle",
                "volHandle",
                DELETE,
                None,
                size,
                false,
                now(),
            ),
        ),
        (
            "If no other cases match, then should not delete",
            false,
            VolumeSnapshotContent {
                metadata: ObjectMeta {
                    name: Some("test-content".into()),
                    deletion_timestamp: now(),
                    ..Default::default()
                },
                ..Default::default()
            },
        ),
    ];
    for (name, expected, content) in cases {
        assert_eq!(ctrl.should_delete(&content), expected, "{name}");
    }
}
