//! The group snapshot's status from its group content (upstream's `updateGroupSnapshotStatus`,
//! `needsUpdateGroupSnapshotStatus`, `bindandUpdateVolumeGroupSnapshot`) and the error status
//! with its Event (`updateGroupSnapshotErrorStatusWithEvent`).

use std::sync::Arc;

use csi_crd_types::group_snapshot::v1::{
    VolumeGroupSnapshot, VolumeGroupSnapshotContent, VolumeGroupSnapshotStatus,
};
use csi_crd_types::snapshot::v1::VolumeSnapshotError;
use csi_kube::EventType;
use csi_snapshot_utils as utils;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tracing::{debug, error};

use super::GroupController;
use crate::controller::{Result, SyncError, name, namespace, uid};
use crate::metrics::{self, OperationKey};

impl GroupController {
    /// Whether the group content has news for the group snapshot's status.
    pub(crate) fn needs_update_group_snapshot_status(
        &self,
        group: &VolumeGroupSnapshot,
        content: &VolumeGroupSnapshotContent,
    ) -> bool {
        debug!(
            "needsUpdateGroupSnapshotStatus[{}]",
            utils::group_snapshot_key(group)
        );
        let Some(content_status) = &content.status else {
            return false;
        };
        let Some(status) = &group.status else {
            return true;
        };
        if status.bound_volume_group_snapshot_content_name.is_none() {
            return true;
        }
        if status.creation_time.is_none() && content_status.creation_time.is_some() {
            return true;
        }
        if status.ready_to_use.is_none() && content_status.ready_to_use.is_some() {
            return true;
        }
        // Upstream compares the two pointers, which always differ: any content readiness is
        // news while the group snapshot has one.
        status.ready_to_use.is_some() && content_status.ready_to_use.is_some()
    }

    /// Writes the group content's binding, creation time, readiness and error into the group
    /// snapshot's status, as the API server has it now; records `CreateGroupSnapshot` /
    /// `CreateGroupSnapshotAndReady` and their Events when they complete.
    pub(crate) async fn update_group_snapshot_status(
        &self,
        group: &VolumeGroupSnapshot,
        content: &VolumeGroupSnapshotContent,
    ) -> Result<Arc<VolumeGroupSnapshot>> {
        let key = utils::group_snapshot_key(group);
        debug!("updateGroupSnapshotStatus[{key}]");
        let content_name = name(&content.metadata).to_string();
        let content_status = content.status.as_ref();
        let created_at = content_status.and_then(|s| s.creation_time.clone());
        let ready = content_status.and_then(|s| s.ready_to_use).unwrap_or(false);
        let content_error = content_status.and_then(|s| s.error.clone());

        let current = self
            .api
            .get_group_snapshot(namespace(&group.metadata), name(&group.metadata))
            .await
            .map_err(|err| {
                SyncError::new(format!(
                    "error get group snapshot {key} from api server: {err}"
                ))
            })?;
        let mut updated = false;
        let new_status = match &current.status {
            None => {
                updated = true;
                VolumeGroupSnapshotStatus {
                    bound_volume_group_snapshot_content_name: Some(content_name),
                    ready_to_use: Some(ready),
                    creation_time: created_at,
                    error: content_error,
                }
            }
            Some(status) => {
                let mut status = status.clone();
                if status.bound_volume_group_snapshot_content_name.is_none() {
                    status.bound_volume_group_snapshot_content_name = Some(content_name);
                    updated = true;
                }
                if status.creation_time.is_none() && created_at.is_some() {
                    status.creation_time = created_at;
                    updated = true;
                }
                if status.ready_to_use != Some(ready) {
                    status.ready_to_use = Some(ready);
                    updated = true;
                    if ready && status.error.is_some() {
                        status.error = None;
                    }
                }
                // Upstream compares the addresses of the two times, which always differ: a
                // content error with a time always replaces the group snapshot's.
                let replace_error = match (&status.error, &content_error) {
                    (None, Some(_)) | (Some(_), None) => true,
                    (Some(old), Some(new)) => old.time.is_some() && new.time.is_some(),
                    (None, None) => false,
                };
                if replace_error {
                    status.error = content_error;
                    updated = true;
                }
                status
            }
        };
        if !updated {
            return Ok(Arc::new(current));
        }
        let mut clone = current.clone();
        clone.status = Some(new_status);
        let driver = &content.spec.driver;
        let group_uid = uid(&group.metadata);
        if !utils::is_group_snapshot_created(&current) && utils::is_group_snapshot_created(&clone) {
            self.ctrl.events.record(
                group,
                EventType::Normal,
                "GroupSnapshotCreated",
                &format!("GroupSnapshot {key} was successfully created by the CSI driver."),
            );
            self.ctrl.metrics.record(
                &OperationKey::new(metrics::CREATE_GROUP_SNAPSHOT, group_uid),
                Some(metrics::STATUS_SUCCESS),
                driver,
            );
        }
        if !utils::is_group_snapshot_ready(&current) && utils::is_group_snapshot_ready(&clone) {
            self.ctrl.events.record(
                group,
                EventType::Normal,
                "GroupSnapshotReady",
                &format!("GroupSnapshot {key} is ready to use."),
            );
            self.ctrl.metrics.record(
                &OperationKey::new(metrics::CREATE_GROUP_SNAPSHOT_AND_READY, group_uid),
                Some(metrics::STATUS_SUCCESS),
                driver,
            );
        }
        let new_group = self
            .api
            .update_group_snapshot_status(&clone)
            .await
            .map_err(|err| SyncError::update(&key, err))?;
        Ok(Arc::new(new_group))
    }

