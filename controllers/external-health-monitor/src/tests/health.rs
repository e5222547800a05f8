//! What is written on the claim and when the recovery Event is due (ours: upstream decides the
//! recovery with its Event watch).

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::fixtures::*;
use crate::csi::VolumeConditionResult;
use crate::health::{EVENT_TTL, HealthCondition, Reports, conditions_for, stored_health};

fn abnormal(message: &str) -> VolumeConditionResult {
    VolumeConditionResult {
        abnormal: true,
        message: message.to_string(),
    }
}

#[test]
fn an_unchanged_report_writes_nothing_and_a_new_message_keeps_the_transition_time() {
    let reports = Reports::default();
    let t0: Timestamp = "2026-11-30T10:00:00Z".parse().unwrap();
    let t1: Timestamp = "2026-11-30T10:05:00Z".parse().unwrap();
    let first = reports
        .write_for("u", &conditions_for(&abnormal("slow")), t0)
        .unwrap();
    assert_eq!(
        first.patch,
        json!({"status": {"healthStatus": {
            "healthConditions": [{"status": "Degraded", "reason": "VolumeConditionAbnormal", "message": "slow"}],
            "lastTransitionTime": "2026-11-30T10:00:00Z"}}})
    );
    reports.written("u", &first);
    assert_eq!(
        reports.write_for("u", &conditions_for(&abnormal("slow")), t1),
        None
    );
    let second = reports
        .write_for("u", &conditions_for(&abnormal("slower")), t1)
        .unwrap();
    assert_eq!(
        second.since, t0,
        "same (status, reason): same transition time"
    );
    reports.written("u", &second);
    let clear = reports.write_for("u", &[], t1).unwrap();
    assert_eq!(clear.patch, json!({"status": {"healthStatus": null}}));
    reports.written("u", &clear);
    assert!(
        reports.is_empty(),
        "nothing stored, no Warning recorded: forgotten"
    );
    assert_eq!(
        reports.write_for("u", &[], t1),
        None,
        "a normal claim is never patched"
    );
}

#[test]
fn the_recovery_event_is_due_while_the_warning_lives() {
    let reports = Reports::default();
    let now = Instant::now();
    assert!(!reports.recovery_due("u", now), "never reported");
    reports.warned("u", now);
    assert!(reports.recovery_due("u", now + Duration::from_secs(60)));
    assert!(reports.recovery_due("u", now + EVENT_TTL - Duration::from_secs(1)));
    assert!(!reports.recovery_due("u", now + EVENT_TTL));
    assert!(reports.is_empty(), "an expired Warning is forgotten");
}

#[test]
fn seeded_status_makes_recovery_due_until_cleared() {
    let reports = Reports::default();
    let condition = HealthCondition {
        status: "Inaccessible".to_string(),
        reason: "VolumeNotFound".to_string(),
        message: String::new(),
    };
    reports.seed([
        ("u".to_string(), vec![condition], None),
        ("v".to_string(), vec![], None),
    ]);
    assert_eq!(reports.len(), 1);
    let now = Instant::now();
    assert!(reports.recovery_due("u", now));
    let clear = reports.write_for("u", &[], Timestamp::now()).unwrap();
    reports.written("u", &clear);
    assert!(!reports.recovery_due("u", now));
}

#[test]
fn long_messages_are_cut_to_the_apis_limit_on_a_character_boundary() {
    let message = "é".repeat(600); // 1200 bytes
    let conditions = conditions_for(&abnormal(&message));
    assert!(conditions[0].message.len() <= 1024);
    assert_eq!(conditions[0].message.len(), 1024);
}

#[test]
fn stored_health_reads_the_claims_json() {
    let claim = json!({"status": {"phase": "Bound", "healthStatus": {
        "healthConditions": [{"status": "Degraded", "reason": "VolumeConditionAbnormal", "message": "m"}],
        "lastTransitionTime": "2026-11-30T10:00:00Z"}}});
    let (conditions, since) = stored_health(&claim);
    assert_eq!(conditions.len(), 1);
    assert_eq!(since, Some("2026-11-30T10:00:00Z".parse().unwrap()));
    assert_eq!(stored_health(&json!({"status": {}})), (vec![], None));
}

#[tokio::test]
async fn repeated_abnormal_passes_record_events_but_write_once_and_recovery_follows() {
    let h = Harness::new().await;
    let pv = create_pv("pvc", "pv", DEFAULT_NS, "1", "Bound");
    h.listers.add_pv(pv.clone());
    h.listers
        .add_pvc(create_pvc("pvc", "uid", DEFAULT_NS, "pv"));
    h.get_volume();
    for _ in 0..3 {
        h.checker.check_volume_status(&pv).await.unwrap();
    }
    assert_eq!(
        h.events.lines(),
        [ABNORMAL_EVENT, ABNORMAL_EVENT, ABNORMAL_EVENT]
    );
    assert_eq!(h.api.patches().len(), 1);
    // The volume recovers.
    let normal = create_pv("pvc", "pv", DEFAULT_NS, "2", "Bound");
    h.events.take();
    h.checker.check_volume_status(&normal).await.unwrap();
    h.checker.check_volume_status(&normal).await.unwrap();
    assert_eq!(
        h.events.lines(),
        [NORMAL_EVENT, NORMAL_EVENT],
        "as upstream: while the Warning exists"
    );
    let patches = h.api.patches();
    assert_eq!(patches.len(), 2);
    assert_eq!(patches[1].1, json!({"status": {"healthStatus": null}}));
}

#[tokio::test]
async fn a_failed_status_write_is_retried_on_the_next_pass() {
    let h = Harness::new().await;
    let pv = create_pv("pvc", "pv", DEFAULT_NS, "1", "Bound");
    h.listers.add_pv(pv.clone());
    h.listers
        .add_pvc(create_pvc("pvc", "uid", DEFAULT_NS, "pv"));
    h.get_volume();
    *h.api.fail.lock().unwrap() = Some(csi_controller::ApiError::forbidden(
        "persistentvolumeclaims",
        "pvc",
        "no",
    ));
    let err = h.checker.check_volume_status(&pv).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to update the health status of PVC test/pvc"),
        "{err}"
    );
    *h.api.fail.lock().unwrap() = None;
    h.checker.check_volume_status(&pv).await.unwrap();
    assert_eq!(h.api.patches().len(), 1);
}

#[test]
fn deleted_claims_leave_the_memory() {
    let reports = Reports::default();
    let now = Instant::now();
    reports.warned("gone", now);
    reports.warned("here", now);
    reports.retain(&["here".to_string()].into_iter().collect());
    assert_eq!(reports.len(), 1);
    assert!(reports.recovery_due("here", now));
    assert!(!reports.recovery_due("gone", now));
}
