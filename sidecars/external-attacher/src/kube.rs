//! Every access to Kubernetes the attacher makes, behind two small traits:
//!
//! - [`KubeListers`], the *lister* side: synchronous reads of PersistentVolumes, CSINodes and
//!   VolumeAttachments from watch caches (upstream's informer listers);
//! - [`KubeClient`], the *client* side: the writes, all PATCHes exactly as upstream sends them
//!   (JSON merge patches of VolumeAttachments and their status, JSON patches of PersistentVolume
//!   finalizers), and the direct GET of publish secrets.
//!
//! Real implementations: [`StoreListers`] over the shared watch caches' [`Store`]s and
//! [`ApiClient`] over [`kube::Api`]. The in-memory fake is in [`crate::fake`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use csi_kube::Store;
use k8s_openapi::api::core::v1::{PersistentVolume, Secret};
use k8s_openapi::api::storage::v1::{CSINode, VolumeAttachment};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;

/// A boxed, `Send` future: what the traits of this crate return, so that they can be used as
/// trait objects (`Arc<dyn KubeClient>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The resource names used in error messages, as client-go spells them.
pub mod resources {
    /// What the PersistentVolume lister reports (`v1.Resource("persistentvolume")`).
    pub const PERSISTENT_VOLUME_LISTER: &str = "persistentvolume";
    /// What the CSINode lister reports (`storagev1.Resource("csinode")`).
    pub const CSI_NODE_LISTER: &str = "csinode.storage.k8s.io";
    /// What the VolumeAttachment lister reports (`storagev1.Resource("volumeattachment")`).
    pub const VOLUME_ATTACHMENT_LISTER: &str = "volumeattachment.storage.k8s.io";
    /// PersistentVolumes, as the API server names them.
    pub const PERSISTENT_VOLUMES: &str = "persistentvolumes";
    /// VolumeAttachments, as the API server names them.
    pub const VOLUME_ATTACHMENTS: &str = "volumeattachments.storage.k8s.io";
    /// Secrets, as the API server names them.
    pub const SECRETS: &str = "secrets";
}

/// An error from the API server or a cache, with the API server's (or client-go's) message,
/// which upstream stores verbatim in `attachError` / `detachError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status code (0 when the request never got an answer).
    pub code: u16,
    /// The machine-readable reason (`NotFound`, `Forbidden`, ...), empty when unknown.
    pub reason: String,
    /// The human-readable message.
    pub message: String,
}

impl ApiError {
    /// client-go's `NewNotFound`: `<resource> "<name>" not found`.
    pub fn not_found(qualified_resource: &str, name: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound".into(),
            message: format!("{qualified_resource} {name:?} not found"),
        }
    }

    /// client-go's `NewForbidden`: `<resource> "<name>" is forbidden: <err>`.
    pub fn forbidden(qualified_resource: &str, name: &str, err: &str) -> Self {
        ApiError {
            code: 403,
            reason: "Forbidden".into(),
            message: format!("{qualified_resource} {name:?} is forbidden: {err}"),
        }
    }

    /// An error that is not an API status (transport, encoding, ...).
    pub fn other(message: impl Into<String>) -> Self {
        ApiError {
            code: 0,
            reason: String::new(),
            message: message.into(),
        }
    }

    /// Whether this is a 404 (`apierrors.IsNotFound`).
    pub fn is_not_found(&self) -> bool {
        self.code == 404 || self.reason == "NotFound"
    }
}

impl From<kube::Error> for ApiError {
    fn from(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => ApiError {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            other => ApiError::other(other.to_string()),
        }
    }
}

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

/// The client side: writes (PATCH only, never update/replace: trap 4) and secret reads.
pub trait KubeClient: Send + Sync + fmt::Debug {
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

    /// `GET secrets/<name>` in `namespace`, from the API server (secrets are not cached).
    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>>;
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
#[derive(Clone)]
pub struct ApiClient {
    client: kube::Client,
    params: PatchParams,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("field_manager", &self.params.field_manager)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client that sends patches without a field manager (the API server then derives one
    /// from the user agent, as for client-go).
    pub fn new(client: kube::Client) -> Self {
        ApiClient {
            client,
            params: PatchParams::default(),
        }
    }

    /// Sends `fieldManager=<name>` with every patch.
    pub fn with_field_manager(mut self, name: impl Into<String>) -> Self {
        self.params.field_manager = Some(name.into());
        self
    }
}

impl KubeClient for ApiClient {
    fn patch_volume_attachment<'a>(
        &'a self,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeAttachment, ApiError>> {
        Box::pin(async move {
            let api: Api<VolumeAttachment> = Api::all(self.client.clone());
            Ok(api
                .patch(name, &self.params, &Patch::Merge(merge_patch))
                .await?)
        })
    }

    fn patch_volume_attachment_status<'a>(
        &'a self,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeAttachment, ApiError>> {
        Box::pin(async move {
            let api: Api<VolumeAttachment> = Api::all(self.client.clone());
            Ok(api
                .patch_status(name, &self.params, &Patch::Merge(merge_patch))
                .await?)
        })
    }

    fn json_patch_persistent_volume<'a>(
        &'a self,
        name: &'a str,
        json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(async move {
            // kube's typed `Patch::Json` needs its `jsonpatch` feature and the json-patch
            // types; the request is simple enough to send as it is.
            let mut url = format!("/api/v1/persistentvolumes/{}", escape_path(name));
            if let Some(manager) = &self.params.field_manager {
                url.push_str("?fieldManager=");
                url.push_str(&escape_path(manager));
            }
            let body = serde_json::to_vec(json_patch)
                .map_err(|err| ApiError::other(format!("failed to encode JSON patch: {err}")))?;
            let request = http::Request::patch(url)
                .header(http::header::CONTENT_TYPE, "application/json-patch+json")
                .header(http::header::ACCEPT, "application/json")
                .body(body)
                .map_err(|err| ApiError::other(format!("failed to build request: {err}")))?;
            Ok(self.client.request::<PersistentVolume>(request).await?)
        })
    }

    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>> {
        Box::pin(async move {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            Ok(api.get(name).await?)
        })
    }
}

/// Percent-encodes everything but unreserved URL characters.
fn escape_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_client_go() {
        assert_eq!(
            ApiError::not_found(resources::PERSISTENT_VOLUME_LISTER, "pv1").to_string(),
            "persistentvolume \"pv1\" not found"
        );
        assert_eq!(
            ApiError::not_found(resources::CSI_NODE_LISTER, "node1").to_string(),
            "csinode.storage.k8s.io \"node1\" not found"
        );
        assert_eq!(
            ApiError::forbidden(resources::VOLUME_ATTACHMENTS, "pv1-node1", "Mock error")
                .to_string(),
            "volumeattachments.storage.k8s.io \"pv1-node1\" is forbidden: Mock error"
        );
        assert!(ApiError::not_found("x", "y").is_not_found());
        assert!(!ApiError::forbidden("x", "y", "z").is_not_found());
    }

    #[test]
    fn escapes_path_segments() {
        assert_eq!(escape_path("pv-1.a_b~"), "pv-1.a_b~");
        assert_eq!(escape_path("a/b c"), "a%2Fb%20c");
    }
}
