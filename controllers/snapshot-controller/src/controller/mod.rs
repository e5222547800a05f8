//! The snapshot half of upstream's common controller (`pkg/common-controller`
//! `snapshot_controller_base.go` and `snapshot_controller.go`): two work queues
//! (`snapshot-controller-snapshot`, `-content`) fed by the VolumeSnapshot and
//! VolumeSnapshotContent watches, and the syncs behind them.
//!
//! - [`snapshot`]: a VolumeSnapshot's sync: validation, finalizers, binding to a
//!   pre-provisioned content, creating the content of a dynamic snapshot, deletion.
//! - [`content`]: a VolumeSnapshotContent's sync: its finalizer, telling the snapshot to
//!   update, marking it for deletion.
//! - [`status`]: the snapshot's status from its content (binding, `readyToUse`, `restoreSize`,
//!   `creationTime`, errors) and the error status with its Event.
//! - [`pvc`]: the source PVC and PV, the PVC's finalizer, the managed-by node.
//! - [`finalizer`]: the snapshot's finalizers.
//! - [`class`]: the snapshot class, the default class.
//!
//! Group snapshots live in [`crate::group`] and use the same caches and API.

pub mod class;
pub mod content;
pub mod finalizer;
pub mod pvc;
pub mod snapshot;
pub mod status;
pub mod store;

use std::sync::Arc;

use csi_controller::ApiError;
use csi_crd_types::snapshot::v1::{VolumeSnapshot, VolumeSnapshotContent};
use csi_kube::EventRecorder;
use csi_snapshot_utils as utils;
use csi_workqueue::WorkQueue;
use tracing::{debug, error, info};

use crate::api::{Listers, SnapshotApi};
use crate::metrics::{self, OperationKey, OperationMetrics};
use store::VersionedStore;

/// The snapshot queue's name.
pub const SNAPSHOT_QUEUE: &str = "snapshot-controller-snapshot";
/// The content queue's name.
pub const CONTENT_QUEUE: &str = "snapshot-controller-content";
/// The Events' component.
pub const EVENT_COMPONENT: &str = "snapshot-controller";

const CONTROLLER_UPDATE_FAIL_MSG: &str = "snapshot controller failed to update";

/// Why a sync failed: its message is what upstream's error says (and what ends up in a
/// snapshot's `status.error` where upstream puts it there).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SyncError {
    /// The message.
    pub message: String,
    /// The API error behind it, when there is one.
    pub api: Option<ApiError>,
}

impl SyncError {
    /// An error with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        SyncError {
            message: message.into(),
            api: None,
        }
    }

    /// upstream's `controllerUpdateError`: `snapshot controller failed to update <name> on
    /// API server: <message>`.
    pub fn update(name: &str, message: impl std::fmt::Display) -> Self {
        SyncError::new(format!(
            "{CONTROLLER_UPDATE_FAIL_MSG} {name} on API server: {message}"
        ))
    }

    /// Whether the API server said NotFound.
    pub fn is_not_found(&self) -> bool {
        self.api.as_ref().is_some_and(ApiError::is_not_found)
    }

    /// Whether the API server said Conflict.
    pub fn is_conflict(&self) -> bool {
        self.api.as_ref().is_some_and(ApiError::is_conflict)
    }
}

impl From<ApiError> for SyncError {
    fn from(err: ApiError) -> Self {
        SyncError {
            message: err.message.clone(),
            api: Some(err),
        }
    }
}

/// The result of a sync.
pub type Result<T, E = SyncError> = std::result::Result<T, E>;

/// The controller's switches (`--enable-distributed-snapshotting`,
/// `--prevent-volume-mode-conversion`, whether the group snapshot CRDs are served).
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// Label dynamic contents with the node whose sidecar takes the snapshot.
    pub enable_distributed_snapshotting: bool,
    /// Record the source volume's mode in dynamic contents.
    pub prevent_volume_mode_conversion: bool,
    /// Group snapshots are on.
    pub enable_volume_group_snapshots: bool,
}

