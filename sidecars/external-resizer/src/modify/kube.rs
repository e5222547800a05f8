//! Every access to Kubernetes the modify controller makes, behind two small traits:
//!
//! - [`Listers`]: synchronous reads from the shared watch caches (upstream's PVC, PV and
//!   VolumeAttributesClass listers);
//! - [`ModifyApi`]: the writes (strategic merge patches of a PVC's status and of a PV) and,
//!   through [`SecretGetter`], the modify secrets.
//!
//! Real implementations: [`StoreListers`] over [`Store`]s and [`crate::kube::ApiClient`] over a
//! `kube::Client`. [`patch_claim`] and [`patch_volume`] compute the patches as upstream's
//! `util.PatchClaim` / `util.PatchPersistentVolume` do and send them.

use std::fmt;
use std::sync::Arc;

use csi_controller::{ApiError, SecretGetter, two_way_merge_patch};
use csi_kube::Store;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::VolumeAttributesClass;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;

/// What the VolumeAttributesClass lister reports in its errors
/// (`storagev1.Resource("volumeattributesclass")`).
pub const VOLUME_ATTRIBUTES_CLASS_LISTER: &str = "volumeattributesclass.storage.k8s.io";

/// Reads from the watch caches. Objects are shared and must not be changed.
pub trait Listers: Send + Sync + fmt::Debug {
    /// A PVC by namespace and name.
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>>;
    /// Every PVC.
    fn claims(&self) -> Vec<Arc<PersistentVolumeClaim>>;
    /// A PersistentVolume by name.
    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>>;
    /// A VolumeAttributesClass by name.
    fn volume_attributes_class(&self, name: &str) -> Option<Arc<VolumeAttributesClass>>;
}

/// [`Listers`] over the shared caches.
#[derive(Clone, Debug)]
pub struct StoreListers {
    /// PVCs.
    pub claims: Store<PersistentVolumeClaim>,
    /// PVs.
    pub volumes: Store<PersistentVolume>,
    /// VolumeAttributesClasses.
    pub classes: Store<VolumeAttributesClass>,
}

impl Listers for StoreListers {
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.get(&ObjectRef::new(name).within(namespace))
    }

    fn claims(&self) -> Vec<Arc<PersistentVolumeClaim>> {
        self.claims.state()
    }

    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.volumes.get(&ObjectRef::new(name))
    }

    fn volume_attributes_class(&self, name: &str) -> Option<Arc<VolumeAttributesClass>> {
        self.classes.get(&ObjectRef::new(name))
    }
}

/// The writes of the modify controller, and the secrets.
pub trait ModifyApi: SecretGetter + Send + Sync + fmt::Debug {
    /// `PATCH persistentvolumeclaims/<name>/status` in `namespace` with a strategic merge
    /// patch.
    fn patch_claim_status<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        strategic_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>>;

    /// `PATCH persistentvolumes/<name>` with a strategic merge patch.
    fn patch_volume<'a>(
        &'a self,
        name: &'a str,
        strategic_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>>;
}

/// `namespace/name` of an object, as klog's `KObj` prints it.
pub(crate) fn kobj(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

fn to_value<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// The strategic merge patch from `old` to `new` (upstream's `GetPVCPatchData`), with
/// `metadata.resourceVersion` set to `old`'s when `add_resource_version_check` is true, so
/// that the API server refuses it (409 Conflict) if the claim changed since it was read.
pub fn claim_patch(
    old: &PersistentVolumeClaim,
    new: &PersistentVolumeClaim,
    add_resource_version_check: bool,
) -> Value {
    let mut patch = two_way_merge_patch(
        &to_value(old),
        &to_value(new),
        csi_controller::OBJECT_MERGE_KEYS,
    );
    if add_resource_version_check {
        crate::kube::add_resource_version_check(&mut patch, &old.metadata);
    }
    patch
}

/// Patches the status of `old` with the changes `new` makes (upstream's `util.PatchClaim`).
/// The error carries upstream's message.
pub async fn patch_claim(
    api: &dyn ModifyApi,
    old: &PersistentVolumeClaim,
    new: &PersistentVolumeClaim,
    add_resource_version_check: bool,
) -> Result<PersistentVolumeClaim, String> {
    let patch = claim_patch(old, new, add_resource_version_check);
    let namespace = old.metadata.namespace.as_deref().unwrap_or_default();
    let name = old.metadata.name.as_deref().unwrap_or_default();
    api.patch_claim_status(namespace, name, &patch)
        .await
        .map_err(|err| {
            format!(
                "can't patch status of  PVC {} with {err}",
                kobj(&old.metadata)
            )
        })
}

/// Patches `old` with the changes `new` makes (upstream's `util.PatchPersistentVolume`). The
/// error carries upstream's message.
pub async fn patch_volume(
    api: &dyn ModifyApi,
    old: &PersistentVolume,
    new: &PersistentVolume,
) -> Result<PersistentVolume, String> {
    let patch = two_way_merge_patch(
        &to_value(old),
        &to_value(new),
        csi_controller::OBJECT_MERGE_KEYS,
    );
    let name = new.metadata.name.as_deref().unwrap_or_default();
    api.patch_volume(name, &patch)
        .await
        .map_err(|err| format!("update capacity of PV {name} failed: {err}"))
}
