//! The VolumeSnapshot's finalizers: `volumesnapshot-as-source-protection` (while it exists
//! and is not being deleted), `volumesnapshot-bound-protection` (while bound to a content
//! with deletion policy Delete), and `volumesnapshot-in-group-protection` (a group member's,
//! removed once its group is gone).

use std::sync::Arc;

use csi_crd_types::snapshot::v1::VolumeSnapshot;
use csi_kube::EventType;
use csi_snapshot_utils as utils;
use serde_json::json;
use tracing::error;

use super::{Result, SnapshotController, SyncError, name, namespace};

impl SnapshotController {
    /// Adds the as-source and/or bound finalizers: an update when the snapshot has no
    /// finalizers yet, else a JSON patch appending them (upstream's `addSnapshotFinalizer`).
    pub(crate) async fn add_snapshot_finalizer(
        &self,
        snapshot: &VolumeSnapshot,
        add_source: bool,
        add_bound: bool,
    ) -> Result<()> {
        let key = utils::snapshot_key(snapshot);
        let updated = if snapshot
            .metadata
            .finalizers
            .as_ref()
            .is_none_or(Vec::is_empty)
        {
            let mut clone = snapshot.clone();
            let finalizers = clone.metadata.finalizers.get_or_insert_with(Vec::new);
            if add_source {
                finalizers.push(utils::VOLUME_SNAPSHOT_AS_SOURCE_FINALIZER.to_string());
            }
            if add_bound {
                finalizers.push(utils::VOLUME_SNAPSHOT_BOUND_FINALIZER.to_string());
            }
            self.api
                .update_snapshot(&clone)
                .await
                .map_err(|err| SyncError::update(&key, err))?
        } else {
            let mut patch = Vec::new();
            if add_source {
                patch.push(json!({"op": "add", "path": "/metadata/finalizers/-", "value": utils::VOLUME_SNAPSHOT_AS_SOURCE_FINALIZER}));
            }
            if add_bound {
                patch.push(json!({"op": "add", "path": "/metadata/finalizers/-", "value": utils::VOLUME_SNAPSHOT_BOUND_FINALIZER}));
            }
            self.api
                .patch_snapshot(
                    namespace(&snapshot.metadata),
                    name(&snapshot.metadata),
                    &serde_json::Value::Array(patch),
                )
                .await
                .map_err(|err| SyncError::update(&key, err))?
        };
        if let Err(err) = self.store_snapshot_update(Arc::new(updated)) {
            error!("failed to update snapshot store {err}");
        }
        Ok(())
    }

    /// Removes the chosen finalizers (after the PVC's, when no other snapshot of it is being
    /// taken) with an update (upstream's `removeSnapshotFinalizer`).
    pub(crate) async fn remove_snapshot_finalizer(
        &self,
        snapshot: &VolumeSnapshot,
        remove_source: bool,
        remove_bound: bool,
        remove_group: bool,
    ) -> Result<()> {
        if !remove_source && !remove_bound && !remove_group {
            return Ok(());
        }
        if let Err(err) = self.check_and_remove_pvc_finalizer(snapshot, true).await {
            error!(
                "removeSnapshotFinalizer: error check and remove PVC finalizer for snapshot [{}]: {err}",
                name(&snapshot.metadata)
            );
            self.events.record(
                snapshot,
                EventType::Warning,
                "ErrorPVCFinalizer",
                "Error check and remove PVC Finalizer for VolumeSnapshot",
            );
            return Err(SyncError::update(name(&snapshot.metadata), err));
        }
        let mut clone = snapshot.clone();
        let mut finalizers = clone.metadata.finalizers.take().unwrap_or_default();
        if remove_source {
            finalizers =
                utils::remove_string(&finalizers, utils::VOLUME_SNAPSHOT_AS_SOURCE_FINALIZER);
        }
        if remove_bound {
            finalizers = utils::remove_string(&finalizers, utils::VOLUME_SNAPSHOT_BOUND_FINALIZER);
        }
        if remove_group {
            finalizers =
                utils::remove_string(&finalizers, utils::VOLUME_SNAPSHOT_IN_GROUP_FINALIZER);
        }
        clone.metadata.finalizers = (!finalizers.is_empty()).then_some(finalizers);
        let updated = self
            .api
            .update_snapshot(&clone)
            .await
            .map_err(|err| SyncError::update(name(&snapshot.metadata), err))?;
        if let Err(err) = self.store_snapshot_update(Arc::new(updated)) {
            error!("failed to update snapshot store {err}");
        }
        Ok(())
    }
}
