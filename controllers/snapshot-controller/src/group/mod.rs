//! Group snapshots in the snapshot controller (upstream's
//! `groupsnapshot_controller_helper.go` and the group half of `snapshot_controller_base.go`):
//! the caches of the group snapshot types, the `ByVolumeGroupSnapshotMembership` index of
//! VolumeSnapshots, the `snapshot-controller-group-snapshot` and `-group-content` queues and
//! the syncs behind them.
//!
//! - [`snapshot`]: a VolumeGroupSnapshot's sync: validation, binding to a pre-provisioned
//!   group content or creating the content of a dynamic one.
//! - [`delete`]: the bound finalizer and deletion (the members deleted with the group
//!   snapshot, the group content deleted or kept by its deletion policy).
//! - [`content`]: a VolumeGroupSnapshotContent's sync, and creating one for a dynamic group
//!   snapshot from the claims its label selector picks.
//! - [`members`]: the member VolumeSnapshots and VolumeSnapshotContents, made from the group
//!   content's `status.volumeSnapshotInfoList` once the sidecar has written it.
//! - [`status`]: the group snapshot's status from its group content, and the error status with
//!   its Event.
//! - [`class`]: the group snapshot class, the default class.
//! - [`api`]: the API server and cache traits of the group half.
//! - [`run`]: the watches feeding the queues, and the workers.
//!
//! The snapshot half reads the group caches through [`crate::api::Listers`]: a member snapshot
//! keeps its `volumesnapshot-in-group-protection` finalizer while its group exists, gets its
//! group's owner reference, and takes its group's name from the group content whose handle its
//! content carries. This half uses the snapshot half's caches, Events and metrics.

pub mod api;
pub mod class;
pub mod content;
pub mod delete;
pub mod members;
pub mod run;
pub mod snapshot;
pub mod status;

use std::sync::Arc;

use csi_crd_types::group_snapshot::v1::{
    VolumeGroupSnapshot, VolumeGroupSnapshotClass, VolumeGroupSnapshotContent,
};
use csi_crd_types::snapshot::v1::VolumeSnapshot;
use csi_kube::{Caches, Selector, Store, Subscription};
use csi_snapshot_utils as utils;
use csi_workqueue::WorkQueue;
use k8s_openapi::api::core::v1::PersistentVolume;
use tracing::{debug, error};

use crate::controller::store::VersionedStore;
use crate::controller::{Result, SnapshotController, SyncError, name, uid};
use crate::metrics::{self, OperationKey};
use api::{CacheGroupListers, GroupApi, GroupListers};

/// The group snapshot queue's name.
pub const GROUP_SNAPSHOT_QUEUE: &str = "snapshot-controller-group-snapshot";
/// The group content queue's name.
pub const GROUP_CONTENT_QUEUE: &str = "snapshot-controller-group-content";

/// The group snapshot caches and watches.
pub struct GroupCaches {
    /// VolumeGroupSnapshots.
    pub group_snapshots: Store<VolumeGroupSnapshot>,
    /// VolumeGroupSnapshotContents.
    pub group_contents: Store<VolumeGroupSnapshotContent>,
    /// VolumeGroupSnapshotClasses.
    pub group_classes: Store<VolumeGroupSnapshotClass>,
    /// The VolumeGroupSnapshot watch, which feeds the group snapshot queue.
    pub group_snapshot_events: Subscription<VolumeGroupSnapshot>,
    /// The VolumeGroupSnapshotContent watch, which feeds the group content queue.
    pub group_content_events: Subscription<VolumeGroupSnapshotContent>,
    /// What the group syncs read.
    pub listers: CacheGroupListers,
}

impl std::fmt::Debug for GroupCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCaches").finish_non_exhaustive()
    }
}

/// Declares the membership index of VolumeSnapshots (always, as upstream) and, with group
/// snapshots on, the group watches and caches. The PV `ByVolumeHandle` index is the snapshot
/// half's.
pub fn declare(
    caches: &Caches,
    enabled: bool,
    resync: std::time::Duration,
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
    let group_snapshot_events = caches
        .subscribe::<VolumeGroupSnapshot>(&all)?
        .with_resync(resync);
    let group_content_events = caches
        .subscribe::<VolumeGroupSnapshotContent>(&all)?
        .with_resync(resync);
    let group_classes: Store<VolumeGroupSnapshotClass> = caches.store(&all)?;
    let listers = CacheGroupListers {
        group_snapshots: group_snapshot_events.store(),
        group_contents: group_content_events.store(),
        group_classes: group_classes.clone(),
        snapshots: caches.store::<VolumeSnapshot>(&all)?,
        volumes: caches.store::<PersistentVolume>(&all)?,
    };
    Ok(Some(GroupCaches {
        group_snapshots: group_snapshot_events.store(),
        group_contents: group_content_events.store(),
        group_classes,
        group_snapshot_events,
        group_content_events,
        listers,
    }))
}

