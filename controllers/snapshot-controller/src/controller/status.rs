//! The snapshot's status from its content (upstream's `updateSnapshotStatus`,
//! `needsUpdateSnapshotStatus`, `bindandUpdateVolumeSnapshot`) and the error status with its
//! Event (`updateSnapshotErrorStatusWithEvent`).

use std::sync::Arc;

use csi_controller::{bytes_to_quantity, quantity_value};
use csi_crd_types::snapshot::v1::{
    VolumeSnapshot, VolumeSnapshotContent, VolumeSnapshotError, VolumeSnapshotStatus,
};
use csi_kube::EventType;
use csi_snapshot_utils as utils;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tracing::{debug, error};

use super::{Result, SnapshotController, SyncError, name, namespace, uid};
use crate::metrics::{self, OperationKey};

fn is_zero(quantity: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> bool {
    quantity_value(&quantity.0) == Some(0)
}

impl SnapshotController {
    /// Whether the content has news for the snapshot's status.
    pub(crate) fn needs_update_snapshot_status(
        &self,
        snapshot: &VolumeSnapshot,
        content: &VolumeSnapshotContent,
    ) -> bool {
        let Some(content_status) = &content.status else {
            return false;
        };
        let Some(status) = &snapshot.status else {
            return true;
        };
        if status.bound_volume_snapshot_content_name.is_none() {
            return true;
        }
        if status.creation_time.is_none() && content_status.creation_time.is_some() {
            return true;
        }
        if status.ready_to_use.is_none() && content_status.ready_to_use.is_some() {
            return true;
        }
        // Upstream compares the two pointers, which always differ: any content readiness is
        // news while the snapshot has one.
        if status.ready_to_use.is_some() && content_status.ready_to_use.is_some() {
            return true;
        }
        if status.restore_size.is_none() && content_status.restore_size.is_some() {
            return true;
        }
        if status.restore_size.as_ref().is_some_and(is_zero)
            && content_status.restore_size.is_some_and(|s| s > 0)
        {
            return true;
        }
        false
    }

    /// Writes the content's news into the snapshot's status (read afresh from the API
    /// server): the binding, `creationTime`, `readyToUse`, `restoreSize`, the error and the
    /// group snapshot name. Records the end of the create operations and the
    /// `SnapshotCreated` / `SnapshotReady` Events when they happen.
    pub(crate) async fn update_snapshot_status(
        &self,
        snapshot: &VolumeSnapshot,
        content: &VolumeSnapshotContent,
    ) -> Result<Arc<VolumeSnapshot>> {
        let key = utils::snapshot_key(snapshot);
        let content_status = content.status.as_ref();
        let created_at = content_status
            .and_then(|s| s.creation_time)
            .and_then(|ns| Timestamp::from_nanosecond(i128::from(ns)).ok());
        let size = content_status.and_then(|s| s.restore_size);
        let ready = content_status.and_then(|s| s.ready_to_use).unwrap_or(false);
        let content_error = content_status.and_then(|s| s.error.clone());

        let mut group_snapshot_name = String::new();
        if let Some(handle) = content_status.and_then(|s| s.volume_group_snapshot_handle.as_deref())
        {
            let found = self.listers.group_contents().into_iter().find(|g| {
                g.status
                    .as_ref()
                    .and_then(|s| s.volume_group_snapshot_handle.as_deref())
                    == Some(handle)
            });
            match found {
                Some(group_content) => {
                    group_snapshot_name = group_content
                        .spec
                        .volume_group_snapshot_ref
                        .name
                        .clone()
                        .unwrap_or_default();
                }
                None => {
                    return Err(SyncError::new(format!(
                        "updateSnapshotStatus: cannot find the group snapshot for VolumeSnapshot [{key}], will not update snapshot status"
                    )));
                }
            }
        }

        let current = self
            .api
            .get_snapshot(namespace(&snapshot.metadata), name(&snapshot.metadata))
            .await
            .map_err(|err| {
                SyncError::new(format!("error get snapshot {key} from api server: {err}"))
            })?;

        let content_name = name(&content.metadata).to_string();
        let mut updated = false;
        let new_status = match &current.status {
            None => {
                updated = true;
                VolumeSnapshotStatus {
                    bound_volume_snapshot_content_name: Some(content_name),
                    ready_to_use: Some(ready),
                    creation_time: created_at.map(Time),
                    restore_size: size.map(bytes_to_quantity),
                    error: content_error,
                    volume_group_snapshot_name: (!group_snapshot_name.is_empty())
                        .then_some(group_snapshot_name),
                }
            }
            Some(status) => {
                let mut status = status.clone();
                if status.bound_volume_snapshot_content_name.is_none() {
                    status.bound_volume_snapshot_content_name = Some(content_name);
                    updated = true;
                }
                if status.creation_time.is_none() && created_at.is_some() {
                    status.creation_time = created_at.map(Time);
                    updated = true;
                }
                if status.ready_to_use != Some(ready) {
                    status.ready_to_use = Some(ready);
                    updated = true;
                    if ready && status.error.is_some() {
                        status.error = None;
                    }
                }
                let zero = status.restore_size.as_ref().is_some_and(is_zero);
                if (status.restore_size.is_none() && size.is_some())
                    || (zero && size.is_some_and(|s| s > 0))
                {
                    status.restore_size = size.map(bytes_to_quantity);
                    updated = true;
                }
                // Upstream compares the addresses of the two times, which always differ: a
                // content error with a time always replaces the snapshot's.
                let replace_error = match (&status.error, &content_error) {
                    (None, Some(_)) => true,
                    (Some(_), None) => true,
                    (Some(old), Some(new)) => old.time.is_some() && new.time.is_some(),
                    (None, None) => false,
                };
                if replace_error {
                    status.error = content_error;
                    updated = true;
                }
                if status.volume_group_snapshot_name.is_none() && !group_snapshot_name.is_empty() {
                    status.volume_group_snapshot_name = Some(group_snapshot_name);
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
        let snapshot_uid = uid(&snapshot.metadata);
        if !utils::is_snapshot_created(&current) && utils::is_snapshot_created(&clone) {
            self.metrics.record(
                &OperationKey::new(metrics::CREATE_SNAPSHOT, snapshot_uid),
                Some(metrics::STATUS_SUCCESS),
                driver,
            );
            self.events.record(
                snapshot,
                EventType::Normal,
                "SnapshotCreated",
                &format!("Snapshot {key} was successfully created by the CSI driver."),
            );
        }
        if !utils::is_snapshot_ready(&current) && utils::is_snapshot_ready(&clone) {
            self.metrics.record(
                &OperationKey::new(metrics::CREATE_SNAPSHOT_AND_READY, snapshot_uid),
                Some(metrics::STATUS_SUCCESS),
                driver,
            );
            self.events.record(
                snapshot,
                EventType::Normal,
                "SnapshotReady",
                &format!("Snapshot {key} is ready to use."),
            );
        }
        let new_snapshot = self
            .api
            .update_snapshot_status(&clone)
            .await
            .map_err(|err| SyncError::update(&key, err))?;
        Ok(Arc::new(new_snapshot))
    }

    /// Binds a dynamic snapshot to its content: its status from the content, read afresh.
    pub(crate) async fn bind_and_update_volume_snapshot(
        &self,
        content: &VolumeSnapshotContent,
        snapshot: &VolumeSnapshot,
    ) -> Result<Arc<VolumeSnapshot>> {
        let key = utils::snapshot_key(snapshot);
        let current = self
            .api
            .get_snapshot(namespace(&snapshot.metadata), name(&snapshot.metadata))
            .await
            .map_err(|err| {
                SyncError::new(format!("error get snapshot {key} from api server: {err}"))
            })?;
        let updated = match self.update_snapshot_status(&current, content).await {
            Ok(updated) => updated,
            Err(err) => {
                let _ = self
                    .update_snapshot_error_status_with_event(
                        &current,
                        true,
                        EventType::Warning,
                        "SnapshotStatusUpdateFailed",
                        &format!("Snapshot status update failed, {err}"),
                    )
                    .await;
                return Err(err);
            }
        };
        if let Err(err) = self.store_snapshot_update(updated.clone()) {
            error!("{err}");
        }
        Ok(updated)
    }

    /// Writes `message` as the snapshot's status error (and `readyToUse: false` when asked)
    /// and records the Event; nothing when the status already says it.
    pub(crate) async fn update_snapshot_error_status_with_event(
        &self,
        snapshot: &VolumeSnapshot,
        set_ready_false: bool,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) -> Result<()> {
        debug!(
            "updateSnapshotErrorStatusWithEvent[{}]",
            utils::snapshot_key(snapshot)
        );
        let same = snapshot
            .status
            .as_ref()
            .and_then(|s| s.error.as_ref())
            .and_then(|e| e.message.as_deref())
            == Some(message);
        if same {
            return Ok(());
        }
        let mut clone = snapshot.clone();
        let status = clone.status.get_or_insert_with(Default::default);
        status.error = Some(VolumeSnapshotError {
            time: Some(Time(Timestamp::now())),
            message: Some(message.to_string()),
        });
        if set_ready_false {
            status.ready_to_use = Some(false);
        }
        let result = self.api.update_snapshot_status(&clone).await;
        self.events.record(&clone, event_type, reason, message);
        let new_snapshot = result?;
        self.store_snapshot_update(Arc::new(new_snapshot))?;
        Ok(())
    }
}
