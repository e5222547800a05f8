//! The group path end to end at unit level: both halves of the controller run their queues
//! on the fake API server, with listers that see what it holds (as running watches would),
//! and a sidecar played by the test. A dynamic group snapshot of two claims gets its default
//! class and its group content; once the "sidecar" writes the group content's status, the
//! member snapshots and contents appear, bound, and the group snapshot is ready; deleting it
//! deletes the members and the group content (deletion policy Delete), then lets it go.

use std::collections::BTreeMap;
use std::sync::Arc;

use csi_crd_types::group_snapshot::v1::{
    VolumeGroupSnapshot, VolumeGroupSnapshotClass, VolumeGroupSnapshotContent,
    VolumeGroupSnapshotContentStatus, VolumeSnapshotInfo,
};
use csi_crd_types::snapshot::v1::{VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent};
use csi_snapshot_utils as utils;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};

use super::framework::group::*;
use super::framework::*;
use crate::api::Listers;
use crate::controller::{Config, Parts, SnapshotController};
use crate::group::api::GroupListers;
use crate::group::members::{member_content_name, member_snapshot_name};
use crate::group::{GroupController, GroupParts};
use crate::metrics::OperationMetrics;

/// Listers over what the fake API server holds now.
struct LiveListers {
    reactor: Arc<Reactor>,
    group_classes: Vec<VolumeGroupSnapshotClass>,
}

fn named<K: Clone>(
    items: Vec<K>,
    name: &str,
    get: impl Fn(&K) -> Option<&String>,
) -> Option<Arc<K>> {
    items
        .into_iter()
        .find(|i| get(i).map(String::as_str) == Some(name))
        .map(Arc::new)
}

impl Listers for LiveListers {
    fn snapshot(&self, _: &str, name: &str) -> Option<Arc<VolumeSnapshot>> {
        named(self.reactor.snapshots(), name, |s| s.metadata.name.as_ref())
    }
    fn snapshots_in(&self, _: &str) -> Vec<Arc<VolumeSnapshot>> {
        self.reactor.snapshots().into_iter().map(Arc::new).collect()
    }
    fn content(&self, name: &str) -> Option<Arc<VolumeSnapshotContent>> {
        named(self.reactor.contents(), name, |c| c.metadata.name.as_ref())
    }
    fn class(&self, _: &str) -> Option<Arc<VolumeSnapshotClass>> {
        None
    }
    fn classes(&self) -> Vec<Arc<VolumeSnapshotClass>> {
        Vec::new()
    }
    fn pvc(&self, _: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        named(self.reactor.claims(), name, |c| c.metadata.name.as_ref())
    }
    fn pvcs_in(&self, _: &str) -> Vec<Arc<PersistentVolumeClaim>> {
        self.reactor.claims().into_iter().map(Arc::new).collect()
    }
    fn nodes(&self) -> Vec<Arc<Node>> {
        Vec::new()
    }
    fn group_snapshot(&self, namespace: &str, name: &str) -> Option<Arc<VolumeGroupSnapshot>> {
        GroupListers::group_snapshot(self, namespace, name)
    }
    fn group_contents(&self) -> Vec<Arc<VolumeGroupSnapshotContent>> {
        self.reactor
            .group_contents()
            .into_iter()
            .map(Arc::new)
            .collect()
    }
}

impl GroupListers for LiveListers {
    fn group_snapshot(&self, _: &str, name: &str) -> Option<Arc<VolumeGroupSnapshot>> {
        named(self.reactor.group_snapshots(), name, |g| {
            g.metadata.name.as_ref()
        })
    }
    fn group_content(&self, name: &str) -> Option<Arc<VolumeGroupSnapshotContent>> {
        named(self.reactor.group_contents(), name, |c| {
            c.metadata.name.as_ref()
        })
    }
    fn group_class(&self, name: &str) -> Option<Arc<VolumeGroupSnapshotClass>> {
        named(self.group_classes.clone(), name, |c| {
            c.metadata.name.as_ref()
        })
    }
    fn group_classes(&self) -> Vec<Arc<VolumeGroupSnapshotClass>> {
        self.group_classes.iter().cloned().map(Arc::new).collect()
    }
    fn group_members(&self, namespace: &str, name: &str) -> Vec<Arc<VolumeSnapshot>> {
        let key = utils::volume_snapshot_parent_group_key_by_components(namespace, name);
        self.reactor
            .snapshots()
            .into_iter()
            .filter(|s| utils::volume_snapshot_parent_group_key(Some(s)) == key)
            .map(Arc::new)
            .collect()
    }
    fn volumes_by_handle(&self, driver: &str, handle: &str) -> Vec<Arc<PersistentVolume>> {
        let key = utils::persistent_volume_key_by_csi_driver_handle(driver, handle);
        self.reactor
            .volumes()
            .into_iter()
            .filter(|pv| utils::persistent_volume_key(Some(pv)) == key)
            .map(Arc::new)
            .collect()
    }
}