/// The group half of the controller: its queues, own stores, API client and caches, on the
/// snapshot half's Events, metrics and snapshot caches.
#[derive(Debug)]
pub struct GroupController {
    pub(crate) ctrl: Arc<SnapshotController>,
    pub(crate) api: Arc<dyn GroupApi>,
    pub(crate) listers: Arc<dyn GroupListers>,
    pub(crate) group_snapshot_store: VersionedStore<VolumeGroupSnapshot>,
    pub(crate) group_content_store: VersionedStore<VolumeGroupSnapshotContent>,
    /// VolumeGroupSnapshot keys (`namespace/name`) to sync.
    pub group_snapshot_queue: WorkQueue<String>,
    /// VolumeGroupSnapshotContent names to sync.
    pub group_content_queue: WorkQueue<String>,
}

/// What a [`GroupController`] is made of besides the snapshot half.
#[derive(Clone, Debug)]
pub struct GroupParts {
    /// The API server.
    pub api: Arc<dyn GroupApi>,
    /// The caches.
    pub listers: Arc<dyn GroupListers>,
    /// The group snapshot queue.
    pub group_snapshot_queue: WorkQueue<String>,
    /// The group content queue.
    pub group_content_queue: WorkQueue<String>,
}

impl GroupController {
    /// The group half beside `ctrl`, with empty own stores.
    pub fn new(ctrl: Arc<SnapshotController>, parts: GroupParts) -> Self {
        GroupController {
            ctrl,
            api: parts.api,
            listers: parts.listers,
            group_snapshot_store: VersionedStore::new("groupsnapshot"),
            group_content_store: VersionedStore::new("groupsnapshotcontent"),
            group_snapshot_queue: parts.group_snapshot_queue,
            group_content_queue: parts.group_content_queue,
        }
    }

    /// Records a group snapshot version (upstream's `storeGroupSnapshotUpdate`).
    pub(crate) fn store_group_snapshot_update(
        &self,
        group: Arc<VolumeGroupSnapshot>,
    ) -> Result<bool> {
        self.group_snapshot_store
            .update(&utils::group_snapshot_key(&group), group)
            .map_err(SyncError::new)
    }

    /// Records a group content version (upstream's `storeGroupSnapshotContentUpdate`).
    pub(crate) fn store_group_content_update(
        &self,
        content: Arc<VolumeGroupSnapshotContent>,
    ) -> Result<bool> {
        let key = name(&content.metadata).to_string();
        self.group_content_store
            .update(&key, content)
            .map_err(SyncError::new)
    }

    /// Fills the own stores from the group caches (the group half of upstream's
    /// `initializeCaches`).
    pub fn initialize_caches(
        &self,
        groups: Vec<Arc<VolumeGroupSnapshot>>,
        contents: Vec<Arc<VolumeGroupSnapshotContent>>,
    ) {
        for group in groups {
            if let Err(err) = self.store_group_snapshot_update(group) {
                error!("error updating volume group snapshot cache: {err}");
            }
        }
        for content in contents {
            if let Err(err) = self.store_group_content_update(content) {
                error!("error updating volume group snapshot content cache: {err}");
            }
        }
    }

    /// Syncs the group snapshot `key` (`namespace/name`): the watch's version if it exists,
    /// else the deletion of the last one this controller saw (upstream's
    /// `syncGroupSnapshotByKey`).
    pub async fn sync_group_snapshot_by_key(&self, key: &str) -> Result<()> {
        debug!("syncGroupSnapshotByKey[{key}]");
        let Some((ns, group_name)) = key.split_once('/') else {
            error!(
                "error getting namespace & name of group snapshot {key:?} to get group snapshot from informer"
            );
            return Ok(());
        };
        if let Some(group) = self.listers.group_snapshot(ns, group_name) {
            let (new_group, result) = self.check_and_update_group_snapshot_class(group).await;
            return match result {
                Ok(()) => self.update_group_snapshot(new_group).await,
                Err(err)
                    if new_group.metadata.deletion_timestamp.is_some() && err.is_not_found() =>
                {
                    debug!(
                        "GroupSnapshot {key:?} is being deleted. GroupSnapshotClass has already been removed"
                    );
                    self.update_group_snapshot(new_group).await
                }
                Err(err) => Err(err),
            };
        }
        let Some(group) = self.group_snapshot_store.get(key) else {
            debug!("deletion of group snapshot {key:?} was already processed");
            return Ok(());
        };
        self.delete_group_snapshot(&group);
        Ok(())
    }

