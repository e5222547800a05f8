//! In-memory collaborators: a cluster that is both the watch caches ([`Listers`]) and the API
//! server ([`ResizerApi`]), a scripted CSI driver (upstream's `csi.MockClient`), csi-test-support's
//! `FakeRecorder` for the Events, and the object builders of upstream's tests.
//!
//! A successful patch updates the server and the caches, as upstream's controller writes the
//! patched object back into its informer store.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use csi_controller::patch::apply_merge_patch;
use csi_controller::{ApiError, SecretGetter};
use csi_proto::csi::v1::{
    ControllerExpandVolumeRequest, ControllerExpandVolumeResponse, VolumeCapability,
};
use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeSpec, Secret,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::resize::controller::{Reconciler, ReconcilerParts};
use crate::resize::csi::{CsiError, ExpandDriver};
use crate::resize::inuse::InUseClaims;
use crate::resize::kube::{Listers, ResizerApi};
use crate::resize::resizer::{Resizer, new_resizer};
pub use csi_test_support::FakeRecorder;

/// upstream's `defaultNS`.
pub const NS: &str = "default";

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap()
}

pub fn q(s: &str) -> Quantity {
    Quantity(s.to_string())
}

// ---------------------------------------------------------------------------------------------
// The driver

/// upstream's `csi.NewMockClient(name, supportsNodeResize, supportsControllerResize, _,
/// supportsPluginControllerService, supportsControllerSingleNodeMultiWriter)`.
#[derive(Debug, Default)]
pub struct FakeDriver {
    pub node_resize: bool,
    pub controller_resize: bool,
    pub controller_service: bool,
    pub single_node_multi_writer: bool,
    pub expansion_error: Mutex<Option<CsiError>>,
    pub expand_count: AtomicUsize,
    pub secrets: Mutex<Option<HashMap<String, String>>>,
    pub capability: Mutex<Option<VolumeCapability>>,
    /// upstream's `checkMigratedLabel`: an expansion not marked as migrated fails.
    pub check_migrated_label: AtomicBool,
    /// Answers ControllerExpandVolume with this instead of the requested size.
    pub expand_answer: Mutex<Option<Result<ControllerExpandVolumeResponse, CsiError>>>,
}

impl FakeDriver {
    pub fn new(
        node_resize: bool,
        controller_resize: bool,
        controller_service: bool,
        single_node_multi_writer: bool,
    ) -> Arc<Self> {
        Arc::new(FakeDriver {
            node_resize,
            controller_resize,
            controller_service,
            single_node_multi_writer,
            ..Default::default()
        })
    }

    /// upstream's `SetExpansionError`.
    pub fn set_expansion_error(&self, err: CsiError) {
        *lock(&self.expansion_error) = Some(err);
    }

    /// upstream's `SetCheckMigratedLabel`.
    pub fn set_check_migrated_label(&self) {
        self.check_migrated_label.store(true, Ordering::SeqCst);
    }

    pub fn expand_count(&self) -> usize {
        self.expand_count.load(Ordering::SeqCst)
    }
}

