//! The `groupsnapshot.storage.k8s.io` API group.

pub mod v1 {
    //! `groupsnapshot.storage.k8s.io/v1`: VolumeGroupSnapshots (namespaced, a user's request
    //! for crash-consistent snapshots of every claim a label selector picks),
    //! VolumeGroupSnapshotContents (cluster-scoped, the group snapshot in the storage system)
    //! and VolumeGroupSnapshotClasses, as external-snapshotter's `client/v8` (v8.7.0) defines
    //! them. The API server stores `v1beta2` and serves `v1` from it without a conversion
    //! webhook; the controllers read and write `v1`.

    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
    use serde::{Deserialize, Serialize};

    use crate::api_resource;
    use crate::snapshot::v1::VolumeSnapshotError;

    /// A user's request for snapshots of a group of claims, or a handle on an existing group
    /// snapshot (`kind: VolumeGroupSnapshot`).
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(default)]
    pub struct VolumeGroupSnapshot {
        /// Standard object metadata.
        pub metadata: ObjectMeta,
        /// Which claims, and with which class.
        pub spec: VolumeGroupSnapshotSpec,
        /// What the snapshot controller observed; absent until it acts.
        pub status: Option<VolumeGroupSnapshotStatus>,
    }

    api_resource!(VolumeGroupSnapshot, group: "groupsnapshot.storage.k8s.io", version: "v1",
        kind: "VolumeGroupSnapshot", plural: "volumegroupsnapshots",
        scope: k8s_openapi::NamespaceResourceScope,
        fields { spec => "spec", status => "status" if Option::is_none });

    /// What a VolumeGroupSnapshot asks for.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeGroupSnapshotSpec {
        /// The claims to snapshot, or the existing content to bind to. Immutable.
        pub source: VolumeGroupSnapshotSource,
        /// The VolumeGroupSnapshotClass; unset means the default class of the driver.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_group_snapshot_class_name: Option<String>,
    }

    /// The source of a VolumeGroupSnapshot: exactly one member is set.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeGroupSnapshotSource {
        /// Picks the claims in the group snapshot's namespace (dynamic group snapshot).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub selector: Option<LabelSelector>,
        /// An existing VolumeGroupSnapshotContent (pre-provisioned group snapshot).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_group_snapshot_content_name: Option<String>,
    }

    /// What the snapshot controller observed of a VolumeGroupSnapshot.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeGroupSnapshotStatus {
        /// The VolumeGroupSnapshotContent this group snapshot is bound to.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub bound_volume_group_snapshot_content_name: Option<String>,
        /// When the storage system took the group snapshot.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub creation_time: Option<Time>,
        /// Whether every member snapshot can be restored from.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ready_to_use: Option<bool>,
        /// The last error while taking it.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub error: Option<VolumeSnapshotError>,
    }

    /// How group snapshots of one driver are taken (`kind: VolumeGroupSnapshotClass`,
    /// cluster-scoped).
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeGroupSnapshotClass {
        /// Standard object metadata.
        pub metadata: ObjectMeta,
        /// The CSI driver that takes the group snapshots.
        pub driver: String,
        /// Driver-specific parameters for `CreateVolumeGroupSnapshot`.
        pub parameters: Option<BTreeMap<String, String>>,
        /// `Delete` or `Retain` (the constants of [`crate::snapshot::v1`]).
        pub deletion_policy: String,
    }

    api_resource!(VolumeGroupSnapshotClass, group: "groupsnapshot.storage.k8s.io", version: "v1",
    kind: "VolumeGroupSnapshotClass", plural: "volumegroupsnapshotclasses",
    scope: k8s_openapi::ClusterResourceScope,
    fields {
        driver => "driver",
        parameters => "parameters" if Option::is_none,
        deletion_policy => "deletionPolicy",
    });

    /// A group snapshot in the storage system (`kind: VolumeGroupSnapshotContent`,
    /// cluster-scoped).
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(default)]
    pub struct VolumeGroupSnapshotContent {
        /// Standard object metadata.
        pub metadata: ObjectMeta,
        /// The group snapshot and its binding.
        pub spec: VolumeGroupSnapshotContentSpec,
        /// What the snapshotter sidecar observed.
        pub status: Option<VolumeGroupSnapshotContentStatus>,
    }

    api_resource!(VolumeGroupSnapshotContent, group: "groupsnapshot.storage.k8s.io", version: "v1",
        kind: "VolumeGroupSnapshotContent", plural: "volumegroupsnapshotcontents",
        scope: k8s_openapi::ClusterResourceScope,
        fields { spec => "spec", status => "status" if Option::is_none });

    /// What a VolumeGroupSnapshotContent is.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeGroupSnapshotContentSpec {
        /// The VolumeGroupSnapshot this content is bound to (name, namespace and, once bound,
        /// UID).
        pub volume_group_snapshot_ref: ObjectReference,
        /// `Delete` or `Retain`.
        pub deletion_policy: String,
        /// The CSI driver that took the group snapshot.
        pub driver: String,
        /// The VolumeGroupSnapshotClass it was taken with.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_group_snapshot_class_name: Option<String>,
        /// The volumes to snapshot, or the existing group snapshot's handles.
        pub source: VolumeGroupSnapshotContentSource,
    }

    /// The CSI source of a group snapshot: exactly one member is set.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeGroupSnapshotContentSource {
        /// The CSI volume IDs to snapshot together (dynamic group snapshot).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub volume_handles: Vec<String>,
        /// The handles of an existing group snapshot (pre-provisioned group snapshot).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub group_snapshot_handles: Option<GroupSnapshotHandles>,
    }

    /// The CSI IDs of an existing group snapshot and of its member snapshots.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct GroupSnapshotHandles {
        /// The CSI group snapshot ID.
        pub volume_group_snapshot_handle: String,
        /// The CSI snapshot IDs of the members.
        pub volume_snapshot_handles: Vec<String>,
    }

    /// What the snapshotter sidecar observed of a VolumeGroupSnapshotContent.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeGroupSnapshotContentStatus {
        /// The CSI group snapshot ID.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_group_snapshot_handle: Option<String>,
        /// When the group snapshot was taken.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub creation_time: Option<Time>,
        /// Whether every member snapshot can be restored from.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ready_to_use: Option<bool>,
        /// The last error while taking it.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub error: Option<VolumeSnapshotError>,
        /// One entry per member: its volume and snapshot IDs.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub volume_snapshot_info_list: Vec<VolumeSnapshotInfo>,
    }

    /// One member of a group snapshot, as the driver reported it.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct VolumeSnapshotInfo {
        /// The CSI volume ID of the snapshotted volume.
        #[serde(skip_serializing_if = "String::is_empty")]
        pub volume_handle: String,
        /// The CSI snapshot ID.
        #[serde(skip_serializing_if = "String::is_empty")]
        pub snapshot_handle: String,
        /// When the snapshot was taken, in Unix nanoseconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub creation_time: Option<i64>,
        /// Whether a volume can be restored from it.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ready_to_use: Option<bool>,
        /// Its size in bytes: the smallest volume it can be restored to.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub restore_size: Option<i64>,
    }
}
