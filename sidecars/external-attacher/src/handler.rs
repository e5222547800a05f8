//! Upstream's handlers: what to do with one VolumeAttachment or PersistentVolume taken off a
//! queue.
//!
//! - [`CsiHandler`] (upstream's `csiHandler`): attaches and detaches through the CSI driver,
//!   guarding VolumeAttachments and PersistentVolumes with the finalizer
//!   `external-attacher/<sanitized driver name>`, recording the node ID in the VolumeAttachment
//!   annotation [`VA_NODE_ID_ANNOTATION`], and reporting failures in `status.attachError` /
//!   `status.detachError`. With a [`VolumeLister`] it also reconciles VolumeAttachments with
//!   what the driver reports as published.
//! - [`TrivialHandler`] (upstream's `trivialHandler`): for drivers without
//!   `PUBLISH_UNPUBLISH_VOLUME`; marks every VolumeAttachment attached.
//!
//! Instead of touching the queues (upstream calls `AddRateLimited` / `Forget` itself), each
//! call returns a [`SyncOutcome`] that the runtime applies to the queue.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use csi_proto::csi::v1::{ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest};
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, PersistentVolume, PersistentVolumeSpec,
};
use k8s_openapi::api::storage::v1::{VolumeAttachment, VolumeError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tracing::{debug, error, info};

use crate::attacher::{Attacher, CsiError};
use csi_controller::finalizer::{add_finalizer_patch, remove_finalizer_patch};
use csi_controller::secrets::secret_data;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::SecretReference;

use crate::kube::{ApiError, KubeClient, KubeListers};
use crate::lister::{ListVolumesError, VolumeLister};
use crate::util::{
    ANN_MIGRATED_TO, VA_NODE_ID_ANNOTATION, VolumeCapabilityError, finalizer_name, is_attached,
    mark_as_attached, mark_as_detached, node_id_from_csi_node, va_patch, volume_capabilities,
    volume_handle,
};
use csi_translation::is_pv_migratable;

/// What the runtime does with a queue key after processing it.
#[derive(Debug)]
pub enum SyncOutcome {
    /// Nothing (upstream returns without `Forget` or `AddRateLimited`): the object is gone or
    /// is not this attacher's.
    Done,
    /// Success, or nothing to do: reset the key's backoff (`Forget`).
    Forget,
    /// Failure: add the key again with backoff (`AddRateLimited`).
    Requeue(SyncError),
}

impl SyncOutcome {
    /// The error, for [`SyncOutcome::Requeue`].
    pub fn error(&self) -> Option<&SyncError> {
        match self {
            SyncOutcome::Requeue(err) => Some(err),
            _ => None,
        }
    }
}

/// Why the node ID of a node could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    /// The CSINode could not be read (usually: not found).
    #[error("{0}")]
    CsiNode(ApiError),
    /// The CSINode exists but the driver has not registered on the node.
    #[error("CSINode {node} does not contain driver {driver}")]
    DriverNotRegistered {
        /// The node name.
        node: String,
        /// The driver name.
        driver: String,
    },
}

/// Why attaching or detaching one VolumeAttachment failed. The text is upstream's, and is what
/// lands in `status.attachError.message` / `status.detachError.message`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OperationError {
    /// The VolumeAttachment names a PersistentVolume and has an inline spec.
    #[error("both InlineCSIVolumeSource and PersistentVolumeName specified in VA source")]
    BothSources,
    /// The VolumeAttachment has no source at all.
    #[error("neither InlineCSIVolumeSource nor PersistentVolumeName specified in VA source")]
    NoSource,
    /// The inline spec has no CSI source.
    #[error("inline volume spec contains nil CSI source")]
    InlineWithoutCsi,
    /// The PersistentVolume could not be read from the cache.
    #[error("{0}")]
    PersistentVolume(ApiError),
    /// The PersistentVolume is being deleted: it is not attached any more.
    #[error("PersistentVolume {0:?} is marked for deletion")]
    PersistentVolumeDeleted(String),
    /// Saving the attacher's finalizer on the PersistentVolume failed.
    #[error("could not add PersistentVolume finalizer: {0}")]
    AddPersistentVolumeFinalizer(ApiError),
    /// The PersistentVolume has neither a CSI source nor a migratable in-tree one.
    #[error("pv spec contained non-csi source that was not migrated")]
    NonCsiSource,
    /// The in-tree PersistentVolume could not be translated to CSI (CSI migration).
    #[error("failed to translate in tree pv to CSI: {0}")]
    Translate(csi_translation::Error),
    /// The in-tree PersistentVolume could not be translated to CSI, while reconciling.
    #[error("failed to TranslateInTreePVToCSI({persistent_volume}): {error}")]
    TranslateSpec {
        /// The PersistentVolume's name.
        persistent_volume: String,
        /// Why.
        error: csi_translation::Error,
    },
    /// No CSI volume capability for this spec.
    #[error(transparent)]
    VolumeCapability(VolumeCapabilityError),
    /// The `controllerPublishSecretRef` secret could not be read.
    #[error("failed to load secret \"{namespace}/{name}\": {error}")]
    Secret {
        /// The secret's namespace.
        namespace: String,
        /// The secret's name.
        name: String,
        /// Why it could not be read.
        error: ApiError,
    },
    /// The CSI node ID is unknown.
    #[error(transparent)]
    NodeId(NodeIdError),
    /// Saving the finalizer and node ID annotation on the VolumeAttachment failed.
    #[error("could not save VolumeAttachment: {0}")]
    SaveVolumeAttachment(ApiError),
    /// `ControllerPublishVolume` or `ControllerUnpublishVolume` failed.
    #[error(transparent)]
    Csi(CsiError),
    /// Detached, but removing the finalizer or saving the status failed.
    #[error("could not mark as detached: {0}")]
    MarkDetached(ApiError),
}

