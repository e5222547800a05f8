//! Upstream's `pkg/capacity/capacity_test.go`: `TestCapacityController` (28 cases),
//! `TestTermToSegment` (6) and `TestRefresh` (6), plus the refreshes of upstream's provision
//! wrapper (`provision.go`, our own cases).
//!
//! Upstream runs informers on a fake clientset with reactors that fill in generated names,
//! UIDs (`CSISC-UID-<n>`) and resource versions (`CSISC-REV-<n>`). Here [`FakeServer`] does
//! the same and queues a watch event for every write; [`Harness::process`] delivers the events
//! to the controller and works the queue until both are empty (upstream's `process`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csi_controller::ApiError;
use csi_kube::Change;
use csi_metrics::Registry;
use csi_proto::csi::v1::{GetCapacityRequest, GetCapacityResponse};
use csi_workqueue::{ItemExponentialFailureRateLimiter, WorkQueue, settle};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolume,
    PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::{CSIStorageCapacity, StorageClass};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::FakeLister;
use crate::capacity::controller::{
    CapacityApi, Controller, ControllerConfig, QueueKey, term_to_segment,
};
use crate::capacity::topology::{FixedTopology, Segment};
use crate::capacity::{CapacityMetrics, DRIVER_NAME_LABEL, MANAGED_BY_LABEL};
use crate::csi::{CapacityDriver, CsiError};
use crate::params::quantity_value;
use crate::provision::ProvisioningState;

const DRIVER_NAME: &str = "test-driver";
const OWNER_NAMESPACE: &str = "testns";
const CSISC_REV: &str = "CSISC-REV-";
const MANAGED_BY_ID: &str = "external-provisioner";
const NO_MANAGER: &str = "none";
const OTHER_MANAGER: &str = "manual";
const MOCK_MULTIPLIER: &str = "multiplier";

fn default_owner() -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "statefulset".into(),
        name: "test-driver".into(),
        uid: "309cd460-2d62-4f40-bbcf-b7765aac5a6d".into(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

fn layer0() -> Segment {
    Segment::new([("layer0", "foo")])
}

fn layer0other() -> Segment {
    Segment::new([("layer0", "bar")])
}

fn deep() -> Segment {
    Segment::new([("layer0", "foo"), ("layer1", "X"), ("layer2", "A")])
}

fn deep_other() -> Segment {
    Segment::new([("layer0", "foo"), ("layer1", "X"), ("layer2", "B")])
}

/// Who owns an object, or whom the controller puts as owner.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Owner {
    /// upstream's `defaultOwner` (also what `nil` means in its table).
    #[default]
    Default,
    /// upstream's `noOwner`.
    None,
}

