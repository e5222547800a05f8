//! The sidecar controller (upstream's `pkg/sidecar-controller`): VolumeSnapshotContents and,
//! with group snapshots on, VolumeGroupSnapshotContents of this driver, each from its own
//! watch into its own queue (`csi-snapshotter-content`, `csi-snapshotter-groupsnapshotcontent`)
//! with `--worker-threads` workers each.
//!
//! - [`content`]: what one content key leads to; [`group`]: one group content key.
//! - [`handler`]: the CSI call of a content (names, handles, timeout).
//! - [`kube`]: the Kubernetes reads and writes, behind traits.
//!
//! This module owns the watches it declares, its queues and workers, and the versions of the
//! contents it has seen (upstream's `contentStore`, which skips stale cache entries after the
//! sidecar's own writes). It does not own flags, the driver connection, Events or leader
//! election: the component hands those in.

pub mod content;
pub mod group;
pub mod handler;
pub mod kube;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use csi_controller::ApiError;
use csi_crd_types::{
    VolumeGroupSnapshotClass, VolumeGroupSnapshotContent, VolumeSnapshotClass,
    VolumeSnapshotContent,
};
use csi_kube::{Caches, Change, EventRecorder, Selector, Store, Subscription};
use csi_workqueue::{ItemExponentialFailureRateLimiter, Outcome, QueueConfig, WorkQueue};
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

pub use handler::Handler;
pub use kube::{ApiClient, Listers, SnapshotApi, StoreListers};

use csi_snapshot_utils::{
    VOLUME_SNAPSHOT_CONTENT_MANAGED_BY_LABEL, should_enqueue_content_change,
    should_enqueue_group_content_change,
};

/// The content queue's name (its `workqueue_*{name}` label), as upstream's.
pub const CONTENT_QUEUE: &str = "csi-snapshotter-content";
/// The group content queue's name.
pub const GROUP_CONTENT_QUEUE: &str = "csi-snapshotter-groupsnapshotcontent";

/// Upstream's `controllerUpdateFailMsg`.
const CONTROLLER_UPDATE_FAIL_MSG: &str = "snapshot controller failed to update";

/// Why a sync failed: upstream's error text, and whether it was a write Conflict (logged
/// quieter, as it happens often and heals on the retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncError {
    /// The message, as upstream writes it (also into the content's status).
    pub message: String,
    /// The API server refused a write with a Conflict.
    pub conflict: bool,
}

