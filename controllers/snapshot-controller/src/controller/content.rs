//! A VolumeSnapshotContent's sync (upstream's `syncContent`): validation, its finalizer,
//! asking its snapshot to update, and the `volumesnapshot-being-deleted` annotation once its
//! snapshot is being deleted; and binding a pre-provisioned content to its snapshot.

use std::sync::Arc;

use csi_crd_types::snapshot::v1::{VolumeSnapshot, VolumeSnapshotContent};
use csi_kube::EventType;
use csi_snapshot_utils as utils;
use serde_json::json;
use tracing::error;

use super::{Result, SnapshotController, SyncError, name, uid};

impl SnapshotController {
    /// Syncs a content.
    pub async fn sync_content(&self, content: &VolumeSnapshotContent) -> Result<()> {
        let snapshot_name = utils::snapshot_ref_key(&content.spec.volume_snapshot_ref);
        let source = &content.spec.source;
        if source.volume_handle.is_some() == source.snapshot_handle.is_some() {
            let message = "Exactly one of VolumeHandle and SnapshotHandle should be specified";
            error!(
                "syncContent[{}]: validation error, {message}",
                name(&content.metadata)
            );
            self.events.record(
                content,
                EventType::Warning,
                "ContentValidationError",
                message,
            );
            return Err(SyncError::new(message));
        }
        // A pre-provisioned content not bound yet: its snapshot binds it.
        if content
            .spec
            .volume_snapshot_ref
            .uid
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            return Ok(());
        }
        if utils::need_to_add_content_finalizer(content) {
            return self.add_content_finalizer(content).await;
        }
        let mut snapshot = self.snapshot_store.get(&snapshot_name);
        if let Some(s) = &snapshot {
            if uid(&s.metadata)
                != content
                    .spec
                    .volume_snapshot_ref
                    .uid
                    .as_deref()
                    .unwrap_or_default()
            {
                // The snapshot the content was bound to is gone; this one has its name.
                snapshot = None;
            } else if self.needs_update_snapshot_status(s, content) {
                self.snapshot_queue.add(snapshot_name.clone());
            }
        }
        if let Some(s) = &snapshot
            && utils::is_snapshot_deletion_candidate(s)
        {
            self.set_ann_volume_snapshot_being_deleted(content).await?;
        }
        Ok(())
    }

    /// Adds `volumesnapshotcontent-bound-protection` with a JSON patch.
    async fn add_content_finalizer(&self, content: &VolumeSnapshotContent) -> Result<()> {
        let patch = match content.metadata.finalizers.as_deref() {
            Some(list) if !list.is_empty() => {
                json!([{"op": "add", "path": "/metadata/finalizers/-", "value": utils::VOLUME_SNAPSHOT_CONTENT_FINALIZER}])
            }
            _ => {
                json!([{"op": "add", "path": "/metadata/finalizers", "value": [utils::VOLUME_SNAPSHOT_CONTENT_FINALIZER]}])
            }
        };
        let new_content = self
            .api
            .patch_content(name(&content.metadata), &patch)
            .await
            .map_err(|err| SyncError::update(name(&content.metadata), err))?;
        if let Err(err) = self.store_content_update(Arc::new(new_content)) {
            error!("failed to update content store {err}");
        }
        Ok(())
    }

    /// Annotates the content `volumesnapshot-being-deleted: yes` (once): the sidecar then
    /// decides by the deletion policy whether to delete the snapshot in the storage system.
    pub(crate) async fn set_ann_volume_snapshot_being_deleted(
        &self,
        content: &VolumeSnapshotContent,
    ) -> Result<Arc<VolumeSnapshotContent>> {
        let has = content
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(utils::ANN_VOLUME_SNAPSHOT_BEING_DELETED));
        if has {
            return Ok(Arc::new(content.clone()));
        }
        let mut annotations = content.metadata.annotations.clone().unwrap_or_default();
        annotations.insert(
            utils::ANN_VOLUME_SNAPSHOT_BEING_DELETED.to_string(),
            "yes".to_string(),
        );
        let patch =
            json!([{"op": "replace", "path": "/metadata/annotations", "value": annotations}]);
        let patched = self
            .api
            .patch_content(name(&content.metadata), &patch)
            .await
            .map_err(|err| SyncError::update(name(&content.metadata), err))?;
        let patched = Arc::new(patched);
        self.store_content_update(patched.clone())?;
        Ok(patched)
    }

    /// Binds a pre-provisioned content to the snapshot: its reference's UID (and the
    /// snapshot's class) are written unless already there (upstream's
    /// `checkandBindSnapshotContent`).
    pub(crate) async fn check_and_bind_snapshot_content(
        &self,
        snapshot: &VolumeSnapshot,
        content: &VolumeSnapshotContent,
    ) -> Result<Arc<VolumeSnapshotContent>> {
        let reference = &content.spec.volume_snapshot_ref;
        let ref_uid = reference.uid.as_deref().unwrap_or_default();
        if reference.name.as_deref().unwrap_or_default() != name(&snapshot.metadata)
            || (!ref_uid.is_empty() && ref_uid != uid(&snapshot.metadata))
        {
            return Err(SyncError::new(format!(
                "Could not bind snapshot {} and content {}, the VolumeSnapshotRef does not match",
                name(&snapshot.metadata),
                name(&content.metadata)
            )));
        }
        if !ref_uid.is_empty() && content.spec.volume_snapshot_class_name.is_some() {
            return Ok(Arc::new(content.clone()));
        }
        let mut patch = vec![
            json!({"op": "replace", "path": "/spec/volumeSnapshotRef/uid", "value": uid(&snapshot.metadata)}),
        ];
        if let Some(class_name) = &snapshot.spec.volume_snapshot_class_name {
            patch.push(json!({"op": "replace", "path": "/spec/volumeSnapshotClassName", "value": class_name}));
        }
        let new_content = self
            .api
            .patch_content(name(&content.metadata), &serde_json::Value::Array(patch))
            .await?;
        let new_content = Arc::new(new_content);
        self.store_content_update(new_content.clone())?;
        Ok(new_content)
    }
}
