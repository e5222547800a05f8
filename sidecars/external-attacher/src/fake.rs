//! An in-memory Kubernetes for tests: [`FakeKube`] implements [`KubeListers`] and
//! [`KubeClient`] the way upstream's tests use client-go's fake clientset with informers.
//!
//! It keeps two sets of objects:
//!
//! - the **cache** (what listers read), filled by the test, and by default *not* updated by
//!   writes (upstream's informers are not started in its tests, so a patch is never seen by
//!   the listers; upstream's expected actions depend on that);
//!   [`FakeKube::set_write_through`] makes writes update it, as a running watch would;
//! - the **server** (what the client reads and patches): patches are applied to it (merge
//!   patches per RFC 7386, JSON patches per RFC 6902) and the patched object is returned.
//!
//! Every client call is recorded as an [`Action`] (verb, resource, subresource, namespace,
//! name, patch) before anything else happens, and reactors ([`FakeKube::prepend_reactor`]) can
//! make a call fail, as with client-go's `PrependReactor`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use k8s_openapi::api::core::v1::{PersistentVolume, Secret};
use k8s_openapi::api::storage::v1::{CSINode, VolumeAttachment};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::kube::{ApiError, BoxFuture, KubeClient, KubeListers, resources};
use crate::patch::{apply_json_patch, apply_merge_patch};

/// The resource names in recorded actions (client-go's GroupVersionResource `resource`).
pub mod resource {
    /// VolumeAttachments.
    pub const VOLUME_ATTACHMENTS: &str = "volumeattachments";
    /// PersistentVolumes.
    pub const PERSISTENT_VOLUMES: &str = "persistentvolumes";
    /// Secrets.
    pub const SECRETS: &str = "secrets";
}

/// The verb of a recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET.
    Get,
    /// PATCH.
    Patch,
}

/// How a patch is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
}

/// One recorded client call (client-go's `testing.Action`).
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// GET or PATCH.
    pub verb: Verb,
    /// See [`resource`].
    pub resource: &'static str,
    /// `""` or `"status"`.
    pub subresource: &'static str,
    /// `""` for cluster-scoped objects.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// For a PATCH: its type and body.
    pub patch: Option<(PatchType, Value)>,
}

impl Action {
    /// client-go's `NewGetAction`.
    pub fn get(resource: &'static str, namespace: &str, name: &str) -> Self {
        Action {
            verb: Verb::Get,
            resource,
            subresource: "",
            namespace: namespace.to_string(),
            name: name.to_string(),
            patch: None,
        }
    }

    /// client-go's `NewPatchAction` on a cluster-scoped object.
    pub fn patch(resource: &'static str, name: &str, patch_type: PatchType, patch: Value) -> Self {
        Self::patch_subresource(resource, name, patch_type, patch, "")
    }

    /// client-go's `NewPatchSubresourceAction` on a cluster-scoped object.
    pub fn patch_subresource(
        resource: &'static str,
        name: &str,
        patch_type: PatchType,
        patch: Value,
        subresource: &'static str,
    ) -> Self {
        Action {
            verb: Verb::Patch,
            resource,
            subresource,
            namespace: String::new(),
            name: name.to_string(),
            patch: Some((patch_type, patch)),
        }
    }
}

/// A reactor: sees every call with its verb and resource, and fails it by returning an error
/// (`None` lets the call proceed).
pub type Reactor = Box<dyn FnMut(&Action) -> Option<ApiError> + Send>;

struct RegisteredReactor {
    verb: Verb,
    /// A resource name, or `*`.
    resource: String,
    react: Reactor,
}

#[derive(Default, Clone)]
struct Objects {
    persistent_volumes: BTreeMap<String, PersistentVolume>,
    volume_attachments: BTreeMap<String, VolumeAttachment>,
    csi_nodes: BTreeMap<String, CSINode>,
    secrets: BTreeMap<(String, String), Secret>,
}

#[derive(Default)]
struct State {
    cache: Objects,
    server: Objects,
    actions: Vec<Action>,
    reactors: Vec<RegisteredReactor>,
    write_through: bool,
}

/// An in-memory API server and watch cache (see the [module documentation](self)). Clones
/// share the same state.
#[derive(Clone, Default)]
pub struct FakeKube {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for FakeKube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("FakeKube")
            .field("actions", &state.actions.len())
            .field("write_through", &state.write_through)
            .finish_non_exhaustive()
    }
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

