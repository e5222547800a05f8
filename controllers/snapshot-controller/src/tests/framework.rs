//! The harness of upstream's `pkg/common-controller/framework_test.go`: a fake API server
//! (upstream's `snapshotReactor`: snapshots, contents, claims and volumes by name, resource
//! versions bumped on writes, conflicts on stale updates, errors injected by verb and
//! resource), fake listers (classes and claims, as upstream's tests fill them), the object
//! builders with upstream's parameters, and the table runners that compare the final objects
//! and Events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use csi_controller::ApiError;
use csi_controller::patch::apply_json_patch;
use csi_crd_types::group_snapshot::v1::{VolumeGroupSnapshot, VolumeGroupSnapshotContent};
use csi_crd_types::snapshot::v1::{
    VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent, VolumeSnapshotContentStatus,
    VolumeSnapshotError, VolumeSnapshotStatus,
};
use csi_snapshot_utils as utils;
use csi_test_support::FakeRecorder;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, Node, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeSpec,
    PersistentVolumeStatus, TypedLocalObjectReference, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{Listers, SnapshotApi};
use crate::controller::{Config, Parts, SnapshotController};
use crate::metrics::OperationMetrics;

// The group half's reactor and tables' harness (upstream's group cases of the same
// framework): a child module, so that it shares this reactor's state.
#[path = "group_framework.rs"]
pub mod group;

pub const TEST_NAMESPACE: &str = "default";
pub const MOCK_DRIVER_NAME: &str = "csi-mock-plugin";

/// An error to inject: the first call matching verb and resource fails with it.
#[derive(Clone, Debug)]
pub struct ReactorError {
    pub verb: &'static str,
    pub resource: &'static str,
    pub message: &'static str,
}

pub fn re(verb: &'static str, resource: &'static str, message: &'static str) -> ReactorError {
    ReactorError {
        verb,
        resource,
        message,
    }
}

#[derive(Default)]
struct State {
    snapshots: BTreeMap<String, VolumeSnapshot>,
    contents: BTreeMap<String, VolumeSnapshotContent>,
    claims: BTreeMap<String, PersistentVolumeClaim>,
    volumes: BTreeMap<String, PersistentVolume>,
    errors: Vec<ReactorError>,
    group: group::GroupState,
}

/// upstream's `snapshotReactor`.
#[derive(Default)]
pub struct Reactor {
    state: Mutex<State>,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reactor")
    }
}

