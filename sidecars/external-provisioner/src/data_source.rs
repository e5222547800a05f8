//! Data sources read from Kubernetes: which object a claim's data source names (with
//! cross-namespace sources and their ReferenceGrants), the content source of a restore from a
//! VolumeSnapshot and of a clone, and the finalizers that protect a source while a volume is
//! made from it (upstream's `dataSource`, `IsGranted`, `getSnapshotSource`, `getPVCSource`,
//! `setCloneFinalizer`, `setSnapshotFinalizer` and `removeSnapshotFinalizer`).
//!
//! # Entry point
//!
//! Build one [`DataSources`] for the provisioner and hand it to every provisioning attempt as
//! [`DataSourceObjects::Api`](crate::DataSourceObjects::Api): [`provision`](crate::provision)
//! then does each step where upstream does it — the data source reference first (failures
//! are Finished), the content source after the driver-capability and claim checks (failures
//! are NoChange), then the source finalizer (failures are NoChange), and after a successful
//! `CreateVolume` the snapshot finalizer is removed again (failures only logged).
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use external_provisioner::data_source::*;
//! # fn example(client: kube::Client, claims: csi_kube::Store<k8s_openapi::api::core::v1::PersistentVolumeClaim>,
//! #     grants: Option<csi_kube::Store<csi_crd_types::ReferenceGrant>>) {
//! let sources = DataSources::new(
//!     DataSourceConfig {
//!         cross_namespace: false,               // the CrossNamespaceVolumeDataSource gate
//!         prevent_volume_mode_conversion: true, // --prevent-volume-mode-conversion
//!     },
//!     Arc::new(KubeDataSourceClient::new(client, "csi-provisioner")),
//!     Arc::new(StoreDataSourceListers::new(claims, grants)),
//! );
//! // per claim: ProvisionOptions { data_source: DataSourceObjects::Api(&sources), .. }
//! # }
//! ```
//!
//! Reads and writes go through two small traits, [`DataSourceClient`] (GETs of
//! VolumeSnapshots, VolumeSnapshotContents and PersistentVolumes, as upstream reads them with
//! its clients, and finalizer patches) and [`DataSourceListers`] (claims and ReferenceGrants
//! from the shared caches), so that tests use fakes.
//!
//! Finalizers are changed by JSON patches whose `test` operations make a concurrent change fail
//! the change. [`KubeDataSourceClient`] applies them as upstream writes: it reads the object,
//! applies the patch to its JSON and sends an Update (PUT, with the resource version it read,
//! so a concurrent write is a conflict), because upstream's RBAC grants `update`, not `patch`,
//! on PersistentVolumeClaims and VolumeSnapshots. The JSON is kept whole, so fields this
//! build's API types do not know survive.

use std::fmt;
use std::sync::Arc;

use csi_controller::finalizer::{add_finalizer_patch_checked, remove_finalizer_patch};
use csi_controller::patch::apply_json_patch;
use csi_controller::{ApiError, resources};
use csi_crd_types::{ReferenceGrant, VolumeSnapshot, VolumeSnapshotContent};
use csi_kube::Store;
use csi_proto::csi::v1::VolumeContentSource;
use csi_proto::csi::v1::volume_content_source::{SnapshotSource, Type};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::params;
use crate::provision::SNAPSHOT_API_GROUP;
use crate::source::{ModeConversionDenied, SourceError, clone_source};

/// The finalizer on a source PVC while volumes are cloned from it.
pub const CLONE_FINALIZER: &str = "provisioner.storage.kubernetes.io/cloning-protection";
/// The finalizer on a source VolumeSnapshot while a volume is restored from it (the
/// provisioner's own; external-snapshotter has a similar one under
/// `snapshot.storage.kubernetes.io/`).
pub const SNAPSHOT_SOURCE_FINALIZER: &str =
    "provisioner.storage.kubernetes.io/volumesnapshot-as-source-protection";
/// The VolumeSnapshotContent annotation that allows restoring to another volume mode.
pub const ANN_ALLOW_VOLUME_MODE_CHANGE: &str =
    "snapshot.storage.kubernetes.io/allow-volume-mode-change";
/// The kind of a VolumeSnapshot data source.
pub const SNAPSHOT_KIND: &str = "VolumeSnapshot";
/// The kind of a clone's data source.
pub const PVC_KIND: &str = "PersistentVolumeClaim";