impl Owner {
    fn references(self) -> Option<Vec<OwnerReference>> {
        match self {
            Owner::Default => Some(vec![default_owner()]),
            Owner::None => None,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct TestCapacity {
    uid: &'static str,
    resource_version: String,
    segment: Segment,
    storage_class_name: &'static str,
    quantity: &'static str,
    max_volume: &'static str,
    owner: Owner,
    managed_by_id: &'static str,
}

fn capacity(segment: Segment, class: &'static str, quantity: &'static str) -> TestCapacity {
    TestCapacity {
        segment,
        storage_class_name: class,
        quantity,
        ..TestCapacity::default()
    }
}

fn str_to_quantity(s: &str) -> Option<Quantity> {
    (!s.is_empty()).then(|| Quantity(s.to_string()))
}

fn labels_of(managed_by_id: &str) -> Option<BTreeMap<String, String>> {
    match managed_by_id {
        NO_MANAGER => None,
        "" => Some(BTreeMap::from([
            (DRIVER_NAME_LABEL.to_string(), DRIVER_NAME.to_string()),
            (MANAGED_BY_LABEL.to_string(), MANAGED_BY_ID.to_string()),
        ])),
        other => Some(BTreeMap::from([(
            MANAGED_BY_LABEL.to_string(),
            other.to_string(),
        )])),
    }
}

fn make_capacity(input: &TestCapacity, number: usize) -> CSIStorageCapacity {
    CSIStorageCapacity {
        metadata: ObjectMeta {
            uid: (!input.uid.is_empty()).then(|| input.uid.to_string()),
            resource_version: (!input.resource_version.is_empty())
                .then(|| input.resource_version.clone()),
            name: Some(format!("csisc-{number}")),
            namespace: Some(OWNER_NAMESPACE.into()),
            owner_references: input.owner.references(),
            labels: labels_of(input.managed_by_id),
            ..ObjectMeta::default()
        },
        node_topology: Some(input.segment.label_selector()),
        storage_class_name: input.storage_class_name.into(),
        capacity: str_to_quantity(input.quantity),
        maximum_volume_size: str_to_quantity(input.max_volume),
    }
}

#[derive(Clone, Debug, Default)]
struct TestSc {
    name: &'static str,
    parameters: Vec<(&'static str, &'static str)>,
    immediate_binding: bool,
}

fn sc(name: &'static str) -> TestSc {
    TestSc {
        name,
        ..TestSc::default()
    }
}

fn triple_sc(name: &'static str) -> TestSc {
    TestSc {
        name,
        parameters: vec![(MOCK_MULTIPLIER, "3")],
        ..TestSc::default()
    }
}

fn immediate_sc(name: &'static str) -> TestSc {
    TestSc {
        name,
        immediate_binding: true,
        ..TestSc::default()
    }
}

fn make_sc(input: &TestSc) -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(input.name.into()),
            ..ObjectMeta::default()
        },
        provisioner: DRIVER_NAME.into(),
        parameters: (!input.parameters.is_empty()).then(|| {
            input
                .parameters
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
        volume_binding_mode: Some(
            if input.immediate_binding {
                "Immediate"
            } else {
                "WaitForFirstConsumer"
            }
            .into(),
        ),
        ..StorageClass::default()
    }
}

/// A layered storage system (upstream's `mockCapacity`): `layer0`, `layer1`, ... topology
/// values lead through the layers to `"<capacity>"` or `"<capacity>,<max volume size>"`; the
/// `multiplier` parameter multiplies the capacity.
#[derive(Debug, Clone)]
enum Pool {
    Size(&'static str),
    #[allow(dead_code)] // Upstream's table only uses one layer.
    Layer(HashMap<&'static str, Pool>),
}

#[derive(Debug, Default)]
struct MockCapacity {
    capacity: Mutex<Option<HashMap<&'static str, Pool>>>,
}

impl MockCapacity {
    fn new(pools: &[(&'static str, &'static str)]) -> Self {
        MockCapacity {
            capacity: Mutex::new(Some(
                pools.iter().map(|(k, v)| (*k, Pool::Size(v))).collect(),
            )),
        }
    }

    fn set(&self, key: &'static str, size: &'static str) {
        self.capacity
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert(key, Pool::Size(size));
    }
}

fn lookup(
    capacity: Option<&HashMap<&'static str, Pool>>,
    segments: &HashMap<String, String>,
    layer: usize,
) -> Result<String, String> {
    let Some(capacity) = capacity else {
        return Err(format!("no information found at layer {layer}"));
    };
    let key = format!("layer{layer}");
    let value = segments.get(&key).map(String::as_str).unwrap_or_default();
    match capacity.get(value) {
        Some(Pool::Size(size)) => Ok(size.to_string()),
        Some(Pool::Layer(next)) => {
            lookup(Some(next), segments, layer + 1).map_err(|e| format!("{key} -> {value}: {e}"))
        }
        None => Ok(String::new()),
    }
}

impl CapacityDriver for MockCapacity {
    fn get_capacity(
        &self,
        request: GetCapacityRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<GetCapacityResponse, CsiError>> {
        let result = (|| {
            let mut response = GetCapacityResponse::default();
            if let Some(topology) = &request.accessible_topology {
                let capacity = self.capacity.lock().unwrap();
                let available =
                    lookup(capacity.as_ref(), &topology.segments, 0).map_err(CsiError::Other)?;
                if !available.is_empty() {
                    let mut parts = available.splitn(2, ',');
                    response.available_capacity = quantity_value(parts.next().unwrap()).unwrap();
                    response.maximum_volume_size = parts.next().map(|m| quantity_value(m).unwrap());
                }
            }
            if let Some(multiplier) = request.parameters.get(MOCK_MULTIPLIER) {
                let multiplier: i64 = multiplier.parse().map_err(|e| {
                    CsiError::Other(format!(
                        "invalid parameter {MOCK_MULTIPLIER} -> {multiplier}: {e}"
                    ))
                })?;
                response.available_capacity *= multiplier;
            }
            Ok(response)
        })();
        Box::pin(async move { result })
    }
}

#[derive(Default)]
struct ServerState {
    objects: BTreeMap<String, CSIStorageCapacity>,
    uid_counter: usize,
    name_counter: usize,
    /// Watch events not delivered yet.
    pending: VecDeque<Change<CSIStorageCapacity>>,
}

/// The API server's CSIStorageCapacities, with upstream's create and update reactors.
#[derive(Default)]
struct FakeServer {
    state: Mutex<ServerState>,
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer").finish_non_exhaustive()
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found("csistoragecapacities.storage.k8s.io", name)
}

impl FakeServer {
    /// upstream's `createCSIStorageCapacityReactor` and the tracker's create.
    fn create_now(
        &self,
        namespace: &str,
        mut capacity: CSIStorageCapacity,
        event: bool,
    ) -> Result<CSIStorageCapacity, ApiError> {
        let mut state = self.state.lock().unwrap();
        let meta = &mut capacity.metadata;
        if meta.name.as_deref().unwrap_or_default().is_empty()
            && let Some(prefix) = meta.generate_name.as_deref()
        {
            state.name_counter += 1;
            meta.name = Some(format!("{prefix}-{:016}", state.name_counter));
        }
        if meta.uid.as_deref().unwrap_or_default().is_empty() {
            state.uid_counter += 1;
            meta.uid = Some(format!("CSISC-UID-{}", state.uid_counter));
        }
        meta.resource_version = Some(format!("{CSISC_REV}0"));
        meta.namespace = Some(namespace.to_string());
        let name = meta.name.clone().unwrap_or_default();
        if state.objects.contains_key(&name) {
            return Err(ApiError {
                code: 409,
                reason: "AlreadyExists".into(),
                message: format!("csistoragecapacities.storage.k8s.io {name:?} already exists"),
            });
        }
        state.objects.insert(name, capacity.clone());
        if event {
            state
                .pending
                .push_back(Change::Added(Arc::new(capacity.clone())));
        }
        Ok(capacity)
    }

    /// upstream's `updateCSIStorageCapacityReactor` and the tracker's update.
    fn update_now(&self, mut capacity: CSIStorageCapacity) -> Result<CSIStorageCapacity, ApiError> {
        let mut state = self.state.lock().unwrap();
        let name = capacity.metadata.name.clone().unwrap_or_default();
        let version = capacity
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let counter: usize = version
            .strip_prefix(CSISC_REV)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "resource version {version:?} should have format {CSISC_REV}<number>"
                ))
            })?;
        let Some(old) = state.objects.get(&name).cloned() else {
            return Err(not_found(&name));
        };
        capacity.metadata.resource_version = Some(format!("{CSISC_REV}{}", counter + 1));
        state.objects.insert(name, capacity.clone());
        state.pending.push_back(Change::Updated {
            old: Arc::new(old),
            new: Arc::new(capacity.clone()),
        });
        Ok(capacity)
    }

    fn delete_now(&self, name: &str) -> Result<(), ApiError> {
        let mut state = self.state.lock().unwrap();
        let Some(last) = state.objects.remove(name) else {
            return Err(not_found(name));
        };
        state.pending.push_back(Change::Deleted {
            last: Arc::new(last),
            final_state_unknown: false,
        });
        Ok(())
    }

    fn list(&self) -> Vec<CSIStorageCapacity> {
        self.state
            .lock()
            .unwrap()
            .objects
            .values()
            .cloned()
            .collect()
    }

    fn next_event(&self) -> Option<Change<CSIStorageCapacity>> {
        self.state.lock().unwrap().pending.pop_front()
    }

    fn has_events(&self) -> bool {
        !self.state.lock().unwrap().pending.is_empty()
    }
}

impl CapacityApi for FakeServer {
    fn create(
        &self,
        namespace: &str,
        capacity: CSIStorageCapacity,
    ) -> BoxFuture<'_, Result<CSIStorageCapacity, ApiError>> {
        let result = self.create_now(namespace, capacity, true);
        Box::pin(async move { result })
    }

    fn update(
        &self,
        capacity: CSIStorageCapacity,
    ) -> BoxFuture<'_, Result<CSIStorageCapacity, ApiError>> {
        let result = self.update_now(capacity);
        Box::pin(async move { result })
    }

    fn delete<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        let result = self.delete_now(name);
        Box::pin(async move { result })
    }
}

/// A controller with its fake driver, server, caches and topology.
struct Harness {
    controller: Arc<Controller>,
    server: Arc<FakeServer>,
    cache: Arc<FakeLister<CSIStorageCapacity>>,
    storage: Arc<MockCapacity>,
    topology: Arc<FixedTopology>,
    registry: Registry,
    queue: WorkQueue<QueueKey>,
    /// upstream's global `capacityCounter` for object names.
    counter: usize,
}