impl SyncError {
    /// An error with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        SyncError {
            message: message.into(),
            conflict: false,
        }
    }

    fn from_api(err: ApiError) -> Self {
        SyncError {
            conflict: err.is_conflict(),
            message: err.to_string(),
        }
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SyncError {}

/// Upstream's `newControllerUpdateError`.
fn controller_update_error(name: &str, err: &ApiError) -> SyncError {
    SyncError {
        message: format!("{CONTROLLER_UPDATE_FAIL_MSG} {name} on API server: {err}"),
        conflict: err.is_conflict(),
    }
}

/// A lister's not-found error for a class: `<resource>.<group> "<name>" not found`.
fn class_not_found(resource: &str, name: &str) -> String {
    let group = if resource.starts_with("volumegroup") {
        "groupsnapshot.storage.k8s.io"
    } else {
        "snapshot.storage.k8s.io"
    };
    ApiError::not_found(&format!("{resource}.{group}"), name).to_string()
}

/// A JSON pointer token for a key (`/` is `~1`, `~` is `~0`).
fn patch_path(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The parameters of a CreateSnapshot or CreateVolumeGroupSnapshot call: the class's
/// parameters without the `csi.storage.k8s.io/` keys, and with `--extra-create-metadata` the
/// object's name and namespace and the content's name under `keys` (name, namespace, content
/// name), as upstream's two create wrappers build them.
pub(crate) fn create_parameters(
    class_parameters: Option<std::collections::BTreeMap<String, String>>,
    extra: Option<(
        [&str; 3],
        &k8s_openapi::api::core::v1::ObjectReference,
        &str,
    )>,
) -> Result<HashMap<String, String>, String> {
    let mut parameters: HashMap<String, String> =
        csi_snapshot_utils::remove_prefixed_parameters(&class_parameters.unwrap_or_default())
            .map_err(|err| format!("failed to remove CSI Parameters of prefixed keys: {err}"))?
            .into_iter()
            .collect();
    if let Some(([name_key, namespace_key, content_key], reference, content_name)) = extra {
        parameters.insert(
            name_key.to_string(),
            reference.name.clone().unwrap_or_default(),
        );
        parameters.insert(
            namespace_key.to_string(),
            reference.namespace.clone().unwrap_or_default(),
        );
        parameters.insert(content_key.to_string(), content_name.to_string());
    }
    Ok(parameters)
}

/// Go's `%q` of a string (upstream quotes errors into messages with it).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    csi_gofmt::quote_into(&mut out, s);
    out
}

/// Now, in Unix nanoseconds.
fn now_nanos() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_nanos()).unwrap_or(i64::MAX)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Upstream's `StoreObjectUpdate` on a map of name → `resourceVersion`: `Ok(false)` for an
/// older version than the one remembered, an error for a version that is not a number.
fn store_update(
    versions: &Mutex<HashMap<String, i64>>,
    name: &str,
    resource_version: Option<&str>,
    class_name: &str,
) -> Result<bool, String> {
    let text = resource_version.unwrap_or_default();
    let mut versions = lock(versions);
    let Some(old) = versions.get(name).copied() else {
        let version = text.parse().unwrap_or(0);
        versions.insert(name.to_string(), version);
        return Ok(true);
    };
    let version: i64 = text.parse().map_err(|err| {
        format!("error parsing ResourceVersion {text:?} of {class_name} {name:?}: {err}")
    })?;
    if old > version {
        debug!("storeObjectUpdate: ignoring {class_name} {name:?} version {text}");
        return Ok(false);
    }
    versions.insert(name.to_string(), version);
    Ok(true)
}

/// What [`Reconciler::new`] needs.
#[derive(Debug, Clone)]
pub struct ReconcilerParts {
    /// The CSI driver's name.
    pub driver_name: String,
    /// The CSI calls.
    pub handler: Handler,
    /// Kubernetes writes and direct reads.
    pub api: Arc<dyn SnapshotApi>,
    /// The watch caches.
    pub listers: Arc<dyn Listers>,
    /// Events (component `csi-snapshotter <driver>`).
    pub events: Arc<dyn EventRecorder>,
    /// `--extra-create-metadata`.
    pub extra_create_metadata: bool,
}

/// What one content (or group content) key leads to.
#[derive(Debug)]
pub struct Reconciler {
    driver_name: String,
    handler: Handler,
    api: Arc<dyn SnapshotApi>,
    listers: Arc<dyn Listers>,
    events: Arc<dyn EventRecorder>,
    extra_create_metadata: bool,
    content_versions: Mutex<HashMap<String, i64>>,
    group_versions: Mutex<HashMap<String, i64>>,
}

impl Reconciler {
    /// A reconciler from its parts.
    pub fn new(parts: ReconcilerParts) -> Self {
        Reconciler {
            driver_name: parts.driver_name,
            handler: parts.handler,
            api: parts.api,
            listers: parts.listers,
            events: parts.events,
            extra_create_metadata: parts.extra_create_metadata,
            content_versions: Mutex::default(),
            group_versions: Mutex::default(),
        }
    }
}

/// The sidecar's settings, from the flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--worker-threads`: workers per queue.
    pub workers: usize,
    /// `--retry-interval-start`.
    pub retry_interval_start: Duration,
    /// `--retry-interval-max`.
    pub retry_interval_max: Duration,
    /// `--resync-period`: every content handled again this often.
    pub resync_period: Duration,
    /// With `--node-deployment`: this node's name (contents are watched with the
    /// `snapshot.storage.kubernetes.io/managed-by=<node>` label selector).
    pub node_name: Option<String>,
    /// Group snapshots on (the gate, the CRDs present).
    pub group_snapshots: bool,
}