/// The object a claim's data source names (upstream's normalized `dataSource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSourceRef {
    /// Its kind.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its API group (empty for the core group or when unset).
    pub api_group: String,
    /// Its namespace: the claim's, unless `dataSourceRef.namespace` names another.
    pub namespace: String,
}

/// Why a claim's data source may not be used at all (the state is Finished). The messages are
/// upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// `dataSourceRef.namespace` is set without the `CrossNamespaceVolumeDataSource` gate.
    #[error(
        "dataSourceRef namespace specified but the CrossNamespaceVolumeDataSource feature is disabled"
    )]
    CrossNamespaceDisabled,
    /// The ReferenceGrants could not be listed.
    #[error("error getting ReferenceGrants in {namespace} namespace from api server: {error}")]
    ListGrants {
        /// The data source's namespace.
        namespace: String,
        /// The cause.
        error: ApiError,
    },
    /// No ReferenceGrant in the data source's namespace allows the reference.
    #[error(
        "accessing {namespace}/{name} of {kind} dataSource from {claim_namespace}/{claim_name} isn't allowed"
    )]
    NotGranted {
        /// The data source's namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its kind.
        kind: String,
        /// The claim's namespace.
        claim_namespace: String,
        /// The claim's name.
        claim_name: String,
    },
}

/// The claim's data source (upstream's `dataSource`): `spec.dataSource` (always in the claim's
/// namespace), else `spec.dataSourceRef`, whose `namespace` needs the
/// `CrossNamespaceVolumeDataSource` gate (`cross_namespace`) and, when it names another
/// namespace, a ReferenceGrant there that allows it ([`is_granted`]). `grants` lists the
/// ReferenceGrants of a namespace; it is called only for a cross-namespace source.
pub fn data_source_ref(
    claim: &PersistentVolumeClaim,
    cross_namespace: bool,
    grants: impl FnOnce(&str) -> Result<Vec<Arc<ReferenceGrant>>, ApiError>,
) -> Result<Option<DataSourceRef>, ReferenceError> {
    let Some(spec) = claim.spec.as_ref() else {
        return Ok(None);
    };
    let claim_namespace = claim.metadata.namespace.clone().unwrap_or_default();
    let reference = if let Some(source) = &spec.data_source {
        DataSourceRef {
            kind: source.kind.clone(),
            name: source.name.clone(),
            api_group: source.api_group.clone().unwrap_or_default(),
            namespace: claim_namespace.clone(),
        }
    } else if let Some(source) = &spec.data_source_ref {
        let namespace = source.namespace.clone().unwrap_or_default();
        if !cross_namespace && !namespace.is_empty() {
            return Err(ReferenceError::CrossNamespaceDisabled);
        }
        DataSourceRef {
            kind: source.kind.clone(),
            name: source.name.clone(),
            api_group: source.api_group.clone().unwrap_or_default(),
            // An empty namespace is the claim's (upstream takes `""` as is; then the
            // namespaces differ and no grant can allow it).
            namespace: source.namespace.clone().unwrap_or(claim_namespace.clone()),
        }
    } else {
        return Ok(None);
    };
    if reference.namespace != claim_namespace {
        let grants = grants(&reference.namespace).map_err(|error| ReferenceError::ListGrants {
            namespace: reference.namespace.clone(),
            error,
        })?;
        is_granted(claim, &grants)?;
    }
    Ok(Some(reference))
}

