//! What the group half asks of the API server ([`GroupApi`]) and reads from the shared caches
//! ([`GroupListers`]), as traits so that upstream's group tables run against fakes.
//!
//! The verbs are upstream's: VolumeGroupSnapshots are read, updated (`PUT`, the status through
//! the `status` subresource) and JSON-patched; group contents created, JSON-patched and
//! deleted; member VolumeSnapshots created, read, deleted and bound through a JSON patch of
//! their `status`; member contents created, read, JSON-patched (spec and `status`); claims
//! listed by label.

use std::fmt::Debug;
use std::sync::Arc;

use csi_controller::{ApiError, PatchBody, Patcher};
use csi_crd_types::group_snapshot::v1::{
    VolumeGroupSnapshot, VolumeGroupSnapshotClass, VolumeGroupSnapshotContent,
};
use csi_crd_types::snapshot::v1::{VolumeSnapshot, VolumeSnapshotContent};
use csi_kube::Store;
use csi_snapshot_utils as utils;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::Value;

/// The API server, as the group half uses it.
pub trait GroupApi: Send + Sync + Debug {
    /// `GET volumegroupsnapshots/<name>` in `namespace`.
    fn get_group_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshot, ApiError>>;
    /// `PUT` a VolumeGroupSnapshot.
    fn update_group_snapshot<'a>(
        &'a self,
        group: &'a VolumeGroupSnapshot,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshot, ApiError>>;
    /// `PUT` a VolumeGroupSnapshot's status.
    fn update_group_snapshot_status<'a>(
        &'a self,
        group: &'a VolumeGroupSnapshot,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshot, ApiError>>;
    /// JSON-patch a VolumeGroupSnapshot.
    fn patch_group_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshot, ApiError>>;
    /// `POST` a VolumeGroupSnapshotContent.
    fn create_group_content<'a>(
        &'a self,
        content: &'a VolumeGroupSnapshotContent,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>>;
    /// JSON-patch a VolumeGroupSnapshotContent.
    fn patch_group_content<'a>(
        &'a self,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>>;
    /// `DELETE` a VolumeGroupSnapshotContent.
    fn delete_group_content<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ApiError>>;
    /// `POST` a VolumeSnapshot.
    fn create_snapshot<'a>(
        &'a self,
        snapshot: &'a VolumeSnapshot,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>>;
    /// `GET volumesnapshots/<name>` in `namespace`.
    fn get_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>>;
    /// `DELETE` a VolumeSnapshot.
    fn delete_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
    /// JSON-patch a VolumeSnapshot's `status` subresource.
    fn patch_snapshot_status<'a>(
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
    /// `GET volumesnapshotcontents/<name>`.
    fn get_content<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>>;
    /// JSON-patch a VolumeSnapshotContent.
    fn patch_content<'a>(
        &'a self,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>>;
    /// JSON-patch a VolumeSnapshotContent's `status` subresource.
    fn patch_content_status<'a>(
        &'a self,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>>;
    /// `GET persistentvolumeclaims?labelSelector=<selector>` in `namespace`.
    fn list_pvcs<'a>(
        &'a self,
        namespace: &'a str,
        label_selector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PersistentVolumeClaim>, ApiError>>;
    /// `GET persistentvolumes/<name>`.
    fn get_pv<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<PersistentVolume, ApiError>>;
}

/// [`GroupApi`] over a kube client.
#[derive(Clone)]
pub struct KubeGroupApi {
    client: kube::Client,
    patcher: Patcher,
}

impl Debug for KubeGroupApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeGroupApi").finish_non_exhaustive()
    }
}

impl KubeGroupApi {
    /// Uses `client` for every request.
    pub fn new(client: kube::Client) -> Self {
        KubeGroupApi {
            patcher: Patcher::new(client.clone()),
            client,
        }
    }

    fn group_snapshots(&self, namespace: &str) -> Api<VolumeGroupSnapshot> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or_default()
}

impl GroupApi for KubeGroupApi {
    fn get_group_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshot, ApiError>> {
        Box::pin(async move { Ok(self.group_snapshots(namespace).get(name).await?) })
    }