impl Harness {
    fn new(
        owner: Option<OwnerReference>,
        storage: MockCapacity,
        segments: Vec<Segment>,
        classes: &[TestSc],
        initial_capacities: &[TestCapacity],
        immediate_binding: bool,
    ) -> Self {
        let server = Arc::new(FakeServer::default());
        let cache = Arc::new(FakeLister::new([]));
        let mut counter = 0;
        for input in initial_capacities {
            counter += 1;
            let object = server
                .create_now(OWNER_NAMESPACE, make_capacity(input, counter), false)
                .unwrap();
            cache.put(object);
        }
        let classes = Arc::new(FakeLister::new(classes.iter().map(make_sc)));
        let storage = Arc::new(storage);
        let topology = Arc::new(FixedTopology::new(segments));
        let queue = WorkQueue::new(ItemExponentialFailureRateLimiter::<QueueKey>::new(
            Duration::from_secs(1),
            Duration::from_secs(2),
        ));
        let controller = Controller::new(
            ControllerConfig {
                driver_name: DRIVER_NAME.into(),
                managed_by: MANAGED_BY_ID.into(),
                namespace: OWNER_NAMESPACE.into(),
                owner,
                immediate_binding,
                timeout: Duration::from_secs(10),
            },
            storage.clone(),
            server.clone(),
            classes,
            cache.clone(),
            topology.clone(),
            queue.clone(),
        );
        let registry = Registry::new();
        let metrics = CapacityMetrics::default();
        registry.register(metrics.clone()).unwrap();
        metrics.report(&controller);
        Harness {
            controller,
            server,
            cache,
            storage,
            topology,
            registry,
            queue,
            counter,
        }
    }

    /// Delivers the watch events and works the queue until there is nothing left to do.
    async fn process(&self) {
        loop {
            while let Some(change) = self.server.next_event() {
                match change {
                    Change::Added(c) => {
                        self.cache.put((*c).clone());
                        self.controller.on_capacity_add_or_update(c);
                    }
                    Change::Updated { new, .. } => {
                        self.cache.put((*new).clone());
                        self.controller.on_capacity_add_or_update(new);
                    }
                    Change::Deleted { last, .. } => {
                        self.cache.remove(&format!(
                            "{OWNER_NAMESPACE}/{}",
                            last.metadata.name.as_deref().unwrap()
                        ));
                        self.controller.on_capacity_delete(&last);
                    }
                }
            }
            if self.queue.is_empty() {
                if self.server.has_events() {
                    continue;
                }
                return;
            }
            let key = self.queue.get().await.unwrap();
            let outcome = self.controller.process(&key).await;
            settle(&self.queue, &key, outcome);
        }
    }

    /// Takes every queued key without processing it.
    async fn drain(&self) -> Vec<QueueKey> {
        let mut keys = Vec::new();
        while !self.queue.is_empty() {
            let key = self.queue.get().await.unwrap();
            self.queue.done(&key);
            keys.push(key);
        }
        keys
    }

    fn verify_metrics(&self, goal: usize, current: usize, obsolete: usize) -> Result<(), String> {
        let expected = format!(
            "# HELP csistoragecapacities_desired_current [ALPHA] Number of CSIStorageCapacity objects that exist and are supposed to be managed automatically.
# TYPE csistoragecapacities_desired_current gauge
csistoragecapacities_desired_current {current}
# HELP csistoragecapacities_desired_goal [ALPHA] Number of CSIStorageCapacity objects that are supposed to be managed automatically.
# TYPE csistoragecapacities_desired_goal gauge
csistoragecapacities_desired_goal {goal}
# HELP csistoragecapacities_obsolete [ALPHA] Number of CSIStorageCapacity objects that exist and will be deleted automatically. Objects that exist and may need an update are not considered obsolete and therefore not included in this value.
# TYPE csistoragecapacities_obsolete gauge
csistoragecapacities_obsolete {obsolete}
"
        );
        let actual = self.registry.gather_text();
        if actual == expected {
            Ok(())
        } else {
            Err(format!(
                "expected goal/current/obsolete object numbers {goal}/{current}/{obsolete}, got:\n{actual}"
            ))
        }
    }

    /// upstream's `validateCapacities`.
    fn validate(&self, expected: &[TestCapacity]) -> Result<(), String> {
        let actual = self.server.list();
        let mut expected: Vec<TestCapacity> = expected.to_vec();
        let mut messages = Vec::new();
        if actual.len() != expected.len() {
            messages.push(format!(
                "expected {} CSIStorageCapacity objects, got {}",
                expected.len(),
                actual.len()
            ));
        }
        'actual: for actual in &actual {
            for (i, want) in expected.iter().enumerate() {
                let want_object = make_capacity(want, 0);
                if actual.node_topology == want_object.node_topology
                    && actual.storage_class_name == want.storage_class_name
                    && actual.metadata.labels == want_object.metadata.labels
                {
                    let mut mismatches = Vec::new();
                    if actual.metadata.owner_references != want_object.metadata.owner_references {
                        mismatches.push(format!(
                            "expected owner {:?}, got {:?}",
                            want_object.metadata.owner_references, actual.metadata.owner_references
                        ));
                    }
                    mismatches.extend(validate_quantity(
                        "available capacity",
                        actual.capacity.as_ref(),
                        want.quantity,
                    ));
                    mismatches.extend(validate_quantity(
                        "maximum volume size",
                        actual.maximum_volume_size.as_ref(),
                        want.max_volume,
                    ));
                    let uid = actual.metadata.uid.as_deref().unwrap_or_default();
                    if !want.uid.is_empty() && uid != want.uid {
                        mismatches.push(format!("expected UID {}, got {uid}", want.uid));
                    }
                    let version = actual
                        .metadata
                        .resource_version
                        .as_deref()
                        .unwrap_or_default();
                    if !want.resource_version.is_empty() && version != want.resource_version {
                        mismatches.push(format!(
                            "expected ResourceVersion {}, got {version}",
                            want.resource_version
                        ));
                    }
                    if !mismatches.is_empty() {
                        messages.push(format!(
                            "CSIStorageCapacity {actual:?}:\n    {}",
                            mismatches.join("\n    ")
                        ));
                    }
                    expected.remove(i);
                    continue 'actual;
                }
            }
            messages.push(format!("unexpected CSIStorageCapacity {actual:?}"));
        }
        for want in expected {
            messages.push(format!("expected CSIStorageCapacity {want:?} not found"));
        }
        if messages.is_empty() {
            Ok(())
        } else {
            Err(messages.join("\n"))
        }
    }
}

