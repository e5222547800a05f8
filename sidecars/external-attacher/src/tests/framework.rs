//! Port of upstream's `pkg/controller/framework_test.go`: a table-test runner that feeds one
//! watch event to an [`AttachController`], processes its queues until the expected number of
//! API calls happened, and compares the calls (and the CSI calls) with the table.
//!
//! Differences from upstream's runner, none of which changes what a case expects:
//! - the fake client is [`FakeKube`] (its cache plays the informers, and is not updated by
//!   writes, as upstream's informers were not either);
//! - queues are deterministic: a key re-added "with rate limiting" waits until nothing else is
//!   left and fewer calls than expected happened — where upstream sleeps until the backoff
//!   expires;
//! - a failed expectation is collected and reported with the case name at the end.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use csi_proto::csi::v1::{ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest};
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, PersistentVolume, PersistentVolumeSpec, Secret,
};
use k8s_openapi::api::storage::v1::{
    CSINode, VolumeAttachment, VolumeAttachmentSource, VolumeAttachmentSpec,
    VolumeAttachmentStatus, VolumeError,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::attacher::{Attacher, CsiError};
use crate::controller::AttachController;
use crate::handler::{Handler, SyncOutcome};
use crate::kube::{KubeClient, KubeListers};
use crate::lister::{ListVolumesError, PublishedNodes, VolumeLister};
use crate::tests::fake::{Action, FakeKube, PatchType, Reactor, Verb, resource};
use crate::util::{VA_NODE_ID_ANNOTATION, volume_attachment_merge_patch};
use csi_controller::finalizer::{add_finalizer_patch, remove_finalizer_patch};
use futures::future::BoxFuture;

pub const TEST_ATTACHER_NAME: &str = "csi/test";
pub const TEST_PV_NAME: &str = "pv1";
pub const TEST_NODE_NAME: &str = "node1";
pub const TEST_VOLUME_HANDLE: &str = "handle1";
pub const TEST_NODE_ID: &str = "nodeID1";
/// The finalizer value (`fin` upstream).
pub const FIN: &str = "external-attacher/csi-test";
pub const DEFAULT_FS_TYPE: &str = "ext4";
/// The VolumeAttachment's name.
pub const VA_NAME: &str = "pv1-node1";

/// An object to put into the fake before the test starts (`initialObjects`).
#[derive(Clone)]
pub enum Obj {
    Pv(PersistentVolume),
    Va(VolumeAttachment),
    CsiNode(CSINode),
    Secret(Secret),
}

impl From<PersistentVolume> for Obj {
    fn from(pv: PersistentVolume) -> Self {
        Obj::Pv(pv)
    }
}

impl From<VolumeAttachment> for Obj {
    fn from(va: VolumeAttachment) -> Self {
        Obj::Va(va)
    }
}

impl From<CSINode> for Obj {
    fn from(node: CSINode) -> Self {
        Obj::CsiNode(node)
    }
}

impl From<Secret> for Obj {
    fn from(secret: Secret) -> Self {
        Obj::Secret(secret)
    }
}

/// A client reactor (`reaction` upstream); `reactor` makes a fresh one per run.
pub struct Reaction {
    pub verb: Verb,
    pub resource: &'static str,
    pub reactor: Box<dyn Fn() -> Reactor>,
}

/// Fails the first `failures` calls matching `verb` and `resource` with `err()`, then lets
/// them through (upstream's counting reactors).
pub fn fail_first(
    verb: Verb,
    resource: &'static str,
    failures: usize,
    err: fn() -> crate::kube::ApiError,
) -> Reaction {
    Reaction {
        verb,
        resource,
        reactor: Box::new(move || {
            let mut i = 0;
            Box::new(move |_: &Action| {
                i += 1;
                (i <= failures).then(err)
            })
        }),
    }
}

/// Fails only the `n`th matching call (1-based).
pub fn fail_nth(
    verb: Verb,
    resource: &'static str,
    n: usize,
    err: fn() -> crate::kube::ApiError,
) -> Reaction {
    Reaction {
        verb,
        resource,
        reactor: Box::new(move || {
            let mut i = 0;
            Box::new(move |_: &Action| {
                i += 1;
                (i == n).then(err)
            })
        }),
    }
}

/// One expected CSI call (`csiCall` upstream), in upstream's field order.
#[derive(Debug, Clone)]
pub struct CsiCall {
    /// `"attach"` or `"detach"`.
    pub function_name: &'static str,
    pub volume_handle: String,
    pub node_id: String,
    pub volume_attributes: HashMap<String, String>,
    pub secrets: HashMap<String, String>,
    pub read_only: bool,
    /// The error to return.
    pub err: Option<CsiError>,
    /// Returned by upstream's fake, ignored by the handler; kept so the tables read as
    /// upstream's.
    #[allow(dead_code)]
    pub detached: bool,
    /// The publish context to return (attach only).
    pub metadata: HashMap<String, String>,
    /// How long the call takes (the handler's timeout cuts it short).
    pub delay: Duration,
}

/// A `csiCall{...}` literal.
#[allow(clippy::too_many_arguments)]
pub fn call(
    function_name: &'static str,
    volume_handle: &str,
    node_id: &str,
    volume_attributes: HashMap<String, String>,
    secrets: HashMap<String, String>,
    read_only: bool,
    err: Option<CsiError>,
    detached: bool,
    metadata: HashMap<String, String>,
    delay: Duration,
) -> CsiCall {
    CsiCall {
        function_name,
        volume_handle: volume_handle.to_string(),
        node_id: node_id.to_string(),
        volume_attributes,
        secrets,
        read_only,
        err,
        detached,
        metadata,
        delay,
    }
}

/// A `map[string]string` literal; `m(&[])` is upstream's `nil` map (the CSI request cannot
/// tell nil from empty).
pub fn m(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A plain (not gRPC) error, as upstream's `fmt.Errorf("mock error")`.
pub fn plain_error(message: &str) -> Option<CsiError> {
    Some(CsiError::Other(message.to_string()))
}

/// A check of the fake's objects after a run.
pub type Check = fn(&FakeKube) -> Result<(), String>;

/// One table row (`testCase` upstream).
#[derive(Default)]
pub struct TestCase {
    pub name: &'static str,
    /// Objects in the fake before the test starts.
    pub initial_objects: Vec<Obj>,
    /// Client reactors.
    pub reactors: Vec<Reaction>,
    /// Simulates "VA added"; also added to the initial objects.
    pub added_va: Option<VolumeAttachment>,
    /// Simulates "VA updated" (old = new); also added to the initial objects.
    pub updated_va: Option<VolumeAttachment>,
    /// Simulates "VA deleted".
    pub deleted_va: Option<VolumeAttachment>,
    /// Simulates "PV updated" (old = new); also added to the initial objects.
    pub updated_pv: Option<PersistentVolume>,
    /// The client calls that must happen, in order.
    pub expected_actions: Vec<Action>,
    /// The CSI calls that must happen, in order.
    pub expected_csi_calls: Vec<CsiCall>,
    /// What ListVolumes returns; `Some` also makes the runner reconcile.
    pub lister_response: Option<PublishedNodes>,
    /// More checks on the fake after the run (not in upstream's tables: resulting objects).
    pub additional_check: Option<Check>,
}

/// Makes the handler under test.
pub type HandlerFactory = fn(
    Arc<dyn KubeClient>,
    Arc<dyn KubeListers>,
    Arc<dyn Attacher>,
    Arc<dyn VolumeLister>,
) -> Arc<dyn Handler>;

type Published = Arc<Mutex<Option<PublishedNodes>>>;

/// Upstream's `fakeLister`.
#[derive(Debug, Clone)]
pub struct FakeVolumeLister {
    published: Published,
}

impl VolumeLister for FakeVolumeLister {
    fn list_volumes(
        &self,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<PublishedNodes, ListVolumesError>> {
        let published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        Box::pin(async move { Ok(published) })
    }
}

#[derive(Debug, Default)]
struct AttacherState {
    calls: Vec<CsiCall>,
    index: usize,
    failures: Vec<String>,
}

/// Upstream's `fakeCSIConnection`: checks each Attach/Detach against the next expected call
/// and returns its scripted result; updates the fake lister's published map as upstream's
/// does.
#[derive(Debug, Clone)]
pub struct FakeAttacher {
    state: Arc<Mutex<AttacherState>>,
    published: Published,
}

impl FakeAttacher {
    fn next(&self, what: &str, volume: &str, node: &str) -> Option<CsiCall> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.index >= state.calls.len() {
            let msg = format!(
                "Unexpected CSI {what} call: volume={volume}, node={node}, index: {}, calls: {:?}",
                state.index, state.calls
            );
            state.failures.push(msg);
            return None;
        }
        let call = state.calls[state.index].clone();
        state.index += 1;
        Some(call)
    }

    fn fail(&self, msg: String) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failures
            .push(msg);
    }

    fn published(&self) -> std::sync::MutexGuard<'_, Option<PublishedNodes>> {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Attacher for FakeAttacher {
    fn attach(
        &self,
        req: ControllerPublishVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<HashMap<String, String>, CsiError>> {
        Box::pin(async move {
            let (volume, node) = (req.volume_id.as_str(), req.node_id.as_str());
            let Some(call) = self.next("Attach", volume, node) else {
                return Err(CsiError::Other("unexpected call".into()));
            };
            // A long delay ends when the deadline expires.
            if tokio::time::timeout(timeout, tokio::time::sleep(call.delay))
                .await
                .is_err()
            {
                return Err(CsiError::Other("context deadline exceeded".into()));
            }
            let mut err = None;
            if call.function_name != "attach" {
                self.fail(format!(
                    "Unexpected CSI Attach call: volume={volume}, node={node}, expected: {}",
                    call.function_name
                ));
                err = Some(CsiError::Other("unexpected attach call".into()));
            }
            if call.volume_handle != volume {
                self.fail(format!(
                    "Wrong CSI Attach call: volume={volume}, node={node}, expected PV: {}",
                    call.volume_handle
                ));
                err = Some(CsiError::Other("unexpected attach call".into()));
            }
            if call.node_id != node {
                self.fail(format!(
                    "Wrong CSI Attach call: volume={volume}, node={node}, expected Node: {}",
                    call.node_id
                ));
                err = Some(CsiError::Other("unexpected attach call".into()));
            }
            if call.volume_attributes != req.volume_context {
                self.fail(format!(
                    "Wrong CSI Attach call: volume={volume}, node={node}, expected attributes {:?}, got {:?}",
                    call.volume_attributes, req.volume_context
                ));
            }
            if call.secrets != req.secrets {
                self.fail(format!(
                    "Wrong CSI Attach call: volume={volume}, node={node}, expected secrets {:?}, got {:?}",
                    call.secrets, req.secrets
                ));
            }
            if call.read_only != req.readonly {
                self.fail(format!(
                    "Wrong CSI Attach call: volume={volume}, node={node}, expected readOnly {}, got {}",
                    call.read_only, req.readonly
                ));
            }
            if let Some(err) = err {
                return Err(err);
            }
            // Update the published volume map.
            if let Some(published) = self.published().as_mut() {
                published.insert(call.volume_handle.clone(), vec![call.node_id.clone()]);
            }
            match call.err {
                Some(err) => Err(err),
                None => Ok(call.metadata),
            }
        })
    }

    fn detach(
        &self,
        req: ControllerUnpublishVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), CsiError>> {
        Box::pin(async move {
            let (volume, node) = (req.volume_id.as_str(), req.node_id.as_str());
            let Some(call) = self.next("Detach", volume, node) else {
                return Err(CsiError::Other("unexpected call".into()));
            };
            if tokio::time::timeout(timeout, tokio::time::sleep(call.delay))
                .await
                .is_err()
            {
                return Err(CsiError::Other("context deadline exceeded".into()));
            }
            let mut err = None;
            if call.function_name != "detach" {
                self.fail(format!(
                    "Unexpected CSI Detach call: volume={volume}, node={node}, expected: {}",
                    call.function_name
                ));
                err = Some(CsiError::Other("unexpected detach call".into()));
            }
            if call.volume_handle != volume {
                self.fail(format!(
                    "Wrong CSI Detach call: volume={volume}, node={node}, expected PV: {}",
                    call.volume_handle
                ));
                err = Some(CsiError::Other("unexpected detach call".into()));
            }
            if call.node_id != node {
                self.fail(format!(
                    "Wrong CSI Detach call: volume={volume}, node={node}, expected Node: {}",
                    call.node_id
                ));
                err = Some(CsiError::Other("unexpected detach call".into()));
            }
            if call.secrets != req.secrets {
                self.fail(format!(
                    "Wrong CSI Detach call: volume={volume}, node={node}, expected secrets {:?}, got {:?}",
                    call.secrets, req.secrets
                ));
            }
            if let Some(err) = err {
                return Err(err);
            }
            if let Some(published) = self.published().as_mut() {
                published.remove(&call.volume_handle);
            }
            match call.err {
                Some(err) => Err(err),
                None => Ok(()),
            }
        })
    }
}

/// A workqueue as far as the tests need one: ready keys (deduplicated) and keys waiting for
/// their backoff.
#[derive(Default)]
struct TestQueue {
    ready: VecDeque<String>,
    waiting: Vec<String>,
}

impl TestQueue {
    fn add(&mut self, key: String) {
        if !self.ready.contains(&key) {
            self.ready.push_back(key);
        }
    }

    fn add_rate_limited(&mut self, key: String) {
        if !self.waiting.contains(&key) {
            self.waiting.push(key);
        }
    }

    fn apply(&mut self, key: String, outcome: SyncOutcome) {
        match outcome {
            SyncOutcome::Done | SyncOutcome::Forget => {}
            SyncOutcome::Requeue(_) => self.add_rate_limited(key),
        }
    }

    /// The backoff of every waiting key expires; whether there were any.
    fn release(&mut self) -> bool {
        let any = !self.waiting.is_empty();
        for key in std::mem::take(&mut self.waiting) {
            self.add(key);
        }
        any
    }
}

/// Removes `time` from `status.attachError` / `status.detachError` of a VolumeAttachment
/// patch (upstream: "Sanitize time in attach/detach errors").
fn sanitize(action: &mut Action) {
    if action.resource != resource::VOLUME_ATTACHMENTS {
        return;
    }
    let Some((_, Value::Object(patch))) = action.patch.as_mut() else {
        return;
    };
    let Some(Value::Object(status)) = patch.get_mut("status") else {
        return;
    };
    for key in ["attachError", "detachError"] {
        if let Some(Value::Object(error)) = status.get_mut(key) {
            error.remove("time");
        }
    }
}

/// Runs [`run_tests`] on a thread with a large stack (the tables are big, and debug builds
/// give every temporary its own stack slot), building the table there too.
pub fn run_table(factory: HandlerFactory, cases: fn() -> Vec<TestCase>) {
    let thread = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(run_tests(factory, cases()));
        })
        .expect("test thread");
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Upstream's `runTests`: runs every case and panics with all failures at the end.
pub async fn run_tests(factory: HandlerFactory, tests: Vec<TestCase>) {
    let mut failures = Vec::new();
    for test in tests {
        let name = test.name;
        if let Err(errors) = run_test(factory, test).await {
            failures.push(format!("Test {name:?}:\n  {}", errors.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

async fn run_test(factory: HandlerFactory, test: TestCase) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let kube = FakeKube::new();
    let mut objects = test.initial_objects.clone();
    objects.extend(test.added_va.clone().map(Obj::Va));
    objects.extend(test.updated_va.clone().map(Obj::Va));
    objects.extend(test.updated_pv.clone().map(Obj::Pv));
    for object in objects {
        match object {
            Obj::Pv(pv) => kube.add_persistent_volume(pv),
            Obj::Va(va) => kube.add_volume_attachment(va),
            Obj::CsiNode(node) => kube.add_csi_node(node),
            Obj::Secret(secret) => kube.add_secret(secret),
        }
    }
    for reaction in &test.reactors {
        kube.prepend_reactor(reaction.verb, reaction.resource, (reaction.reactor)());
    }

    let published: Published = Arc::new(Mutex::new(test.lister_response.clone()));
    let attacher = FakeAttacher {
        state: Arc::new(Mutex::new(AttacherState {
            calls: test.expected_csi_calls.clone(),
            ..Default::default()
        })),
        published: published.clone(),
    };
    let lister = FakeVolumeLister { published };
    let handler = factory(
        Arc::new(kube.clone()),
        Arc::new(kube.clone()),
        Arc::new(attacher.clone()),
        Arc::new(lister),
    );
    let ctrl = AttachController::new(TEST_ATTACHER_NAME, handler, Arc::new(kube.clone()));

    let (mut va_queue, mut pv_queue) = (TestQueue::default(), TestQueue::default());
    // Start the test by enqueueing the right event.
    if let Some(va) = &test.added_va {
        va_queue.add(ctrl.va_added(va));
    }
    if let Some(va) = &test.updated_va
        && let Some(key) = ctrl.va_updated(va, va)
    {
        va_queue.add(key);
    }
    if let Some(va) = &test.deleted_va
        && let Some(key) = ctrl.va_deleted(va)
    {
        pv_queue.add(key);
    }
    if let Some(pv) = &test.updated_pv
        && let Some(key) = ctrl.pv_updated(pv, pv)
    {
        pv_queue.add(key);
    }

    // Process the queues until the expected calls happened.
    let mut rounds = 0;
    loop {
        rounds += 1;
        if rounds > 1000 {
            errors.push("timed out".to_string());
            break;
        }
        if let Some(key) = va_queue.ready.pop_front() {
            let outcome = ctrl.sync_va(&key).await;
            va_queue.apply(key, outcome);
        }
        if let Some(key) = pv_queue.ready.pop_front() {
            let outcome = ctrl.sync_pv(&key).await;
            pv_queue.apply(key, outcome);
        }
        if !va_queue.ready.is_empty() || !pv_queue.ready.is_empty() {
            continue;
        }
        if test.lister_response.is_some() {
            match ctrl.reconcile_va().await {
                Ok(keys) => keys.into_iter().for_each(|key| va_queue.add(key)),
                Err(err) => errors.push(format!(
                    "Failed to reconcile Volume Attachment objects: {err}"
                )),
            }
        }
        if !va_queue.ready.is_empty() || !pv_queue.ready.is_empty() {
            continue;
        }
        if kube.action_count() < test.expected_actions.len() {
            // The test expects more: let the backoffs expire.
            let released = va_queue.release() | pv_queue.release();
            if released {
                continue;
            }
        }
        break;
    }

    let actions = kube.actions();
    for (i, mut action) in actions.into_iter().enumerate() {
        let Some(expected) = test.expected_actions.get(i) else {
            errors.push(format!("unexpected action {i}: {action:?}"));
            continue;
        };
        sanitize(&mut action);
        if *expected != action {
            errors.push(format!(
                "action {i}\n    expected: {expected:?}\n    got:      {action:?}"
            ));
        }
    }
    let count = kube.action_count();
    for expected in test.expected_actions.iter().skip(count) {
        errors.push(format!("additional expected action: {expected:?}"));
    }
    if let Some(check) = test.additional_check
        && let Err(err) = check(&kube)
    {
        errors.push(err);
    }
    let state = attacher
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    errors.extend(state.failures.iter().cloned());
    for call in state.calls.iter().skip(state.index) {
        errors.push(format!("additional expected CSI call: {call:?}"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

// Helpers to create objects (upstream's, same names in snake case).

pub fn create_volume_attachment(
    attacher: &str,
    pv_name: &str,
    node_name: &str,
    attached: bool,
    finalizers: &str,
    annotations: Option<BTreeMap<String, String>>,
) -> VolumeAttachment {
    VolumeAttachment {
        metadata: ObjectMeta {
            name: Some(format!("{pv_name}-{node_name}")),
            annotations,
            finalizers: (!finalizers.is_empty())
                .then(|| finalizers.split(',').map(str::to_string).collect()),
            ..Default::default()
        },
        spec: VolumeAttachmentSpec {
            attacher: attacher.to_string(),
            node_name: node_name.to_string(),
            source: VolumeAttachmentSource {
                persistent_volume_name: Some(pv_name.to_string()),
                inline_volume_spec: None,
            },
        },
        status: Some(VolumeAttachmentStatus {
            attached,
            ..Default::default()
        }),
    }
}

/// `va(attached, finalizers, annotations)`; finalizers comma-separated, `""` for none.
pub fn va(
    attached: bool,
    finalizers: &str,
    annotations: Option<BTreeMap<String, String>>,
) -> VolumeAttachment {
    create_volume_attachment(
        TEST_ATTACHER_NAME,
        TEST_PV_NAME,
        TEST_NODE_NAME,
        attached,
        finalizers,
        annotations,
    )
}

/// upstream's `ann`: the node ID annotation with `nodeID1`.
pub fn ann() -> Option<BTreeMap<String, String>> {
    annotations(&[(VA_NODE_ID_ANNOTATION, TEST_NODE_ID)])
}

pub fn annotations(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// A deletion timestamp (upstream: the zero `metav1.Time{}`).
pub fn zero_time() -> Time {
    Time(Timestamp::UNIX_EPOCH)
}

pub fn deleted(mut va: VolumeAttachment) -> VolumeAttachment {
    va.metadata.deletion_timestamp = Some(zero_time());
    va
}

pub fn va_add_inline_spec(mut va: VolumeAttachment) -> VolumeAttachment {
    va.spec.source.inline_volume_spec = Some(PersistentVolumeSpec {
        access_modes: Some(vec!["ReadWriteOnce".to_string()]),
        csi: Some(CSIPersistentVolumeSource {
            driver: "com.test.foo".to_string(),
            volume_handle: TEST_VOLUME_HANDLE.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    });
    va
}

pub fn va_with_inline_spec(mut va: VolumeAttachment) -> VolumeAttachment {
    va.spec.source.persistent_volume_name = None;
    va_add_inline_spec(va)
}

pub fn va_with_metadata(mut va: VolumeAttachment, metadata: &[(&str, &str)]) -> VolumeAttachment {
    va.status
        .get_or_insert_with(Default::default)
        .attachment_metadata = Some(
        metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    va
}

pub fn va_with_no_pv_reference_nor_inline_volume_spec(
    mut va: VolumeAttachment,
) -> VolumeAttachment {
    va.spec.source.persistent_volume_name = None;
    va.spec.source.inline_volume_spec = None;
    va
}

pub fn va_with_invalid_driver(_: VolumeAttachment) -> VolumeAttachment {
    create_volume_attachment(
        "unknownDriver",
        TEST_PV_NAME,
        TEST_NODE_NAME,
        false,
        "",
        None,
    )
}

pub fn va_with_attach_error(mut va: VolumeAttachment, message: &str) -> VolumeAttachment {
    va.status.get_or_insert_with(Default::default).attach_error = Some(VolumeError {
        message: Some(message.to_string()),
        ..Default::default()
    });
    va
}

pub fn va_with_detach_error(mut va: VolumeAttachment, message: &str) -> VolumeAttachment {
    va.status.get_or_insert_with(Default::default).detach_error = Some(VolumeError {
        message: Some(message.to_string()),
        ..Default::default()
    });
    va
}

// Expected actions.

/// upstream's `patch(original, new)`.
pub fn patch(original: &VolumeAttachment, new: &VolumeAttachment) -> Value {
    volume_attachment_merge_patch(original, new).expect("serializable")
}

/// `core.NewPatchAction(vaGroupResourceVersion, ..., types.MergePatchType, patch(a, b))`.
pub fn va_patch_action(original: VolumeAttachment, new: VolumeAttachment) -> Action {
    Action::patch(
        resource::VOLUME_ATTACHMENTS,
        VA_NAME,
        PatchType::Merge,
        patch(&original, &new),
    )
}

/// `core.NewPatchSubresourceAction(..., patch(a, b), "status")`.
pub fn va_status_patch_action(original: VolumeAttachment, new: VolumeAttachment) -> Action {
    Action::patch_subresource(
        resource::VOLUME_ATTACHMENTS,
        VA_NAME,
        PatchType::Merge,
        patch(&original, &new),
        "status",
    )
}

/// `core.NewPatchAction(pvGroupResourceVersion, ..., types.JSONPatchType, pvAddFinalizerJSON(pv))`.
pub fn pv_add_finalizer_action(pv: PersistentVolume) -> Action {
    Action::patch(
        resource::PERSISTENT_VOLUMES,
        TEST_PV_NAME,
        PatchType::Json,
        add_finalizer_patch(pv.metadata.finalizers.as_deref(), FIN),
    )
}

/// `core.NewPatchAction(pvGroupResourceVersion, ..., types.JSONPatchType, pvRemoveFinalizerJSON(pv))`.
pub fn pv_remove_finalizer_action(pv: PersistentVolume) -> Action {
    Action::patch(
        resource::PERSISTENT_VOLUMES,
        TEST_PV_NAME,
        PatchType::Json,
        remove_finalizer_patch(pv.metadata.finalizers.as_deref(), FIN).expect("finalizer present"),
    )
}

/// `core.NewGetAction(secretGroupResourceVersion, namespace, name)`.
pub fn secret_get_action(namespace: &str, name: &str) -> Action {
    Action::get(resource::SECRETS, namespace, name)
}
