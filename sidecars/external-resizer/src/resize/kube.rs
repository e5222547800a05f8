//! Every access to Kubernetes expansion makes, behind small traits: [`Listers`] (reads from
//! the shared watch caches) and [`ResizerApi`] (the two patches, and secrets through
//! [`SecretGetter`]); Events go to a [`csi_kube::EventRecorder`]. Real implementations:
//! [`StoreListers`], [`crate::kube::ApiClient`] and [`csi_kube::Recorder`]; the tests
//! implement them in memory.

use std::fmt;
use std::sync::Arc;

use csi_controller::{ApiError, SecretGetter};
use csi_kube::Store;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;

/// Reads from the watch caches. Objects are shared and must not be changed.
pub trait Listers: Send + Sync + fmt::Debug {
    /// A PVC by namespace and name.
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>>;
    /// A PersistentVolume by name.
    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>>;
}

/// [`Listers`] over the shared caches.
#[derive(Clone, Debug)]
pub struct StoreListers {
    /// PVCs.
    pub claims: Store<PersistentVolumeClaim>,
    /// PVs.
    pub volumes: Store<PersistentVolume>,
}

impl Listers for StoreListers {
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.get(&ObjectRef::new(name).within(namespace))
    }

    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.volumes.get(&ObjectRef::new(name))
    }
}

/// The writes of expansion, and the secrets.
pub trait ResizerApi: SecretGetter + Send + Sync + fmt::Debug {
    /// `PATCH persistentvolumeclaims/<name>/status` in `namespace` with a JSON merge patch.
    fn patch_claim_status<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>>;

    /// `PATCH persistentvolumes/<name>` with a strategic merge patch (upstream's type; the
    /// body only touches maps, where it equals a merge patch).
    fn patch_volume<'a>(
        &'a self,
        name: &'a str,
        strategic_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>>;
}
