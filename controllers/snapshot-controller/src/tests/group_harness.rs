//! The group tables' harness: the group listers upstream's tests fill, the cases, the
//! controller under test and the runner that compares group snapshots, group contents,
//! snapshots and contents as upstream's `evaluateTestResults` does.

use std::collections::BTreeMap;
use std::sync::Arc;

use csi_crd_types::group_snapshot::v1::{
    VolumeGroupSnapshot, VolumeGroupSnapshotClass, VolumeGroupSnapshotContent,
};
use csi_crd_types::snapshot::v1::{VolumeSnapshot, VolumeSnapshotContent};
use csi_snapshot_utils as utils;
use csi_test_support::FakeRecorder;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use serde_json::Value;

use super::super::{
    Case, Reactor, check_events, compare, harness, normalize_content, normalize_snapshot,
};
use crate::group::api::GroupListers;
use crate::group::{GroupController, GroupParts};
/// The group listers upstream's tests fill: group classes (group snapshots, group contents
/// and the snapshot index stay empty), and the PV index its helper tests add to.
#[derive(Default)]
pub struct FakeGroupListers {
    pub classes: Vec<VolumeGroupSnapshotClass>,
    pub volumes: Vec<PersistentVolume>,
}

impl GroupListers for FakeGroupListers {
    fn group_snapshot(&self, _: &str, _: &str) -> Option<Arc<VolumeGroupSnapshot>> {
        None
    }
    fn group_content(&self, _: &str) -> Option<Arc<VolumeGroupSnapshotContent>> {
        None
    }
    fn group_class(&self, name: &str) -> Option<Arc<VolumeGroupSnapshotClass>> {
        self.classes
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .cloned()
            .map(Arc::new)
    }
    fn group_classes(&self) -> Vec<Arc<VolumeGroupSnapshotClass>> {
        self.classes.iter().cloned().map(Arc::new).collect()
    }
    fn group_members(&self, _: &str, _: &str) -> Vec<Arc<VolumeSnapshot>> {
        Vec::new()
    }
    fn volumes_by_handle(&self, driver: &str, handle: &str) -> Vec<Arc<PersistentVolume>> {
        self.volumes
            .iter()
            .filter(|pv| {
                utils::persistent_volume_key(Some(pv))
                    == utils::persistent_volume_key_by_csi_driver_handle(driver, handle)
            })
            .cloned()
            .map(Arc::new)
            .collect()
    }
}

/// Which group function a case calls (upstream's group `test*` functions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupTestFn {
    #[default]
    SyncGroupSnapshot,
    SyncGroupSnapshotContent,
    SetDefaultGroupSnapshotClass,
    SetDefaultGroupSnapshotClassMultipleDefaults,
    /// `isGroupSnapshotContentReadyForSnapshotCreation` gives this.
    ContentReadyForSnapshotCreation(bool),
    /// `syncGroupSnapshot`, then every created member checked and removed.
    SyncGroupSnapshotCreatesMembers,
}

/// upstream's `controllerTest`, group fields.
#[derive(Default)]
pub struct GroupCase {
    pub name: &'static str,
    pub initial_group_snapshots: Vec<VolumeGroupSnapshot>,
    pub expected_group_snapshots: Vec<VolumeGroupSnapshot>,
    pub initial_group_contents: Vec<VolumeGroupSnapshotContent>,
    pub expected_group_contents: Vec<VolumeGroupSnapshotContent>,
    pub initial_claims: Vec<PersistentVolumeClaim>,
    pub initial_volumes: Vec<PersistentVolume>,
    pub expected_events: Vec<&'static str>,
    pub expect_success: bool,
    pub test: GroupTestFn,
}

pub struct GroupHarness {
    pub group: GroupController,
    pub reactor: Arc<Reactor>,
    pub events: Arc<FakeRecorder>,
}

