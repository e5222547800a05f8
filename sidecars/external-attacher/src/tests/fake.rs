//! [`FakeKube`]: the attacher's [`KubeListers`] and [`KubeClient`] over the generic fake API
//! of `csi-test-support` ([`FakeApi`]), with typed helpers for the objects the attacher's
//! tests set up.

use std::sync::Arc;

use csi_controller::SecretGetter;
use csi_test_support::fake_api::FakeApi;
pub use csi_test_support::fake_api::{Action, PatchType, Reactor, Verb};
use k8s_openapi::api::core::v1::{PersistentVolume, Secret};
use k8s_openapi::api::storage::v1::{CSINode, VolumeAttachment};
use serde_json::Value;

use futures::future::BoxFuture;

use crate::kube::{ApiError, KubeClient, KubeListers, resources};

/// The resource names in recorded actions.
pub mod resource {
    /// VolumeAttachments.
    pub const VOLUME_ATTACHMENTS: &str = "volumeattachments";
    /// PersistentVolumes.
    pub const PERSISTENT_VOLUMES: &str = "persistentvolumes";
    /// Secrets.
    pub const SECRETS: &str = "secrets";
}

/// The attacher's view of a [`FakeApi`]. Clones share the same state.
#[derive(Clone, Debug, Default)]
pub struct FakeKube {
    api: FakeApi,
}

impl FakeKube {
    /// An empty fake.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a PersistentVolume to the server and the cache.
    pub fn add_persistent_volume(&self, pv: PersistentVolume) {
        self.api.add(&pv);
    }

    /// Adds a VolumeAttachment to the server and the cache.
    pub fn add_volume_attachment(&self, va: VolumeAttachment) {
        self.api.add(&va);
    }

    /// Deletes a VolumeAttachment from the server and the cache.
    pub fn remove_volume_attachment(&self, name: &str) {
        self.api.remove_from_server::<VolumeAttachment>("", name);
        self.api.remove_from_cache::<VolumeAttachment>("", name);
    }

    /// Adds a CSINode to the cache (the attacher never reads CSINodes from the server).
    pub fn add_csi_node(&self, csi_node: CSINode) {
        self.api.add_to_cache(&csi_node);
    }

    /// Adds a Secret to the server (secrets are not cached).
    pub fn add_secret(&self, secret: Secret) {
        self.api.add_to_server(&secret);
    }

    /// Whether writes also update the cache (default: no, as in upstream's tests).
    pub fn set_write_through(&self, write_through: bool) {
        self.api.set_write_through(write_through);
    }

    /// Adds a reactor before all others (client-go's `PrependReactor`).
    pub fn prepend_reactor(
        &self,
        verb: Verb,
        resource: &str,
        react: impl FnMut(&Action) -> Option<ApiError> + Send + 'static,
    ) {
        self.api.prepend_reactor(verb, resource, react);
    }

    /// Every client call so far, oldest first.
    pub fn actions(&self) -> Vec<Action> {
        self.api.actions()
    }

    /// How many client calls so far.
    pub fn action_count(&self) -> usize {
        self.api.action_count()
    }

    /// Forgets the recorded calls.
    pub fn clear_actions(&self) {
        self.api.clear_actions();
    }

    /// The server's copy of a VolumeAttachment.
    pub fn server_volume_attachment(&self, name: &str) -> Option<VolumeAttachment> {
        self.api.server_object("", name)
    }

    /// The server's copy of a PersistentVolume.
    pub fn server_persistent_volume(&self, name: &str) -> Option<PersistentVolume> {
        self.api.server_object("", name)
    }
}

impl KubeListers for FakeKube {
    fn persistent_volume(&self, name: &str) -> Result<Arc<PersistentVolume>, ApiError> {
        self.api
            .cached("", name)
            .map(Arc::new)
            .ok_or_else(|| ApiError::not_found(resources::PERSISTENT_VOLUME_LISTER, name))
    }

    fn csi_node(&self, name: &str) -> Result<Arc<CSINode>, ApiError> {
        self.api
            .cached("", name)
            .map(Arc::new)
            .ok_or_else(|| ApiError::not_found(resources::CSI_NODE_LISTER, name))
    }

    fn volume_attachment(&self, name: &str) -> Result<Arc<VolumeAttachment>, ApiError> {
        self.api
            .cached("", name)
            .map(Arc::new)
            .ok_or_else(|| ApiError::not_found(resources::VOLUME_ATTACHMENT_LISTER, name))
    }

    fn volume_attachments(&self) -> Result<Vec<Arc<VolumeAttachment>>, ApiError> {
        Ok(self.api.cached_list().into_iter().map(Arc::new).collect())
    }
}

impl SecretGetter for FakeKube {
    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>> {
        Box::pin(async move { self.api.get(namespace, name) })
    }
}

impl KubeClient for FakeKube {
    fn patch_volume_attachment<'a>(
        &'a self,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeAttachment, ApiError>> {
        Box::pin(async move { self.api.patch("", name, "", PatchType::Merge, merge_patch) })
    }

    fn patch_volume_attachment_status<'a>(
        &'a self,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeAttachment, ApiError>> {
        Box::pin(async move {
            self.api
                .patch("", name, "status", PatchType::Merge, merge_patch)
        })
    }

    fn json_patch_persistent_volume<'a>(
        &'a self,
        name: &'a str,
        json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(async move { self.api.patch("", name, "", PatchType::Json, json_patch) })
    }
}
