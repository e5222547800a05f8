//! What the controller asks of the API server ([`SnapshotApi`]) and reads from the shared
//! caches ([`Listers`]), as traits so that the ported upstream tables run against fakes.
//!
//! Writes follow upstream's verbs: VolumeSnapshots are updated (`PUT`, the status through the
//! `status` subresource) or JSON-patched, contents created, JSON-patched and deleted, PVCs
//! updated (upstream's RBAC allows no PVC patch): only their finalizers change, on the object
//! as the API server has it, so that fields this binary's types do not know are kept.

use std::fmt::Debug;
use std::sync::Arc;

use csi_controller::{ApiError, PatchBody, Patcher};
use csi_crd_types::group_snapshot::v1::{VolumeGroupSnapshot, VolumeGroupSnapshotContent};
use csi_crd_types::snapshot::v1::{VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent};
use csi_kube::Store;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, PostParams};
use serde_json::Value;

/// The API server, as the controller uses it.
pub trait SnapshotApi: Send + Sync + Debug {
    /// `GET volumesnapshots/<name>` in `namespace`.
    fn get_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>>;
    /// `PUT` a VolumeSnapshot.
    fn update_snapshot<'a>(
        &'a self,
        snapshot: &'a VolumeSnapshot,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>>;
    /// `PUT` a VolumeSnapshot's status.
    fn update_snapshot_status<'a>(
        &'a self,
        snapshot: &'a VolumeSnapshot,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>>;
    /// JSON-patch a VolumeSnapshot.
    fn patch_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>>;
    /// `POST` a VolumeSnapshotContent.
    fn create_content<'a>(
        &'a self,
        content: &'a VolumeSnapshotContent,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>>;
    /// JSON-patch a VolumeSnapshotContent.
    fn patch_content<'a>(
        &'a self,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>>;
    /// `DELETE` a VolumeSnapshotContent.
    fn delete_content<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ApiError>>;
    /// `GET persistentvolumes/<name>`.
    fn get_pv<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<PersistentVolume, ApiError>>;
    /// `GET persistentvolumeclaims/<name>` in `namespace`.
    fn get_pvc<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>>;
    /// `PUT` a PVC's finalizers (the rest of the object as the API server has it, at the
    /// PVC's resource version: a conflict when it changed).
    fn update_pvc<'a>(
        &'a self,
        pvc: &'a PersistentVolumeClaim,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>>;
}

/// [`SnapshotApi`] over a kube client.
#[derive(Clone)]
pub struct KubeApi {
    client: kube::Client,
    patcher: Patcher,
}

impl Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi").finish_non_exhaustive()
    }
}

impl KubeApi {
    /// Uses `client` for every request.
    pub fn new(client: kube::Client) -> Self {
        KubeApi {
            patcher: Patcher::new(client.clone()),
            client,
        }
    }

    fn snapshots(&self, namespace: &str) -> Api<VolumeSnapshot> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

impl SnapshotApi for KubeApi {
    fn get_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move { Ok(self.snapshots(namespace).get(name).await?) })
    }

    fn update_snapshot<'a>(
        &'a self,
        snapshot: &'a VolumeSnapshot,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            let api = self.snapshots(snapshot.metadata.namespace.as_deref().unwrap_or_default());
            Ok(api
                .replace(
                    name_of(&snapshot.metadata),
                    &PostParams::default(),
                    snapshot,
                )
                .await?)
        })
    }

    fn update_snapshot_status<'a>(
        &'a self,
        snapshot: &'a VolumeSnapshot,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            let api = self.snapshots(snapshot.metadata.namespace.as_deref().unwrap_or_default());
            Ok(api
                .replace_status(
                    name_of(&snapshot.metadata),
                    &PostParams::default(),
                    snapshot,
                )
                .await?)
        })
    }

    fn patch_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            self.patcher
                .patch(Some(namespace), name, PatchBody::Json(patch))
                .await
        })
    }

    fn create_content<'a>(
        &'a self,
        content: &'a VolumeSnapshotContent,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move {
            let api: Api<VolumeSnapshotContent> = Api::all(self.client.clone());
            Ok(api.create(&PostParams::default(), content).await?)
        })
    }

    fn patch_content<'a>(
        &'a self,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move { self.patcher.patch(None, name, PatchBody::Json(patch)).await })
    }

    fn delete_content<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let api: Api<VolumeSnapshotContent> = Api::all(self.client.clone());
            api.delete(name, &DeleteParams::default()).await?;
            Ok(())
        })
    }

    fn get_pv<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(async move {
            let api: Api<PersistentVolume> = Api::all(self.client.clone());
            Ok(api.get(name).await?)
        })
    }

    fn get_pvc<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        Box::pin(async move {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
            Ok(api.get(name).await?)
        })
    }

    fn update_pvc<'a>(
        &'a self,
        pvc: &'a PersistentVolumeClaim,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        Box::pin(async move {
            // The object as the API server has it (every field, known to this binary or
            // not), with the PVC's finalizers and resource version.
            let resource = ApiResource::erase::<PersistentVolumeClaim>(&());
            let ns = pvc.metadata.namespace.as_deref().unwrap_or_default();
            let pvc_name = name_of(&pvc.metadata);
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &resource);
            let mut current = api.get(pvc_name).await?;
            current.metadata.finalizers = pvc.metadata.finalizers.clone();
            current.metadata.resource_version = pvc.metadata.resource_version.clone();
            let updated = api
                .replace(pvc_name, &PostParams::default(), &current)
                .await?;
            serde_json::to_value(updated)
                .and_then(serde_json::from_value)
                .map_err(|e| ApiError::other(format!("failed to decode PVC: {e}")))
        })
    }
}