    /// Binds a dynamic group snapshot to its group content: its status from the group
    /// content, on the group snapshot read afresh.
    pub(crate) async fn bind_and_update_volume_group_snapshot(
        &self,
        content: &VolumeGroupSnapshotContent,
        group: &VolumeGroupSnapshot,
    ) -> Result<Arc<VolumeGroupSnapshot>> {
        let key = utils::group_snapshot_key(group);
        debug!(
            "bindandUpdateVolumeGroupSnapshot for group snapshot [{}]: groupSnapshotContent [{}]",
            name(&group.metadata),
            name(&content.metadata)
        );
        let current = self
            .api
            .get_group_snapshot(namespace(&group.metadata), name(&group.metadata))
            .await
            .map_err(|err| {
                SyncError::new(format!(
                    "error get group snapshot {key} from api server: {err}"
                ))
            })?;
        let updated = match self.update_group_snapshot_status(&current, content).await {
            Ok(updated) => updated,
            Err(err) => {
                debug!("failed to update group snapshot {key} status: {err}");
                let _ = self
                    .update_group_snapshot_error_status_with_event(
                        &current,
                        true,
                        EventType::Warning,
                        "GroupSnapshotStatusUpdateFailed",
                        &format!("GroupSnapshot status update failed, {err}"),
                    )
                    .await;
                return Err(err);
            }
        };
        if let Err(err) = self.store_group_snapshot_update(updated.clone()) {
            error!("{err}");
        }
        Ok(updated)
    }

    /// Writes `message` as the group snapshot's status error (and `readyToUse: false` when
    /// asked) and records the Event, even when the write fails; nothing when the status
    /// already says it.
    pub(crate) async fn update_group_snapshot_error_status_with_event(
        &self,
        group: &VolumeGroupSnapshot,
        set_ready_false: bool,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) -> Result<()> {
        let key = utils::group_snapshot_key(group);
        debug!("updateGroupSnapshotErrorStatusWithEvent[{key}]");
        let same = group
            .status
            .as_ref()
            .and_then(|s| s.error.as_ref())
            .and_then(|e| e.message.as_deref())
            == Some(message);
        if same {
            debug!(
                "updateGroupSnapshotErrorStatusWithEvent[{}]: the same error {message:?} is already set",
                name(&group.metadata)
            );
            return Ok(());
        }
        let mut clone = group.clone();
        let status = clone.status.get_or_insert_with(Default::default);
        status.error = Some(VolumeSnapshotError {
            time: Some(Time(Timestamp::now())),
            message: Some(message.to_string()),
        });
        if set_ready_false {
            status.ready_to_use = Some(false);
        }
        let result = self.api.update_group_snapshot_status(&clone).await;
        self.ctrl.events.record(&clone, event_type, reason, message);
        let new_group = result.inspect_err(|err| {
            debug!("updating VolumeGroupSnapshot[{key}] error status failed {err}");
        })?;
        self.store_group_snapshot_update(Arc::new(new_group))?;
        Ok(())
    }
}