/// What the fake API server holds, for "has anything changed".
fn world(reactor: &Reactor) -> String {
    serde_json::to_string(&(
        reactor.snapshots(),
        reactor.contents(),
        reactor.group_snapshots(),
        reactor.group_contents(),
    ))
    .unwrap()
}

/// Resyncs every object of both halves, over and over, until nothing changes.
async fn run_until_idle(group: &GroupController, reactor: &Reactor) {
    let ctrl = &group.ctrl;
    let mut quiet = 0;
    for _ in 0..30 {
        let before = world(reactor);
        for g in reactor.group_snapshots() {
            group
                .group_snapshot_queue
                .add(utils::group_snapshot_key(&g));
        }
        for c in reactor.group_contents() {
            group
                .group_content_queue
                .add(c.metadata.name.clone().unwrap_or_default());
        }
        for s in reactor.snapshots() {
            ctrl.snapshot_queue.add(utils::snapshot_key(&s));
        }
        for c in reactor.contents() {
            ctrl.content_queue
                .add(c.metadata.name.clone().unwrap_or_default());
        }
        // Syncs queue other keys (a group content its group snapshot, ...): drain until
        // every queue is empty.
        while group.group_snapshot_queue.len()
            + group.group_content_queue.len()
            + ctrl.snapshot_queue.len()
            + ctrl.content_queue.len()
            > 0
        {
            drain(&group.group_snapshot_queue, |k| async move {
                let _ = group.sync_group_snapshot_by_key(&k).await;
            })
            .await;
            drain(&group.group_content_queue, |k| async move {
                let _ = group.sync_group_content_by_key(&k).await;
            })
            .await;
            drain(&ctrl.snapshot_queue, |k| async move {
                let _ = ctrl.sync_snapshot_by_key(&k).await;
            })
            .await;
            drain(&ctrl.content_queue, |k| async move {
                let _ = ctrl.sync_content_by_key(&k).await;
            })
            .await;
        }
        // Settled when a whole resync changed nothing (the own stores catch up one resync
        // after the objects).
        if world(reactor) == before {
            quiet += 1;
            if quiet == 2 {
                return;
            }
        } else {
            quiet = 0;
        }
    }
    panic!("the controller did not settle");
}

async fn drain<F, Fut>(queue: &csi_workqueue::WorkQueue<String>, mut sync: F)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    while !queue.is_empty() {
        let Some(key) = queue.get().await else {
            return;
        };
        sync(key.clone()).await;
        queue.done(&key);
        queue.forget(&key);
    }
}

fn controller(
    reactor: Arc<Reactor>,
    events: Arc<csi_test_support::FakeRecorder>,
    registry: &csi_metrics::Registry,
) -> GroupController {
    let listers = Arc::new(LiveListers {
        reactor: reactor.clone(),
        group_classes: vec![new_group_class("default-class", true, "Delete")],
    });
    let queue = || {
        csi_workqueue::WorkQueue::<String>::new(
            csi_workqueue::ItemExponentialFailureRateLimiter::new(
                std::time::Duration::from_millis(1),
                std::time::Duration::from_secs(1),
            ),
        )
    };
    let ctrl = SnapshotController::new(
        Config {
            enable_volume_group_snapshots: true,
            ..Default::default()
        },
        Parts {
            api: reactor.clone(),
            listers: listers.clone(),
            events,
            metrics: OperationMetrics::register(registry).unwrap(),
            snapshot_queue: queue(),
            content_queue: queue(),
        },
    );
    GroupController::new(
        Arc::new(ctrl),
        GroupParts {
            api: reactor,
            listers,
            group_snapshot_queue: queue(),
            group_content_queue: queue(),
        },
    )
}