/// The watches the sidecar declared; [`SidecarController::new`] takes them.
#[derive(Debug)]
pub struct Watches {
    /// VolumeSnapshotContents, with the resync period.
    pub contents: Subscription<VolumeSnapshotContent>,
    /// VolumeSnapshotClasses (read only).
    pub classes: Store<VolumeSnapshotClass>,
    /// VolumeGroupSnapshotContents, with group snapshots on.
    pub group_contents: Option<Subscription<VolumeGroupSnapshotContent>>,
    /// VolumeGroupSnapshotClasses, with group snapshots on.
    pub group_classes: Option<Store<VolumeGroupSnapshotClass>>,
}

impl Watches {
    /// Listers over these watches.
    pub fn listers(&self) -> StoreListers {
        StoreListers {
            contents: self.contents.store(),
            classes: self.classes.clone(),
            group_contents: self.group_contents.as_ref().map(Subscription::store),
            group_classes: self.group_classes.clone(),
        }
    }
}

/// The selector of the content watches: every content, or with `--node-deployment` this
/// node's (upstream also filters the group classes by it).
pub fn content_selector(node_name: Option<&str>) -> Selector {
    match node_name {
        Some(node) => {
            Selector::labels(format!("{VOLUME_SNAPSHOT_CONTENT_MANAGED_BY_LABEL}={node}"))
        }
        None => Selector::all(),
    }
}

/// Declares the sidecar's watches on the shared caches (before they start): contents (one
/// watch for every controller of the process that reads them), classes and, with group
/// snapshots on, group contents and group classes. The snapshot CRDs may be installed after
/// the sidecar starts: the watches wait for them.
pub fn declare(caches: &Caches, config: &Config) -> Result<Watches, csi_kube::cache::Error> {
    let contents_selector = content_selector(config.node_name.as_deref());
    let all = Selector::all();
    caches.wait_for_definition::<VolumeSnapshotContent>(&contents_selector)?;
    caches.wait_for_definition::<VolumeSnapshotClass>(&all)?;
    let contents = caches
        .subscribe::<VolumeSnapshotContent>(&contents_selector)?
        .with_resync(config.resync_period);
    let classes = caches.store::<VolumeSnapshotClass>(&all)?;
    let (group_contents, group_classes) = if config.group_snapshots {
        (
            Some(
                caches
                    .subscribe::<VolumeGroupSnapshotContent>(&contents_selector)?
                    .with_resync(config.resync_period),
            ),
            Some(caches.store::<VolumeGroupSnapshotClass>(&contents_selector)?),
        )
    } else {
        (None, None)
    };
    Ok(Watches {
        contents,
        classes,
        group_contents,
        group_classes,
    })
}

/// The sidecar controller: feeds content changes into the queues and runs the workers.
#[derive(Debug)]
pub struct SidecarController {
    config: Config,
    watches: Watches,
    reconciler: Arc<Reconciler>,
    contents: WorkQueue<String>,
    group_contents: Option<WorkQueue<String>>,
}

fn queue(
    name: &str,
    config: &Config,
    metrics: Option<&csi_workqueue::Metrics>,
) -> WorkQueue<String> {
    let mut queue_config = QueueConfig::new(name);
    if let Some(metrics) = metrics {
        queue_config = queue_config.metrics(metrics);
    }
    WorkQueue::with_config(
        ItemExponentialFailureRateLimiter::<String>::new(
            config.retry_interval_start,
            config.retry_interval_max,
        ),
        queue_config,
    )
}

impl SidecarController {
    /// The controller over `watches` (from [`declare`]); `reconciler` should read through
    /// [`Watches::listers`].
    pub fn new(
        config: Config,
        watches: Watches,
        reconciler: Arc<Reconciler>,
        workqueue_metrics: Option<&csi_workqueue::Metrics>,
    ) -> Self {
        let contents = queue(CONTENT_QUEUE, &config, workqueue_metrics);
        let group_contents = watches
            .group_contents
            .as_ref()
            .map(|_| queue(GROUP_CONTENT_QUEUE, &config, workqueue_metrics));
        SidecarController {
            config,
            watches,
            reconciler,
            contents,
            group_contents,
        }
    }