fn validate_quantity(what: &str, actual: Option<&Quantity>, expected: &str) -> Vec<String> {
    match (actual, expected) {
        (None, "") => vec![],
        (None, _) => vec![format!("{what}: unexpected nil quantity")],
        (Some(_), "") => vec![format!("{what}: unexpected quantity")],
        (Some(actual), expected) => {
            if quantity_value(&actual.0) == quantity_value(expected) {
                vec![]
            } else {
                vec![format!(
                    "{what}: expected quantity {expected}, got {}",
                    actual.0
                )]
            }
        }
    }
}

fn rev(n: usize) -> String {
    format!("{CSISC_REV}{n}")
}

type Modify = fn(&mut Harness, Vec<TestCapacity>) -> Vec<TestCapacity>;

#[derive(Default)]
struct Case {
    name: &'static str,
    immediate_binding: bool,
    /// `None`: upstream's default owner; `Some(Owner::None)`: no owner.
    owner: Option<Owner>,
    topology: Vec<Segment>,
    storage: Vec<(&'static str, &'static str)>,
    initial_scs: Vec<TestSc>,
    initial_capacities: Vec<TestCapacity>,
    expected_capacities: Vec<TestCapacity>,
    modify: Option<Modify>,
    capacity_change: Option<Modify>,
    topology_change: Option<Modify>,
    /// goal, current, obsolete after `prepare`.
    expected_objects_prepared: (usize, usize, usize),
    expected_total_processed: usize,
}

fn one_gi_layer0() -> Vec<(&'static str, &'static str)> {
    vec![("foo", "1Gi")]
}

fn two_pools() -> Vec<(&'static str, &'static str)> {
    vec![("foo", "1Gi"), ("bar", "2Gi")]
}

