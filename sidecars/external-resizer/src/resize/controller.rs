//! Upstream's `pkg/controller` (`controller.go`, `expand_and_recover.go`, `resize_status.go`)
//! with recovery from failed expansion always on, as v2.3.0 has it: what one PVC key taken off
//! the queue leads to ([`Reconciler::sync_pvc`]) and which claim changes queue a key
//! ([`should_enqueue_update`]).
//!
//! An expansion records the size it aims at in `status.allocatedResources.storage` and its
//! progress in `status.allocatedResourceStatuses.storage` (`ControllerResizeInProgress`, then
//! `NodeResizePending` or none, or `ControllerResizeInfeasible`); a user may lower the request
//! after a failure, and [`Reconciler::expand_and_recover`] then expands to the new, smaller
//! size — never below what the volume already has.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use csi_controller::patch::create_merge_patch;
use csi_controller::{SlowEntry, SlowSet};
use csi_kube::{EventRecorder, EventType};
use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimCondition,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tracing::{debug, warn};

use super::inuse::InUseClaims;
use super::kube::{Listers, ResizerApi};
use super::resizer::Resizer;
use super::util::{
    self, ANN_NODE_EXPANSION_NOT_REQUIRED, ANN_PRE_RESIZE_CAPACITY, ANN_VOLUME_RESIZER,
    FS_RESIZE_PENDING_MESSAGE, STORAGE, conditions, reasons,
};

/// Why a sync failed, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// Retried with the queue's backoff.
    #[error("{0}")]
    Failed(String),
    /// Retried after `after` (upstream's `DelayRetryError`: an infeasible expansion waits for
    /// the slow-retry period), without touching the backoff.
    #[error("{message}")]
    DelayRetry {
        /// Why.
        message: String,
        /// When to try again.
        after: Duration,
    },
}

/// What [`Reconciler::expand_and_recover`] did.
#[derive(Debug, Clone)]
pub struct ExpandOutcome {
    /// The claim as it is now (patched, or as given).
    pub claim: PersistentVolumeClaim,
    /// The volume as it is now.
    pub volume: PersistentVolume,
    /// The error, if any.
    pub result: Result<(), SyncError>,
    /// Whether the resizer was called.
    pub resize_called: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `klog.KObj`: `namespace/name`.
fn kobj(claim: &PersistentVolumeClaim) -> String {
    csi_kube::key_of(claim)
}

fn pv_name(pv: &PersistentVolume) -> String {
    pv.metadata.name.clone().unwrap_or_default()
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn condition(kind: &str, message: &str) -> PersistentVolumeClaimCondition {
    PersistentVolumeClaimCondition {
        type_: kind.to_string(),
        status: "True".into(),
        last_transition_time: Some(now()),
        message: (!message.is_empty()).then(|| message.to_string()),
        ..Default::default()
    }
}

fn set_conditions(
    claim: &mut PersistentVolumeClaim,
    conditions: Vec<PersistentVolumeClaimCondition>,
) {
    let status = claim.status.get_or_insert_with(Default::default);
    status.conditions = (!conditions.is_empty()).then_some(conditions);
}

fn current_conditions(claim: &PersistentVolumeClaim) -> Vec<PersistentVolumeClaimCondition> {
    claim
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
}

/// Upstream's `mergeStorageResourceStatus`.
fn merge_storage_resource_status(claim: &mut PersistentVolumeClaim, resize_status: &str) {
    claim
        .status
        .get_or_insert_with(Default::default)
        .allocated_resource_statuses
        .get_or_insert_with(BTreeMap::new)
        .insert(STORAGE.into(), resize_status.into());
}

/// Upstream's `mergeStorageAllocatedResources`.
fn merge_storage_allocated_resources(claim: &mut PersistentVolumeClaim, size: &Quantity) {
    claim
        .status
        .get_or_insert_with(Default::default)
        .allocated_resources
        .get_or_insert_with(BTreeMap::new)
        .insert(STORAGE.into(), size.clone());
}

fn remove_node_expansion_not_required_annotation(claim: &mut PersistentVolumeClaim) {
    if let Some(annotations) = claim.metadata.annotations.as_mut() {
        annotations.remove(ANN_NODE_EXPANSION_NOT_REQUIRED);
    }
}

fn add_node_expansion_not_required_annotation(claim: &mut PersistentVolumeClaim) {
    claim
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .entry(ANN_NODE_EXPANSION_NOT_REQUIRED.into())
        .or_insert_with(|| "true".into());
}

fn has_annotation<K: kube::Resource>(object: &K, key: &str) -> bool {
    object
        .meta()
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(key))
}

/// Whether a claim update should queue the claim (upstream's `updatePVC`, with recovery
/// always on): its request changed either way, its resizer annotation changed, it is a
/// resync (same resource version), its capacity grew (the node finished: the pre-resize
/// annotation may go), or its resize status changed (e.g. the node failed).
pub fn should_enqueue_update(old: &PersistentVolumeClaim, new: &PersistentVolumeClaim) -> bool {
    let request_changed =
        util::cmp_quantity(util::requested_size(new), util::requested_size(old)).is_ne();
    let resizer = |c: &PersistentVolumeClaim| {
        c.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANN_VOLUME_RESIZER).cloned())
    };
    if request_changed || resizer(new) != resizer(old) {
        return true;
    }
    new.metadata.resource_version == old.metadata.resource_version
        || util::cmp_quantity(util::status_size(new), util::status_size(old)).is_gt()
        || util::resize_status(new) != util::resize_status(old)
}

