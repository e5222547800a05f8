//! The `snapshot.storage.k8s.io` API group.

pub mod v1 {
    //! `snapshot.storage.k8s.io/v1`: VolumeSnapshots (namespaced, a user's request for a
    //! snapshot or a restore source), VolumeSnapshotContents (cluster-scoped, the snapshot in
    //! the storage system) and VolumeSnapshotClasses, as external-snapshotter's `client/v8`
    //! (v8.7.0) defines them.

    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use serde::{Deserialize, Serialize};

    use crate::api_resource;

    /// `deletionPolicy: Delete`: the snapshot in the storage system is deleted with its
    /// content.
    pub const DELETION_POLICY_DELETE: &str = "Delete";
    /// `deletionPolicy: Retain`: the snapshot in the storage system is kept.
    pub const DELETION_POLICY_RETAIN: &str = "Retain";

    /// A user's request for a snapshot of a PersistentVolumeClaim, or a handle on an existing
    /// snapshot (`kind: VolumeSnapshot`).
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(default)]
    pub struct VolumeSnapshot {
        /// Standard object metadata.
        pub metadata: ObjectMeta,
        /// What to snapshot, and with which class.
        pub spec: VolumeSnapshotSpec,
        /// What the snapshot controller observed; absent until it acts.
        pub status: Option<VolumeSnapshotStatus>,
    }

    api_resource!(VolumeSnapshot, group: "snapshot.storage.k8s.io", version: "v1",
        kind: "VolumeSnapshot", plural: "volumesnapshots",
        scope: k8s_openapi::NamespaceResourceScope,
        fields { spec => "spec", status => "status" if Option::is_none });

    /// What a VolumeSnapshot asks for.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeSnapshotSpec {
        /// The claim to snapshot, or the existing content to bind to. Immutable.
        pub source: VolumeSnapshotSource,
        /// The VolumeSnapshotClass; unset means the default class of the driver.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_snapshot_class_name: Option<String>,
    }

    /// The source of a VolumeSnapshot: exactly one member is set.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeSnapshotSource {
        /// A claim in the snapshot's namespace to take a snapshot of (dynamic snapshot).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub persistent_volume_claim_name: Option<String>,
        /// An existing VolumeSnapshotContent (pre-provisioned snapshot).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_snapshot_content_name: Option<String>,
    }

    /// What the snapshot controller observed of a VolumeSnapshot.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeSnapshotStatus {
        /// The VolumeSnapshotContent this snapshot is bound to.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub bound_volume_snapshot_content_name: Option<String>,
        /// When the storage system took the snapshot.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub creation_time: Option<Time>,
        /// Whether a volume can be restored from it.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ready_to_use: Option<bool>,
        /// The smallest volume it can be restored to.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub restore_size: Option<Quantity>,
        /// The last error while taking it.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub error: Option<VolumeSnapshotError>,
        /// The VolumeGroupSnapshot this snapshot is part of.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_group_snapshot_name: Option<String>,
    }

    /// An error while taking a snapshot.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeSnapshotError {
        /// When it happened.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub time: Option<Time>,
        /// What happened (never holds secrets: it is logged).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub message: Option<String>,
    }

    /// How snapshots of one driver are taken (`kind: VolumeSnapshotClass`, cluster-scoped).
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeSnapshotClass {
        /// Standard object metadata.
        pub metadata: ObjectMeta,
        /// The CSI driver that takes the snapshots.
        pub driver: String,
        /// Driver-specific parameters for `CreateSnapshot`.
        pub parameters: Option<BTreeMap<String, String>>,
        /// [`DELETION_POLICY_DELETE`] or [`DELETION_POLICY_RETAIN`].
        pub deletion_policy: String,
    }

    api_resource!(VolumeSnapshotClass, group: "snapshot.storage.k8s.io", version: "v1",
    kind: "VolumeSnapshotClass", plural: "volumesnapshotclasses",
    scope: k8s_openapi::ClusterResourceScope,
    fields {
        driver => "driver",
        parameters => "parameters" if Option::is_none,
        deletion_policy => "deletionPolicy",
    });

    /// A snapshot in the storage system (`kind: VolumeSnapshotContent`, cluster-scoped).
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(default)]
    pub struct VolumeSnapshotContent {
        /// Standard object metadata.
        pub metadata: ObjectMeta,
        /// The snapshot and its binding.
        pub spec: VolumeSnapshotContentSpec,
        /// What the snapshotter sidecar observed.
        pub status: Option<VolumeSnapshotContentStatus>,
    }

    api_resource!(VolumeSnapshotContent, group: "snapshot.storage.k8s.io", version: "v1",
        kind: "VolumeSnapshotContent", plural: "volumesnapshotcontents",
        scope: k8s_openapi::ClusterResourceScope,
        fields { spec => "spec", status => "status" if Option::is_none });

    /// What a VolumeSnapshotContent is.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeSnapshotContentSpec {
        /// The VolumeSnapshot this content is bound to (name, namespace and, once bound, UID).
        pub volume_snapshot_ref: ObjectReference,
        /// [`DELETION_POLICY_DELETE`] or [`DELETION_POLICY_RETAIN`].
        pub deletion_policy: String,
        /// The CSI driver that took the snapshot.
        pub driver: String,
        /// The VolumeSnapshotClass it was taken with.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_snapshot_class_name: Option<String>,
        /// The volume to snapshot, or the existing snapshot's handle.
        pub source: VolumeSnapshotContentSource,
        /// `Filesystem` or `Block`: the mode of the snapshotted volume; unset when unknown.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub source_volume_mode: Option<String>,
    }

    /// The CSI source of a snapshot: exactly one member is set.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeSnapshotContentSource {
        /// The CSI volume ID to take a snapshot of (dynamic snapshot).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_handle: Option<String>,
        /// The CSI snapshot ID of an existing snapshot (pre-provisioned snapshot).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub snapshot_handle: Option<String>,
    }

    /// What the snapshotter sidecar observed of a VolumeSnapshotContent.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeSnapshotContentStatus {
        /// The CSI snapshot ID.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub snapshot_handle: Option<String>,
        /// When the snapshot was taken, in Unix nanoseconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub creation_time: Option<i64>,
        /// The snapshot's size in bytes: the smallest volume it can be restored to.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub restore_size: Option<i64>,
        /// Whether a volume can be restored from it.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ready_to_use: Option<bool>,
        /// The last error while taking it.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub error: Option<VolumeSnapshotError>,
        /// The CSI group snapshot ID, for a snapshot taken as part of a group.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_group_snapshot_handle: Option<String>,
    }
}