fn with(mut c: TestCapacity, f: impl FnOnce(&mut TestCapacity)) -> TestCapacity {
    f(&mut c);
    c
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "empty",
            ..Case::default()
        },
        Case {
            name: "one segment",
            topology: vec![layer0()],
            ..Case::default()
        },
        Case {
            name: "one class",
            initial_scs: vec![sc("fast-sc")],
            ..Case::default()
        },
        Case {
            name: "one capacity object",
            topology: vec![layer0()],
            storage: one_gi_layer0(),
            initial_scs: vec![sc("other-sc")],
            expected_capacities: vec![capacity(layer0(), "other-sc", "1Gi")],
            expected_objects_prepared: (1, 0, 0),
            expected_total_processed: 1,
            ..Case::default()
        },
        Case {
            name: "no owner",
            owner: Some(Owner::None),
            topology: vec![layer0()],
            storage: one_gi_layer0(),
            initial_scs: vec![sc("other-sc")],
            expected_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.owner = Owner::None
            })],
            expected_objects_prepared: (1, 0, 0),
            expected_total_processed: 1,
            ..Case::default()
        },
        Case {
            name: "one maximum volume size",
            topology: vec![layer0()],
            storage: vec![("foo", "1Gi,1Mi")],
            initial_scs: vec![sc("other-sc")],
            expected_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.max_volume = "1Mi"
            })],
            expected_objects_prepared: (1, 0, 0),
            expected_total_processed: 1,
            ..Case::default()
        },
        Case {
            name: "ignore SC with immediate binding",
            topology: vec![layer0()],
            storage: one_gi_layer0(),
            initial_scs: vec![immediate_sc("other-sc")],
            ..Case::default()
        },
        Case {
            name: "support SC with immediate binding",
            immediate_binding: true,
            topology: vec![layer0()],
            storage: one_gi_layer0(),
            initial_scs: vec![immediate_sc("other-sc")],
            expected_capacities: vec![capacity(layer0(), "other-sc", "1Gi")],
            expected_objects_prepared: (1, 0, 0),
            expected_total_processed: 1,
            ..Case::default()
        },
        Case {
            name: "reuse one capacity object, no changes",
            topology: vec![layer0()],
            storage: one_gi_layer0(),
            initial_scs: vec![sc("other-sc")],
            initial_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.uid = "test-capacity-1"
            })],
            expected_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.uid = "test-capacity-1";
                c.resource_version = rev(0);
            })],
            expected_objects_prepared: (1, 1, 0),
            expected_total_processed: 1,
            ..Case::default()
        },
        Case {
            name: "reuse one capacity object, update capacity",
            topology: vec![layer0()],
            storage: vec![("foo", "2Gi")],
            initial_scs: vec![sc("other-sc")],
            initial_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.uid = "test-capacity-1"
            })],
            expected_capacities: vec![with(capacity(layer0(), "other-sc", "2Gi"), |c| {
                c.uid = "test-capacity-1";
                c.resource_version = rev(1);
            })],
            expected_objects_prepared: (1, 1, 0),
            expected_total_processed: 1,
            ..Case::default()
        },
        Case {
            name: "reuse one capacity object, add owner",
            topology: vec![layer0()],
            storage: one_gi_layer0(),
            initial_scs: vec![sc("other-sc")],
            initial_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.uid = "test-capacity-1";
                c.owner = Owner::None;
            })],
            expected_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.uid = "test-capacity-1";
                c.resource_version = rev(1);
                c.owner = Owner::Default;
            })],
            expected_objects_prepared: (1, 1, 0),
            expected_total_processed: 1,
            ..Case::default()
        },
        Case {
            name: "reuse one capacity object, keep owner",
            owner: Some(Owner::None),
            topology: vec![layer0()],
            storage: one_gi_layer0(),
            initial_scs: vec![sc("other-sc")],
            initial_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.uid = "test-capacity-1";
            })],
            expected_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.uid = "test-capacity-1";
                c.resource_version = rev(0);
            })],
            expected_objects_prepared: (1, 1, 0),
            expected_total_processed: 1,
            ..Case::default()
        },
        Case {
            name: "obsolete object, missing SC",
            topology: vec![layer0()],
            storage: one_gi_layer0(),
            initial_capacities: vec![capacity(layer0(), "other-sc", "1Gi")],
            expected_objects_prepared: (0, 0, 1),
            ..Case::default()
        },
        Case {
            name: "obsolete object, missing segment",
            storage: one_gi_layer0(),
            initial_scs: vec![sc("other-sc")],
            initial_capacities: vec![capacity(layer0(), "other-sc", "1Gi")],
            expected_objects_prepared: (0, 0, 1),
            ..Case::default()
        },
        Case {
            name: "ignore capacity with other manager",
            initial_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.managed_by_id = OTHER_MANAGER;
                c.uid = "test-capacity-1";
            })],
            expected_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.managed_by_id = OTHER_MANAGER;
                c.uid = "test-capacity-1";
            })],
            ..Case::default()
        },
        Case {
            name: "ignore capacity with no manager",
            initial_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.managed_by_id = NO_MANAGER;
                c.uid = "test-capacity-1";
            })],
            expected_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.managed_by_id = NO_MANAGER;
                c.uid = "test-capacity-1";
            })],
            ..Case::default()
        },
        Case {
            name: "two segments, two classes, four objects missing",
            topology: vec![layer0(), layer0other()],
            storage: two_pools(),
            initial_scs: vec![sc("direct-sc"), triple_sc("triple-sc")],
            expected_capacities: vec![
                with(capacity(layer0(), "direct-sc", "1Gi"), |c| {
                    c.resource_version = rev(0)
                }),
                with(capacity(layer0(), "triple-sc", "3Gi"), |c| {
                    c.resource_version = rev(0)
                }),
                with(capacity(layer0other(), "direct-sc", "2Gi"), |c| {
                    c.resource_version = rev(0)
                }),
                with(capacity(layer0other(), "triple-sc", "6Gi"), |c| {
                    c.resource_version = rev(0)
                }),
            ],
            expected_objects_prepared: (4, 0, 0),
            expected_total_processed: 4,
            ..Case::default()
        },
        Case {
            name: "two segments, two classes, four objects updated",
            topology: vec![layer0(), layer0other()],
            storage: two_pools(),
            initial_scs: vec![sc("direct-sc"), triple_sc("triple-sc")],
            initial_capacities: vec![
                with(capacity(layer0(), "direct-sc", "1Mi"), |c| {
                    c.uid = "test-capacity-1"
                }),
                with(capacity(layer0(), "triple-sc", "3Mi"), |c| {
                    c.uid = "test-capacity-2"
                }),
                with(capacity(layer0other(), "direct-sc", "2Mi"), |c| {
                    c.uid = "test-capacity-3"
                }),
                with(capacity(layer0other(), "triple-sc", "6Mi"), |c| {
                    c.uid = "test-capacity-4"
                }),
            ],
            expected_capacities: vec![
                with(capacity(layer0(), "direct-sc", "1Gi"), |c| {
                    c.uid = "test-capacity-1";
                    c.resource_version = rev(1);
                }),
                with(capacity(layer0(), "triple-sc", "3Gi"), |c| {
                    c.uid = "test-capacity-2";
                    c.resource_version = rev(1);
                }),
                with(capacity(layer0other(), "direct-sc", "2Gi"), |c| {
                    c.uid = "test-capacity-3";
                    c.resource_version = rev(1);
                }),
                with(capacity(layer0other(), "triple-sc", "6Gi"), |c| {
                    c.uid = "test-capacity-4";
                    c.resource_version = rev(1);
                }),
            ],
            expected_objects_prepared: (4, 4, 0),
            expected_total_processed: 4,
            ..Case::default()
        },
        Case {
            name: "two segments, two classes, two added, two removed",
            topology: vec![layer0(), layer0other()],
            storage: two_pools(),
            initial_scs: vec![sc("direct-sc"), triple_sc("triple-sc")],
            initial_capacities: vec![
                with(capacity(layer0(), "old-direct-sc", "1Mi"), |c| {
                    c.uid = "test-capacity-1"
                }),
                with(capacity(layer0(), "old-triple-sc", "3Mi"), |c| {
                    c.uid = "test-capacity-2"
                }),
                with(capacity(layer0other(), "direct-sc", "2Mi"), |c| {
                    c.uid = "test-capacity-3"
                }),
                with(capacity(layer0other(), "triple-sc", "6Mi"), |c| {
                    c.uid = "test-capacity-4"
                }),
            ],
            expected_capacities: vec![
                with(capacity(layer0(), "direct-sc", "1Gi"), |c| {
                    c.resource_version = rev(0)
                }),
                with(capacity(layer0(), "triple-sc", "3Gi"), |c| {
                    c.resource_version = rev(0)
                }),
                with(capacity(layer0other(), "direct-sc", "2Gi"), |c| {
                    c.uid = "test-capacity-3";
                    c.resource_version = rev(1);
                }),
                with(capacity(layer0other(), "triple-sc", "6Gi"), |c| {
                    c.uid = "test-capacity-4";
                    c.resource_version = rev(1);
                }),
            ],
            expected_objects_prepared: (4, 2, 2),
            expected_total_processed: 4,
            ..Case::default()
        },
        Case {
            name: "re-create capacity",
            topology: vec![layer0()],
            storage: one_gi_layer0(),
            initial_scs: vec![sc("other-sc")],
            expected_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.uid = "CSISC-UID-1";
                c.resource_version = rev(0);
            })],
            modify: Some(|h, mut expected| {
                let capacity = h.server.list().remove(0);
                h.server
                    .delete_now(capacity.metadata.name.as_deref().unwrap())
                    .unwrap();
                expected[0].uid = "CSISC-UID-2";
                expected
            }),
            expected_objects_prepared: (1, 0, 0),
            expected_total_processed: 1,
            ..Case::default()
        },
        Case {
            name: "delete redundant capacity",
            modify: Some(|h, expected| {
                h.counter += 1;
                let capacity = make_capacity(
                    &TestCapacity {
                        quantity: "1Gi",
                        ..TestCapacity::default()
                    },
                    h.counter,
                );
                h.server
                    .create_now(OWNER_NAMESPACE, capacity, true)
                    .unwrap();
                expected
            }),
            ..Case::default()
        },
        Case {
            name: "ignore capacity after owner change",
            topology: vec![layer0()],
            storage: one_gi_layer0(),
            initial_scs: vec![sc("other-sc")],
            expected_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.uid = "CSISC-UID-1";
                c.resource_version = rev(0);
            })],
            modify: Some(|h, mut expected| {
                // Someone removes the labels: the now foreign object is left alone, and the
                // item gets a new object.
                let mut capacity = h.server.list().remove(0);
                capacity.metadata.labels = None;
                h.server.update_now(capacity).unwrap();
                expected[0].managed_by_id = NO_MANAGER;
                expected[0].resource_version = rev(1);
                expected.push(with(capacity_of_layer0_other_sc(), |c| {
                    c.uid = "CSISC-UID-2";
                    c.resource_version = rev(0);
                }));
                expected
            }),
            expected_objects_prepared: (1, 0, 0),
            expected_total_processed: 1,
            ..Case::default()
        },
        Case {
            name: "delete and recreate by someone",
            topology: vec![layer0()],
            storage: one_gi_layer0(),
            initial_scs: vec![sc("other-sc")],
            expected_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.uid = "CSISC-UID-1";
                c.resource_version = rev(0);
            })],
            modify: Some(|h, mut expected| {
                // Deleted and created again with the same name, another UID and a wrong
                // capacity, which the controller must correct.
                let mut capacity = h.server.list().remove(0);
                h.server
                    .delete_now(capacity.metadata.name.as_deref().unwrap())
                    .unwrap();
                capacity.metadata.uid = Some("CSISC-UID-2".into());
                capacity.capacity = Some(Quantity("1Mi".into()));
                h.server
                    .create_now(OWNER_NAMESPACE, capacity, true)
                    .unwrap();
                expected[0].uid = "CSISC-UID-2";
                expected[0].resource_version = rev(1);
                expected
            }),
            expected_objects_prepared: (1, 0, 0),
            expected_total_processed: 1,
            ..Case::default()
        },
        Case {
            name: "storage capacity change",
            topology: vec![layer0()],
            storage: one_gi_layer0(),
            initial_scs: vec![sc("other-sc")],
            expected_capacities: vec![with(capacity(layer0(), "other-sc", "1Gi"), |c| {
                c.uid = "CSISC-UID-1";
                c.resource_version = rev(0);
            })],
            capacity_change: Some(|h, mut expected| {
                h.storage.set("foo", "2Gi");
                expected[0].quantity = "2Gi";
                expected[0].resource_version = rev(1);
                expected
            }),
            expected_objects_prepared: (1, 0, 0),
            expected_total_processed: 1,
            ..Case::default()
        },
        Case {
            name: "add storage topology segment",
            storage: one_gi_layer0(),
            // The class with immediate binding is skipped, the other one still processed.
            initial_scs: vec![immediate_sc("immediate-sc"), sc("late-sc")],
            topology_change: Some(|h, mut expected| {
                h.topology.modify(&[layer0()], &[]);
                expected.push(with(capacity(layer0(), "late-sc", "1Gi"), |c| {
                    c.uid = "CSISC-UID-1";
                    c.resource_version = rev(0);
                }));
                expected
            }),
            expected_total_processed: 1,
            ..Case::default()
        },
        Case {
            name: "add storage topology segment, immediate binding",
            immediate_binding: true,
            storage: one_gi_layer0(),
            initial_scs: vec![immediate_sc("immediate-sc"), sc("late-sc")],
            topology_change: Some(|h, mut expected| {
                h.topology.modify(&[layer0()], &[]);
                // No UIDs: the order of the classes is not fixed.
                expected.push(with(capacity(layer0(), "immediate-sc", "1Gi"), |c| {
                    c.resource_version = rev(0);
                }));
                expected.push(with(capacity(layer0(), "late-sc", "1Gi"), |c| {
                    c.resource_version = rev(0);
                }));
                expected
            }),
            expected_total_processed: 2,
            ..Case::default()
        },
        Case {
            name: "remove storage topology segment",
            topology: vec![layer0()],
            storage: one_gi_layer0(),
            initial_scs: vec![immediate_sc("immediate-sc"), sc("late-sc")],
            expected_capacities: vec![with(capacity(layer0(), "late-sc", "1Gi"), |c| {
                c.uid = "CSISC-UID-1";
                c.resource_version = rev(0);
            })],
            topology_change: Some(|h, _| {
                let all: Vec<Segment> = crate::capacity::Topology::list(&*h.topology)
                    .iter()
                    .map(|s| (**s).clone())
                    .collect();
                h.topology.modify(&[], &all);
                vec![]
            }),
            expected_objects_prepared: (1, 0, 0),
            ..Case::default()
        },
        Case {
            name: "add and remove storage topology segment",
            topology: vec![layer0()],
            storage: two_pools(),
            initial_scs: vec![immediate_sc("immediate-sc"), sc("late-sc")],
            expected_capacities: vec![with(capacity(layer0(), "late-sc", "1Gi"), |c| {
                c.uid = "CSISC-UID-1";
                c.resource_version = rev(0);
            })],
            topology_change: Some(|h, _| {
                let all: Vec<Segment> = crate::capacity::Topology::list(&*h.topology)
                    .iter()
                    .map(|s| (**s).clone())
                    .collect();
                h.topology.modify(&[layer0other()], &all);
                vec![with(capacity(layer0other(), "late-sc", "2Gi"), |c| {
                    c.uid = "CSISC-UID-2";
                    c.resource_version = rev(0);
                })]
            }),
            expected_objects_prepared: (1, 0, 0),
            expected_total_processed: 1,
            ..Case::default()
        },
    ]
}

