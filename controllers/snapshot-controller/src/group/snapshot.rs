//! A VolumeGroupSnapshot's sync (upstream's `syncGroupSnapshot` and what it calls):
//! validation, the bound finalizer, binding to a pre-provisioned group content, creating the
//! group content of a dynamic group snapshot and then its members, and checking a ready one.
//! Deletion is in [`super::delete`].

use std::sync::Arc;

use csi_crd_types::group_snapshot::v1::{VolumeGroupSnapshot, VolumeGroupSnapshotContent};
use csi_kube::EventType;
use csi_snapshot_utils as utils;
use serde_json::json;
use tracing::{debug, error};

use super::GroupController;
use crate::controller::{Result, SyncError, name, namespace, uid};
use crate::metrics::{self, OperationKey};

impl GroupController {
    /// Syncs a group snapshot.
    pub async fn sync_group_snapshot(&self, group: &VolumeGroupSnapshot) -> Result<()> {
        let key = utils::group_snapshot_key(group);
        debug!("synchronizing VolumeGroupSnapshot[{key}]");
        if group.metadata.deletion_timestamp.is_some() {
            return self
                .process_group_snapshot_with_deletion_timestamp(group)
                .await;
        }
        let source = &group.spec.source;
        if source.selector.is_some() == source.volume_group_snapshot_content_name.is_some() {
            let message =
                "Exactly one of Selector and VolumeGroupSnapshotContentName should be specified";
            error!("syncGroupSnapshot[{key}]: validation error, {message}");
            let _ = self
                .update_group_snapshot_error_status_with_event(
                    group,
                    true,
                    EventType::Warning,
                    "GroupSnapshotValidationError",
                    message,
                )
                .await;
            return Err(SyncError::new(message));
        }
        if let Err(err) = self.check_and_add_group_snapshot_finalizers(group).await {
            error!("error checkandAddGroupSnapshotFinalizers for group snapshot [{key}]: {err}");
            self.ctrl.events.record(
                group,
                EventType::Warning,
                "GroupSnapshotFinalizerError",
                &format!("Failed to check and update group snapshot: {err}"),
            );
            return Err(err);
        }
        if !utils::is_group_snapshot_ready(group)
            || !utils::is_bound_volume_group_snapshot_content_name_set(group)
        {
            return self.sync_unready_group_snapshot(group).await;
        }
        self.sync_ready_group_snapshot(group).await
    }