    /// Runs until `shutdown`: waits for the caches, remembers the contents' versions
    /// (upstream's `initializeCaches`), then handles keys.
    pub async fn run(self, shutdown: CancellationToken) {
        info!("Starting CSI snapshotter");
        let content_store = self.watches.contents.store();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = async {
                content_store.wait_until_ready().await;
                self.watches.classes.wait_until_ready().await;
                if let Some(group) = &self.watches.group_contents {
                    group.store().wait_until_ready().await;
                }
                if let Some(classes) = &self.watches.group_classes {
                    classes.wait_until_ready().await;
                }
            } => {}
        }
        for content in content_store.state() {
            if self.reconciler.is_content_driver_match(&content) {
                let _ = self.reconciler.store_content(&content);
            }
        }
        if let Some(group) = &self.watches.group_contents {
            for content in group.store().state() {
                let _ = self.reconciler.store_group_content(&content);
            }
        }
        debug!("controller initialized");

        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(feed(
            self.watches.contents.events(),
            self.contents.clone(),
            should_enqueue_content_change,
            shutdown.clone(),
        ));
        let workers = self.config.workers.max(1);
        let reconciler = self.reconciler.clone();
        tasks.spawn(csi_workqueue::run_workers(
            self.contents.clone(),
            workers,
            shutdown.clone(),
            move |key: String| {
                let reconciler = reconciler.clone();
                async move { outcome(&key, reconciler.sync_content_by_key(&key).await, "content") }
            },
        ));
        if let (Some(events), Some(queue)) = (
            self.watches
                .group_contents
                .as_ref()
                .map(Subscription::events),
            self.group_contents.clone(),
        ) {
            tasks.spawn(feed(
                events,
                queue.clone(),
                should_enqueue_group_content_change,
                shutdown.clone(),
            ));
            let reconciler = self.reconciler.clone();
            tasks.spawn(csi_workqueue::run_workers(
                queue,
                workers,
                shutdown.clone(),
                move |key: String| {
                    let reconciler = reconciler.clone();
                    async move {
                        outcome(
                            &key,
                            reconciler.sync_group_content_by_key(&key).await,
                            "group snapshot content",
                        )
                    }
                },
            ));
        }
        shutdown.cancelled().await;
        while tasks.join_next().await.is_some() {}
        info!("Shutting CSI snapshotter");
    }
}

/// Upstream's `processNextItem`: an error or a requeue is retried with backoff, anything
/// else forgets the key's backoff.
fn outcome(key: &str, result: Result<bool, SyncError>, what: &str) -> Outcome {
    match result {
        Ok(false) => Outcome::Forget,
        Ok(true) => Outcome::Requeue,
        Err(err) => {
            debug!("Failed to sync {what} {key:?}, will retry again: {err}");
            Outcome::Requeue
        }
    }
}

/// Upstream's event handlers: add and delete queue the key, an update queues it when
/// `should_enqueue` says so (resyncs always).
async fn feed<K>(
    events: csi_kube::Events<K>,
    queue: WorkQueue<String>,
    should_enqueue: fn(&K, &K) -> bool,
    shutdown: CancellationToken,
) where
    K: csi_kube::cache::Cacheable,
{
    let mut events = std::pin::pin!(events);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            change = events.next() => match change {
                None => return,
                Some(Change::Added(object)) => queue.add(csi_kube::key_of(&*object)),
                Some(Change::Updated { old, new }) => {
                    if should_enqueue(&old, &new) {
                        queue.add(csi_kube::key_of(&*new));
                    }
                }
                Some(Change::Deleted { last, .. }) => queue.add(csi_kube::key_of(&*last)),
            },
        }
    }
}

#[cfg(test)]
mod tests;