/// Whether a ReferenceGrant allows the claim's `dataSourceRef` (upstream's `IsGranted`): a
/// grant in the data source's namespace whose `from` has group `""`, kind
/// `PersistentVolumeClaim` and the claim's namespace, and whose `to` has the data source's
/// group and kind and either no name or the data source's name.
pub fn is_granted(
    claim: &PersistentVolumeClaim,
    grants: &[Arc<ReferenceGrant>],
) -> Result<(), ReferenceError> {
    let claim_namespace = claim.metadata.namespace.clone().unwrap_or_default();
    let source = claim
        .spec
        .as_ref()
        .and_then(|s| s.data_source_ref.clone())
        .unwrap_or_default();
    let source_namespace = source.namespace.clone().unwrap_or_default();
    for grant in grants {
        if grant.metadata.namespace.as_deref().unwrap_or_default() != source_namespace {
            continue;
        }
        let valid_from = grant.spec.from.iter().any(|from| {
            from.group.is_empty() && from.kind == PVC_KIND && from.namespace == claim_namespace
        });
        if !valid_from {
            continue;
        }
        let allowed = grant.spec.to.iter().any(|to| {
            let group_matches = match &source.api_group {
                Some(group) => &to.group == group,
                None => to.group.is_empty(),
            };
            group_matches
                && to.kind == source.kind
                && to
                    .name
                    .as_deref()
                    .is_none_or(|name| name.is_empty() || name == source.name)
        });
        if allowed {
            return Ok(());
        }
    }
    Err(ReferenceError::NotGranted {
        namespace: source_namespace,
        name: source.name,
        kind: source.kind,
        claim_namespace,
        claim_name: claim.metadata.name.clone().unwrap_or_default(),
    })
}

/// The content source for restoring `claim` of `class` from the VolumeSnapshot `reference`
/// names (upstream's `getSnapshotSource`), reading the snapshot and its bound content through
/// `client`. In upstream's order: the snapshot exists; it is not being deleted, unless it
/// still has [`SNAPSHOT_SOURCE_FINALIZER`] (a provisioning from it was under way and must
/// finish); it is bound to a content, which exists, is bound back to it (UID, namespace,
/// name) and is the class's driver's; the snapshot is ready; the content has a snapshot
/// handle; the claim asks for at least the restore size; and, with
/// `prevent_volume_mode_conversion`, the claim's volume mode is the content's source volume
/// mode unless the content's `snapshot.storage.kubernetes.io/allow-volume-mode-change`
/// annotation is true.
pub async fn snapshot_source(
    client: &dyn DataSourceClient,
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    reference: &DataSourceRef,
    prevent_volume_mode_conversion: bool,
) -> Result<VolumeContentSource, SourceError> {
    let name = &reference.name;
    let snapshot = client
        .volume_snapshot(&reference.namespace, name)
        .await
        .map_err(|error| SourceError::SnapshotGet {
            name: name.clone(),
            error,
        })?;
    if snapshot.metadata.deletion_timestamp.is_some() {
        if !has_finalizer(
            snapshot.metadata.finalizers.as_deref(),
            SNAPSHOT_SOURCE_FINALIZER,
        ) {
            return Err(SourceError::SnapshotDeleting(name.clone()));
        }
        debug!(
            "Snapshot {}/{name} is being deleted but has volumesnapshot-as-source-protection finalizer, allowing provisioning to continue",
            reference.namespace
        );
    }
    let status = snapshot.status.clone().unwrap_or_default();
    let Some(content_name) = snapshot
        .status
        .as_ref()
        .and_then(|s| s.bound_volume_snapshot_content_name.clone())
    else {
        return Err(SourceError::SnapshotNotBound(name.clone()));
    };
    let snapshot_namespace = snapshot.metadata.namespace.clone().unwrap_or_default();
    let snapshot_name = snapshot.metadata.name.clone().unwrap_or_default();
    let content = client
        .volume_snapshot_content(&content_name)
        .await
        .map_err(|error| {
            warn!(
                "error getting snapshotcontent {content_name} for snapshot {snapshot_namespace}/{snapshot_name} from api server: {error}"
            );
            SourceError::ContentGet {
                content: content_name.clone(),
                snapshot: name.clone(),
            }
        })?;
    let bound_to = &content.spec.volume_snapshot_ref;
    if bound_to.uid != snapshot.metadata.uid
        || bound_to.namespace.clone().unwrap_or_default() != snapshot_namespace
        || bound_to.name.clone().unwrap_or_default() != snapshot_name
    {
        warn!(
            "snapshotcontent {content_name} for snapshot {snapshot_namespace}/{snapshot_name} is bound to a different snapshot"
        );
        return Err(SourceError::ContentBoundElsewhere {
            content: content_name,
            snapshot: name.clone(),
        });
    }
    let class_name = class.metadata.name.clone().unwrap_or_default();
    if content.spec.driver != class.provisioner {
        warn!(
            "snapshotcontent {content_name} for snapshot {snapshot_namespace}/{snapshot_name} is handled by a different CSI driver than requested by StorageClass {class_name}"
        );
        return Err(SourceError::ContentDriver {
            content: content_name,
            snapshot: name.clone(),
            class: class_name,
        });
    }
    if status.ready_to_use != Some(true) {
        return Err(SourceError::SnapshotNotReady(name.clone()));
    }
    let Some(handle) = content
        .status
        .as_ref()
        .and_then(|s| s.snapshot_handle.clone())
    else {
        return Err(SourceError::SnapshotHandleMissing(name.clone()));
    };

    if let Some(restore_size) = &status.restore_size {
        let request = claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"));
        if request.is_none() {
            return Err(SourceError::NoRequest {
                claim: claim.metadata.name.clone().unwrap_or_default(),
                snapshot: snapshot_name,
            });
        }
        let requested = params::requested_bytes(claim);
        let restore_size = params::quantity_value(&restore_size.0).unwrap_or(0);
        debug!(
            "Requested volume size is {requested} and snapshot size is {restore_size} for the source snapshot {snapshot_name}"
        );
        if requested < restore_size {
            return Err(SourceError::SmallerThanSnapshot {
                requested,
                restore_size,
                snapshot: snapshot_name,
            });
        }
        if requested > restore_size {
            warn!(
                "requested volume size {requested} is greater than the size {restore_size} for the source snapshot {snapshot_name}. Volume plugin needs to handle volume expansion."
            );
        }
    }

    if prevent_volume_mode_conversion {
        let claim_mode = claim.spec.as_ref().and_then(|s| s.volume_mode.as_deref());
        if let (Some(source_mode), Some(claim_mode)) =
            (content.spec.source_volume_mode.as_deref(), claim_mode)
            && source_mode != claim_mode
        {
            let content_name = content.metadata.name.clone().unwrap_or_default();
            let denied = |reason| SourceError::VolumeModeConversion {
                namespace: claim.metadata.namespace.clone().unwrap_or_default(),
                claim: claim.metadata.name.clone().unwrap_or_default(),
                reason,
            };
            let allowed = content
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_ALLOW_VOLUME_MODE_CHANGE));
            match allowed.map(|v| parse_bool(v).ok_or(v)) {
                None => return Err(denied(ModeConversionDenied::NotAnnotated(content_name))),
                Some(Err(value)) => {
                    return Err(denied(ModeConversionDenied::NotBoolean(value.clone())));
                }
                Some(Ok(false)) => {
                    return Err(denied(ModeConversionDenied::Disallowed(content_name)));
                }
                Some(Ok(true)) => {}
            }
        }
    }

    Ok(VolumeContentSource {
        r#type: Some(Type::Snapshot(SnapshotSource {
            snapshot_id: handle,
        })),
    })
}

