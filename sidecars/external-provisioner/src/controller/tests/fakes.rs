//! In-memory collaborators of the loop: a cluster that is both the watch caches ([`Listers`])
//! and the API server ([`ProvisionerApi`]), a scripted CSI driver, an Event list, and the
//! object builders of upstream's tests (`newClaim`, `newVolume`, `newStorageClass`, …).
//!
//! The caches and the server are kept apart, as in a real process: a write goes to the server
//! only, and [`FakeCluster::sync_cache`] plays the informer, copying the server's claims and
//! volumes into the caches.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use csi_controller::{ApiError, SecretGetter, resources};
use csi_metrics::{Registry, SampleValue};
use csi_proto::csi::v1::{CreateVolumeRequest, CreateVolumeResponse, DeleteVolumeRequest, Volume};
use csi_workqueue::{WorkQueue, default_controller_rate_limiter};
use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, NFSVolumeSource, Node, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeSpec,
    PersistentVolumeStatus, Secret, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::{
    CSINode, CSINodeDriver, CSINodeSpec, StorageClass, VolumeAttachment, VolumeAttributesClass,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::Value;

use crate::controller::{NodeCheck, Parts, ProvisionController};
use crate::csi::{CsiError, VolumeDriver};
use crate::kube::{Listers, ProvisionerApi};
use crate::metrics::ProvisionMetrics;
use crate::provision::{ANN_BETA_STORAGE_PROVISIONER, DriverCapabilities, ProvisionerConfig};
pub use csi_test_support::FakeRecorder;

/// The provisioner name of upstream's tables, used here as the CSI driver name.
pub const DRIVER: &str = "foo.bar/baz";
/// Another provisioner.
pub const OTHER: &str = "abc.def/ghi";
/// upstream's `v1.NamespaceDefault`.
pub const NS: &str = "default";

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap()
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn now() -> Time {
    Time(Default::default())
}

// ---------------------------------------------------------------------------------------------
// Objects (upstream's builders)

/// `newStorageClass`: reclaim policy Delete. Its UID is `uid-<name>`.
pub fn new_storage_class(name: &str, provisioner: &str) -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        provisioner: provisioner.into(),
        reclaim_policy: Some("Delete".into()),
        ..Default::default()
    }
}

/// `newStorageClassWithVolumeBindingMode`.
pub fn new_storage_class_with_binding_mode(
    name: &str,
    provisioner: &str,
    mode: &str,
) -> StorageClass {
    StorageClass {
        volume_binding_mode: Some(mode.into()),
        ..new_storage_class(name, provisioner)
    }
}

/// `newStorageClassWithReclaimPolicy`.
pub fn new_storage_class_with_reclaim_policy(
    name: &str,
    provisioner: &str,
    policy: &str,
) -> StorageClass {
    StorageClass {
        reclaim_policy: Some(policy.into()),
        ..new_storage_class(name, provisioner)
    }
}

/// `newClaim`: in `default`, access modes RWO and ROX, 1Mi, Pending; the beta provisioner
/// annotation when `provisioner` is set; `annotations` on top.
pub fn new_claim(
    name: &str,
    uid: &str,
    class: &str,
    provisioner: &str,
    volume_name: &str,
    annotations: &[(&str, &str)],
) -> PersistentVolumeClaim {
    let mut all = BTreeMap::new();
    if !provisioner.is_empty() {
        all.insert(ANN_BETA_STORAGE_PROVISIONER.to_string(), provisioner.into());
    }
    all.extend(map(annotations));
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            uid: Some(uid.into()),
            resource_version: Some("0".into()),
            annotations: Some(all),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(strings(&["ReadWriteOnce", "ReadOnlyMany"])),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity("1Mi".into()),
                )])),
                ..Default::default()
            }),
            volume_name: (!volume_name.is_empty()).then(|| volume_name.into()),
            storage_class_name: Some(class.into()),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        }),
    }
}

