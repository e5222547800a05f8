//! Every access to Kubernetes the sidecar makes, behind small traits: [`Listers`] (reads from
//! the shared watch caches) and [`SnapshotApi`] (GETs, JSON patches and status updates of
//! contents, and secrets through [`SecretGetter`]). Real implementations: [`StoreListers`]
//! and [`ApiClient`]; the tests implement them in memory.

use std::fmt;
use std::sync::Arc;

use csi_controller::{ApiError, PatchBody, Patcher, SecretGetter};
use csi_crd_types::{
    VolumeGroupSnapshotClass, VolumeGroupSnapshotContent, VolumeSnapshotClass,
    VolumeSnapshotContent,
};
use csi_kube::Store;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use serde_json::Value;

/// Reads from the watch caches. Objects are shared and must not be changed.
pub trait Listers: Send + Sync + fmt::Debug {
    /// A VolumeSnapshotContent by name.
    fn content(&self, name: &str) -> Option<Arc<VolumeSnapshotContent>>;
    /// A VolumeSnapshotClass by name.
    fn class(&self, name: &str) -> Option<Arc<VolumeSnapshotClass>>;
    /// A VolumeGroupSnapshotContent by name (`None` also with group snapshots off).
    fn group_content(&self, name: &str) -> Option<Arc<VolumeGroupSnapshotContent>>;
    /// A VolumeGroupSnapshotClass by name.
    fn group_class(&self, name: &str) -> Option<Arc<VolumeGroupSnapshotClass>>;
}

/// [`Listers`] over the shared caches.
#[derive(Clone, Debug)]
pub struct StoreListers {
    /// VolumeSnapshotContents (with `--node-deployment`: this node's).
    pub contents: Store<VolumeSnapshotContent>,
    /// VolumeSnapshotClasses.
    pub classes: Store<VolumeSnapshotClass>,
    /// VolumeGroupSnapshotContents, with group snapshots on.
    pub group_contents: Option<Store<VolumeGroupSnapshotContent>>,
    /// VolumeGroupSnapshotClasses, with group snapshots on.
    pub group_classes: Option<Store<VolumeGroupSnapshotClass>>,
}

impl Listers for StoreListers {
    fn content(&self, name: &str) -> Option<Arc<VolumeSnapshotContent>> {
        self.contents.get_key(name)
    }

    fn class(&self, name: &str) -> Option<Arc<VolumeSnapshotClass>> {
        self.classes.get_key(name)
    }

    fn group_content(&self, name: &str) -> Option<Arc<VolumeGroupSnapshotContent>> {
        self.group_contents.as_ref()?.get_key(name)
    }

    fn group_class(&self, name: &str) -> Option<Arc<VolumeGroupSnapshotClass>> {
        self.group_classes.as_ref()?.get_key(name)
    }
}

/// The sidecar's writes, and the reads it makes from the API server rather than the caches.
pub trait SnapshotApi: SecretGetter + Send + Sync + fmt::Debug {
    /// `GET volumesnapshotcontents/<name>`.
    fn get_content<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>>;

    /// `PATCH volumesnapshotcontents/<name>[/status]` with a JSON patch.
    fn patch_content<'a>(
        &'a self,
        name: &'a str,
        json_patch: &'a Value,
        status: bool,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>>;

    /// `PUT volumesnapshotcontents/<name>/status` (client-go's `UpdateStatus`): refused with
    /// a Conflict when `content`'s `resourceVersion` is not the stored one.
    fn update_content_status<'a>(
        &'a self,
        content: &'a VolumeSnapshotContent,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>>;

    /// `GET volumegroupsnapshotcontents/<name>`.
    fn get_group_content<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>>;

    /// `PATCH volumegroupsnapshotcontents/<name>[/status]` with a JSON patch.
    fn patch_group_content<'a>(
        &'a self,
        name: &'a str,
        json_patch: &'a Value,
        status: bool,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>>;

    /// `PUT volumegroupsnapshotcontents/<name>/status`.
    fn update_group_content_status<'a>(
        &'a self,
        content: &'a VolumeGroupSnapshotContent,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>>;
}

/// [`SnapshotApi`] over a `kube::Client`.
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

async fn patch<K>(
    patcher: &Patcher,
    name: &str,
    json_patch: &Value,
    status: bool,
) -> Result<K, ApiError>
where
    K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
{
    if status {
        patcher
            .patch_status(None, name, PatchBody::Json(json_patch))
            .await
    } else {
        patcher.patch(None, name, PatchBody::Json(json_patch)).await
    }
}

async fn replace_status<K>(client: &kube::Client, object: &K) -> Result<K, ApiError>
where
    K: kube::Resource<DynamicType = ()>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let name = object.meta().name.clone().unwrap_or_default();
    Ok(api
        .replace_status(&name, &PostParams::default(), object)
        .await?)
}

impl SnapshotApi for ApiClient {
    fn get_content<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move {
            let api: Api<VolumeSnapshotContent> = Api::all(self.client.clone());
            Ok(api.get(name).await?)
        })
    }

    fn patch_content<'a>(
        &'a self,
        name: &'a str,
        json_patch: &'a Value,
        status: bool,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(patch(&self.patcher, name, json_patch, status))
    }

    fn update_content_status<'a>(
        &'a self,
        content: &'a VolumeSnapshotContent,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(replace_status(&self.client, content))
    }

    fn get_group_content<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>> {
        Box::pin(async move {
            let api: Api<VolumeGroupSnapshotContent> = Api::all(self.client.clone());
            Ok(api.get(name).await?)
        })
    }

    fn patch_group_content<'a>(
        &'a self,
        name: &'a str,
        json_patch: &'a Value,
        status: bool,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>> {
        Box::pin(patch(&self.patcher, name, json_patch, status))
    }

    fn update_group_content_status<'a>(
        &'a self,
        content: &'a VolumeGroupSnapshotContent,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>> {
        Box::pin(replace_status(&self.client, content))
    }
}
