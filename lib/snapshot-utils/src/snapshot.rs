//! VolumeSnapshots and VolumeSnapshotContents: names, keys and the predicates the controller
//! and the sidecar decide with (upstream's `pkg/utils/util.go`, snapshot half).

use std::collections::BTreeMap;

use csi_controller::semantic_eq;
use csi_crd_types::VolumeSnapshot;
use csi_crd_types::snapshot::v1::{VolumeSnapshotClass, VolumeSnapshotContent};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{
    ANN_VOLUME_SNAPSHOT_BEING_CREATED, IS_DEFAULT_SNAPSHOT_CLASS_ANNOTATION,
    VOLUME_SNAPSHOT_AS_SOURCE_FINALIZER, VOLUME_SNAPSHOT_BOUND_FINALIZER,
    VOLUME_SNAPSHOT_CONTENT_FINALIZER,
};

/// Content annotations only the sidecar writes: changing them is no reason to sync.
/// (`volumesnapshot-being-deleted` is the controller's and is not among them.)
pub const SIDECAR_CONTROLLED_CONTENT_ANNOTATIONS: &[&str] = &[ANN_VOLUME_SNAPSHOT_BEING_CREATED];

fn has(list: &Option<Vec<String>>, item: &str) -> bool {
    list.iter().flatten().any(|f| f == item)
}

