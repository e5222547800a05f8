//! One key of the claim queue: the library's `syncClaimHandler`, `syncClaim`,
//! `shouldProvision`, `provisionClaimOperation` and `provisionVolumeErrorHandling`, the slow
//! retry of infeasible claims, and saving the PV (its `queueStore`).

use std::sync::Arc;
use std::time::Instant;

use csi_controller::{ApiError, SlowEntry};
use csi_kube::EventType;
use csi_workqueue::Outcome;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::{CSINode, StorageClass};
use tracing::{debug, error, info, warn};

use super::{ProvisionController, lock, reasons};
use crate::provision::{
    ANN_BETA_STORAGE_PROVISIONER, ANN_SELECTED_NODE, ANN_STORAGE_PROVISIONER, DataSourceObjects,
    FailureOutcome, ProvisionError, ProvisionOptions, ProvisioningState, claim_class, provision,
};
use crate::topology::ClusterTopology;

/// The alpha selected-node annotation, still read by the library.
pub const ANN_ALPHA_SELECTED_NODE: &str = "volume.alpha.kubernetes.io/selected-node";

/// Why a claim key is retried with backoff.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SyncError {
    /// The claim failed as infeasible a moment ago: it waits (the library's `DelayRetryError`).
    #[error(
        "skipping volume provisioning for pvc {0}, because provisioning previously failed with infeasible error"
    )]
    Delayed(String),
    /// The claim's StorageClass is not in the cache.
    #[error("storageClass {0:?} not found")]
    StorageClassNotFound(String),
    /// Provisioning failed.
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    /// `--node-deployment`'s node check failed.
    #[error("node check failed: {0}")]
    NodeCheck(String),
    /// Removing the selected-node annotation failed.
    #[error("delete annotation 'annSelectedNode' for PersistentVolumeClaim {claim}: {error}")]
    Reschedule {
        /// `namespace/name`.
        claim: String,
        /// The API error.
        error: ApiError,
    },
}

impl SyncError {
    /// The provisioning state a failed `Provision` leaves (what upstream's `Provision`
    /// returns with the error).
    pub(crate) fn state(&self) -> ProvisioningState {
        match self {
            SyncError::Provision(err) => err.state(),
            _ => ProvisioningState::NoChange,
        }
    }
}

/// What one provisioning attempt ended with: a final or temporary error, or "stop" (nothing
/// more to do and no error: the library's `errStopProvision`, still counted as a failed
/// attempt in the metrics, as upstream).
enum Attempt {
    Provisioned,
    Stop,
    Failed(SyncError),
}

fn annotation<'a>(claim: &'a PersistentVolumeClaim, key: &str) -> Option<&'a str> {
    claim
        .metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn claim_name(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The library's `getProvisionedVolumeNameForClaim`: `pvc-<uid>`, whatever
/// `--volume-name-prefix` says (only used to find an existing PV).
pub fn provisioned_volume_name(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claim.metadata.uid.as_deref().unwrap_or_default())
}

impl ProvisionController {
    /// One key of the claim queue (a PVC UID). The claim comes from the cache, or — once the
    /// PVC is gone — from the claims in progress.
    pub async fn sync_claim(&self, uid: &str) -> Outcome {
        let claim = self
            .listers
            .claim_by_uid(uid)
            .or_else(|| lock(&self.in_progress).get(uid).cloned());
        let Some(claim) = claim else {
            debug!(claim = uid, "claim in work queue no longer exists");
            lock(&self.memo).forget(uid);
            return Outcome::Forget;
        };
        match self.sync_claim_object(&claim).await {
            Ok(()) => {
                lock(&self.in_progress).remove(uid);
                // A claim left with the finalizer would wait for the next resync: retry.
                if self.release_claim(&claim).await {
                    Outcome::Forget
                } else {
                    Outcome::Requeue
                }
            }
            Err(err) => {
                info!(key = uid, %err, "Retrying syncing claim");
                Outcome::Requeue
            }
        }
    }