/// The expansion logic for one claim at a time; workers share one.
#[derive(Debug)]
pub struct Reconciler {
    name: String,
    resizer: Arc<dyn Resizer>,
    listers: Arc<dyn Listers>,
    api: Arc<dyn ResizerApi>,
    events: Arc<dyn EventRecorder>,
    in_use: Arc<InUseClaims>,
    annotate_fs_resize: bool,
    final_errors: Mutex<HashSet<String>>,
    slow: SlowSet,
}

/// Everything [`Reconciler::new`] needs.
#[derive(Debug, Clone)]
pub struct ReconcilerParts {
    /// The driver name (upstream's controller name, in messages).
    pub name: String,
    /// The resizer.
    pub resizer: Arc<dyn Resizer>,
    /// The caches.
    pub listers: Arc<dyn Listers>,
    /// The API.
    pub api: Arc<dyn ResizerApi>,
    /// Events.
    pub events: Arc<dyn EventRecorder>,
    /// Claims in use (fed by the Pod watch when `--handle-volume-inuse-error` is on).
    pub in_use: Arc<InUseClaims>,
    /// The AnnotateFsResize feature gate.
    pub annotate_fs_resize: bool,
    /// `--retry-interval-max`: how long an infeasible expansion waits before it is retried.
    pub retry_interval_max: Duration,
}

impl Reconciler {
    /// The logic.
    pub fn new(parts: ReconcilerParts) -> Self {
        Reconciler {
            name: parts.name,
            resizer: parts.resizer,
            listers: parts.listers,
            api: parts.api,
            events: parts.events,
            in_use: parts.in_use,
            annotate_fs_resize: parts.annotate_fs_resize,
            final_errors: Mutex::default(),
            slow: SlowSet::new(parts.retry_interval_max),
        }
    }

    /// Marks the claim `key` as having failed with a final error (tests start from there).
    pub fn add_final_error(&self, key: &str) {
        lock(&self.final_errors).insert(key.to_string());
    }

    fn has_final_error(&self, key: &str) -> bool {
        lock(&self.final_errors).contains(key)
    }

    fn remove_final_error(&self, key: &str) {
        lock(&self.final_errors).remove(key);
    }

    /// Forgets what failed attempts left about the deleted claim `key` (UID `uid`): its final
    /// error, its slow retry and its in-use error, which would otherwise stay for the life of
    /// the process (upstream keeps them too).
    pub fn forget_claim(&self, key: &str, uid: &str) {
        self.remove_final_error(key);
        self.slow.remove(key);
        self.in_use.remove_claim_with_in_use_error(uid);
    }