    /// Syncs the group content `name` (upstream's `syncGroupSnapshotContentByKey`).
    pub async fn sync_group_content_by_key(&self, content_name: &str) -> Result<()> {
        debug!("syncGroupSnapshotContentByKey[{content_name}]");
        if let Some(content) = self.listers.group_content(content_name) {
            return self.update_group_content(content).await;
        }
        let Some(content) = self.group_content_store.get(content_name) else {
            debug!("deletion of group snapshot content {content_name:?} was already processed");
            return Ok(());
        };
        self.delete_group_content(&content);
        Ok(())
    }

    async fn update_group_snapshot(&self, group: Arc<VolumeGroupSnapshot>) -> Result<()> {
        match self.store_group_snapshot_update(group.clone()) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(err) => {
                error!("{err}");
                return Ok(());
            }
        }
        if let Err(err) = self.sync_group_snapshot(&group).await {
            let key = utils::group_snapshot_key(&group);
            if err.is_conflict() {
                debug!("could not sync group snapshot {key:?}: {err}");
            } else {
                error!("could not sync group snapshot {key:?}: {err}");
            }
            return Err(err);
        }
        Ok(())
    }

    async fn update_group_content(&self, content: Arc<VolumeGroupSnapshotContent>) -> Result<()> {
        match self.store_group_content_update(content.clone()) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(err) => {
                error!("{err}");
                return Ok(());
            }
        }
        if let Err(err) = self.sync_group_content(&content).await {
            let content_name = name(&content.metadata);
            if err.is_conflict() {
                debug!("could not sync group snapshot content {content_name:?}: {err}");
            } else {
                error!("could not sync group snapshot content {content_name:?}: {err}");
            }
            return Err(err);
        }
        Ok(())
    }

    /// A group snapshot is gone: forget it, record its deletion and sync its group content.
    fn delete_group_snapshot(&self, group: &VolumeGroupSnapshot) {
        let key = utils::group_snapshot_key(group);
        self.group_snapshot_store.delete(&key);
        debug!("group snapshot {key:?} deleted");
        let driver = self.group_snapshot_driver_name(group);
        self.ctrl.metrics.record(
            &OperationKey::new(metrics::DELETE_GROUP_SNAPSHOT, uid(&group.metadata)),
            Some(metrics::STATUS_SUCCESS),
            &driver,
        );
        let content_name = group
            .status
            .as_ref()
            .and_then(|s| s.bound_volume_group_snapshot_content_name.clone())
            .unwrap_or_default();
        if content_name.is_empty() {
            debug!("deleteGroupSnapshot[{key:?}]: group snapshot content not bound");
            return;
        }
        debug!(
            "deleteGroupSnapshot[{key:?}]: scheduling sync of group snapshot content {content_name}"
        );
        self.group_content_queue.add(content_name);
    }

    /// A group content is gone: forget it and sync its group snapshot.
    fn delete_group_content(&self, content: &VolumeGroupSnapshotContent) {
        let content_name = name(&content.metadata);
        self.group_content_store.delete(content_name);
        debug!("group snapshot content {content_name:?} deleted");
        let group_key = utils::group_snapshot_ref_key(&content.spec.volume_group_snapshot_ref);
        if group_key == "/" || group_key.is_empty() {
            return;
        }
        self.group_snapshot_queue.add(group_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caches() -> Caches {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        Caches::new(client)
    }

    // Group snapshots off (the gate off, or their CRDs absent): only the membership index
    // on the VolumeSnapshot watch, as upstream; on: the three group watches, and the PV
    // watch for the `ByVolumeHandle` lookups of the members.
    #[tokio::test]
    async fn the_group_watches_exist_only_with_group_snapshots_on() {
        let off = caches();
        assert!(
            declare(&off, false, std::time::Duration::ZERO)
                .unwrap()
                .is_none()
        );
        assert_eq!(off.watch_count(), 1, "{:?}", off.describe());
        let on = caches();
        let group = declare(&on, true, std::time::Duration::ZERO).unwrap();
        assert!(group.is_some());
        let mut watches = on.describe();
        watches.sort();
        assert_eq!(
            watches,
            [
                "persistentvolumes",
                "volumegroupsnapshotclasses.groupsnapshot.storage.k8s.io",
                "volumegroupsnapshotcontents.groupsnapshot.storage.k8s.io",
                "volumegroupsnapshots.groupsnapshot.storage.k8s.io",
                "volumesnapshots.snapshot.storage.k8s.io",
            ]
        );
    }
}
