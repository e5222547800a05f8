//! VolumeGroupSnapshots and their contents: names, keys and predicates (upstream's
//! `pkg/utils/util.go`, group half), and membership of a VolumeSnapshot in a group snapshot
//! (upstream's `pkg/utils/vgs.go`).

use csi_controller::semantic_eq;
use csi_crd_types::VolumeSnapshot;
use csi_crd_types::group_snapshot::v1::{
    VolumeGroupSnapshot, VolumeGroupSnapshotClass, VolumeGroupSnapshotContent,
};
use k8s_openapi::Resource;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::snapshot::sanitize_sidecar_annotations;
use crate::{
    ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED, IS_DEFAULT_GROUP_SNAPSHOT_CLASS_ANNOTATION,
    VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER, VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER,
};

/// The name of the VolumeSnapshot index by the group snapshot that owns them.
pub const VOLUME_SNAPSHOT_PARENT_GROUP_INDEX: &str = "ByVolumeGroupSnapshotMembership";

/// Group content annotations only the sidecar writes.
pub const SIDECAR_CONTROLLED_GROUP_CONTENT_ANNOTATIONS: &[&str] =
    &[ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED];

fn has(list: &Option<Vec<String>>, item: &str) -> bool {
    list.iter().flatten().any(|f| f == item)
}

