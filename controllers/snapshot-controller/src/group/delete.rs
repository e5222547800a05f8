//! The group snapshot's bound finalizer and its deletion (upstream's
//! `checkandAddGroupSnapshotFinalizers`, `addGroupSnapshotFinalizer`,
//! `processGroupSnapshotWithDeletionTimestamp`, `setAnnVolumeGroupSnapshotBeingDeleted`,
//! `findGroupSnapshotMembers`, `removeGroupSnapshotFinalizer`): a deleted group snapshot waits
//! while one of its members is being restored, marks its group content as being deleted,
//! deletes it under the deletion policy Delete, deletes its member snapshots, and then lets go
//! of its finalizer (kept while a deleted group content still exists).

use std::sync::Arc;

use csi_crd_types::group_snapshot::v1::{VolumeGroupSnapshot, VolumeGroupSnapshotContent};
use csi_crd_types::snapshot::v1::{DELETION_POLICY_DELETE, VolumeSnapshot};
use csi_kube::EventType;
use csi_snapshot_utils as utils;
use serde_json::json;
use tracing::{debug, error};

use super::GroupController;
use crate::controller::{Result, SyncError, name, namespace, uid};
use crate::metrics::{self, OperationKey};

impl GroupController {
    /// Adds the bound finalizer once the group snapshot is bound to its group content.
    pub(crate) async fn check_and_add_group_snapshot_finalizers(
        &self,
        group: &VolumeGroupSnapshot,
    ) -> Result<()> {
        let content = if group
            .spec
            .source
            .volume_group_snapshot_content_name
            .is_some()
        {
            self.preprovisioned_group_content_from_store(group).await?
        } else {
            self.dynamic_group_content_from_store(group).await?
        };
        if content.is_some() && utils::need_to_add_group_snapshot_bound_finalizer(group) {
            debug!(
                "checkandAddGroupSnapshotFinalizers: Add Finalizer for VolumeGroupSnapshot[{}]",
                utils::group_snapshot_key(group)
            );
            return self.add_group_snapshot_finalizer(group, true).await;
        }
        Ok(())
    }

    /// Adds the bound finalizer: an update when the group snapshot has no finalizers, a JSON
    /// patch appending it otherwise.
    pub(crate) async fn add_group_snapshot_finalizer(
        &self,
        group: &VolumeGroupSnapshot,
        add_bound_finalizer: bool,
    ) -> Result<()> {
        let key = utils::group_snapshot_key(group);
        let updated = if group.metadata.finalizers.as_ref().is_none_or(Vec::is_empty) {
            let mut clone = group.clone();
            if add_bound_finalizer {
                clone
                    .metadata
                    .finalizers
                    .get_or_insert_with(Vec::new)
                    .push(utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER.to_string());
            }
            self.api.update_group_snapshot(&clone).await
        } else {
            let mut patch = Vec::new();
            if add_bound_finalizer {
                patch.push(json!({
                    "op": "add",
                    "path": "/metadata/finalizers/-",
                    "value": utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER,
                }));
            }
            self.api
                .patch_group_snapshot(
                    namespace(&group.metadata),
                    name(&group.metadata),
                    &json!(patch),
                )
                .await
        }
        .map_err(|err| SyncError::update(&key, err))?;
        if let Err(err) = self.store_group_snapshot_update(Arc::new(updated)) {
            error!("failed to update group snapshot store {err}");
        }
        debug!("Added protection finalizer to volume group snapshot {key}");
        Ok(())
    }

