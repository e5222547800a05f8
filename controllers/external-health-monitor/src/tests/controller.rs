//! Upstream's `pkg/controller/controller_test.go` (its `runTest` in `framework_test.go`): one
//! PV and claim, the driver reporting the volume's condition through `ListVolumes` or
//! `ControllerGetVolume`, the controller's loop run for up to five seconds, and the first Event
//! it records compared. A recovery case starts from a claim that an earlier run reported
//! abnormal (upstream: an old `VolumeConditionAbnormal` Event exists; here: the claim stores
//! the abnormal health status, listed when the controller starts).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use csi_workqueue::{QueueConfig, WorkQueue};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::fixtures::*;
use crate::controller::{add_pvs_to_queue, pv_worker, until};
use crate::health::{ABNORMAL_REASON, DEGRADED, HealthCondition};
use crate::kube::HealthApi as _;
use crate::node_watcher::{NodeWatcher, PvcToPodsCache};

struct TestCase {
    name: &'static str,
    volume_id: &'static str,
    enable_node_watcher: bool,
    support_list_volumes: bool,
    want_abnormal_event: bool,
    has_recovery_event: bool,
}

async fn run_test(tc: TestCase) {
    let h = Harness::new().await;
    h.listers
        .add_pv(create_pv("pvc", "pv", DEFAULT_NS, tc.volume_id, "Bound"));
    h.listers
        .add_pvc(create_pvc("pvc", "pvcuid", DEFAULT_NS, "pv"));
    if tc.has_recovery_event {
        h.api.stored.lock().unwrap().push((
            "pvcuid".to_string(),
            vec![HealthCondition {
                status: DEGRADED.to_string(),
                reason: ABNORMAL_REASON.to_string(),
                message: "Volume not found".to_string(),
            }],
            None,
        ));
    }
    if tc.support_list_volumes {
        h.list_volumes(&[tc.volume_id], 100);
    } else {
        h.get_volume();
    }
    // What the controller does when it starts.
    h.reports.seed(h.api.list_stored_health().await.unwrap());
    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    if tc.enable_node_watcher {
        let watcher = NodeWatcher::new(
            DRIVER_NAME.to_string(),
            h.listers.clone(),
            h.events.clone(),
            Arc::new(PvcToPodsCache::default()),
        );
        watcher.update_node(&create_node("node1"), Instant::now());
    }
    if tc.support_list_volumes {
        let checker = h.checker.clone();
        tasks.spawn(until(
            shutdown.clone(),
            Duration::from_secs(300),
            move || {
                let checker = checker.clone();
                async move { checker.check_list_volume_statuses().await.unwrap() }
            },
        ));
    } else {
        let queue: WorkQueue<String> = WorkQueue::with_config(
            csi_workqueue::default_item_based_rate_limiter(),
            QueueConfig::new("csi-monitor-pv-queue"),
        );
        let enqueued = Arc::new(Mutex::new(HashSet::new()));
        add_pvs_to_queue(&*h.listers, DRIVER_NAME, &queue, &enqueued);
        tasks.spawn(pv_worker(
            queue,
            h.checker.clone(),
            h.listers.clone(),
            enqueued,
            Duration::from_secs(60),
            shutdown.clone(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.events.lines().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    let first = h.events.lines().first().cloned();
    if tc.want_abnormal_event {
        assert_eq!(first.as_deref(), Some(ABNORMAL_EVENT), "{}", tc.name);
        let patches = h.api.patches();
        assert_eq!(patches.len(), 1, "{}", tc.name);
        assert_eq!(
            patches[0].1["status"]["healthStatus"]["healthConditions"][0]["status"], "Degraded",
            "{}",
            tc.name
        );
    } else if tc.has_recovery_event {
        assert_eq!(first.as_deref(), Some(NORMAL_EVENT), "{}", tc.name);
        let patches = h.api.patches();
        assert_eq!(
            patches,
            [(
                "test/pvc".to_string(),
                json!({"status": {"healthStatus": null}})
            )],
            "{}",
            tc.name
        );
    } else {
        assert_eq!(first, None, "{}", tc.name);
        assert!(h.api.patches().is_empty(), "{}", tc.name);
    }
}

#[tokio::test]
async fn test_abnormal_volume_without_node_watcher() {
    run_test(TestCase {
        name: "abnormal_volume_case1",
        volume_id: "abnormalVolume1",
        enable_node_watcher: false,
        support_list_volumes: true,
        want_abnormal_event: true,
        has_recovery_event: false,
    })
    .await;
}

#[tokio::test]
async fn test_abnormal_volume_with_node_watcher() {
    run_test(TestCase {
        name: "abnormal_volume_case1",
        volume_id: "abnormalVolume1",
        enable_node_watcher: true,
        support_list_volumes: true,
        want_abnormal_event: true,
        has_recovery_event: false,
    })
    .await;
}

#[tokio::test]
async fn test_normal_volume_without_node_watcher() {
    run_test(TestCase {
        name: "normal_volume_case1",
        volume_id: "normalVolume1",
        enable_node_watcher: false,
        support_list_volumes: true,
        want_abnormal_event: false,
        has_recovery_event: false,
    })
    .await;
}

#[tokio::test]
async fn test_abnormal_volume_without_node_watcher_and_list_volume() {
    run_test(TestCase {
        name: "abnormal_volume_case1",
        volume_id: "abnormalVolume1",
        enable_node_watcher: false,
        support_list_volumes: false,
        want_abnormal_event: true,
        has_recovery_event: false,
    })
    .await;
}

#[tokio::test]
async fn test_abnormal_volume_with_node_watcher_no_list_volume() {
    run_test(TestCase {
        name: "abnormal_volume_case1",
        volume_id: "abnormalVolume1",
        enable_node_watcher: true,
        support_list_volumes: false,
        want_abnormal_event: true,
        has_recovery_event: false,
    })
    .await;
}

#[tokio::test]
async fn test_normal_volume_without_node_watcher_and_list_volume() {
    run_test(TestCase {
        name: "normal_volume_case1",
        volume_id: "normalVolume1",
        enable_node_watcher: false,
        support_list_volumes: false,
        want_abnormal_event: false,
        has_recovery_event: false,
    })
    .await;
}

#[tokio::test]
async fn test_recovery_event_with_list_volume() {
    run_test(TestCase {
        name: "normal_volume_recovery_event1",
        volume_id: "normalVolume1",
        enable_node_watcher: false,
        support_list_volumes: true,
        want_abnormal_event: false,
        has_recovery_event: true,
    })
    .await;
}

#[tokio::test]
async fn test_recovery_event_without_list_volume() {
    run_test(TestCase {
        name: "normal_volume_recovery_event2",
        volume_id: "normalVolume1",
        enable_node_watcher: false,
        support_list_volumes: false,
        want_abnormal_event: false,
        has_recovery_event: true,
    })
    .await;
}

#[tokio::test]
async fn a_worker_puts_the_volume_back_and_a_gone_volume_leaves() {
    let h = Harness::new().await;
    h.listers
        .add_pv(create_pv("pvc", "pv", DEFAULT_NS, "2", "Bound"));
    h.listers
        .add_pvc(create_pvc("pvc", "pvcuid", DEFAULT_NS, "pv"));
    h.get_volume();
    let queue: WorkQueue<String> = WorkQueue::with_config(
        csi_workqueue::default_item_based_rate_limiter(),
        QueueConfig::new("csi-monitor-pv-queue"),
    );
    let enqueued = Arc::new(Mutex::new(HashSet::new()));
    add_pvs_to_queue(&*h.listers, DRIVER_NAME, &queue, &enqueued);
    // A second add finds it queued already.
    add_pvs_to_queue(&*h.listers, DRIVER_NAME, &queue, &enqueued);
    assert_eq!(queue.len(), 1);
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(pv_worker(
        queue.clone(),
        h.checker.clone(),
        h.listers.clone(),
        enqueued.clone(),
        Duration::from_millis(10),
        shutdown.clone(),
    ));
    h.driver
        .wait_for_calls("ControllerGetVolume", 3, Duration::from_secs(5))
        .await
        .unwrap();
    shutdown.cancel();
    queue.shut_down();
    worker.await.unwrap();
    assert!(enqueued.lock().unwrap().contains("pv"));
}
