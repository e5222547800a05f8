//! The writes of a content's sync (upstream's status and metadata updates): the status from
//! what the driver said, the error status with its Event, the status cleared after
//! DeleteSnapshot, the finalizer and the being-created annotation.

use csi_crd_types::VolumeSnapshotContent;
use csi_crd_types::snapshot::v1::{VolumeSnapshotContentStatus, VolumeSnapshotError};
use csi_kube::EventType;
use csi_snapshot_utils::{ANN_VOLUME_SNAPSHOT_BEING_CREATED, VOLUME_SNAPSHOT_CONTENT_FINALIZER};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};
use tracing::{debug, error, trace};

use super::super::{Reconciler, SyncError, controller_update_error, patch_path};
use super::{Failed, has_annotation, name};

impl Reconciler {
    /// Writes `message` as the content's status error (readyToUse false) unless it is there
    /// already, and records the Event whether or not the write worked (upstream's
    /// `updateContentErrorStatusWithEvent`).
    pub(crate) async fn update_content_error_status_with_event(
        &self,
        content: &VolumeSnapshotContent,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), SyncError> {
        if content
            .status
            .as_ref()
            .and_then(|s| s.error.as_ref())
            .and_then(|e| e.message.as_deref())
            == Some(message)
        {
            debug!(
                "updateContentStatusWithEvent[{}]: the same error is already set",
                name(content)
            );
            return Ok(());
        }
        let error = VolumeSnapshotError {
            time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
            message: Some(message.to_string()),
        };
        let patch = if content.status.is_none() {
            json!([{"op": "replace", "path": "/status", "value": VolumeSnapshotContentStatus {
                ready_to_use: Some(false),
                error: Some(error),
                ..Default::default()
            }}])
        } else {
            json!([
                {"op": "replace", "path": "/status/error", "value": error},
                {"op": "replace", "path": "/status/readyToUse", "value": false},
            ])
        };
        let result = self.api.patch_content(name(content), &patch, true).await;
        let recorded = match &result {
            Ok(patched) => patched,
            Err(_) => content,
        };
        self.events.record(recorded, event_type, reason, message);
        let patched = result.map_err(|err| {
            debug!(
                "updating VolumeSnapshotContent[{}] error status failed {err}",
                name(content)
            );
            SyncError::from_api(err)
        })?;
        self.store_content(&patched).map_err(SyncError::new)?;
        Ok(())
    }

    /// Upstream's `clearVolumeContentStatus`: the latest content from the API server, its
    /// snapshot handle, readiness, creation time and size removed with an UpdateStatus.
    pub(crate) async fn clear_volume_content_status(
        &self,
        content_name: &str,
    ) -> Result<VolumeSnapshotContent, SyncError> {
        let mut content = self.api.get_content(content_name).await.map_err(|err| {
            SyncError::new(format!(
                "error get snapshot content {content_name} from api server: {err}"
            ))
        })?;
        if let Some(status) = content.status.as_mut() {
            status.snapshot_handle = None;
            status.ready_to_use = None;
            status.creation_time = None;
            status.restore_size = None;
        }
        self.api
            .update_content_status(&content)
            .await
            .map_err(|err| controller_update_error(content_name, &err))
    }

    /// Upstream's `updateSnapshotContentStatus`: fills in what the status lacks from what
    /// the driver said, on the latest content from the API server; patches only on a change.
    pub(crate) async fn update_snapshot_content_status(
        &self,
        content: &VolumeSnapshotContent,
        snapshot_handle: &str,
        ready_to_use: bool,
        created_at: i64,
        size: i64,
        group_snapshot_id: &str,
    ) -> Result<VolumeSnapshotContent, SyncError> {
        trace!(
            "updateSnapshotContentStatus: updating VolumeSnapshotContent [{}], snapshotHandle {snapshot_handle}, readyToUse {ready_to_use}, createdAt {created_at}, size {size}, groupSnapshotID {group_snapshot_id}",
            name(content)
        );
        let latest = self.api.get_content(name(content)).await.map_err(|err| {
            SyncError::new(format!(
                "error get snapshot content {} from api server: {err}",
                name(content)
            ))
        })?;
        let mut updated = false;
        let new_status = match &latest.status {
            None => {
                updated = true;
                VolumeSnapshotContentStatus {
                    snapshot_handle: Some(snapshot_handle.to_string()),
                    ready_to_use: Some(ready_to_use),
                    creation_time: Some(created_at),
                    restore_size: (size > 0).then_some(size),
                    volume_group_snapshot_handle: (!group_snapshot_id.is_empty())
                        .then(|| group_snapshot_id.to_string()),
                    error: None,
                }
            }
            Some(status) => {
                let mut status = status.clone();
                if status.snapshot_handle.is_none() {
                    status.snapshot_handle = Some(snapshot_handle.to_string());
                    updated = true;
                }
                if status.ready_to_use != Some(ready_to_use) {
                    status.ready_to_use = Some(ready_to_use);
                    updated = true;
                    if ready_to_use {
                        status.error = None;
                    }
                }
                if status.creation_time.is_none() {
                    status.creation_time = Some(created_at);
                    updated = true;
                }
                if status.restore_size.is_none() && size > 0 {
                    status.restore_size = Some(size);
                    updated = true;
                }
                if status.volume_group_snapshot_handle.is_none() && !group_snapshot_id.is_empty() {
                    status.volume_group_snapshot_handle = Some(group_snapshot_id.to_string());
                    updated = true;
                }
                status
            }
        };
        if !updated {
            return Ok(latest);
        }
        let patch = json!([{"op": "replace", "path": "/status", "value": new_status}]);
        self.api
            .patch_content(name(content), &patch, true)
            .await
            .map_err(|err| controller_update_error(name(content), &err))
    }

