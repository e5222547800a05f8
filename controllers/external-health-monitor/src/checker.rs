//! Upstream's `PVHealthConditionChecker` (`pkg/csi-handler/pv_checker.go`): asks the driver
//! about this driver's bound volumes and reports each one's health on its claim's
//! `status.healthStatus` (see [`crate::health`]).
//!
//! - CSI 1.13 drivers ([`HealthMode::ListVolumeHealth`], [`HealthMode::GetVolumeHealth`]), as
//!   upstream master: the driver's conditions replace the claim's; Events only for statuses the
//!   monitor does not know (`UnknownVolumeHealthCondition`).
//! - CSI <= 1.12 drivers ([`HealthMode::ListVolumes`], [`HealthMode::GetVolume`]), as v0.19.0:
//!   an abnormal `VolumeCondition` becomes one `Degraded` condition, with upstream's
//!   `VolumeConditionAbnormal` / `VolumeConditionNormal` Events.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use csi_connection::CsiError;
use csi_controller::ApiError;
use csi_kube::{EventRecorder, EventType, Store};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::jiff::Timestamp;
use tracing::{debug, error, info};

use crate::csi::{CsiHandler, HealthMode, ListError, VolumeConditionResult};
use crate::health::{
    ABNORMAL_REASON, HealthCondition, NORMAL_REASON, RECOVERY_MESSAGE, Reports, conditions_for,
};
use crate::kube::HealthApi;
use crate::volume_health::{ListHealthError, VolumeHealthResult, unknown_details};

/// The reason of the Warning Event about health statuses the monitor does not know.
pub const UNKNOWN_CONDITION_REASON: &str = "UnknownVolumeHealthCondition";
/// The start of that Event's message; the statuses follow.
pub const UNKNOWN_CONDITION_MESSAGE: &str =
    "The CSI driver reported volume health conditions of a type unknown to this monitor: ";

/// Why checking one volume failed (upstream's messages).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Not a CSI volume of this driver.
    #[error("csi source is nil or the volume is not managed by this checker/monitor")]
    NotManaged,
    /// The PV is not bound.
    #[error("PV: {0} status is not bound")]
    NotBound(String),
    /// No CSI source.
    #[error("csi source is nil")]
    NoCsiSource,
    /// An empty volume handle.
    #[error("volume handle in csi source is empty")]
    EmptyHandle,
    /// The bound claim is not in the cache.
    #[error("persistentvolumeclaim \"{0}\" not found")]
    ClaimNotFound(String),
    /// The driver call failed.
    #[error(transparent)]
    Csi(#[from] CsiError),
    /// `ListVolumes` failed.
    #[error(transparent)]
    List(#[from] ListError),
    /// `ControllerListVolumeHealth` failed.
    #[error(transparent)]
    ListHealth(#[from] ListHealthError),
    /// Writing the claim's status failed.
    #[error("failed to update the health status of PVC {claim}: {source}")]
    Status {
        /// `namespace/name`.
        claim: String,
        /// The API error.
        #[source]
        source: ApiError,
    },
}

/// Where the checker reads PVs and claims: the shared caches, or maps in tests.
pub trait Listers: Send + Sync + fmt::Debug {
    /// Every PV.
    fn volumes(&self) -> Vec<Arc<PersistentVolume>>;
    /// One PV.
    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>>;
    /// One claim.
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>>;
}

/// [`Listers`] over the shared caches.
#[derive(Clone, Debug)]
pub struct StoreListers {
    /// PVs.
    pub volumes: Store<PersistentVolume>,
    /// Claims.
    pub claims: Store<PersistentVolumeClaim>,
}

impl Listers for StoreListers {
    fn volumes(&self) -> Vec<Arc<PersistentVolume>> {
        self.volumes.state()
    }

    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.volumes.get_key(name)
    }

    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.get_key(&format!("{namespace}/{name}"))
    }
}

/// Whether `pv` is a CSI volume of `driver`.
pub fn is_managed(pv: &PersistentVolume, driver: &str) -> bool {
    pv.spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .is_some_and(|csi| csi.driver == driver)
}

/// Whether `pv` is Bound.
pub fn is_bound(pv: &PersistentVolume) -> bool {
    pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
}

/// The `(namespace, name)` of the claim `pv` is bound to.
pub fn claim_of(pv: &PersistentVolume) -> (String, String) {
    let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    (
        claim_ref
            .and_then(|r| r.namespace.clone())
            .unwrap_or_default(),
        claim_ref.and_then(|r| r.name.clone()).unwrap_or_default(),
    )
}

/// Upstream's `GetVolumeHandle`.
pub fn get_volume_handle(pv: &PersistentVolume) -> Result<String, CheckError> {
    pv.spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|csi| csi.volume_handle.clone())
        .ok_or(CheckError::NoCsiSource)
}