fn version(meta: &ObjectMeta) -> i64 {
    meta.resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn conflict() -> ApiError {
    ApiError::conflict("object", "", "the object has been modified")
}

/// Applies a JSON patch as the API server's JSON patch library does: a `replace` of an object
/// member that does not exist sets it (RFC 6902 would refuse).
fn patched<K: Serialize + DeserializeOwned>(object: &K, patch: &Value) -> Result<K, ApiError> {
    let mut value = serde_json::to_value(object).map_err(|e| ApiError::other(e.to_string()))?;
    let mut patch = patch.clone();
    for op in patch.as_array_mut().into_iter().flatten() {
        let member = op["path"]
            .as_str()
            .and_then(|p| p.rsplit('/').next())
            .is_some_and(|last| last.parse::<usize>().is_err());
        if op["op"] == "replace"
            && member
            && value
                .pointer(op["path"].as_str().unwrap_or_default())
                .is_none()
        {
            op["op"] = Value::from("add");
        }
    }
    apply_json_patch(&mut value, &patch).map_err(|e| ApiError::invalid(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| ApiError::other(e.to_string()))
}

impl Reactor {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn inject(&self, verb: &str, resource: &str) -> Result<(), ApiError> {
        let mut state = self.state();
        if let Some(i) = state
            .errors
            .iter()
            .position(|e| e.verb == verb && e.resource == resource)
        {
            let error = state.errors.remove(i);
            return Err(ApiError::other(error.message));
        }
        Ok(())
    }

    pub fn snapshots(&self) -> Vec<VolumeSnapshot> {
        self.state().snapshots.values().cloned().collect()
    }

    pub fn contents(&self) -> Vec<VolumeSnapshotContent> {
        self.state().contents.values().cloned().collect()
    }

    /// Replaces a claim on the server (not in the listers): someone else wrote it.
    pub fn put_claim(&self, claim: PersistentVolumeClaim) {
        let name = claim.metadata.name.clone().unwrap_or_default();
        self.state().claims.insert(name, claim);
    }

    pub fn claims(&self) -> Vec<PersistentVolumeClaim> {
        self.state().claims.values().cloned().collect()
    }

    pub fn remove_content(&self, name: &str) {
        self.state().contents.remove(name);
    }

    fn update_snapshot_inner(&self, snapshot: &VolumeSnapshot) -> Result<VolumeSnapshot, ApiError> {
        self.inject("update", "volumesnapshots")?;
        let mut state = self.state();
        let snapshot_name = snapshot.metadata.name.clone().unwrap_or_default();
        let Some(stored) = state.snapshots.get(&snapshot_name) else {
            return Err(ApiError::other(format!(
                "cannot update snapshot {snapshot_name}: snapshot not found"
            )));
        };
        let stored_version = version(&stored.metadata);
        if stored_version != version(&snapshot.metadata) {
            return Err(conflict());
        }
        let mut snapshot = snapshot.clone();
        snapshot.metadata.resource_version = Some((stored_version + 1).to_string());
        state.snapshots.insert(snapshot_name, snapshot.clone());
        Ok(snapshot)
    }
}

impl SnapshotApi for Reactor {
    fn get_snapshot<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            self.inject("get", "volumesnapshots")?;
            self.state()
                .snapshots
                .get(name)
                .cloned()
                .ok_or_else(|| ApiError::other(format!("cannot find snapshot {name}")))
        })
    }

    fn update_snapshot<'a>(
        &'a self,
        snapshot: &'a VolumeSnapshot,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move { self.update_snapshot_inner(snapshot) })
    }

    fn update_snapshot_status<'a>(
        &'a self,
        snapshot: &'a VolumeSnapshot,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move { self.update_snapshot_inner(snapshot) })
    }

    fn patch_snapshot<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            self.inject("patch", "volumesnapshots")?;
            let mut state = self.state();
            let Some(stored) = state.snapshots.get(name) else {
                return Err(ApiError::other(format!(
                    "cannot update snapshot {name}: snapshot not found"
                )));
            };
            let mut new = patched(stored, patch)?;
            new.metadata.resource_version = Some((version(&stored.metadata) + 1).to_string());
            state.snapshots.insert(name.to_string(), new.clone());
            Ok(new)
        })
    }

    fn create_content<'a>(
        &'a self,
        content: &'a VolumeSnapshotContent,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move {
            self.inject("create", "volumesnapshotcontents")?;
            let mut state = self.state();
            let content_name = content.metadata.name.clone().unwrap_or_default();
            if state.contents.contains_key(&content_name) {
                return Err(ApiError::other(format!(
                    "cannot create content {content_name}: content already exists"
                )));
            }
            state.contents.insert(content_name, content.clone());
            Ok(content.clone())
        })
    }

    fn patch_content<'a>(
        &'a self,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move {
            self.inject("patch", "volumesnapshotcontents")?;
            let mut state = self.state();
            let Some(stored) = state.contents.get(name) else {
                return Err(ApiError::other(format!(
                    "cannot update snapshot content {name}: snapshot content not found"
                )));
            };
            let mut new = patched(stored, patch)?;
            new.metadata.resource_version = Some((version(&stored.metadata) + 1).to_string());
            state.contents.insert(name.to_string(), new.clone());
            Ok(new)
        })
    }

    fn delete_content<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            self.inject("delete", "volumesnapshotcontents")?;
            match self.state().contents.remove(name) {
                Some(_) => Ok(()),
                None => Err(ApiError::other(format!(
                    "cannot delete content {name}: not found"
                ))),
            }
        })
    }

    fn get_pv<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(async move {
            self.inject("get", "persistentvolumes")?;
            self.state()
                .volumes
                .get(name)
                .cloned()
                .ok_or_else(|| ApiError::other(format!("cannot find volume {name}")))
        })
    }

    fn get_pvc<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        Box::pin(async move {
            self.inject("get", "persistentvolumeclaims")?;
            self.state()
                .claims
                .get(name)
                .cloned()
                .ok_or_else(|| ApiError::other(format!("cannot find claim {name}")))
        })
    }

    fn update_pvc<'a>(
        &'a self,
        pvc: &'a PersistentVolumeClaim,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        Box::pin(async move {
            self.inject("update", "persistentvolumeclaims")?;
            let mut state = self.state();
            let claim_name = pvc.metadata.name.clone().unwrap_or_default();
            let Some(stored) = state.claims.get(&claim_name) else {
                return Err(ApiError::other(format!(
                    "cannot update claim {claim_name}: claim not found"
                )));
            };
            let stored_version = version(&stored.metadata);
            if stored_version != version(&pvc.metadata) {
                return Err(conflict());
            }
            let mut pvc = pvc.clone();
            pvc.metadata.resource_version = Some((stored_version + 1).to_string());
            state.claims.insert(claim_name, pvc.clone());
            Ok(pvc)
        })
    }
}

/// The listers upstream's tests fill: classes and claims (the snapshot, content and node
/// listers stay empty).
#[derive(Default)]
pub struct FakeListers {
    pub classes: Vec<VolumeSnapshotClass>,
    pub claims: Vec<PersistentVolumeClaim>,
    pub nodes: Vec<Node>,
}

