//! Every access to Kubernetes the provisioning loop makes, behind two small traits:
//!
//! - [`Listers`]: synchronous reads from the shared watch caches (upstream's informer
//!   listers and the library's private PV and StorageClass stores);
//! - [`ProvisionerApi`]: the writes and the direct reads (PV create / delete / finalizer patch,
//!   PVC get / update, the VolumeAttributesClass GET of every provision) and, through
//!   [`SecretGetter`], the secrets.
//!
//! Real implementations: [`StoreListers`] over [`Store`]s and [`ApiClient`] over a
//! `kube::Client`. The loop's tests implement both in memory.

use std::fmt;
use std::sync::Arc;

use csi_controller::{ApiError, PatchBody, Patcher, SecretGetter};
use csi_kube::Store;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Secret};
use k8s_openapi::api::storage::v1::{
    CSINode, StorageClass, VolumeAttachment, VolumeAttributesClass,
};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;

/// The name of the PVC index by UID (the library's `uidIndex`): the claim queue carries UIDs.
pub const UID_INDEX: &str = "uid";

/// The index function of [`UID_INDEX`].
pub fn uid_index(claim: &PersistentVolumeClaim) -> Vec<String> {
    claim.metadata.uid.clone().into_iter().collect()
}

/// Reads from the watch caches. Objects are shared and must not be changed.
pub trait Listers: Send + Sync + fmt::Debug {
    /// The PVC with this UID.
    fn claim_by_uid(&self, uid: &str) -> Option<Arc<PersistentVolumeClaim>>;
    /// A PVC by namespace and name.
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>>;
    /// A StorageClass by name.
    fn storage_class(&self, name: &str) -> Option<Arc<StorageClass>>;
    /// Every StorageClass.
    fn storage_classes(&self) -> Vec<Arc<StorageClass>>;
    /// A PersistentVolume by name.
    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>>;
    /// Every CSINode (empty when topology is not watched).
    fn csi_nodes(&self) -> Vec<Arc<CSINode>>;
    /// Every Node (empty when topology is not watched).
    fn nodes(&self) -> Vec<Arc<Node>>;
    /// A Node by name (`None` also when Nodes are not watched).
    fn node(&self, name: &str) -> Option<Arc<Node>>;
    /// Every VolumeAttachment, when the driver attaches (`None`: not watched).
    fn volume_attachments(&self) -> Option<Vec<Arc<VolumeAttachment>>>;
}

/// [`Listers`] over the shared caches.
#[derive(Clone, Debug)]
pub struct StoreListers {
    /// PVCs, with the [`UID_INDEX`] index.
    pub claims: Store<PersistentVolumeClaim>,
    /// PVs.
    pub volumes: Store<PersistentVolume>,
    /// StorageClasses.
    pub classes: Store<StorageClass>,
    /// CSINodes, when topology or capacity needs them.
    pub csi_nodes: Option<Store<CSINode>>,
    /// Nodes, when topology or capacity needs them.
    pub nodes: Option<Store<Node>>,
    /// VolumeAttachments, when the driver attaches.
    pub attachments: Option<Store<VolumeAttachment>>,
}

impl Listers for StoreListers {
    fn claim_by_uid(&self, uid: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims
            .by_index(UID_INDEX, uid)
            .ok()
            .and_then(|found| found.into_iter().next())
    }

    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.get(&ObjectRef::new(name).within(namespace))
    }

    fn storage_class(&self, name: &str) -> Option<Arc<StorageClass>> {
        self.classes.get(&ObjectRef::new(name))
    }

    fn storage_classes(&self) -> Vec<Arc<StorageClass>> {
        self.classes.state()
    }

    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.volumes.get(&ObjectRef::new(name))
    }

    fn csi_nodes(&self) -> Vec<Arc<CSINode>> {
        self.csi_nodes
            .as_ref()
            .map(Store::state)
            .unwrap_or_default()
    }

    fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.as_ref().map(Store::state).unwrap_or_default()
    }

    fn node(&self, name: &str) -> Option<Arc<Node>> {
        self.nodes.as_ref()?.get(&ObjectRef::new(name))
    }

    fn volume_attachments(&self) -> Option<Vec<Arc<VolumeAttachment>>> {
        self.attachments.as_ref().map(Store::state)
    }
}

/// Writes and direct reads.
pub trait ProvisionerApi: SecretGetter + Send + Sync + fmt::Debug {
    /// `POST persistentvolumes`.
    fn create_volume<'a>(
        &'a self,
        pv: &'a PersistentVolume,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>>;

    /// `DELETE persistentvolumes/<name>`.
    fn delete_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ApiError>>;

    /// `PATCH persistentvolumes/<name>` with a strategic merge patch.
    fn patch_volume<'a>(
        &'a self,
        name: &'a str,
        strategic_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>>;