/// What [`PvHealthChecker::new`] needs.
#[derive(Debug, Clone)]
pub struct CheckerParts {
    /// The driver's name.
    pub driver_name: String,
    /// `--timeout`: the deadline of each check (a whole ListVolumes sweep is one check).
    pub timeout: Duration,
    /// The driver.
    pub csi: CsiHandler,
    /// Which RPCs the driver is asked.
    pub mode: HealthMode,
    /// PVs and claims.
    pub listers: Arc<dyn Listers>,
    /// Status writes.
    pub api: Arc<dyn HealthApi>,
    /// Events (component `csi-pv-monitor-controller-<driver>`).
    pub events: Arc<dyn EventRecorder>,
    /// What was reported so far.
    pub reports: Arc<Reports>,
}

/// Checks volumes and reports their condition on their claims.
#[derive(Debug)]
pub struct PvHealthChecker {
    parts: CheckerParts,
}

impl PvHealthChecker {
    /// A checker.
    pub fn new(parts: CheckerParts) -> Self {
        PvHealthChecker { parts }
    }

    /// The memory of reports.
    pub fn reports(&self) -> &Arc<Reports> {
        &self.parts.reports
    }

    /// One `ListVolumes` sweep (upstream's `CheckControllerListVolumeStatuses`): every bound PV
    /// of this driver that the driver listed gets its condition reported; volumes the driver
    /// did not list are left alone.
    pub async fn check_list_volume_statuses(&self) -> Result<(), CheckError> {
        let conditions: HashMap<String, VolumeConditionResult> = self
            .parts
            .csi
            .list_volume_conditions(self.parts.timeout)
            .await?;
        for pv in self.parts.listers.volumes() {
            if !is_managed(&pv, &self.parts.driver_name) {
                debug!(
                    pv = pv.metadata.name,
                    "CSI source is nil or the volume is not managed by this checker/monitor"
                );
                continue;
            }
            if !is_bound(&pv) {
                info!(pv = pv.metadata.name, "PV status is not bound");
                continue;
            }
            let handle = match get_volume_handle(&pv) {
                Ok(handle) => handle,
                Err(err) => {
                    error!(%err, "Get volume handle error");
                    continue;
                }
            };
            let Some(condition) = conditions.get(&handle) else {
                continue;
            };
            let (namespace, name) = claim_of(&pv);
            let Some(claim) = self.parts.listers.claim(&namespace, &name) else {
                error!(err = %CheckError::ClaimNotFound(name), "Get PVC error");
                continue;
            };
            if let Err(err) = self.report(&claim, condition).await {
                error!(%err, "Check controller volume status error");
            }
        }
        Ok(())
    }

    /// One `ControllerGetVolume` check (upstream's `CheckControllerVolumeStatus`). A failed
    /// call reports nothing: it is not a recovery.
    pub async fn check_volume_status(&self, pv: &PersistentVolume) -> Result<(), CheckError> {
        let handle = self.checked_handle(pv)?;
        let condition = self
            .parts
            .csi
            .get_volume_condition(&handle, self.parts.timeout)
            .await?;
        let claim = self.bound_claim(pv)?;
        self.report(&claim, &condition).await
    }

    /// The claim `pv` is bound to, from the cache.
    fn bound_claim(&self, pv: &PersistentVolume) -> Result<Arc<PersistentVolumeClaim>, CheckError> {
        let (namespace, name) = claim_of(pv);
        self.parts
            .listers
            .claim(&namespace, &name)
            .ok_or(CheckError::ClaimNotFound(name))
    }

    /// Reports `condition` on `claim`: the Events upstream records, then the status write if
    /// the stored one differs.
    pub async fn report(
        &self,
        claim: &PersistentVolumeClaim,
        condition: &VolumeConditionResult,
    ) -> Result<(), CheckError> {
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        let reports = &self.parts.reports;
        if condition.abnormal {
            self.parts.events.record(
                claim,
                EventType::Warning,
                ABNORMAL_REASON,
                &condition.message,
            );
            reports.warned(&uid, Instant::now());
        } else if reports.recovery_due(&uid, Instant::now()) {
            self.parts
                .events
                .record(claim, EventType::Normal, NORMAL_REASON, RECOVERY_MESSAGE);
        }
        self.write_status(claim, &conditions_for(condition)).await
    }

    /// Stores `desired` on `claim` if the stored conditions differ.
    async fn write_status(
        &self,
        claim: &PersistentVolumeClaim,
        desired: &[HealthCondition],
    ) -> Result<(), CheckError> {
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        let reports = &self.parts.reports;
        let Some(write) = reports.write_for(&uid, desired, Timestamp::now()) else {
            return Ok(());
        };
        let namespace = claim.metadata.namespace.clone().unwrap_or_default();
        let name = claim.metadata.name.clone().unwrap_or_default();
        match self
            .parts
            .api
            .patch_claim_status(&namespace, &name, &write.patch)
            .await
        {
            Ok(()) => {
                reports.written(&uid, &write);
                Ok(())
            }
            Err(err) if err.is_not_found() => {
                reports.forget(&uid);
                Ok(())
            }
            Err(source) => Err(CheckError::Status {
                claim: format!("{namespace}/{name}"),
                source,
            }),
        }
    }

