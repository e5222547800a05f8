//! Upstream's `CSIAttachController`, without the machinery: which watch events put which keys
//! on which queue, and what processing one key means. The runtime owns the watches, the two
//! queues ([`VA_QUEUE_NAME`], [`PV_QUEUE_NAME`]), the workers and the reconcile timer, and
//! calls in here:
//!
//! | event | call | queue |
//! |---|---|---|
//! | VolumeAttachment added | [`AttachController::va_added`] | VA |
//! | VolumeAttachment updated | [`AttachController::va_updated`] | VA |
//! | VolumeAttachment deleted | [`AttachController::va_deleted`] | PV |
//! | PersistentVolume added | [`AttachController::pv_added`] | PV |
//! | PersistentVolume updated | [`AttachController::pv_updated`] | PV |
//! | VA worker | [`AttachController::sync_va`] → [`SyncOutcome`] | |
//! | PV worker | [`AttachController::sync_pv`] → [`SyncOutcome`] | |
//! | every `--reconcile-sync` (driver has `LIST_VOLUMES_PUBLISHED_NODES`) | [`AttachController::reconcile_va`] | VA |

use std::fmt;
use std::sync::Arc;

use csi_controller::semantic_eq;
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::VolumeAttachment;
use tracing::{debug, error};

use crate::handler::{Handler, ReconcileError, SyncError, SyncOutcome};
use crate::kube::KubeListers;
use crate::util::{ANN_MIGRATED_TO, finalizer_name};
use csi_translation::is_pv_migratable;

/// The name of the VolumeAttachment queue (its `workqueue_*{name}` metrics label).
pub const VA_QUEUE_NAME: &str = "csi-attacher-va";

/// The name of the PersistentVolume queue (its `workqueue_*{name}` metrics label).
pub const PV_QUEUE_NAME: &str = "csi-attacher-pv";

/// Upstream's `CSIAttachController`: routes events to queue keys and processes keys with a
/// [`Handler`]. Keys are object names (both resources are cluster-scoped).
#[derive(Clone)]
pub struct AttachController {
    attacher_name: String,
    finalizer: String,
    handler: Arc<dyn Handler>,
    listers: Arc<dyn KubeListers>,
}

impl fmt::Debug for AttachController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachController")
            .field("attacher_name", &self.attacher_name)
            .field("handler", &self.handler)
            .finish_non_exhaustive()
    }
}

impl AttachController {
    /// A controller for the VolumeAttachments of `attacher_name` (the driver name), reading
    /// objects from `listers` and handing them to `handler`.
    pub fn new(
        attacher_name: impl Into<String>,
        handler: Arc<dyn Handler>,
        listers: Arc<dyn KubeListers>,
    ) -> Self {
        let attacher_name = attacher_name.into();
        AttachController {
            finalizer: finalizer_name(&attacher_name),
            attacher_name,
            handler,
            listers,
        }
    }

    /// The driver name.
    pub fn attacher_name(&self) -> &str {
        &self.attacher_name
    }

    /// The handler.
    pub fn handler(&self) -> &Arc<dyn Handler> {
        &self.handler
    }

    /// Upstream's `vaAdded`: the VolumeAttachment queue key.
    pub fn va_added(&self, va: &VolumeAttachment) -> String {
        va.metadata.name.clone().unwrap_or_default()
    }

    /// Upstream's `vaUpdatedFunc`: the VolumeAttachment queue key, unless only the errors this
    /// controller itself saved changed ([`should_enqueue_va_change`]).
    pub fn va_updated(&self, old: &VolumeAttachment, new: &VolumeAttachment) -> Option<String> {
        let name = new.metadata.name.clone().unwrap_or_default();
        if should_enqueue_va_change(old, new) {
            Some(name)
        } else {
            debug!(v = 3, VolumeAttachment = %name, "Ignoring VolumeAttachment change");
            None
        }
    }

    /// Upstream's `vaDeleted`: the PersistentVolume queue key of the deleted attachment's
    /// volume, whose finalizer may now go.
    pub fn va_deleted(&self, va: &VolumeAttachment) -> Option<String> {
        va.spec.source.persistent_volume_name.clone()
    }

    /// Upstream's `pvAdded`: the PersistentVolume queue key, if [`Self::process_finalizers`].
    pub fn pv_added(&self, pv: &PersistentVolume) -> Option<String> {
        self.process_finalizers(pv)
            .then(|| pv.metadata.name.clone().unwrap_or_default())
    }

    /// Upstream's `pvUpdated`: as [`Self::pv_added`] for the new object.
    pub fn pv_updated(&self, _old: &PersistentVolume, new: &PersistentVolume) -> Option<String> {
        self.pv_added(new)
    }

