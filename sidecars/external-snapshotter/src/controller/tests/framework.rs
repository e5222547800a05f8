//! Upstream's `framework_test.go`: the fake API server and caches (over csi-test-support's
//! `FakeApi`), the scripted snapshotter with expected calls, the object builders with
//! upstream's argument order, and `runSyncContentTests`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csi_controller::{ApiError, SecretGetter};
use csi_crd_types::snapshot::v1::{
    DELETION_POLICY_DELETE, DELETION_POLICY_RETAIN, VolumeSnapshotContentSource,
    VolumeSnapshotContentSpec, VolumeSnapshotContentStatus, VolumeSnapshotError,
};
use csi_crd_types::{
    VolumeGroupSnapshotClass, VolumeGroupSnapshotContent, VolumeSnapshotClass,
    VolumeSnapshotContent,
};
use csi_test_support::FakeRecorder;
use csi_test_support::fake_api::{FakeApi, PatchType, Verb};
use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{Value, json};

use crate::controller::{Handler, Listers, Reconciler, ReconcilerParts, SnapshotApi, SyncError};
use crate::group_snapshotter::GroupSnapshotter;
use crate::snapshotter::{CreatedSnapshot, CsiError, SnapshotStatus, Snapshotter};
use csi_snapshot_utils::{
    ANN_DELETION_SECRET_REF_NAME, ANN_DELETION_SECRET_REF_NAMESPACE,
    ANN_VOLUME_SNAPSHOT_BEING_DELETED, VOLUME_SNAPSHOT_CONTENT_FINALIZER,
};

/// upstream's `mockDriverName`.
pub const DRIVER: &str = "csi-mock-plugin";
/// upstream's `testNamespace`.
pub const NS: &str = "default";
/// upstream's `defaultSize`.
pub const DEFAULT_SIZE: i64 = 1000;
pub const DELETE: &str = DELETION_POLICY_DELETE;
pub const RETAIN: &str = DELETION_POLICY_RETAIN;

pub const CLASS_GOLD: &str = "gold";
pub const CLASS_SILVER: &str = "silver";
pub const DEFAULT_CLASS: &str = "default-class";
pub const EMPTY_SECRET_CLASS: &str = "empty-secret-class";
pub const INVALID_SECRET_CLASS: &str = "invalid-secret-class";
pub const VALID_SECRET_CLASS: &str = "valid-secret-class";

/// upstream's `nonFractionalTime` (also used for its `timeNowMetav1`: the API server keeps
/// seconds only).
pub fn now() -> Option<Time> {
    let seconds = k8s_openapi::jiff::Timestamp::now().as_second();
    Some(Time(
        k8s_openapi::jiff::Timestamp::from_second(seconds).expect("now is a valid time"),
    ))
}

// ---------------------------------------------------------------------------------------------
// The API server and the caches

/// The fake cluster: `FakeApi`'s server behind [`SnapshotApi`], its cache behind [`Listers`].
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub api: FakeApi,
}

impl SecretGetter for Cluster {
    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>> {
        Box::pin(async move { self.api.get::<Secret>(namespace, name) })
    }
}