    /// Whether anything is kept about the claim `key` (UID `uid`) from failed attempts.
    pub fn remembers_claim(&self, key: &str, uid: &str) -> bool {
        self.has_final_error(key)
            || self.slow.get(key).is_some()
            || self.in_use.has_in_use_errors(uid)
    }

    /// Upstream's `syncPVC`: expands the claim `namespace/name` if it asks for more than it
    /// has.
    pub async fn sync_pvc(&self, key: &str) -> Result<(), SyncError> {
        debug!(v = 4, key, "Started PVC processing for resize controller");
        let (namespace, name) = match key.split('/').collect::<Vec<_>>()[..] {
            [name] => ("", name),
            [namespace, name] => (namespace, name),
            _ => {
                return Err(SyncError::Failed(format!(
                    "getting namespace and name from key {key} failed: unexpected key format: {key:?}"
                )));
            }
        };
        let Some(claim) = self.listers.claim(namespace, name) else {
            debug!(v = 3, pvc = key, "PVC is deleted or does not exist");
            return Ok(());
        };
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        if volume_name.is_empty() {
            debug!(v = 4, pvc = key, "PV bound to PVC is not created yet");
            return Ok(());
        }
        let Some(pv) = self.listers.volume(&volume_name) else {
            return Err(SyncError::Failed(format!(
                "PV {volume_name:?} bound to pvc {:?} not found",
                kobj(&claim)
            )));
        };
        if self.annotate_fs_resize
            && is_node_expand_complete(&claim, &pv)
            && has_annotation(&*pv, ANN_PRE_RESIZE_CAPACITY)
            && let Err(err) = self.delete_pre_resize_cap_annotation(&pv).await
        {
            return Err(SyncError::Failed(format!(
                "failed removing annotation {ANN_PRE_RESIZE_CAPACITY} from pv {volume_name:?}: {err}"
            )));
        }
        if !pvc_need_resize(&claim) {
            debug!(v = 4, pvc = key, "No need to resize PVC");
            return Ok(());
        }
        self.expand_and_recover(&claim, &pv).await.result
    }

    /// Upstream's `expandAndRecover`: picks the size to expand to from the claim's request,
    /// its allocated size, its resize status and the volume's size, marks the claim, calls the
    /// resizer and records the result.
    pub async fn expand_and_recover(
        &self,
        claim: &PersistentVolumeClaim,
        pv: &PersistentVolume,
    ) -> ExpandOutcome {
        let mut outcome = ExpandOutcome {
            claim: claim.clone(),
            volume: pv.clone(),
            result: Ok(()),
            resize_called: false,
        };
        if !self.pv_can_be_expanded(pv, claim) {
            debug!(v = 4, pv = %pv_name(pv), "No need to resize");
            return outcome;
        }
        let spec_size = util::requested_size(claim).cloned().unwrap_or_default();
        let status_size = util::status_size(claim).cloned().unwrap_or_default();
        let pv_size = pv
            .spec
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get(STORAGE))
            .cloned();
        let resize_status = util::resize_status(claim).to_string();
        let allocated = util::allocated_size(claim).cloned();
        let key = kobj(claim);
        let in_slow_set = self.slow.contains(&key);
        let mut new_size = spec_size.clone();
        let mut update_status = true;
        if resize_status == conditions::CONTROLLER_RESIZE_INFEASIBLE {
            self.slow.add(&key, SlowEntry::now());
        }