    /// Upstream's `processFinalizers`: whether a PersistentVolume with this attacher's
    /// finalizer may need it removed: it is being deleted, or it is a migratable in-tree
    /// volume without a `pv.kubernetes.io/migrated-to` annotation naming this driver (CSI
    /// migration was rolled back).
    pub fn process_finalizers(&self, pv: &PersistentVolume) -> bool {
        let has_finalizer = pv
            .metadata
            .finalizers
            .as_deref()
            .unwrap_or_default()
            .contains(&self.finalizer);
        if !has_finalizer {
            return false;
        }
        if pv.metadata.deletion_timestamp.is_some() {
            return true;
        }
        if is_pv_migratable(pv) {
            let migrated_to_us = pv
                .metadata
                .annotations
                .as_ref()
                .and_then(|annotations| annotations.get(ANN_MIGRATED_TO))
                .is_some_and(|driver| *driver == self.attacher_name);
            return !migrated_to_us;
        }
        false
    }

    /// Upstream's `syncVA` for one key of the VolumeAttachment queue. The caller calls the
    /// queue's `done` afterwards and applies the outcome.
    pub async fn sync_va(&self, name: &str) -> SyncOutcome {
        debug!(
            v = 4,
            VolumeAttachment = name,
            "Started VolumeAttachment processing"
        );
        let va = match self.listers.volume_attachment(name) {
            Ok(va) => va,
            Err(err) if err.is_not_found() => {
                debug!(
                    v = 3,
                    VolumeAttachment = name,
                    "VolumeAttachment was deleted, ignoring"
                );
                self.handler.forget_volume_attachment(name);
                return SyncOutcome::Done;
            }
            Err(err) => {
                error!(VolumeAttachment = name, err = %err, "Error getting VolumeAttachment");
                return SyncOutcome::Requeue(SyncError::GetVolumeAttachment(err));
            }
        };
        if va.spec.attacher != self.attacher_name {
            debug!(
                v = 4,
                VolumeAttachment = name,
                attacher = %va.spec.attacher,
                "Skipping VolumeAttachment for attacher"
            );
            return SyncOutcome::Done;
        }
        self.handler.sync_volume_attachment(&va).await
    }

    /// Upstream's `syncPV` for one key of the PersistentVolume queue.
    pub async fn sync_pv(&self, name: &str) -> SyncOutcome {
        debug!(
            v = 4,
            PersistentVolume = name,
            "Started PersistentVolume processing"
        );
        let pv = match self.listers.persistent_volume(name) {
            Ok(pv) => pv,
            Err(err) if err.is_not_found() => {
                debug!(
                    v = 3,
                    PersistentVolume = name,
                    "PersistentVolume was deleted, ignoring"
                );
                return SyncOutcome::Done;
            }
            Err(err) => {
                error!(PersistentVolume = name, err = %err, "Error getting PersistentVolume");
                return SyncOutcome::Requeue(SyncError::GetPersistentVolume(err));
            }
        };
        self.handler.sync_persistent_volume(&pv).await
    }

    /// One pass of upstream's `ReconcileVA`: the VolumeAttachment keys to add to the queue
    /// (each marked for a forced attach or detach). Run it every `--reconcile-sync` when the
    /// driver has `LIST_VOLUMES_PUBLISHED_NODES`; log an error (upstream: "Failed to reconcile
    /// VolumeAttachment") and carry on.
    pub async fn reconcile_va(&self) -> Result<Vec<String>, ReconcileError> {
        self.handler.reconcile_volume_attachments().await
    }
}

/// Upstream's `shouldEnqueueVAChange`: `false` when two versions differ only in
/// `status.attachError`, `status.detachError`, `resourceVersion` and `managedFields` — the
/// errors this controller itself saved a moment ago; queueing them would call the driver
/// again and break the exponential backoff. A periodic resync (same resourceVersion) is always
/// queued.
pub fn should_enqueue_va_change(old: &VolumeAttachment, new: &VolumeAttachment) -> bool {
    if old.metadata.resource_version == new.metadata.resource_version {
        // Most probably a periodic sync.
        return true;
    }
    let errors = |va: &VolumeAttachment| {
        va.status.as_ref().map_or((false, false), |s| {
            (s.attach_error.is_some(), s.detach_error.is_some())
        })
    };
    if errors(old) == (false, false) && errors(new) == (false, false) {
        // The difference must be elsewhere than the errors.
        return true;
    }
    let mut sanitized = new.clone();
    sanitized.metadata.resource_version = old.metadata.resource_version.clone();
    sanitized.metadata.managed_fields = old.metadata.managed_fields.clone();
    let old_status = old.status.clone().unwrap_or_default();
    let status = sanitized.status.get_or_insert_with(Default::default);
    status.attach_error = old_status.attach_error;
    status.detach_error = old_status.detach_error;
    !semantic_eq(old, &sanitized)
}