#[tokio::test]
async fn group_snapshot_from_creation_to_deletion() {
    let claims = with_claim_labels(
        new_claim_couple_array("claim", "pvc-uid", "1Gi", "volume", "Bound", Some("sc")),
        postgres(),
    );
    let volumes = new_volume_couple_array(
        "volume",
        "pv-uid",
        "pv-handle",
        "1Gi",
        "pvc-uid",
        "claim",
        "Bound",
        "Delete",
        "sc",
    );
    let h = harness(
        &Case {
            initial_claims: claims,
            initial_volumes: volumes,
            ..Default::default()
        },
        &[],
    );
    let reactor = h.reactor.clone();
    let registry = csi_metrics::Registry::new();
    let group = controller(reactor.clone(), h.events.clone(), &registry);
    let new_group = new_group_snapshot(
        "group",
        "group-uid",
        Some(postgres()),
        "",
        "",
        "",
        None,
        None,
        None,
        true,
        false,
        None,
    );
    reactor.with_group_state(|s| {
        s.group_snapshots.insert("group".into(), new_group);
    });

    // The default class, the group content, the binding, the finalizers.
    run_until_idle(&group, &reactor).await;
    let content_name = "groupsnapcontent-group-uid";
    let g = &reactor.group_snapshots()[0];
    assert_eq!(
        g.spec.volume_group_snapshot_class_name.as_deref(),
        Some("default-class")
    );
    let status = g.status.clone().unwrap();
    assert_eq!(
        status.bound_volume_group_snapshot_content_name.as_deref(),
        Some(content_name)
    );
    assert_eq!(status.ready_to_use, Some(false));
    assert_eq!(
        g.metadata.finalizers,
        Some(vec![
            utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER.to_string()
        ])
    );
    let contents = reactor.group_contents();
    assert_eq!(contents.len(), 1);
    let c = &contents[0];
    assert_eq!(c.metadata.name.as_deref(), Some(content_name));
    assert_eq!(
        c.spec.volume_group_snapshot_ref.uid.as_deref(),
        Some("group-uid")
    );
    assert_eq!(
        c.spec.source.volume_handles,
        vec!["1-pv-handle", "2-pv-handle"]
    );
    assert_eq!(c.spec.deletion_policy, "Delete");
    assert_eq!(
        c.metadata.finalizers,
        Some(vec![
            utils::VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER.to_string()
        ])
    );
    assert!(reactor.snapshots().is_empty() && reactor.contents().is_empty());

    // The sidecar takes the group snapshot.
    reactor.with_group_state(|s| {
        let c = s.group_contents.get_mut(content_name).unwrap();
        c.status = Some(VolumeGroupSnapshotContentStatus {
            volume_group_snapshot_handle: Some("group-handle".into()),
            creation_time: Some(meta_time_now()),
            ready_to_use: Some(true),
            error: None,
            volume_snapshot_info_list: ["1", "2"]
                .iter()
                .map(|i| VolumeSnapshotInfo {
                    volume_handle: format!("{i}-pv-handle"),
                    snapshot_handle: format!("{i}-snap-handle"),
                    creation_time: Some(time_now_stamp()),
                    ready_to_use: Some(true),
                    restore_size: Some(1 << 30),
                })
                .collect(),
        });
        let version: i64 = c
            .metadata
            .resource_version
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        c.metadata.resource_version = Some((version + 1).to_string());
    });
    run_until_idle(&group, &reactor).await;

    let g = &reactor.group_snapshots()[0];
    let status = g.status.clone().unwrap();
    assert_eq!(status.ready_to_use, Some(true), "{g:?}");
    assert!(status.creation_time.is_some());
    check_members_bound(&reactor, 2).unwrap();
    let snapshots: BTreeMap<String, VolumeSnapshot> = reactor
        .snapshots()
        .into_iter()
        .map(|s| (s.metadata.name.clone().unwrap(), s))
        .collect();
    for i in ["1", "2"] {
        let handle = format!("{i}-pv-handle");
        let snap = &snapshots[&member_snapshot_name("group-uid", &handle)];
        assert_eq!(
            snap.spec.source.persistent_volume_claim_name.as_deref(),
            Some(format!("{i}-claim").as_str())
        );
        assert_eq!(
            snap.metadata.owner_references,
            Some(vec![utils::volume_group_snapshot_owner_reference(g)])
        );
        let snap_status = snap.status.clone().unwrap();
        assert_eq!(
            snap_status.bound_volume_snapshot_content_name,
            Some(member_content_name("group-uid", &handle))
        );
        assert_eq!(snap_status.ready_to_use, Some(true), "{snap:?}");
        assert_eq!(
            snap_status.volume_group_snapshot_name.as_deref(),
            Some("group")
        );
    }
    let reasons: Vec<String> = h.events.reasons();
    for reason in [
        "CreatingGroupSnapshot",
        "GroupSnapshotCreated",
        "GroupSnapshotReady",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} in {reasons:?}"
        );
    }

    // Deleting the group snapshot deletes its members and its group content, then lets go.
    reactor.with_group_state(|s| {
        s.group_snapshots
            .get_mut("group")
            .unwrap()
            .metadata
            .deletion_timestamp = Some(meta_time_now());
    });
    run_until_idle(&group, &reactor).await;
    assert!(reactor.snapshots().is_empty(), "{:?}", reactor.snapshots());
    assert!(reactor.group_contents().is_empty());
    let g = &reactor.group_snapshots()[0];
    assert_eq!(g.metadata.finalizers, None, "{g:?}");

    // The API server removes it; the controller records the deletion.
    reactor.with_group_state(|s| s.group_snapshots.clear());
    group
        .sync_group_snapshot_by_key("default/group")
        .await
        .unwrap();
    let text = registry.gather_text();
    for operation in [
        "CreateGroupSnapshot",
        "CreateGroupSnapshotAndReady",
        "DeleteGroupSnapshot",
    ] {
        let series = format!(
            "snapshot_controller_operation_total_seconds_count{{driver_name=\"csi-mock-plugin\",operation_name=\"{operation}\",operation_status=\"success\",snapshot_type=\"dynamic\"}} 1"
        );
        assert!(text.contains(&series), "{series} in\n{text}");
    }
    assert!(
        text.contains("snapshot_controller_operations_in_flight 0"),
        "{text}"
    );
}
