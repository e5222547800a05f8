//! Upstream's `PVHealthConditionChecker` (`pkg/csi-handler/pv_checker.go`): asks the driver
//! about this driver's bound volumes and reports each one's condition on its claim — the
//! claim's `status.healthStatus` and the Events (see [`crate::health`]).

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

use crate::csi::{CsiHandler, ListError, VolumeConditionResult};
use crate::health::{ABNORMAL_REASON, NORMAL_REASON, RECOVERY_MESSAGE, Reports, conditions_for};
use crate::kube::HealthApi;

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
        let condition = self
            .parts
            .csi
            .get_volume_condition(&handle, self.parts.timeout)
            .await?;
        let (namespace, name) = claim_of(pv);
        let claim = self
            .parts
            .listers
            .claim(&namespace, &name)
            .ok_or(CheckError::ClaimNotFound(name))?;
        self.report(&claim, &condition).await
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
        let desired = conditions_for(condition);
        let Some(write) = reports.write_for(&uid, &desired, Timestamp::now()) else {
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
}