    /// The library's `syncClaim`.
    async fn sync_claim_object(&self, claim: &Arc<PersistentVolumeClaim>) -> Result<(), SyncError> {
        self.delay_if_recently_infeasible(claim)?;
        let should = match self.should_provision(claim).await {
            Ok(should) => should,
            Err(err) => {
                self.record_provision(claim, None);
                return Err(err);
            }
        };
        if !should {
            return Ok(());
        }
        let start = Instant::now();
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        let (state, attempt) = self.provision_claim(claim).await;
        let took = matches!(attempt, Attempt::Provisioned).then(|| start.elapsed());
        self.record_provision(claim, took);
        match attempt {
            Attempt::Provisioned | Attempt::Stop => {
                debug!(
                    claimUID = uid,
                    "Claim processing done, removing PVC from claims in progress"
                );
                lock(&self.in_progress).remove(&uid);
                Ok(())
            }
            Attempt::Failed(err) if state == ProvisioningState::Finished => {
                debug!(
                    claimUID = uid,
                    "Final error received, removing PVC from claims in progress"
                );
                lock(&self.in_progress).remove(&uid);
                self.release_claim(claim).await;
                Err(err)
            }
            Attempt::Failed(err) => {
                if state == ProvisioningState::InBackground {
                    debug!(
                        claimUID = uid,
                        "Temporary error received, adding PVC to claims in progress"
                    );
                    lock(&self.in_progress).insert(uid, claim.clone());
                    self.protect_claim(claim).await;
                }
                Err(err)
            }
        }
    }

    fn record_provision(&self, claim: &PersistentVolumeClaim, took: Option<std::time::Duration>) {
        if let Some(metrics) = &self.metrics {
            let spec = claim.spec.as_ref();
            let class = spec
                .and_then(|s| s.storage_class_name.as_deref())
                .unwrap_or_default();
            let source = spec
                .and_then(|s| s.data_source.as_ref())
                .map(|d| d.kind.as_str())
                .unwrap_or_default();
            metrics.provisioned(class, source, took);
        }
    }

    /// The library's `delayProvisioningIfRecentlyInfeasible`.
    fn delay_if_recently_infeasible(&self, claim: &PersistentVolumeClaim) -> Result<(), SyncError> {
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        let Some(class) = self.listers.storage_class(&claim_class(claim)) else {
            return Ok(());
        };
        let Some(entry) = self.slow.get(&uid) else {
            return Ok(());
        };
        if entry.storage_class_uid != class.metadata.uid.clone().unwrap_or_default()
            || !self.slow.contains(&uid)
        {
            self.slow.remove(&uid);
            return Ok(());
        }
        Err(SyncError::Delayed(uid))
    }

