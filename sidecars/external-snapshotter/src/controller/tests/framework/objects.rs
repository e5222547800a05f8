//! The objects of upstream's tests, built with upstream's argument order.

use std::collections::{BTreeMap, HashMap};

use csi_crd_types::snapshot::v1::{
    VolumeSnapshotContentSource, VolumeSnapshotContentSpec, VolumeSnapshotContentStatus,
    VolumeSnapshotError,
};
use csi_crd_types::{VolumeSnapshotClass, VolumeSnapshotContent};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use csi_snapshot_utils::{
    ANN_DELETION_SECRET_REF_NAME, ANN_DELETION_SECRET_REF_NAMESPACE,
    ANN_VOLUME_SNAPSHOT_BEING_DELETED, VOLUME_SNAPSHOT_CONTENT_FINALIZER,
};

use super::*;

// ---------------------------------------------------------------------------------------------
// Objects

pub fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn btree(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// upstream's `newContent` (argument order kept: `creation_time` before `size`).
pub fn new_content(
    name: &str,
    bound_to_snapshot_uid: &str,
    bound_to_snapshot_name: &str,
    snapshot_handle: &str,
    snapshot_class_name: &str,
    desired_snapshot_handle: &str,
    volume_handle: &str,
    deletion_policy: &str,
    creation_time: Option<i64>,
    size: Option<i64>,
    with_finalizer: bool,
    deletion_time: Option<Time>,
) -> VolumeSnapshotContent {
    let mut content = VolumeSnapshotContent {
        metadata: ObjectMeta {
            name: Some(name.into()),
            resource_version: Some("1".into()),
            deletion_timestamp: deletion_time.clone(),
            ..Default::default()
        },
        spec: VolumeSnapshotContentSpec {
            driver: DRIVER.into(),
            deletion_policy: deletion_policy.into(),
            ..Default::default()
        },
        status: Some(VolumeSnapshotContentStatus {
            creation_time,
            restore_size: size,
            ..Default::default()
        }),
    };
    if deletion_time.is_some() {
        content.metadata.annotations = Some(btree(&[(ANN_VOLUME_SNAPSHOT_BEING_DELETED, "yes")]));
    }
    if !snapshot_handle.is_empty() {
        content.status.as_mut().unwrap().snapshot_handle = Some(snapshot_handle.into());
    }
    if !snapshot_class_name.is_empty() {
        content.spec.volume_snapshot_class_name = Some(snapshot_class_name.into());
    }
    if !volume_handle.is_empty() {
        content.spec.source = VolumeSnapshotContentSource {
            volume_handle: Some(volume_handle.into()),
            snapshot_handle: None,
        };
    } else if !desired_snapshot_handle.is_empty() {
        content.spec.source = VolumeSnapshotContentSource {
            volume_handle: None,
            snapshot_handle: Some(desired_snapshot_handle.into()),
        };
    }
    if !bound_to_snapshot_name.is_empty() {
        content.spec.volume_snapshot_ref = ObjectReference {
            kind: Some("VolumeSnapshot".into()),
            api_version: Some("snapshot.storage.k8s.io/v1".into()),
            uid: Some(bound_to_snapshot_uid.into()),
            namespace: Some(NS.into()),
            name: Some(bound_to_snapshot_name.into()),
            ..Default::default()
        };
    }
    if with_finalizer {
        content.metadata.finalizers = Some(vec![VOLUME_SNAPSHOT_CONTENT_FINALIZER.into()]);
    }
    content
}

/// upstream's `newContentArray` (its `size` comes first and is passed on as `newContent`'s
/// size, its `creationTime` second).
pub fn content_array(
    name: &str,
    uid: &str,
    snapshot_name: &str,
    snapshot_handle: &str,
    class: &str,
    desired_handle: &str,
    volume_handle: &str,
    policy: &str,
    size: Option<i64>,
    creation_time: Option<i64>,
    with_finalizer: bool,
) -> Vec<VolumeSnapshotContent> {
    vec![new_content(
        name,
        uid,
        snapshot_name,
        snapshot_handle,
        class,
        desired_handle,
        volume_handle,
        policy,
        creation_time,
        size,
        with_finalizer,
        None,
    )]
}

/// upstream's `newContentArrayWithReadyToUse`.
pub fn content_array_with_ready_to_use(
    name: &str,
    uid: &str,
    snapshot_name: &str,
    snapshot_handle: &str,
    class: &str,
    desired_handle: &str,
    volume_handle: &str,
    policy: &str,
    creation_time: Option<i64>,
    size: Option<i64>,
    ready_to_use: Option<bool>,
    with_finalizer: bool,
) -> Vec<VolumeSnapshotContent> {
    let mut content = new_content(
        name,
        uid,
        snapshot_name,
        snapshot_handle,
        class,
        desired_handle,
        volume_handle,
        policy,
        creation_time,
        size,
        with_finalizer,
        None,
    );
    content.status.as_mut().unwrap().ready_to_use = ready_to_use;
    vec![content]
}

/// upstream's `newContentArrayWithDeletionTimestamp` (`size` first, as `newContentArray`).
pub fn content_array_with_deletion_timestamp(
    name: &str,
    uid: &str,
    snapshot_name: &str,
    snapshot_handle: &str,
    class: &str,
    desired_handle: &str,
    volume_handle: &str,
    policy: &str,
    size: Option<i64>,
    creation_time: Option<i64>,
    with_finalizer: bool,
    deletion_time: Option<Time>,
) -> Vec<VolumeSnapshotContent> {
    vec![new_content(
        name,
        uid,
        snapshot_name,
        snapshot_handle,
        class,
        desired_handle,
        volume_handle,
        policy,
        creation_time,
        size,
        with_finalizer,
        deletion_time,
    )]
}

/// upstream's `newContentWithVolumeGroupSnapshotHandle` (which passes its `creationTime`
/// on as the size of `newContentArrayWithDeletionTimestamp`).
pub fn content_with_group_handle(
    name: &str,
    uid: &str,
    snapshot_name: &str,
    snapshot_handle: &str,
    group_handle: &str,
    class: &str,
    desired_handle: &str,
    volume_handle: &str,
    policy: &str,
    creation_time: Option<i64>,
    size: Option<i64>,
    with_finalizer: bool,
    deletion_time: Option<Time>,
) -> Vec<VolumeSnapshotContent> {
    let mut contents = content_array_with_deletion_timestamp(
        name,
        uid,
        snapshot_name,
        snapshot_handle,
        class,
        desired_handle,
        volume_handle,
        policy,
        creation_time,
        size,
        with_finalizer,
        deletion_time,
    );
    for content in &mut contents {
        content
            .status
            .as_mut()
            .unwrap()
            .volume_group_snapshot_handle = Some(group_handle.into());
    }
    contents
}

/// upstream's `withContentStatus`.
pub fn with_status(
    mut contents: Vec<VolumeSnapshotContent>,
    status: Option<VolumeSnapshotContentStatus>,
) -> Vec<VolumeSnapshotContent> {
    for content in &mut contents {
        content.status = status.clone();
    }
    contents
}

/// upstream's `withContentAnnotations`.
pub fn with_annotations(
    mut contents: Vec<VolumeSnapshotContent>,
    annotations: &[(&str, &str)],
) -> Vec<VolumeSnapshotContent> {
    for content in &mut contents {
        content.metadata.annotations = Some(btree(annotations));
    }
    contents
}

/// upstream's `newSnapshotError`.
pub fn snapshot_error(message: &str) -> Option<VolumeSnapshotError> {
    Some(VolumeSnapshotError {
        time: None,
        message: Some(message.to_string()),
    })
}

/// upstream's `secret()`.
pub fn secret() -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("secret".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "foo".to_string(),
            ByteString(b"bar".to_vec()),
        )])),
        ..Default::default()
    }
}

