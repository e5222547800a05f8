//! The group snapshot objects of upstream's `groupsnapshot_controller_test.go`, and a
//! controller over a fresh fake cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use csi_crd_types::group_snapshot::v1::{
    GroupSnapshotHandles, VolumeGroupSnapshotContentSource, VolumeGroupSnapshotContentStatus,
};
use csi_crd_types::{VolumeGroupSnapshotClass, VolumeGroupSnapshotContent};
use csi_test_support::FakeRecorder;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::csi_handler::FakeGroupSnapshotter;
use super::framework::*;
use crate::controller::Reconciler;
use csi_snapshot_utils::{
    ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED, VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER,
};

/// upstream's `newGroupSnapshotContent`.
pub fn new_group_content(
    name: &str,
    uid: &str,
    group_snapshot_name: &str,
    namespace: &str,
    group_snapshot_handle: &str,
    class_name: &str,
    volume_handles: &[&str],
    policy: &str,
    creation_time: Option<Time>,
    with_finalizer: bool,
    deletion_time: Option<Time>,
) -> VolumeGroupSnapshotContent {
    let mut content = VolumeGroupSnapshotContent {
        metadata: ObjectMeta {
            name: Some(name.into()),
            resource_version: Some("1".into()),
            deletion_timestamp: deletion_time.clone(),
            ..Default::default()
        },
        status: Some(VolumeGroupSnapshotContentStatus {
            creation_time,
            ..Default::default()
        }),
        ..Default::default()
    };
    content.spec.driver = DRIVER.into();
    content.spec.deletion_policy = policy.into();
    content.spec.volume_group_snapshot_ref = ObjectReference {
        kind: Some("VolumeGroupSnapshot".into()),
        api_version: Some("groupsnapshot.storage.k8s.io/v1beta2".into()),
        uid: Some(uid.into()),
        namespace: Some(namespace.into()),
        name: Some(group_snapshot_name.into()),
        ..Default::default()
    };
    if deletion_time.is_some() {
        set_annotation(&mut content, ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED, "yes");
    }
    if !group_snapshot_handle.is_empty() {
        content
            .status
            .as_mut()
            .unwrap()
            .volume_group_snapshot_handle = Some(group_snapshot_handle.into());
    }
    if !class_name.is_empty() {
        content.spec.volume_group_snapshot_class_name = Some(class_name.into());
    }
    if !volume_handles.is_empty() {
        content.spec.source.volume_handles = volume_handles.iter().map(|s| s.to_string()).collect();
    }
    if with_finalizer {
        content.metadata.finalizers = Some(vec![VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER.into()]);
    }
    content
}

/// upstream's `newGroupSnapshotContentWithHandles`.
pub fn new_group_content_with_handles(
    name: &str,
    uid: &str,
    group_snapshot_name: &str,
    namespace: &str,
    group_snapshot_handle: &str,
    snapshot_handles: &[&str],
    class_name: &str,
    policy: &str,
    creation_time: Option<Time>,
    with_finalizer: bool,
    deletion_time: Option<Time>,
) -> VolumeGroupSnapshotContent {
    let mut content = new_group_content(
        name,
        uid,
        group_snapshot_name,
        namespace,
        group_snapshot_handle,
        class_name,
        &[],
        policy,
        creation_time,
        with_finalizer,
        deletion_time,
    );
    content.spec.source = VolumeGroupSnapshotContentSource {
        volume_handles: Vec::new(),
        group_snapshot_handles: Some(GroupSnapshotHandles {
            volume_group_snapshot_handle: group_snapshot_handle.into(),
            volume_snapshot_handles: snapshot_handles.iter().map(|s| s.to_string()).collect(),
        }),
    };
    content
}

/// upstream's `newVolumeGroupSnapshotClass`.
pub fn new_group_class(name: &str, driver: &str) -> VolumeGroupSnapshotClass {
    VolumeGroupSnapshotClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        driver: driver.into(),
        parameters: Some(BTreeMap::from([("param1".into(), "value1".into())])),
        deletion_policy: DELETE.into(),
    }
}

pub fn set_annotation(content: &mut VolumeGroupSnapshotContent, key: &str, value: &str) {
    content
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value.into());
}

pub fn has_annotation(content: &VolumeGroupSnapshotContent, key: &str) -> bool {
    content
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(key))
}

/// A controller over a fresh fake cluster holding `contents` (server) and `classes` (cache).
pub struct Fixture {
    pub cluster: Cluster,
    pub events: Arc<FakeRecorder>,
    pub ctrl: Reconciler,
}

pub fn fixture(
    group: FakeGroupSnapshotter,
    contents: &[&VolumeGroupSnapshotContent],
    classes: &[VolumeGroupSnapshotClass],
) -> Fixture {
    let cluster = Cluster::default();
    let events = Arc::new(FakeRecorder::default());
    let ctrl = reconciler(
        &cluster,
        Arc::new(FakeSnapshotter::default()),
        Some(Arc::new(group)),
        events.clone(),
    );
    for content in contents {
        cluster.api.add_to_server(*content);
    }
    for class in classes {
        cluster.api.add_to_cache(class);
    }
    Fixture {
        cluster,
        events,
        ctrl,
    }
}

impl Fixture {
    pub fn server(&self, name: &str) -> VolumeGroupSnapshotContent {
        self.cluster
            .api
            .server_object("", name)
            .expect("content on the server")
    }
}

pub fn deleting(
    name: &str,
    policy: &str,
    handle: &str,
    finalizer: bool,
) -> VolumeGroupSnapshotContent {
    new_group_content(
        name,
        "uid",
        "snap",
        NS,
        handle,
        "class-a",
        &["vol-1"],
        policy,
        None,
        finalizer,
        now(),
    )
}

pub fn plain(name: &str, class: &str) -> VolumeGroupSnapshotContent {
    new_group_content(
        name,
        "uid",
        "snap",
        NS,
        "",
        class,
        &["vol-1"],
        DELETE,
        None,
        false,
        None,
    )
}