impl FakeKube {
    /// An empty fake.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a PersistentVolume to the server and the cache.
    pub fn add_persistent_volume(&self, pv: PersistentVolume) {
        let mut state = self.lock();
        let name = name_of(&pv.metadata);
        state
            .cache
            .persistent_volumes
            .insert(name.clone(), pv.clone());
        state.server.persistent_volumes.insert(name, pv);
    }

    /// Adds a VolumeAttachment to the server and the cache.
    pub fn add_volume_attachment(&self, va: VolumeAttachment) {
        let mut state = self.lock();
        let name = name_of(&va.metadata);
        state
            .cache
            .volume_attachments
            .insert(name.clone(), va.clone());
        state.server.volume_attachments.insert(name, va);
    }

    /// Adds a CSINode to the cache (the attacher never reads CSINodes from the server).
    pub fn add_csi_node(&self, csi_node: CSINode) {
        let name = name_of(&csi_node.metadata);
        self.lock().cache.csi_nodes.insert(name, csi_node);
    }

    /// Adds a Secret to the server (secrets are not cached).
    pub fn add_secret(&self, secret: Secret) {
        let key = (
            secret.metadata.namespace.clone().unwrap_or_default(),
            name_of(&secret.metadata),
        );
        self.lock().server.secrets.insert(key, secret);
    }

    /// Puts a VolumeAttachment in the cache only (a watch event the server has not seen).
    pub fn cache_volume_attachment(&self, va: VolumeAttachment) {
        let name = name_of(&va.metadata);
        self.lock().cache.volume_attachments.insert(name, va);
    }

    /// Puts a PersistentVolume in the cache only.
    pub fn cache_persistent_volume(&self, pv: PersistentVolume) {
        let name = name_of(&pv.metadata);
        self.lock().cache.persistent_volumes.insert(name, pv);
    }

    /// Removes a VolumeAttachment from the cache (a watch delete event).
    pub fn uncache_volume_attachment(&self, name: &str) {
        self.lock().cache.volume_attachments.remove(name);
    }

    /// Whether writes also update the cache (default: no, as in upstream's tests).
    pub fn set_write_through(&self, write_through: bool) {
        self.lock().write_through = write_through;
    }

    /// Adds a reactor before all others (client-go's `PrependReactor`). `resource` is a name
    /// from [`resource`] or `*`.
    pub fn prepend_reactor(
        &self,
        verb: Verb,
        resource: &str,
        react: impl FnMut(&Action) -> Option<ApiError> + Send + 'static,
    ) {
        self.lock().reactors.insert(
            0,
            RegisteredReactor {
                verb,
                resource: resource.to_string(),
                react: Box::new(react),
            },
        );
    }

    /// Every client call so far, oldest first.
    pub fn actions(&self) -> Vec<Action> {
        self.lock().actions.clone()
    }

    /// How many client calls so far.
    pub fn action_count(&self) -> usize {
        self.lock().actions.len()
    }

    /// Forgets the recorded calls.
    pub fn clear_actions(&self) {
        self.lock().actions.clear();
    }

    /// The server's copy of a VolumeAttachment.
    pub fn server_volume_attachment(&self, name: &str) -> Option<VolumeAttachment> {
        self.lock().server.volume_attachments.get(name).cloned()
    }

    /// The server's copy of a PersistentVolume.
    pub fn server_persistent_volume(&self, name: &str) -> Option<PersistentVolume> {
        self.lock().server.persistent_volumes.get(name).cloned()
    }

    /// Records `action` and runs the reactors; an error from one fails the call.
    fn invoke(state: &mut State, action: Action) -> Result<(), ApiError> {
        let (verb, resource) = (action.verb, action.resource);
        state.actions.push(action);
        let action = state.actions.last().cloned();
        let Some(action) = action else {
            return Ok(());
        };
        for reactor in &mut state.reactors {
            if reactor.verb == verb
                && (reactor.resource == "*" || reactor.resource == resource)
                && let Some(err) = (reactor.react)(&action)
            {
                return Err(err);
            }
        }
        Ok(())
    }