/// Why processing one queue key failed (the key is re-queued with backoff).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SyncError {
    /// Attaching failed (the error was saved in `status.attachError` if possible).
    #[error("failed to attach: {0}")]
    Attach(OperationError),
    /// Attached, but saving `attached: true` failed.
    #[error("failed to mark as attached: {0}")]
    MarkAttached(ApiError),
    /// Detaching failed (the error was saved in `status.detachError` if possible).
    #[error("failed to detach: {0}")]
    Detach(OperationError),
    /// The VolumeAttachment could not be read from the cache (other than "not found").
    #[error("error getting VolumeAttachment: {0}")]
    GetVolumeAttachment(ApiError),
    /// The PersistentVolume could not be read from the cache (other than "not found").
    #[error("error getting PersistentVolume: {0}")]
    GetPersistentVolume(ApiError),
    /// Listing VolumeAttachments (to see whether a PersistentVolume is still used) failed.
    #[error("failed to list VolumeAttachments: {0}")]
    ListVolumeAttachments(ApiError),
    /// The finalizer to remove is not in the PersistentVolume's list.
    #[error("failed to create remove-finalizer patch: finalizer {0:?} not found in list")]
    FinalizerNotFound(String),
    /// Removing the finalizer from the PersistentVolume failed.
    #[error("failed to remove finalizer from PersistentVolume: {0}")]
    RemovePersistentVolumeFinalizer(ApiError),
}

/// Why one reconcile pass failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReconcileError {
    /// The VolumeAttachment cache could not be listed.
    #[error("failed to list all VolumeAttachment objects")]
    ListVolumeAttachments(#[source] ApiError),
    /// `ListVolumes` failed.
    #[error("failed to ListVolumes: {0}")]
    ListVolumes(ListVolumesError),
}

/// Upstream's `Handler`: processes one VolumeAttachment or PersistentVolume from the queues,
/// and reconciles with the driver.
pub trait Handler: Send + Sync + fmt::Debug {
    /// Upstream's `SyncNewOrUpdatedVolumeAttachment`: attach (no deletion timestamp) or detach.
    /// Only one call runs per VolumeAttachment at a time (the queue guarantees it).
    fn sync_volume_attachment<'a>(&'a self, va: &'a VolumeAttachment)
    -> BoxFuture<'a, SyncOutcome>;

    /// Upstream's `SyncNewOrUpdatedPersistentVolume`: remove the attacher's finalizer from a
    /// PersistentVolume no VolumeAttachment uses any more.
    fn sync_persistent_volume<'a>(&'a self, pv: &'a PersistentVolume)
    -> BoxFuture<'a, SyncOutcome>;

    /// Upstream's `ReconcileVA`: compares each VolumeAttachment's `status.attached` with the
    /// nodes the driver reports the volume published on, and returns the names of those that
    /// disagree, marked for a forced sync: the runtime adds them to the VolumeAttachment queue.
    fn reconcile_volume_attachments(&self) -> BoxFuture<'_, Result<Vec<String>, ReconcileError>>;

    /// Forgets what the handler keeps about the VolumeAttachment `name`, which is gone (a
    /// forced sync the reconciler asked for and no sync took).
    fn forget_volume_attachment(&self, _name: &str) {}
}

/// Settings of a [`CsiHandler`] (upstream's `NewCSIHandler` arguments and one feature gate).
#[derive(Debug, Clone)]
pub struct CsiHandlerConfig {
    /// The driver name (`spec.attacher` of the VolumeAttachments to handle).
    pub attacher_name: String,
    /// Timeout of each `ControllerPublishVolume` / `ControllerUnpublishVolume`, and of a whole
    /// `ListVolumes` listing (`--timeout`).
    pub timeout: Duration,
    /// The driver has `PUBLISH_READONLY`; without it `readonly` is always false, as the CSI
    /// spec requires.
    pub supports_publish_read_only: bool,
    /// The driver has `SINGLE_NODE_MULTI_WRITER` (changes the access mode mapping).
    pub supports_single_node_multi_writer: bool,
    /// The fsType used when the PersistentVolume has none (`--default-fstype`).
    pub default_fs_type: String,
    /// Save the gRPC code in `attachError.errorCode` (feature gate
    /// `MutableCSINodeAllocatableCount`, GA and on by default).
    pub attach_error_code: bool,
}