        if util::cmp_quantity(pv_size.as_ref(), Some(&spec_size)).is_lt() {
            // The volume is smaller than requested: expand, but let an expansion in progress
            // finish at its size first.
            match resize_status.as_str() {
                conditions::NODE_RESIZE_INFEASIBLE => {
                    if let Some(allocated) = &allocated {
                        new_size = allocated.clone();
                    }
                }
                conditions::NODE_RESIZE_PENDING | conditions::NODE_RESIZE_IN_PROGRESS => {
                    if let Some(allocated) = &allocated {
                        new_size = allocated.clone();
                    }
                    if util::cmp_quantity(pv_size.as_ref(), Some(&new_size)).is_ge() {
                        return outcome;
                    }
                }
                conditions::CONTROLLER_RESIZE_IN_PROGRESS => {
                    // A final error means the driver is not expanding any more: the user's
                    // new request may be taken. Otherwise the last attempt may still be
                    // running and must end at its size.
                    if self.has_final_error(&key) {
                        new_size = spec_size.clone();
                    } else if let Some(allocated) = &allocated {
                        new_size = allocated.clone();
                    }
                }
                _ => new_size = spec_size.clone(),
            }
        } else {
            // The volume is already as large as requested.
            match resize_status.as_str() {
                conditions::NODE_RESIZE_IN_PROGRESS | conditions::NODE_RESIZE_PENDING => {
                    return outcome;
                }
                conditions::NODE_RESIZE_INFEASIBLE => {
                    // Reset the status so that the kubelet may retry safely.
                    new_size = match &allocated {
                        Some(allocated)
                            if self.resizer.driver_supports_control_plane_expansion() =>
                        {
                            allocated.clone()
                        }
                        _ => spec_size.clone(),
                    };
                }
                conditions::CONTROLLER_RESIZE_IN_PROGRESS
                | conditions::CONTROLLER_RESIZE_INFEASIBLE => {
                    if let Some(allocated) = &allocated {
                        new_size = allocated.clone();
                    }
                }
                _ => {
                    if resize_status.is_empty()
                        && let Some(allocated) = &allocated
                    {
                        new_size = allocated.clone();
                    } else {
                        warn!(
                            "external-resizer may be running with older version of kubernetes api-server, please upgrade to k8s version 1.32"
                        );
                        if util::has_fs_resize_pending_condition(claim) {
                            return outcome;
                        }
                        new_size = spec_size.clone();
                    }
                }
            }
        }

        if let Some(allocated) = &allocated
            && util::cmp_quantity(Some(allocated), Some(&new_size)).is_eq()
        {
            if in_slow_set {
                let message = format!(
                    "skipping volume expansion for pvc {key}, because expansion previously failed with infeasible error"
                );
                debug!(v = 4, "{message}");
                outcome.result = Err(SyncError::DelayRetry {
                    message,
                    after: self.slow.time_remaining(&key),
                });
                return outcome;
            }
            debug!(v = 4, "skipping updating status for pvc {key}");
            update_status = false;
        }

        match self
            .mark_controller_resize_in_progress(claim, &new_size, update_status)
            .await
        {
            Ok(updated) => outcome.claim = updated,
            Err(err) => {
                outcome.result = Err(SyncError::Failed(format!(
                    "marking pvc {key:?} as resizing failed: {err}"
                )));
                return outcome;
            }
        }
        let claim_uid = outcome.claim.metadata.uid.clone().unwrap_or_default();

        if self.in_use.has_in_use_errors(&claim_uid) && self.claim_in_use(&outcome.claim) {
            let message = format!(
                "Unable to expand {key} because CSI driver {} only supports offline expansion and volume is currently in-use",
                self.resizer.name()
            );
            self.events.record(
                &outcome.claim,
                EventType::Warning,
                reasons::VOLUME_RESIZE_FAILED,
                &message,
            );
            outcome.result = Err(SyncError::Failed(message));
            return outcome;
        }

        self.events.record(
            &outcome.claim,
            EventType::Normal,
            reasons::VOLUME_RESIZING,
            &format!("External resizer is resizing volume {}", pv_name(pv)),
        );
        self.in_use.remove_claim_with_in_use_error(&claim_uid);