    fn patch_va(
        &self,
        name: &str,
        patch: &Value,
        subresource: &'static str,
    ) -> Result<VolumeAttachment, ApiError> {
        let mut state = self.lock();
        Self::invoke(
            &mut state,
            Action::patch_subresource(
                resource::VOLUME_ATTACHMENTS,
                name,
                PatchType::Merge,
                patch.clone(),
                subresource,
            ),
        )?;
        let current = state
            .server
            .volume_attachments
            .get(name)
            .ok_or_else(|| ApiError::not_found(resources::VOLUME_ATTACHMENTS, name))?;
        // As client-go's object tracker: the whole patch applies, whatever the subresource.
        let patched: VolumeAttachment = patched(current, |doc| {
            apply_merge_patch(doc, patch);
            Ok(())
        })?;
        state
            .server
            .volume_attachments
            .insert(name.to_string(), patched.clone());
        if state.write_through {
            state
                .cache
                .volume_attachments
                .insert(name.to_string(), patched.clone());
        }
        Ok(patched)
    }
}

/// `object` with `change` applied to its JSON form.
fn patched<T: Serialize + DeserializeOwned>(
    object: &T,
    change: impl FnOnce(&mut Value) -> Result<(), ApiError>,
) -> Result<T, ApiError> {
    let invalid = |err: String| ApiError {
        code: 422,
        reason: "Invalid".into(),
        message: err,
    };
    let mut doc = serde_json::to_value(object).map_err(|e| invalid(e.to_string()))?;
    change(&mut doc)?;
    serde_json::from_value(doc).map_err(|e| invalid(e.to_string()))
}

impl KubeListers for FakeKube {
    fn persistent_volume(&self, name: &str) -> Result<Arc<PersistentVolume>, ApiError> {
        self.lock()
            .cache
            .persistent_volumes
            .get(name)
            .map(|pv| Arc::new(pv.clone()))
            .ok_or_else(|| ApiError::not_found(resources::PERSISTENT_VOLUME_LISTER, name))
    }

    fn csi_node(&self, name: &str) -> Result<Arc<CSINode>, ApiError> {
        self.lock()
            .cache
            .csi_nodes
            .get(name)
            .map(|node| Arc::new(node.clone()))
            .ok_or_else(|| ApiError::not_found(resources::CSI_NODE_LISTER, name))
    }

    fn volume_attachment(&self, name: &str) -> Result<Arc<VolumeAttachment>, ApiError> {
        self.lock()
            .cache
            .volume_attachments
            .get(name)
            .map(|va| Arc::new(va.clone()))
            .ok_or_else(|| ApiError::not_found(resources::VOLUME_ATTACHMENT_LISTER, name))
    }

    fn volume_attachments(&self) -> Result<Vec<Arc<VolumeAttachment>>, ApiError> {
        Ok(self
            .lock()
            .cache
            .volume_attachments
            .values()
            .map(|va| Arc::new(va.clone()))
            .collect())
    }
}

impl KubeClient for FakeKube {
    fn patch_volume_attachment<'a>(
        &'a self,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeAttachment, ApiError>> {
        Box::pin(async move { self.patch_va(name, merge_patch, "") })
    }

    fn patch_volume_attachment_status<'a>(
        &'a self,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeAttachment, ApiError>> {
        Box::pin(async move { self.patch_va(name, merge_patch, "status") })
    }

    fn json_patch_persistent_volume<'a>(
        &'a self,
        name: &'a str,
        json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(async move {
            let mut state = self.lock();
            Self::invoke(
                &mut state,
                Action::patch(
                    resource::PERSISTENT_VOLUMES,
                    name,
                    PatchType::Json,
                    json_patch.clone(),
                ),
            )?;
            let current = state
                .server
                .persistent_volumes
                .get(name)
                .ok_or_else(|| ApiError::not_found(resources::PERSISTENT_VOLUMES, name))?;
            let patched: PersistentVolume = patched(current, |doc| {
                apply_json_patch(doc, json_patch).map_err(|err| ApiError {
                    code: 422,
                    reason: "Invalid".into(),
                    message: err.to_string(),
                })
            })?;
            state
                .server
                .persistent_volumes
                .insert(name.to_string(), patched.clone());
            if state.write_through {
                state
                    .cache
                    .persistent_volumes
                    .insert(name.to_string(), patched.clone());
            }
            Ok(patched)
        })
    }

    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>> {
        Box::pin(async move {
            let mut state = self.lock();
            Self::invoke(&mut state, Action::get(resource::SECRETS, namespace, name))?;
            state
                .server
                .secrets
                .get(&(namespace.to_string(), name.to_string()))
                .cloned()
                .ok_or_else(|| ApiError::not_found(resources::SECRETS, name))
        })
    }
}
