//! Upstream's `pkg/mock` objects and a harness around the checker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use csi_connection::{ConnectOptions, Connection};
use csi_controller::ApiError;
use csi_proto::csi::v1 as csi;
use csi_test_support::{FakeRecorder, MockCsiDriver};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, Node, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeSpec,
    PersistentVolumeStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::checker::{CheckerParts, Listers, PvHealthChecker};
use crate::csi::{CsiHandler, HealthMode};
use crate::health::Reports;
use crate::kube::{HealthApi, StoredHealth};

/// Upstream's `mock.DriverName`.
pub const DRIVER_NAME: &str = "fake.csi.driver.io";
/// Upstream's `mock.DefaultNS`.
pub const DEFAULT_NS: &str = "test";
/// Upstream's `mock.AbnormalEvent`.
pub const ABNORMAL_EVENT: &str = "Warning VolumeConditionAbnormal Volume not found";
/// Upstream's `mock.NormalEvent`.
pub const NORMAL_EVENT: &str =
    "Normal VolumeConditionNormal The Volume returns to the healthy state";

/// Upstream's `createPV`: a CSI PV of [`DRIVER_NAME`] bound to `pvc_namespace/pvc_name`.
pub fn create_pv(
    pvc_name: &str,
    name: &str,
    pvc_namespace: &str,
    volume_id: &str,
    phase: &str,
) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            csi: Some(CSIPersistentVolumeSource {
                driver: DRIVER_NAME.to_string(),
                volume_handle: volume_id.to_string(),
                ..CSIPersistentVolumeSource::default()
            }),
            claim_ref: Some(ObjectReference {
                name: Some(pvc_name.to_string()),
                namespace: Some(pvc_namespace.to_string()),
                uid: Some("uid".to_string()),
                ..ObjectReference::default()
            }),
            volume_mode: Some("Block".to_string()),
            ..PersistentVolumeSpec::default()
        }),
        status: Some(PersistentVolumeStatus {
            phase: Some(phase.to_string()),
            ..PersistentVolumeStatus::default()
        }),
    }
}

/// Upstream's `createPVWithoutCSIDriver`.
pub fn create_pv_without_csi_driver(name: &str, phase: &str) -> PersistentVolume {
    let mut pv = create_pv("pvc", name, DEFAULT_NS, "1", phase);
    pv.spec.as_mut().unwrap().csi = None;
    pv
}

/// Upstream's `createPVWithNilVolumeHandle` (an empty handle).
pub fn create_pv_with_nil_volume_handle(name: &str, phase: &str) -> PersistentVolume {
    let mut pv = create_pv("pvc", name, DEFAULT_NS, "", phase);
    pv.spec
        .as_mut()
        .unwrap()
        .csi
        .as_mut()
        .unwrap()
        .volume_handle = String::new();
    pv
}

/// Upstream's `createPVC`.
pub fn create_pvc(
    name: &str,
    uid: &str,
    namespace: &str,
    volume_name: &str,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            uid: Some(uid.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            volume_name: Some(volume_name.to_string()),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some("Bound".to_string()),
            ..PersistentVolumeClaimStatus::default()
        }),
    }
}

/// Upstream's `createNode`: a Node without conditions (so not Ready).
pub fn create_node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

/// Upstream's `volumeMap` conditions: "1" abnormal ("Volume not found"), "2" normal.
pub fn condition_of(volume_id: &str) -> csi::VolumeCondition {
    match volume_id {
        "1" | "abnormalVolume1" => csi::VolumeCondition {
            abnormal: true,
            message: "Volume not found".to_string(),
        },
        _ => csi::VolumeCondition::default(),
    }
}

/// PVs and claims in maps.
#[derive(Debug, Default)]
pub struct MapListers {
    volumes: Mutex<HashMap<String, Arc<PersistentVolume>>>,
    claims: Mutex<HashMap<String, Arc<PersistentVolumeClaim>>>,
}

impl MapListers {
    pub fn add_pv(&self, pv: PersistentVolume) {
        let name = pv.metadata.name.clone().unwrap_or_default();
        self.volumes.lock().unwrap().insert(name, Arc::new(pv));
    }

    pub fn add_pvc(&self, pvc: PersistentVolumeClaim) {
        let key = format!(
            "{}/{}",
            pvc.metadata.namespace.clone().unwrap_or_default(),
            pvc.metadata.name.clone().unwrap_or_default()
        );
        self.claims.lock().unwrap().insert(key, Arc::new(pvc));
    }
}

impl Listers for MapListers {
    fn volumes(&self) -> Vec<Arc<PersistentVolume>> {
        self.volumes.lock().unwrap().values().cloned().collect()
    }

    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.volumes.lock().unwrap().get(name).cloned()
    }

    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims
            .lock()
            .unwrap()
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }
}