    /// The library's `shouldProvision` with external-provisioner's `ShouldProvision`.
    pub(super) async fn should_provision(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Result<bool, SyncError> {
        let spec = claim.spec.as_ref();
        if spec
            .and_then(|s| s.volume_name.as_deref())
            .is_some_and(|v| !v.is_empty())
        {
            return Ok(false);
        }
        if !crate::provision::should_provision(&self.config, claim) {
            return Ok(false);
        }
        if let Some(check) = &self.node_check {
            match check.check(claim).await {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(err) => debug!(
                    "trying to become an owner of PVC {} in advance failed, will try again during provisioning: {err}",
                    claim_name(claim)
                ),
            }
        }
        let provisioner = annotation(claim, ANN_STORAGE_PROVISIONER)
            .or_else(|| annotation(claim, ANN_BETA_STORAGE_PROVISIONER));
        if !provisioner.is_some_and(|p| self.config.known_provisioner(p)) {
            return Ok(false);
        }
        let class = self.storage_class(claim)?;
        if class.volume_binding_mode.as_deref() == Some(WAIT_FOR_FIRST_CONSUMER) {
            return Ok(annotation(claim, ANN_SELECTED_NODE).is_some_and(|n| !n.is_empty()));
        }
        Ok(true)
    }

    fn storage_class(&self, claim: &PersistentVolumeClaim) -> Result<Arc<StorageClass>, SyncError> {
        let name = claim_class(claim);
        self.listers
            .storage_class(&name)
            .ok_or(SyncError::StorageClassNotFound(name))
    }

    /// The library's `provisionClaimOperation`: the state the attempt leaves, and how it ended.
    async fn provision_claim(
        &self,
        claim: &Arc<PersistentVolumeClaim>,
    ) -> (ProvisioningState, Attempt) {
        let class_name = claim_class(claim);
        let pv_name = provisioned_volume_name(claim);
        if self.listers.volume(&pv_name).is_some() {
            debug!(
                PVC = claim_name(claim),
                PV = pv_name,
                "PersistentVolume already exists, skipping"
            );
            return (ProvisioningState::Finished, Attempt::Stop);
        }
        let class = match self.storage_class(claim) {
            Ok(class) => class,
            Err(err) => {
                error!(PVC = claim_name(claim), %err, "Error getting claim's StorageClass's fields");
                return (ProvisioningState::Finished, Attempt::Failed(err));
            }
        };
        if !self.config.known_provisioner(&class.provisioner) {
            error!(
                PVC = claim_name(claim),
                provisioner = class.provisioner,
                "Unknown provisioner requested in claim's StorageClass"
            );
            return (ProvisioningState::Finished, Attempt::Stop);
        }
        let selected_node = annotation(claim, ANN_SELECTED_NODE)
            .or_else(|| annotation(claim, ANN_ALPHA_SELECTED_NODE))
            .unwrap_or_default()
            .to_string();

        self.events.record(
            &**claim,
            EventType::Normal,
            reasons::PROVISIONING,
            &format!(
                "External provisioner is provisioning volume for claim \"{}\"",
                claim_name(claim)
            ),
        );

        let result = self.provision_volume(claim, &class, &selected_node).await;
        let spec_class = claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref());
        let mut pv = match result {
            Ok(pv) => pv,
            Err(err) => {
                let state = err.state();
                if let Some(observer) = &self.observer {
                    observer.provision_failed(spec_class, state);
                }
                return match err {
                    SyncError::Provision(err) => self.provision_failed(claim, &class, err).await,
                    err => {
                        // A failed node check is an error of `Provision`: the library
                        // reports it.
                        self.events.record(
                            &**claim,
                            EventType::Warning,
                            reasons::PROVISIONING_FAILED,
                            &err.to_string(),
                        );
                        (ProvisioningState::NoChange, Attempt::Failed(err))
                    }
                };
            }
        };
        debug!(PVC = claim_name(claim), PV = ?pv.metadata.name, "Volume is provisioned");
        if let Some(spec) = pv.spec.as_mut() {
            spec.storage_class_name = (!class_name.is_empty()).then_some(class_name.clone());
        }
        if let Some(observer) = &self.observer {
            observer.provisioned(spec_class, &pv);
        }
        self.store_volume(pv).await;
        (ProvisioningState::Finished, Attempt::Provisioned)
    }