/// A group controller on upstream's test controller: the reactor filled with the case's
/// objects, its own stores with the initial group snapshots and contents, `classes` in the
/// group class lister, `volumes` in the PV index.
pub fn group_harness(
    case: &GroupCase,
    classes: &[VolumeGroupSnapshotClass],
    volumes: &[PersistentVolume],
) -> GroupHarness {
    let base = Case {
        initial_claims: case.initial_claims.clone(),
        initial_volumes: case.initial_volumes.clone(),
        ..Default::default()
    };
    let h = harness(&base, &[]);
    h.reactor.with_group_state(|state| {
        for g in &case.initial_group_snapshots {
            state
                .group_snapshots
                .insert(g.metadata.name.clone().unwrap_or_default(), g.clone());
        }
        for c in &case.initial_group_contents {
            state
                .group_contents
                .insert(c.metadata.name.clone().unwrap_or_default(), c.clone());
        }
    });
    let queue = || {
        csi_workqueue::WorkQueue::<String>::new(
            csi_workqueue::ItemExponentialFailureRateLimiter::new(
                std::time::Duration::from_millis(1),
                std::time::Duration::from_secs(1),
            ),
        )
    };
    let group = GroupController::new(
        Arc::new(h.ctrl),
        GroupParts {
            api: h.reactor.clone(),
            listers: Arc::new(FakeGroupListers {
                classes: classes.to_vec(),
                volumes: volumes.to_vec(),
            }),
            group_snapshot_queue: queue(),
            group_content_queue: queue(),
        },
    );
    for g in &case.initial_group_snapshots {
        group
            .store_group_snapshot_update(Arc::new(g.clone()))
            .unwrap();
    }
    for c in &case.initial_group_contents {
        group
            .store_group_content_update(Arc::new(c.clone()))
            .unwrap();
    }
    GroupHarness {
        group,
        reactor: h.reactor,
        events: h.events,
    }
}

async fn call(h: &GroupHarness, case: &GroupCase) -> Result<(), String> {
    let g = &h.group;
    let group = || case.initial_group_snapshots[0].clone();
    let e = |r: crate::controller::Result<()>| r.map_err(|e| e.to_string());
    match case.test {
        GroupTestFn::SyncGroupSnapshot => e(g.sync_group_snapshot(&group()).await),
        GroupTestFn::SyncGroupSnapshotContent => {
            e(g.sync_group_content(&case.initial_group_contents[0]).await)
        }
        GroupTestFn::SetDefaultGroupSnapshotClass => {
            let initial = group();
            let (class, _) = g
                .set_default_group_snapshot_class(Arc::new(initial.clone()))
                .await
                .map_err(|e| e.to_string())?;
            if initial
                .spec
                .source
                .volume_group_snapshot_content_name
                .is_some()
            {
                return match class {
                    None => Ok(()),
                    Some(c) => Err(format!(
                        "expected nil class for pre-provisioned snapshot, got: {:?}",
                        c.metadata.name
                    )),
                };
            }
            match class {
                None => Err("expected a default class for dynamic snapshot, got nil".into()),
                Some(c) if c.metadata.name.as_deref() != Some("default-class") => Err(format!(
                    "expected default class default-class, got {:?}",
                    c.metadata.name
                )),
                Some(_) => Ok(()),
            }
        }
        GroupTestFn::SetDefaultGroupSnapshotClassMultipleDefaults => {
            match g.set_default_group_snapshot_class(Arc::new(group())).await {
                Ok(_) => {
                    Err("expected error when multiple default classes exist, but got nil".into())
                }
                Err(err) if !err.message.contains("default snapshot classes were found") => {
                    Err(format!(
                        "expected error message to contain 'default snapshot classes were found', got: {err}"
                    ))
                }
                Err(_) => Ok(()),
            }
        }
        GroupTestFn::ContentReadyForSnapshotCreation(expected) => {
            let ready = crate::group::members::is_group_content_ready_for_snapshot_creation(
                &case.initial_group_contents[0],
            );
            if ready == expected {
                Ok(())
            } else {
                Err(format!(
                    "expected isGroupSnapshotContentReadyForSnapshotCreation to return {expected}, got {ready}"
                ))
            }
        }
        GroupTestFn::SyncGroupSnapshotCreatesMembers => {
            e(g.sync_group_snapshot(&group()).await)?;
            check_members_bound(&h.reactor, 2)?;
            // The members' names are hashes: the tables leave them out, so they go here.
            h.reactor.clear_snapshots_and_contents();
            Ok(())
        }
    }
}