/// `newClaimWithVolumeMode`.
pub fn new_claim_with_volume_mode(
    name: &str,
    uid: &str,
    class: &str,
    provisioner: &str,
    mode: &str,
) -> PersistentVolumeClaim {
    let mut claim = new_claim(name, uid, class, provisioner, "", &[]);
    claim.spec.as_mut().unwrap().volume_mode = Some(mode.into());
    claim
}

fn volume_meta(
    name: &str,
    annotations: &[(&str, &str)],
    finalizers: Option<&[&str]>,
    deletion_timestamp: Option<Time>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        annotations: (!annotations.is_empty()).then(|| map(annotations)),
        finalizers: finalizers.map(strings),
        deletion_timestamp,
        ..Default::default()
    }
}

fn volume_spec(policy: &str) -> PersistentVolumeSpec {
    PersistentVolumeSpec {
        persistent_volume_reclaim_policy: Some(policy.into()),
        access_modes: Some(strings(&["ReadWriteOnce", "ReadOnlyMany"])),
        capacity: Some(BTreeMap::from([(
            "storage".to_string(),
            Quantity("1Mi".into()),
        )])),
        ..Default::default()
    }
}

/// `newVolume`: an NFS (in-tree) PV.
pub fn new_volume(
    name: &str,
    phase: &str,
    policy: &str,
    annotations: &[(&str, &str)],
    finalizers: Option<&[&str]>,
    deletion_timestamp: Option<Time>,
) -> PersistentVolume {
    PersistentVolume {
        metadata: volume_meta(name, annotations, finalizers, deletion_timestamp),
        spec: Some(PersistentVolumeSpec {
            nfs: Some(NFSVolumeSource {
                server: "foo".into(),
                path: "bar".into(),
                read_only: None,
            }),
            ..volume_spec(policy)
        }),
        status: Some(PersistentVolumeStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

/// `newCSIVolume`: a CSI PV of `driver` with handle `test-volume-id-1`.
pub fn new_csi_volume(
    name: &str,
    phase: &str,
    policy: &str,
    annotations: &[(&str, &str)],
    finalizers: Option<&[&str]>,
    deletion_timestamp: Option<Time>,
    driver: &str,
) -> PersistentVolume {
    PersistentVolume {
        metadata: volume_meta(name, annotations, finalizers, deletion_timestamp),
        spec: Some(PersistentVolumeSpec {
            csi: Some(CSIPersistentVolumeSource {
                driver: driver.into(),
                volume_handle: "test-volume-id-1".into(),
                fs_type: Some("ext4".into()),
                ..Default::default()
            }),
            ..volume_spec(policy)
        }),
        status: Some(PersistentVolumeStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

/// A Node with labels.
pub fn new_node(name: &str, labels: &[(&str, &str)]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(map(labels)),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A CSINode registering [`DRIVER`] with `keys`.
pub fn new_csi_node(name: &str, keys: &[&str]) -> CSINode {
    CSINode {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: CSINodeSpec {
            drivers: vec![CSINodeDriver {
                name: DRIVER.into(),
                node_id: name.into(),
                topology_keys: Some(strings(keys)),
                ..Default::default()
            }],
        },
    }
}

/// A Secret with string data.
pub fn new_secret(namespace: &str, name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
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
    }
}

pub fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

pub fn finalizers_of(meta: &ObjectMeta) -> Vec<String> {
    meta.finalizers.clone().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The cluster

/// An API call the loop can make, to script failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    CreateVolume,
    DeleteVolume,
    PatchVolume,
    GetClaim,
    UpdateClaim,
}

#[derive(Debug)]
struct Injected {
    /// `None`: every call fails.
    remaining: Option<usize>,
    error: ApiError,
}

#[derive(Debug, Default)]
struct State {
    // The API server.
    claims: BTreeMap<String, PersistentVolumeClaim>,
    volumes: BTreeMap<String, PersistentVolume>,
    secrets: Vec<Secret>,
    vacs: Vec<VolumeAttributesClass>,
    resource_version: u64,
    // The caches.
    cached_claims: BTreeMap<String, Arc<PersistentVolumeClaim>>,
    cached_volumes: BTreeMap<String, Arc<PersistentVolume>>,
    classes: BTreeMap<String, Arc<StorageClass>>,
    csi_nodes: Vec<Arc<CSINode>>,
    nodes: Vec<Arc<Node>>,
    attachments: Vec<Arc<VolumeAttachment>>,
    // Behaviour and records.
    errors: HashMap<Verb, Injected>,
    actions: Vec<String>,
}

impl State {
    fn next_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    fn injected(&mut self, verb: Verb) -> Option<ApiError> {
        let injected = self.errors.get_mut(&verb)?;
        match &mut injected.remaining {
            None => Some(injected.error.clone()),
            Some(0) => None,
            Some(n) => {
                *n -= 1;
                Some(injected.error.clone())
            }
        }
    }
}

/// The caches and the API server of one test.
#[derive(Debug, Default)]
pub struct FakeCluster {
    state: Mutex<State>,
}

impl FakeCluster {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A claim in the server and the cache.
    pub fn add_claim(&self, mut claim: PersistentVolumeClaim) {
        let mut state = self.state();
        claim.metadata.resource_version = Some(state.next_version());
        let key = claim_key(&claim);
        state
            .cached_claims
            .insert(key.clone(), Arc::new(claim.clone()));
        state.claims.insert(key, claim);
    }

    /// A PV in the server and the cache.
    pub fn add_volume(&self, mut pv: PersistentVolume) {
        let mut state = self.state();
        pv.metadata.resource_version = Some(state.next_version());
        let name = pv.metadata.name.clone().unwrap_or_default();
        state
            .cached_volumes
            .insert(name.clone(), Arc::new(pv.clone()));
        state.volumes.insert(name, pv);
    }

    /// A StorageClass in the cache (replacing one of the same name).
    pub fn add_class(&self, class: StorageClass) {
        let name = class.metadata.name.clone().unwrap_or_default();
        self.state().classes.insert(name, Arc::new(class));
    }

    pub fn add_node(&self, node: Node) {
        self.state().nodes.push(Arc::new(node));
    }

    pub fn add_csi_node(&self, node: CSINode) {
        self.state().csi_nodes.push(Arc::new(node));
    }

    pub fn add_attachment(&self, attachment: VolumeAttachment) {
        self.state().attachments.push(Arc::new(attachment));
    }

    pub fn add_secret(&self, secret: Secret) {
        self.state().secrets.push(secret);
    }

    pub fn remove_secrets(&self) {
        self.state().secrets.clear();
    }

    /// The next `times` calls of `verb` fail with `error` (`None`: all of them).
    pub fn fail(&self, verb: Verb, times: Option<usize>, error: ApiError) {
        self.state().errors.insert(
            verb,
            Injected {
                remaining: times,
                error,
            },
        );
    }

    /// The informer: the caches get the server's claims and volumes.
    pub fn sync_cache(&self) {
        let mut state = self.state();
        state.cached_claims = state
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
            .collect();
        state.cached_volumes = state
            .volumes
            .iter()
            .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
            .collect();
    }

    /// Deletes a claim as the API server does: with finalizers it only gets a deletion
    /// timestamp. Returns the claim when it is gone.
    pub fn delete_claim(&self, namespace: &str, name: &str) -> Option<PersistentVolumeClaim> {
        let mut state = self.state();
        let key = format!("{namespace}/{name}");
        let claim = state.claims.get_mut(&key)?;
        if claim
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| !f.is_empty())
        {
            claim.metadata.deletion_timestamp = Some(now());
            return None;
        }
        state.claims.remove(&key)
    }

    /// The server's claims.
    pub fn claims(&self) -> Vec<PersistentVolumeClaim> {
        self.state().claims.values().cloned().collect()
    }

    pub fn claim_on_server(&self, namespace: &str, name: &str) -> Option<PersistentVolumeClaim> {
        self.state()
            .claims
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }

    /// The server's PVs.
    pub fn volumes(&self) -> Vec<PersistentVolume> {
        self.state().volumes.values().cloned().collect()
    }

    pub fn volume_on_server(&self, name: &str) -> Option<PersistentVolume> {
        self.state().volumes.get(name).cloned()
    }

    pub fn volume_names(&self) -> Vec<String> {
        self.state().volumes.keys().cloned().collect()
    }

    /// Every write sent, as `verb resource/name`.
    pub fn writes(&self) -> Vec<String> {
        self.state()
            .actions
            .iter()
            .filter(|a| !a.starts_with("get "))
            .cloned()
            .collect()
    }

    /// Every call, reads included.
    pub fn actions(&self) -> Vec<String> {
        self.state().actions.clone()
    }

    fn record(&self, action: String) {
        self.state().actions.push(action);
    }
}

impl Listers for FakeCluster {
    fn claim_by_uid(&self, uid: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.state()
            .cached_claims
            .values()
            .find(|c| c.metadata.uid.as_deref() == Some(uid))
            .cloned()
    }

    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.state()
            .cached_claims
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }

    fn storage_class(&self, name: &str) -> Option<Arc<StorageClass>> {
        self.state().classes.get(name).cloned()
    }

    fn storage_classes(&self) -> Vec<Arc<StorageClass>> {
        self.state().classes.values().cloned().collect()
    }

    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.state().cached_volumes.get(name).cloned()
    }

    fn csi_nodes(&self) -> Vec<Arc<CSINode>> {
        self.state().csi_nodes.clone()
    }

    fn nodes(&self) -> Vec<Arc<Node>> {
        self.state().nodes.clone()
    }

    fn node(&self, name: &str) -> Option<Arc<Node>> {
        self.state()
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
            .cloned()
    }

    fn volume_attachments(&self) -> Option<Vec<Arc<VolumeAttachment>>> {
        Some(self.state().attachments.clone())
    }
}

impl SecretGetter for FakeCluster {
    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>> {
        let found = self
            .state()
            .secrets
            .iter()
            .find(|s| {
                s.metadata.namespace.as_deref() == Some(namespace)
                    && s.metadata.name.as_deref() == Some(name)
            })
            .cloned()
            .ok_or_else(|| ApiError::not_found(resources::SECRETS, name));
        Box::pin(async move { found })
    }
}

/// Applies what `finalizers_strategic_patch` sends to a finalizer list.
fn apply_finalizer_patch(meta: &mut ObjectMeta, patch: &Value) {
    let metadata = &patch["metadata"];
    if let Some(order) = metadata.get("$setElementOrder/finalizers") {
        meta.finalizers = serde_json::from_value(order.clone()).unwrap();
    } else if let Some(list) = metadata.get("finalizers") {
        meta.finalizers = serde_json::from_value(list.clone()).unwrap();
    } else {
        panic!("unexpected patch {patch}");
    }
    if meta.finalizers.as_ref().is_some_and(Vec::is_empty) {
        meta.finalizers = None;
    }
}

impl ProvisionerApi for FakeCluster {
    fn create_volume<'a>(
        &'a self,
        pv: &'a PersistentVolume,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        let name = pv.metadata.name.clone().unwrap_or_default();
        self.record(format!("create persistentvolumes/{name}"));
        let mut state = self.state();
        let result = if let Some(error) = state.injected(Verb::CreateVolume) {
            Err(error)
        } else if state.volumes.contains_key(&name) {
            Err(ApiError::already_exists(
                resources::PERSISTENT_VOLUMES,
                &name,
            ))
        } else {
            let mut created = pv.clone();
            created.metadata.resource_version = Some(state.next_version());
            state.volumes.insert(name, created.clone());
            Ok(created)
        };
        Box::pin(async move { result })
    }

    fn delete_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ApiError>> {
        self.record(format!("delete persistentvolumes/{name}"));
        let mut state = self.state();
        let result = if let Some(error) = state.injected(Verb::DeleteVolume) {
            Err(error)
        } else {
            match state.volumes.get_mut(name) {
                None => Err(ApiError::not_found(resources::PERSISTENT_VOLUMES, name)),
                Some(pv)
                    if pv
                        .metadata
                        .finalizers
                        .as_ref()
                        .is_some_and(|f| !f.is_empty()) =>
                {
                    pv.metadata.deletion_timestamp.get_or_insert_with(now);
                    Ok(())
                }
                Some(_) => {
                    state.volumes.remove(name);
                    Ok(())
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
        self.record(format!("patch persistentvolumes/{name} {strategic_patch}"));
        let mut state = self.state();
        let result = if let Some(error) = state.injected(Verb::PatchVolume) {
            Err(error)
        } else {
            let version = state.next_version();
            match state.volumes.get_mut(name) {
                None => Err(ApiError::not_found(resources::PERSISTENT_VOLUMES, name)),
                Some(pv) => {
                    apply_finalizer_patch(&mut pv.metadata, strategic_patch);
                    pv.metadata.resource_version = Some(version);
                    let patched = pv.clone();
                    if patched.metadata.deletion_timestamp.is_some()
                        && patched.metadata.finalizers.is_none()
                    {
                        state.volumes.remove(name);
                    }
                    Ok(patched)
                }
            }
        };
        Box::pin(async move { result })
    }

    fn get_claim<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        self.record(format!("get persistentvolumeclaims/{namespace}/{name}"));
        let mut state = self.state();
        let result = if let Some(error) = state.injected(Verb::GetClaim) {
            Err(error)
        } else {
            state
                .claims
                .get(&format!("{namespace}/{name}"))
                .cloned()
                .ok_or_else(|| ApiError::not_found(resources::PERSISTENT_VOLUME_CLAIMS, name))
        };
        Box::pin(async move { result })
    }

    fn update_claim<'a>(
        &'a self,
        claim: &'a PersistentVolumeClaim,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        let key = claim_key(claim);
        let name = claim.metadata.name.clone().unwrap_or_default();
        self.record(format!("update persistentvolumeclaims/{key}"));
        let mut state = self.state();
        let result = if let Some(error) = state.injected(Verb::UpdateClaim) {
            Err(error)
        } else {
            let version = state.next_version();
            match state.claims.get(&key) {
                None => Err(ApiError::not_found(
                    resources::PERSISTENT_VOLUME_CLAIMS,
                    &name,
                )),
                Some(current)
                    if current.metadata.resource_version != claim.metadata.resource_version =>
                {
                    Err(ApiError::conflict(
                        resources::PERSISTENT_VOLUME_CLAIMS,
                        &name,
                        "the object has been modified; please apply your changes to the latest version and try again",
                    ))
                }
                Some(current) => {
                    let mut updated = claim.clone();
                    // The server keeps what a client cannot change.
                    updated.metadata.deletion_timestamp =
                        current.metadata.deletion_timestamp.clone();
                    updated.metadata.resource_version = Some(version);
                    if updated
                        .metadata
                        .finalizers
                        .as_ref()
                        .is_some_and(Vec::is_empty)
                    {
                        updated.metadata.finalizers = None;
                    }
                    if updated.metadata.deletion_timestamp.is_some()
                        && updated.metadata.finalizers.is_none()
                    {
                        state.claims.remove(&key);
                    } else {
                        state.claims.insert(key, updated.clone());
                    }
                    Ok(updated)
                }
            }
        };
        Box::pin(async move { result })
    }

    fn get_volume_attributes_class<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeAttributesClass, ApiError>> {
        self.record(format!("get volumeattributesclasses/{name}"));
        let result = self
            .state()
            .vacs
            .iter()
            .find(|v| v.metadata.name.as_deref() == Some(name))
            .cloned()
            .ok_or_else(|| ApiError::not_found("volumeattributesclasses.storage.k8s.io", name));
        Box::pin(async move { result })
    }
}

// ---------------------------------------------------------------------------------------------
// The driver

/// A CSI driver with scripted answers: each call takes the next answer, and without one
/// `CreateVolume` makes a volume of the requested size with the request's name as its ID and
/// `DeleteVolume` succeeds. Records every request.
#[derive(Debug, Default)]
pub struct FakeDriver {
    create_answers: Mutex<VecDeque<Result<CreateVolumeResponse, CsiError>>>,
    delete_answers: Mutex<VecDeque<Result<(), CsiError>>>,
    pub created: Mutex<Vec<CreateVolumeRequest>>,
    pub deleted: Mutex<Vec<DeleteVolumeRequest>>,
}

impl FakeDriver {
    /// The next `CreateVolume` answers `response`.
    pub fn create_returns(&self, response: CreateVolumeResponse) {
        lock(&self.create_answers).push_back(Ok(response));
    }

    pub fn create_fails(&self, error: CsiError) {
        lock(&self.create_answers).push_back(Err(error));
    }

    pub fn delete_fails(&self, error: CsiError) {
        lock(&self.delete_answers).push_back(Err(error));
    }

    pub fn create_calls(&self) -> usize {
        lock(&self.created).len()
    }

    pub fn created_names(&self) -> Vec<String> {
        lock(&self.created).iter().map(|r| r.name.clone()).collect()
    }

    pub fn deleted_ids(&self) -> Vec<String> {
        lock(&self.deleted)
            .iter()
            .map(|r| r.volume_id.clone())
            .collect()
    }
}

impl VolumeDriver for FakeDriver {
    fn create_volume(
        &self,
        request: CreateVolumeRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<CreateVolumeResponse, CsiError>> {
        let answer = lock(&self.create_answers).pop_front().unwrap_or_else(|| {
            Ok(CreateVolumeResponse {
                volume: Some(Volume {
                    volume_id: request.name.clone(),
                    capacity_bytes: request
                        .capacity_range
                        .as_ref()
                        .map(|c| c.required_bytes)
                        .unwrap_or(0),
                    ..Default::default()
                }),
            })
        });
        lock(&self.created).push(request);
        Box::pin(async move { answer })
    }

    fn delete_volume(
        &self,
        request: DeleteVolumeRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<(), CsiError>> {
        let answer = lock(&self.delete_answers).pop_front().unwrap_or(Ok(()));
        lock(&self.deleted).push(request);
        Box::pin(async move { answer })
    }
}

pub fn grpc(code: tonic::Code, message: &str) -> CsiError {
    CsiError::Status(tonic::Status::new(code, message))
}

// ---------------------------------------------------------------------------------------------
// Events, node check, metrics

/// `--node-deployment`'s check with one answer; counts its calls.
#[derive(Debug)]
pub struct FakeNodeCheck {
    pub answer: Result<bool, String>,
    pub forgotten: Mutex<Vec<String>>,
}

impl NodeCheck for FakeNodeCheck {
    fn check<'a>(
        &'a self,
        _claim: &'a PersistentVolumeClaim,
    ) -> BoxFuture<'a, Result<bool, String>> {
        let answer = self.answer.clone();
        Box::pin(async move { answer })
    }

    fn forget(&self, claim_uid: &str) {
        lock(&self.forgotten).push(claim_uid.to_string());
    }
}

/// Successes and failures of one label value (upstream's `count`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Count {
    pub success: f64,
    pub failed: f64,
}

/// Per class (upstream's `testMetrics`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestMetrics {
    pub provisioned: BTreeMap<String, Count>,
    pub deleted: BTreeMap<String, Count>,
}

/// `counts(&[("class-1", 1, 0)])`: class, successes, failures.
pub fn counts(items: &[(&str, u32, u32)]) -> BTreeMap<String, Count> {
    items
        .iter()
        .map(|(class, success, failed)| {
            (
                class.to_string(),
                Count {
                    success: f64::from(*success),
                    failed: f64::from(*failed),
                },
            )
        })
        .collect()
}

fn collect_counts(
    registry: &Registry,
    family: &str,
    into: &mut BTreeMap<String, Count>,
    success: bool,
) {
    for f in registry.gather().into_iter().filter(|f| f.name == family) {
        for sample in f.samples {
            let class = sample
                .labels
                .iter()
                .find(|(k, _)| k == "class")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let SampleValue::Value(value) = sample.value else {
                panic!("{family} is not a counter");
            };
            let count = into.entry(class).or_default();
            if success {
                count.success += value;
            } else {
                count.failed += value;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness

/// upstream's provisioner settings, with [`DRIVER`], volume names `pvc-<uid>` (the library's
/// own names) and the capabilities to create and delete volumes.
pub fn config() -> ProvisionerConfig {
    ProvisionerConfig {
        driver_name: DRIVER.into(),
        identity: "test-provisioner".into(),
        volume_name_prefix: "pvc".into(),
        volume_name_uuid_length: -1,
        timeout: Duration::from_secs(5),
        strict_topology: false,
        immediate_topology: true,
        extra_create_metadata: false,
        default_fs_type: "ext4".into(),
        controller_publish_readonly: false,
        volume_attributes_class: false,
        capabilities: DriverCapabilities {
            controller_service: true,
            create_delete_volume: true,
            ..Default::default()
        },
        node_deployment: None,
        migration: None,
    }
}

/// One loop over fakes.
pub struct Harness {
    pub cluster: Arc<FakeCluster>,
    pub driver: Arc<FakeDriver>,
    pub events: Arc<FakeRecorder>,
    pub registry: Registry,
    pub unsaved_queue: WorkQueue<String>,
    pub ctrl: ProvisionController,
}

/// How to build a [`Harness`].
pub struct Setup {
    pub config: ProvisionerConfig,
    pub node_check: Option<Arc<dyn NodeCheck>>,
    pub retry_interval_max: Duration,
    pub cluster: Arc<FakeCluster>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            config: config(),
            node_check: None,
            retry_interval_max: Duration::from_secs(300),
            cluster: Arc::new(FakeCluster::default()),
        }
    }
}

impl Setup {
    pub fn build(self) -> Harness {
        let driver = Arc::new(FakeDriver::default());
        let events = Arc::new(FakeRecorder::default());
        let registry = Registry::new();
        let metrics = ProvisionMetrics::register(&registry).unwrap();
        let unsaved_queue = WorkQueue::new(default_controller_rate_limiter());
        let ctrl = ProvisionController::new(Parts {
            config: self.config,
            listers: self.cluster.clone(),
            api: self.cluster.clone(),
            driver: driver.clone(),
            events: events.clone(),
            populator_events: None,
            metrics: Some(metrics),
            observer: None,
            node_check: self.node_check,
            data_sources: None,
            retry_interval_max: self.retry_interval_max,
            unsaved_queue: unsaved_queue.clone(),
        });
        Harness {
            cluster: self.cluster,
            driver,
            events,
            registry,
            unsaved_queue,
            ctrl,
        }
    }
}

impl Harness {
    /// The default loop.
    pub fn new() -> Self {
        Setup::default().build()
    }

    /// upstream's `getMetrics`.
    pub fn metrics(&self) -> TestMetrics {
        let mut tm = TestMetrics::default();
        let r = &self.registry;
        collect_counts(
            r,
            "controller_persistentvolumeclaim_provision_total",
            &mut tm.provisioned,
            true,
        );
        collect_counts(
            r,
            "controller_persistentvolumeclaim_provision_failed_total",
            &mut tm.provisioned,
            false,
        );
        collect_counts(
            r,
            "controller_persistentvolume_delete_total",
            &mut tm.deleted,
            true,
        );
        collect_counts(
            r,
            "controller_persistentvolume_delete_failed_total",
            &mut tm.deleted,
            false,
        );
        tm
    }

    /// Every claim in the cache goes through the claim queue once (a resync).
    pub async fn sync_claims(&self) -> Vec<csi_workqueue::Outcome> {
        let uids: Vec<String> = lock(&self.cluster.state)
            .cached_claims
            .values()
            .filter_map(|c| c.metadata.uid.clone())
            .collect();
        let mut outcomes = Vec::new();
        for uid in uids {
            outcomes.push(self.ctrl.sync_claim(&uid).await);
        }
        outcomes
    }

    /// Every PV in the cache goes through the volume queue once.
    pub async fn sync_volumes(&self) -> Vec<csi_workqueue::Outcome> {
        let names: Vec<String> = lock(&self.cluster.state)
            .cached_volumes
            .keys()
            .cloned()
            .collect();
        let mut outcomes = Vec::new();
        for name in names {
            outcomes.push(self.ctrl.sync_volume(&name).await);
        }
        outcomes
    }
}