impl ExpandDriver for FakeDriver {
    fn supports_plugin_controller_service(
        &self,
        _: Duration,
    ) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move { Ok(self.controller_service) })
    }

    fn supports_controller_resize(&self, _: Duration) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move { Ok(self.controller_resize) })
    }

    fn supports_node_resize(&self, _: Duration) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move { Ok(self.node_resize) })
    }

    fn supports_controller_single_node_multi_writer(
        &self,
        _: Duration,
    ) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move { Ok(self.single_node_multi_writer) })
    }

    fn expand(
        &self,
        request: ControllerExpandVolumeRequest,
        _: Duration,
    ) -> BoxFuture<'_, Result<ControllerExpandVolumeResponse, CsiError>> {
        Box::pin(async move {
            if let Some(err) = lock(&self.expansion_error).clone() {
                self.expand_count.fetch_add(1, Ordering::SeqCst);
                return Err(err);
            }
            if self.check_migrated_label.load(Ordering::SeqCst) {
                let migrated = match csi_connection::migrated() {
                    Some(migrated) => migrated.to_string(),
                    None => String::new(),
                };
                if migrated != "true" {
                    return Err(CsiError::Other(format!(
                        "Expected value of migrated label: true, Actual value: {migrated}"
                    )));
                }
            }
            self.expand_count.fetch_add(1, Ordering::SeqCst);
            *lock(&self.secrets) = Some(request.secrets.clone());
            *lock(&self.capability) = request.volume_capability.clone();
            if let Some(answer) = lock(&self.expand_answer).clone() {
                return answer;
            }
            Ok(ControllerExpandVolumeResponse {
                capacity_bytes: request
                    .capacity_range
                    .map(|r| r.required_bytes)
                    .unwrap_or(0),
                node_expansion_required: self.node_resize,
            })
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster

#[derive(Debug, Default)]
struct State {
    claims: BTreeMap<String, PersistentVolumeClaim>,
    volumes: BTreeMap<String, PersistentVolume>,
    secrets: BTreeMap<String, Secret>,
    /// Patches sent: (resource, name, patch).
    patches: Vec<(String, String, Value)>,
    version: u64,
}

/// Caches and API server in one.
#[derive(Debug, Default)]
pub struct FakeCluster {
    state: Mutex<State>,
}

impl FakeCluster {
    pub fn new() -> Arc<Self> {
        Arc::new(FakeCluster::default())
    }

    pub fn add_claim(&self, claim: PersistentVolumeClaim) {
        lock(&self.state)
            .claims
            .insert(csi_kube::key_of(&claim), claim);
    }

    pub fn add_volume(&self, pv: PersistentVolume) {
        lock(&self.state)
            .volumes
            .insert(pv.metadata.name.clone().unwrap_or_default(), pv);
    }

    pub fn add_secret(&self, secret: Secret) {
        let key = csi_kube::key_of(&secret);
        lock(&self.state).secrets.insert(key, secret);
    }

    pub fn claim_now(&self, key: &str) -> Option<PersistentVolumeClaim> {
        lock(&self.state).claims.get(key).cloned()
    }

    pub fn volume_now(&self, name: &str) -> Option<PersistentVolume> {
        lock(&self.state).volumes.get(name).cloned()
    }

    pub fn patches(&self) -> Vec<(String, String, Value)> {
        lock(&self.state).patches.clone()
    }
}

fn patched<K: serde::Serialize + serde::de::DeserializeOwned>(
    object: &K,
    patch: &Value,
    version: u64,
) -> Result<K, ApiError> {
    let mut json = serde_json::to_value(object).unwrap();
    apply_merge_patch(&mut json, patch);
    json["metadata"]["resourceVersion"] = Value::String(version.to_string());
    serde_json::from_value(json).map_err(|e| ApiError::invalid(e.to_string()))
}

impl Listers for FakeCluster {
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        let key = if namespace.is_empty() {
            name.to_string()
        } else {
            format!("{namespace}/{name}")
        };
        lock(&self.state).claims.get(&key).cloned().map(Arc::new)
    }

    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        lock(&self.state).volumes.get(name).cloned().map(Arc::new)
    }
}

impl SecretGetter for FakeCluster {
    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>> {
        Box::pin(async move {
            lock(&self.state)
                .secrets
                .get(&format!("{namespace}/{name}"))
                .cloned()
                .ok_or_else(|| ApiError::not_found("secrets", name))
        })
    }
}

