//! In-memory collaborators of the modify controller: a cluster that is both the caches
//! ([`Listers`]) and the API server ([`ModifyApi`]), a scripted CSI driver (upstream's
//! `csi.MockClient`), an Event list, and upstream's object builders (`createTestPVC`,
//! `createTestPV`, `testutil.MakeTestPVC`, the two classes).
//!
//! Upstream's tests run informers on a fake clientset, so a write reaches the listers shortly
//! after; here a write reaches them at once. Unlike client-go's fake, the server checks the
//! resourceVersion a patch carries (409 Conflict when it differs) and bumps it on every write.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use csi_controller::{ApiError, OBJECT_MERGE_KEYS, SecretGetter, apply_strategic_patch};
use csi_kube::EventType;
use csi_proto::csi::v1::ControllerModifyVolumeRequest;
use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, ModifyVolumeStatus, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeClaimCondition, PersistentVolumeClaimSpec,
    PersistentVolumeClaimStatus, PersistentVolumeSpec, PersistentVolumeStatus, Secret,
    VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::VolumeAttributesClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use tonic::Status;

use crate::modify::controller::Inner;
use crate::modify::csi::ModifyDriver;
use crate::modify::kube::{Listers, ModifyApi};
use crate::modify::{Modifier, ModifyConfig, Parts};
pub use csi_test_support::FakeRecorder;

pub const PVC_NAME: &str = "foo";
pub const PVC_NAMESPACE: &str = "modify";
pub const PV_NAME: &str = "testPV";
pub const TEST_VAC: &str = "test-vac";
pub const TARGET_VAC: &str = "target-vac";
pub const TEST_DRIVER: &str = "mock";

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap()
}

/// upstream's `infeasibleErr`.
pub fn infeasible_err() -> Status {
    Status::invalid_argument("Parameters in VolumeAttributesClass is invalid")
}

/// upstream's `finalErr`.
pub fn final_err() -> Status {
    Status::internal("Final error")
}

/// upstream's `nonFinalErr`.
pub fn non_final_err() -> Status {
    Status::aborted("Non-final error")
}

// ---------------------------------------------------------------------------------------------
// Objects

fn vac(name: &str, iops: &str) -> VolumeAttributesClass {
    VolumeAttributesClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        driver_name: TEST_DRIVER.into(),
        parameters: Some(BTreeMap::from([("iops".to_string(), iops.to_string())])),
    }
}

/// upstream's `testVacObject`: iops 3000.
pub fn test_vac_object() -> VolumeAttributesClass {
    vac(TEST_VAC, "3000")
}

/// upstream's `targetVacObject`: iops 4567.
pub fn target_vac_object() -> VolumeAttributesClass {
    vac(TARGET_VAC, "4567")
}

fn storage(size: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([("storage".to_string(), Quantity(size.into()))])
}

/// upstream's `createTestPVC`: bound to [`PV_NAME`], spec class `vac`, current class
/// `cur_vac`, and status `Infeasible` towards `target_vac` (no status when that is empty).
pub fn create_test_pvc(
    name: &str,
    vac: &str,
    cur_vac: &str,
    target_vac: &str,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(PVC_NAMESPACE.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into(), "ReadOnlyMany".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(storage("2Gi")),
                ..Default::default()
            }),
            volume_attributes_class_name: Some(vac.into()),
            volume_name: Some(PV_NAME.into()),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            capacity: Some(storage("2Gi")),
            current_volume_attributes_class_name: Some(cur_vac.into()),
            modify_volume_status: (!target_vac.is_empty()).then(|| ModifyVolumeStatus {
                target_volume_attributes_class_name: Some(target_vac.into()),
                status: "Infeasible".into(),
            }),
            ..Default::default()
        }),
    }
}

