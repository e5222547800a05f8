//! The central capacity controller (upstream's `capacity.Controller`): one CSIStorageCapacity
//! object per (topology segment, StorageClass of this driver), kept up to date from the
//! driver's `GetCapacity`, and every other object it manages deleted.
//!
//! Owns: the desired set of objects ([`WorkItem`]s, each with the object that currently holds
//! it, if any), the reaction to StorageClass, topology and CSIStorageCapacity changes, the
//! work of one queue key ([`Controller::process`]), the refreshes after provisioning and
//! deleting, and the three `csistoragecapacities_*` gauges. It does not start watches or
//! tasks (that is [`super::Capacity::run`]).
//!
//! Objects the controller writes are not put into its state directly: they come back through
//! the watch, as upstream relies on its informer, so that a create and the watch event can
//! never race. A duplicate that slips through is recognized when it arrives and deleted.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use csi_controller::ApiError;
use csi_metrics::{MetricFamily, MetricType, Stability};
use csi_proto::csi::v1::{GetCapacityRequest, Topology as CsiTopology};
use csi_workqueue::{Outcome, WorkQueue};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{NodeSelectorTerm, PersistentVolume, VolumeNodeAffinity};
use k8s_openapi::api::storage::v1::{CSIStorageCapacity, StorageClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use tracing::{debug, error, warn};

use super::topology::{Segment, Segments, Topology};
use super::{DRIVER_NAME_LABEL, Lister, MANAGED_BY_LABEL};
use crate::csi::{CapacityDriver, CsiError};
use crate::params::{bytes_to_quantity, quantity_value};
use crate::provision::ProvisioningState;

/// `csistoragecapacities_desired_goal`.
pub const METRIC_GOAL: &str = "csistoragecapacities_desired_goal";
/// `csistoragecapacities_desired_current`.
pub const METRIC_CURRENT: &str = "csistoragecapacities_desired_current";
/// `csistoragecapacities_obsolete`.
pub const METRIC_OBSOLETE: &str = "csistoragecapacities_obsolete";

const HELP_GOAL: &str =
    "Number of CSIStorageCapacity objects that are supposed to be managed automatically.";
const HELP_CURRENT: &str =
    "Number of CSIStorageCapacity objects that exist and are supposed to be managed automatically.";
const HELP_OBSOLETE: &str = "Number of CSIStorageCapacity objects that exist and will be deleted automatically. Objects that exist and may need an update are not considered obsolete and therefore not included in this value.";

/// The prefix of the names of the objects the controller creates.
pub const GENERATE_NAME: &str = "csisc-";

/// One object the controller wants to exist: a segment and a StorageClass name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkItem {
    /// The topology segment.
    pub segment: Arc<Segment>,
    /// The StorageClass name.
    pub storage_class_name: String,
}

impl WorkItem {
    /// Whether `capacity` is the object of this item (same class, same node topology).
    pub fn matches(&self, capacity: &CSIStorageCapacity) -> bool {
        capacity.storage_class_name == self.storage_class_name
            && self
                .segment
                .matches_selector(capacity.node_topology.as_ref())
    }
}

impl fmt::Display for WorkItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, [{}]", self.storage_class_name, self.segment)
    }
}

/// A CSIStorageCapacity object to delete: its namespace, name and UID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The UID (two objects of one name at different times are two keys).
    pub uid: String,
}

impl ObjectKey {
    fn of(capacity: &CSIStorageCapacity) -> Self {
        ObjectKey {
            namespace: capacity.metadata.namespace.clone().unwrap_or_default(),
            name: capacity.metadata.name.clone().unwrap_or_default(),
            uid: capacity.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

/// A key of the `csistoragecapacity` queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum QueueKey {
    /// Create or update the object of this item.
    Sync(WorkItem),
    /// Delete this obsolete object.
    Delete(ObjectKey),
}

impl fmt::Display for QueueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueKey::Sync(item) => write!(f, "{item}"),
            QueueKey::Delete(key) => write!(f, "delete {}/{}", key.namespace, key.name),
        }
    }
}

