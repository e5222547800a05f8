//! What the controller writes to a PVC's status and its PV (upstream's `modify_status.go`):
//! `modifyVolumeStatus` with the `ModifyingVolume` / `ModifyVolumeError` conditions, the
//! completed modification, and a roll back.

use k8s_openapi::api::core::v1::{
    ModifyVolumeStatus, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::controller::{Inner, spec_vac};
use super::kube::{patch_claim, patch_volume};
use super::{ModifyError, conditions, is_final, modify_status};
use crate::resize::util::merge_pvc_conditions;

/// `metav1.Now()`, at the second (what the API server keeps).
fn now() -> Time {
    let now = Timestamp::now();
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The PVC's modification target, `""` when none.
pub(crate) fn target_of(pvc: &PersistentVolumeClaim) -> &str {
    pvc.status
        .as_ref()
        .and_then(|s| s.modify_volume_status.as_ref())
        .and_then(|s| s.target_volume_attributes_class_name.as_deref())
        .unwrap_or_default()
}

/// The conditions without those of modification (upstream's `clearModifyVolumeConditions`).
fn clear_modify_volume_conditions(
    conditions: Option<Vec<PersistentVolumeClaimCondition>>,
) -> Option<Vec<PersistentVolumeClaimCondition>> {
    let kept: Vec<_> = conditions
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            c.type_ != conditions::MODIFY_VOLUME_ERROR && c.type_ != conditions::MODIFYING_VOLUME
        })
        .collect();
    // An empty list is omitted, as Go's `omitempty` does: the patch then removes the field.
    (!kept.is_empty()).then_some(kept)
}

fn condition(
    type_: &str,
    reason: &str,
    message: String,
    probe: &Time,
) -> PersistentVolumeClaimCondition {
    PersistentVolumeClaimCondition {
        type_: type_.to_string(),
        status: "True".to_string(),
        reason: non_empty(reason.to_string()),
        message: non_empty(message),
        last_probe_time: Some(probe.clone()),
        last_transition_time: None,
    }
}

impl Inner {
    /// Sets `modifyVolumeStatus.status` to `status` (anything but completion) and, unless it
    /// is `Pending`, the conditions: `ModifyingVolume` (the target becomes the spec's class
    /// when `err` is `None`) and, after an error, `ModifyVolumeError` with its gRPC code and
    /// message (upstream's `markControllerModifyVolumeStatus`). Patched with a
    /// resourceVersion check.
    pub(crate) async fn mark_controller_modify_volume_status(
        &self,
        pvc: &PersistentVolumeClaim,
        status: &str,
        err: Option<&ModifyError>,
    ) -> Result<PersistentVolumeClaim, ModifyError> {
        let mut new = pvc.clone();
        let spec_target = spec_vac(pvc).to_string();
        let new_status = new.status.get_or_insert_with(Default::default);
        let modify = new_status
            .modify_volume_status
            .get_or_insert_with(ModifyVolumeStatus::default);
        modify.status = status.to_string();
        if status != modify_status::PENDING {
            let probe = now();
            let target = modify
                .target_volume_attributes_class_name
                .clone()
                .unwrap_or_default();
            let mut wanted = Vec::with_capacity(2);
            match err {
                None => {
                    modify.target_volume_attributes_class_name = non_empty(spec_target.clone());
                    wanted.push(condition(
                        conditions::MODIFYING_VOLUME,
                        "",
                        format!("Modifying volume to {spec_target:?} is in progress."),
                        &probe,
                    ));
                }
                Some(err) => {
                    let message = if is_final(err) {
                        format!("Modifying volume to {target:?} failed. Waiting for retry.")
                    } else {
                        format!("Modifying volume to {target:?} is still in progress.")
                    };
                    wanted.push(condition(conditions::MODIFYING_VOLUME, "", message, &probe));
                    // A non-gRPC error reads as code Unknown with the error as message, as
                    // `status.FromError` makes it.
                    let (code, message) = match err.status() {
                        Some(status) => (
                            csi_metrics::grpc_code_name(status.code() as i32).to_string(),
                            status.message().to_string(),
                        ),
                        None => ("Unknown".to_string(), err.to_string()),
                    };
                    wanted.push(condition(
                        conditions::MODIFY_VOLUME_ERROR,
                        &code,
                        message,
                        &probe,
                    ));
                }
            }
            let merged = merge_pvc_conditions(
                new_status.conditions.as_deref().unwrap_or_default(),
                &wanted,
            );
            new_status.conditions = (!merged.is_empty()).then_some(merged);
        }
        patch_claim(self.api.as_ref(), pvc, &new, true)
            .await
            .map_err(|err| {
                ModifyError::Other(format!(
                    "mark PVC {:?} as modify volume failed, errored with: {err}",
                    pvc.metadata.name.as_deref().unwrap_or_default()
                ))
            })
    }

    /// Completes a modification: the PV's `spec.volumeAttributesClassName` becomes the
    /// target, then the PVC's `status.currentVolumeAttributesClassName` too, its
    /// `modifyVolumeStatus` goes and so do the modification conditions (upstream's
    /// `markControllerModifyVolumeCompleted`; the PV first, so that a failure never leaves the
    /// PVC done and the PV not).
    pub(crate) async fn mark_controller_modify_volume_completed(
        &self,
        pvc: &PersistentVolumeClaim,
        pv: &PersistentVolume,
    ) -> Result<(PersistentVolumeClaim, PersistentVolume), ModifyError> {
        let modified = target_of(pvc).to_string();
        let name = pvc.metadata.name.as_deref().unwrap_or_default();

        let mut new_pvc = pvc.clone();
        let status = new_pvc.status.get_or_insert_with(Default::default);
        status.modify_volume_status = None;
        status.current_volume_attributes_class_name = Some(modified.clone());
        status.conditions = clear_modify_volume_conditions(status.conditions.take());

        let mut new_pv = pv.clone();
        new_pv
            .spec
            .get_or_insert_with(Default::default)
            .volume_attributes_class_name = Some(modified);

        let updated_pv = patch_volume(self.api.as_ref(), pv, &new_pv)
            .await
            .map_err(|err| {
                ModifyError::Other(format!(
                    "update pv.Spec.VolumeAttributesClassName for PVC {name:?} failed, errored with: {err}"
                ))
            })?;
        let updated_pvc = patch_claim(self.api.as_ref(), pvc, &new_pvc, false)
            .await
            .map_err(|err| {
                ModifyError::Other(format!(
                    "mark PVC {name:?} as ModifyVolumeCompleted failed, errored with: {err}"
                ))
            })?;
        Ok((updated_pvc, updated_pv))
    }

    /// Clears `ModifyingVolume` after a roll back (upstream's `markRolledBack`).
    pub(crate) async fn mark_rolled_back(
        &self,
        pvc: &PersistentVolumeClaim,
    ) -> Result<PersistentVolumeClaim, ModifyError> {
        let mut new = pvc.clone();
        if let Some(status) = new.status.as_mut() {
            let kept: Vec<_> = status
                .conditions
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.type_ != conditions::MODIFYING_VOLUME)
                .collect();
            status.conditions = (!kept.is_empty()).then_some(kept);
        }
        patch_claim(self.api.as_ref(), pvc, &new, false)
            .await
            .map_err(|err| {
                ModifyError::Other(format!(
                    "mark PVC {:?} as rolled back failed: {err}",
                    pvc.metadata.name.as_deref().unwrap_or_default()
                ))
            })
    }
}