/// Go's `strconv.ParseBool`.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn has_finalizer(finalizers: Option<&[String]>, finalizer: &str) -> bool {
    finalizers.is_some_and(|list| list.iter().any(|f| f == finalizer))
}

/// The API calls of data sources: what upstream reads with its clients (not its listers) and
/// the finalizer patches.
pub trait DataSourceClient: Send + Sync + fmt::Debug {
    /// `GET volumesnapshots/<name>` in `namespace`.
    fn volume_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>>;

    /// `GET volumesnapshotcontents/<name>`.
    fn volume_snapshot_content<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>>;

    /// `GET persistentvolumes/<name>`: the volume of a clone's source PVC.
    fn persistent_volume<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>>;

    /// Changes the claim `namespace/name` by a JSON patch (RFC 6902); a failed `test` is an
    /// error.
    fn patch_claim<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>>;

    /// Changes the VolumeSnapshot `namespace/name` by a JSON patch (RFC 6902); a failed
    /// `test` is an error.
    fn patch_volume_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>>;
}

/// The cached reads of data sources (upstream's listers).
pub trait DataSourceListers: Send + Sync + fmt::Debug {
    /// A claim from the PVC cache.
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>>;
    /// The ReferenceGrants of `namespace`.
    fn reference_grants(&self, namespace: &str) -> Result<Vec<Arc<ReferenceGrant>>, ApiError>;
}

/// [`DataSourceClient`] over a kube client. Patches are sent as Updates (GET, patch applied
/// to the JSON, PUT): see the [module documentation](self).
#[derive(Clone)]
pub struct KubeDataSourceClient {
    client: kube::Client,
    field_manager: String,
}