    /// external-provisioner's `Provision`: the node check, the objects provisioning reads,
    /// then [`provision`].
    pub(super) async fn provision_volume(
        &self,
        claim: &Arc<PersistentVolumeClaim>,
        class: &StorageClass,
        selected_node: &str,
    ) -> Result<PersistentVolume, SyncError> {
        if let Some(check) = &self.node_check {
            match check.check(claim).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(SyncError::Provision(ProvisionError::NotResponsible {
                        claim: claim_name(claim),
                        node: self
                            .config
                            .node_deployment
                            .as_ref()
                            .map(|n| n.node_name.clone())
                            .unwrap_or_default(),
                    }));
                }
                Err(err) => return Err(SyncError::NodeCheck(err)),
            }
        }
        let spec = claim.spec.clone().unwrap_or_default();

        let vac = match spec
            .volume_attributes_class_name
            .as_deref()
            .filter(|n| !n.is_empty() && self.config.volume_attributes_class)
        {
            Some(name) if self.config.capabilities.modify_volume => {
                match self.api.get_volume_attributes_class(name).await {
                    Ok(vac) => Some(vac),
                    Err(err) if err.is_not_found() => None,
                    Err(err) => return Err(ProvisionError::VolumeAttributesClass(err).into()),
                }
            }
            _ => None,
        };

        let source_ref = spec
            .data_source_ref
            .as_ref()
            .map(|r| (r.kind.clone(), r.name.clone()))
            .or_else(|| {
                spec.data_source
                    .as_ref()
                    .map(|r| (r.kind.clone(), r.name.clone()))
            });
        let namespace = claim.metadata.namespace.clone().unwrap_or_default();
        let (source_pvc, source_pv) = match &source_ref {
            Some((kind, name)) if kind == "PersistentVolumeClaim" => {
                let pvc = self.listers.claim(&namespace, name);
                let pv = pvc
                    .as_ref()
                    .and_then(|p| p.spec.as_ref()?.volume_name.clone())
                    .and_then(|v| self.listers.volume(&v));
                (pvc, pv)
            }
            _ => (None, None),
        };
        let data_source = match (&self.data_sources, &source_ref) {
            (Some(sources), _) => DataSourceObjects::Api(sources),
            (None, Some((kind, _))) if kind == "PersistentVolumeClaim" => {
                DataSourceObjects::Clone {
                    pvc: source_pvc.as_deref(),
                    pv: source_pv.as_deref(),
                }
            }
            (None, Some((kind, _))) if kind == "VolumeSnapshot" => {
                DataSourceObjects::Snapshot(None)
            }
            (None, _) => DataSourceObjects::None,
        };

        let (csi_nodes, nodes): (Vec<CSINode>, Vec<Node>) = if self.config.capabilities.topology {
            (
                self.listers
                    .csi_nodes()
                    .iter()
                    .map(|n| (**n).clone())
                    .collect(),
                self.listers.nodes().iter().map(|n| (**n).clone()).collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let options = ProvisionOptions {
            claim,
            storage_class: class,
            selected_node,
            volume_attributes_class: vac.as_ref(),
            data_source,
            cluster: ClusterTopology {
                csi_nodes: &csi_nodes,
                nodes: &nodes,
            },
        };
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        let mut memo = lock(&self.memo).take(&uid);
        let result = provision(
            &self.config,
            &options,
            self.driver.as_ref(),
            self.api.as_ref(),
            &mut memo,
        )
        .await;
        lock(&self.memo).absorb(memo);
        Ok(result?)
    }

    /// What a failed `Provision` leaves: the Events, the slow retry, the rescheduling.
    async fn provision_failed(
        &self,
        claim: &PersistentVolumeClaim,
        class: &StorageClass,
        err: ProvisionError,
    ) -> (ProvisioningState, Attempt) {
        if err.is_ignored() {
            if matches!(err, ProvisionError::ExternalPopulator(_)) {
                self.populator_events
                    .as_ref()
                    .unwrap_or(&self.events)
                    .record(
                        claim,
                        EventType::Normal,
                        reasons::PROVISIONING,
                        "Assuming an external populator will provision the volume",
                    );
            }
            debug!(PVC = claim_name(claim), reason = %err, "Volume provision ignored");
            return (ProvisioningState::Finished, Attempt::Stop);
        }
        let has_selected_node = annotation(claim, ANN_SELECTED_NODE).is_some();
        match err.outcome(has_selected_node) {
            FailureOutcome::Ignore => (ProvisioningState::Finished, Attempt::Stop),
            FailureOutcome::SlowRetry => {
                debug!(PVC = claim_name(claim), %err, "Detected infeasible volume provisioning request");
                self.slow.add(
                    &claim.metadata.uid.clone().unwrap_or_default(),
                    SlowEntry {
                        since: Instant::now(),
                        storage_class_uid: class.metadata.uid.clone().unwrap_or_default(),
                    },
                );
                self.events.record(
                    claim,
                    EventType::Warning,
                    reasons::PROVISIONING_FAILED,
                    &format!(
                        "Volume provisioning failed with infeasible error. Retries will be delayed. {err}"
                    ),
                );
                (ProvisioningState::Finished, Attempt::Failed(err.into()))
            }
            FailureOutcome::Reschedule => {
                self.events.record(
                    claim,
                    EventType::Warning,
                    reasons::PROVISIONING_FAILED,
                    &err.to_string(),
                );
                if let Err(reschedule) = self.reschedule(claim).await {
                    info!(PVC = claim_name(claim), err = %reschedule, "Volume rescheduling failed");
                    return (ProvisioningState::Finished, Attempt::Failed(err.into()));
                }
                debug!(PVC = claim_name(claim), %err, "Volume rescheduled");
                (ProvisioningState::Finished, Attempt::Stop)
            }
            FailureOutcome::Retry(state) => {
                self.events.record(
                    claim,
                    EventType::Warning,
                    reasons::PROVISIONING_FAILED,
                    &err.to_string(),
                );
                (state, Attempt::Failed(err.into()))
            }
        }
    }

    /// The library's `rescheduleProvisioning`: removes `volume.kubernetes.io/selected-node`
    /// from the claim with an update of a fresh copy, retried on conflict (client-go's
    /// `retry.DefaultBackoff`: 4 tries, 10 ms growing ×5).
    async fn reschedule(&self, claim: &PersistentVolumeClaim) -> Result<(), SyncError> {
        let namespace = claim.metadata.namespace.as_deref().unwrap_or_default();
        let name = claim.metadata.name.as_deref().unwrap_or_default();
        let mut delay = std::time::Duration::from_millis(10);
        let mut tries = 0;
        loop {
            tries += 1;
            let result = async {
                let mut fresh = self.api.get_claim(namespace, name).await?;
                let Some(annotations) = fresh.metadata.annotations.as_mut() else {
                    return Ok(());
                };
                if annotations.remove(ANN_SELECTED_NODE).is_none() {
                    return Ok(());
                }
                self.api.update_claim(&fresh).await.map(drop)
            }
            .await;
            match result {
                Ok(()) => return Ok(()),
                Err(error) if error.is_conflict() && tries < 4 => {
                    tokio::time::sleep(delay).await;
                    delay *= 5;
                }
                Err(error) => {
                    return Err(SyncError::Reschedule {
                        claim: claim_name(claim),
                        error,
                    });
                }
            }
        }
    }

    /// The library's `queueStore.StoreVolume`: creates the PV; on failure keeps it for the
    /// `unsavedpvs` workers (and protects its claim). AlreadyExists is a success.
    async fn store_volume(&self, pv: PersistentVolume) {
        let name = pv.metadata.name.clone().unwrap_or_default();
        match self.save(&pv).await {
            Ok(()) => {}
            Err(err) => {
                error!(volume = name, %err, "Failed to save volume");
                if let Some(claim) = self.claim_of(&pv) {
                    self.protect_claim(&claim).await;
                }
                lock(&self.unsaved).insert(name.clone(), pv);
                self.unsaved_queue.add(name);
            }
        }
    }

    /// One key of the `unsavedpvs` queue: saves the PV again.
    pub async fn save_unsaved(&self, name: String) -> Outcome {
        let Some(pv) = lock(&self.unsaved).get(&name).cloned() else {
            error!("did not find saved volume {name}");
            return Outcome::Forget;
        };
        match self.save(&pv).await {
            Ok(()) => {
                lock(&self.unsaved).remove(&name);
                if let Some(claim) = self.claim_of(&pv) {
                    self.release_claim(&claim).await;
                }
                Outcome::Forget
            }
            Err(err) => {
                error!("{err}");
                Outcome::Requeue
            }
        }
    }

    /// The library's `doSaveVolume` with its success Event.
    async fn save(&self, pv: &PersistentVolume) -> Result<(), String> {
        let name = pv.metadata.name.as_deref().unwrap_or_default();
        debug!(volume = name, "Saving volume");
        match self.api.create_volume(pv).await {
            Ok(_) => {}
            Err(err) if err.is_already_exists() => {}
            Err(err) => return Err(format!("error saving volume {name}: {err}")),
        }
        debug!(volume = name, "Volume saved");
        if let Some(claim) = self.claim_of(pv) {
            self.events.record(
                &*claim,
                EventType::Normal,
                reasons::PROVISIONING_SUCCEEDED,
                &format!("Successfully provisioned volume {name}"),
            );
        }
        Ok(())
    }

    /// The claim a PV was made for, from the cache (by UID), else from the claims in progress.
    fn claim_of(&self, pv: &PersistentVolume) -> Option<Arc<PersistentVolumeClaim>> {
        let uid = pv.spec.as_ref()?.claim_ref.as_ref()?.uid.clone()?;
        self.listers
            .claim_by_uid(&uid)
            .or_else(|| lock(&self.in_progress).get(&uid).cloned())
    }

    /// Adds [`super::PROVISIONING_FINALIZER`] to a claim whose volume may exist without a
    /// saved PV. Best effort: a claim already being deleted cannot get a new finalizer (the
    /// in-memory record then is all there is, as upstream).
    async fn protect_claim(&self, claim: &PersistentVolumeClaim) {
        if has_finalizer(claim) || claim.metadata.deletion_timestamp.is_some() {
            return;
        }
        let result = self
            .edit_claim(claim, |fresh| {
                if fresh.metadata.deletion_timestamp.is_some() || has_finalizer(fresh) {
                    return false;
                }
                fresh
                    .metadata
                    .finalizers
                    .get_or_insert_with(Vec::new)
                    .push(super::PROVISIONING_FINALIZER.to_string());
                true
            })
            .await;
        if let Err(err) = result {
            warn!(PVC = claim_name(claim), %err, "Failed to protect the claim of a volume being provisioned");
        }
    }

    /// Removes [`super::PROVISIONING_FINALIZER`] once nothing for the claim waits (no claim in
    /// progress, no unsaved PV). Reads the cached claim first: nothing is sent when it has no
    /// such finalizer. False when the finalizer should go but removing it failed.
    async fn release_claim(&self, claim: &PersistentVolumeClaim) -> bool {
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        let cached = self.listers.claim_by_uid(&uid);
        if !cached.as_deref().is_some_and(has_finalizer) && !has_finalizer(claim) {
            return true;
        }
        if lock(&self.in_progress).contains_key(&uid)
            || lock(&self.unsaved).values().any(|pv| {
                pv.spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref()?.uid.clone())
                    == Some(uid.clone())
            })
        {
            return true;
        }
        let result = self
            .edit_claim(claim, |fresh| {
                let Some(finalizers) = fresh.metadata.finalizers.as_mut() else {
                    return false;
                };
                let before = finalizers.len();
                finalizers.retain(|f| f != super::PROVISIONING_FINALIZER);
                before != finalizers.len()
            })
            .await;
        match result {
            Ok(()) => true,
            Err(err) if err.is_not_found() => true,
            Err(err) => {
                warn!(PVC = claim_name(claim), %err, "Failed to release the claim");
                false
            }
        }
    }

    /// GET, change, PUT; retried on conflict.
    async fn edit_claim(
        &self,
        claim: &PersistentVolumeClaim,
        change: impl Fn(&mut PersistentVolumeClaim) -> bool,
    ) -> Result<(), ApiError> {
        let namespace = claim.metadata.namespace.as_deref().unwrap_or_default();
        let name = claim.metadata.name.as_deref().unwrap_or_default();
        let mut tries = 0;
        loop {
            tries += 1;
            let mut fresh = self.api.get_claim(namespace, name).await?;
            if fresh.metadata.uid != claim.metadata.uid || !change(&mut fresh) {
                return Ok(());
            }
            match self.api.update_claim(&fresh).await {
                Ok(_) => return Ok(()),
                Err(err) if err.is_conflict() && tries < 5 => continue,
                Err(err) => return Err(err),
            }
        }
    }
}

const WAIT_FOR_FIRST_CONSUMER: &str = "WaitForFirstConsumer";

fn has_finalizer(claim: &PersistentVolumeClaim) -> bool {
    claim
        .metadata
        .finalizers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|f| f == super::PROVISIONING_FINALIZER)
}