/// The snapshot controller: its queues, caches, API client, Events and metrics.
#[derive(Debug)]
pub struct SnapshotController {
    /// The switches.
    pub config: Config,
    pub(crate) api: Arc<dyn SnapshotApi>,
    pub(crate) listers: Arc<dyn Listers>,
    pub(crate) events: Arc<dyn EventRecorder>,
    pub(crate) metrics: OperationMetrics,
    pub(crate) snapshot_store: VersionedStore<VolumeSnapshot>,
    pub(crate) content_store: VersionedStore<VolumeSnapshotContent>,
    /// VolumeSnapshot keys (`namespace/name`) to sync.
    pub snapshot_queue: WorkQueue<String>,
    /// VolumeSnapshotContent names to sync.
    pub content_queue: WorkQueue<String>,
}

impl std::fmt::Debug for dyn Listers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listers")
    }
}

/// What a [`SnapshotController`] is made of.
#[derive(Clone, Debug)]
pub struct Parts {
    /// The API server.
    pub api: Arc<dyn SnapshotApi>,
    /// The caches.
    pub listers: Arc<dyn Listers>,
    /// Events.
    pub events: Arc<dyn EventRecorder>,
    /// Operation metrics.
    pub metrics: OperationMetrics,
    /// The snapshot queue.
    pub snapshot_queue: WorkQueue<String>,
    /// The content queue.
    pub content_queue: WorkQueue<String>,
}

pub(crate) fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

pub(crate) fn namespace(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or_default()
}

pub(crate) fn uid(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.uid.as_deref().unwrap_or_default()
}

impl SnapshotController {
    /// A controller with empty own stores.
    pub fn new(config: Config, parts: Parts) -> Self {
        SnapshotController {
            config,
            api: parts.api,
            listers: parts.listers,
            events: parts.events,
            metrics: parts.metrics,
            snapshot_store: VersionedStore::new("snapshot"),
            content_store: VersionedStore::new("content"),
            snapshot_queue: parts.snapshot_queue,
            content_queue: parts.content_queue,
        }
    }

    /// Records a snapshot version (upstream's `storeSnapshotUpdate`).
    pub(crate) fn store_snapshot_update(&self, snapshot: Arc<VolumeSnapshot>) -> Result<bool> {
        self.snapshot_store
            .update(&utils::snapshot_key(&snapshot), snapshot)
            .map_err(SyncError::new)
    }

    /// Records a content version (upstream's `storeContentUpdate`).
    pub(crate) fn store_content_update(&self, content: Arc<VolumeSnapshotContent>) -> Result<bool> {
        let key = name(&content.metadata).to_string();
        self.content_store
            .update(&key, content)
            .map_err(SyncError::new)
    }

    /// Fills the own stores from the caches (upstream's `initializeCaches`).
    pub fn initialize_caches(
        &self,
        snapshots: Vec<Arc<VolumeSnapshot>>,
        contents: Vec<Arc<VolumeSnapshotContent>>,
    ) {
        for snapshot in snapshots {
            if let Err(err) = self.store_snapshot_update(snapshot) {
                error!("error updating volume snapshot cache: {err}");
            }
        }
        for content in contents {
            if let Err(err) = self.store_content_update(content) {
                error!("error updating volume snapshot content cache: {err}");
            }
        }
        debug!("controller initialized");
    }