impl Listers for FakeListers {
    fn snapshot(&self, _: &str, _: &str) -> Option<Arc<VolumeSnapshot>> {
        None
    }
    fn snapshots_in(&self, _: &str) -> Vec<Arc<VolumeSnapshot>> {
        Vec::new()
    }
    fn content(&self, _: &str) -> Option<Arc<VolumeSnapshotContent>> {
        None
    }
    fn class(&self, name: &str) -> Option<Arc<VolumeSnapshotClass>> {
        self.classes
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .cloned()
            .map(Arc::new)
    }
    fn classes(&self) -> Vec<Arc<VolumeSnapshotClass>> {
        self.classes.iter().cloned().map(Arc::new).collect()
    }
    fn pvc(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims
            .iter()
            .find(|c| {
                c.metadata.name.as_deref() == Some(name)
                    && c.metadata.namespace.as_deref() == Some(namespace)
            })
            .cloned()
            .map(Arc::new)
    }
    fn pvcs_in(&self, namespace: &str) -> Vec<Arc<PersistentVolumeClaim>> {
        self.claims
            .iter()
            .filter(|c| c.metadata.namespace.as_deref() == Some(namespace))
            .cloned()
            .map(Arc::new)
            .collect()
    }
    fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.iter().cloned().map(Arc::new).collect()
    }
    fn group_snapshot(&self, _: &str, _: &str) -> Option<Arc<VolumeGroupSnapshot>> {
        None
    }
    fn group_contents(&self) -> Vec<Arc<VolumeGroupSnapshotContent>> {
        Vec::new()
    }
}

/// Which controller function a case calls (upstream's `test*` functions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TestFn {
    #[default]
    SyncSnapshot,
    SyncSnapshotError,
    SyncContent,
    SyncContentError,
    AddPvcFinalizer,
    RemovePvcFinalizer,
    AddSnapshotFinalizer,
    AddSingleSnapshotFinalizer,
    RemoveSnapshotFinalizer,
    UpdateSnapshotClass,
    NewSnapshotContentCreation,
    UpdateSnapshotErrorStatus,
}

/// upstream's `controllerTest`.
#[derive(Default)]
pub struct Case {
    pub name: &'static str,
    pub initial_contents: Vec<VolumeSnapshotContent>,
    pub expected_contents: Vec<VolumeSnapshotContent>,
    pub initial_snapshots: Vec<VolumeSnapshot>,
    pub expected_snapshots: Vec<VolumeSnapshot>,
    pub initial_claims: Vec<PersistentVolumeClaim>,
    pub initial_volumes: Vec<PersistentVolume>,
    pub expected_events: Vec<&'static str>,
    pub errors: Vec<ReactorError>,
    pub expect_success: bool,
    pub test: TestFn,
    /// A content the API server loses before the tested call (upstream's
    /// `wrapTestWithInjectedOperation`).
    pub delete_before: Option<&'static str>,
    /// The claims the informer cache holds when it lags the API server (by default the
    /// cache and the API server both hold `initial_claims`).
    pub cached_claims: Option<Vec<PersistentVolumeClaim>>,
}

pub struct Harness {
    pub ctrl: SnapshotController,
    pub reactor: Arc<Reactor>,
    pub events: Arc<FakeRecorder>,
}

pub fn harness(case: &Case, classes: &[VolumeSnapshotClass]) -> Harness {
    let reactor = Arc::new(Reactor::default());
    {
        let mut state = reactor.state();
        for s in &case.initial_snapshots {
            state
                .snapshots
                .insert(s.metadata.name.clone().unwrap_or_default(), s.clone());
        }
        for c in &case.initial_contents {
            state
                .contents
                .insert(c.metadata.name.clone().unwrap_or_default(), c.clone());
        }
        for c in &case.initial_claims {
            state
                .claims
                .insert(c.metadata.name.clone().unwrap_or_default(), c.clone());
        }
        for v in &case.initial_volumes {
            state
                .volumes
                .insert(v.metadata.name.clone().unwrap_or_default(), v.clone());
        }
        state.errors = case.errors.clone();
    }
    let listers = FakeListers {
        classes: classes.to_vec(),
        claims: case
            .cached_claims
            .clone()
            .unwrap_or_else(|| case.initial_claims.clone()),
        nodes: Vec::new(),
    };
    let events = Arc::new(FakeRecorder::default());
    let queue = || {
        csi_workqueue::WorkQueue::<String>::new(
            csi_workqueue::ItemExponentialFailureRateLimiter::new(
                std::time::Duration::from_millis(1),
                std::time::Duration::from_secs(1),
            ),
        )
    };
    let ctrl = SnapshotController::new(
        Config {
            enable_distributed_snapshotting: false,
            prevent_volume_mode_conversion: false,
            enable_volume_group_snapshots: true,
        },
        Parts {
            api: reactor.clone(),
            listers: Arc::new(listers),
            events: events.clone(),
            metrics: OperationMetrics::register(&csi_metrics::Registry::new()).unwrap(),
            snapshot_queue: queue(),
            content_queue: queue(),
        },
    );
    for s in &case.initial_snapshots {
        ctrl.store_snapshot_update(Arc::new(s.clone())).unwrap();
    }
    for c in &case.initial_contents {
        ctrl.store_content_update(Arc::new(c.clone())).unwrap();
    }
    Harness {
        ctrl,
        reactor,
        events,
    }
}

