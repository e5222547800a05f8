//! What the snapshot controller and the csi-snapshotter sidecar share, as external-snapshotter's
//! `pkg/utils` (v8.7.0) has it.
//!
//! - The annotation, label and finalizer names both write and read (this module's constants;
//!   their values are the API and never change).
//! - [`snapshot`]: content names, keys, readiness / binding / deletion predicates, when a
//!   finalizer has to be added, and which content changes are worth a sync.
//! - [`group`]: the same for VolumeGroupSnapshots, and membership of a VolumeSnapshot in one
//!   (the `ByVolumeGroupSnapshotMembership` index).
//! - [`secrets`]: the snapshotter secret parameters of a (group) snapshot class and their
//!   templates (`${volumesnapshotcontent.name}`, ...), on top of `csi-controller`'s template
//!   resolution; reading the secret is `csi_controller::secrets::secret_data`.
//! - [`pvs`]: the `ByVolumeHandle` index key of a CSI PersistentVolume.
//!
//! Not here: anything only the controller or only the sidecar does.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod group;
pub mod pvs;
pub mod secrets;
pub mod snapshot;

pub use group::*;
pub use pvs::*;
pub use secrets::*;
pub use snapshot::*;

/// On VolumeSnapshotContents bound by a VolumeSnapshot: keeps the content until the snapshot
/// controller has dealt with the snapshot.
pub const VOLUME_SNAPSHOT_CONTENT_FINALIZER: &str =
    "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection";
/// On VolumeSnapshots bound to a content.
pub const VOLUME_SNAPSHOT_BOUND_FINALIZER: &str =
    "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection";
/// On VolumeSnapshots, while a PVC is being restored from them.
pub const VOLUME_SNAPSHOT_AS_SOURCE_FINALIZER: &str =
    "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection";
/// On VolumeSnapshots that are members of a VolumeGroupSnapshot.
pub const VOLUME_SNAPSHOT_IN_GROUP_FINALIZER: &str =
    "snapshot.storage.kubernetes.io/volumesnapshot-in-group-protection";
/// On PVCs while a snapshot is being taken of them.
pub const PVC_FINALIZER: &str = "snapshot.storage.kubernetes.io/pvc-as-source-protection";
/// On VolumeGroupSnapshotContents bound by a VolumeGroupSnapshot.
pub const VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER: &str =
    "groupsnapshot.storage.kubernetes.io/volumegroupsnapshotcontent-bound-protection";
/// On VolumeGroupSnapshots bound to a content.
pub const VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER: &str =
    "groupsnapshot.storage.kubernetes.io/volumegroupsnapshot-bound-protection";

/// `"true"` on the VolumeSnapshotClass used when a snapshot names none.
pub const IS_DEFAULT_SNAPSHOT_CLASS_ANNOTATION: &str =
    "snapshot.storage.kubernetes.io/is-default-class";
/// `"true"` on the VolumeGroupSnapshotClass used when a group snapshot names none.
pub const IS_DEFAULT_GROUP_SNAPSHOT_CLASS_ANNOTATION: &str =
    "groupsnapshot.storage.kubernetes.io/is-default-class";

/// On a VolumeSnapshotContent: the controller saw its snapshot being deleted; the sidecar
/// decides by the deletion policy whether to delete the snapshot in the storage system.
pub const ANN_VOLUME_SNAPSHOT_BEING_DELETED: &str =
    "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted";
/// On a VolumeSnapshotContent: the sidecar has sent `CreateSnapshot` and waits for a final
/// answer (dynamic snapshots only).
pub const ANN_VOLUME_SNAPSHOT_BEING_CREATED: &str =
    "snapshot.storage.kubernetes.io/volumesnapshot-being-created";
/// On a VolumeGroupSnapshotContent: the sidecar has sent `CreateVolumeGroupSnapshot`.
pub const ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED: &str =
    "groupsnapshot.storage.kubernetes.io/volumegroupsnapshot-being-created";
/// On a VolumeGroupSnapshotContent: the controller saw its group snapshot being deleted.
pub const ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED: &str =
    "groupsnapshot.storage.kubernetes.io/volumegroupsnapshot-being-deleted";

/// On a VolumeSnapshotContent: the name of the secret for `DeleteSnapshot`.
pub const ANN_DELETION_SECRET_REF_NAME: &str =
    "snapshot.storage.kubernetes.io/deletion-secret-name";
/// On a VolumeSnapshotContent: the namespace of the secret for `DeleteSnapshot`.
pub const ANN_DELETION_SECRET_REF_NAMESPACE: &str =
    "snapshot.storage.kubernetes.io/deletion-secret-namespace";
/// On a VolumeGroupSnapshotContent: the name of the secret for `DeleteVolumeGroupSnapshot`.
pub const ANN_DELETION_GROUP_SECRET_REF_NAME: &str =
    "groupsnapshot.storage.kubernetes.io/deletion-secret-name";
/// On a VolumeGroupSnapshotContent: the namespace of the secret for
/// `DeleteVolumeGroupSnapshot`.
pub const ANN_DELETION_GROUP_SECRET_REF_NAMESPACE: &str =
    "groupsnapshot.storage.kubernetes.io/deletion-secret-namespace";

/// On a VolumeSnapshotContent that is a member of a group snapshot: the group's handle (the
/// sidecar then does not call `CreateSnapshot` for it).
pub const VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION: &str =
    "groupsnapshot.storage.k8s.io/volumeGroupSnapshotHandle";

/// Label on a VolumeSnapshotContent with distributed snapshotting: the node whose sidecar
/// takes the snapshot.
pub const VOLUME_SNAPSHOT_CONTENT_MANAGED_BY_LABEL: &str =
    "snapshot.storage.kubernetes.io/managed-by";

/// `slice` without any item equal to `s`.
pub fn remove_string(slice: &[String], s: &str) -> Vec<String> {
    slice.iter().filter(|item| *item != s).cloned().collect()
}

#[cfg(test)]
mod tests;