impl CsiHandlerConfig {
    /// Upstream's defaults for `attacher_name`: a 15 s timeout, no optional capabilities, no
    /// default fsType, error codes saved.
    pub fn new(attacher_name: impl Into<String>) -> Self {
        CsiHandlerConfig {
            attacher_name: attacher_name.into(),
            timeout: Duration::from_secs(15),
            supports_publish_read_only: false,
            supports_single_node_multi_writer: false,
            default_fs_type: String::new(),
            attach_error_code: true,
        }
    }
}

/// An operation failed: the error, and the VolumeAttachment (as last written) to save it on.
struct Failed {
    va: Box<VolumeAttachment>,
    error: OperationError,
}

impl Failed {
    fn new(va: &VolumeAttachment, error: OperationError) -> Self {
        Failed {
            va: Box::new(va.clone()),
            error,
        }
    }
}

/// Upstream's `csiHandler`: attaches and detaches through the CSI driver.
pub struct CsiHandler {
    config: CsiHandlerConfig,
    finalizer: String,
    client: Arc<dyn KubeClient>,
    listers: Arc<dyn KubeListers>,
    attacher: Arc<dyn Attacher>,
    volume_lister: Option<Arc<dyn VolumeLister>>,
    /// VolumeAttachments the reconciler wants attached or detached whatever their status says.
    force_sync: Mutex<HashSet<String>>,
}

impl fmt::Debug for CsiHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsiHandler")
            .field("config", &self.config)
            .field("reconciles", &self.volume_lister.is_some())
            .finish_non_exhaustive()
    }
}