/// `<namespace>/<name>` of a snapshot: its work queue and cache key.
pub fn snapshot_key(snapshot: &VolumeSnapshot) -> String {
    format!(
        "{}/{}",
        snapshot.metadata.namespace.as_deref().unwrap_or_default(),
        snapshot.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `<namespace>/<name>` of the snapshot a content points to.
pub fn snapshot_ref_key(reference: &ObjectReference) -> String {
    format!(
        "{}/{}",
        reference.namespace.as_deref().unwrap_or_default(),
        reference.name.as_deref().unwrap_or_default()
    )
}

/// The name of the content the controller creates for a dynamic snapshot:
/// `snapcontent-<snapshot UID>`.
pub fn dynamic_snapshot_content_name(snapshot: &VolumeSnapshot) -> String {
    format!(
        "snapcontent-{}",
        snapshot.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// Whether the object's annotations mark it as the default VolumeSnapshotClass (exactly
/// `"true"`).
pub fn is_default_snapshot_class_annotation(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(IS_DEFAULT_SNAPSHOT_CLASS_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// [`is_default_snapshot_class_annotation`] of a class.
pub fn is_default_snapshot_class(class: &VolumeSnapshotClass) -> bool {
    is_default_snapshot_class_annotation(&class.metadata)
}

/// The content is not being deleted and lacks [`VOLUME_SNAPSHOT_CONTENT_FINALIZER`].
pub fn need_to_add_content_finalizer(content: &VolumeSnapshotContent) -> bool {
    content.metadata.deletion_timestamp.is_none()
        && !has(
            &content.metadata.finalizers,
            VOLUME_SNAPSHOT_CONTENT_FINALIZER,
        )
}

/// The snapshot is being deleted and still carries one of the controller's finalizers
/// (as-source or bound).
pub fn is_snapshot_deletion_candidate(snapshot: &VolumeSnapshot) -> bool {
    snapshot.metadata.deletion_timestamp.is_some()
        && (has(
            &snapshot.metadata.finalizers,
            VOLUME_SNAPSHOT_AS_SOURCE_FINALIZER,
        ) || has(
            &snapshot.metadata.finalizers,
            VOLUME_SNAPSHOT_BOUND_FINALIZER,
        ))
}

/// The snapshot is not being deleted and lacks [`VOLUME_SNAPSHOT_AS_SOURCE_FINALIZER`].
pub fn need_to_add_snapshot_as_source_finalizer(snapshot: &VolumeSnapshot) -> bool {
    snapshot.metadata.deletion_timestamp.is_none()
        && !has(
            &snapshot.metadata.finalizers,
            VOLUME_SNAPSHOT_AS_SOURCE_FINALIZER,
        )
}

/// The snapshot is bound, not being deleted, and lacks [`VOLUME_SNAPSHOT_BOUND_FINALIZER`].
pub fn need_to_add_snapshot_bound_finalizer(snapshot: &VolumeSnapshot) -> bool {
    snapshot.metadata.deletion_timestamp.is_none()
        && !has(
            &snapshot.metadata.finalizers,
            VOLUME_SNAPSHOT_BOUND_FINALIZER,
        )
        && is_bound_volume_snapshot_content_name_set(snapshot)
}

/// `bound to: "<content>", Completed: <ready>`, for logs.
pub fn snapshot_status_for_logging(snapshot: &VolumeSnapshot) -> String {
    let status = snapshot.status.as_ref();
    let content = status
        .and_then(|s| s.bound_volume_snapshot_content_name.as_deref())
        .unwrap_or_default();
    let ready = status.and_then(|s| s.ready_to_use).unwrap_or(false);
    format!("bound to: {content:?}, Completed: {ready}")
}

/// The content's `volumeSnapshotRef` names this snapshot (name, namespace and UID).
pub fn is_volume_snapshot_ref_set(
    snapshot: &VolumeSnapshot,
    content: &VolumeSnapshotContent,
) -> bool {
    let reference = &content.spec.volume_snapshot_ref;
    reference.name.as_deref().unwrap_or_default()
        == snapshot.metadata.name.as_deref().unwrap_or_default()
        && reference.namespace.as_deref().unwrap_or_default()
            == snapshot.metadata.namespace.as_deref().unwrap_or_default()
        && reference.uid.as_deref().unwrap_or_default()
            == snapshot.metadata.uid.as_deref().unwrap_or_default()
}

/// `status.boundVolumeSnapshotContentName` is set and not empty.
pub fn is_bound_volume_snapshot_content_name_set(snapshot: &VolumeSnapshot) -> bool {
    snapshot
        .status
        .as_ref()
        .and_then(|s| s.bound_volume_snapshot_content_name.as_deref())
        .is_some_and(|name| !name.is_empty())
}

/// `status.readyToUse` is true.
pub fn is_snapshot_ready(snapshot: &VolumeSnapshot) -> bool {
    snapshot
        .status
        .as_ref()
        .and_then(|s| s.ready_to_use)
        .unwrap_or(false)
}

/// The storage system has cut the snapshot (`status.creationTime` is set).
pub fn is_snapshot_created(snapshot: &VolumeSnapshot) -> bool {
    snapshot
        .status
        .as_ref()
        .is_some_and(|s| s.creation_time.is_some())
}

/// Whether an update of a content from `old` to `new` can matter to a sync: not when only the
/// resource version, status, managed fields, finalizers or sidecar-owned annotations changed.
/// A resync (same resource version) and a content just become ready always matter.
pub fn should_enqueue_content_change(
    old: &VolumeSnapshotContent,
    new: &VolumeSnapshotContent,
) -> bool {
    if old.metadata.resource_version == new.metadata.resource_version {
        return true;
    }
    let ready =
        |c: &VolumeSnapshotContent| c.status.as_ref().and_then(|s| s.ready_to_use) == Some(true);
    if !ready(old) && ready(new) {
        return true;
    }
    let mut sanitized = new.clone();
    sanitized.metadata.resource_version = old.metadata.resource_version.clone();
    sanitized.status = old.status.clone();
    sanitized.metadata.managed_fields = old.metadata.managed_fields.clone();
    sanitized.metadata.finalizers = old.metadata.finalizers.clone();
    sanitized.metadata.annotations = sanitize_sidecar_annotations(
        old.metadata.annotations.as_ref(),
        sanitized.metadata.annotations.take(),
        SIDECAR_CONTROLLED_CONTENT_ANNOTATIONS,
    );
    !semantic_eq(old, &sanitized)
}

/// `new` with each sidecar-controlled annotation set back to its value in `old` (or removed).
pub(crate) fn sanitize_sidecar_annotations(
    old: Option<&BTreeMap<String, String>>,
    new: Option<BTreeMap<String, String>>,
    sidecar_controlled: &[&str],
) -> Option<BTreeMap<String, String>> {
    let Some(old) = old else {
        return new.map(|mut new| {
            for key in sidecar_controlled {
                new.remove(*key);
            }
            new
        });
    };
    let mut new = new.unwrap_or_default();
    for key in sidecar_controlled {
        match old.get(*key) {
            Some(value) => {
                new.insert(key.to_string(), value.clone());
            }
            None => {
                new.remove(*key);
            }
        }
    }
    Some(new)
}
