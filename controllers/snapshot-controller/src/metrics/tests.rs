//! Upstream's `pkg/metrics/metrics_test.go` cases that apply (paused Tokio time instead of
//! sleeps; the text is read from the registry, not over HTTP). `TestProcessStartTimeMetricExist`
//! is the runtime's: it registers the start time for a component without a driver
//! (`csi-sidecar-runtime`'s `no_driver` test).

use std::time::Duration;

use super::*;

fn manager() -> (OperationMetrics, Registry) {
    let registry = Registry::new();
    (OperationMetrics::register(&registry).unwrap(), registry)
}

/// The `_sum` and `_count` lines of the histogram (the buckets follow from them).
fn sums(registry: &Registry) -> Vec<String> {
    registry
        .gather_text()
        .lines()
        .filter(|l| {
            l.starts_with("snapshot_controller_operation_total_seconds_sum")
                || l.starts_with("snapshot_controller_operation_total_seconds_count")
        })
        .map(String::from)
        .collect()
}

fn in_flight(registry: &Registry) -> String {
    registry
        .gather_text()
        .lines()
        .find(|l| l.starts_with("snapshot_controller_operations_in_flight "))
        .unwrap_or_default()
        .to_string()
}

// TestNew
#[test]
fn new() {
    let (_, registry) = manager();
    let text = registry.gather_text();
    assert!(text.contains("# HELP snapshot_controller_operations_in_flight [ALPHA] Total number of operations in flight"), "{text}");
}

// TestDropNonExistingOperation
#[test]
fn drop_non_existing_operation() {
    let (mgr, _) = manager();
    mgr.drop_operation(&OperationKey::new(
        "drop-non-existing-operation-should-be-noop",
        "uid",
    ));
    assert_eq!(mgr.in_flight(), 0);
}

// TestRecordMetricsForNonExistingOperation
#[test]
fn record_metrics_for_non_existing_operation() {
    let (mgr, registry) = manager();
    let key = OperationKey::new(
        "no-metrics-should-be-recorded-as-operation-did-not-start",
        "uid",
    );
    mgr.record(&key, None, "driver");
    assert!(!registry.gather_text().contains(key.name));
}

// TestDropOperation
#[tokio::test(start_paused = true)]
async fn drop_operation() {
    let (mgr, registry) = manager();
    let key = OperationKey::new("should-have-been-dropped", "uid");
    mgr.operation_start(key.clone(), "driver", DYNAMIC);
    mgr.drop_operation(&key);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!registry.gather_text().contains(key.name));
    let key = OperationKey::new("should-have-been-added", "uid");
    mgr.operation_start(key.clone(), "driver", DYNAMIC);
    tokio::time::sleep(Duration::from_millis(300)).await;
    mgr.record(&key, Some(STATUS_SUCCESS), "driver");
    assert_eq!(
        sums(&registry),
        [
            r#"snapshot_controller_operation_total_seconds_sum{driver_name="driver",operation_name="should-have-been-added",operation_status="success",snapshot_type="dynamic"} 0.3"#,
            r#"snapshot_controller_operation_total_seconds_count{driver_name="driver",operation_name="should-have-been-added",operation_status="success",snapshot_type="dynamic"} 1"#,
        ]
    );
}