        outcome.resize_called = true;
        let claim = outcome.claim.clone();
        match self
            .call_resize_on_plugin(&claim, pv, &new_size, &status_size)
            .await
        {
            Ok((claim, volume)) => {
                debug!(v = 4, pv = %pv_name(&volume), capacity = %new_size.0, "Update capacity of PV succeeded");
                outcome.claim = claim;
                outcome.volume = volume;
            }
            Err((claim, message)) => {
                outcome.claim = claim;
                self.events.record(
                    &outcome.claim,
                    EventType::Warning,
                    reasons::VOLUME_RESIZE_FAILED,
                    &message,
                );
                outcome.result = Err(SyncError::Failed(message));
            }
        }
        outcome
    }

    fn claim_in_use(&self, claim: &PersistentVolumeClaim) -> bool {
        self.in_use.check_for_use(
            claim.metadata.namespace.as_deref().unwrap_or_default(),
            claim.metadata.name.as_deref().unwrap_or_default(),
        )
    }

    /// Upstream's `callResizeOnPlugin`: the expansion and what it leaves in the claim and the
    /// volume. The error is the claim as it is now and the message.
    async fn call_resize_on_plugin(
        &self,
        claim: &PersistentVolumeClaim,
        pv: &PersistentVolume,
        new_size: &Quantity,
        old_size: &Quantity,
    ) -> Result<(PersistentVolumeClaim, PersistentVolume), (PersistentVolumeClaim, String)> {
        let key = kobj(claim);
        let resized = match self.resizer.resize(pv, new_size).await {
            Ok(resized) => resized,
            Err(err) => {
                let code = err.code();
                if util::is_in_use_error(code) {
                    self.in_use.add_claim_with_in_use_error(
                        claim.metadata.uid.as_deref().unwrap_or_default(),
                    );
                }
                let mut claim = claim.clone();
                if util::is_final_error(code) {
                    self.add_final_error(&key);
                    let marked = if util::is_infeasible_error(code) {
                        self.mark_controller_expansion_failed(&claim, &err.to_string(), true)
                            .await
                    } else {
                        self.slow.remove(&key);
                        self.mark_controller_expansion_failed(&claim, &err.to_string(), false)
                            .await
                    };
                    match marked {
                        Ok(updated) => claim = updated,
                        Err(mark_err) => {
                            return Err((
                                claim.clone(),
                                format!(
                                    "resizing failed in controller with {err} but failed to update PVC {key} with: {mark_err}"
                                ),
                            ));
                        }
                    }
                } else {
                    self.slow.remove(&key);
                    self.remove_final_error(&key);
                }
                return Err((
                    claim,
                    format!(
                        "resize volume {:?} by resizer {:?} failed: {err}",
                        pv_name(pv),
                        self.name
                    ),
                ));
            }
        };
        self.remove_final_error(&key);
        self.slow.remove(&key);
        debug!(v = 4, pv = %pv_name(pv), "Resize volume succeeded, start to update PV's capacity");
        let volume = self
            .update_pv_capacity(pv, old_size, &resized.size, resized.node_expansion_required)
            .await
            .map_err(|err| {
                (
                    claim.clone(),
                    format!("error updating pv {:?} by resizer: {err}", pv_name(pv)),
                )
            })?;
        let claim = if resized.node_expansion_required {
            self.mark_for_pending_node_expansion(claim).await
        } else {
            self.mark_overall_expansion_as_finished(claim, &resized.size)
                .await
        }
        .map_err(|err| (claim.clone(), err))?;
        Ok((claim, volume))
    }

    /// Upstream's `pvCanBeExpanded`: the resizer supports the volume and the volume is bound
    /// to this claim.
    fn pv_can_be_expanded(&self, pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
        if !self.resizer.can_support(pv, claim) {
            debug!(v = 4, controller = %self.name, pv = %pv_name(pv), "Resizer doesn't support PV");
            return false;
        }
        let bound = pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_some_and(|r| {
                r.namespace == claim.metadata.namespace && r.uid == claim.metadata.uid
            });
        if !bound {
            debug!(v = 4, pvc = %kobj(claim), "Persistent volume is not bound to PVC being updated");
        }
        bound
    }

    /// Upstream's `PatchClaim`.
    async fn patch_claim(
        &self,
        old: &PersistentVolumeClaim,
        new: &PersistentVolumeClaim,
        resource_version_check: bool,
    ) -> Result<PersistentVolumeClaim, String> {
        let patch = util::claim_patch(old, new, resource_version_check);
        self.api
            .patch_claim_status(
                old.metadata.namespace.as_deref().unwrap_or_default(),
                old.metadata.name.as_deref().unwrap_or_default(),
                &patch,
            )
            .await
            .map_err(|err| format!("can't patch status of  PVC {} with {err}", kobj(old)))
    }

    /// Upstream's `markControllerResizeInProgress`: the `Resizing` condition, the
    /// node-expansion-not-required annotation removed, allocated size `new_size` and, when
    /// `update_status`, status `ControllerResizeInProgress`.
    pub async fn mark_controller_resize_in_progress(
        &self,
        claim: &PersistentVolumeClaim,
        new_size: &Quantity,
        update_status: bool,
    ) -> Result<PersistentVolumeClaim, String> {
        let mut new = claim.clone();
        let merged = util::merge_resize_conditions(
            &current_conditions(claim),
            &[condition(conditions::RESIZING, "")],
            !update_status,
        );
        set_conditions(&mut new, merged);
        remove_node_expansion_not_required_annotation(&mut new);
        if update_status {
            merge_storage_resource_status(&mut new, conditions::CONTROLLER_RESIZE_IN_PROGRESS);
        }
        merge_storage_allocated_resources(&mut new, new_size);
        self.patch_claim(claim, &new, true).await
    }

    /// Upstream's `markForPendingNodeExpansion`: `FileSystemResizePending`, status
    /// `NodeResizePending`, and the `FileSystemResizeRequired` Event.
    pub async fn mark_for_pending_node_expansion(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Result<PersistentVolumeClaim, String> {
        let mut new = claim.clone();
        let merged = util::merge_resize_conditions(
            &current_conditions(claim),
            &[condition(
                conditions::FILE_SYSTEM_RESIZE_PENDING,
                FS_RESIZE_PENDING_MESSAGE,
            )],
            true,
        );
        set_conditions(&mut new, merged);
        remove_node_expansion_not_required_annotation(&mut new);
        merge_storage_resource_status(&mut new, conditions::NODE_RESIZE_PENDING);
        let updated = self.patch_claim(claim, &new, true).await.map_err(|err| {
            format!(
                "mark PVC {:?} as node expansion required failed: {err}",
                kobj(claim)
            )
        })?;
        debug!(v = 4, pvc = %kobj(claim), "Mark PVC as file system resize required");
        self.events.record(
            claim,
            EventType::Normal,
            reasons::FILE_SYSTEM_RESIZE_REQUIRED,
            "Require file system resize of volume on node",
        );
        Ok(updated)
    }

    /// Upstream's `markControllerExpansionInfeasible` (`infeasible`: status
    /// `ControllerResizeInfeasible` too) and `markControllerExpansionFailedCondition`: the
    /// `ControllerResizeError` condition, patched without a resource version check so that it
    /// lands even on a slightly older claim.
    pub async fn mark_controller_expansion_failed(
        &self,
        claim: &PersistentVolumeClaim,
        error: &str,
        infeasible: bool,
    ) -> Result<PersistentVolumeClaim, String> {
        let mut new = claim.clone();
        if infeasible {
            merge_storage_resource_status(&mut new, conditions::CONTROLLER_RESIZE_INFEASIBLE);
        }
        let merged = util::merge_resize_conditions(
            &current_conditions(claim),
            &[condition(
                conditions::CONTROLLER_RESIZE_ERROR,
                &format!("failed to expand pvc with {error}"),
            )],
            true,
        );
        set_conditions(&mut new, merged);
        self.patch_claim(claim, &new, false).await.map_err(|err| {
            format!(
                "mark PVC {:?} as controller expansion failed, errored with: {err}",
                kobj(claim)
            )
        })
    }

    /// Upstream's `markOverallExpansionAsFinished`: capacity `new_size`, resize conditions and
    /// the storage resize status gone, the node-expansion-not-required annotation, and the
    /// `VolumeResizeSuccessful` Event.
    pub async fn mark_overall_expansion_as_finished(
        &self,
        claim: &PersistentVolumeClaim,
        new_size: &Quantity,
    ) -> Result<PersistentVolumeClaim, String> {
        let mut new = claim.clone();
        let status = new.status.get_or_insert_with(Default::default);
        status
            .capacity
            .get_or_insert_with(BTreeMap::new)
            .insert(STORAGE.into(), new_size.clone());
        if let Some(statuses) = status.allocated_resource_statuses.as_mut() {
            statuses.remove(STORAGE);
            if statuses.is_empty() {
                status.allocated_resource_statuses = None;
            }
        }
        let merged = util::merge_resize_conditions(&current_conditions(claim), &[], false);
        set_conditions(&mut new, merged);
        add_node_expansion_not_required_annotation(&mut new);
        let updated = self.patch_claim(claim, &new, true).await.map_err(|err| {
            format!(
                "mark PVC {:?} as resize finished failed: {err}",
                kobj(claim)
            )
        })?;
        debug!(v = 4, pvc = %kobj(claim), "Resize PVC finished");
        self.events.record(
            claim,
            EventType::Normal,
            reasons::VOLUME_RESIZE_SUCCESS,
            "Resize volume succeeded",
        );
        Ok(updated)
    }

    /// Upstream's `updatePVCapacity`: the PV's capacity, and with AnnotateFsResize and node
    /// expansion required, the pre-resize capacity annotation (unless there is one).
    async fn update_pv_capacity(
        &self,
        pv: &PersistentVolume,
        old_capacity: &Quantity,
        new_capacity: &Quantity,
        fs_resize_required: bool,
    ) -> Result<PersistentVolume, String> {
        let mut new = pv.clone();
        new.spec
            .get_or_insert_with(Default::default)
            .capacity
            .get_or_insert_with(BTreeMap::new)
            .insert(STORAGE.into(), new_capacity.clone());
        if self.annotate_fs_resize
            && fs_resize_required
            && !has_annotation(pv, ANN_PRE_RESIZE_CAPACITY)
        {
            new.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(ANN_PRE_RESIZE_CAPACITY.into(), old_capacity.0.clone());
        }
        self.patch_persistent_volume(pv, &new).await.map_err(|err| {
            format!(
                "updating capacity of PV {:?} to {} failed: {err}",
                pv_name(pv),
                new_capacity.0
            )
        })
    }

    /// Upstream's `deletePreResizeCapAnnotation`.
    async fn delete_pre_resize_cap_annotation(&self, pv: &PersistentVolume) -> Result<(), String> {
        if !has_annotation(pv, ANN_PRE_RESIZE_CAPACITY) {
            return Ok(());
        }
        let mut new = pv.clone();
        if let Some(annotations) = new.metadata.annotations.as_mut() {
            annotations.remove(ANN_PRE_RESIZE_CAPACITY);
        }
        self.patch_persistent_volume(pv, &new).await.map(|_| ())
    }

    async fn patch_persistent_volume(
        &self,
        old: &PersistentVolume,
        new: &PersistentVolume,
    ) -> Result<PersistentVolume, String> {
        let name = pv_name(new);
        let old_json = serde_json::to_value(old).map_err(|err| {
            format!("can't update capacity of PV {name} as generate path data failed: {err}")
        })?;
        let new_json = serde_json::to_value(new).map_err(|err| {
            format!("can't update capacity of PV {name} as generate path data failed: {err}")
        })?;
        let patch = create_merge_patch(&old_json, &new_json);
        self.api
            .patch_volume(&name, &patch)
            .await
            .map_err(|err| format!("update capacity of PV {name} failed: {err}"))
    }
}

/// Upstream's `pvcNeedResize`: a Bound claim with a volume that asks for more than it has.
pub fn pvc_need_resize(claim: &PersistentVolumeClaim) -> bool {
    let status = claim.status.as_ref();
    if status.and_then(|s| s.phase.as_deref()) != Some("Bound") {
        return false;
    }
    if claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or_default()
        .is_empty()
    {
        return false;
    }
    util::cmp_quantity(util::requested_size(claim), util::status_size(claim)).is_gt()
}

/// Upstream's `isNodeExpandComplete`: the claim's capacity reached the volume's.
pub fn is_node_expand_complete(claim: &PersistentVolumeClaim, pv: &PersistentVolume) -> bool {
    let pv_size = pv
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get(STORAGE));
    util::cmp_quantity(util::status_size(claim), pv_size).is_ge()
}