/// client-go's `UpdateStatus` on the fake: refused with a Conflict unless `resourceVersion`
/// is the stored one, then the status replaced.
fn update_status<K>(api: &FakeApi, object: &K) -> Result<K, ApiError>
where
    K: csi_test_support::fake_api::Object + Clone,
{
    let name = object.metadata().name.clone().unwrap_or_default();
    let stored: Option<K> = api.server_object("", &name);
    if let Some(stored) = stored
        && stored.metadata().resource_version != object.metadata().resource_version
    {
        return Err(ApiError::conflict(
            &csi_test_support::fake_api::qualified_resource::<K>(),
            &name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let status = serde_json::to_value(object)
        .ok()
        .and_then(|v| v.get("status").cloned())
        .unwrap_or(Value::Null);
    api.patch(
        "",
        &name,
        "status",
        PatchType::Json,
        &json!([{"op": "replace", "path": "/status", "value": status}]),
    )
}

impl SnapshotApi for Cluster {
    fn get_content<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move { self.api.get("", name) })
    }

    fn patch_content<'a>(
        &'a self,
        name: &'a str,
        json_patch: &'a Value,
        status: bool,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        let subresource = if status { "status" } else { "" };
        Box::pin(async move {
            self.api
                .patch("", name, subresource, PatchType::Json, json_patch)
        })
    }

    fn update_content_status<'a>(
        &'a self,
        content: &'a VolumeSnapshotContent,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move { update_status(&self.api, content) })
    }

    fn get_group_content<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>> {
        Box::pin(async move { self.api.get("", name) })
    }

    fn patch_group_content<'a>(
        &'a self,
        name: &'a str,
        json_patch: &'a Value,
        status: bool,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>> {
        let subresource = if status { "status" } else { "" };
        Box::pin(async move {
            self.api
                .patch("", name, subresource, PatchType::Json, json_patch)
        })
    }

    fn update_group_content_status<'a>(
        &'a self,
        content: &'a VolumeGroupSnapshotContent,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>> {
        Box::pin(async move { update_status(&self.api, content) })
    }
}

impl Listers for Cluster {
    fn content(&self, name: &str) -> Option<Arc<VolumeSnapshotContent>> {
        self.api.cached("", name).map(Arc::new)
    }

    fn class(&self, name: &str) -> Option<Arc<VolumeSnapshotClass>> {
        self.api.cached("", name).map(Arc::new)
    }

    fn group_content(&self, name: &str) -> Option<Arc<VolumeGroupSnapshotContent>> {
        self.api.cached("", name).map(Arc::new)
    }

    fn group_class(&self, name: &str) -> Option<Arc<VolumeGroupSnapshotClass>> {
        self.api.cached("", name).map(Arc::new)
    }
}