// TestUnknownStatus
#[tokio::test(start_paused = true)]
async fn unknown_status() {
    let (mgr, registry) = manager();
    let key = OperationKey::new("unknown-status-operation", "uid");
    mgr.operation_start(key.clone(), "driver", DYNAMIC);
    tokio::time::sleep(Duration::from_millis(300)).await;
    mgr.record(&key, None, "driver");
    assert_eq!(
        sums(&registry)[0],
        r#"snapshot_controller_operation_total_seconds_sum{driver_name="driver",operation_name="unknown-status-operation",operation_status="unknown",snapshot_type="dynamic"} 0.3"#
    );
    let text = registry.gather_text();
    assert!(text.contains(r#"snapshot_controller_operation_total_seconds_bucket{driver_name="driver",operation_name="unknown-status-operation",operation_status="unknown",snapshot_type="dynamic",le="0.25"} 0"#), "{text}");
    assert!(text.contains(r#"snapshot_controller_operation_total_seconds_bucket{driver_name="driver",operation_name="unknown-status-operation",operation_status="unknown",snapshot_type="dynamic",le="0.5"} 1"#), "{text}");
    assert!(text.contains(r#"le="600"} 1"#), "{text}");
}

// TestRecordMetrics, TestRecordVolumeGroupSnapshotMetrics(ForPreProvisioned): the driver given
// at the record wins over the one given at the start.
#[tokio::test(start_paused = true)]
async fn record_metrics() {
    for snapshot_type in [DYNAMIC, PRE_PROVISIONED] {
        let (mgr, registry) = manager();
        let op1 = OperationKey::new("op1", "uid1");
        mgr.operation_start(op1.clone(), "driver", snapshot_type);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        mgr.record(&op1, Some(STATUS_SUCCESS), "driver1");
        let op2 = OperationKey::new("op2", "uid2");
        mgr.operation_start(op2.clone(), "driver", snapshot_type);
        tokio::time::sleep(Duration::from_millis(100)).await;
        mgr.record(&op2, Some("failure"), "driver2");
        let lines = sums(&registry).join("\n");
        assert!(lines.contains(&format!(r#"driver_name="driver1",operation_name="op1",operation_status="success",snapshot_type="{snapshot_type}"}} 1.1"#)), "{lines}");
        assert!(lines.contains(&format!(r#"driver_name="driver2",operation_name="op2",operation_status="failure",snapshot_type="{snapshot_type}"}} 0.1"#)), "{lines}");
        assert_eq!(lines.lines().count(), 4, "{lines}");
    }
}

// Deleting a snapshot whose creation is unfinished records the creation as cancelled
// (upstream's RecordMetrics for DeleteSnapshot).
#[tokio::test(start_paused = true)]
async fn delete_cancels_unfinished_creations() {
    let (mgr, registry) = manager();
    mgr.operation_start(OperationKey::new(CREATE_SNAPSHOT, "uid"), "driver", DYNAMIC);
    mgr.operation_start(
        OperationKey::new(CREATE_SNAPSHOT_AND_READY, "uid"),
        "driver",
        DYNAMIC,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    mgr.operation_start(OperationKey::new(DELETE_SNAPSHOT, "uid"), "", DYNAMIC);
    tokio::time::sleep(Duration::from_secs(2)).await;
    mgr.record(
        &OperationKey::new(DELETE_SNAPSHOT, "uid"),
        Some(STATUS_SUCCESS),
        "driver",
    );
    let lines = sums(&registry).join("\n");
    assert!(lines.contains(r#"{driver_name="driver",operation_name="CreateSnapshot",operation_status="cancel",snapshot_type="dynamic"} 2"#), "{lines}");
    assert!(lines.contains(r#"{driver_name="driver",operation_name="CreateSnapshotAndReady",operation_status="cancel",snapshot_type="dynamic"} 2"#), "{lines}");
    assert!(lines.contains(r#"{driver_name="driver",operation_name="DeleteSnapshot",operation_status="success",snapshot_type="dynamic"} 2"#), "{lines}");
    assert_eq!(mgr.in_flight(), 0);
}

// A snapshot deleted before the controller saw it being deleted: its deletion never started,
// and its unfinished creations are cancelled with their own durations instead of staying in
// flight.
#[tokio::test(start_paused = true)]
async fn a_deletion_that_never_started_cancels_unfinished_creations() {
    let (mgr, registry) = manager();
    mgr.operation_start(OperationKey::new(CREATE_SNAPSHOT, "uid"), "driver", DYNAMIC);
    mgr.operation_start(
        OperationKey::new(CREATE_SNAPSHOT_AND_READY, "uid"),
        "driver",
        DYNAMIC,
    );
    mgr.operation_start(
        OperationKey::new(CREATE_SNAPSHOT, "other"),
        "driver",
        DYNAMIC,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    mgr.record(
        &OperationKey::new(DELETE_SNAPSHOT, "uid"),
        Some(STATUS_SUCCESS),
        "driver",
    );
    let lines = sums(&registry).join("\n");
    assert!(lines.contains(r#"{driver_name="driver",operation_name="CreateSnapshot",operation_status="cancel",snapshot_type="dynamic"} 3"#), "{lines}");
    assert!(lines.contains(r#"{driver_name="driver",operation_name="CreateSnapshotAndReady",operation_status="cancel",snapshot_type="dynamic"} 3"#), "{lines}");
    assert!(!lines.contains("DeleteSnapshot"), "{lines}");
    assert_eq!(
        mgr.in_flight(),
        1,
        "the other snapshot's creation is still under way"
    );
    assert_eq!(
        in_flight(&registry),
        "snapshot_controller_operations_in_flight 1"
    );
}

// TestInFlightMetric
#[tokio::test(start_paused = true)]
async fn in_flight_metric() {
    let (mgr, registry) = manager();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let refresher = {
        let mgr = mgr.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            mgr.refresh_in_flight(Duration::from_millis(50), shutdown)
                .await
        })
    };
    mgr.operation_start(OperationKey::new("leaked", "uid"), "driver", "test");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        in_flight(&registry),
        "snapshot_controller_operations_in_flight 1"
    );
    let second = OperationKey::new("leaked2", "uid");
    mgr.operation_start(second.clone(), "driver2", "test2");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        in_flight(&registry),
        "snapshot_controller_operations_in_flight 2"
    );
    mgr.record(&second, None, "driver");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        in_flight(&registry),
        "snapshot_controller_operations_in_flight 1"
    );
    shutdown.cancel();
    refresher.await.unwrap();
}

// TestConcurrency, reduced: operations started and recorded from many tasks are each counted
// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency() {
    let (mgr, registry) = manager();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mgr = mgr.clone();
        tasks.push(tokio::spawn(async move {
            let key = OperationKey::new("concurrent", &format!("uid{i}"));
            mgr.operation_start(key.clone(), "driver", DYNAMIC);
            mgr.record(&key, Some(STATUS_SUCCESS), "driver");
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(registry.gather_text().contains(r#"snapshot_controller_operation_total_seconds_count{driver_name="driver",operation_name="concurrent",operation_status="success",snapshot_type="dynamic"} 50"#));
    assert_eq!(mgr.in_flight(), 0);
}