fn capacity_of_layer0_other_sc() -> TestCapacity {
    capacity(layer0(), "other-sc", "1Gi")
}

#[tokio::test]
async fn capacity_controller() {
    let cases = cases();
    assert_eq!(cases.len(), 28);
    let mut failures = Vec::new();
    for case in cases {
        if let Err(err) = run_case(case.name, case).await {
            failures.push(err);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

async fn run_case(name: &str, case: Case) -> Result<(), String> {
    let fail = |what: &str, err: String| format!("{name}: {what}: {err}");
    let owner = match case.owner {
        None => Some(default_owner()),
        Some(Owner::Default) => Some(default_owner()),
        Some(Owner::None) => None,
    };
    let storage = if case.storage.is_empty() {
        MockCapacity::default()
    } else {
        MockCapacity::new(&case.storage)
    };
    let mut h = Harness::new(
        owner,
        storage,
        case.topology,
        &case.initial_scs,
        &case.initial_capacities,
        case.immediate_binding,
    );
    h.controller.prepare();
    let (goal, current, obsolete) = case.expected_objects_prepared;
    h.verify_metrics(goal, current, obsolete)
        .map_err(|e| fail("metrics after prepare", e))?;
    h.process().await;
    h.validate(&case.expected_capacities)
        .map_err(|e| fail("initial objects", e))?;

    let mut expected = case.expected_capacities;
    if let Some(modify) = case.modify {
        expected = modify(&mut h, expected);
        h.process().await;
        h.validate(&expected)
            .map_err(|e| fail("modified objects", e))?;
    }
    if let Some(change) = case.capacity_change {
        expected = change(&mut h, expected);
        h.controller.poll();
        h.process().await;
        h.validate(&expected)
            .map_err(|e| fail("modified capacity", e))?;
    }
    if let Some(change) = case.topology_change {
        expected = change(&mut h, expected);
        h.process().await;
        h.validate(&expected)
            .map_err(|e| fail("modified topology", e))?;
    }
    let total = case.expected_total_processed;
    h.verify_metrics(total, total, 0)
        .map_err(|e| fail("metrics after processing", e))?;
    // Stable: another periodic refresh changes nothing.
    h.controller.poll();
    h.process().await;
    h.verify_metrics(total, total, 0)
        .map_err(|e| fail("metrics not stable after processing", e))?;
    h.validate(&expected)
        .map_err(|e| fail("objects not stable after processing", e))?;
    Ok(())
}

fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: operator.into(),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
    }
}

#[test]
fn term_to_segment_table() {
    let expressions = |r: Vec<NodeSelectorRequirement>| NodeSelectorTerm {
        match_expressions: Some(r),
        match_fields: None,
    };
    let cases: Vec<(&str, NodeSelectorTerm, Option<Segment>)> = vec![
        (
            "matchfields",
            NodeSelectorTerm {
                match_expressions: None,
                match_fields: Some(vec![NodeSelectorRequirement {
                    key: "name".into(),
                    operator: String::new(),
                    values: Some(vec!["worker-1".into()]),
                }]),
            },
            None,
        ),
        (
            "invalid-operator",
            expressions(vec![requirement("segment", "NotIn", &["a"])]),
            None,
        ),
        (
            "invalid-values",
            expressions(vec![requirement("segment", "In", &["a", "b"])]),
            None,
        ),
        (
            "simple",
            expressions(vec![requirement("segment", "In", &["a"])]),
            Some(Segment::new([("segment", "a")])),
        ),
        (
            "multi",
            expressions(vec![
                requirement("segment", "In", &["a"]),
                requirement("zone", "In", &["X"]),
            ]),
            Some(Segment::new([("segment", "a"), ("zone", "X")])),
        ),
        (
            "unsorted",
            expressions(vec![
                requirement("zone", "In", &["X"]),
                requirement("segment", "In", &["a"]),
            ]),
            Some(Segment::new([("segment", "a"), ("zone", "X")])),
        ),
    ];
    for (name, term, expected) in cases {
        match (term_to_segment(&term), expected) {
            (Err(_), None) => {}
            (Ok(segment), None) => panic!("{name}: expected error, got segment {segment}"),
            (Err(err), Some(_)) => panic!("{name}: expected no error, got: {err}"),
            (Ok(segment), Some(expected)) => {
                assert_eq!(segment, expected, "{name}");
                // Sorted by key, whatever the order of the requirements.
                let keys: Vec<&str> = segment.entries().iter().map(|e| e.key.as_str()).collect();
                let mut sorted = keys.clone();
                sorted.sort();
                assert_eq!(keys, sorted, "{name}");
            }
        }
    }
}

fn affinity(segment: &Segment) -> VolumeNodeAffinity {
    VolumeNodeAffinity {
        required: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(
                    segment
                        .entries()
                        .iter()
                        .map(|e| requirement(&e.key, "In", &[&e.value]))
                        .collect(),
                ),
                match_fields: None,
            }],
        }),
    }
}