    /// A group snapshot being deleted: find its group content, and once it is a deletion
    /// candidate (it still has its bound finalizer) delete its members and, by the deletion
    /// policy, its group content, then remove the finalizer.
    pub(crate) async fn process_group_snapshot_with_deletion_timestamp(
        &self,
        group: &VolumeGroupSnapshot,
    ) -> Result<()> {
        let key = utils::group_snapshot_key(group);
        debug!(
            "processGroupSnapshotWithDeletionTimestamp VolumeGroupSnapshot[{key}]: {}",
            utils::group_snapshot_status_for_logging(group)
        );
        let driver = self.group_snapshot_driver_name(group);
        self.ctrl.metrics.operation_start(
            OperationKey::new(metrics::DELETE_GROUP_SNAPSHOT, uid(&group.metadata)),
            &driver,
            Self::group_provision_type(group),
        );
        // Upstream falls back to the dynamic group content's name only under a condition
        // that can never hold (the address of a field compared with nil): an unbound group
        // snapshot looks for no group content.
        let content_name = group
            .status
            .as_ref()
            .and_then(|s| s.bound_volume_group_snapshot_content_name.clone())
            .unwrap_or_default();
        let mut content = self
            .group_content_store
            .get(&content_name)
            .filter(|c| utils::is_volume_group_snapshot_ref_set(group, c));
        let delete_content = content
            .as_ref()
            .is_some_and(|c| c.spec.deletion_policy == DELETION_POLICY_DELETE);

        debug!(
            "processGroupSnapshotWithDeletionTimestamp[{key}]: check if group snapshot is a candidate for deletion"
        );
        if !utils::is_group_snapshot_deletion_candidate(group) {
            return Ok(());
        }
        let members = self.find_group_snapshot_members(group);
        for member in &members {
            let Some(snapshot) = self
                .ctrl
                .listers
                .snapshot(namespace(&group.metadata), name(&member.metadata))
            else {
                continue;
            };
            if self.ctrl.volume_being_created_from_snapshot(&snapshot) {
                let message = format!(
                    "Snapshot {} belonging to VolumeGroupSnapshot {key} is being used to restore a PVC",
                    utils::snapshot_key(&snapshot)
                );
                debug!("{message}");
                self.ctrl.events.record(
                    group,
                    EventType::Warning,
                    "SnapshotDeletePending",
                    &message,
                );
                return Err(SyncError::new(format!(
                    "{message}: snapshot is in use, will retry deletion"
                )));
            }
        }

        if let Some(c) = &content {
            content = Some(
                self.set_ann_volume_group_snapshot_being_deleted(c)
                    .await
                    .inspect_err(|err| {
                        debug!(
                            "processGroupSnapshotWithDeletionTimestamp[{key}]: failed to set VolumeGroupSnapshotBeingDeleted annotation on the group snapshot content [{}]: {err}",
                            name(&c.metadata)
                        );
                    })?,
            );
        }
        if let Some(c) = &content
            && delete_content
        {
            let content_name = name(&c.metadata);
            debug!(
                "processGroupSnapshotWithDeletionTimestamp[{key}]: set DeletionTimeStamp on group snapshot content [{content_name}]."
            );
            if let Err(err) = self.api.delete_group_content(content_name).await {
                self.ctrl.events.record(
                    group,
                    EventType::Warning,
                    "GroupSnapshotContentObjectDeleteError",
                    "Failed to delete group snapshot content API object",
                );
                return Err(SyncError::new(format!(
                    "failed to delete VolumeGroupSnapshotContent {content_name} from API server: {:?}",
                    err.message
                )));
            }
        }

        debug!(
            "processGroupSnapshotWithDeletionTimestamp[{key}]: Delete individual snapshots that are part of the group snapshot"
        );
        let ns = namespace(&group.metadata);
        for member in &members {
            let member_name = name(&member.metadata);
            if let Err(err) = self.api.delete_snapshot(ns, member_name).await
                && !err.is_not_found()
            {
                let message = format!(
                    "failed to delete snapshot API object {ns}/{member_name} part of group snapshot {key}: {err}"
                );
                error!("{message}");
                self.ctrl
                    .events
                    .record(group, EventType::Warning, "SnapshotDeleteError", &message);
                return Err(SyncError::new(message));
            }
        }

        debug!(
            "processGroupSnapshotWithDeletionTimestamp[{key}] : Remove Finalizer for VolumeGroupSnapshot"
        );
        let remove_bound = !(content.is_some() && delete_content);
        self.remove_group_snapshot_finalizer(group, remove_bound)
            .await
    }

    /// Marks the group content as being deleted (the annotation the sidecar waits for),
    /// unless it is marked already.
    async fn set_ann_volume_group_snapshot_being_deleted(
        &self,
        content: &VolumeGroupSnapshotContent,
    ) -> Result<Arc<VolumeGroupSnapshotContent>> {
        let marked = content
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(utils::ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED));
        if marked {
            return Ok(Arc::new(content.clone()));
        }
        let content_name = name(&content.metadata);
        debug!(
            "setAnnVolumeGroupSnapshotBeingDeleted: set annotation [{}] on group snapshot content [{content_name}].",
            utils::ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED
        );
        let mut annotations = content.metadata.annotations.clone().unwrap_or_default();
        annotations.insert(
            utils::ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED.to_string(),
            "yes".to_string(),
        );
        let patch = json!([{
            "op": "replace",
            "path": "/metadata/annotations",
            "value": annotations,
        }]);
        let patched = self
            .api
            .patch_group_content(content_name, &patch)
            .await
            .map_err(|err| SyncError::update(content_name, err))?;
        let patched = Arc::new(patched);
        self.store_group_content_update(patched.clone())
            .inspect_err(|err| {
                debug!(
                    "setAnnVolumeGroupSnapshotBeingDeleted for group snapshot content [{content_name}]: cannot update internal cache {err}"
                );
            })?;
        Ok(patched)
    }

    /// The member snapshots of a group snapshot, from the membership index.
    pub(crate) fn find_group_snapshot_members(
        &self,
        group: &VolumeGroupSnapshot,
    ) -> Vec<Arc<VolumeSnapshot>> {
        self.listers
            .group_members(namespace(&group.metadata), name(&group.metadata))
    }

    /// Removes the bound finalizer (an update of the group snapshot).
    async fn remove_group_snapshot_finalizer(
        &self,
        group: &VolumeGroupSnapshot,
        remove_bound_finalizer: bool,
    ) -> Result<()> {
        if !remove_bound_finalizer {
            return Ok(());
        }
        let mut clone = group.clone();
        let finalizers = utils::remove_string(
            clone.metadata.finalizers.as_deref().unwrap_or_default(),
            utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER,
        );
        clone.metadata.finalizers = (!finalizers.is_empty()).then_some(finalizers);
        let updated = self
            .api
            .update_group_snapshot(&clone)
            .await
            .map_err(|err| SyncError::update(name(&group.metadata), err))?;
        if let Err(err) = self.store_group_snapshot_update(Arc::new(updated)) {
            error!("failed to update group snapshot store {err}");
        }
        debug!(
            "Removed protection finalizer from volume group snapshot {}",
            utils::group_snapshot_key(group)
        );
        Ok(())
    }
}