    /// One sweep in the driver's list mode: `ControllerListVolumeHealth` or `ListVolumes`.
    pub async fn check_list(&self) -> Result<(), CheckError> {
        match self.parts.mode {
            HealthMode::ListVolumeHealth => self.check_list_volume_health().await,
            _ => self.check_list_volume_statuses().await,
        }
    }

    /// One PV in the driver's per-volume mode: `ControllerGetVolumeHealth` or
    /// `ControllerGetVolume`.
    pub async fn check_volume(&self, pv: &PersistentVolume) -> Result<(), CheckError> {
        match self.parts.mode {
            HealthMode::GetVolumeHealth | HealthMode::ListVolumeHealth => {
                self.check_volume_health(pv).await
            }
            _ => self.check_volume_status(pv).await,
        }
    }

    /// One `ControllerListVolumeHealth` sweep (upstream master's
    /// `CheckControllerListVolumeHealth`). A listed volume gets the listed conditions (none:
    /// healthy). A volume not listed is left alone unless its claim stores conditions: then
    /// `ControllerGetVolumeHealth` says whether it recovered. A failed list changes nothing.
    pub async fn check_list_volume_health(&self) -> Result<(), CheckError> {
        let results = self
            .parts
            .csi
            .list_volume_health(self.parts.timeout)
            .await?;
        for pv in self.parts.listers.volumes() {
            if !is_managed(&pv, &self.parts.driver_name) || !is_bound(&pv) {
                continue;
            }
            let handle = match get_volume_handle(&pv) {
                Ok(handle) => handle,
                Err(err) => {
                    error!(%err, "Get volume handle error");
                    continue;
                }
            };
            let (namespace, name) = claim_of(&pv);
            let Some(claim) = self.parts.listers.claim(&namespace, &name) else {
                error!(err = %CheckError::ClaimNotFound(name), "Get PVC error");
                continue;
            };
            let outcome = match results.get(&handle) {
                Some(result) => self.reconcile(&claim, result).await,
                None => self.confirm_absent(&claim, &handle).await,
            };
            if let Err(err) = outcome {
                error!(%err, pvc = format!("{namespace}/{name}"), "Reconcile PVC health status error");
            }
        }
        Ok(())
    }

    /// A volume the list left out: asked again only if its claim stores conditions.
    async fn confirm_absent(
        &self,
        claim: &PersistentVolumeClaim,
        handle: &str,
    ) -> Result<(), CheckError> {
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        if !self.parts.reports.has_conditions(&uid) {
            return Ok(());
        }
        let result = self
            .parts
            .csi
            .get_volume_health(handle, self.parts.timeout)
            .await?;
        self.reconcile(claim, &result).await
    }

    /// One `ControllerGetVolumeHealth` check (upstream master's `CheckControllerVolumeHealth`):
    /// the answer is authoritative, an empty one clears the claim's conditions. A failed call
    /// changes nothing.
    pub async fn check_volume_health(&self, pv: &PersistentVolume) -> Result<(), CheckError> {
        let handle = self.checked_handle(pv)?;
        let result = self
            .parts
            .csi
            .get_volume_health(&handle, self.parts.timeout)
            .await?;
        let claim = self.bound_claim(pv)?;
        self.reconcile(&claim, &result).await
    }

    /// Stores a CSI 1.13 report on `claim`; statuses the monitor does not know are logged and
    /// recorded as a Warning Event instead.
    pub async fn reconcile(
        &self,
        claim: &PersistentVolumeClaim,
        result: &VolumeHealthResult,
    ) -> Result<(), CheckError> {
        if !result.unknown.is_empty() {
            let details = unknown_details(&result.unknown);
            info!(
                pvc = format!(
                    "{}/{}",
                    claim.metadata.namespace.as_deref().unwrap_or_default(),
                    claim.metadata.name.as_deref().unwrap_or_default()
                ),
                conditions = details,
                "CSI driver reported volume health conditions of a type unknown to this monitor"
            );
            self.parts.events.record(
                claim,
                EventType::Warning,
                UNKNOWN_CONDITION_REASON,
                &format!("{UNKNOWN_CONDITION_MESSAGE}{details}"),
            );
        }
        self.write_status(claim, &result.conditions).await
    }

    /// The checks of a per-volume call: this driver's, bound, with a handle.
    fn checked_handle(&self, pv: &PersistentVolume) -> Result<String, CheckError> {
        if !is_managed(pv, &self.parts.driver_name) {
            return Err(CheckError::NotManaged);
        }
        if !is_bound(pv) {
            return Err(CheckError::NotBound(
                pv.metadata.name.clone().unwrap_or_default(),
            ));
        }
        let handle = get_volume_handle(pv)?;
        if handle.is_empty() {
            return Err(CheckError::EmptyHandle);
        }
        Ok(handle)
    }
}