/// Makes the next `verb` on `resource` fail with `message` (once; upstream's `reactorError`).
pub fn fail_once(api: &FakeApi, verb: Verb, resource: &str, message: &'static str) {
    let mut used = false;
    api.prepend_reactor(verb, resource, move |_| {
        if used {
            None
        } else {
            used = true;
            Some(ApiError::other(message))
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The CSI side

/// upstream's `createCall`.
#[derive(Debug, Clone, Default)]
pub struct CreateCall {
    pub snapshot_name: &'static str,
    pub volume_handle: &'static str,
    pub parameters: HashMap<String, String>,
    pub secrets: HashMap<String, String>,
    pub driver_name: &'static str,
    pub snapshot_id: &'static str,
    /// `Some(now)` as upstream's `timeNow`; `None` is Go's zero time.
    pub creation_time: Option<i64>,
    pub size: i64,
    pub ready_to_use: bool,
    pub err: Option<CsiError>,
}

/// upstream's `deleteCall`.
#[derive(Debug, Clone, Default)]
pub struct DeleteCall {
    pub snapshot_id: &'static str,
    pub secrets: HashMap<String, String>,
    pub err: Option<CsiError>,
}

/// upstream's `listCall`.
#[derive(Debug, Clone, Default)]
pub struct ListCall {
    pub snapshot_id: &'static str,
    pub secrets: HashMap<String, String>,
    pub ready_to_use: bool,
    pub size: i64,
    pub err: Option<CsiError>,
    pub group_snapshot_id: &'static str,
}

/// `listCall{id, secrets, readyToUse, time.Now(), size, nil, ""}`.
pub fn list_call(snapshot_id: &'static str, ready_to_use: bool, size: i64) -> ListCall {
    ListCall {
        snapshot_id,
        ready_to_use,
        size,
        ..Default::default()
    }
}

/// `deleteCall{id, secrets, err}`.
pub fn delete_call(snapshot_id: &'static str, err: Option<&str>) -> DeleteCall {
    DeleteCall {
        snapshot_id,
        err: err.map(|e| CsiError::Other(e.to_string())),
        ..Default::default()
    }
}

/// upstream's `fakeSnapshotter`: each call must be the next expected one; a wrong call is a
/// test failure (kept in `failures`) and an "unexpected call" error.
#[derive(Debug, Default)]
pub struct FakeSnapshotter {
    pub create_calls: Mutex<Vec<CreateCall>>,
    pub delete_calls: Mutex<Vec<DeleteCall>>,
    pub list_calls: Mutex<Vec<ListCall>>,
    pub failures: Mutex<Vec<String>>,
}

fn next<T: Clone>(calls: &Mutex<Vec<T>>) -> Option<T> {
    let mut calls = calls.lock().unwrap();
    (!calls.is_empty()).then(|| calls.remove(0))
}

fn unexpected() -> CsiError {
    CsiError::Other("unexpected call".to_string())
}

impl FakeSnapshotter {
    fn fail(&self, message: String) {
        self.failures.lock().unwrap().push(message);
    }
}

impl Snapshotter for FakeSnapshotter {
    fn create_snapshot<'a>(
        &'a self,
        name: &'a str,
        volume_handle: &'a str,
        parameters: HashMap<String, String>,
        secrets: HashMap<String, String>,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<CreatedSnapshot, CsiError>> {
        Box::pin(async move {
            let Some(call) = next(&self.create_calls) else {
                self.fail(format!(
                    "Unexpected CSI Create Snapshot call: snapshotName={name}, volumeHandle={volume_handle}"
                ));
                return Err(unexpected());
            };
            let mut wrong = false;
            if call.snapshot_name != name {
                self.fail(format!(
                    "Wrong CSI Create Snapshot call: snapshotName={name}, expected {}",
                    call.snapshot_name
                ));
                wrong = true;
            }
            if call.volume_handle != volume_handle {
                self.fail(format!(
                    "Wrong CSI Create Snapshot call: volumeHandle={volume_handle}, expected {}",
                    call.volume_handle
                ));
                wrong = true;
            }
            if call.parameters != parameters {
                self.fail(format!(
                    "Wrong CSI Create Snapshot call: parameters {parameters:?}, expected {:?}",
                    call.parameters
                ));
                wrong = true;
            }
            if call.secrets != secrets {
                self.fail(format!(
                    "Wrong CSI Create Snapshot call: secrets {secrets:?}, expected {:?}",
                    call.secrets
                ));
                wrong = true;
            }
            if wrong {
                return Err(unexpected());
            }
            match call.err {
                Some(err) => Err(err),
                None => Ok(CreatedSnapshot {
                    driver_name: call.driver_name.to_string(),
                    snapshot_id: call.snapshot_id.to_string(),
                    creation_time: call.creation_time,
                    size: call.size,
                    ready_to_use: call.ready_to_use,
                }),
            }
        })
    }

    fn delete_snapshot<'a>(
        &'a self,
        snapshot_id: &'a str,
        secrets: HashMap<String, String>,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<(), CsiError>> {
        Box::pin(async move {
            let Some(call) = next(&self.delete_calls) else {
                self.fail(format!(
                    "Unexpected CSI Delete Snapshot call: snapshotID={snapshot_id}"
                ));
                return Err(CsiError::Other("unexpected DeleteSnapshot call".into()));
            };
            let mut wrong = false;
            if call.snapshot_id != snapshot_id {
                self.fail(format!(
                    "Wrong CSI Delete Snapshot call: snapshotID={snapshot_id}, expected {}",
                    call.snapshot_id
                ));
                wrong = true;
            }
            if call.secrets != secrets {
                self.fail(format!(
                    "Wrong CSI Delete Snapshot call: secrets {secrets:?}, expected {:?}",
                    call.secrets
                ));
                wrong = true;
            }
            if wrong {
                return Err(unexpected());
            }
            call.err.map_or(Ok(()), Err)
        })
    }

    fn get_snapshot_status<'a>(
        &'a self,
        snapshot_id: &'a str,
        secrets: HashMap<String, String>,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<SnapshotStatus, CsiError>> {
        Box::pin(async move {
            let Some(call) = next(&self.list_calls) else {
                self.fail(format!(
                    "Unexpected CSI list Snapshot call: snapshotID={snapshot_id}"
                ));
                return Err(unexpected());
            };
            let mut wrong = false;
            if call.snapshot_id != snapshot_id {
                self.fail(format!(
                    "Wrong CSI List Snapshot call: snapshotID={snapshot_id}, expected {}",
                    call.snapshot_id
                ));
                wrong = true;
            }
            if call.secrets != secrets {
                self.fail(format!(
                    "Wrong CSI List Snapshot call: secrets {secrets:?}, expected {:?}",
                    call.secrets
                ));
                wrong = true;
            }
            if wrong {
                return Err(unexpected());
            }
            match call.err {
                Some(err) => Err(err),
                None => Ok(SnapshotStatus {
                    ready_to_use: call.ready_to_use,
                    creation_time: Some(super::super::now_nanos()),
                    size: call.size,
                    group_snapshot_id: call.group_snapshot_id.to_string(),
                }),
            }
        })
    }
}

/// A reconciler over `cluster` with upstream's `newTestController` settings: timeout 5ms,
/// prefixes `snapshot` / `groupsnapshot`, whole UIDs, extra create metadata on.
pub fn reconciler(
    cluster: &Cluster,
    snapshotter: Arc<dyn Snapshotter>,
    group_snapshotter: Option<Arc<dyn GroupSnapshotter>>,
    events: Arc<FakeRecorder>,
) -> Reconciler {
    Reconciler::new(ReconcilerParts {
        driver_name: DRIVER.to_string(),
        handler: Handler {
            snapshotter,
            group_snapshotter,
            timeout: Duration::from_millis(5),
            snapshot_name_prefix: "snapshot".into(),
            snapshot_name_uuid_length: -1,
            group_snapshot_name_prefix: "groupsnapshot".into(),
            group_snapshot_name_uuid_length: -1,
        },
        api: Arc::new(cluster.clone()),
        listers: Arc::new(cluster.clone()),
        events,
        extra_create_metadata: true,
    })
}

// ---------------------------------------------------------------------------------------------
// Objects

pub fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn btree(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// upstream's `newContent` (argument order kept: `creation_time` before `size`).
pub fn new_content(
    name: &str,
    bound_to_snapshot_uid: &str,
    bound_to_snapshot_name: &str,
    snapshot_handle: &str,
    snapshot_class_name: &str,
    desired_snapshot_handle: &str,
    volume_handle: &str,
    deletion_policy: &str,
    creation_time: Option<i64>,
    size: Option<i64>,
    with_finalizer: bool,
    deletion_time: Option<Time>,
) -> VolumeSnapshotContent {
    let mut content = VolumeSnapshotContent {
        metadata: ObjectMeta {
            name: Some(name.into()),
            resource_version: Some("1".into()),
            deletion_timestamp: deletion_time.clone(),
            ..Default::default()
        },
        spec: VolumeSnapshotContentSpec {
            driver: DRIVER.into(),
            deletion_policy: deletion_policy.into(),
            ..Default::default()
        },
        status: Some(VolumeSnapshotContentStatus {
            creation_time,
            restore_size: size,
            ..Default::default()
        }),
    };
    if deletion_time.is_some() {
        content.metadata.annotations = Some(btree(&[(ANN_VOLUME_SNAPSHOT_BEING_DELETED, "yes")]));
    }
    if !snapshot_handle.is_empty() {
        content.status.as_mut().unwrap().snapshot_handle = Some(snapshot_handle.into());
    }
    if !snapshot_class_name.is_empty() {
        content.spec.volume_snapshot_class_name = Some(snapshot_class_name.into());
    }
    if !volume_handle.is_empty() {
        content.spec.source = VolumeSnapshotContentSource {
            volume_handle: Some(volume_handle.into()),
            snapshot_handle: None,
        };
    } else if !desired_snapshot_handle.is_empty() {
        content.spec.source = VolumeSnapshotContentSource {
            volume_handle: None,
            snapshot_handle: Some(desired_snapshot_handle.into()),
        };
    }
    if !bound_to_snapshot_name.is_empty() {
        content.spec.volume_snapshot_ref = ObjectReference {
            kind: Some("VolumeSnapshot".into()),
            api_version: Some("snapshot.storage.k8s.io/v1".into()),
            uid: Some(bound_to_snapshot_uid.into()),
            namespace: Some(NS.into()),
            name: Some(bound_to_snapshot_name.into()),
            ..Default::default()
        };
    }
    if with_finalizer {
        content.metadata.finalizers = Some(vec![VOLUME_SNAPSHOT_CONTENT_FINALIZER.into()]);
    }
    content
}

/// upstream's `newContentArray` (its `size` comes first and is passed on as `newContent`'s
/// size, its `creationTime` second).
pub fn content_array(
    name: &str,
    uid: &str,
    snapshot_name: &str,
    snapshot_handle: &str,
    class: &str,
    desired_handle: &str,
    volume_handle: &str,
    policy: &str,
    size: Option<i64>,
    creation_time: Option<i64>,
    with_finalizer: bool,
) -> Vec<VolumeSnapshotContent> {
    vec![new_content(
        name,
        uid,
        snapshot_name,
        snapshot_handle,
        class,
        desired_handle,
        volume_handle,
        policy,
        creation_time,
        size,
        with_finalizer,
        None,
    )]
}

/// upstream's `newContentArrayWithReadyToUse`.
pub fn content_array_with_ready_to_use(
    name: &str,
    uid: &str,
    snapshot_name: &str,
    snapshot_handle: &str,
    class: &str,
    desired_handle: &str,
    volume_handle: &str,
    policy: &str,
    creation_time: Option<i64>,
    size: Option<i64>,
    ready_to_use: Option<bool>,
    with_finalizer: bool,
) -> Vec<VolumeSnapshotContent> {
    let mut content = new_content(
        name,
        uid,
        snapshot_name,
        snapshot_handle,
        class,
        desired_handle,
        volume_handle,
        policy,
        creation_time,
        size,
        with_finalizer,
        None,
    );
    content.status.as_mut().unwrap().ready_to_use = ready_to_use;
    vec![content]
}

/// upstream's `newContentArrayWithDeletionTimestamp` (`size` first, as `newContentArray`).
pub fn content_array_with_deletion_timestamp(
    name: &str,
    uid: &str,
    snapshot_name: &str,
    snapshot_handle: &str,
    class: &str,
    desired_handle: &str,
    volume_handle: &str,
    policy: &str,
    size: Option<i64>,
    creation_time: Option<i64>,
    with_finalizer: bool,
    deletion_time: Option<Time>,
) -> Vec<VolumeSnapshotContent> {
    vec![new_content(
        name,
        uid,
        snapshot_name,
        snapshot_handle,
        class,
        desired_handle,
        volume_handle,
        policy,
        creation_time,
        size,
        with_finalizer,
        deletion_time,
    )]
}

/// upstream's `newContentWithVolumeGroupSnapshotHandle` (which passes its `creationTime`
/// on as the size of `newContentArrayWithDeletionTimestamp`).
pub fn content_with_group_handle(
    name: &str,
    uid: &str,
    snapshot_name: &str,
    snapshot_handle: &str,
    group_handle: &str,
    class: &str,
    desired_handle: &str,
    volume_handle: &str,
    policy: &str,
    creation_time: Option<i64>,
    size: Option<i64>,
    with_finalizer: bool,
    deletion_time: Option<Time>,
) -> Vec<VolumeSnapshotContent> {
    let mut contents = content_array_with_deletion_timestamp(
        name,
        uid,
        snapshot_name,
        snapshot_handle,
        class,
        desired_handle,
        volume_handle,
        policy,
        creation_time,
        size,
        with_finalizer,
        deletion_time,
    );
    for content in &mut contents {
        content
            .status
            .as_mut()
            .unwrap()
            .volume_group_snapshot_handle = Some(group_handle.into());
    }
    contents
}

/// upstream's `withContentStatus`.
pub fn with_status(
    mut contents: Vec<VolumeSnapshotContent>,
    status: Option<VolumeSnapshotContentStatus>,
) -> Vec<VolumeSnapshotContent> {
    for content in &mut contents {
        content.status = status.clone();
    }
    contents
}

/// upstream's `withContentAnnotations`.
pub fn with_annotations(
    mut contents: Vec<VolumeSnapshotContent>,
    annotations: &[(&str, &str)],
) -> Vec<VolumeSnapshotContent> {
    for content in &mut contents {
        content.metadata.annotations = Some(btree(annotations));
    }
    contents
}

/// upstream's `newSnapshotError`.
pub fn snapshot_error(message: &str) -> Option<VolumeSnapshotError> {
    Some(VolumeSnapshotError {
        time: None,
        message: Some(message.to_string()),
    })
}

/// upstream's `secret()`.
pub fn secret() -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("secret".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "foo".to_string(),
            ByteString(b"bar".to_vec()),
        )])),
        ..Default::default()
    }
}