impl ResizerApi for FakeCluster {
    fn patch_claim_status<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        Box::pin(async move {
            let mut state = lock(&self.state);
            let key = format!("{namespace}/{name}");
            state.patches.push((
                "persistentvolumeclaims/status".into(),
                key.clone(),
                merge_patch.clone(),
            ));
            let Some(claim) = state.claims.get(&key).cloned() else {
                return Err(ApiError::not_found("persistentvolumeclaims", name));
            };
            if let Some(version) = merge_patch
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                && Some(version) != claim.metadata.resource_version.as_deref()
            {
                return Err(ApiError::conflict(
                    "persistentvolumeclaims",
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            state.version += 1;
            let updated = patched(&claim, merge_patch, state.version)?;
            state.claims.insert(key, updated.clone());
            Ok(updated)
        })
    }

    fn patch_volume<'a>(
        &'a self,
        name: &'a str,
        strategic_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(async move {
            let mut state = lock(&self.state);
            state.patches.push((
                "persistentvolumes".into(),
                name.into(),
                strategic_patch.clone(),
            ));
            let Some(pv) = state.volumes.get(name).cloned() else {
                return Err(ApiError::not_found("persistentvolumes", name));
            };
            state.version += 1;
            let updated = patched(&pv, strategic_patch, state.version)?;
            state.volumes.insert(name.into(), updated.clone());
            Ok(updated)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Events

// ---------------------------------------------------------------------------------------------
// The controller

pub struct Setup {
    pub events: Arc<FakeRecorder>,
    pub in_use: Arc<InUseClaims>,
    pub reconciler: Reconciler,
}

/// upstream's `NewResizerFromClient` + `NewResizeController` on the fakes.
pub async fn setup(name: &str, driver: Arc<FakeDriver>, cluster: Arc<FakeCluster>) -> Setup {
    let resizer: Arc<dyn Resizer> = new_resizer(
        driver.clone(),
        cluster.clone(),
        name,
        Duration::from_secs(15),
    )
    .await
    .expect("resizer");
    let events = Arc::new(FakeRecorder::default());
    let in_use = Arc::new(InUseClaims::new());
    let reconciler = Reconciler::new(ReconcilerParts {
        name: name.into(),
        resizer,
        listers: cluster.clone(),
        api: cluster.clone(),
        events: events.clone(),
        in_use: in_use.clone(),
        annotate_fs_resize: true,
        retry_interval_max: Duration::from_secs(120),
    });
    Setup {
        events,
        in_use,
        reconciler,
    }
}

// ---------------------------------------------------------------------------------------------
// Objects (upstream's builders)

/// `quantityGB` of the controller tests: `i` GiB, written as apimachinery writes it.
pub fn gib(i: i64) -> Quantity {
    crate::resize::util::bytes_to_quantity(i * 1024 * 1024 * 1024)
}

/// `createPVC(requestGB, capacityGB)`: `default/testPVC`, UID `foobar`, volume `testPV`, Bound.
pub fn create_pvc(request: i64, capacity: i64) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("testPVC".into()),
            namespace: Some(NS.into()),
            uid: Some("foobar".into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_string(), gib(request))].into()),
                ..Default::default()
            }),
            volume_name: Some("testPV".into()),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            capacity: Some([("storage".to_string(), gib(capacity))].into()),
            ..Default::default()
        }),
    }
}

/// `createPV(capacityGB, pvcName, pvcNamespace, pvcUID, volumeMode)`: `testPV`, driver
/// `foo`, RWO; a claim reference when `pvc_name` is set.
pub fn create_pv(
    capacity: i64,
    pvc_name: &str,
    pvc_namespace: &str,
    pvc_uid: &str,
    volume_mode: &str,
) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some("testPV".into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            capacity: Some([("storage".to_string(), gib(capacity))].into()),
            csi: Some(CSIPersistentVolumeSource {
                driver: "foo".into(),
                volume_handle: "foo".into(),
                ..Default::default()
            }),
            volume_mode: Some(volume_mode.into()),
            claim_ref: (!pvc_name.is_empty()).then(|| ObjectReference {
                namespace: Some(pvc_namespace.into()),
                name: Some(pvc_name.into()),
                uid: Some(pvc_uid.into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// testutil's `GetTestPVC(volumeName, specSize, statusSize, allocatedSize, resizeStatus)`:
/// `default/claim01`, UID `test-uid`, Bound.
pub fn get_test_pvc(
    volume_name: &str,
    spec_size: &str,
    status_size: &str,
    allocated_size: &str,
    resize_status: &str,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("claim01".into()),
            namespace: Some(NS.into()),
            uid: Some("test-uid".into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_string(), q(spec_size))].into()),
                ..Default::default()
            }),
            volume_name: Some(volume_name.into()),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            capacity: (!status_size.is_empty())
                .then(|| [("storage".to_string(), q(status_size))].into()),
            allocated_resources: (!allocated_size.is_empty())
                .then(|| [("storage".to_string(), q(allocated_size))].into()),
            allocated_resource_statuses: (!resize_status.is_empty())
                .then(|| [("storage".to_string(), resize_status.to_string())].into()),
            ..Default::default()
        }),
    }
}

/// `makeSecret(name, namespace)`: data `mykey: mydata`.
pub fn make_secret(name: &str, namespace: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        data: Some([("mykey".to_string(), ByteString(b"mydata".to_vec()))].into()),
        ..Default::default()
    }
}