    /// Syncs the snapshot `key` (`namespace/name`): the watch's version if it exists, else
    /// the deletion of the last one this controller saw (upstream's `syncSnapshotByKey`).
    pub async fn sync_snapshot_by_key(&self, key: &str) -> Result<()> {
        let Some((ns, snapshot_name)) = key.split_once('/') else {
            error!(
                "error getting namespace & name of snapshot {key:?} to get snapshot from informer"
            );
            return Ok(());
        };
        if let Some(snapshot) = self.listers.snapshot(ns, snapshot_name) {
            let (new_snapshot, result) = self.check_and_update_snapshot_class(snapshot).await;
            return match result {
                Ok(()) => self.update_snapshot(new_snapshot).await,
                Err(err)
                    if new_snapshot.metadata.deletion_timestamp.is_some() && err.is_not_found() =>
                {
                    debug!(
                        "Snapshot {key:?} is being deleted. SnapshotClass has already been removed"
                    );
                    self.update_snapshot(new_snapshot).await
                }
                Err(err) => Err(err),
            };
        }
        let Some(snapshot) = self.snapshot_store.get(key) else {
            debug!("deletion of snapshot {key:?} was already processed");
            return Ok(());
        };
        self.delete_snapshot(&snapshot);
        Ok(())
    }

    /// Syncs the content `name` (upstream's `syncContentByKey`).
    pub async fn sync_content_by_key(&self, content_name: &str) -> Result<()> {
        if let Some(content) = self.listers.content(content_name) {
            return self.update_content(content).await;
        }
        let Some(content) = self.content_store.get(content_name) else {
            debug!("deletion of content {content_name:?} was already processed");
            return Ok(());
        };
        self.delete_content(&content);
        Ok(())
    }

    async fn update_snapshot(&self, snapshot: Arc<VolumeSnapshot>) -> Result<()> {
        match self.store_snapshot_update(snapshot.clone()) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(err) => {
                error!("{err}");
                return Ok(());
            }
        }
        if let Err(err) = self.sync_snapshot(&snapshot).await {
            let key = utils::snapshot_key(&snapshot);
            if err.is_conflict() {
                debug!("could not sync snapshot {key:?}: {err}");
            } else {
                error!("could not sync snapshot {key:?}: {err}");
            }
            return Err(err);
        }
        Ok(())
    }

    async fn update_content(&self, content: Arc<VolumeSnapshotContent>) -> Result<()> {
        match self.store_content_update(content.clone()) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(err) => {
                error!("{err}");
                return Ok(());
            }
        }
        if let Err(err) = self.sync_content(&content).await {
            let content_name = name(&content.metadata);
            if err.is_conflict() {
                debug!("could not sync content {content_name:?}: {err}");
            } else {
                error!("could not sync content {content_name:?}: {err}");
            }
            return Err(err);
        }
        Ok(())
    }

    /// A snapshot is gone: forget it, record its deletion and sync its content.
    fn delete_snapshot(&self, snapshot: &VolumeSnapshot) {
        let key = utils::snapshot_key(snapshot);
        self.snapshot_store.delete(&key);
        debug!("snapshot {key:?} deleted");
        let driver = self.snapshot_driver_name(snapshot);
        self.metrics.record(
            &OperationKey::new(metrics::DELETE_SNAPSHOT, uid(&snapshot.metadata)),
            Some(metrics::STATUS_SUCCESS),
            &driver,
        );
        let content_name = snapshot
            .status
            .as_ref()
            .and_then(|s| s.bound_volume_snapshot_content_name.clone())
            .unwrap_or_default();
        if content_name.is_empty() {
            debug!("deleteSnapshot[{key:?}]: content not bound");
            return;
        }
        self.content_queue.add(content_name);
    }

    /// A content is gone: forget it and sync its snapshot.
    fn delete_content(&self, content: &VolumeSnapshotContent) {
        let content_name = name(&content.metadata);
        self.content_store.delete(content_name);
        debug!("content {content_name:?} deleted");
        let snapshot_key = utils::snapshot_ref_key(&content.spec.volume_snapshot_ref);
        if snapshot_key == "/" || snapshot_key.is_empty() {
            return;
        }
        info!(content = content_name, snapshot = %snapshot_key, "Content deleted; syncing its snapshot");
        self.snapshot_queue.add(snapshot_key);
    }
}
