//! The writes of a group content's sync: the status from what the driver said, the error
//! status with its Event, the status cleared after DeleteVolumeGroupSnapshot, the finalizer and
//! the being-created annotation.

use csi_crd_types::group_snapshot::v1::VolumeGroupSnapshotContentStatus;
use csi_crd_types::snapshot::v1::VolumeSnapshotError;
use csi_kube::EventType;
use csi_proto::csi::v1::Snapshot;
use csi_snapshot_utils::{
    ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED, VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};
use tracing::error;

use super::super::{Reconciler, SyncError, controller_update_error, patch_path};
use super::{Content, Failed, has_annotation, name, nanos_to_time, snapshot_info};

impl Reconciler {
    /// Upstream's `clearGroupSnapshotContentStatus`.
    pub(crate) async fn clear_group_content_status(
        &self,
        content_name: &str,
    ) -> Result<Content, SyncError> {
        let mut content = self
            .api
            .get_group_content(content_name)
            .await
            .map_err(|err| {
                SyncError::new(format!(
                    "error get group snapshot content {content_name} from api server: {err}"
                ))
            })?;
        if let Some(status) = content.status.as_mut() {
            status.volume_group_snapshot_handle = None;
            status.ready_to_use = None;
            status.creation_time = None;
            status.error = None;
        }
        self.api
            .update_group_content_status(&content)
            .await
            .map_err(|err| controller_update_error(content_name, &err))
    }

    /// Upstream's `updateGroupSnapshotContentStatus` (an UpdateStatus of the latest content).
    pub(crate) async fn update_group_content_status(
        &self,
        content: &Content,
        group_snapshot_handle: &str,
        ready_to_use: bool,
        created_at: i64,
        snapshots: &[Snapshot],
    ) -> Result<Content, SyncError> {
        let latest = self
            .api
            .get_group_content(name(content))
            .await
            .map_err(|err| {
                SyncError::new(format!(
                    "error get group snapshot content {} from api server: {err}",
                    name(content)
                ))
            })?;
        let mut updated = false;
        let new_status = match &latest.status {
            None => {
                updated = true;
                VolumeGroupSnapshotContentStatus {
                    volume_group_snapshot_handle: Some(group_snapshot_handle.to_string()),
                    ready_to_use: Some(ready_to_use),
                    creation_time: Some(nanos_to_time(created_at)),
                    volume_snapshot_info_list: snapshots.iter().map(snapshot_info).collect(),
                    error: None,
                }
            }
            Some(status) => {
                let mut status = status.clone();
                if status.volume_group_snapshot_handle.is_none() {
                    status.volume_group_snapshot_handle = Some(group_snapshot_handle.to_string());
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
                    status.creation_time = Some(nanos_to_time(created_at));
                    updated = true;
                }
                if status.volume_snapshot_info_list.is_empty() && !snapshots.is_empty() {
                    status.volume_snapshot_info_list =
                        snapshots.iter().map(snapshot_info).collect();
                    updated = true;
                }
                status
            }
        };
        if !updated {
            return Ok(latest);
        }
        let mut new = latest;
        new.status = Some(new_status);
        self.api
            .update_group_content_status(&new)
            .await
            .map_err(|err| controller_update_error(name(content), &err))
    }

    /// Upstream's `updateGroupSnapshotContentErrorStatusWithEvent`.
    pub(crate) async fn update_group_error_status_with_event(
        &self,
        content: &Content,
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
            return Ok(());
        }
        let error = VolumeSnapshotError {
            time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
            message: Some(message.to_string()),
        };
        let patch = if content.status.is_none() {
            json!([{"op": "replace", "path": "/status", "value": VolumeGroupSnapshotContentStatus {
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
        let result = self
            .api
            .patch_group_content(name(content), &patch, true)
            .await;
        let recorded = match &result {
            Ok(patched) => patched,
            Err(_) => content,
        };
        self.events.record(recorded, event_type, reason, message);
        let patched = result.map_err(SyncError::from_api)?;
        self.store_group_content(&patched).map_err(SyncError::new)?;
        Ok(())
    }

    /// Upstream's `removeGroupSnapshotContentFinalizer`.
    pub(crate) async fn remove_group_finalizer(&self, content: &Content) -> Result<(), SyncError> {
        let finalizers = content.metadata.finalizers.clone().unwrap_or_default();
        if !finalizers
            .iter()
            .any(|f| f == VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER)
        {
            return Ok(());
        }
        let remaining: Vec<String> = finalizers
            .into_iter()
            .filter(|f| f != VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER)
            .collect();
        let value = if remaining.is_empty() {
            Value::Null
        } else {
            json!(remaining)
        };
        let patch = json!([{"op": "replace", "path": "/metadata/finalizers", "value": value}]);
        let updated = self
            .api
            .patch_group_content(name(content), &patch, false)
            .await
            .map_err(|err| controller_update_error(name(content), &err))?;
        if let Err(err) = self.store_group_content(&updated) {
            error!("failed to update group snapshot content store {err}");
        }
        Ok(())
    }

    /// Upstream's `setAnnVolumeGroupSnapshotBeingCreated`.
    pub(crate) async fn set_ann_group_being_created(
        &self,
        content: Content,
    ) -> Result<Content, Failed> {
        if has_annotation(&content, ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED) {
            return Ok(content);
        }
        let mut annotations = content.metadata.annotations.clone().unwrap_or_default();
        annotations.insert(
            ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED.to_string(),
            "yes".into(),
        );
        let patch =
            json!([{"op": "replace", "path": "/metadata/annotations", "value": annotations}]);
        match self
            .api
            .patch_group_content(name(&content), &patch, false)
            .await
        {
            Ok(patched) => Ok(patched),
            Err(err) => {
                let err = controller_update_error(name(&content), &err);
                Err((content, err))
            }
        }
    }

    /// Upstream's `removeAnnVolumeGroupSnapshotBeingCreated`.
    pub(crate) async fn remove_ann_group_being_created(
        &self,
        content: Content,
    ) -> Result<Content, Failed> {
        if !has_annotation(&content, ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED) {
            return Ok(content);
        }
        let patch = json!([{
            "op": "remove",
            "path": format!("/metadata/annotations/{}", patch_path(ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED)),
        }]);
        match self
            .api
            .patch_group_content(name(&content), &patch, false)
            .await
        {
            Ok(patched) => {
                if let Err(err) = self.store_group_content(&patched) {
                    error!("failed to update groupSnapshotContent store {err}");
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
