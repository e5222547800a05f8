//! Deciding and doing a modification (upstream's `modify_volume.go`): the roll back, the
//! uncertain target, the class lookup, `ControllerModifyVolume` and what its answer means for
//! the PVC, and the slower retries after an infeasible answer.

use std::collections::HashMap;
use std::sync::Arc;

use csi_controller::{ApiError, SlowEntry};
use csi_kube::{EventType, key_of};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::VolumeAttributesClass;
use tonic::Code;
use tracing::debug;

use super::controller::{Inner, lock, spec_vac};
use super::kube::VOLUME_ATTRIBUTES_CLASS_LISTER;
use super::modifier::ModifierError;
use super::status::target_of;
use super::{ModifyError, conditions, is_final, modify_status, reasons};

/// The mutable parameter `--extra-modify-metadata` adds: the PVC's name.
pub const PVC_NAME_KEY: &str = "csi.storage.k8s.io/pvc/name";
/// The PVC's namespace.
pub const PVC_NAMESPACE_KEY: &str = "csi.storage.k8s.io/pvc/namespace";
/// The PV's name.
pub const PV_NAME_KEY: &str = "csi.storage.k8s.io/pv/name";

/// What a pass over a PVC left: the PVC and PV as last written (or as given), the error, and
/// whether the volume was modified (upstream's four return values; the worker reads only the
/// error, the tables read all).
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Pass {
    pub(crate) pvc: PersistentVolumeClaim,
    pub(crate) pv: PersistentVolume,
    pub(crate) result: Result<(), ModifyError>,
    pub(crate) modified: bool,
}

impl Pass {
    fn new(
        pvc: PersistentVolumeClaim,
        pv: PersistentVolume,
        result: Result<(), ModifyError>,
    ) -> Self {
        Pass {
            pvc,
            pv,
            result,
            modified: false,
        }
    }
}

fn status_of(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.status
        .as_ref()
        .and_then(|s| s.modify_volume_status.as_ref())
        .map(|s| s.status.as_str())
}

fn name_of(pvc: &PersistentVolumeClaim) -> &str {
    pvc.metadata.name.as_deref().unwrap_or_default()
}

impl Inner {
    /// Brings the PVC's volume to the class its spec asks for (upstream's `modify`).
    pub(crate) async fn modify(&self, pvc: PersistentVolumeClaim, pv: PersistentVolume) -> Pass {
        let key = key_of(&pvc);
        if let Some(delayed) = self.delay_modification_if_recently_infeasible(&pvc, &key) {
            return Pass::new(pvc, pv, Err(delayed));
        }
        let spec = spec_vac(&pvc).to_string();
        let current = pvc
            .status
            .as_ref()
            .and_then(|s| s.current_volume_attributes_class_name.as_deref())
            .unwrap_or_default();
        let status = status_of(&pvc);
        if status.is_none() && spec == current {
            // Already there.
            return Pass::new(pvc, pv, Ok(()));
        }
        let in_progress = status == Some(modify_status::IN_PROGRESS);
        if spec.is_empty() && !in_progress {
            // The user no longer asks for a class and nothing runs: stay where we are.
            debug!(pv = ?pv.metadata.name, "stop reconcile for rolled back PVC");
            return match self.rolled_back(&pvc).await {
                Ok(pvc) => Pass::new(pvc, pv, Ok(())),
                Err(err) => Pass::new(pvc, pv, Err(err)),
            };
        }
        // A status that is not InProgress is a stale PVC (marking it fails with a conflict) or
        // was changed by someone else: the spec's class is tried, as if it were not uncertain.
        let uncertain = in_progress && lock(&self.uncertain).contains(&key);
        if uncertain || spec.is_empty() {
            // Keep the previous target.
            let target = target_of(&pvc).to_string();
            let vac = match self.get_target_vac(&pvc, &target) {
                Ok(vac) => vac,
                Err(err) => return Pass::new(pvc, pv, Err(err)),
            };
            return self
                .controller_modify_volume_with_target(pvc, pv, &vac)
                .await;
        }
        self.validate_vac_and_modify_volume_with_target(pvc, pv)
            .await
    }