fn class(
    name: &str,
    parameters: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> VolumeSnapshotClass {
    VolumeSnapshotClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: (!annotations.is_empty()).then(|| btree(annotations)),
            ..Default::default()
        },
        driver: DRIVER.into(),
        parameters: Some(btree(parameters)),
        deletion_policy: DELETE.into(),
    }
}

/// upstream's `snapshotClasses` (snapshot_delete_test.go).
pub fn snapshot_classes() -> Vec<VolumeSnapshotClass> {
    use csi_snapshot_utils::{
        PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY, PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY,
        PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
    };
    let class4 = [
        (ANN_DELETION_SECRET_REF_NAME, "emptysecret"),
        (ANN_DELETION_SECRET_REF_NAMESPACE, "default"),
    ];
    let class5 = [
        (ANN_DELETION_SECRET_REF_NAME, "secret"),
        (ANN_DELETION_SECRET_REF_NAMESPACE, "default"),
    ];
    let class6 = [
        (PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, "secret"),
        (PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY, "default"),
        (PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY, "secret"),
        (PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY, "default"),
    ];
    let class7_annotations = [
        (ANN_DELETION_SECRET_REF_NAME, "secret-x"),
        (ANN_DELETION_SECRET_REF_NAMESPACE, "default-x"),
    ];
    vec![
        class(CLASS_GOLD, &[("param1", "value1")], &[]),
        class(CLASS_SILVER, &[("param2", "value2")], &[]),
        class(EMPTY_SECRET_CLASS, &class4, &[]),
        class(
            INVALID_SECRET_CLASS,
            &[("param2", "value2")],
            &class7_annotations,
        ),
        class(VALID_SECRET_CLASS, &class5, &[]),
        class(
            DEFAULT_CLASS,
            &class6,
            &[("snapshot.storage.kubernetes.io/is-default-class", "true")],
        ),
    ]
}
