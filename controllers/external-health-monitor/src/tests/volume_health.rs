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
use crate::volume_health::{UnknownCondition, result_of, unknown_details};

const TIMEOUT: Duration = Duration::from_secs(15);

fn entry(status: i32, reason: &str, message: &str) -> csi::volume_health::VolumeHealthEntry {
    csi::volume_health::VolumeHealthEntry {
        status,
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

fn health(
    volume_id: &str,
    entries: Vec<csi::volume_health::VolumeHealthEntry>,
) -> csi::VolumeHealth {
    csi::VolumeHealth {
        volume_id: volume_id.to_string(),
        health_statuses: entries,
    }
}

fn condition(status: &str, reason: &str, message: &str) -> HealthCondition {
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

/// A name, what the driver reports, and the conditions and unknown entries it becomes.
type MappingCase = (
    &'static str,
    Vec<csi::volume_health::VolumeHealthEntry>,
    Vec<HealthCondition>,
    Vec<UnknownCondition>,
);

#[test]
fn statuses_map_to_the_claims_conditions() {
    let cases: [MappingCase; 8] = [
        (
            "DEGRADED",
            vec![entry(Type::Degraded as i32, "PathDown", "1 of 2 paths")],
            vec![condition("Degraded", "PathDown", "1 of 2 paths")],
            vec![],
        ),
        (
            "INACCESSIBLE",
            vec![entry(Type::Inaccessible as i32, "VolumeNotFound", "gone")],
            vec![condition("Inaccessible", "VolumeNotFound", "gone")],
            vec![],
        ),
        (
            "DATA_LOSS",
            vec![entry(Type::DataLoss as i32, "DiskLost", "")],
            vec![condition("DataLoss", "DiskLost", "")],
            vec![],
        ),
        (
            "several, sorted by status and reason",
            vec![
                entry(Type::Inaccessible as i32, "Offline", ""),
                entry(Type::Degraded as i32, "SlowIO", ""),
                entry(Type::Degraded as i32, "PathDown", ""),
            ],
            vec![
                condition("Degraded", "PathDown", ""),
                condition("Degraded", "SlowIO", ""),
                condition("Inaccessible", "Offline", ""),
            ],
            vec![],
        ),
        (
            "unknown values ignored",
            vec![
                entry(Type::UnknownVolumeHealthType as i32, "Unset", ""),
                entry(9, "MultipathLoss", "a later spec's status"),
                entry(Type::Degraded as i32, "PathDown", ""),
            ],
            vec![condition("Degraded", "PathDown", "")],
            vec![
                UnknownCondition {
                    status: "UNKNOWN_VOLUME_HEALTH_TYPE".to_string(),
                    reason: "Unset".to_string(),
                    message: String::new(),
                },
                UnknownCondition {
                    status: "9".to_string(),
                    reason: "MultipathLoss".to_string(),
                    message: "a later spec's status".to_string(),
                },
            ],
        ),
        (
            "a second entry with the same status and reason",
            vec![
                entry(Type::Degraded as i32, "PathDown", "first"),
                entry(Type::Degraded as i32, "PathDown", "second"),
            ],
            vec![condition("Degraded", "PathDown", "first")],
            vec![],
        ),
        (
            "reasons the API refuses",
            vec![
                entry(Type::Degraded as i32, "", "no reason"),
                entry(Type::Degraded as i32, "path down", "a space"),
                entry(Type::Degraded as i32, "9Lives", "a digit first"),
                entry(Type::Degraded as i32, &"R".repeat(257), "too long"),
                entry(Type::Degraded as i32, "Path_Down,Slow:IO", "valid"),
            ],
            vec![condition("Degraded", "Path_Down,Slow:IO", "valid")],
            vec![],
        ),
        (
            "a long message is cut to 1024 bytes",
            vec![entry(Type::DataLoss as i32, "DiskLost", &"é".repeat(600))],
            vec![condition("DataLoss", "DiskLost", &"é".repeat(512))],
            vec![],
        ),
    ];
    for (name, entries, conditions, unknown) in cases {
        let got = result_of(Some(&health("v", entries)));
        assert_eq!(got.conditions, conditions, "{name}");
        assert_eq!(got.unknown, unknown, "{name}");
    }
    let many: Vec<_> = (0..20)
        .map(|i| entry(Type::Degraded as i32, &format!("Reason{i:02}"), ""))
        .collect();
    assert_eq!(result_of(Some(&health("v", many))).conditions.len(), 16);
    assert!(result_of(None).conditions.is_empty());
}

#[test]
fn unknown_details_are_upstreams_sorted_line() {
    let unknown = [
        UnknownCondition {
            status: "9".to_string(),
            reason: "MultipathLoss".to_string(),
            message: "one path left".to_string(),
        },
        UnknownCondition {
            status: "UNKNOWN_VOLUME_HEALTH_TYPE".to_string(),
            reason: String::new(),
            message: String::new(),
        },
    ];
    assert_eq!(
        unknown_details(&unknown),
        "9 (reason: MultipathLoss): one path left; UNKNOWN_VOLUME_HEALTH_TYPE"
    );
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
