//! Group snapshots in the snapshot controller: the caches of the group snapshot types and
//! the `ByVolumeGroupSnapshotMembership` index of VolumeSnapshots, declared on the same shared
//! caches as the snapshot half. The snapshot half reads them: a member snapshot keeps its
//! `volumesnapshot-in-group-protection` finalizer while its group exists, gets its group's
//! owner reference, and takes its group's name from the group content whose handle its
//! content carries.
//!
//! The group snapshots' own syncs (VolumeGroupSnapshot binding, member VolumeSnapshot and
//! VolumeSnapshotContent creation, the group finalizers) plug in here, on the
//! `snapshot-controller-group-snapshot` and `-group-content` queues.

use csi_crd_types::group_snapshot::v1::{
    VolumeGroupSnapshot, VolumeGroupSnapshotClass, VolumeGroupSnapshotContent,
};
use csi_crd_types::snapshot::v1::VolumeSnapshot;
use csi_kube::{Caches, Selector, Store};
use csi_snapshot_utils as utils;

/// The group snapshot queue's name.
pub const GROUP_SNAPSHOT_QUEUE: &str = "snapshot-controller-group-snapshot";
/// The group content queue's name.
pub const GROUP_CONTENT_QUEUE: &str = "snapshot-controller-group-content";

/// The group snapshot caches.
#[derive(Clone)]
pub struct GroupCaches {
    /// VolumeGroupSnapshots.
    pub group_snapshots: Store<VolumeGroupSnapshot>,
    /// VolumeGroupSnapshotContents.
    pub group_contents: Store<VolumeGroupSnapshotContent>,
    /// VolumeGroupSnapshotClasses.
    pub group_classes: Store<VolumeGroupSnapshotClass>,
}

impl std::fmt::Debug for GroupCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCaches").finish_non_exhaustive()
    }
}

/// Declares the membership index of VolumeSnapshots (always, as upstream) and, with group
/// snapshots on, the group caches.
pub fn declare(
    caches: &Caches,
    enabled: bool,
) -> Result<Option<GroupCaches>, csi_kube::cache::Error> {
    let all = Selector::all();
    caches.index::<VolumeSnapshot, _>(
        &all,
        utils::VOLUME_SNAPSHOT_PARENT_GROUP_INDEX,
        |snapshot| {
            let key = utils::volume_snapshot_parent_group_key(Some(snapshot));
            if key.is_empty() {
                Vec::new()
            } else {
                vec![key]
            }
        },
    )?;
    if !enabled {
        return Ok(None);
    }
    Ok(Some(GroupCaches {
        group_snapshots: caches.store(&all)?,
        group_contents: caches.store(&all)?,
        group_classes: caches.store(&all)?,
    }))
}
