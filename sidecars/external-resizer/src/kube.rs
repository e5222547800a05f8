//! What both controllers share of Kubernetes: [`ApiClient`], the one client behind expansion's
//! [`ResizerApi`] and modification's [`ModifyApi`], and the `resourceVersion` check of their
//! PVC status patches ([`add_resource_version_check`]).

use std::fmt;

use csi_controller::{ApiError, PatchBody, Patcher, SecretGetter};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::modify::kube::ModifyApi;
use crate::resize::kube::ResizerApi;

/// [`ResizerApi`] and [`ModifyApi`] over a `kube::Client`.
#[derive(Clone)]
pub struct ApiClient {
    client: kube::Client,
    patcher: Patcher,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient").finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client sending through `client`.
    pub fn new(client: kube::Client) -> Self {
        ApiClient {
            patcher: Patcher::new(client.clone()),
            client,
        }
    }

    /// `PATCH persistentvolumeclaims/<name>/status` in `namespace`.
    async fn patch_claim_status(
        &self,
        namespace: &str,
        name: &str,
        patch: PatchBody<'_>,
    ) -> Result<PersistentVolumeClaim, ApiError> {
        self.patcher
            .patch_status(Some(namespace), name, patch)
            .await
    }

    /// `PATCH persistentvolumes/<name>` with a strategic merge patch.
    async fn patch_volume(
        &self,
        name: &str,
        strategic_patch: &Value,
    ) -> Result<PersistentVolume, ApiError> {
        self.patcher
            .patch(None, name, PatchBody::Strategic(strategic_patch))
            .await
    }
}

impl SecretGetter for ApiClient {
    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>> {
        self.client.get_secret(namespace, name)
    }
}

impl ResizerApi for ApiClient {
    fn patch_claim_status<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        Box::pin(ApiClient::patch_claim_status(
            self,
            namespace,
            name,
            PatchBody::Merge(merge_patch),
        ))
    }

    fn patch_volume<'a>(
        &'a self,
        name: &'a str,
        strategic_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(ApiClient::patch_volume(self, name, strategic_patch))
    }
}

impl ModifyApi for ApiClient {
    fn patch_claim_status<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        strategic_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        Box::pin(ApiClient::patch_claim_status(
            self,
            namespace,
            name,
            PatchBody::Strategic(strategic_patch),
        ))
    }

    fn patch_volume<'a>(
        &'a self,
        name: &'a str,
        strategic_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(ApiClient::patch_volume(self, name, strategic_patch))
    }
}

/// Sets `metadata.resourceVersion` of the object `patch` to `old`'s (upstream's
/// `GetPVCPatchData` with `addResourceVersionCheck`), so that the API server refuses the
/// patch with a Conflict if the object changed since `old` was read.
pub fn add_resource_version_check(patch: &mut Value, old: &ObjectMeta) {
    if let Value::Object(map) = patch {
        let metadata = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(metadata) = metadata {
            metadata.insert(
                "resourceVersion".into(),
                Value::String(old.resource_version.clone().unwrap_or_default()),
            );
        }
    }
}
