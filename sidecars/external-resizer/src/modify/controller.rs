//! The controller's state and its PVC handling (upstream's `controller.go`): the handlers that
//! queue PVCs, the worker's `syncPVC`, and the uncertain PVCs found at start-up.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use csi_controller::{ApiError, SlowSet, resources};
use csi_kube::{EventRecorder, key_of};
use csi_workqueue::{Outcome, WorkQueue};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use tracing::{debug, error, trace};

use super::kube::{Listers, ModifyApi, kobj};
use super::{Modifier, ModifyConfig, ModifyError, Parts, modify_status};

/// The modify controller's state and collaborators. Every method takes `&self`: workers share
/// one.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ModifyConfig,
    pub(crate) modifier: Arc<Modifier>,
    pub(crate) listers: Arc<dyn Listers>,
    pub(crate) api: Arc<dyn ModifyApi>,
    pub(crate) events: Arc<dyn EventRecorder>,
    pub(crate) queue: WorkQueue<String>,
    /// PVCs whose last `ControllerModifyVolume` failed with a non-final error: their target
    /// must not change while retrying. Every `InProgress` PVC is put here at start-up.
    pub(crate) uncertain: Mutex<HashSet<String>>,
    /// PVCs whose modification was infeasible, retried at a slower rate.
    pub(crate) slow_set: SlowSet,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The PVC's phase is `Bound`.
pub(crate) fn is_bound(pvc: &PersistentVolumeClaim) -> bool {
    pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
}

/// The PVC's `spec.volumeAttributesClassName`, `""` when unset.
pub(crate) fn spec_vac(pvc: &PersistentVolumeClaim) -> &str {
    pvc.spec
        .as_ref()
        .and_then(|s| s.volume_attributes_class_name.as_deref())
        .unwrap_or_default()
}

fn volume_name(pvc: &PersistentVolumeClaim) -> &str {
    pvc.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or_default()
}

/// client-go's `SplitMetaNamespaceKey`.
fn split_key(key: &str) -> Result<(&str, &str), String> {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        [name] => Ok(("", name)),
        [namespace, name] => Ok((namespace, name)),
        _ => Err(format!("unexpected key format: {key:?}")),
    }
}

impl Inner {
    pub(crate) fn new(config: ModifyConfig, parts: &Parts, listers: Arc<dyn Listers>) -> Self {
        Inner {
            queue: super::new_queue(&config, parts.workqueue_metrics.as_ref()),
            slow_set: super::new_slow_set(&config),
            config,
            modifier: parts.modifier.clone(),
            listers,
            api: parts.api.clone(),
            events: parts.events.clone(),
            uncertain: Mutex::new(HashSet::new()),
        }
    }

    /// Takes every PVC whose modification is `InProgress` as uncertain (upstream's
    /// `initUncertainPVCs`): after a restart we cannot know whether the driver is still at it.
    pub(crate) fn init_uncertain_pvcs(&self) {
        let mut uncertain = lock(&self.uncertain);
        for pvc in self.listers.claims() {
            let in_progress = pvc
                .status
                .as_ref()
                .and_then(|s| s.modify_volume_status.as_ref())
                .is_some_and(|s| s.status == modify_status::IN_PROGRESS);
            if in_progress {
                uncertain.insert(key_of(pvc.as_ref()));
            }
        }
    }

    /// A PVC appeared: queue it.
    pub(crate) fn add_pvc(&self, pvc: &PersistentVolumeClaim) {
        self.queue.add(key_of(pvc));
    }

    /// A PVC changed: queue it when it is bound and its class changed or no modification is
    /// recorded (a request that came while the last one ran), and its PV is in the cache.
    pub(crate) fn update_pvc(&self, old: &PersistentVolumeClaim, new: &PersistentVolumeClaim) {
        let vac_changed = spec_vac(old) != spec_vac(new);
        let no_status = new
            .status
            .as_ref()
            .and_then(|s| s.modify_volume_status.as_ref())
            .is_none();
        if (vac_changed || no_status) && is_bound(new) {
            let pv_name = volume_name(old);
            if self.listers.volume(pv_name).is_none() {
                error!(
                    "Get PV {pv_name:?} of pvc {:?} in PVInformer cache failed: {}",
                    kobj(&old.metadata),
                    ApiError::not_found(resources::PERSISTENT_VOLUME_LISTER, pv_name)
                );
                return;
            }
            debug!(pvc = %kobj(&new.metadata), "Enqueueing PVC for modify");
            self.add_pvc(new);
        } else {
            debug!(pvc = %kobj(&new.metadata), "No need to modify PVC");
        }
    }

    /// A PVC is gone: forget its backoff.
    pub(crate) fn delete_pvc(&self, pvc: &PersistentVolumeClaim) {
        self.queue.forget(&key_of(pvc));
    }

    /// The worker's handling of one key: forgotten on success, queued again with backoff on
    /// failure.
    pub(crate) async fn sync(&self, key: &str) -> Outcome {
        match self.sync_pvc(key).await {
            Ok(()) => Outcome::Forget,
            Err(err) => {
                error!(%err, key, "Error syncing PVC");
                Outcome::Requeue
            }
        }
    }

    /// Modifies the PVC `key`'s volume when it asks for it (upstream's `syncPVC`).
    pub(crate) async fn sync_pvc(&self, key: &str) -> Result<(), ModifyError> {
        debug!(key, "Started PVC processing for modify controller");
        let (namespace, name) = split_key(key).map_err(|err| {
            ModifyError::Other(format!(
                "getting namespace and name from key {key} failed: {err}"
            ))
        })?;
        let Some(pvc) = self.listers.claim(namespace, name) else {
            debug!(pvc = key, "PVC is deleted or does not exist");
            return Ok(());
        };
        let pv_name = volume_name(&pvc);
        if pv_name.is_empty() {
            debug!(pvc = key, "PV bound to PVC is not created yet");
            return Ok(());
        }
        let Some(pv) = self.listers.volume(pv_name) else {
            return Err(ModifyError::Other(format!(
                "Get PV {pv_name:?} of pvc {:?} in PVInformer cache failed: {}",
                kobj(&pvc.metadata),
                ApiError::not_found(resources::PERSISTENT_VOLUME_LISTER, pv_name)
            )));
        };
        if !self.is_ours(&pv) {
            trace!(pv = pv_name, "Skipping PV provisioned by different driver");
            return Ok(());
        }
        if is_bound(&pvc) {
            let done = self.modify(pvc.as_ref().clone(), pv.as_ref().clone()).await;
            done.result?;
        } else {
            debug!(pv = pv_name, "No need to modify PV");
        }
        Ok(())
    }

    fn is_ours(&self, pv: &PersistentVolume) -> bool {
        pv.spec
            .as_ref()
            .and_then(|s| s.csi.as_ref())
            .is_some_and(|csi| csi.driver == self.config.driver_name)
    }
}