/// upstream's `itemsAsSortedStringSlice`: `class, [key: value key2: value2]`.
fn items_as_sorted_strings(keys: Vec<QueueKey>) -> Vec<String> {
    let mut items: Vec<String> = keys
        .into_iter()
        .map(|key| match key {
            QueueKey::Sync(item) => format!(
                "{}, [{}]",
                item.storage_class_name,
                item.segment
                    .entries()
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            QueueKey::Delete(object) => format!("delete {}", object.name),
        })
        .collect();
    items.sort();
    items
}

fn two_classes() -> Vec<TestSc> {
    vec![sc("direct-sc"), triple_sc("triple-sc")]
}

#[tokio::test]
async fn refresh() {
    struct RefreshCase {
        name: &'static str,
        topology: Vec<Segment>,
        refresh_sc: &'static str,
        refresh_topology: Option<Segment>,
        expect_items: Vec<&'static str>,
    }
    let cases = vec![
        RefreshCase {
            name: "two segments, two classes, refresh storageclass",
            topology: vec![layer0(), layer0other()],
            refresh_sc: "direct-sc",
            refresh_topology: None,
            expect_items: vec!["direct-sc, [layer0: bar]", "direct-sc, [layer0: foo]"],
        },
        RefreshCase {
            name: "two segments, two classes, refresh topology",
            topology: vec![layer0(), layer0other()],
            refresh_sc: "",
            refresh_topology: Some(Segment::new([("layer0", "bar")])),
            expect_items: vec!["direct-sc, [layer0: bar]", "triple-sc, [layer0: bar]"],
        },
        RefreshCase {
            name: "deep topology",
            topology: vec![deep(), deep_other()],
            refresh_sc: "",
            refresh_topology: Some(deep()),
            expect_items: vec![
                "direct-sc, [layer0: foo layer1: X layer2: A]",
                "triple-sc, [layer0: foo layer1: X layer2: A]",
            ],
        },
        RefreshCase {
            name: "no such topology",
            topology: vec![deep(), deep_other()],
            refresh_sc: "",
            refresh_topology: Some(Segment::new([
                ("layer0", "foo"),
                ("layer1", "X"),
                ("layer2", "BBBBBBBBBBB"),
            ])),
            expect_items: vec![],
        },
        RefreshCase {
            name: "no such storageclass",
            topology: vec![deep(), deep_other()],
            refresh_sc: "no-such-sc",
            refresh_topology: None,
            expect_items: vec![],
        },
        RefreshCase {
            name: "truncated topology",
            topology: vec![deep(), deep_other()],
            refresh_sc: "",
            refresh_topology: Some(Segment::new([("layer0", "foo")])),
            expect_items: vec![],
        },
    ];
    for case in cases {
        let h = Harness::new(
            Some(default_owner()),
            MockCapacity::default(),
            case.topology,
            &two_classes(),
            &[],
            false,
        );
        h.controller.prepare();
        // Only what the refresh queues is seen below.
        let initial = h.drain().await;
        assert_eq!(initial.len(), 4, "{}", case.name);
        if !case.refresh_sc.is_empty() {
            h.controller.refresh_class(case.refresh_sc);
        }
        if let Some(segment) = &case.refresh_topology {
            h.controller.refresh_topology(&affinity(segment));
        }
        assert_eq!(
            items_as_sorted_strings(h.drain().await),
            case.expect_items,
            "{}",
            case.name
        );
    }
}

fn pv_with_affinity(affinity: Option<VolumeNodeAffinity>) -> PersistentVolume {
    PersistentVolume {
        spec: Some(PersistentVolumeSpec {
            node_affinity: affinity,
            ..PersistentVolumeSpec::default()
        }),
        ..PersistentVolume::default()
    }
}

/// upstream's provision wrapper: after a provision or a deletion, the objects that probably
/// changed are refreshed.
#[tokio::test]
async fn refresh_after_provision_and_delete() {
    let h = Harness::new(
        Some(default_owner()),
        MockCapacity::default(),
        vec![layer0(), layer0other()],
        &two_classes(),
        &[],
        false,
    );
    h.controller.prepare();
    h.drain().await;

    // A volume with node affinity: its segment, in every class.
    h.controller.provisioned(
        Some("direct-sc"),
        &pv_with_affinity(Some(affinity(&layer0other()))),
    );
    assert_eq!(
        items_as_sorted_strings(h.drain().await),
        vec!["direct-sc, [layer0: bar]", "triple-sc, [layer0: bar]"]
    );
    // Without node affinity: the class, in every segment.
    h.controller
        .provisioned(Some("triple-sc"), &pv_with_affinity(None));
    assert_eq!(
        items_as_sorted_strings(h.drain().await),
        vec!["triple-sc, [layer0: bar]", "triple-sc, [layer0: foo]"]
    );
    // A failure that may have changed something in the driver: the class.
    h.controller
        .provision_failed(Some("direct-sc"), ProvisioningState::Finished);
    assert_eq!(
        items_as_sorted_strings(h.drain().await),
        vec!["direct-sc, [layer0: bar]", "direct-sc, [layer0: foo]"]
    );
    // Nothing happened in the driver: nothing to refresh.
    h.controller
        .provision_failed(Some("direct-sc"), ProvisioningState::NoChange);
    assert!(h.drain().await.is_empty());
    // A deletion: the volume's segment; without node affinity, nothing.
    h.controller
        .deleted(&pv_with_affinity(Some(affinity(&layer0()))));
    assert_eq!(
        items_as_sorted_strings(h.drain().await),
        vec!["direct-sc, [layer0: foo]", "triple-sc, [layer0: foo]"]
    );
    h.controller.deleted(&pv_with_affinity(None));
    assert!(h.drain().await.is_empty());
}

/// The object the controller creates: generated name, labels, owner, topology, quantities in
/// apimachinery's BinarySI form; `csi.storage.k8s.io/*` parameters reach the driver.
#[tokio::test]
async fn created_objects_and_get_capacity_requests() {
    #[derive(Debug, Default)]
    struct Recorder {
        requests: Mutex<Vec<GetCapacityRequest>>,
    }
    impl CapacityDriver for Recorder {
        fn get_capacity(
            &self,
            request: GetCapacityRequest,
            _timeout: Duration,
        ) -> BoxFuture<'_, Result<GetCapacityResponse, CsiError>> {
            self.requests.lock().unwrap().push(request);
            Box::pin(async {
                Ok(GetCapacityResponse {
                    available_capacity: 5 * 1024 * 1024 * 1024 + 512 * 1024 * 1024,
                    maximum_volume_size: Some(1000),
                    minimum_volume_size: None,
                })
            })
        }
    }
    let server = Arc::new(FakeServer::default());
    let driver = Arc::new(Recorder::default());
    let class = TestSc {
        name: "gold",
        parameters: vec![
            ("csi.storage.k8s.io/provisioner-secret-name", "s"),
            ("type", "ssd"),
        ],
        ..TestSc::default()
    };
    let queue = WorkQueue::new(ItemExponentialFailureRateLimiter::<QueueKey>::new(
        Duration::from_secs(1),
        Duration::from_secs(2),
    ));
    let controller = Controller::new(
        ControllerConfig {
            driver_name: DRIVER_NAME.into(),
            managed_by: "external-provisioner-node1".into(),
            namespace: OWNER_NAMESPACE.into(),
            owner: Some(default_owner()),
            immediate_binding: false,
            timeout: Duration::from_secs(10),
        },
        driver.clone(),
        server.clone(),
        Arc::new(FakeLister::new([make_sc(&class)])),
        Arc::new(FakeLister::new([])),
        Arc::new(FixedTopology::new([layer0()])),
        queue.clone(),
    );
    controller.prepare();
    let key = queue.get().await.unwrap();
    assert_eq!(
        controller.process(&key).await,
        csi_workqueue::Outcome::Forget
    );

    let requests = driver.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].parameters,
        HashMap::from([
            (
                "csi.storage.k8s.io/provisioner-secret-name".to_string(),
                "s".to_string()
            ),
            ("type".to_string(), "ssd".to_string()),
        ])
    );
    assert_eq!(
        requests[0].accessible_topology.as_ref().unwrap().segments,
        HashMap::from([("layer0".to_string(), "foo".to_string())])
    );
    assert!(requests[0].volume_capabilities.is_empty());

    let objects = server.list();
    assert_eq!(objects.len(), 1);
    let object = &objects[0];
    assert_eq!(object.metadata.generate_name.as_deref(), Some("csisc-"));
    assert_eq!(object.metadata.namespace.as_deref(), Some(OWNER_NAMESPACE));
    assert_eq!(
        object.metadata.labels,
        Some(BTreeMap::from([
            (DRIVER_NAME_LABEL.to_string(), DRIVER_NAME.to_string()),
            (
                MANAGED_BY_LABEL.to_string(),
                "external-provisioner-node1".to_string()
            ),
        ]))
    );
    assert_eq!(
        object.metadata.owner_references,
        Some(vec![default_owner()])
    );
    assert_eq!(object.storage_class_name, "gold");
    assert_eq!(object.node_topology, Some(layer0().label_selector()));
    assert_eq!(object.capacity, Some(Quantity("5632Mi".into())));
    assert_eq!(object.maximum_volume_size, Some(Quantity("1k".into())));
}

/// A failed `GetCapacity` is retried (and logged), and nothing is written.
#[tokio::test]
async fn a_failed_get_capacity_is_retried() {
    let h = Harness::new(
        Some(default_owner()),
        // No pool information at all: upstream's mock fails.
        MockCapacity::default(),
        vec![layer0()],
        &[sc("other-sc")],
        &[],
        false,
    );
    h.controller.prepare();
    let key = h.queue.get().await.unwrap();
    assert_eq!(
        h.controller.process(&key).await,
        csi_workqueue::Outcome::Requeue
    );
    assert!(h.server.list().is_empty());
    let err = match &key {
        QueueKey::Sync(item) => h.controller.sync_capacity(item).await.unwrap_err(),
        other => panic!("unexpected key {other}"),
    };
    assert_eq!(
        err.to_string(),
        "CSI GetCapacity for other-sc, [layer0: foo]: no information found at layer 0"
    );
}