/// upstream's `createTestPV`: a 1Gi CSI PV of [`TEST_DRIVER`], handle `foo`, bound to the
/// claim, class `vac_name`.
pub fn create_test_pv(
    pvc_name: &str,
    pvc_namespace: &str,
    pvc_uid: &str,
    vac_name: &str,
) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(PV_NAME.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            capacity: Some(storage("1Gi")),
            csi: Some(CSIPersistentVolumeSource {
                driver: TEST_DRIVER.into(),
                volume_handle: "foo".into(),
                ..Default::default()
            }),
            volume_mode: Some("Filesystem".into()),
            volume_attributes_class_name: Some(vac_name.into()),
            claim_ref: (!pvc_name.is_empty()).then(|| ObjectReference {
                namespace: Some(pvc_namespace.into()),
                name: Some(pvc_name.into()),
                uid: Some(pvc_uid.into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: (!pvc_name.is_empty()).then(|| PersistentVolumeStatus {
            phase: Some("Bound".into()),
            ..Default::default()
        }),
    }
}

/// The base PV of upstream's tables.
pub fn base_pv() -> PersistentVolume {
    create_test_pv(PVC_NAME, PVC_NAMESPACE, "foobaz", TEST_VAC)
}

/// upstream's `testutil.MakeTestPVC`: spec class `target-vac`, current `test-vac`, a
/// modification towards `target-vac` with no status yet, and `conditions`.
pub fn make_test_pvc(conditions: Vec<PersistentVolumeClaimCondition>) -> PersistentVolumeClaim {
    let mut pvc = create_test_pvc(PVC_NAME, TARGET_VAC, TEST_VAC, TARGET_VAC);
    pvc.spec.as_mut().unwrap().volume_name = None;
    let status = pvc.status.as_mut().unwrap();
    status.modify_volume_status.as_mut().unwrap().status = String::new();
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    pvc
}

/// A condition as upstream's tables write them: `True`, no times.
pub fn cond(type_: &str, reason: &str, message: &str) -> PersistentVolumeClaimCondition {
    PersistentVolumeClaimCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: (!reason.is_empty()).then(|| reason.into()),
        message: (!message.is_empty()).then(|| message.into()),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster

/// One API write, as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// `PATCH persistentvolumeclaims/<name>/status` (strategic).
    ClaimStatus(String, Value),
    /// `PATCH persistentvolumes/<name>` (strategic).
    Volume(String, Value),
}

#[derive(Default, Debug)]
struct State {
    claims: BTreeMap<(String, String), PersistentVolumeClaim>,
    volumes: BTreeMap<String, PersistentVolume>,
    classes: BTreeMap<String, VolumeAttributesClass>,
    secrets: BTreeMap<(String, String), Secret>,
    writes: Vec<Write>,
    version: u64,
}

/// The caches and the API server in one.
#[derive(Default, Debug)]
pub struct FakeCluster {
    state: Mutex<State>,
}

fn ns_name(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Applies a strategic patch to `object` as the API server does, with its resourceVersion
/// precondition; bumps the version.
fn patched<K: serde::Serialize + serde::de::DeserializeOwned>(
    object: &K,
    patch: &Value,
    version: &mut u64,
    what: &str,
    name: &str,
) -> Result<K, ApiError> {
    let mut doc = serde_json::to_value(object).unwrap();
    let current = doc["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(wanted) = patch["metadata"]["resourceVersion"].as_str()
        && !wanted.is_empty()
        && wanted != current
    {
        return Err(ApiError::conflict(
            what,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    apply_strategic_patch(&mut doc, patch, OBJECT_MERGE_KEYS);
    *version += 1;
    doc["metadata"]["resourceVersion"] = Value::String(version.to_string());
    serde_json::from_value(doc).map_err(|e| ApiError::invalid(e.to_string()))
}

impl FakeCluster {
    pub fn new() -> Arc<Self> {
        Arc::new(FakeCluster::default())
    }

    pub fn add_claim(&self, pvc: PersistentVolumeClaim) {
        lock(&self.state).claims.insert(ns_name(&pvc.metadata), pvc);
    }

    pub fn add_volume(&self, pv: PersistentVolume) {
        let name = pv.metadata.name.clone().unwrap_or_default();
        lock(&self.state).volumes.insert(name, pv);
    }

    pub fn add_class(&self, vac: VolumeAttributesClass) {
        let name = vac.metadata.name.clone().unwrap_or_default();
        lock(&self.state).classes.insert(name, vac);
    }

    pub fn add_secret(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        lock(&self.state)
            .secrets
            .insert((namespace.into(), name.into()), secret);
    }

    pub fn claim_now(&self, namespace: &str, name: &str) -> Option<PersistentVolumeClaim> {
        lock(&self.state)
            .claims
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    pub fn volume_now(&self, name: &str) -> Option<PersistentVolume> {
        lock(&self.state).volumes.get(name).cloned()
    }

    pub fn writes(&self) -> Vec<Write> {
        lock(&self.state).writes.clone()
    }
}

impl Listers for FakeCluster {
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claim_now(namespace, name).map(Arc::new)
    }

    fn claims(&self) -> Vec<Arc<PersistentVolumeClaim>> {
        lock(&self.state)
            .claims
            .values()
            .cloned()
            .map(Arc::new)
            .collect()
    }

    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.volume_now(name).map(Arc::new)
    }

    fn volume_attributes_class(&self, name: &str) -> Option<Arc<VolumeAttributesClass>> {
        lock(&self.state).classes.get(name).cloned().map(Arc::new)
    }
}

impl SecretGetter for FakeCluster {
    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>> {
        let found = lock(&self.state)
            .secrets
            .get(&(namespace.to_string(), name.to_string()))
            .cloned();
        Box::pin(async move { found.ok_or_else(|| ApiError::not_found("secrets", name)) })
    }
}

impl ModifyApi for FakeCluster {
    fn patch_claim_status<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        strategic_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        let mut state = lock(&self.state);
        state
            .writes
            .push(Write::ClaimStatus(name.into(), strategic_patch.clone()));
        let result = {
            let key = (namespace.to_string(), name.to_string());
            match state.claims.get(&key).cloned() {
                None => Err(ApiError::not_found("persistentvolumeclaims", name)),
                Some(pvc) => {
                    let mut version = state.version;
                    let result = patched(
                        &pvc,
                        strategic_patch,
                        &mut version,
                        "persistentvolumeclaims",
                        name,
                    );
                    state.version = version;
                    if let Ok(new) = &result {
                        state.claims.insert(key, new.clone());
                    }
                    result
                }
            }
        };
        Box::pin(async move { result })
    }

    fn patch_volume<'a>(
        &'a self,
        name: &'a str,
        strategic_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        let mut state = lock(&self.state);
        state
            .writes
            .push(Write::Volume(name.into(), strategic_patch.clone()));
        let result = match state.volumes.get(name).cloned() {
            None => Err(ApiError::not_found("persistentvolumes", name)),
            Some(pv) => {
                let mut version = state.version;
                let result = patched(
                    &pv,
                    strategic_patch,
                    &mut version,
                    "persistentvolumes",
                    name,
                );
                state.version = version;
                if let Ok(new) = &result {
                    state.volumes.insert(name.to_string(), new.clone());
                }
                result
            }
        };
        Box::pin(async move { result })
    }
}

// ---------------------------------------------------------------------------------------------
// The driver

/// upstream's `csi.MockClient`, the modify half.
#[derive(Debug, Default)]
pub struct FakeDriver {
    pub supports_modify: bool,
    modify_error: Mutex<Option<Status>>,
    modify_calls: AtomicUsize,
    modified_parameters: Mutex<HashMap<String, String>>,
    requests: Mutex<Vec<ControllerModifyVolumeRequest>>,
}

impl FakeDriver {
    pub fn new(supports_modify: bool) -> Arc<Self> {
        Arc::new(FakeDriver {
            supports_modify,
            ..Default::default()
        })
    }

    pub fn set_modify_error(&self, err: Option<Status>) {
        *lock(&self.modify_error) = err;
    }

    pub fn modify_count(&self) -> usize {
        self.modify_calls.load(Ordering::SeqCst)
    }

    pub fn modified_parameters(&self) -> HashMap<String, String> {
        lock(&self.modified_parameters).clone()
    }

    pub fn requests(&self) -> Vec<ControllerModifyVolumeRequest> {
        lock(&self.requests).clone()
    }
}

impl ModifyDriver for FakeDriver {
    fn supports_controller_modify(
        &self,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move { Ok(self.supports_modify) })
    }

    fn modify_volume(
        &self,
        request: ControllerModifyVolumeRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<(), Status>> {
        Box::pin(async move {
            self.modify_calls.fetch_add(1, Ordering::SeqCst);
            lock(&self.requests).push(request.clone());
            if let Some(err) = lock(&self.modify_error).clone() {
                return Err(err);
            }
            lock(&self.modified_parameters).extend(request.mutable_parameters);
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Events

// ---------------------------------------------------------------------------------------------
// Set-up

/// A controller on fakes (upstream's `setupFakeK8sEnvironment`): the objects in the cluster,
/// the uncertain PVCs initialized.
pub struct Env {
    pub inner: Arc<Inner>,
    pub cluster: Arc<FakeCluster>,
    pub driver: Arc<FakeDriver>,
    pub events: Arc<FakeRecorder>,
}

impl Env {
    /// The Events so far as (type, reason, message), forgetting them.
    pub fn take_events(&self) -> Vec<(EventType, String, String)> {
        self.events
            .take()
            .into_iter()
            .map(|e| (e.event_type, e.reason, e.message))
            .collect()
    }
}

/// What a table puts in the cluster.
#[allow(clippy::large_enum_variant)]
pub enum Obj {
    Pvc(PersistentVolumeClaim),
    Pv(PersistentVolume),
    Vac(VolumeAttributesClass),
}

pub async fn setup(driver: Arc<FakeDriver>, objects: Vec<Obj>) -> Env {
    setup_with(driver, objects, ModifyConfig::new(TEST_DRIVER)).await
}

pub async fn setup_with(
    driver: Arc<FakeDriver>,
    objects: Vec<Obj>,
    mut config: ModifyConfig,
) -> Env {
    config.retry_interval_max = Duration::from_secs(2 * 60);
    let cluster = FakeCluster::new();
    for object in objects {
        match object {
            Obj::Pvc(pvc) => cluster.add_claim(pvc),
            Obj::Pv(pv) => cluster.add_volume(pv),
            Obj::Vac(vac) => cluster.add_class(vac),
        }
    }
    let modifier = Modifier::new(
        driver.clone(),
        cluster.clone(),
        Duration::from_secs(15),
        TEST_DRIVER,
    )
    .await
    .expect("the modifier");
    let events = Arc::new(FakeRecorder::default());
    let parts = Parts {
        config: config.clone(),
        modifier: Arc::new(modifier),
        api: cluster.clone(),
        events: events.clone(),
        workqueue_metrics: None,
    };
    let inner = Arc::new(Inner::new(config, &parts, cluster.clone()));
    inner.init_uncertain_pvcs();
    Env {
        inner,
        cluster,
        driver,
        events,
    }
}

/// The usual objects: the PVC, the PV and both classes.
pub fn objects(pvc: &PersistentVolumeClaim, pv: &PersistentVolume) -> Vec<Obj> {
    vec![
        Obj::Pvc(pvc.clone()),
        Obj::Pv(pv.clone()),
        Obj::Vac(test_vac_object()),
        Obj::Vac(target_vac_object()),
    ]
}

/// The gRPC status an error carries (code, message), for comparing with a table's error.
pub fn status_of(err: &crate::modify::ModifyError) -> Option<(tonic::Code, String)> {
    err.status().map(|s| (s.code(), s.message().to_string()))
}

pub fn same_status(a: &Status) -> (tonic::Code, String) {
    (a.code(), a.message().to_string())
}