async fn call(h: &Harness, case: &Case) -> Result<(), String> {
    let ctrl = &h.ctrl;
    let snapshot = || case.initial_snapshots[0].clone();
    let content = || case.initial_contents[0].clone();
    let e = |r: crate::controller::Result<()>| r.map_err(|e| e.to_string());
    match case.test {
        TestFn::SyncSnapshot => e(ctrl.sync_snapshot(&snapshot()).await),
        TestFn::SyncSnapshotError => match ctrl.sync_snapshot(&snapshot()).await {
            Ok(()) => Err("syncSnapshot succeeded when failure was expected".into()),
            Err(_) => Ok(()),
        },
        TestFn::SyncContent => e(ctrl.sync_content(&content()).await),
        TestFn::SyncContentError => match ctrl.sync_content(&content()).await {
            Ok(()) => Err("syncContent succeeded when failure was expected".into()),
            Err(_) => Ok(()),
        },
        TestFn::AddPvcFinalizer => e(ctrl.ensure_pvc_finalizer(&snapshot()).await),
        TestFn::RemovePvcFinalizer => e(ctrl
            .check_and_remove_pvc_finalizer(&snapshot(), false)
            .await),
        TestFn::AddSnapshotFinalizer => {
            e(ctrl.add_snapshot_finalizer(&snapshot(), true, true).await)
        }
        TestFn::AddSingleSnapshotFinalizer => {
            e(ctrl.add_snapshot_finalizer(&snapshot(), false, true).await)
        }
        TestFn::RemoveSnapshotFinalizer => e(ctrl
            .remove_snapshot_finalizer(&snapshot(), true, true, false)
            .await),
        TestFn::UpdateSnapshotClass => {
            let (_, result) = ctrl
                .check_and_update_snapshot_class(Arc::new(snapshot()))
                .await;
            e(result)
        }
        TestFn::NewSnapshotContentCreation => e(ctrl.sync_unready_snapshot(&snapshot()).await),
        TestFn::UpdateSnapshotErrorStatus => {
            let updated = ctrl
                .update_snapshot_status(&snapshot(), &content())
                .await
                .map_err(|e| format!("update snapshot status failed: {e}"))?;
            let expected = content().status.and_then(|s| s.error);
            let got = updated.status.clone().and_then(|s| s.error);
            if expected != got {
                return Err(format!(
                    "update snapshot status failed: expected {expected:?}, got {got:?}"
                ));
            }
            Ok(())
        }
    }
}

fn normalize_snapshot(mut s: VolumeSnapshot) -> (String, Value) {
    s.metadata.resource_version = None;
    if let Some(error) = s.status.as_mut().and_then(|st| st.error.as_mut()) {
        error.time = None;
    }
    if let Some(status) = s.status.as_mut()
        && let Some(time) = status.creation_time.as_mut()
    {
        // Written from a content's nanoseconds: compared to the second.
        *time = Time(Timestamp::from_second(time.0.as_second()).unwrap());
    }
    let key = s.metadata.name.clone().unwrap_or_default();
    (key, serde_json::to_value(&s).unwrap())
}

fn normalize_content(mut c: VolumeSnapshotContent) -> (String, Value) {
    c.metadata.resource_version = None;
    c.spec.volume_snapshot_ref.resource_version = None;
    if let Some(status) = c.status.as_mut() {
        status.creation_time = None;
    }
    let key = c.metadata.name.clone().unwrap_or_default();
    (key, serde_json::to_value(&c).unwrap())
}

fn compare<T>(
    what: &str,
    expected: Vec<T>,
    got: Vec<T>,
    normalize: fn(T) -> (String, Value),
) -> Result<(), String> {
    let expected: BTreeMap<String, Value> = expected.into_iter().map(normalize).collect();
    let got: BTreeMap<String, Value> = got.into_iter().map(normalize).collect();
    if !csi_controller::semantic_eq(&expected, &got) {
        return Err(format!(
            "{what} check failed\nexpected: {}\n     got: {}",
            serde_json::to_string(&expected).unwrap(),
            serde_json::to_string(&got).unwrap()
        ));
    }
    Ok(())
}

fn check_events(expected: &[&str], got: &[String]) -> Result<(), String> {
    for (i, want) in expected.iter().enumerate() {
        match got.get(i) {
            None => return Err(format!("Event {want:?} not emitted (got {got:?})")),
            Some(line) if !line.starts_with(want) => {
                return Err(format!(
                    "Unexpected event received, expected {want:?}, got {line:?}"
                ));
            }
            Some(_) => {}
        }
    }
    // Upstream reads as many Events as it expects: later ones are not checked.
    Ok(())
}