/// `count` member snapshots and contents exist, each snapshot bound to a content that
/// points back at its UID and carries a snapshot handle.
pub fn check_members_bound(reactor: &Reactor, count: usize) -> Result<(), String> {
    let snapshots = reactor.snapshots();
    let contents: BTreeMap<String, VolumeSnapshotContent> = reactor
        .contents()
        .into_iter()
        .map(|c| (c.metadata.name.clone().unwrap_or_default(), c))
        .collect();
    if snapshots.len() != count {
        return Err(format!(
            "expected {count} VolumeSnapshots to be created, got {}",
            snapshots.len()
        ));
    }
    if contents.len() != count {
        return Err(format!(
            "expected {count} VolumeSnapshotContents to be created, got {}",
            contents.len()
        ));
    }
    for snap in &snapshots {
        let snap_name = snap.metadata.name.clone().unwrap_or_default();
        let Some(bound) = snap
            .status
            .as_ref()
            .and_then(|s| s.bound_volume_snapshot_content_name.clone())
        else {
            return Err(format!("VolumeSnapshot {snap_name} is not bound"));
        };
        let Some(content) = contents.get(&bound) else {
            return Err(format!(
                "VolumeSnapshot {snap_name} is bound to missing content {bound}"
            ));
        };
        if content.spec.volume_snapshot_ref.uid != snap.metadata.uid {
            return Err(format!(
                "VolumeSnapshotContent {bound} does not point to VolumeSnapshot {snap_name}"
            ));
        }
        if content
            .status
            .as_ref()
            .and_then(|s| s.snapshot_handle.as_ref())
            .is_none()
        {
            return Err(format!(
                "VolumeSnapshotContent {bound} is missing status or SnapshotHandle"
            ));
        }
    }
    Ok(())
}

fn normalize_group_snapshot(mut g: VolumeGroupSnapshot) -> (String, Value) {
    g.metadata.resource_version = None;
    if let Some(error) = g.status.as_mut().and_then(|s| s.error.as_mut()) {
        error.time = None;
    }
    let key = g.metadata.name.clone().unwrap_or_default();
    (key, serde_json::to_value(&g).unwrap())
}

fn normalize_group_content(mut c: VolumeGroupSnapshotContent) -> (String, Value) {
    c.metadata.resource_version = None;
    c.spec.source.volume_handles.sort();
    if let Some(status) = c.status.as_mut() {
        status.creation_time = None;
    }
    let key = c.metadata.name.clone().unwrap_or_default();
    (key, serde_json::to_value(&c).unwrap())
}

/// The final objects of a case against its expectations (upstream's
/// `evaluateTestResults`): group snapshots, group contents, and no snapshots or contents
/// besides those.
pub fn check_objects(
    reactor: &Reactor,
    expected_group_snapshots: &[VolumeGroupSnapshot],
    expected_group_contents: &[VolumeGroupSnapshotContent],
) -> Vec<String> {
    let mut problems = Vec::new();
    let checks = [
        compare(
            "group snapshot",
            expected_group_snapshots.to_vec(),
            reactor.group_snapshots(),
            normalize_group_snapshot,
        ),
        compare(
            "group content",
            expected_group_contents.to_vec(),
            reactor.group_contents(),
            normalize_group_content,
        ),
        compare(
            "snapshot",
            Vec::new(),
            reactor.snapshots(),
            normalize_snapshot,
        ),
        compare("content", Vec::new(), reactor.contents(), normalize_content),
    ];
    for check in checks {
        if let Err(err) = check {
            problems.push(err);
        }
    }
    problems
}

/// upstream's `runSyncTests` for group cases: every failing case is reported, then the test
/// fails.
pub async fn run_group_sync_tests(cases: Vec<GroupCase>, classes: &[VolumeGroupSnapshotClass]) {
    let mut failures = Vec::new();
    for case in &cases {
        let h = group_harness(case, classes, &[]);
        let result = call(&h, case).await;
        let mut problems = Vec::new();
        if let Err(err) = &result
            && case.expect_success
        {
            problems.push(format!("failed: {err}"));
        }
        problems.extend(check_objects(
            &h.reactor,
            &case.expected_group_snapshots,
            &case.expected_group_contents,
        ));
        if let Err(err) = check_events(&case.expected_events, &h.events.lines()) {
            problems.push(err);
        }
        if !problems.is_empty() {
            failures.push(format!(
                "Test {:?}:\n  {}",
                case.name,
                problems.join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