/// Writing CSIStorageCapacity objects (a client with the capacity QPS and burst; a fake in
/// tests).
pub trait CapacityApi: Send + Sync + fmt::Debug {
    /// Creates `capacity` in `namespace` and returns what the API server stored.
    fn create(
        &self,
        namespace: &str,
        capacity: CSIStorageCapacity,
    ) -> BoxFuture<'_, Result<CSIStorageCapacity, ApiError>>;

    /// Replaces the object (its namespace, name and resourceVersion say which) with `capacity`.
    fn update(
        &self,
        capacity: CSIStorageCapacity,
    ) -> BoxFuture<'_, Result<CSIStorageCapacity, ApiError>>;

    /// Deletes the object.
    fn delete<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
}

/// [`CapacityApi`] on a Kubernetes client.
#[derive(Clone)]
pub struct KubeCapacityApi {
    client: kube::Client,
}

impl fmt::Debug for KubeCapacityApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeCapacityApi").finish_non_exhaustive()
    }
}

impl KubeCapacityApi {
    /// Writes through `client`.
    pub fn new(client: kube::Client) -> Self {
        KubeCapacityApi { client }
    }

    fn api(&self, namespace: &str) -> kube::Api<CSIStorageCapacity> {
        kube::Api::namespaced(self.client.clone(), namespace)
    }
}

impl CapacityApi for KubeCapacityApi {
    fn create(
        &self,
        namespace: &str,
        capacity: CSIStorageCapacity,
    ) -> BoxFuture<'_, Result<CSIStorageCapacity, ApiError>> {
        let api = self.api(namespace);
        Box::pin(async move {
            Ok(api
                .create(&kube::api::PostParams::default(), &capacity)
                .await?)
        })
    }

    fn update(
        &self,
        capacity: CSIStorageCapacity,
    ) -> BoxFuture<'_, Result<CSIStorageCapacity, ApiError>> {
        let api = self.api(capacity.metadata.namespace.as_deref().unwrap_or_default());
        Box::pin(async move {
            let name = capacity.metadata.name.clone().unwrap_or_default();
            Ok(api
                .replace(&name, &kube::api::PostParams::default(), &capacity)
                .await?)
        })
    }

    fn delete<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        let api = self.api(namespace);
        Box::pin(async move {
            api.delete(name, &kube::api::DeleteParams::default())
                .await?;
            Ok(())
        })
    }
}

/// Why a queue key failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The driver's `GetCapacity` failed.
    #[error("CSI GetCapacity for {item}: {source}")]
    GetCapacity {
        /// The item.
        item: WorkItem,
        /// The driver's error.
        #[source]
        source: CsiError,
    },
    /// Creating the object failed.
    #[error("create CSIStorageCapacity for {item}: {source}")]
    Create {
        /// The item.
        item: WorkItem,
        /// The API error.
        #[source]
        source: ApiError,
    },
    /// Updating the object failed.
    #[error("update CSIStorageCapacity for {item}: {source}")]
    Update {
        /// The item.
        item: WorkItem,
        /// The API error.
        #[source]
        source: ApiError,
    },
    /// Deleting an obsolete object failed.
    #[error("{0}")]
    Delete(#[source] ApiError),
}

/// What the controller is configured with.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The driver name: StorageClasses' `provisioner`, the objects' driver label.
    pub driver_name: String,
    /// The objects' `csi.storage.k8s.io/managed-by` label.
    pub managed_by: String,
    /// Where the objects are created.
    pub namespace: String,
    /// The controlling owner put on every object, if any.
    pub owner: Option<OwnerReference>,
    /// Also StorageClasses with `volumeBindingMode: Immediate`.
    pub immediate_binding: bool,
    /// The `GetCapacity` timeout.
    pub timeout: Duration,
}