    /// Upstream's `removeContentFinalizer`.
    pub(crate) async fn remove_content_finalizer(
        &self,
        content: &VolumeSnapshotContent,
    ) -> Result<(), SyncError> {
        let finalizers = content.metadata.finalizers.clone().unwrap_or_default();
        if !finalizers
            .iter()
            .any(|f| f == VOLUME_SNAPSHOT_CONTENT_FINALIZER)
        {
            return Ok(());
        }
        let remaining: Vec<String> = finalizers
            .into_iter()
            .filter(|f| f != VOLUME_SNAPSHOT_CONTENT_FINALIZER)
            .collect();
        let value = if remaining.is_empty() {
            Value::Null
        } else {
            json!(remaining)
        };
        let patch = json!([{"op": "replace", "path": "/metadata/finalizers", "value": value}]);
        let updated = self
            .api
            .patch_content(name(content), &patch, false)
            .await
            .map_err(|err| controller_update_error(name(content), &err))?;
        trace!(
            "Removed protection finalizer from volume snapshot content {}",
            name(&updated)
        );
        if let Err(err) = self.store_content(&updated) {
            error!("failed to update content store {err}");
        }
        Ok(())
    }

    /// Upstream's `setAnnVolumeSnapshotBeingCreated`.
    pub(crate) async fn set_ann_being_created(
        &self,
        content: VolumeSnapshotContent,
    ) -> Result<VolumeSnapshotContent, Failed> {
        if has_annotation(&content, ANN_VOLUME_SNAPSHOT_BEING_CREATED) {
            return Ok(content);
        }
        let mut annotations = content.metadata.annotations.clone().unwrap_or_default();
        annotations.insert(ANN_VOLUME_SNAPSHOT_BEING_CREATED.to_string(), "yes".into());
        let patch =
            json!([{"op": "replace", "path": "/metadata/annotations", "value": annotations}]);
        match self.api.patch_content(name(&content), &patch, false).await {
            Ok(patched) => {
                self.store_content_logged(&patched);
                Ok(patched)
            }
            Err(err) => {
                let err = controller_update_error(name(&content), &err);
                Err((content, err))
            }
        }
    }

    /// Upstream's `removeAnnVolumeSnapshotBeingCreated`.
    pub(crate) async fn remove_ann_being_created(
        &self,
        content: VolumeSnapshotContent,
    ) -> Result<VolumeSnapshotContent, Failed> {
        if !has_annotation(&content, ANN_VOLUME_SNAPSHOT_BEING_CREATED) {
            return Ok(content);
        }
        let patch = json!([{
            "op": "remove",
            "path": format!("/metadata/annotations/{}", patch_path(ANN_VOLUME_SNAPSHOT_BEING_CREATED)),
        }]);
        match self.api.patch_content(name(&content), &patch, false).await {
            Ok(patched) => {
                trace!(
                    "Removed VolumeSnapshotBeingCreated annotation from volume snapshot content {}",
                    name(&patched)
                );
                if let Err(err) = self.store_content(&patched) {
                    error!("failed to update content store {err}");
                }
                Ok(patched)
            }
            Err(err) => {
                let err = controller_update_error(name(&content), &err);
                Err((content, err))
            }
        }
    }
}