impl CsiHandler {
    /// A handler. `volume_lister` is needed only for
    /// [`reconcile_volume_attachments`](Handler::reconcile_volume_attachments) (the driver has
    /// `LIST_VOLUMES_PUBLISHED_NODES`); without it reconciling does nothing.
    pub fn new(
        config: CsiHandlerConfig,
        client: Arc<dyn KubeClient>,
        listers: Arc<dyn KubeListers>,
        attacher: Arc<dyn Attacher>,
        volume_lister: Option<Arc<dyn VolumeLister>>,
    ) -> Self {
        CsiHandler {
            finalizer: finalizer_name(&config.attacher_name),
            config,
            client,
            listers,
            attacher,
            volume_lister,
            force_sync: Mutex::new(HashSet::new()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &CsiHandlerConfig {
        &self.config
    }

    fn set_force_sync(&self, name: &str) {
        self.force_sync
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string());
    }

    /// Whether a forced sync was asked for `name`, forgetting the request.
    fn consume_force_sync(&self, name: &str) -> bool {
        self.force_sync
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
    }

    fn has_va_finalizer(&self, va: &VolumeAttachment) -> bool {
        va.metadata
            .finalizers
            .as_deref()
            .unwrap_or_default()
            .contains(&self.finalizer)
    }

    async fn sync_va(&self, va: &VolumeAttachment) -> SyncOutcome {
        let name = va.metadata.name.as_deref().unwrap_or_default();
        debug!(
            v = 4,
            VolumeAttachment = name,
            "CSIHandler: processing VolumeAttachment"
        );
        let result = if va.metadata.deletion_timestamp.is_none() {
            self.sync_attach(va).await
        } else {
            self.sync_detach(va).await
        };
        match result {
            Err(err) => {
                debug!(v = 2, VolumeAttachment = name, err = %err, "Error processing");
                SyncOutcome::Requeue(err)
            }
            Ok(()) => {
                debug!(
                    v = 4,
                    VolumeAttachment = name,
                    "CSIHandler: finished processing"
                );
                SyncOutcome::Forget
            }
        }
    }

    async fn sync_attach(&self, va: &VolumeAttachment) -> Result<(), SyncError> {
        let name = va.metadata.name.as_deref().unwrap_or_default();
        if !self.consume_force_sync(name) && is_attached(va) {
            debug!(
                v = 4,
                VolumeAttachment = name,
                "VolumeAttachment is already attached"
            );
            return Ok(());
        }
        debug!(v = 2, VolumeAttachment = name, "Attaching");
        let (va, metadata) = match self.csi_attach(va).await {
            Ok(done) => done,
            Err(Failed { va, error }) => {
                if let Err(save) = self.save_attach_error(&va, &error).await {
                    debug!(
                        v = 2,
                        VolumeAttachment = name,
                        err = %save,
                        "Failed to save attach error to VolumeAttachment"
                    );
                }
                return Err(SyncError::Attach(error));
            }
        };
        debug!(v = 2, VolumeAttachment = name, "Attached");
        mark_as_attached(&*self.client, &va, metadata)
            .await
            .map_err(SyncError::MarkAttached)?;
        debug!(v = 4, VolumeAttachment = name, "Fully attached");
        Ok(())
    }

    async fn sync_detach(&self, va: &VolumeAttachment) -> Result<(), SyncError> {
        let name = va.metadata.name.as_deref().unwrap_or_default();
        debug!(v = 4, VolumeAttachment = name, "Starting detach operation");
        if !self.consume_force_sync(name) && !self.has_va_finalizer(va) {
            debug!(
                v = 4,
                VolumeAttachment = name,
                "VolumeAttachment is already detached"
            );
            return Ok(());
        }
        debug!(v = 2, VolumeAttachment = name, "Detaching");
        if let Err(Failed { va, error }) = self.csi_detach(va).await {
            if let Err(save) = self.save_detach_error(&va, &error).await {
                debug!(
                    v = 2,
                    VolumeAttachment = name,
                    err = %save,
                    "Failed to save detach error to VolumeAttachment"
                );
            }
            return Err(SyncError::Detach(error));
        }
        debug!(v = 4, VolumeAttachment = name, "Fully detached");
        Ok(())
    }

    /// A PersistentVolume from the cache.
    fn persistent_volume(&self, name: &str) -> Result<Arc<PersistentVolume>, OperationError> {
        self.listers
            .persistent_volume(name)
            .map_err(OperationError::PersistentVolume)
    }

    async fn csi_attach(
        &self,
        va: &VolumeAttachment,
    ) -> Result<(VolumeAttachment, Option<BTreeMap<String, String>>), Failed> {
        let name = va.metadata.name.as_deref().unwrap_or_default();
        debug!(v = 4, VolumeAttachment = name, "Starting attach operation");
        let fail = |error| Failed::new(va, error);
        // Check as much as possible before adding the VolumeAttachment finalizer: it would
        // block deletion of the VolumeAttachment on error.
        let source = &va.spec.source;
        let (pv_spec, inline, migrated) =
            match (&source.persistent_volume_name, &source.inline_volume_spec) {
                (Some(_), Some(_)) => return Err(fail(OperationError::BothSources)),
                (Some(pv_name), None) => {
                    let pv = self.persistent_volume(pv_name).map_err(fail)?;
                    if pv.metadata.deletion_timestamp.is_some() {
                        return Err(fail(OperationError::PersistentVolumeDeleted(
                            pv_name.clone(),
                        )));
                    }
                    let pv = self
                        .add_pv_finalizer(&pv)
                        .await
                        .map_err(|e| fail(OperationError::AddPersistentVolumeFinalizer(e)))?;
                    // CSI migration: an in-tree PV is attached as the CSI PV it translates to.
                    let (pv, migrated) = translate_if_migratable(pv).map_err(fail)?;
                    (pv.spec.unwrap_or_default(), false, migrated)
                }
                (None, Some(inline)) => ((*inline).clone(), true, false),
                (None, None) => return Err(fail(OperationError::NoSource)),
            };
        let Some(csi) = pv_spec.csi.as_ref() else {
            return Err(fail(if inline {
                OperationError::InlineWithoutCsi
            } else {
                OperationError::NonCsiSource
            }));
        };

        let attributes: HashMap<String, String> = csi
            .volume_attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let (handle, mut read_only) = volume_handle(csi);
        if !self.config.supports_publish_read_only {
            // "CO MUST set this field to false if SP does not have the PUBLISH_READONLY
            // controller capability"
            read_only = false;
        }
        let capability = volume_capabilities(
            &pv_spec,
            self.config.supports_single_node_multi_writer,
            &self.config.default_fs_type,
        )
        .map_err(|e| fail(OperationError::VolumeCapability(e)))?;
        let secrets = self.credentials(csi).await.map_err(fail)?;
        let node_id = self
            .node_id(&va.spec.node_name, None)
            .map_err(|e| fail(OperationError::NodeId(e)))?;

        // The finalizer and the node ID annotation, in one patch.
        let mut modified = va.clone();
        let mut changed = false;
        if self.has_va_finalizer(va) {
            debug!(
                v = 4,
                VolumeAttachment = name,
                "VolumeAttachment finalizer is already set"
            );
        } else {
            modified
                .metadata
                .finalizers
                .get_or_insert_with(Vec::new)
                .push(self.finalizer.clone());
            changed = true;
            debug!(
                v = 4,
                VolumeAttachment = name,
                "VolumeAttachment finalizer added"
            );
        }
        let current_id = va
            .metadata
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(VA_NODE_ID_ANNOTATION));
        if current_id == Some(&node_id) {
            debug!(v = 4, VolumeAttachment = name, nodeID = %node_id, "NodeID annotation is already set");
        } else {
            modified
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(VA_NODE_ID_ANNOTATION.to_string(), node_id.clone());
            changed = true;
            debug!(v = 4, VolumeAttachment = name, nodeID = %node_id, "NodeID annotation added");
        }
        let va = if changed {
            let patch = va_patch(va, &modified)
                .map_err(|e| fail(OperationError::SaveVolumeAttachment(e)))?;
            self.client
                .patch_volume_attachment(name, &patch)
                .await
                .map_err(|e| fail(OperationError::SaveVolumeAttachment(e)))?
        } else {
            va.clone()
        };

        let request = ControllerPublishVolumeRequest {
            volume_id: handle,
            node_id,
            volume_capability: Some(capability),
            readonly: read_only,
            secrets,
            volume_context: attributes,
        };
        // Not interested in whether a failed call left the volume detached: the controller
        // detaches to be sure when the VolumeAttachment goes.
        let attach = self.attacher.attach(request, self.config.timeout);
        match csi_connection::mark_as_migrated(migrated, attach).await {
            Ok(context) => {
                let metadata = (!context.is_empty()).then(|| context.into_iter().collect());
                Ok((va, metadata))
            }
            Err(err) => Err(Failed::new(&va, OperationError::Csi(err))),
        }
    }

    async fn csi_detach(&self, va: &VolumeAttachment) -> Result<(), Failed> {
        let name = va.metadata.name.as_deref().unwrap_or_default();
        debug!(v = 4, VolumeAttachment = name, "Starting detach operation");
        let fail = |error| Failed::new(va, error);
        let source = &va.spec.source;
        let (csi, migrated): (CSIPersistentVolumeSource, bool) =
            match (&source.persistent_volume_name, &source.inline_volume_spec) {
                (Some(_), Some(_)) => return Err(fail(OperationError::BothSources)),
                (Some(pv_name), None) => {
                    let pv = self.persistent_volume(pv_name).map_err(fail)?;
                    let (pv, migrated) = translate_if_migratable((*pv).clone()).map_err(fail)?;
                    let csi = pv
                        .spec
                        .as_ref()
                        .and_then(|spec| spec.csi.clone())
                        .ok_or_else(|| fail(OperationError::NonCsiSource))?;
                    (csi, migrated)
                }
                (None, Some(inline)) => (
                    inline
                        .csi
                        .clone()
                        .ok_or_else(|| fail(OperationError::InlineWithoutCsi))?,
                    false,
                ),
                (None, None) => return Err(fail(OperationError::NoSource)),
            };
        let (handle, _) = volume_handle(&csi);
        let secrets = self.credentials(&csi).await.map_err(fail)?;
        let node_id = self
            .node_id(&va.spec.node_name, Some(va))
            .map_err(|e| fail(OperationError::NodeId(e)))?;

        let request = ControllerUnpublishVolumeRequest {
            volume_id: handle,
            node_id,
            secrets,
        };
        let detach = self.attacher.detach(request, self.config.timeout);
        if let Err(err) = csi_connection::mark_as_migrated(migrated, detach).await {
            // The volume may not be fully detached: save the error, try again after backoff.
            return Err(fail(OperationError::Csi(err)));
        }
        debug!(v = 2, VolumeAttachment = name, "Detached");

        mark_as_detached(&*self.client, va)
            .await
            .map_err(|e| Failed {
                va: e.volume_attachment,
                error: OperationError::MarkDetached(e.error),
            })?;
        Ok(())
    }

    /// Upstream's `addPVFinalizer`: a JSON patch appending the finalizer, unless it is there.
    async fn add_pv_finalizer(&self, pv: &PersistentVolume) -> Result<PersistentVolume, ApiError> {
        let name = pv.metadata.name.as_deref().unwrap_or_default();
        let finalizers = pv.metadata.finalizers.as_deref();
        if finalizers.unwrap_or_default().contains(&self.finalizer) {
            debug!(
                v = 4,
                PersistentVolume = name,
                "PersistentVolume finalizer is already set"
            );
            return Ok(pv.clone());
        }
        debug!(
            v = 4,
            PersistentVolume = name,
            "Adding finalizer to PersistentVolume"
        );
        let patch = add_finalizer_patch(finalizers, &self.finalizer);
        let patched = self
            .client
            .json_patch_persistent_volume(name, &patch)
            .await?;
        debug!(
            v = 4,
            PersistentVolume = name,
            "PersistentVolume finalizer added"
        );
        Ok(patched)
    }

    /// Upstream's `getCredentialsFromPV`: the `controllerPublishSecretRef` secret's data, read
    /// with a direct GET (nothing when the volume has no such reference).
    async fn credentials(
        &self,
        csi: &CSIPersistentVolumeSource,
    ) -> Result<HashMap<String, String>, OperationError> {
        let Some(secret_ref) = &csi.controller_publish_secret_ref else {
            return Ok(HashMap::new());
        };
        let reference = SecretReference {
            name: secret_ref.name.clone(),
            namespace: secret_ref.namespace.clone(),
        };
        match secret_data(self.client.as_ref(), &reference).await {
            Ok(data) => Ok(data.into_map()),
            Err(err) => Err(OperationError::Secret {
                namespace: err.namespace,
                name: err.name,
                error: err.error,
            }),
        }
    }

    /// Upstream's `getNodeID`: the node ID from the CSINode; failing that, and only when `va`
    /// is given (detach, reconcile), from the VolumeAttachment's node ID annotation.
    fn node_id(
        &self,
        node_name: &str,
        va: Option<&VolumeAttachment>,
    ) -> Result<String, NodeIdError> {
        let driver = &self.config.attacher_name;
        let err = match self.listers.csi_node(node_name) {
            Ok(csi_node) => match node_id_from_csi_node(driver, &csi_node) {
                Some(node_id) => {
                    debug!(v = 4, nodeID = %node_id, CSINode = node_name, "Found nodeID in CSINode");
                    return Ok(node_id);
                }
                // The driver is not running on the node (it may be shut down): do as if the
                // CSINode were missing, so that detaching is not blocked.
                None => NodeIdError::DriverNotRegistered {
                    node: node_name.to_string(),
                    driver: driver.clone(),
                },
            },
            Err(err) => NodeIdError::CsiNode(err),
        };
        debug!(v = 4, nodeName = node_name, err = %err, "Failed to get nodeID from CSINode");
        va.and_then(|va| va.metadata.annotations.as_ref())
            .and_then(|annotations| annotations.get(VA_NODE_ID_ANNOTATION))
            .cloned()
            .ok_or(err)
    }

    async fn save_attach_error(
        &self,
        va: &VolumeAttachment,
        err: &OperationError,
    ) -> Result<VolumeAttachment, ApiError> {
        let name = va.metadata.name.as_deref().unwrap_or_default();
        debug!(v = 4, VolumeAttachment = name, "Saving attach error");
        let error_code = match err {
            OperationError::Csi(csi) if self.config.attach_error_code => {
                csi.code().map(|code| code as i32)
            }
            _ => None,
        };
        let mut clone = va.clone();
        clone
            .status
            .get_or_insert_with(Default::default)
            .attach_error = Some(VolumeError {
            error_code,
            message: Some(err.to_string()),
            time: Some(Time(Timestamp::now())),
        });
        let patch = va_patch(va, &clone)?;
        let patched = self
            .client
            .patch_volume_attachment_status(name, &patch)
            .await?;
        debug!(v = 4, VolumeAttachment = name, "Saved attach error");
        Ok(patched)
    }

    async fn save_detach_error(
        &self,
        va: &VolumeAttachment,
        err: &OperationError,
    ) -> Result<VolumeAttachment, ApiError> {
        let name = va.metadata.name.as_deref().unwrap_or_default();
        debug!(v = 4, VolumeAttachment = name, "Saving detach error");
        let mut clone = va.clone();
        clone
            .status
            .get_or_insert_with(Default::default)
            .detach_error = Some(VolumeError {
            error_code: None,
            message: Some(err.to_string()),
            time: Some(Time(Timestamp::now())),
        });
        let patch = va_patch(va, &clone)?;
        let patched = self
            .client
            .patch_volume_attachment_status(name, &patch)
            .await?;
        debug!(v = 4, VolumeAttachment = name, "Saved detach error");
        Ok(patched)
    }

    async fn sync_pv(&self, pv: &PersistentVolume) -> SyncOutcome {
        let name = pv.metadata.name.as_deref().unwrap_or_default();
        debug!(
            v = 4,
            PersistentVolume = name,
            "CSIHandler: processing PersistentVolume"
        );
        if pv.metadata.deletion_timestamp.is_none() {
            let mut ignore = true;
            // A migratable in-tree PV without our migrated-to annotation: CSI migration was
            // turned off, give the PV back to kube-controller-manager.
            if is_pv_migratable(pv) {
                ignore = false;
                if let Some(annotations) = &pv.metadata.annotations {
                    let migrated_to = annotations
                        .get(ANN_MIGRATED_TO)
                        .map(String::as_str)
                        .unwrap_or_default();
                    if migrated_to == self.config.attacher_name {
                        ignore = true;
                    } else {
                        debug!(
                            v = 4,
                            PersistentVolume = name,
                            expect = %self.config.attacher_name,
                            get = migrated_to,
                            "CSIHandler: PersistentVolume is an in-tree PV but does not have migrated-to annotation or the annotation does not match. Remove the finalizer for this PersistentVolume"
                        );
                    }
                }
            }
            if ignore {
                debug!(
                    v = 4,
                    PersistentVolume = name,
                    "CSIHandler: processing PersistentVolume: no deletion timestamp, ignoring"
                );
                return SyncOutcome::Forget;
            }
        }

        let finalizers = pv.metadata.finalizers.as_deref();
        if !finalizers.unwrap_or_default().contains(&self.finalizer) {
            debug!(
                v = 4,
                PersistentVolume = name,
                "CSIHandler: processing PersistentVolume: no finalizer, ignoring"
            );
            return SyncOutcome::Forget;
        }

        let vas = match self.listers.volume_attachments() {
            Ok(vas) => vas,
            Err(err) => {
                error!(PersistentVolume = name, err = %err, "Failed to list VolumeAttachments for PersistentVolume");
                return SyncOutcome::Requeue(SyncError::ListVolumeAttachments(err));
            }
        };
        if let Some(va) = vas
            .iter()
            .find(|va| va.spec.source.persistent_volume_name.as_deref() == Some(name))
        {
            debug!(
                v = 4,
                PersistentVolume = name,
                VolumeAttachment = va.metadata.name.as_deref().unwrap_or_default(),
                "CSIHandler: processing PersistentVolume: VolumeAttachment was found"
            );
            return SyncOutcome::Forget;
        }

        debug!(
            v = 4,
            PersistentVolume = name,
            "CSIHandler: processing PersistentVolume: no VolumeAttachment found, removing finalizer"
        );
        let Some(patch) = remove_finalizer_patch(finalizers, &self.finalizer) else {
            error!(
                PersistentVolume = name,
                "Failed to create remove-finalizer patch for PersistentVolume"
            );
            return SyncOutcome::Requeue(SyncError::FinalizerNotFound(self.finalizer.clone()));
        };
        if let Err(err) = self.client.json_patch_persistent_volume(name, &patch).await {
            error!(PersistentVolume = name, err = %err, "Failed to remove finalizer from PersistentVolume");
            return SyncOutcome::Requeue(SyncError::RemovePersistentVolumeFinalizer(err));
        }
        debug!(
            v = 2,
            PersistentVolume = name,
            "Removed finalizer from PersistentVolume"
        );
        SyncOutcome::Forget
    }

    /// Upstream's `getProcessedPVSpec`.
    fn processed_pv_spec(
        &self,
        va: &VolumeAttachment,
    ) -> Result<PersistentVolumeSpec, OperationError> {
        let source = &va.spec.source;
        match (&source.persistent_volume_name, &source.inline_volume_spec) {
            (Some(_), Some(_)) => Err(OperationError::BothSources),
            (Some(pv_name), None) => {
                let pv = self.persistent_volume(pv_name)?;
                if !is_pv_migratable(&pv) {
                    return Ok(pv.spec.clone().unwrap_or_default());
                }
                csi_translation::translate_in_tree_pv_to_csi(&pv)
                    .map(|pv| pv.spec.unwrap_or_default())
                    .map_err(|error| OperationError::TranslateSpec {
                        persistent_volume: pv.metadata.name.clone().unwrap_or_default(),
                        error,
                    })
            }
            (None, Some(inline)) => {
                if inline.csi.is_none() {
                    return Err(OperationError::InlineWithoutCsi);
                }
                Ok((*inline).clone())
            }
            (None, None) => Err(OperationError::NoSource),
        }
    }

    /// Upstream's `isMigratable`: whether the volume handle may need csi-translation-lib's
    /// repair (in-tree PVs, and every inline volume).
    fn is_migratable(&self, va: &VolumeAttachment) -> Result<bool, OperationError> {
        let source = &va.spec.source;
        if let Some(pv_name) = &source.persistent_volume_name {
            Ok(is_pv_migratable(&*self.persistent_volume(pv_name)?))
        } else if let Some(inline) = &source.inline_volume_spec {
            if inline.csi.is_none() {
                return Err(OperationError::InlineWithoutCsi);
            }
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn reconcile(&self) -> Result<Vec<String>, ReconcileError> {
        let Some(volume_lister) = &self.volume_lister else {
            return Ok(Vec::new());
        };
        debug!(
            v = 4,
            "Reconciling VolumeAttachments with driver backend state"
        );
        let vas = self
            .listers
            .volume_attachments()
            .map_err(ReconcileError::ListVolumeAttachments)?;
        let published = volume_lister
            .list_volumes(self.config.timeout)
            .await
            .map_err(ReconcileError::ListVolumes)?;

        let mut requeue = Vec::new();
        for va in vas {
            if va.spec.attacher != self.config.attacher_name {
                // Another driver's.
                continue;
            }
            let name = va.metadata.name.as_deref().unwrap_or_default();
            let node_id = match self.node_id(&va.spec.node_name, Some(&va)) {
                Ok(node_id) => node_id,
                Err(err) => {
                    error!(VolumeAttachment = name, err = %err, "Failed to find node ID err");
                    continue;
                }
            };
            let pv_spec = match self.processed_pv_spec(&va) {
                Ok(spec) => spec,
                Err(err) => {
                    error!(VolumeAttachment = name, err = %err, "Failed to get PV Spec");
                    continue;
                }
            };
            let Some(csi) = pv_spec.csi.as_ref() else {
                error!(
                    VolumeAttachment = name,
                    err = %OperationError::NonCsiSource,
                    "Failed to get CSI Source"
                );
                continue;
            };
            let (mut handle, _) = volume_handle(csi);
            let attached = is_attached(&va);
            let migratable = match self.is_migratable(&va) {
                Ok(migratable) => migratable,
                Err(err) => {
                    error!(
                        VolumeAttachment = name,
                        err = %err,
                        volumeHandle = %handle,
                        sourceDriver = %csi.driver,
                        "Failed to check if migratable for volume handle"
                    );
                    continue;
                }
            };
            if migratable {
                handle = match csi_translation::repair_volume_handle(&csi.driver, &handle, &node_id)
                {
                    Ok(handle) => handle,
                    Err(err) => {
                        error!(
                            VolumeAttachment = name,
                            err = %err,
                            volumeHandle = %handle,
                            sourceDriver = %csi.driver,
                            "Failed to repair volume handle for driver"
                        );
                        continue;
                    }
                };
            }
            let found = published
                .get(&handle)
                .is_some_and(|nodes| nodes.contains(&node_id));
            if attached != found {
                error!(
                    VolumeAttachment = name,
                    volumeHandle = %handle,
                    attachedStatus = attached,
                    found,
                    "VolumeAttachment attached status and actual state do not match. Adding back to VolumeAttachment queue for forced reprocessing"
                );
                // Forced through the queue rather than attached/detached here, so that it
                // cannot race with the queue's worker.
                self.set_force_sync(name);
                requeue.push(name.to_string());
            }
        }
        Ok(requeue)
    }
}

/// CSI migration: an in-tree PV becomes the CSI PV csi-translation-lib makes of it (`true`: its
/// CSI calls are marked as migrated); a CSI PV stays as it is.
fn translate_if_migratable(
    pv: PersistentVolume,
) -> Result<(PersistentVolume, bool), OperationError> {
    if !is_pv_migratable(&pv) {
        return Ok((pv, false));
    }
    csi_translation::translate_in_tree_pv_to_csi(&pv)
        .map(|pv| (pv, true))
        .map_err(OperationError::Translate)
}

impl Handler for CsiHandler {
    fn sync_volume_attachment<'a>(
        &'a self,
        va: &'a VolumeAttachment,
    ) -> BoxFuture<'a, SyncOutcome> {
        Box::pin(self.sync_va(va))
    }

    fn sync_persistent_volume<'a>(
        &'a self,
        pv: &'a PersistentVolume,
    ) -> BoxFuture<'a, SyncOutcome> {
        Box::pin(self.sync_pv(pv))
    }

    fn reconcile_volume_attachments(&self) -> BoxFuture<'_, Result<Vec<String>, ReconcileError>> {
        Box::pin(self.reconcile())
    }

    fn forget_volume_attachment(&self, name: &str) {
        self.consume_force_sync(name);
    }
}