/// The capacity controller's state and logic; the tasks that drive it are in
/// [`super::Capacity`].
pub struct Controller {
    config: ControllerConfig,
    driver: Arc<dyn CapacityDriver>,
    api: Arc<dyn CapacityApi>,
    classes: Arc<dyn Lister<StorageClass>>,
    capacities_cache: Arc<dyn Lister<CSIStorageCapacity>>,
    topology: Arc<dyn Topology>,
    queue: WorkQueue<QueueKey>,
    /// Every wanted object, with the object that holds it once the watch delivered one.
    capacities: Mutex<HashMap<WorkItem, Option<Arc<CSIStorageCapacity>>>>,
}

impl fmt::Debug for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("config", &self.config)
            .field("items", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// A controller; it follows `topology` from now on (a topology that knows its segments
    /// reports them at once, and items are queued for them).
    pub fn new(
        config: ControllerConfig,
        driver: Arc<dyn CapacityDriver>,
        api: Arc<dyn CapacityApi>,
        classes: Arc<dyn Lister<StorageClass>>,
        capacities_cache: Arc<dyn Lister<CSIStorageCapacity>>,
        topology: Arc<dyn Topology>,
        queue: WorkQueue<QueueKey>,
    ) -> Arc<Self> {
        let controller = Arc::new(Controller {
            config,
            driver,
            api,
            classes,
            capacities_cache,
            topology: topology.clone(),
            queue,
            capacities: Mutex::default(),
        });
        let weak: Weak<Controller> = Arc::downgrade(&controller);
        topology.add_callback(Box::new(move |added, removed| {
            if let Some(controller) = weak.upgrade() {
                controller.on_topology_changes(added, removed);
            }
        }));
        controller
    }

    /// The `csistoragecapacity` queue.
    pub fn queue(&self) -> &WorkQueue<QueueKey> {
        &self.queue
    }

    /// The topology it follows.
    pub fn topology(&self) -> &Arc<dyn Topology> {
        &self.topology
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<WorkItem, Option<Arc<CSIStorageCapacity>>>> {
        self.capacities
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the class is one of ours that gets objects.
    fn wants(&self, class: &StorageClass) -> bool {
        class.provisioner == self.config.driver_name
            && (self.config.immediate_binding
                || class.volume_binding_mode.as_deref() != Some("Immediate"))
    }

    /// Once the caches are complete: the items of every segment and class, then every
    /// existing object matched to its item or queued for deletion.
    pub fn prepare(&self) {
        let segments = self.topology.list();
        self.on_topology_changes(&segments, &[]);
        debug!(
            "Initial number of topology segments {}, storage classes {}, potential CSIStorageCapacity objects {}",
            segments.len(),
            self.classes.list().len(),
            self.lock().len()
        );
        debug!("Checking for existing CSIStorageCapacity objects");
        for capacity in self.capacities_cache.list() {
            self.on_capacity_add_or_update(capacity);
        }
    }

    /// Segments appeared or went away.
    pub fn on_topology_changes(&self, added: &[Arc<Segment>], removed: &[Arc<Segment>]) {
        debug!(
            "Capacity Controller: topology changed: added {}, removed {}",
            Segments(added),
            Segments(removed)
        );
        let classes = self.classes.list();
        let mut capacities = self.lock();
        for class in classes.iter().filter(|c| self.wants(c)) {
            let name = class.metadata.name.clone().unwrap_or_default();
            for segment in added {
                self.add_work_item(&mut capacities, segment, &name);
            }
            for segment in removed {
                self.remove_work_item(&mut capacities, segment, &name);
            }
        }
    }

    /// A StorageClass was added or changed (or resynced).
    pub fn on_class_add_or_update(&self, class: &StorageClass) {
        if class.provisioner != self.config.driver_name {
            return;
        }
        let name = class.metadata.name.clone().unwrap_or_default();
        debug!("Capacity Controller: storage class {name} was updated or added");
        if !self.wants(class) {
            debug!(
                "Capacity Controller: ignoring storage class {name} because it uses immediate binding"
            );
            return;
        }
        let segments = self.topology.list();
        let mut capacities = self.lock();
        for segment in &segments {
            self.add_work_item(&mut capacities, segment, &name);
        }
    }

    /// A StorageClass was deleted.
    pub fn on_class_delete(&self, class: &StorageClass) {
        if class.provisioner != self.config.driver_name {
            return;
        }
        let name = class.metadata.name.clone().unwrap_or_default();
        debug!("Capacity Controller: storage class {name} was removed");
        let segments = self.topology.list();
        let mut capacities = self.lock();
        for segment in &segments {
            self.remove_work_item(&mut capacities, segment, &name);
        }
    }

    /// Queues every item of the segments of `affinity` (a PV's node affinity, as the
    /// provisioner writes it: each term one segment's `In` requirements).
    pub fn refresh_topology(&self, affinity: &VolumeNodeAffinity) {
        let Some(terms) = affinity.required.as_ref().map(|r| &r.node_selector_terms) else {
            error!(
                "Capacity Controller: skipping refresh: unexpected VolumeNodeAffinity, missing NodeSelectorTerms: {affinity:?}"
            );
            return;
        };
        let capacities = self.lock();
        for term in terms {
            let segment = match term_to_segment(term) {
                Ok(segment) => segment,
                Err(err) => {
                    error!(
                        "Capacity Controller: skipping refresh: unexpected node selector term {term:?}: {err}"
                    );
                    continue;
                }
            };
            for item in capacities.keys().filter(|i| *i.segment == segment) {
                debug!("Capacity Controller: enqueuing {item} because of the topology");
                self.queue.add(QueueKey::Sync(item.clone()));
            }
        }
    }

    /// Queues every item of the StorageClass `name`.
    pub fn refresh_class(&self, name: &str) {
        let capacities = self.lock();
        for item in capacities.keys().filter(|i| i.storage_class_name == name) {
            debug!("Capacity Controller: enqueuing {item} because of the storage class");
            self.queue.add(QueueKey::Sync(item.clone()));
        }
    }

    /// Queues every item: the periodic refresh.
    pub fn poll(&self) {
        let capacities = self.lock();
        for item in capacities.keys() {
            debug!("Capacity Controller: enqueuing {item} for periodic update");
            self.queue.add(QueueKey::Sync(item.clone()));
        }
    }

    fn add_work_item(
        &self,
        capacities: &mut HashMap<WorkItem, Option<Arc<CSIStorageCapacity>>>,
        segment: &Arc<Segment>,
        class: &str,
    ) {
        let item = WorkItem {
            segment: segment.clone(),
            storage_class_name: class.to_string(),
        };
        capacities.entry(item.clone()).or_insert(None);
        debug!("Capacity Controller: enqueuing {item}");
        self.queue.add(QueueKey::Sync(item));
    }

    fn remove_work_item(
        &self,
        capacities: &mut HashMap<WorkItem, Option<Arc<CSIStorageCapacity>>>,
        segment: &Arc<Segment>,
        class: &str,
    ) {
        let item = WorkItem {
            segment: segment.clone(),
            storage_class_name: class.to_string(),
        };
        let Some(capacity) = capacities.remove(&item) else {
            debug!("Capacity Controller: {item} already removed");
            return;
        };
        let Some(capacity) = capacity else {
            debug!("Capacity Controller: {item} removed, no object");
            return;
        };
        debug!(
            "Capacity Controller: enqueuing CSIStorageCapacity {} for removal",
            capacity.metadata.name.as_deref().unwrap_or_default()
        );
        self.queue.add(QueueKey::Delete(ObjectKey::of(&capacity)));
    }

    /// Handles one key of the queue; what the queue should do with it next.
    pub async fn process(&self, key: &QueueKey) -> Outcome {
        let result = match key {
            QueueKey::Sync(item) => self.sync_capacity(item).await,
            QueueKey::Delete(object) => self.delete_capacity(object).await,
        };
        match result {
            Ok(()) => Outcome::Forget,
            Err(err) => {
                error!("{err}");
                warn!(
                    "Retrying {key} after {} failures",
                    self.queue.num_requeues(key)
                );
                Outcome::Requeue
            }
        }
    }

    /// Asks the driver for the item's capacity, then creates or updates its object.
    pub async fn sync_capacity(&self, item: &WorkItem) -> Result<(), SyncError> {
        // Locked only to read: one worker at a time has an item, and an item that became
        // obsolete meanwhile gets an object that is then found to be obsolete and deleted.
        let capacity = self.lock().get(item).cloned();
        debug!("Capacity Controller: refreshing {item}");
        let Some(capacity) = capacity else {
            debug!("Capacity Controller: {item} became obsolete");
            return Ok(());
        };
        let Some(class) = self.classes.get(&item.storage_class_name) else {
            // The class is gone: its items go away with it.
            return Ok(());
        };
        let request = GetCapacityRequest {
            parameters: class
                .parameters
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            // The capacity is assumed not to depend on the capabilities.
            volume_capabilities: Vec::new(),
            accessible_topology: Some(CsiTopology {
                segments: item.segment.label_map().into_iter().collect(),
            }),
        };
        let response = self
            .driver
            .get_capacity(request, self.config.timeout)
            .await
            .map_err(|source| SyncError::GetCapacity {
                item: item.clone(),
                source,
            })?;
        let quantity = bytes_to_quantity(response.available_capacity);
        let maximum_volume_size = response.maximum_volume_size.map(bytes_to_quantity);

        let Some(existing) = capacity else {
            let mut labels = std::collections::BTreeMap::new();
            labels.insert(
                DRIVER_NAME_LABEL.to_string(),
                self.config.driver_name.clone(),
            );
            labels.insert(MANAGED_BY_LABEL.to_string(), self.config.managed_by.clone());
            let capacity = CSIStorageCapacity {
                metadata: ObjectMeta {
                    generate_name: Some(GENERATE_NAME.to_string()),
                    labels: Some(labels),
                    owner_references: self.config.owner.clone().map(|o| vec![o]),
                    ..ObjectMeta::default()
                },
                storage_class_name: item.storage_class_name.clone(),
                node_topology: Some(item.segment.label_selector()),
                capacity: Some(quantity.clone()),
                maximum_volume_size,
            };
            debug!(
                "Capacity Controller: creating new object for {item}, new capacity {}",
                quantity.0
            );
            let created = self
                .api
                .create(&self.config.namespace, capacity)
                .await
                .map_err(|source| SyncError::Create {
                    item: item.clone(),
                    source,
                })?;
            // Remembered at once (upstream waits for the watch to deliver it): a second sync
            // of the item before that would otherwise create a duplicate, which is then found
            // obsolete and deleted — two writes for nothing. The watch's copy replaces this one.
            if let Some(slot) = self.lock().get_mut(item)
                && slot.is_none()
            {
                *slot = Some(Arc::new(created.clone()));
            }
            debug!(
                "Capacity Controller: created {} with resource version {} for {item} with capacity {}",
                created.metadata.name.as_deref().unwrap_or_default(),
                created
                    .metadata
                    .resource_version
                    .as_deref()
                    .unwrap_or_default(),
                quantity.0
            );
            return Ok(());
        };

        let same_capacity = existing
            .capacity
            .as_ref()
            .and_then(|q| quantity_value(&q.0))
            == Some(response.available_capacity);
        let same_maximum = existing
            .maximum_volume_size
            .as_ref()
            .map(|q| quantity_value(&q.0))
            == response.maximum_volume_size.map(Some);
        let owned = self.is_owned_by_us(&existing);
        if same_capacity && same_maximum && (self.config.owner.is_none() || owned) {
            debug!(
                "Capacity Controller: no need to update {} for {item}, same capacity {}, same maximumVolumeSize {:?} and correct owner",
                existing.metadata.name.as_deref().unwrap_or_default(),
                quantity.0,
                existing.maximum_volume_size.as_ref().map(|q| q.0.as_str())
            );
            return Ok(());
        }
        let mut capacity = (*existing).clone();
        capacity.capacity = Some(quantity.clone());
        capacity.maximum_volume_size = response.maximum_volume_size.map(bytes_to_quantity);
        if let Some(owner) = &self.config.owner
            && !owned
        {
            capacity
                .metadata
                .owner_references
                .get_or_insert_with(Vec::new)
                .push(owner.clone());
        }
        debug!(
            "Capacity Controller: updating {} for {item}, new capacity {}, new maximumVolumeSize {:?}",
            capacity.metadata.name.as_deref().unwrap_or_default(),
            quantity.0,
            capacity.maximum_volume_size.as_ref().map(|q| q.0.as_str())
        );
        let updated = self
            .api
            .update(capacity)
            .await
            .map_err(|source| SyncError::Update {
                item: item.clone(),
                source,
            })?;
        debug!(
            "Capacity Controller: updated {} with new resource version {} for {item} with capacity {}",
            updated.metadata.name.as_deref().unwrap_or_default(),
            updated
                .metadata
                .resource_version
                .as_deref()
                .unwrap_or_default(),
            quantity.0
        );
        Ok(())
    }

    /// Deletes an obsolete object; one that is gone already is fine.
    pub async fn delete_capacity(&self, object: &ObjectKey) -> Result<(), SyncError> {
        debug!(
            "Capacity Controller: removing CSIStorageCapacity {}",
            object.name
        );
        match self.api.delete(&object.namespace, &object.name).await {
            Err(err) if !err.is_not_found() => Err(SyncError::Delete(err)),
            _ => Ok(()),
        }
    }

    /// The watch delivered an object (added, changed or resynced): remember it as the object
    /// of its item, or queue it for deletion when no item wants it. An object that stopped
    /// being ours is let go, and its item gets a new one.
    pub fn on_capacity_add_or_update(&self, capacity: Arc<CSIStorageCapacity>) {
        let name = capacity.metadata.name.as_deref().unwrap_or_default();
        let version = capacity
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or_default();
        let uid = capacity.metadata.uid.as_deref();
        let mut capacities = self.lock();
        if !self.is_managed(&capacity) {
            for (item, held) in capacities.iter_mut() {
                if held
                    .as_ref()
                    .is_some_and(|h| h.metadata.uid.as_deref() == uid)
                {
                    *held = None;
                    debug!(
                        "Capacity Controller: CSIStorageCapacity {name} owner was modified by someone, enqueueing {item} for re-creation"
                    );
                    self.queue.add(QueueKey::Sync(item.clone()));
                }
            }
            return;
        }
        for (item, held) in capacities.iter_mut() {
            match held {
                Some(h) if h.metadata.uid.as_deref() == uid => {
                    debug!(
                        "Capacity Controller: CSIStorageCapacity {name} with resource version {version} is already known to match {item}"
                    );
                    // The newest revision, so that an update does not conflict.
                    *held = Some(capacity);
                    return;
                }
                None if item.matches(&capacity) => {
                    debug!(
                        "Capacity Controller: CSIStorageCapacity {name} with resource version {version} matches {item}"
                    );
                    *held = Some(capacity);
                    return;
                }
                _ => {}
            }
        }
        debug!(
            "Capacity Controller: CSIStorageCapacity {name} with resource version {version} is obsolete, enqueue for removal"
        );
        self.queue.add(QueueKey::Delete(ObjectKey::of(&capacity)));
    }

    /// The watch saw an object deleted: if an item still wants it, create it again.
    pub fn on_capacity_delete(&self, capacity: &CSIStorageCapacity) {
        let uid = capacity.metadata.uid.as_deref();
        let mut capacities = self.lock();
        for (item, held) in capacities.iter_mut() {
            if held
                .as_ref()
                .is_some_and(|h| h.metadata.uid.as_deref() == uid)
            {
                debug!(
                    "Capacity Controller: CSIStorageCapacity {} was removed by someone, enqueue {item} for re-creation",
                    capacity.metadata.name.as_deref().unwrap_or_default()
                );
                *held = None;
                self.queue.add(QueueKey::Sync(item.clone()));
                return;
            }
        }
    }

    /// After a successful `Provision`: refresh the segments the volume landed in, or, without
    /// node affinity, the class's items (upstream's provision wrapper).
    pub fn provisioned(&self, storage_class: Option<&str>, pv: &PersistentVolume) {
        if let Some(affinity) = pv.spec.as_ref().and_then(|s| s.node_affinity.as_ref()) {
            self.refresh_topology(affinity);
        } else if let Some(class) = storage_class {
            self.refresh_class(class);
        }
    }

    /// After a failed `Provision`: refresh the class's items, unless nothing happened in the
    /// driver ([`ProvisioningState::NoChange`]).
    pub fn provision_failed(&self, storage_class: Option<&str>, state: ProvisioningState) {
        if state != ProvisioningState::NoChange
            && let Some(class) = storage_class
        {
            self.refresh_class(class);
        }
    }

    /// After a successful `Delete`: refresh the segments of the PV's node affinity.
    pub fn deleted(&self, pv: &PersistentVolume) {
        if let Some(affinity) = pv.spec.as_ref().and_then(|s| s.node_affinity.as_ref()) {
            self.refresh_topology(affinity);
        }
    }

    /// `csistoragecapacities_desired_goal`: the objects that should exist.
    pub fn objects_goal(&self) -> usize {
        self.lock().len()
    }

    /// `csistoragecapacities_desired_current`: the objects that should exist and do.
    pub fn objects_current(&self) -> usize {
        self.lock().values().filter(|c| c.is_some()).count()
    }

    /// `csistoragecapacities_obsolete`: the managed objects in the cache that no item wants.
    pub fn objects_obsolete(&self) -> usize {
        let cached = self.capacities_cache.list();
        let capacities = self.lock();
        cached
            .iter()
            .filter(|c| self.is_managed(c))
            .filter(|c| !capacities.keys().any(|item| item.matches(c)))
            .count()
    }

    /// Whether our owner is the object's controlling owner (apimachinery's `IsControlledBy`,
    /// by UID).
    fn is_owned_by_us(&self, capacity: &CSIStorageCapacity) -> bool {
        let Some(owner) = &self.config.owner else {
            return false;
        };
        capacity
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.uid == owner.uid)
    }

    /// Whether the labels say the object is this controller's (the watch selects by them;
    /// this guards against anything else).
    fn is_managed(&self, capacity: &CSIStorageCapacity) -> bool {
        let labels = capacity.metadata.labels.as_ref();
        let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
        label(DRIVER_NAME_LABEL) == Some(self.config.driver_name.as_str())
            && label(MANAGED_BY_LABEL) == Some(self.config.managed_by.as_str())
    }
}

/// A node selector term as the segment it stands for: `In` requirements with one value each,
/// no field requirements.
pub fn term_to_segment(term: &NodeSelectorTerm) -> Result<Segment, String> {
    if let Some(fields) = term.match_fields.as_ref().filter(|f| !f.is_empty()) {
        return Err(format!("MatchFields not empty: {fields:?}"));
    }
    let mut pairs = Vec::new();
    for requirement in term.match_expressions.iter().flatten() {
        if requirement.operator != "In" {
            return Err(format!("unexpected operator: {}", requirement.operator));
        }
        match requirement.values.as_deref() {
            Some([value]) => pairs.push((requirement.key.clone(), value.clone())),
            values => {
                return Err(format!(
                    "need exactly one label value, got: {:?}",
                    values.unwrap_or_default()
                ));
            }
        }
    }
    Ok(Segment::new(pairs))
}

/// The three `csistoragecapacities_*` gauges with `controller`'s values (0 without one).
pub(crate) fn gauges(controller: Option<&Controller>) -> Vec<MetricFamily> {
    let (goal, current, obsolete) = controller.map_or((0, 0, 0), |c| {
        (c.objects_goal(), c.objects_current(), c.objects_obsolete())
    });
    let gauge = |name: &str, help: &str, value: usize| {
        MetricFamily::new(name, help, Stability::Alpha, MetricType::Gauge)
            .with_value(&[], value as f64)
    };
    vec![
        gauge(METRIC_GOAL, HELP_GOAL, goal),
        gauge(METRIC_CURRENT, HELP_CURRENT, current),
        gauge(METRIC_OBSOLETE, HELP_OBSOLETE, obsolete),
    ]
}