impl fmt::Debug for KubeDataSourceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeDataSourceClient")
            .field("field_manager", &self.field_manager)
            .finish_non_exhaustive()
    }
}

impl KubeDataSourceClient {
    /// A client whose Updates carry `field_manager`.
    pub fn new(client: kube::Client, field_manager: &str) -> Self {
        KubeDataSourceClient {
            client,
            field_manager: field_manager.to_string(),
        }
    }

    /// Reads `namespace/name` as JSON, applies `json_patch` to it and updates it.
    async fn update_by_patch<K>(
        &self,
        namespace: &str,
        name: &str,
        json_patch: &Value,
    ) -> Result<K, ApiError>
    where
        K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
    {
        let resource = kube::api::ApiResource::erase::<K>(&());
        let api = kube::Api::<kube::api::DynamicObject>::namespaced_with(
            self.client.clone(),
            namespace,
            &resource,
        );
        let mut object = serde_json::to_value(api.get(name).await?)
            .map_err(|err| ApiError::other(err.to_string()))?;
        apply_json_patch(&mut object, json_patch)
            .map_err(|err| ApiError::invalid(err.to_string()))?;
        let object: kube::api::DynamicObject =
            serde_json::from_value(object).map_err(|err| ApiError::other(err.to_string()))?;
        let params = kube::api::PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        };
        let updated = api.replace(name, &params, &object).await?;
        serde_json::to_value(updated)
            .and_then(serde_json::from_value)
            .map_err(|err| ApiError::other(err.to_string()))
    }
}

impl DataSourceClient for KubeDataSourceClient {
    fn volume_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            let api = kube::Api::<VolumeSnapshot>::namespaced(self.client.clone(), namespace);
            Ok(api.get(name).await?)
        })
    }

    fn volume_snapshot_content<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move {
            let api = kube::Api::<VolumeSnapshotContent>::all(self.client.clone());
            Ok(api.get(name).await?)
        })
    }

    fn persistent_volume<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(async move {
            let api = kube::Api::<PersistentVolume>::all(self.client.clone());
            Ok(api.get(name).await?)
        })
    }

    fn patch_claim<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        Box::pin(self.update_by_patch(namespace, name, json_patch))
    }

    fn patch_volume_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(self.update_by_patch(namespace, name, json_patch))
    }
}

/// [`DataSourceListers`] over the shared caches: the PVC store, and the ReferenceGrant store
/// when the `CrossNamespaceVolumeDataSource` gate is on (without it there are no grants).
#[derive(Clone)]
pub struct StoreDataSourceListers {
    claims: Store<PersistentVolumeClaim>,
    grants: Option<Store<ReferenceGrant>>,
}

impl fmt::Debug for StoreDataSourceListers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreDataSourceListers")
            .field("grants", &self.grants.is_some())
            .finish_non_exhaustive()
    }
}

impl StoreDataSourceListers {
    /// Listers over the given stores.
    pub fn new(
        claims: Store<PersistentVolumeClaim>,
        grants: Option<Store<ReferenceGrant>>,
    ) -> Self {
        StoreDataSourceListers { claims, grants }
    }
}

