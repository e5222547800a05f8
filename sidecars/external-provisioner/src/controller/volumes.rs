//! One key of the volume queue: the library's `syncVolume` — is the PV ours, its
//! HonorPVReclaimPolicy finalizer, `shouldDelete` and `deleteVolumeOperation` — with
//! external-provisioner's `Delete`.

use std::sync::Arc;
use std::time::Instant;

use csi_controller::finalizer::finalizers_strategic_patch;
use csi_kube::EventType;
use csi_workqueue::Outcome;
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::{StorageClass, VolumeAttachment};
use tracing::{debug, error, info};

use super::{ProvisionController, lock, reasons};
use crate::delete::{DeleteError, delete_volume};
use crate::provision::{ANN_MIGRATED_TO, ANN_PROVISIONED_BY, PV_FINALIZER};

fn annotation<'a>(pv: &'a PersistentVolume, key: &str) -> Option<&'a str> {
    pv.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// A PV whose volume was deleted: its name and UID (a PV of the same name made later is
/// another one).
fn deleted_key(pv: &PersistentVolume) -> String {
    format!(
        "{}/{}",
        pv.metadata.name.as_deref().unwrap_or_default(),
        pv.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn finalizers(pv: &PersistentVolume) -> &[String] {
    pv.metadata.finalizers.as_deref().unwrap_or_default()
}

fn reclaim_policy(pv: &PersistentVolume) -> &str {
    pv.spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or_default()
}

fn phase(pv: &PersistentVolume) -> &str {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Why deleting a PV's volume did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VolumeSyncError {
    /// Adding or removing the finalizer failed.
    #[error("failed to modify finalizers to {finalizers:?} on volume {pv} err: {error}")]
    Finalizers {
        /// The wanted list.
        finalizers: Vec<String>,
        /// The PV.
        pv: String,
        /// The API error.
        error: csi_controller::ApiError,
    },
    /// `DeleteVolume` (or what precedes it) failed.
    #[error(transparent)]
    Delete(#[from] DeleteError),
    /// Deleting the PV object failed.
    #[error("{0}")]
    DeletePv(csi_controller::ApiError),
}

impl ProvisionController {
    /// One key of the volume queue (a PV name).
    pub async fn sync_volume(&self, name: &str) -> Outcome {
        let Some(pv) = self.listers.volume(name) else {
            return Outcome::Forget;
        };
        match self.sync_volume_object(pv).await {
            Ok(()) => Outcome::Forget,
            Err(err) => {
                info!(key = name, %err, "Retrying syncing volume");
                Outcome::Requeue
            }
        }
    }

    async fn sync_volume_object(&self, pv: Arc<PersistentVolume>) -> Result<(), VolumeSyncError> {
        if !self.is_provisioner_for_volume(&pv) {
            return Ok(());
        }
        let pv = self.handle_protection_finalizer(pv).await?;
        if lock(&self.deleted).contains_key(&deleted_key(&pv)) {
            // Its volume is deleted and the PV is going: the update that says so must not
            // call DeleteVolume again (the library does, when the update overtakes the
            // finalizer's removal); only the finalizer may still have to go.
            return self.remove_pv_finalizer(&pv).await;
        }
        if !self.should_delete(&pv) {
            return Ok(());
        }
        debug!(PV = ?pv.metadata.name, "shouldDelete");
        let start = Instant::now();
        let result = self.delete_volume_operation(&pv).await;
        if let Some(metrics) = &self.metrics {
            let class = pv
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
                .unwrap_or_default();
            match &result {
                Err(VolumeSyncError::Delete(err)) if err.is_in_use() => {}
                Ok(()) => metrics.deleted(class, Some(start.elapsed())),
                Err(_) => metrics.deleted(class, None),
            }
        }
        result
    }

    /// The library's `isProvisionerForVolume`: `pv.kubernetes.io/provisioned-by` (or
    /// `pv.kubernetes.io/migrated-to`) names this driver; without the annotation, a CSI PV of
    /// this driver (a static one, for the finalizer).
    pub fn is_provisioner_for_volume(&self, pv: &PersistentVolume) -> bool {
        let known = |name: Option<&str>| name.is_some_and(|n| self.config.known_provisioner(n));
        match annotation(pv, ANN_PROVISIONED_BY) {
            Some(provisioned_by) => {
                known(Some(provisioned_by)) || known(annotation(pv, ANN_MIGRATED_TO))
            }
            None => match pv.spec.as_ref().and_then(|s| s.csi.as_ref()) {
                Some(csi) => known(Some(&csi.driver)),
                None => known(annotation(pv, ANN_MIGRATED_TO)),
            },
        }
    }

    /// The library's `handleProtectionFinalizer`: a Bound PV with reclaim policy Delete gets
    /// [`PV_FINALIZER`]; one with Retain or Recycle loses it. Returns the PV as patched.
    async fn handle_protection_finalizer(
        &self,
        pv: Arc<PersistentVolume>,
    ) -> Result<Arc<PersistentVolume>, VolumeSyncError> {
        let policy = reclaim_policy(&pv);
        let current = finalizers(&pv).to_vec();
        let mut wanted = current.clone();
        if policy == "Delete"
            && pv.metadata.deletion_timestamp.is_none()
            && phase(&pv) == "Bound"
            && !wanted.iter().any(|f| f == PV_FINALIZER)
        {
            wanted.push(PV_FINALIZER.to_string());
        }
        if policy == "Retain" || policy == "Recycle" {
            wanted.retain(|f| f != PV_FINALIZER);
        }
        let Some(patch) = finalizers_strategic_patch(&current, &wanted) else {
            return Ok(pv);
        };
        let name = pv.metadata.name.clone().unwrap_or_default();
        match self.api.patch_volume(&name, &patch).await {
            Ok(patched) => Ok(Arc::new(patched)),
            Err(error) => Err(VolumeSyncError::Finalizers {
                finalizers: wanted,
                pv: name,
                error,
            }),
        }
    }

    /// The library's `shouldDelete` (the provisioner adds the finalizer, so a PV being deleted
    /// is still handled while it has it): Released, reclaim policy Delete.
    pub fn should_delete(&self, pv: &PersistentVolume) -> bool {
        if pv.metadata.deletion_timestamp.is_some()
            && !finalizers(pv).iter().any(|f| f == PV_FINALIZER)
        {
            debug!(PV = ?pv.metadata.name, "shouldDelete is false: finalizer already removed from volume");
            return false;
        }
        if phase(pv) != "Released" {
            debug!(PV = ?pv.metadata.name, "shouldDelete is false: PersistentVolumePhase is not Released");
            return false;
        }
        if reclaim_policy(pv) != "Delete" {
            debug!(PV = ?pv.metadata.name, "shouldDelete is false: volume does not have Delete reclaim policy");
            return false;
        }
        true
    }

    /// Takes [`PV_FINALIZER`] off a PV whose volume is deleted (gone already is fine).
    async fn remove_pv_finalizer(&self, pv: &PersistentVolume) -> Result<(), VolumeSyncError> {
        let name = pv.metadata.name.clone().unwrap_or_default();
        let current = finalizers(pv).to_vec();
        let wanted: Vec<String> = current
            .iter()
            .filter(|f| *f != PV_FINALIZER)
            .cloned()
            .collect();
        if let Some(patch) = finalizers_strategic_patch(&current, &wanted)
            && let Err(err) = self.api.patch_volume(&name, &patch).await
            && !err.is_not_found()
        {
            info!(PV = name, %err, "Failed to remove finalizer for persistentvolume");
            return Err(VolumeSyncError::DeletePv(err));
        }
        Ok(())
    }

    /// The library's `deleteVolumeOperation`: `DeleteVolume`, then the PV, then its finalizer.
    async fn delete_volume_operation(&self, pv: &PersistentVolume) -> Result<(), VolumeSyncError> {
        let name = pv.metadata.name.clone().unwrap_or_default();
        let classes: Vec<StorageClass> = self
            .listers
            .storage_classes()
            .iter()
            .map(|c| (**c).clone())
            .collect();
        let attachments: Option<Vec<VolumeAttachment>> =
            self.listers.volume_attachments().map(|all| {
                all.iter()
                    .filter(|va| {
                        va.spec.source.persistent_volume_name.as_deref() == Some(name.as_str())
                    })
                    .map(|va| (**va).clone())
                    .collect()
            });
        if let Err(err) = delete_volume(
            &self.config,
            pv,
            &classes,
            attachments.as_deref(),
            self.driver.as_ref(),
            self.api.as_ref(),
        )
        .await
        {
            if err.is_ignored() {
                debug!(PV = name, reason = %err, "Volume deletion ignored");
                return Ok(());
            }
            if err.is_in_use() {
                debug!(PV = name, reason = %err, "Volume deletion postponed");
                self.events.record(
                    pv,
                    EventType::Normal,
                    reasons::VOLUME_DELETE,
                    &err.to_string(),
                );
                return Err(err.into());
            }
            error!(PV = name, %err, "Volume deletion failed");
            self.events.record(
                pv,
                EventType::Warning,
                reasons::VOLUME_FAILED_DELETE,
                &err.to_string(),
            );
            return Err(err.into());
        }
        debug!(PV = name, "Volume deleted");
        {
            // Kept for a while, not until the PV's deletion is seen: a worker may have read
            // the PV just before it went.
            let mut deleted = lock(&self.deleted);
            deleted.retain(|_, at| at.elapsed() < super::RESYNC_PERIOD);
            deleted.insert(deleted_key(pv), std::time::Instant::now());
        }
        if let Some(observer) = &self.observer {
            observer.deleted(pv);
        }
        if let Err(err) = self.api.delete_volume(&name).await {
            info!(PV = name, %err, "Failed to delete persistentvolume");
            return Err(VolumeSyncError::DeletePv(err));
        }
        if !finalizers(pv).is_empty()
            && let Some(cached) = self.listers.volume(&name)
        {
            self.remove_pv_finalizer(&cached).await?;
        }
        debug!(PV = name, "PersistentVolume deleted succeeded");
        Ok(())
    }
}
