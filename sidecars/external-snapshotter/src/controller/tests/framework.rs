//! Upstream's `framework_test.go`: the fake API server and caches (over csi-test-support's
//! `FakeApi`), the scripted snapshotter with expected calls, the object builders with
//! upstream's argument order, and `runSyncContentTests`.

use std::sync::{Arc, Mutex};

use csi_controller::{ApiError, SecretGetter};

mod csi;
mod objects;

pub use csi::*;
pub use objects::*;

use csi_crd_types::snapshot::v1::{DELETION_POLICY_DELETE, DELETION_POLICY_RETAIN};
use csi_crd_types::{
    VolumeGroupSnapshotClass, VolumeGroupSnapshotContent, VolumeSnapshotClass,
    VolumeSnapshotContent,
};
use csi_test_support::FakeRecorder;
use csi_test_support::fake_api::{FakeApi, PatchType, Verb};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use crate::controller::{Listers, SnapshotApi, SyncError};

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
