//! upstream's `fakeSnapshotter` and its expected calls, and the reconciler of
//! `newTestController`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csi_test_support::FakeRecorder;
use futures::future::BoxFuture;

use crate::controller::{Handler, Reconciler, ReconcilerParts};
use crate::group_snapshotter::GroupSnapshotter;
use crate::snapshotter::{CreatedSnapshot, CsiError, SnapshotStatus, Snapshotter};

use super::*;

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
                    creation_time: Some(crate::controller::now_nanos()),
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