    fn update_group_snapshot<'a>(
        &'a self,
        group: &'a VolumeGroupSnapshot,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshot, ApiError>> {
        Box::pin(async move {
            Ok(self
                .group_snapshots(namespace_of(&group.metadata))
                .replace(name_of(&group.metadata), &PostParams::default(), group)
                .await?)
        })
    }

    fn update_group_snapshot_status<'a>(
        &'a self,
        group: &'a VolumeGroupSnapshot,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshot, ApiError>> {
        Box::pin(async move {
            Ok(self
                .group_snapshots(namespace_of(&group.metadata))
                .replace_status(name_of(&group.metadata), &PostParams::default(), group)
                .await?)
        })
    }

    fn patch_group_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshot, ApiError>> {
        Box::pin(async move {
            self.patcher
                .patch(Some(namespace), name, PatchBody::Json(patch))
                .await
        })
    }

    fn create_group_content<'a>(
        &'a self,
        content: &'a VolumeGroupSnapshotContent,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>> {
        Box::pin(async move {
            let api: Api<VolumeGroupSnapshotContent> = Api::all(self.client.clone());
            Ok(api.create(&PostParams::default(), content).await?)
        })
    }

    fn patch_group_content<'a>(
        &'a self,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>> {
        Box::pin(async move { self.patcher.patch(None, name, PatchBody::Json(patch)).await })
    }

    fn delete_group_content<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let api: Api<VolumeGroupSnapshotContent> = Api::all(self.client.clone());
            api.delete(name, &DeleteParams::default()).await?;
            Ok(())
        })
    }

    fn create_snapshot<'a>(
        &'a self,
        snapshot: &'a VolumeSnapshot,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            let api: Api<VolumeSnapshot> =
                Api::namespaced(self.client.clone(), namespace_of(&snapshot.metadata));
            Ok(api.create(&PostParams::default(), snapshot).await?)
        })
    }

    fn get_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            let api: Api<VolumeSnapshot> = Api::namespaced(self.client.clone(), namespace);
            Ok(api.get(name).await?)
        })
    }

    fn delete_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let api: Api<VolumeSnapshot> = Api::namespaced(self.client.clone(), namespace);
            api.delete(name, &DeleteParams::default()).await?;
            Ok(())
        })
    }

    fn patch_snapshot_status<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            self.patcher
                .patch_status(Some(namespace), name, PatchBody::Json(patch))
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
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move { self.patcher.patch(None, name, PatchBody::Json(patch)).await })
    }

    fn patch_content_status<'a>(
        &'a self,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move {
            self.patcher
                .patch_status(None, name, PatchBody::Json(patch))
                .await
        })
    }

    fn list_pvcs<'a>(
        &'a self,
        namespace: &'a str,
        label_selector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PersistentVolumeClaim>, ApiError>> {
        Box::pin(async move {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
            let mut params = ListParams::default();
            if !label_selector.is_empty() {
                params = params.labels(label_selector);
            }
            Ok(api.list(&params).await?.items)
        })
    }

    fn get_pv<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(async move {
            let api: Api<PersistentVolume> = Api::all(self.client.clone());
            Ok(api.get(name).await?)
        })
    }
}

/// What the group half reads from the shared caches (upstream's group listers and the
/// snapshot and PV indexers).
pub trait GroupListers: Send + Sync {
    /// A VolumeGroupSnapshot as the watch last saw it.
    fn group_snapshot(&self, namespace: &str, name: &str) -> Option<Arc<VolumeGroupSnapshot>>;
    /// A VolumeGroupSnapshotContent as the watch last saw it.
    fn group_content(&self, name: &str) -> Option<Arc<VolumeGroupSnapshotContent>>;
    /// A VolumeGroupSnapshotClass.
    fn group_class(&self, name: &str) -> Option<Arc<VolumeGroupSnapshotClass>>;
    /// Every VolumeGroupSnapshotClass.
    fn group_classes(&self) -> Vec<Arc<VolumeGroupSnapshotClass>>;
    /// The VolumeSnapshots the group snapshot `namespace/name` owns (the
    /// `ByVolumeGroupSnapshotMembership` index).
    fn group_members(&self, namespace: &str, name: &str) -> Vec<Arc<VolumeSnapshot>>;
    /// The PVs of `driver` with volume handle `handle` (the `ByVolumeHandle` index).
    fn volumes_by_handle(&self, driver: &str, handle: &str) -> Vec<Arc<PersistentVolume>>;
}

impl Debug for dyn GroupListers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupListers")
    }
}

/// [`GroupListers`] over the process's shared caches.
#[derive(Clone)]
pub struct CacheGroupListers {
    /// VolumeGroupSnapshots.
    pub group_snapshots: Store<VolumeGroupSnapshot>,
    /// VolumeGroupSnapshotContents.
    pub group_contents: Store<VolumeGroupSnapshotContent>,
    /// VolumeGroupSnapshotClasses.
    pub group_classes: Store<VolumeGroupSnapshotClass>,
    /// VolumeSnapshots, indexed by group membership.
    pub snapshots: Store<VolumeSnapshot>,
    /// PVs, indexed by driver and volume handle.
    pub volumes: Store<PersistentVolume>,
}

impl Debug for CacheGroupListers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheGroupListers").finish_non_exhaustive()
    }
}

impl GroupListers for CacheGroupListers {
    fn group_snapshot(&self, namespace: &str, name: &str) -> Option<Arc<VolumeGroupSnapshot>> {
        self.group_snapshots.get_key(&format!("{namespace}/{name}"))
    }

    fn group_content(&self, name: &str) -> Option<Arc<VolumeGroupSnapshotContent>> {
        self.group_contents.get_key(name)
    }

    fn group_class(&self, name: &str) -> Option<Arc<VolumeGroupSnapshotClass>> {
        self.group_classes.get_key(name)
    }

    fn group_classes(&self) -> Vec<Arc<VolumeGroupSnapshotClass>> {
        self.group_classes.state()
    }

    fn group_members(&self, namespace: &str, name: &str) -> Vec<Arc<VolumeSnapshot>> {
        self.snapshots
            .by_index(
                utils::VOLUME_SNAPSHOT_PARENT_GROUP_INDEX,
                &utils::volume_snapshot_parent_group_key_by_components(namespace, name),
            )
            .unwrap_or_default()
    }

    fn volumes_by_handle(&self, driver: &str, handle: &str) -> Vec<Arc<PersistentVolume>> {
        self.volumes
            .by_index(
                utils::CSI_DRIVER_HANDLE_INDEX_NAME,
                &utils::persistent_volume_key_by_csi_driver_handle(driver, handle),
            )
            .unwrap_or_default()
    }
}