/// `<namespace>/<name>` of a group snapshot.
pub fn group_snapshot_key(group: &VolumeGroupSnapshot) -> String {
    format!(
        "{}/{}",
        group.metadata.namespace.as_deref().unwrap_or_default(),
        group.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `<namespace>/<name>` of the group snapshot a group content points to.
pub fn group_snapshot_ref_key(reference: &ObjectReference) -> String {
    crate::snapshot_ref_key(reference)
}

/// The name of the content the controller creates for a dynamic group snapshot:
/// `groupsnapcontent-<group snapshot UID>`.
pub fn dynamic_group_snapshot_content_name(group: &VolumeGroupSnapshot) -> String {
    format!(
        "groupsnapcontent-{}",
        group.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// Whether the object's annotations mark it as the default VolumeGroupSnapshotClass.
pub fn is_default_group_snapshot_class_annotation(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(IS_DEFAULT_GROUP_SNAPSHOT_CLASS_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// [`is_default_group_snapshot_class_annotation`] of a class.
pub fn is_default_group_snapshot_class(class: &VolumeGroupSnapshotClass) -> bool {
    is_default_group_snapshot_class_annotation(&class.metadata)
}

/// The group content is not being deleted and lacks
/// [`VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER`].
pub fn need_to_add_group_snapshot_content_finalizer(content: &VolumeGroupSnapshotContent) -> bool {
    content.metadata.deletion_timestamp.is_none()
        && !has(
            &content.metadata.finalizers,
            VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER,
        )
}

/// The group snapshot is being deleted and still carries its bound finalizer.
pub fn is_group_snapshot_deletion_candidate(group: &VolumeGroupSnapshot) -> bool {
    group.metadata.deletion_timestamp.is_some()
        && has(
            &group.metadata.finalizers,
            VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER,
        )
}

/// The group snapshot is bound, not being deleted, and lacks its bound finalizer.
pub fn need_to_add_group_snapshot_bound_finalizer(group: &VolumeGroupSnapshot) -> bool {
    group.metadata.deletion_timestamp.is_none()
        && !has(
            &group.metadata.finalizers,
            VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER,
        )
        && is_bound_volume_group_snapshot_content_name_set(group)
}

/// `bound to: "<content>", Completed: <ready>`, for logs.
pub fn group_snapshot_status_for_logging(group: &VolumeGroupSnapshot) -> String {
    let status = group.status.as_ref();
    let content = status
        .and_then(|s| s.bound_volume_group_snapshot_content_name.as_deref())
        .unwrap_or_default();
    let ready = status.and_then(|s| s.ready_to_use).unwrap_or(false);
    format!("bound to: {content:?}, Completed: {ready}")
}

/// `status.readyToUse` of the group snapshot is true.
pub fn is_group_snapshot_ready(group: &VolumeGroupSnapshot) -> bool {
    group
        .status
        .as_ref()
        .and_then(|s| s.ready_to_use)
        .unwrap_or(false)
}

/// `status.boundVolumeGroupSnapshotContentName` is set and not empty.
pub fn is_bound_volume_group_snapshot_content_name_set(group: &VolumeGroupSnapshot) -> bool {
    group
        .status
        .as_ref()
        .and_then(|s| s.bound_volume_group_snapshot_content_name.as_deref())
        .is_some_and(|name| !name.is_empty())
}

/// The group content's `volumeGroupSnapshotRef` names this group snapshot (name, namespace,
/// UID).
pub fn is_volume_group_snapshot_ref_set(
    group: &VolumeGroupSnapshot,
    content: &VolumeGroupSnapshotContent,
) -> bool {
    let reference = &content.spec.volume_group_snapshot_ref;
    reference.name.as_deref().unwrap_or_default()
        == group.metadata.name.as_deref().unwrap_or_default()
        && reference.namespace.as_deref().unwrap_or_default()
            == group.metadata.namespace.as_deref().unwrap_or_default()
        && reference.uid.as_deref().unwrap_or_default()
            == group.metadata.uid.as_deref().unwrap_or_default()
}

/// The storage system has cut the group snapshot (`status.creationTime` is set).
pub fn is_group_snapshot_created(group: &VolumeGroupSnapshot) -> bool {
    group
        .status
        .as_ref()
        .is_some_and(|s| s.creation_time.is_some())
}

/// [`crate::should_enqueue_content_change`] for group contents.
pub fn should_enqueue_group_content_change(
    old: &VolumeGroupSnapshotContent,
    new: &VolumeGroupSnapshotContent,
) -> bool {
    if old.metadata.resource_version == new.metadata.resource_version {
        return true;
    }
    let ready = |c: &VolumeGroupSnapshotContent| {
        c.status.as_ref().and_then(|s| s.ready_to_use) == Some(true)
    };
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
        SIDECAR_CONTROLLED_GROUP_CONTENT_ANNOTATIONS,
    );
    !semantic_eq(old, &sanitized)
}

/// The name of the VolumeGroupSnapshot that owns the snapshot (an owner reference of kind
/// `VolumeGroupSnapshot` and apiVersion `groupsnapshot.storage.k8s.io/v1`); empty if none.
pub fn volume_group_snapshot_parent_name(snapshot: Option<&VolumeSnapshot>) -> String {
    snapshot
        .and_then(|s| s.metadata.owner_references.as_ref())
        .into_iter()
        .flatten()
        .find(|owner| {
            owner.kind == VolumeGroupSnapshot::KIND
                && owner.api_version == VolumeGroupSnapshot::API_VERSION
        })
        .map(|owner| owner.name.clone())
        .unwrap_or_default()
}

/// The snapshot is owned by a VolumeGroupSnapshot.
pub fn is_volume_group_snapshot_member(snapshot: Option<&VolumeSnapshot>) -> bool {
    !volume_group_snapshot_parent_name(snapshot).is_empty()
}

/// The `ByVolumeGroupSnapshotMembership` index key of a snapshot: `<namespace>^<group name>`,
/// empty for a snapshot no group owns.
pub fn volume_snapshot_parent_group_key(snapshot: Option<&VolumeSnapshot>) -> String {
    let parent = volume_group_snapshot_parent_name(snapshot);
    match snapshot {
        Some(snapshot) if !parent.is_empty() => volume_snapshot_parent_group_key_by_components(
            snapshot.metadata.namespace.as_deref().unwrap_or_default(),
            &parent,
        ),
        _ => String::new(),
    }
}

/// The `ByVolumeGroupSnapshotMembership` index key of the group snapshot
/// `<namespace>/<name>`: `<namespace>^<name>`.
pub fn volume_snapshot_parent_group_key_by_components(namespace: &str, name: &str) -> String {
    format!("{namespace}^{name}")
}

/// The snapshot names its group snapshot in `status.volumeGroupSnapshotName` but no group
/// snapshot owns it yet.
pub fn need_to_add_volume_group_snapshot_ownership(snapshot: Option<&VolumeSnapshot>) -> bool {
    if is_volume_group_snapshot_member(snapshot) {
        return false;
    }
    snapshot
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.volume_group_snapshot_name.as_deref())
        .is_some_and(|name| !name.is_empty())
}

/// The owner reference that makes a member snapshot belong to `parent`.
pub fn volume_group_snapshot_owner_reference(parent: &VolumeGroupSnapshot) -> OwnerReference {
    OwnerReference {
        api_version: VolumeGroupSnapshot::API_VERSION.to_string(),
        kind: VolumeGroupSnapshot::KIND.to_string(),
        name: parent.metadata.name.clone().unwrap_or_default(),
        uid: parent.metadata.uid.clone().unwrap_or_default(),
        ..Default::default()
    }
}