    /// `GET persistentvolumeclaims/<name>` in `namespace`.
    fn get_claim<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>>;

    /// `PUT persistentvolumeclaims/<name>` (an update with the claim's resourceVersion).
    fn update_claim<'a>(
        &'a self,
        claim: &'a PersistentVolumeClaim,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>>;

    /// `GET volumeattributesclasses/<name>`.
    fn get_volume_attributes_class<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeAttributesClass, ApiError>>;
}

/// [`ProvisionerApi`] over a `kube::Client`.
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

impl ProvisionerApi for ApiClient {
    fn create_volume<'a>(
        &'a self,
        pv: &'a PersistentVolume,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(async move {
            let api: Api<PersistentVolume> = Api::all(self.client.clone());
            Ok(api.create(&PostParams::default(), pv).await?)
        })
    }

    fn delete_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let api: Api<PersistentVolume> = Api::all(self.client.clone());
            api.delete(name, &DeleteParams::default()).await?;
            Ok(())
        })
    }

    fn patch_volume<'a>(
        &'a self,
        name: &'a str,
        strategic_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(async move {
            self.patcher
                .patch(None, name, PatchBody::Strategic(strategic_patch))
                .await
        })
    }

    fn get_claim<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        Box::pin(async move {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
            Ok(api.get(name).await?)
        })
    }

    fn update_claim<'a>(
        &'a self,
        claim: &'a PersistentVolumeClaim,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        Box::pin(async move {
            let namespace = claim.metadata.namespace.as_deref().unwrap_or_default();
            let name = claim.metadata.name.as_deref().unwrap_or_default();
            let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
            Ok(api.replace(name, &PostParams::default(), claim).await?)
        })
    }

    fn get_volume_attributes_class<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeAttributesClass, ApiError>> {
        Box::pin(async move {
            let api: Api<VolumeAttributesClass> = Api::all(self.client.clone());
            Ok(api.get(name).await?)
        })
    }
}

/// [`Listers`] of a `--node-deployment` provisioner with topology: instead of watching Nodes
/// and CSINodes, one fixed Node and CSINode made from the driver's `NodeGetInfo` (upstream
/// avoids those watches the same way: on every node they would be heavy traffic).
#[derive(Debug)]
pub struct NodeLocalListers {
    inner: StoreListers,
    node: Arc<Node>,
    csi_node: Arc<CSINode>,
}

impl NodeLocalListers {
    /// The listers of `inner` with the Node `node_name` labelled with the node's topology
    /// segments and its CSINode registering `driver` with those keys.
    pub fn new(
        inner: StoreListers,
        driver: &str,
        node_name: &str,
        node_id: &str,
        topology: Option<&csi_proto::csi::v1::Topology>,
    ) -> Self {
        use k8s_openapi::api::storage::v1::{CSINodeDriver, CSINodeSpec};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let segments = topology.map(|t| t.segments.clone()).unwrap_or_default();
        let mut keys: Vec<String> = segments.keys().cloned().collect();
        keys.sort();
        let node = Node {
            metadata: ObjectMeta {
                name: Some(node_name.to_string()),
                labels: (!segments.is_empty()).then(|| segments.into_iter().collect()),
                ..Default::default()
            },
            ..Default::default()
        };
        let csi_node = CSINode {
            metadata: ObjectMeta {
                name: Some(node_name.to_string()),
                ..Default::default()
            },
            spec: CSINodeSpec {
                drivers: vec![CSINodeDriver {
                    name: driver.to_string(),
                    node_id: node_id.to_string(),
                    topology_keys: (!keys.is_empty()).then_some(keys),
                    ..Default::default()
                }],
            },
        };
        NodeLocalListers {
            inner,
            node: Arc::new(node),
            csi_node: Arc::new(csi_node),
        }
    }
}

impl Listers for NodeLocalListers {
    fn claim_by_uid(&self, uid: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.inner.claim_by_uid(uid)
    }

    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.inner.claim(namespace, name)
    }

    fn storage_class(&self, name: &str) -> Option<Arc<StorageClass>> {
        self.inner.storage_class(name)
    }

    fn storage_classes(&self) -> Vec<Arc<StorageClass>> {
        self.inner.storage_classes()
    }

    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.inner.volume(name)
    }

    fn csi_nodes(&self) -> Vec<Arc<CSINode>> {
        vec![self.csi_node.clone()]
    }

    fn nodes(&self) -> Vec<Arc<Node>> {
        vec![self.node.clone()]
    }

    fn node(&self, name: &str) -> Option<Arc<Node>> {
        (self.node.metadata.name.as_deref() == Some(name)).then(|| self.node.clone())
    }

    fn volume_attachments(&self) -> Option<Vec<Arc<VolumeAttachment>>> {
        self.inner.volume_attachments()
    }
}