/// What the controller reads from the shared caches (upstream's listers).
pub trait Listers: Send + Sync {
    /// A VolumeSnapshot as the watch last saw it.
    fn snapshot(&self, namespace: &str, name: &str) -> Option<Arc<VolumeSnapshot>>;
    /// The VolumeSnapshots of a namespace.
    fn snapshots_in(&self, namespace: &str) -> Vec<Arc<VolumeSnapshot>>;
    /// A VolumeSnapshotContent as the watch last saw it.
    fn content(&self, name: &str) -> Option<Arc<VolumeSnapshotContent>>;
    /// A VolumeSnapshotClass.
    fn class(&self, name: &str) -> Option<Arc<VolumeSnapshotClass>>;
    /// Every VolumeSnapshotClass.
    fn classes(&self) -> Vec<Arc<VolumeSnapshotClass>>;
    /// A PVC.
    fn pvc(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>>;
    /// The PVCs of a namespace.
    fn pvcs_in(&self, namespace: &str) -> Vec<Arc<PersistentVolumeClaim>>;
    /// Every Node (empty without distributed snapshotting).
    fn nodes(&self) -> Vec<Arc<Node>>;
    /// A VolumeGroupSnapshot (`None` also when group snapshots are off).
    fn group_snapshot(&self, namespace: &str, name: &str) -> Option<Arc<VolumeGroupSnapshot>>;
    /// Every VolumeGroupSnapshotContent (empty when group snapshots are off).
    fn group_contents(&self) -> Vec<Arc<VolumeGroupSnapshotContent>>;
}

/// The index of namespaced caches by namespace (client-go's `NamespaceIndex`).
pub const NAMESPACE_INDEX: &str = "namespace";

/// [`Listers`] over the process's shared caches.
#[derive(Clone)]
pub struct CacheListers {
    /// VolumeSnapshots (indexed by namespace and by group membership).
    pub snapshots: Store<VolumeSnapshot>,
    /// VolumeSnapshotContents.
    pub contents: Store<VolumeSnapshotContent>,
    /// VolumeSnapshotClasses.
    pub classes: Store<VolumeSnapshotClass>,
    /// PVCs (indexed by namespace).
    pub pvcs: Store<PersistentVolumeClaim>,
    /// Nodes, with distributed snapshotting.
    pub nodes: Option<Store<Node>>,
    /// VolumeGroupSnapshots, when group snapshots are on.
    pub group_snapshots: Option<Store<VolumeGroupSnapshot>>,
    /// VolumeGroupSnapshotContents, when group snapshots are on.
    pub group_contents: Option<Store<VolumeGroupSnapshotContent>>,
}

impl std::fmt::Debug for CacheListers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheListers").finish_non_exhaustive()
    }
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl Listers for CacheListers {
    fn snapshot(&self, namespace: &str, name: &str) -> Option<Arc<VolumeSnapshot>> {
        self.snapshots.get_key(&key(namespace, name))
    }

    fn snapshots_in(&self, namespace: &str) -> Vec<Arc<VolumeSnapshot>> {
        self.snapshots
            .by_index(NAMESPACE_INDEX, namespace)
            .unwrap_or_default()
    }

    fn content(&self, name: &str) -> Option<Arc<VolumeSnapshotContent>> {
        self.contents.get_key(name)
    }

    fn class(&self, name: &str) -> Option<Arc<VolumeSnapshotClass>> {
        self.classes.get_key(name)
    }

    fn classes(&self) -> Vec<Arc<VolumeSnapshotClass>> {
        self.classes.state()
    }

    fn pvc(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.pvcs.get_key(&key(namespace, name))
    }

    fn pvcs_in(&self, namespace: &str) -> Vec<Arc<PersistentVolumeClaim>> {
        self.pvcs
            .by_index(NAMESPACE_INDEX, namespace)
            .unwrap_or_default()
    }

    fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.as_ref().map(Store::state).unwrap_or_default()
    }

    fn group_snapshot(&self, namespace: &str, name: &str) -> Option<Arc<VolumeGroupSnapshot>> {
        self.group_snapshots
            .as_ref()
            .and_then(|s| s.get_key(&key(namespace, name)))
    }

    fn group_contents(&self) -> Vec<Arc<VolumeGroupSnapshotContent>> {
        self.group_contents
            .as_ref()
            .map(Store::state)
            .unwrap_or_default()
    }
}