    /// A roll back: `VolumeModifyCanceled` and `ModifyingVolume` cleared when a modification
    /// was under way; the recorded status stays (upstream's `rolledBack`).
    async fn rolled_back(
        &self,
        pvc: &PersistentVolumeClaim,
    ) -> Result<PersistentVolumeClaim, ModifyError> {
        let modifying = pvc
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == conditions::MODIFYING_VOLUME));
        if !modifying {
            return Ok(pvc.clone());
        }
        self.events.record(
            pvc,
            EventType::Normal,
            reasons::VOLUME_MODIFY_CANCELLED,
            "Cancelled modify.",
        );
        self.mark_rolled_back(pvc).await
    }

    /// The class `name` from the cache; a missing class gets a `VolumeModifyFailed` Event.
    fn get_target_vac(
        &self,
        pvc: &PersistentVolumeClaim,
        name: &str,
    ) -> Result<Arc<VolumeAttributesClass>, ModifyError> {
        self.listers.volume_attributes_class(name).ok_or_else(|| {
            self.events.record(
                pvc,
                EventType::Warning,
                reasons::VOLUME_MODIFY_FAILED,
                &format!("VAC {name:?} does not exist."),
            );
            ModifyError::Other(format!(
                "get VAC with vac name {name} in VACInformer cache failed: {}",
                ApiError::not_found(VOLUME_ATTRIBUTES_CLASS_LISTER, name)
            ))
        })
    }

    /// `Pending` when the spec's class does not exist; otherwise `InProgress` with the spec's
    /// class as target, a `VolumeModify` Event and the modification.
    async fn validate_vac_and_modify_volume_with_target(
        &self,
        pvc: PersistentVolumeClaim,
        pv: PersistentVolume,
    ) -> Pass {
        let spec = spec_vac(&pvc).to_string();
        let Ok(vac) = self.get_target_vac(&pvc, &spec) else {
            return match self
                .mark_controller_modify_volume_status(&pvc, modify_status::PENDING, None)
                .await
            {
                Ok(pvc) => Pass::new(pvc, pv, Ok(())),
                Err(err) => Pass::new(pvc, pv, Err(err)),
            };
        };
        let pvc = match self
            .mark_controller_modify_volume_status(&pvc, modify_status::IN_PROGRESS, None)
            .await
        {
            Ok(pvc) => pvc,
            Err(err) => return Pass::new(pvc, pv, Err(err)),
        };
        self.events.record(
            &pvc,
            EventType::Normal,
            reasons::VOLUME_MODIFY,
            &format!(
                "external resizer is modifying volume {} with vac {}",
                name_of(&pvc),
                vac.metadata.name.as_deref().unwrap_or_default()
            ),
        );
        self.controller_modify_volume_with_target(pvc, pv, &vac)
            .await
    }

    /// `ControllerModifyVolume` to `vac`, and what its answer means: success completes the
    /// modification; a non-final error makes the PVC uncertain and keeps it `InProgress`; a
    /// final one ends the uncertainty, `InvalidArgument` making it `Infeasible` (and slow);
    /// both with the error conditions and a `VolumeModifyFailed` Event.
    async fn controller_modify_volume_with_target(
        &self,
        pvc: PersistentVolumeClaim,
        pv: PersistentVolume,
        vac: &VolumeAttributesClass,
    ) -> Pass {
        let vac_name = vac.metadata.name.as_deref().unwrap_or_default();
        let (pvc, pv, err) = match self.call_modify_volume_on_plugin(pvc, pv, vac).await {
            Ok((pvc, pv)) => {
                debug!(
                    "Update volumeAttributesClass of PV {:?} to {vac_name} succeeded",
                    pv.metadata.name.as_deref().unwrap_or_default()
                );
                self.events.record(
                    &pvc,
                    EventType::Normal,
                    reasons::VOLUME_MODIFY_SUCCESS,
                    &format!(
                        "external resizer modified volume {} with vac {vac_name} successfully",
                        name_of(&pvc)
                    ),
                );
                return Pass {
                    pvc,
                    pv,
                    result: Ok(()),
                    modified: true,
                };
            }
            Err(failed) => failed,
        };
        let Some(code) = err.status().map(tonic::Status::code) else {
            let err = ModifyError::Other(format!(
                "cannot get error status from modify volume err: {err}"
            ));
            return Pass::new(pvc, pv, Err(err));
        };
        let key = key_of(&pvc);
        let mut message = err.to_string();
        let mut target_status = modify_status::IN_PROGRESS;
        if !is_final(&err) {
            lock(&self.uncertain).insert(key.clone());
            message.push_str(". Still modifying to VAC ");
            message.push_str(vac_name);
        } else {
            // Only InvalidArgument is infeasible; other final errors stay InProgress.
            if code == Code::InvalidArgument {
                target_status = modify_status::INFEASIBLE;
            }
            lock(&self.uncertain).remove(&key);
        }
        let pvc = match self
            .mark_controller_modify_volume_status(&pvc, target_status, Some(&err))
            .await
        {
            Ok(pvc) => pvc,
            Err(mark_err) => return Pass::new(pvc, pv, Err(mark_err)),
        };
        self.mark_for_slow_retry(&pvc, &key);
        self.events.record(
            &pvc,
            EventType::Warning,
            reasons::VOLUME_MODIFY_FAILED,
            &message,
        );
        Pass::new(pvc, pv, Err(err))
    }

    /// The modifier's call with the class's parameters (and the extra metadata), then the
    /// completion. A failure gives back the PVC and PV as they were.
    async fn call_modify_volume_on_plugin(
        &self,
        pvc: PersistentVolumeClaim,
        pv: PersistentVolume,
        vac: &VolumeAttributesClass,
    ) -> Result<
        (PersistentVolumeClaim, PersistentVolume),
        (PersistentVolumeClaim, PersistentVolume, ModifyError),
    > {
        let mut parameters: HashMap<String, String> = vac
            .parameters
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        if self.config.extra_modify_metadata {
            parameters.insert(PVC_NAME_KEY.into(), name_of(&pvc).to_string());
            parameters.insert(
                PVC_NAMESPACE_KEY.into(),
                pvc.metadata.namespace.clone().unwrap_or_default(),
            );
            parameters.insert(
                PV_NAME_KEY.into(),
                pv.metadata.name.clone().unwrap_or_default(),
            );
        }
        if let Err(err) = self.modifier.modify(&pv, parameters).await {
            let err = match err {
                ModifierError::Csi(status) => ModifyError::Csi(status),
                other => ModifyError::Other(other.to_string()),
            };
            return Err((pvc, pv, err));
        }
        match self
            .mark_controller_modify_volume_completed(&pvc, &pv)
            .await
        {
            Ok(done) => Ok(done),
            Err(err) => {
                let err = ModifyError::Other(format!(
                    "modify volume failed to mark pvc {} modify volume completed: {err} ",
                    name_of(&pvc)
                ));
                Err((pvc, pv, err))
            }
        }
    }

    /// A delay when the PVC's target was infeasible recently and the spec still asks for it;
    /// a new target is tried at once (upstream's `delayModificationIfRecentlyInfeasible`).
    fn delay_modification_if_recently_infeasible(
        &self,
        pvc: &PersistentVolumeClaim,
        key: &str,
    ) -> Option<ModifyError> {
        let spec = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_attributes_class_name.as_deref());
        if status_of(pvc).is_none() || spec != Some(target_of(pvc)) {
            // The new class may be feasible.
            self.slow_set.remove(key);
            return None;
        }
        let in_slow_set = self.slow_set.contains(key);
        self.mark_for_slow_retry(pvc, key);
        if !in_slow_set {
            return None;
        }
        let message = format!(
            "skipping volume modification for pvc {key}, because modification previously failed with infeasible error"
        );
        debug!("{message}");
        Some(ModifyError::DelayRetry {
            message,
            try_after: self.slow_set.time_remaining(key),
        })
    }

    /// Puts an `Infeasible` PVC in the slow set.
    fn mark_for_slow_retry(&self, pvc: &PersistentVolumeClaim, key: &str) {
        if status_of(pvc) == Some(modify_status::INFEASIBLE) {
            self.slow_set.add(key, SlowEntry::now());
        }
    }
}