/// Upstream's `trivialHandler`, for drivers without `PUBLISH_UNPUBLISH_VOLUME`: marks every
/// VolumeAttachment attached. It adds no finalizer, so deleting a VolumeAttachment is instant
/// (there is nothing to detach).
#[derive(Debug, Clone)]
pub struct TrivialHandler {
    client: Arc<dyn KubeClient>,
}

impl TrivialHandler {
    /// A handler writing through `client`.
    pub fn new(client: Arc<dyn KubeClient>) -> Self {
        TrivialHandler { client }
    }
}

impl Handler for TrivialHandler {
    fn sync_volume_attachment<'a>(
        &'a self,
        va: &'a VolumeAttachment,
    ) -> BoxFuture<'a, SyncOutcome> {
        Box::pin(async move {
            let name = va.metadata.name.as_deref().unwrap_or_default();
            debug!(v = 4, VolumeAttachment = name, "Trivial sync started");
            if !is_attached(va) {
                if let Err(err) = mark_as_attached(&*self.client, va, None).await {
                    error!(VolumeAttachment = name, err = %err, "Error saving VolumeAttachment as attached");
                    return SyncOutcome::Requeue(SyncError::MarkAttached(err));
                }
                info!(
                    v = 2,
                    VolumeAttachment = name,
                    "Marked VolumeAttachment as attached"
                );
            }
            SyncOutcome::Forget
        })
    }

    fn sync_persistent_volume<'a>(
        &'a self,
        _pv: &'a PersistentVolume,
    ) -> BoxFuture<'a, SyncOutcome> {
        // Upstream does nothing at all here (no Forget either).
        Box::pin(async { SyncOutcome::Done })
    }

    fn reconcile_volume_attachments(&self) -> BoxFuture<'_, Result<Vec<String>, ReconcileError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