/// upstream's `runSyncTests` (and `runUpdateSnapshotClassTests`): every failing case is
/// reported, then the test fails.
pub async fn run_sync_tests(cases: Vec<Case>, classes: &[VolumeSnapshotClass]) {
    let mut failures = Vec::new();
    for case in &cases {
        let h = harness(case, classes);
        if let Some(name) = case.delete_before {
            h.reactor.remove_content(name);
        }
        let result = call(&h, case).await;
        let mut problems = Vec::new();
        // As upstream's runner: the call's outcome fails a case only when it expects success
        // (the *Error functions turn an unexpected success into an error). The final objects
        // and Events are always checked.
        if let Err(err) = &result
            && case.expect_success
        {
            problems.push(format!("failed: {err}"));
        }
        if let Err(err) = compare(
            "snapshot",
            case.expected_snapshots.clone(),
            h.reactor.snapshots(),
            normalize_snapshot,
        ) {
            problems.push(err);
        }
        if let Err(err) = compare(
            "content",
            case.expected_contents.clone(),
            h.reactor.contents(),
            normalize_content,
        ) {
            problems.push(err);
        }
        if let Err(err) = check_events(&case.expected_events, &h.events.lines()) {
            problems.push(err);
        }
        if !problems.is_empty() {
            failures.push(format!(
                "Test {:?}:\n  {}",
                case.name,
                problems.join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn has_finalizer(finalizers: &Option<Vec<String>>, f: &str) -> bool {
    finalizers.iter().flatten().any(|x| x == f)
}

/// upstream's `runFinalizerTests` with `evaluateFinalizerTests`.
pub async fn run_finalizer_tests(cases: Vec<Case>, classes: &[VolumeSnapshotClass]) {
    let mut failures = Vec::new();
    for case in &cases {
        let h = harness(case, classes);
        if let Err(err) = call(&h, case).await {
            failures.push(format!("Test {:?} failed: {err}", case.name));
            continue;
        }
        if !case.expect_success {
            continue;
        }
        let ok = match case.test {
            TestFn::AddPvcFinalizer => {
                let initial = &case.initial_claims[0];
                let now = h
                    .reactor
                    .claims()
                    .into_iter()
                    .find(|c| c.metadata.name == initial.metadata.name)
                    .unwrap();
                !has_finalizer(&initial.metadata.finalizers, utils::PVC_FINALIZER)
                    && has_finalizer(&now.metadata.finalizers, utils::PVC_FINALIZER)
            }
            TestFn::RemovePvcFinalizer => {
                let initial = &case.initial_claims[0];
                let now = h
                    .reactor
                    .claims()
                    .into_iter()
                    .find(|c| c.metadata.name == initial.metadata.name)
                    .unwrap();
                has_finalizer(&initial.metadata.finalizers, utils::PVC_FINALIZER)
                    && !has_finalizer(&now.metadata.finalizers, utils::PVC_FINALIZER)
            }
            TestFn::AddSnapshotFinalizer
            | TestFn::AddSingleSnapshotFinalizer
            | TestFn::RemoveSnapshotFinalizer => {
                let initial = &case.initial_snapshots[0];
                let now = h
                    .reactor
                    .snapshots()
                    .into_iter()
                    .find(|s| s.metadata.name == initial.metadata.name)
                    .unwrap();
                let has = |s: &VolumeSnapshot, f| has_finalizer(&s.metadata.finalizers, f);
                match case.test {
                    TestFn::AddSnapshotFinalizer => {
                        !has(initial, utils::VOLUME_SNAPSHOT_BOUND_FINALIZER)
                            && has(&now, utils::VOLUME_SNAPSHOT_BOUND_FINALIZER)
                            && !has(initial, utils::VOLUME_SNAPSHOT_AS_SOURCE_FINALIZER)
                            && has(&now, utils::VOLUME_SNAPSHOT_AS_SOURCE_FINALIZER)
                    }
                    TestFn::AddSingleSnapshotFinalizer => {
                        has(&now, utils::VOLUME_SNAPSHOT_BOUND_FINALIZER)
                            && now.metadata.finalizers.as_ref().map(Vec::len) == Some(2)
                    }
                    _ => {
                        has(initial, utils::VOLUME_SNAPSHOT_BOUND_FINALIZER)
                            && !has(&now, utils::VOLUME_SNAPSHOT_BOUND_FINALIZER)
                            && has(initial, utils::VOLUME_SNAPSHOT_AS_SOURCE_FINALIZER)
                            && !has(&now, utils::VOLUME_SNAPSHOT_AS_SOURCE_FINALIZER)
                    }
                }
            }
            _ => true,
        };
        if !ok {
            failures.push(format!("Test {:?}: finalizers not as expected", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// Builders with upstream's parameters.

pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The tables' "now", fixed so that runs compare.
pub fn meta_time_now() -> Time {
    Time(Timestamp::from_second(1_700_000_000).unwrap())
}

pub fn time_now_stamp() -> i64 {
    1_700_000_000_000_000_000
}

pub fn get_size(size: i64) -> Option<Quantity> {
    Some(csi_controller::bytes_to_quantity(size))
}

pub fn new_volume_error(message: &str) -> Option<VolumeSnapshotError> {
    Some(VolumeSnapshotError {
        time: Some(Time(Timestamp::UNIX_EPOCH)),
        message: Some(message.to_string()),
    })
}

#[allow(clippy::too_many_arguments)]
pub fn new_content(
    content_name: &str,
    bound_to_snapshot_uid: &str,
    bound_to_snapshot_name: &str,
    snapshot_handle: &str,
    snapshot_class_name: &str,
    desired_snapshot_handle: &str,
    volume_handle: &str,
    deletion_policy: &str,
    creation_time: Option<i64>,
    size: Option<i64>,
    with_finalizer: bool,
    with_status: bool,
) -> VolumeSnapshotContent {
    let mut content = VolumeSnapshotContent {
        metadata: ObjectMeta {
            name: Some(content_name.into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    content.spec.driver = MOCK_DRIVER_NAME.into();
    content.spec.deletion_policy = deletion_policy.into();
    if with_status {
        content.status = Some(VolumeSnapshotContentStatus {
            creation_time,
            restore_size: size,
            ready_to_use: Some(true),
            snapshot_handle: (!snapshot_handle.is_empty()).then(|| snapshot_handle.into()),
            ..Default::default()
        });
    }
    if !snapshot_class_name.is_empty() {
        content.spec.volume_snapshot_class_name = Some(snapshot_class_name.into());
    }
    if !volume_handle.is_empty() {
        content.spec.source.volume_handle = Some(volume_handle.into());
    }
    if !desired_snapshot_handle.is_empty() {
        content.spec.source.snapshot_handle = Some(desired_snapshot_handle.into());
    }
    if !bound_to_snapshot_name.is_empty() {
        content.spec.volume_snapshot_ref = ObjectReference {
            kind: Some("VolumeSnapshot".into()),
            api_version: Some("snapshot.storage.k8s.io/v1".into()),
            uid: Some(bound_to_snapshot_uid.into()),
            namespace: Some(TEST_NAMESPACE.into()),
            name: Some(bound_to_snapshot_name.into()),
            ..Default::default()
        };
    }
    if with_finalizer {
        content.metadata.finalizers = Some(vec![utils::VOLUME_SNAPSHOT_CONTENT_FINALIZER.into()]);
    }
    content
}

#[allow(clippy::too_many_arguments)]
pub fn new_content_array(
    content_name: &str,
    bound_to_snapshot_uid: &str,
    bound_to_snapshot_name: &str,
    snapshot_handle: &str,
    snapshot_class_name: &str,
    desired_snapshot_handle: &str,
    volume_handle: &str,
    deletion_policy: &str,
    size: Option<i64>,
    creation_time: Option<i64>,
    with_finalizer: bool,
) -> Vec<VolumeSnapshotContent> {
    vec![new_content(
        content_name,
        bound_to_snapshot_uid,
        bound_to_snapshot_name,
        snapshot_handle,
        snapshot_class_name,
        desired_snapshot_handle,
        volume_handle,
        deletion_policy,
        creation_time,
        size,
        with_finalizer,
        true,
    )]
}

#[allow(clippy::too_many_arguments)]
pub fn new_content_array_no_status(
    content_name: &str,
    bound_to_snapshot_uid: &str,
    bound_to_snapshot_name: &str,
    snapshot_handle: &str,
    snapshot_class_name: &str,
    desired_snapshot_handle: &str,
    volume_handle: &str,
    deletion_policy: &str,
    size: Option<i64>,
    creation_time: Option<i64>,
    with_finalizer: bool,
    with_status: bool,
) -> Vec<VolumeSnapshotContent> {
    vec![new_content(
        content_name,
        bound_to_snapshot_uid,
        bound_to_snapshot_name,
        snapshot_handle,
        snapshot_class_name,
        desired_snapshot_handle,
        volume_handle,
        deletion_policy,
        creation_time,
        size,
        with_finalizer,
        with_status,
    )]
}

#[allow(clippy::too_many_arguments)]
pub fn new_content_array_with_ready_to_use(
    content_name: &str,
    bound_to_snapshot_uid: &str,
    bound_to_snapshot_name: &str,
    snapshot_handle: &str,
    snapshot_class_name: &str,
    desired_snapshot_handle: &str,
    volume_handle: &str,
    deletion_policy: &str,
    creation_time: Option<i64>,
    size: Option<i64>,
    ready_to_use: Option<bool>,
    with_finalizer: bool,
) -> Vec<VolumeSnapshotContent> {
    let mut content = new_content(
        content_name,
        bound_to_snapshot_uid,
        bound_to_snapshot_name,
        snapshot_handle,
        snapshot_class_name,
        desired_snapshot_handle,
        volume_handle,
        deletion_policy,
        creation_time,
        size,
        with_finalizer,
        true,
    );
    if let Some(status) = content.status.as_mut() {
        status.ready_to_use = ready_to_use;
    }
    vec![content]
}

#[allow(clippy::too_many_arguments)]
pub fn new_content_array_with_error(
    content_name: &str,
    bound_to_snapshot_uid: &str,
    bound_to_snapshot_name: &str,
    snapshot_handle: &str,
    snapshot_class_name: &str,
    desired_snapshot_handle: &str,
    volume_handle: &str,
    deletion_policy: &str,
    size: Option<i64>,
    creation_time: Option<i64>,
    with_finalizer: bool,
    error: Option<VolumeSnapshotError>,
) -> Vec<VolumeSnapshotContent> {
    // Upstream passes size and creation time swapped to newContent here; so do we.
    let mut content = new_content(
        content_name,
        bound_to_snapshot_uid,
        bound_to_snapshot_name,
        snapshot_handle,
        snapshot_class_name,
        desired_snapshot_handle,
        volume_handle,
        deletion_policy,
        size,
        creation_time,
        with_finalizer,
        true,
    );
    if let Some(status) = content.status.as_mut() {
        status.ready_to_use = Some(false);
        status.error = error;
    }
    vec![content]
}

pub fn with_content_annotations(
    mut contents: Vec<VolumeSnapshotContent>,
    annotations: BTreeMap<String, String>,
) -> Vec<VolumeSnapshotContent> {
    for content in &mut contents {
        let existing = content
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new);
        existing.extend(annotations.clone());
    }
    contents
}

pub fn with_content_spec_snapshot_class_name(
    mut contents: Vec<VolumeSnapshotContent>,
    class_name: Option<&str>,
) -> Vec<VolumeSnapshotContent> {
    for content in &mut contents {
        content.spec.volume_snapshot_class_name = class_name.map(String::from);
    }
    contents
}

#[allow(clippy::too_many_arguments)]
pub fn new_snapshot(
    snapshot_name: &str,
    snapshot_uid: &str,
    pvc_name: &str,
    target_content_name: &str,
    snapshot_class_name: &str,
    bound_content_name: &str,
    ready_to_use: Option<bool>,
    creation_time: Option<Time>,
    restore_size: Option<Quantity>,
    error: Option<VolumeSnapshotError>,
    nil_status: bool,
    with_all_finalizers: bool,
    deletion_timestamp: Option<Time>,
) -> VolumeSnapshot {
    let mut snapshot = VolumeSnapshot {
        metadata: ObjectMeta {
            name: Some(snapshot_name.into()),
            namespace: Some(TEST_NAMESPACE.into()),
            uid: Some(snapshot_uid.into()),
            resource_version: Some("1".into()),
            deletion_timestamp,
            ..Default::default()
        },
        ..Default::default()
    };
    if !nil_status {
        snapshot.status = Some(VolumeSnapshotStatus {
            creation_time,
            ready_to_use,
            error,
            restore_size,
            ..Default::default()
        });
    }
    if !bound_content_name.is_empty()
        && let Some(status) = snapshot.status.as_mut()
    {
        status.bound_volume_snapshot_content_name = Some(bound_content_name.into());
    }
    if !snapshot_class_name.is_empty() {
        snapshot.spec.volume_snapshot_class_name = Some(snapshot_class_name.into());
    }
    if !pvc_name.is_empty() {
        snapshot.spec.source.persistent_volume_claim_name = Some(pvc_name.into());
    }
    if !target_content_name.is_empty() {
        snapshot.spec.source.volume_snapshot_content_name = Some(target_content_name.into());
    }
    if with_all_finalizers {
        snapshot.metadata.finalizers = Some(vec![
            utils::VOLUME_SNAPSHOT_AS_SOURCE_FINALIZER.into(),
            utils::VOLUME_SNAPSHOT_BOUND_FINALIZER.into(),
        ]);
    }
    snapshot
}

#[allow(clippy::too_many_arguments)]
pub fn new_snapshot_array(
    snapshot_name: &str,
    snapshot_uid: &str,
    pvc_name: &str,
    target_content_name: &str,
    snapshot_class_name: &str,
    bound_content_name: &str,
    ready_to_use: Option<bool>,
    creation_time: Option<Time>,
    restore_size: Option<Quantity>,
    error: Option<VolumeSnapshotError>,
    nil_status: bool,
    with_all_finalizers: bool,
    deletion_timestamp: Option<Time>,
) -> Vec<VolumeSnapshot> {
    vec![new_snapshot(
        snapshot_name,
        snapshot_uid,
        pvc_name,
        target_content_name,
        snapshot_class_name,
        bound_content_name,
        ready_to_use,
        creation_time,
        restore_size,
        error,
        nil_status,
        with_all_finalizers,
        deletion_timestamp,
    )]
}

pub fn with_snapshot_finalizers(
    mut snapshots: Vec<VolumeSnapshot>,
    finalizer: &str,
) -> Vec<VolumeSnapshot> {
    for snapshot in &mut snapshots {
        snapshot
            .metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(finalizer.into());
    }
    snapshots
}

pub fn new_claim(
    name: &str,
    claim_uid: &str,
    capacity: &str,
    bound_to_volume: &str,
    phase: &str,
    class: Option<&str>,
    with_finalizer: bool,
) -> PersistentVolumeClaim {
    let modes = vec!["ReadWriteOnce".to_string(), "ReadOnlyMany".to_string()];
    let requests = BTreeMap::from([("storage".to_string(), Quantity(capacity.into()))]);
    let mut claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(TEST_NAMESPACE.into()),
            uid: Some(claim_uid.into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(modes.clone()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(requests.clone()),
                ..Default::default()
            }),
            volume_name: (!bound_to_volume.is_empty()).then(|| bound_to_volume.into()),
            storage_class_name: class.map(String::from),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    };
    if phase == "Bound"
        && let Some(status) = claim.status.as_mut()
    {
        status.access_modes = Some(modes);
        status.capacity = Some(requests);
    }
    if with_finalizer {
        claim.metadata.finalizers = Some(vec![utils::PVC_FINALIZER.into()]);
    }
    claim
}

pub fn new_claim_array(
    name: &str,
    claim_uid: &str,
    capacity: &str,
    bound_to_volume: &str,
    phase: &str,
    class: Option<&str>,
) -> Vec<PersistentVolumeClaim> {
    vec![new_claim(
        name,
        claim_uid,
        capacity,
        bound_to_volume,
        phase,
        class,
        false,
    )]
}

pub fn new_claim_array_finalizer(
    name: &str,
    claim_uid: &str,
    capacity: &str,
    bound_to_volume: &str,
    phase: &str,
    class: Option<&str>,
) -> Vec<PersistentVolumeClaim> {
    vec![new_claim(
        name,
        claim_uid,
        capacity,
        bound_to_volume,
        phase,
        class,
        true,
    )]
}

pub fn new_claim_pending_restore_from_volume_snapshot(
    name: &str,
    claim_uid: &str,
    capacity: &str,
    snapshot_name: &str,
    class: Option<&str>,
) -> PersistentVolumeClaim {
    let mut claim = new_claim(name, claim_uid, capacity, "", "Pending", class, false);
    if let Some(spec) = claim.spec.as_mut() {
        spec.data_source = Some(TypedLocalObjectReference {
            api_group: Some("snapshot.storage.k8s.io".into()),
            kind: "VolumeSnapshot".into(),
            name: snapshot_name.into(),
        });
    }
    claim
}

#[allow(clippy::too_many_arguments)]
pub fn new_volume(
    name: &str,
    volume_uid: &str,
    volume_handle: &str,
    capacity: &str,
    bound_to_claim_uid: &str,
    bound_to_claim_name: &str,
    phase: &str,
    reclaim_policy: &str,
    class: &str,
) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.into()),
            resource_version: Some("1".into()),
            uid: Some(volume_uid.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([(
                "storage".to_string(),
                Quantity(capacity.into()),
            )])),
            csi: Some(CSIPersistentVolumeSource {
                driver: MOCK_DRIVER_NAME.into(),
                volume_handle: volume_handle.into(),
                ..Default::default()
            }),
            access_modes: Some(vec!["ReadWriteOnce".into(), "ReadOnlyMany".into()]),
            persistent_volume_reclaim_policy: Some(reclaim_policy.into()),
            storage_class_name: Some(class.into()),
            claim_ref: (!bound_to_claim_name.is_empty()).then(|| ObjectReference {
                kind: Some("PersistentVolumeClaim".into()),
                api_version: Some("v1".into()),
                uid: Some(bound_to_claim_uid.into()),
                namespace: Some(TEST_NAMESPACE.into()),
                name: Some(bound_to_claim_name.into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(PersistentVolumeStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn new_volume_array(
    name: &str,
    volume_uid: &str,
    volume_handle: &str,
    capacity: &str,
    bound_to_claim_uid: &str,
    bound_to_claim_name: &str,
    phase: &str,
    reclaim_policy: &str,
    class: &str,
) -> Vec<PersistentVolume> {
    vec![new_volume(
        name,
        volume_uid,
        volume_handle,
        capacity,
        bound_to_claim_uid,
        bound_to_claim_name,
        phase,
        reclaim_policy,
        class,
    )]
}

pub fn new_snapshot_class(
    name: &str,
    driver: &str,
    parameters: &[(&str, &str)],
    default: bool,
) -> VolumeSnapshotClass {
    VolumeSnapshotClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: default
                .then(|| map(&[(utils::IS_DEFAULT_SNAPSHOT_CLASS_ANNOTATION, "true")])),
            ..Default::default()
        },
        driver: driver.into(),
        parameters: (!parameters.is_empty()).then(|| map(parameters)),
        deletion_policy: "Delete".into(),
    }
}

/// upstream's `snapshotClasses` (snapshot_delete_test.go), used by most tables.
pub fn snapshot_classes() -> Vec<VolumeSnapshotClass> {
    vec![
        new_snapshot_class("gold", MOCK_DRIVER_NAME, &[("param1", "value1")], false),
        new_snapshot_class("silver", MOCK_DRIVER_NAME, &[("param2", "value2")], false),
        new_snapshot_class("empty-secret-class", MOCK_DRIVER_NAME, &[], false),
        new_snapshot_class(
            "invalid-secret-class",
            MOCK_DRIVER_NAME,
            &[
                ("param3", "value3"),
                (utils::PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, "name"),
            ],
            false,
        ),
        new_snapshot_class(
            "valid-secret-class",
            MOCK_DRIVER_NAME,
            &[
                (utils::PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, "secret"),
                (utils::PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY, "default"),
            ],
            false,
        ),
        new_snapshot_class("default-class", MOCK_DRIVER_NAME, &[], true),
    ]
}
