//! The CSI 1.13 paths: `ControllerListVolumeHealth` sweeps (paged; a volume no longer listed
//! is confirmed with `ControllerGetVolumeHealth`), `ControllerGetVolumeHealth` per PV, the
//! mapping of `VolumeHealthErrorType` to the claim's conditions, and unknown statuses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csi_proto::csi::v1 as csi;
use csi_proto::csi::v1::VolumeHealthErrorType as Type;
use serde_json::{Value, json};

use super::fixtures::*;
use crate::checker::CheckError;
use crate::csi::HealthMode;
use crate::health::{DEGRADED, HealthCondition};
use crate::kube::HealthApi as _;

const TIMEOUT: Duration = Duration::from_secs(15);

pub(super) fn entry(
    status: i32,
    reason: &str,
    message: &str,
) -> csi::volume_health::VolumeHealthEntry {
    csi::volume_health::VolumeHealthEntry {
        status,
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

pub(super) fn health(
    volume_id: &str,
    entries: Vec<csi::volume_health::VolumeHealthEntry>,
) -> csi::VolumeHealth {
    csi::VolumeHealth {
        volume_id: volume_id.to_string(),
        health_statuses: entries,
    }
}

pub(super) fn condition(status: &str, reason: &str, message: &str) -> HealthCondition {
    HealthCondition {
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

/// What the fake driver reports: the list (in pages) and the health per volume for `Get`.
#[derive(Clone, Default)]
struct Driver {
    pages: Arc<Mutex<Vec<Vec<csi::VolumeHealth>>>>,
    get: Arc<Mutex<HashMap<String, csi::VolumeHealth>>>,
}

impl Driver {
    fn set_list(&self, pages: Vec<Vec<csi::VolumeHealth>>) {
        *self.pages.lock().unwrap() = pages;
    }

    fn set_get(&self, volume_id: &str, entries: Vec<csi::volume_health::VolumeHealthEntry>) {
        self.get
            .lock()
            .unwrap()
            .insert(volume_id.to_string(), health(volume_id, entries));
    }
}

/// A harness in `mode` with PV "pv" (volume "1") bound to claim test/pvc (UID "uid"), whose
/// driver answers the list with page `n` for token `n` and `Get` from its map (healthy when
/// not in it).
async fn harness(mode: HealthMode) -> (Harness, Driver) {
    let h = Harness::with_mode(mode).await;
    h.listers
        .add_pv(create_pv("pvc", "pv", DEFAULT_NS, "1", "Bound"));
    h.listers
        .add_pvc(create_pvc("pvc", "uid", DEFAULT_NS, "pv"));
    let driver = Driver::default();
    let pages = driver.pages.clone();
    h.driver.handle(
        "ControllerListVolumeHealth",
        move |req: csi::ControllerListVolumeHealthRequest| {
            let pages = pages.lock().unwrap();
            let index: usize = if req.starting_token.is_empty() {
                0
            } else {
                req.starting_token.parse().unwrap()
            };
            let next_token = if index + 1 < pages.len() {
                (index + 1).to_string()
            } else {
                String::new()
            };
            Ok(csi::ControllerListVolumeHealthResponse {
                entries: pages.get(index).cloned().unwrap_or_default(),
                next_token,
            })
        },
    );
    let get = driver.get.clone();
    h.driver.handle(
        "ControllerGetVolumeHealth",
        move |req: csi::ControllerGetVolumeHealthRequest| {
            let answer = get
                .lock()
                .unwrap()
                .get(&req.volume_id)
                .cloned()
                .unwrap_or_else(|| health(&req.volume_id, Vec::new()));
            Ok(csi::ControllerGetVolumeHealthResponse {
                volume_health: Some(answer),
            })
        },
    );
    (h, driver)
}

fn stored_conditions(patch: &Value) -> &Value {
    &patch["status"]["healthStatus"]["healthConditions"]
}

/// One list sweep per case, from a claim with nothing stored.
#[tokio::test]
async fn list_volume_health_sweep() {
    struct Case {
        name: &'static str,
        listed: Vec<csi::VolumeHealth>,
        want_conditions: Option<Value>,
        want_events: Vec<String>,
    }
    let cases = [
        Case {
            name: "DEGRADED",
            listed: vec![health("1", vec![entry(Type::Degraded as i32, "PathDown", "1 of 2 paths")])],
            want_conditions: Some(json!([{"status": "Degraded", "reason": "PathDown", "message": "1 of 2 paths"}])),
            want_events: vec![],
        },
        Case {
            name: "INACCESSIBLE",
            listed: vec![health("1", vec![entry(Type::Inaccessible as i32, "VolumeNotFound", "Volume not found")])],
            want_conditions: Some(json!([{"status": "Inaccessible", "reason": "VolumeNotFound", "message": "Volume not found"}])),
            want_events: vec![],
        },
        Case {
            name: "DATA_LOSS",
            listed: vec![health("1", vec![entry(Type::DataLoss as i32, "DiskLost", "")])],
            want_conditions: Some(json!([{"status": "DataLoss", "reason": "DiskLost"}])),
            want_events: vec![],
        },
        Case {
            name: "listed without conditions",
            listed: vec![health("1", vec![])],
            want_conditions: None,
            want_events: vec![],
        },
        Case {
            name: "not listed",
            listed: vec![health("other", vec![entry(Type::Degraded as i32, "PathDown", "")])],
            want_conditions: None,
            want_events: vec![],
        },
        Case {
            name: "unknown status only",
            listed: vec![health("1", vec![entry(7, "Future", "from a later spec")])],
            want_conditions: None,
            want_events: vec![
                "Warning UnknownVolumeHealthCondition The CSI driver reported volume health conditions of a type unknown to this monitor: 7 (reason: Future): from a later spec".to_string(),
            ],
        },
    ];
    for case in cases {
        let (h, driver) = harness(HealthMode::ListVolumeHealth).await;
        driver.set_list(vec![case.listed]);
        h.checker.check_list().await.unwrap();
        assert_eq!(
            h.driver.calls_to("ControllerListVolumeHealth").len(),
            1,
            "{}",
            case.name
        );
        assert!(
            h.driver.calls_to("ControllerGetVolumeHealth").is_empty(),
            "{}: nothing stored, nothing to confirm",
            case.name
        );
        assert!(h.driver.calls_to("ListVolumes").is_empty(), "{}", case.name);
        let patches = h.api.patches();
        match &case.want_conditions {
            Some(want) => {
                assert_eq!(patches.len(), 1, "{}: {patches:?}", case.name);
                assert_eq!(patches[0].0, "test/pvc", "{}", case.name);
                assert_eq!(stored_conditions(&patches[0].1), want, "{}", case.name);
            }
            None => assert!(patches.is_empty(), "{}: {patches:?}", case.name),
        }
        assert_eq!(h.events.lines(), case.want_events, "{}", case.name);
    }
}

#[tokio::test]
async fn list_volume_health_follows_every_page() {
    let (h, driver) = harness(HealthMode::ListVolumeHealth).await;
    h.listers
        .add_pv(create_pv("pvc2", "pv2", DEFAULT_NS, "2", "Bound"));
    h.listers
        .add_pvc(create_pvc("pvc2", "uid2", DEFAULT_NS, "pv2"));
    driver.set_list(vec![
        vec![health("x", vec![])],
        vec![health(
            "1",
            vec![entry(Type::Degraded as i32, "PathDown", "")],
        )],
        vec![health(
            "2",
            vec![entry(Type::DataLoss as i32, "DiskLost", "")],
        )],
    ]);
    h.checker.check_list().await.unwrap();
    let tokens: Vec<String> = h
        .driver
        .calls_to("ControllerListVolumeHealth")
        .iter()
        .map(|c| {
            let req = c
                .request::<csi::ControllerListVolumeHealthRequest>()
                .unwrap();
            assert_eq!(req.max_entries, 0, "the driver picks the page size");
            assert!(req.secrets.is_empty());
            req.starting_token.clone()
        })
        .collect();
    assert_eq!(tokens, ["", "1", "2"]);
    let mut patched: Vec<String> = h.api.patches().into_iter().map(|(c, _)| c).collect();
    patched.sort();
    assert_eq!(patched, ["test/pvc", "test/pvc2"]);
}

#[tokio::test]
async fn a_failed_list_changes_nothing() {
    let (h, driver) = harness(HealthMode::ListVolumeHealth).await;
    driver.set_list(vec![vec![health(
        "1",
        vec![entry(Type::Degraded as i32, "PathDown", "")],
    )]]);
    h.checker.check_list().await.unwrap();
    h.driver.handle(
        "ControllerListVolumeHealth",
        |_: csi::ControllerListVolumeHealthRequest| {
            Err::<csi::ControllerListVolumeHealthResponse, _>(tonic::Status::unavailable("busy"))
        },
    );
    let err = h.checker.check_list().await.unwrap_err();
    assert!(matches!(err, CheckError::ListHealth(_)), "{err}");
    assert!(err.to_string().starts_with("list volume health: "), "{err}");
    assert_eq!(h.api.patches().len(), 1, "only the first sweep wrote");
    assert!(h.driver.calls_to("ControllerGetVolumeHealth").is_empty());
}

/// Listed abnormal, then no longer listed: `Get` confirms the recovery and the status goes;
/// while `Get` still reports it, nothing is written again.
#[tokio::test]
async fn recovery_in_list_mode_is_confirmed_with_get_and_clears_the_status() {
    let (h, driver) = harness(HealthMode::ListVolumeHealth).await;
    let abnormal = vec![entry(Type::Inaccessible as i32, "Offline", "array down")];
    driver.set_list(vec![vec![health("1", abnormal.clone())]]);
    h.checker.check_list().await.unwrap();
    assert_eq!(h.api.patches().len(), 1);

    // Gone from the list, still abnormal for Get: no write.
    driver.set_list(vec![vec![]]);
    driver.set_get("1", abnormal);
    h.checker.check_list().await.unwrap();
    let gets = h.driver.calls_to("ControllerGetVolumeHealth");
    assert_eq!(gets.len(), 1);
    let req = gets[0]
        .request::<csi::ControllerGetVolumeHealthRequest>()
        .unwrap();
    assert_eq!(req.volume_id, "1");
    assert_eq!(h.api.patches().len(), 1);

    // Get says healthy: the status is removed, and later sweeps ask nothing more.
    driver.set_get("1", vec![]);
    h.checker.check_list().await.unwrap();
    let patches = h.api.patches();
    assert_eq!(patches.len(), 2);
    assert_eq!(patches[1].1, json!({"status": {"healthStatus": null}}));
    h.checker.check_list().await.unwrap();
    assert_eq!(h.driver.calls_to("ControllerGetVolumeHealth").len(), 2);
    assert_eq!(h.api.patches().len(), 2);
    assert!(h.events.lines().is_empty(), "no Events for known statuses");
}

/// What an earlier process stored (listed when the controller starts) is confirmed too.
#[tokio::test]
async fn stored_conditions_from_an_earlier_run_are_confirmed_and_cleared() {
    let (h, driver) = harness(HealthMode::ListVolumeHealth).await;
    h.api.stored.lock().unwrap().push((
        "uid".to_string(),
        vec![condition(DEGRADED, "PathDown", "")],
        None,
    ));
    h.reports.seed(h.api.list_stored_health().await.unwrap());
    driver.set_list(vec![vec![]]);
    h.checker.check_list().await.unwrap();
    assert_eq!(h.driver.calls_to("ControllerGetVolumeHealth").len(), 1);
    assert_eq!(
        h.api.patches(),
        [(
            "test/pvc".to_string(),
            json!({"status": {"healthStatus": null}})
        )]
    );
}

#[tokio::test]
async fn get_volume_health_per_volume() {
    let (h, driver) = harness(HealthMode::GetVolumeHealth).await;
    let pv = create_pv("pvc", "pv", DEFAULT_NS, "1", "Bound");
    driver.set_get(
        "1",
        vec![entry(
            Type::DataLoss as i32,
            "DiskLost",
            "restore from a snapshot",
        )],
    );
    h.checker.check_volume(&pv).await.unwrap();
    assert!(h.driver.calls_to("ControllerGetVolume").is_empty());
    assert!(h.driver.calls_to("ControllerListVolumeHealth").is_empty());
    let patches = h.api.patches();
    assert_eq!(patches.len(), 1);
    assert_eq!(
        stored_conditions(&patches[0].1),
        &json!([{"status": "DataLoss", "reason": "DiskLost", "message": "restore from a snapshot"}])
    );
    // The same report again: nothing written.
    h.checker.check_volume(&pv).await.unwrap();
    assert_eq!(h.api.patches().len(), 1);
    // A second condition joins: one write with both, sorted.
    driver.set_get(
        "1",
        vec![
            entry(Type::DataLoss as i32, "DiskLost", "restore from a snapshot"),
            entry(Type::Degraded as i32, "Rebuilding", ""),
        ],
    );
    h.checker.check_volume(&pv).await.unwrap();
    let patches = h.api.patches();
    assert_eq!(patches.len(), 2);
    assert_eq!(
        stored_conditions(&patches[1].1),
        &json!([
            {"status": "DataLoss", "reason": "DiskLost", "message": "restore from a snapshot"},
            {"status": "Degraded", "reason": "Rebuilding"},
        ])
    );
    // A failed call is not a recovery.
    h.driver.handle(
        "ControllerGetVolumeHealth",
        |_: csi::ControllerGetVolumeHealthRequest| {
            Err::<csi::ControllerGetVolumeHealthResponse, _>(tonic::Status::deadline_exceeded(
                "slow",
            ))
        },
    );
    let err = h.checker.check_volume(&pv).await.unwrap_err();
    assert!(matches!(err, CheckError::Csi(_)), "{err}");
    assert_eq!(h.api.patches().len(), 2);
    // Recovery: an empty answer clears the status.
    driver.set_get("1", vec![]);
    let get = driver.get.clone();
    h.driver.handle(
        "ControllerGetVolumeHealth",
        move |req: csi::ControllerGetVolumeHealthRequest| {
            Ok(csi::ControllerGetVolumeHealthResponse {
                volume_health: get.lock().unwrap().get(&req.volume_id).cloned(),
            })
        },
    );
    h.checker.check_volume(&pv).await.unwrap();
    let patches = h.api.patches();
    assert_eq!(patches.len(), 3);
    assert_eq!(patches[2].1, json!({"status": {"healthStatus": null}}));
    assert!(h.events.lines().is_empty());
}

#[tokio::test]
async fn get_volume_health_keeps_upstreams_checks() {
    let (h, _) = harness(HealthMode::GetVolumeHealth).await;
    let cases = [
        (
            create_pv_without_csi_driver("pv", "Bound"),
            "csi source is nil or the volume is not managed by this checker/monitor",
        ),
        (
            create_pv("pvc", "pv", DEFAULT_NS, "1", "Pending"),
            "PV: pv status is not bound",
        ),
        (
            create_pv_with_nil_volume_handle("pv", "Bound"),
            "volume handle in csi source is empty",
        ),
        (
            create_pv("missing", "pv", DEFAULT_NS, "1", "Bound"),
            "persistentvolumeclaim \"missing\" not found",
        ),
    ];
    for (pv, want) in cases {
        let err = h.checker.check_volume(&pv).await.unwrap_err();
        assert_eq!(err.to_string(), want);
    }
    assert_eq!(
        h.driver.calls_to("ControllerGetVolumeHealth").len(),
        1,
        "only the PV whose claim is missing reached the driver"
    );
}

/// The legacy path is unchanged in the CSI 1.12 modes: `ListVolumes` conditions, Events.
#[tokio::test]
async fn legacy_modes_ask_the_v1_12_rpcs() {
    let h = Harness::with_mode(HealthMode::ListVolumes).await;
    h.listers
        .add_pv(create_pv("pvc", "pv", DEFAULT_NS, "1", "Bound"));
    h.listers
        .add_pvc(create_pvc("pvc", "uid", DEFAULT_NS, "pv"));
    h.list_volumes(&["1"], 100);
    h.checker.check_list().await.unwrap();
    assert_eq!(h.driver.calls_to("ListVolumes").len(), 1);
    assert!(h.driver.calls_to("ControllerListVolumeHealth").is_empty());
    assert_eq!(h.events.lines(), [ABNORMAL_EVENT]);
    assert_eq!(
        stored_conditions(&h.api.patches()[0].1),
        &json!([{"status": "Degraded", "reason": "VolumeConditionAbnormal", "message": "Volume not found"}])
    );

    let h = Harness::with_mode(HealthMode::GetVolume).await;
    h.listers
        .add_pvc(create_pvc("pvc", "uid", DEFAULT_NS, "pv"));
    h.get_volume();
    h.checker
        .check_volume(&create_pv("pvc", "pv", DEFAULT_NS, "1", "Bound"))
        .await
        .unwrap();
    assert_eq!(h.driver.calls_to("ControllerGetVolume").len(), 1);
    assert!(h.driver.calls_to("ControllerGetVolumeHealth").is_empty());
    assert_eq!(h.events.lines(), [ABNORMAL_EVENT]);
}

#[tokio::test]
async fn node_get_volume_health_maps_the_node_plugins_answer() {
    let h = Harness::new().await;
    h.driver.handle(
        "NodeGetVolumeHealth",
        |req: csi::NodeGetVolumeHealthRequest| {
            assert_eq!(req.volume_publish_path, "/var/lib/kubelet/pods/p/volumes/v");
            assert_eq!(req.staging_target_path, "/staging");
            Ok(csi::NodeGetVolumeHealthResponse {
                volume_health: Some(health(
                    &req.volume_id,
                    vec![entry(
                        Type::Inaccessible as i32,
                        "NotMounted",
                        "mount is gone",
                    )],
                )),
            })
        },
    );
    let got = h
        .csi
        .node_get_volume_health(
            "1",
            "/var/lib/kubelet/pods/p/volumes/v",
            "/staging",
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(
        got.conditions,
        [condition("Inaccessible", "NotMounted", "mount is gone")]
    );
}