fn class(
    name: &str,
    parameters: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> VolumeSnapshotClass {
    VolumeSnapshotClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: (!annotations.is_empty()).then(|| btree(annotations)),
            ..Default::default()
        },
        driver: DRIVER.into(),
        parameters: Some(btree(parameters)),
        deletion_policy: DELETE.into(),
    }
}

/// upstream's `snapshotClasses` (snapshot_delete_test.go).
pub fn snapshot_classes() -> Vec<VolumeSnapshotClass> {
    use csi_snapshot_utils::{
        PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY, PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY,
        PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
    };
    let class4 = [
        (ANN_DELETION_SECRET_REF_NAME, "emptysecret"),
        (ANN_DELETION_SECRET_REF_NAMESPACE, "default"),
    ];
    let class5 = [
        (ANN_DELETION_SECRET_REF_NAME, "secret"),
        (ANN_DELETION_SECRET_REF_NAMESPACE, "default"),
    ];
    let class6 = [
        (PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, "secret"),
        (PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY, "default"),
        (PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY, "secret"),
        (PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY, "default"),
    ];
    let class7_annotations = [
        (ANN_DELETION_SECRET_REF_NAME, "secret-x"),
        (ANN_DELETION_SECRET_REF_NAMESPACE, "default-x"),
    ];
    vec![
        class(CLASS_GOLD, &[("param1", "value1")], &[]),
        class(CLASS_SILVER, &[("param2", "value2")], &[]),
        class(EMPTY_SECRET_CLASS, &class4, &[]),
        class(
            INVALID_SECRET_CLASS,
            &[("param2", "value2")],
            &class7_annotations,
        ),
        class(VALID_SECRET_CLASS, &class5, &[]),
        class(
            DEFAULT_CLASS,
            &class6,
            &[("snapshot.storage.kubernetes.io/is-default-class", "true")],
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// runSyncContentTests

/// What a case runs (upstream's `testCall`).
#[derive(Clone, Copy)]
pub enum TestCall {
    /// `testSyncContent`.
    Sync,
    /// `wrapTestWithInjectedOperation(testSyncContent, ...)`: `inject` runs first.
    SyncAfter(fn(&Cluster)),
}

/// upstream's `controllerTest`.
pub struct ControllerTest {
    pub name: &'static str,
    pub initial_contents: Vec<VolumeSnapshotContent>,
    pub expected_contents: Vec<VolumeSnapshotContent>,
    pub initial_secrets: Vec<Secret>,
    pub expected_events: Vec<&'static str>,
    /// `(verb, resource, message)`: each fails the first matching call once.
    pub errors: Vec<(Verb, &'static str, &'static str)>,
    pub expected_create_calls: Vec<CreateCall>,
    pub expected_delete_calls: Vec<DeleteCall>,
    pub expected_list_calls: Vec<ListCall>,
    pub test: TestCall,
    pub expect_success: bool,
    pub expect_requeue: bool,
}

impl Default for ControllerTest {
    fn default() -> Self {
        ControllerTest {
            name: "",
            initial_contents: Vec::new(),
            expected_contents: Vec::new(),
            initial_secrets: Vec::new(),
            expected_events: Vec::new(),
            errors: Vec::new(),
            expected_create_calls: Vec::new(),
            expected_delete_calls: Vec::new(),
            expected_list_calls: Vec::new(),
            test: TestCall::Sync,
            expect_success: false,
            expect_requeue: false,
        }
    }
}

/// A content as upstream's `checkContents` compares it: no `resourceVersion`, no creation
/// time, error times zeroed.
fn comparable(content: &VolumeSnapshotContent) -> Value {
    let mut content = content.clone();
    content.metadata.resource_version = None;
    content.spec.volume_snapshot_ref.resource_version = None;
    if let Some(status) = content.status.as_mut() {
        status.creation_time = None;
        if let Some(error) = status.error.as_mut() {
            error.time = None;
        }
    }
    serde_json::to_value(content).unwrap()
}

/// upstream's `runSyncContentTests`: each case on a fresh controller; every failure is
/// collected and reported at the end with the case's name.
pub async fn run_sync_content_tests(tests: Vec<ControllerTest>, classes: &[VolumeSnapshotClass]) {
    let mut failures = Vec::new();
    for test in tests {
        let cluster = Cluster::default();
        let events = Arc::new(FakeRecorder::default());
        let snapshotter = Arc::new(FakeSnapshotter {
            create_calls: Mutex::new(test.expected_create_calls.clone()),
            delete_calls: Mutex::new(test.expected_delete_calls.clone()),
            list_calls: Mutex::new(test.expected_list_calls.clone()),
            ..Default::default()
        });
        let ctrl = reconciler(&cluster, snapshotter.clone(), None, events.clone());
        for content in &test.initial_contents {
            if ctrl.is_content_driver_match(&test.initial_contents[0]) {
                ctrl.store_content(content).unwrap();
                cluster.api.add_to_server(content);
            }
        }
        for secret in &test.initial_secrets {
            cluster.api.add_to_server(secret);
        }
        for class in classes {
            cluster.api.add_to_cache(class);
        }
        for (verb, resource, message) in &test.errors {
            fail_once(&cluster.api, *verb, resource, message);
        }

        if let TestCall::SyncAfter(inject) = test.test {
            inject(&cluster);
        }
        let result: Result<bool, SyncError> = ctrl.sync_content(&test.initial_contents[0]).await;
        let name = test.name;
        match &result {
            Err(err) if test.expect_success => failures.push(format!("{name}: failed: {err}")),
            Ok(_) if !test.expect_success => {
                failures.push(format!("{name}: expected error, got nil"))
            }
            Ok(requeue) if *requeue != test.expect_requeue => failures.push(format!(
                "{name}: expected requeue {}, got {requeue}",
                test.expect_requeue
            )),
            _ => {}
        }
        for failure in snapshotter.failures.lock().unwrap().iter() {
            failures.push(format!("{name}: {failure}"));
        }

        // checkContents: every content named by the case, as the server has it.
        let mut names: Vec<String> = test
            .initial_contents
            .iter()
            .chain(&test.expected_contents)
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        names.dedup();
        for content_name in names {
            let expected = test
                .expected_contents
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(&content_name))
                .map(comparable);
            let got = cluster
                .api
                .server_object::<VolumeSnapshotContent>("", &content_name)
                .map(|c| comparable(&c));
            if expected != got {
                failures.push(format!(
                    "{name}: content check failed for {content_name}:\n  expected {}\n  got      {}",
                    expected.map(|v| v.to_string()).unwrap_or("none".into()),
                    got.map(|v| v.to_string()).unwrap_or("none".into()),
                ));
            }
        }

        // checkEvents: as upstream's, the first Events (as many as expected), by prefix.
        let got: Vec<String> = events
            .lines()
            .into_iter()
            .take(test.expected_events.len())
            .collect();
        for (i, expected) in test.expected_events.iter().enumerate() {
            match got.get(i) {
                None => failures.push(format!("{name}: Event {expected:?} not emitted")),
                Some(line) if !line.starts_with(expected) => failures.push(format!(
                    "{name}: Unexpected event received, expected {expected:?}, got {line:?}"
                )),
                _ => {}
            }
        }
        for line in got.iter().skip(test.expected_events.len()) {
            failures.push(format!("{name}: Unexpected event received: {line:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