impl DataSourceListers for StoreDataSourceListers {
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.get(&ObjectRef::new(name).within(namespace))
    }

    fn reference_grants(&self, namespace: &str) -> Result<Vec<Arc<ReferenceGrant>>, ApiError> {
        Ok(self
            .grants
            .as_ref()
            .map(|store| {
                store
                    .state()
                    .into_iter()
                    .filter(|g| g.metadata.namespace.as_deref() == Some(namespace))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// The data-source settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataSourceConfig {
    /// The `CrossNamespaceVolumeDataSource` gate (default off).
    pub cross_namespace: bool,
    /// `--prevent-volume-mode-conversion` (default true).
    pub prevent_volume_mode_conversion: bool,
}

/// Everything provisioning needs to resolve data sources from Kubernetes (see the [module
/// documentation](self)).
#[derive(Debug, Clone)]
pub struct DataSources {
    config: DataSourceConfig,
    client: Arc<dyn DataSourceClient>,
    listers: Arc<dyn DataSourceListers>,
}

impl DataSources {
    /// Data sources read and protected through `client` and `listers`.
    pub fn new(
        config: DataSourceConfig,
        client: Arc<dyn DataSourceClient>,
        listers: Arc<dyn DataSourceListers>,
    ) -> Self {
        DataSources {
            config,
            client,
            listers,
        }
    }

    /// The settings.
    pub fn config(&self) -> DataSourceConfig {
        self.config
    }

    /// The claim's data source, with the cross-namespace checks ([`data_source_ref`]).
    pub fn reference(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Result<Option<DataSourceRef>, ReferenceError> {
        data_source_ref(claim, self.config.cross_namespace, |namespace| {
            self.listers.reference_grants(namespace)
        })
    }

    /// The content source of `reference` for `claim` of `class` (upstream's
    /// `getVolumeContentSource`): a restore ([`snapshot_source`]) or a clone (the source PVC
    /// from the cache, its PV read from the API server, then
    /// [`clone_source`](crate::source::clone_source)). `None` for any other kind.
    pub async fn content_source(
        &self,
        claim: &PersistentVolumeClaim,
        class: &StorageClass,
        reference: &DataSourceRef,
    ) -> Result<Option<VolumeContentSource>, SourceError> {
        match reference.kind.as_str() {
            SNAPSHOT_KIND => snapshot_source(
                &*self.client,
                claim,
                class,
                reference,
                self.config.prevent_volume_mode_conversion,
            )
            .await
            .map(Some),
            PVC_KIND => {
                let pvc = self.listers.claim(&reference.namespace, &reference.name);
                let volume_name = pvc
                    .as_ref()
                    .and_then(|c| c.spec.as_ref())
                    .and_then(|s| s.volume_name.clone())
                    .unwrap_or_default();
                let pv = if volume_name.is_empty() {
                    None
                } else {
                    match self.client.persistent_volume(&volume_name).await {
                        Ok(pv) => Some(pv),
                        Err(error) => {
                            warn!(
                                "error getting volume {volume_name} for PVC {}/{}: {error}",
                                reference.namespace, reference.name
                            );
                            None
                        }
                    }
                };
                clone_source(claim, class, &reference.name, pvc.as_deref(), pv.as_ref()).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Protects the source while a volume is made from it (upstream's `setCloneFinalizer` and
    /// `setSnapshotFinalizer`): [`CLONE_FINALIZER`] on a source PVC (read from the cache; a
    /// missing one is an error), [`SNAPSHOT_SOURCE_FINALIZER`] on a source VolumeSnapshot
    /// (read from the API server; a Forbidden patch is only logged, for RBAC without
    /// `update`/`patch` on VolumeSnapshots). Nothing is sent when the finalizer is there.
    /// Other kinds have none. An error leaves the claim in state NoChange.
    pub async fn add_finalizer(&self, reference: &DataSourceRef) -> Result<(), ApiError> {
        let (namespace, name) = (reference.namespace.as_str(), reference.name.as_str());
        match reference.kind.as_str() {
            PVC_KIND => {
                let claim = self.listers.claim(namespace, name).ok_or_else(|| {
                    ApiError::not_found(resources::PERSISTENT_VOLUME_CLAIM_LISTER, name)
                })?;
                let finalizers = claim.metadata.finalizers.as_deref();
                if let Some(patch) = add_finalizer_patch_checked(finalizers, CLONE_FINALIZER) {
                    self.client.patch_claim(namespace, name, &patch).await?;
                }
                Ok(())
            }
            SNAPSHOT_KIND => {
                let snapshot = self.client.volume_snapshot(namespace, name).await?;
                let finalizers = snapshot.metadata.finalizers.as_deref();
                let Some(patch) =
                    add_finalizer_patch_checked(finalizers, SNAPSHOT_SOURCE_FINALIZER)
                else {
                    return Ok(());
                };
                match self
                    .client
                    .patch_volume_snapshot(namespace, name, &patch)
                    .await
                {
                    Ok(_) => {
                        debug!(
                            "Added finalizer {SNAPSHOT_SOURCE_FINALIZER} to snapshot {namespace}/{name}"
                        );
                        Ok(())
                    }
                    Err(error) if is_forbidden(&error) => {
                        info!(
                            "Unable to add finalizer to snapshot {namespace}/{name} due to missing RBAC permissions (needs 'update' on volumesnapshots): {error}. Provisioning will continue without snapshot protection. Please update RBAC to include 'update' verb for volumesnapshots."
                        );
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            }
            _ => Ok(()),
        }
    }

    /// After a volume was restored from a snapshot (upstream's `removeSnapshotFinalizer` at
    /// the end of `Provision`): removes [`SNAPSHOT_SOURCE_FINALIZER`] from the snapshot named
    /// by the claim's `spec.dataSource`. A snapshot that is gone, a finalizer that is not
    /// there and a Forbidden patch are not errors; other failures are only logged by the
    /// caller, since the sweep controller removes orphaned finalizers later.
    pub async fn remove_snapshot_finalizer(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Result<(), ApiError> {
        let Some(source) = claim.spec.as_ref().and_then(|s| s.data_source.as_ref()) else {
            return Ok(());
        };
        if source.kind != SNAPSHOT_KIND {
            return Ok(());
        }
        let namespace = claim.metadata.namespace.clone().unwrap_or_default();
        remove_snapshot_finalizer(&*self.client, &namespace, &source.name).await
    }
}

/// Whether `error` is a 403 (`apierrors.IsForbidden`).
pub(crate) fn is_forbidden(error: &ApiError) -> bool {
    error.code == 403 || error.reason == "Forbidden"
}

/// Reads the snapshot `namespace/name` and removes [`SNAPSHOT_SOURCE_FINALIZER`] from it; see
/// [`DataSources::remove_snapshot_finalizer`].
async fn remove_snapshot_finalizer(
    client: &dyn DataSourceClient,
    namespace: &str,
    name: &str,
) -> Result<(), ApiError> {
    let snapshot = match client.volume_snapshot(namespace, name).await {
        Ok(snapshot) => snapshot,
        Err(error) if error.is_not_found() => return Ok(()),
        Err(error) => return Err(error),
    };
    let Some(patch) = remove_finalizer_patch(
        snapshot.metadata.finalizers.as_deref(),
        SNAPSHOT_SOURCE_FINALIZER,
    ) else {
        return Ok(());
    };
    match client.patch_volume_snapshot(namespace, name, &patch).await {
        Ok(_) => {
            debug!(
                "Removed finalizer {SNAPSHOT_SOURCE_FINALIZER} from snapshot {namespace}/{name}"
            );
            Ok(())
        }
        Err(error) if error.is_not_found() => Ok(()),
        Err(error) if is_forbidden(&error) => {
            info!(
                "Unable to remove finalizer from snapshot {namespace}/{name} due to missing RBAC permissions (needs 'update' on volumesnapshots): {error}. The finalizer will remain on the snapshot. Please update RBAC to include 'update' verb for volumesnapshots."
            );
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Whether `claim` is restored from a VolumeSnapshot (upstream's `isSnapshotSourcePVC`):
/// `spec.dataSource` or `spec.dataSourceRef` of kind VolumeSnapshot with no API group or
/// `snapshot.storage.k8s.io`.
pub fn is_snapshot_source_claim(claim: &PersistentVolumeClaim) -> bool {
    snapshot_of_claim(claim).is_some()
}

/// The namespace and name of the VolumeSnapshot `claim` is restored from (upstream's
/// `snapshotNameFromPVC`): `spec.dataSource` first (in the claim's namespace), else
/// `spec.dataSourceRef` (in its namespace when set).
pub fn snapshot_of_claim(claim: &PersistentVolumeClaim) -> Option<(String, String)> {
    let spec = claim.spec.as_ref()?;
    let group_ok =
        |group: &Option<String>| group.as_deref().is_none_or(|g| g == SNAPSHOT_API_GROUP);
    let claim_namespace = claim.metadata.namespace.clone().unwrap_or_default();
    if let Some(source) = &spec.data_source
        && source.kind == SNAPSHOT_KIND
        && group_ok(&source.api_group)
    {
        return Some((claim_namespace, source.name.clone()));
    }
    if let Some(source) = &spec.data_source_ref
        && source.kind == SNAPSHOT_KIND
        && group_ok(&source.api_group)
    {
        let namespace = source
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or(claim_namespace);
        return Some((namespace, source.name.clone()));
    }
    None
}