    pub(crate) fn group_provision_type(group: &VolumeGroupSnapshot) -> &'static str {
        if group
            .spec
            .source
            .volume_group_snapshot_content_name
            .is_some()
        {
            metrics::PRE_PROVISIONED
        } else {
            metrics::DYNAMIC
        }
    }

    /// A ready, bound group snapshot: check that its group content still exists and points
    /// back at it.
    async fn sync_ready_group_snapshot(&self, group: &VolumeGroupSnapshot) -> Result<()> {
        let Some(content_name) = group
            .status
            .as_ref()
            .and_then(|s| s.bound_volume_group_snapshot_content_name.clone())
            .filter(|n| !n.is_empty())
        else {
            return Err(SyncError::new(format!(
                "group snapshot {} is not bound to a group snapshot content",
                utils::group_snapshot_key(group)
            )));
        };
        let Some(content) = self.group_content_store.get(&content_name) else {
            return self
                .update_group_snapshot_error_status_with_event(
                    group,
                    true,
                    EventType::Warning,
                    "GroupSnapshotContentMissing",
                    "VolumeGroupSnapshotContent is missing",
                )
                .await;
        };
        debug!(
            "syncReadyGroupSnapshot[{}]: VolumeGroupSnapshotContent {content_name:?} found",
            utils::group_snapshot_key(group)
        );
        if !utils::is_volume_group_snapshot_ref_set(group, &content) {
            return self
                .update_group_snapshot_error_status_with_event(
                    group,
                    true,
                    EventType::Warning,
                    "GroupSnapshotMisbound",
                    "VolumeGroupSnapshotContent is not bound to the VolumeGroupSnapshot correctly",
                )
                .await;
        }
        Ok(())
    }

    /// A group snapshot not ready or not bound yet: bind it to its pre-provisioned group
    /// content, make the members of its dynamic group content and take the content's status,
    /// or create that group content.
    pub(crate) async fn sync_unready_group_snapshot(
        &self,
        group: &VolumeGroupSnapshot,
    ) -> Result<()> {
        let key = utils::group_snapshot_key(group);
        debug!("syncUnreadyGroupSnapshot {key}");
        let driver = self.group_snapshot_driver_name(group);
        let provision_type = Self::group_provision_type(group);
        let group_uid = uid(&group.metadata);
        if !utils::is_group_snapshot_created(group) {
            self.ctrl.metrics.operation_start(
                OperationKey::new(metrics::CREATE_GROUP_SNAPSHOT, group_uid),
                &driver,
                provision_type,
            );
        }
        self.ctrl.metrics.operation_start(
            OperationKey::new(metrics::CREATE_GROUP_SNAPSHOT_AND_READY, group_uid),
            &driver,
            provision_type,
        );

        if let Some(wanted) = group.spec.source.volume_group_snapshot_content_name.clone() {
            let Some(content) = self.preprovisioned_group_content_from_store(group).await? else {
                let _ = self
                    .update_group_snapshot_error_status_with_event(
                        group,
                        true,
                        EventType::Warning,
                        "GroupSnapshotContentMissing",
                        "VolumeGroupSnapshotContent is missing",
                    )
                    .await;
                debug!(
                    "syncUnreadyGroupSnapshot[{key}]: group snapshot content {wanted:?} requested but not found, will try again"
                );
                return Err(SyncError::new(format!(
                    "group snapshot {key} requests an non-existing group snapshot content {wanted}"
                )));
            };
            let new_content = match self
                .check_and_bind_group_snapshot_content(group, &content)
                .await
            {
                Ok(c) => c,
                Err(err) => {
                    let _ = self
                        .update_group_snapshot_error_status_with_event(
                            group,
                            true,
                            EventType::Warning,
                            "GroupSnapshotBindFailed",
                            &format!(
                                "GroupSnapshot failed to bind VolumeGroupSnapshotContent, {err}"
                            ),
                        )
                        .await;
                    return Err(SyncError::new(format!(
                        "group snapshot {key} is bound, but VolumeGroupSnapshotContent {} is not bound to the VolumeGroupSnapshot correctly, {err}",
                        name(&content.metadata)
                    )));
                }
            };
            if let Err(err) = self.update_group_snapshot_status(group, &new_content).await {
                debug!("failed to update group snapshot {key} status: {err}");
                let _ = self
                    .update_group_snapshot_error_status_with_event(
                        group,
                        false,
                        EventType::Warning,
                        "GroupSnapshotStatusUpdateFailed",
                        &format!("GroupSnapshot status update failed, {err}"),
                    )
                    .await;
                return Err(err);
            }
            return Ok(());
        }

        if let Some(content) = self.dynamic_group_content_from_store(group).await? {
            debug!(
                "Found VolumeGroupSnapshotContent object {} for group snapshot {key}",
                name(&content.metadata)
            );
            if content.spec.source.group_snapshot_handles.is_some() {
                let _ = self
                    .update_group_snapshot_error_status_with_event(
                        group,
                        true,
                        EventType::Warning,
                        "GroupSnapshotHandleSet",
                        &format!(
                            "GroupSnapshot handle should not be set in group snapshot content {key} for dynamic provisioning"
                        ),
                    )
                    .await;
                return Err(SyncError::new(format!(
                    "VolumeGroupSnapshotHandle should not be set in the group snapshot content for dynamic provisioning for group snapshot {key}"
                )));
            }
            let content = self
                .create_snapshots_for_group_snapshot_content(&content, group)
                .await
                .inspect_err(|err| {
                    debug!(
                        "createSnapshotsForGroupSnapshotContent[{}]: failed to create snapshots and snapshotcontents for group snapshot {}: {err}",
                        name(&content.metadata),
                        name(&group.metadata)
                    );
                })?;
            self.bind_and_update_volume_group_snapshot(&content, group)
                .await?;
            return Ok(());
        }

        let content = match self.create_group_snapshot_content(group).await {
            Ok(content) => content,
            Err(err) => {
                let _ = self
                    .update_group_snapshot_error_status_with_event(
                        group,
                        true,
                        EventType::Warning,
                        "GroupSnapshotContentCreationFailed",
                        &format!("failed to create group snapshot content with error {err}"),
                    )
                    .await;
                return Err(err);
            }
        };
        if let Err(err) = self.update_group_snapshot_status(group, &content).await {
            let _ = self
                .update_group_snapshot_error_status_with_event(
                    group,
                    false,
                    EventType::Warning,
                    "GroupSnapshotStatusUpdateFailed",
                    &format!("GroupSnapshot status update failed, {err}"),
                )
                .await;
            return Err(err);
        }
        Ok(())
    }

    /// The pre-provisioned group content the group snapshot names, checked: it must be
    /// pre-provisioned and point at this group snapshot (or at no UID yet).
    pub(crate) async fn preprovisioned_group_content_from_store(
        &self,
        group: &VolumeGroupSnapshot,
    ) -> Result<Option<Arc<VolumeGroupSnapshotContent>>> {
        let key = utils::group_snapshot_key(group);
        let content_name = group
            .spec
            .source
            .volume_group_snapshot_content_name
            .clone()
            .unwrap_or_default();
        if content_name.is_empty() {
            return Err(SyncError::new(format!(
                "empty VolumeGroupSnapshotContentName for group snapshot {key}"
            )));
        }
        let Some(content) = self.group_content_store.get(&content_name) else {
            return Ok(None);
        };
        if content.spec.source.group_snapshot_handles.is_none() {
            let _ = self
                .update_group_snapshot_error_status_with_event(
                    group,
                    true,
                    EventType::Warning,
                    "GroupSnapshotContentMismatch",
                    "VolumeGroupSnapshotContent is dynamically provisioned while expecting a pre-provisioned one",
                )
                .await;
            return Err(SyncError::new(format!(
                "group snapshot {key} expects a pre-provisioned VolumeGroupSnapshotContent {content_name} but gets a dynamically provisioned one"
            )));
        }
        let reference = &content.spec.volume_group_snapshot_ref;
        let ref_uid = reference.uid.as_deref().unwrap_or_default();
        if reference.name.as_deref().unwrap_or_default() != name(&group.metadata)
            || reference.namespace.as_deref().unwrap_or_default() != namespace(&group.metadata)
            || (!ref_uid.is_empty() && ref_uid != uid(&group.metadata))
        {
            let message = format!(
                "VolumeGroupSnapshotContent [{content_name}] is bound to a different group snapshot"
            );
            let _ = self
                .update_group_snapshot_error_status_with_event(
                    group,
                    true,
                    EventType::Warning,
                    "GroupSnapshotContentMisbound",
                    &message,
                )
                .await;
            return Err(SyncError::new(message));
        }
        Ok(Some(content))
    }

    /// The group content created for a dynamic group snapshot (`groupsnapcontent-<uid>`),
    /// checked: it must be dynamic and point at this group snapshot, UID included.
    pub(crate) async fn dynamic_group_content_from_store(
        &self,
        group: &VolumeGroupSnapshot,
    ) -> Result<Option<Arc<VolumeGroupSnapshotContent>>> {
        let key = utils::group_snapshot_key(group);
        let content_name = utils::dynamic_group_snapshot_content_name(group);
        let Some(content) = self.group_content_store.get(&content_name) else {
            return Ok(None);
        };
        if content.spec.source.group_snapshot_handles.is_some() {
            let _ = self
                .update_group_snapshot_error_status_with_event(
                    group,
                    true,
                    EventType::Warning,
                    "GroupSnapshotContentMismatch",
                    &format!(
                        "VolumeGroupSnapshotContent {content_name} is pre-provisioned while expecting a dynamically provisioned one"
                    ),
                )
                .await;
            return Err(SyncError::new(format!(
                "group snapshot {key} expects a dynamically provisioned VolumeGroupSnapshotContent {content_name} but gets a pre-provisioned one"
            )));
        }
        let reference = &content.spec.volume_group_snapshot_ref;
        if reference.name.as_deref().unwrap_or_default() != name(&group.metadata)
            || reference.namespace.as_deref().unwrap_or_default() != namespace(&group.metadata)
            || reference.uid.as_deref().unwrap_or_default() != uid(&group.metadata)
        {
            let message = format!(
                "VolumeGroupSnapshotContent [{content_name}] is bound to a different group snapshot"
            );
            let _ = self
                .update_group_snapshot_error_status_with_event(
                    group,
                    true,
                    EventType::Warning,
                    "GroupSnapshotContentMisbound",
                    &message,
                )
                .await;
            return Err(SyncError::new(message));
        }
        Ok(Some(content))
    }

    /// Binds a pre-provisioned group content to the group snapshot that names it: its
    /// `volumeGroupSnapshotRef.uid` (and the group snapshot's class) patched in, unless
    /// already there.
    pub(crate) async fn check_and_bind_group_snapshot_content(
        &self,
        group: &VolumeGroupSnapshot,
        content: &VolumeGroupSnapshotContent,
    ) -> Result<Arc<VolumeGroupSnapshotContent>> {
        let reference = &content.spec.volume_group_snapshot_ref;
        let ref_uid = reference.uid.as_deref().unwrap_or_default();
        if reference.name.as_deref().unwrap_or_default() != name(&group.metadata)
            || (!ref_uid.is_empty() && ref_uid != uid(&group.metadata))
        {
            return Err(SyncError::new(format!(
                "Could not bind group snapshot {} and group snapshot content {}, the VolumeGroupSnapshotRef does not match",
                name(&group.metadata),
                name(&content.metadata)
            )));
        }
        if !ref_uid.is_empty() && content.spec.volume_group_snapshot_class_name.is_some() {
            return Ok(Arc::new(content.clone()));
        }
        let mut patch = vec![json!({
            "op": "replace",
            "path": "/spec/volumeGroupSnapshotRef/uid",
            "value": uid(&group.metadata),
        })];
        if let Some(class_name) = &group.spec.volume_group_snapshot_class_name {
            patch.push(json!({
                "op": "replace",
                "path": "/spec/volumeGroupSnapshotClassName",
                "value": class_name,
            }));
        }
        let content_name = name(&content.metadata);
        let new_content = self
            .api
            .patch_group_content(content_name, &json!(patch))
            .await
            .inspect_err(|err| {
                debug!(
                    "updating VolumeGroupSnapshotContent[{content_name}] error status failed {err}"
                );
            })?;
        let new_content = Arc::new(new_content);
        self.store_group_content_update(new_content.clone())?;
        Ok(new_content)
    }
}
