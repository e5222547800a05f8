//! Every access to Kubernetes the attacher makes, behind two small traits:
//!
//! - [`KubeListers`], the *lister* side: synchronous reads of PersistentVolumes, CSINodes and
//!   VolumeAttachments from watch caches (upstream's informer listers);
//! - [`KubeClient`], the *client* side: the writes, all PATCHes exactly as upstream sends them
//!   (JSON merge patches of VolumeAttachments and their status, JSON patches of PersistentVolume
//!   finalizers), and (through the toolkit's [`SecretGetter`]) the direct GET of publish
//!   secrets.
//!
//! Real implementations: [`StoreListers`] over the shared watch caches' [`Store`]s and
//! [`ApiClient`] over the toolkit's [`Patcher`]. The tests implement both traits over the
//! fake API of `csi-test-support`.

use std::fmt;
use std::sync::Arc;

pub use csi_controller::{ApiError, resources};
use csi_controller::{PatchBody, Patcher, SecretGetter};
use csi_kube::Store;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, Secret};
use k8s_openapi::api::storage::v1::{CSINode, VolumeAttachment};
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;

/// The lister side: reads from watch caches. Objects are shared (`Arc`) and must not be
/// changed; a read never goes to the API server in the real implementation.
///
/// A missing object is an [`ApiError::not_found`] with client-go's lister resource names
/// ([`resources`]), because upstream stores that message in `attachError`.
pub trait KubeListers: Send + Sync + fmt::Debug {
    /// A PersistentVolume by name.
    fn persistent_volume(&self, name: &str) -> Result<Arc<PersistentVolume>, ApiError>;
    /// A CSINode by name (= node name).
    fn csi_node(&self, name: &str) -> Result<Arc<CSINode>, ApiError>;
    /// A VolumeAttachment by name.
    fn volume_attachment(&self, name: &str) -> Result<Arc<VolumeAttachment>, ApiError>;
    /// Every cached VolumeAttachment.
    fn volume_attachments(&self) -> Result<Vec<Arc<VolumeAttachment>>, ApiError>;
}

/// The client side: writes and secret reads. Writes are PATCHes only, never update/replace:
/// k8s-openapi drops the fields it does not know, so a replaced object would lose them.
pub trait KubeClient: SecretGetter + Send + Sync + fmt::Debug {
    /// `PATCH volumeattachments/<name>` with a JSON merge patch; returns the patched object.
    fn patch_volume_attachment<'a>(
        &'a self,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeAttachment, ApiError>>;

    /// `PATCH volumeattachments/<name>/status` with a JSON merge patch; returns the patched
    /// object.
    fn patch_volume_attachment_status<'a>(
        &'a self,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeAttachment, ApiError>>;

    /// `PATCH persistentvolumes/<name>` with a JSON patch (RFC 6902); returns the patched
    /// object.
    fn json_patch_persistent_volume<'a>(
        &'a self,
        name: &'a str,
        json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>>;
}

/// [`KubeListers`] over the process's shared watch caches.
///
/// The CSINode store is optional: only the CSI handler reads CSINodes (upstream watches them
/// only then). Without it every CSINode is "not found".
#[derive(Clone)]
pub struct StoreListers {
    persistent_volumes: Store<PersistentVolume>,
    volume_attachments: Store<VolumeAttachment>,
    csi_nodes: Option<Store<CSINode>>,
}

impl StoreListers {
    /// Listers over the given stores.
    pub fn new(
        persistent_volumes: Store<PersistentVolume>,
        volume_attachments: Store<VolumeAttachment>,
        csi_nodes: Option<Store<CSINode>>,
    ) -> Self {
        StoreListers {
            persistent_volumes,
            volume_attachments,
            csi_nodes,
        }
    }
}

impl fmt::Debug for StoreListers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the caches' contents.
        f.debug_struct("StoreListers")
            .field("csi_nodes", &self.csi_nodes.is_some())
            .finish_non_exhaustive()
    }
}

impl KubeListers for StoreListers {
    fn persistent_volume(&self, name: &str) -> Result<Arc<PersistentVolume>, ApiError> {
        self.persistent_volumes
            .get(&ObjectRef::new(name))
            .ok_or_else(|| ApiError::not_found(resources::PERSISTENT_VOLUME_LISTER, name))
    }

    fn csi_node(&self, name: &str) -> Result<Arc<CSINode>, ApiError> {
        self.csi_nodes
            .as_ref()
            .and_then(|store| store.get(&ObjectRef::new(name)))
            .ok_or_else(|| ApiError::not_found(resources::CSI_NODE_LISTER, name))
    }

    fn volume_attachment(&self, name: &str) -> Result<Arc<VolumeAttachment>, ApiError> {
        self.volume_attachments
            .get(&ObjectRef::new(name))
            .ok_or_else(|| ApiError::not_found(resources::VOLUME_ATTACHMENT_LISTER, name))
    }

    fn volume_attachments(&self) -> Result<Vec<Arc<VolumeAttachment>>, ApiError> {
        Ok(self.volume_attachments.state())
    }
}

/// [`KubeClient`] over a [`kube::Client`].
#[derive(Clone, Debug)]
pub struct ApiClient {
    patcher: Patcher,
}

impl ApiClient {
    /// A client that sends patches without a field manager (the API server then derives one
    /// from the user agent, as for client-go).
    pub fn new(client: kube::Client) -> Self {
        ApiClient {
            patcher: Patcher::new(client),
        }
    }

    /// Sends `fieldManager=<name>` with every patch.
    pub fn with_field_manager(mut self, name: impl Into<String>) -> Self {
        self.patcher = self.patcher.with_field_manager(name);
        self
    }
}

impl SecretGetter for ApiClient {
    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>> {
        self.patcher.client().get_secret(namespace, name)
    }
}

impl KubeClient for ApiClient {
    fn patch_volume_attachment<'a>(
        &'a self,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeAttachment, ApiError>> {
        Box::pin(
            self.patcher
                .patch(None, name, PatchBody::Merge(merge_patch)),
        )
    }

    fn patch_volume_attachment_status<'a>(
        &'a self,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeAttachment, ApiError>> {
        Box::pin(
            self.patcher
                .patch_status(None, name, PatchBody::Merge(merge_patch)),
        )
    }

    fn json_patch_persistent_volume<'a>(
        &'a self,
        name: &'a str,
        json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(self.patcher.patch(None, name, PatchBody::Json(json_patch)))
    }
}