/// A [`HealthApi`] that records the status patches and lists what it was given.
#[derive(Debug, Default)]
pub struct FakeHealthApi {
    /// `(namespace/name, patch)` in order.
    pub patches: Mutex<Vec<(String, Value)>>,
    /// What `list_stored_health` returns.
    pub stored: Mutex<Vec<StoredHealth>>,
    /// Fail every patch with this error.
    pub fail: Mutex<Option<ApiError>>,
}

impl FakeHealthApi {
    pub fn patches(&self) -> Vec<(String, Value)> {
        self.patches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl HealthApi for FakeHealthApi {
    fn patch_claim_status<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            if let Some(err) = self.fail.lock().unwrap().clone() {
                return Err(err);
            }
            self.patches
                .lock()
                .unwrap()
                .push((format!("{namespace}/{name}"), merge_patch.clone()));
            Ok(())
        })
    }

    fn list_stored_health(&self) -> BoxFuture<'_, Result<Vec<StoredHealth>, ApiError>> {
        Box::pin(async move { Ok(self.stored.lock().unwrap().clone()) })
    }
}

/// A checker over a mock driver, map listers, a fake API and a fake recorder.
pub struct Harness {
    pub driver: MockCsiDriver,
    pub csi: CsiHandler,
    pub listers: Arc<MapListers>,
    pub api: Arc<FakeHealthApi>,
    pub events: Arc<FakeRecorder>,
    pub reports: Arc<Reports>,
    pub checker: Arc<PvHealthChecker>,
}

impl Harness {
    /// A harness whose checker uses the CSI 1.12 per-volume mode (the upstream tables').
    pub async fn new() -> Harness {
        Harness::with_mode(HealthMode::GetVolume).await
    }

    /// A harness whose checker asks the driver in `mode`.
    pub async fn with_mode(mode: HealthMode) -> Harness {
        let driver = MockCsiDriver::start().await.unwrap();
        let connection = Connection::connect(&driver.endpoint(), ConnectOptions::default())
            .await
            .unwrap();
        let csi = CsiHandler::new(connection);
        let listers = Arc::new(MapListers::default());
        let api = Arc::new(FakeHealthApi::default());
        let events = Arc::new(FakeRecorder::default());
        let reports = Arc::new(Reports::default());
        let checker = Arc::new(PvHealthChecker::new(CheckerParts {
            driver_name: DRIVER_NAME.to_string(),
            timeout: std::time::Duration::from_secs(15),
            csi: csi.clone(),
            mode,
            listers: listers.clone(),
            api: api.clone(),
            events: events.clone(),
            reports: reports.clone(),
        }));
        Harness {
            driver,
            csi,
            listers,
            api,
            events,
            reports,
            checker,
        }
    }

    /// The driver answers `ListVolumes` with `volume_ids` (in pages of `page` entries, the
    /// token being the next index), each with [`condition_of`].
    pub fn list_volumes(&self, volume_ids: &[&str], page: usize) {
        let ids: Vec<String> = volume_ids.iter().map(|s| s.to_string()).collect();
        self.driver
            .handle("ListVolumes", move |req: csi::ListVolumesRequest| {
                let start: usize = if req.starting_token.is_empty() {
                    0
                } else {
                    req.starting_token.parse().unwrap()
                };
                let end = (start + page).min(ids.len());
                let entries = ids[start..end]
                    .iter()
                    .map(|id| csi::list_volumes_response::Entry {
                        volume: Some(csi::Volume {
                            volume_id: id.clone(),
                            ..csi::Volume::default()
                        }),
                        status: Some(csi::list_volumes_response::VolumeStatus {
                            volume_condition: Some(condition_of(id)),
                            ..Default::default()
                        }),
                    })
                    .collect();
                let next_token = if end < ids.len() {
                    end.to_string()
                } else {
                    String::new()
                };
                Ok(csi::ListVolumesResponse {
                    entries,
                    next_token,
                })
            });
    }

    /// The driver answers `ControllerGetVolume` with [`condition_of`] the volume.
    pub fn get_volume(&self) {
        self.driver.handle(
            "ControllerGetVolume",
            |req: csi::ControllerGetVolumeRequest| {
                Ok(csi::ControllerGetVolumeResponse {
                    volume: Some(csi::Volume {
                        volume_id: req.volume_id.clone(),
                        ..csi::Volume::default()
                    }),
                    status: Some(csi::controller_get_volume_response::VolumeStatus {
                        volume_condition: Some(condition_of(&req.volume_id)),
                        ..Default::default()
                    }),
                })
            },
        );
    }
}
