//! Upstream's `pkg/csi-handler/pv_checker_test.go`, plus what v0.19 writes on the claim.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use serde_json::json;

use super::fixtures::*;
use crate::checker::{CheckError, get_volume_handle};

struct Case {
    name: &'static str,
    pvc: PersistentVolumeClaim,
    pv: PersistentVolume,
    volume_id: &'static str,
    want_err: bool,
    want_abnormal_event: bool,
}

/// The claim status patch of an abnormal volume "1".
fn assert_abnormal_status(h: &Harness, name: &str) {
    let patches = h.api.patches();
    assert_eq!(patches.len(), 1, "{name}: {patches:?}");
    let (claim, patch) = &patches[0];
    assert_eq!(claim, "test/pvc", "{name}");
    assert_eq!(
        patch["status"]["healthStatus"]["healthConditions"],
        json!([{"status": "Degraded", "reason": "VolumeConditionAbnormal", "message": "Volume not found"}]),
        "{name}"
    );
    assert!(
        patch["status"]["healthStatus"]["lastTransitionTime"].is_string(),
        "{name}"
    );
}

fn check_outcome(h: &Harness, case: &Case) {
    if case.want_abnormal_event {
        assert_eq!(h.events.lines(), [ABNORMAL_EVENT], "{}", case.name);
        assert_abnormal_status(h, case.name);
    } else {
        assert!(
            h.events.lines().is_empty(),
            "{}: {:?}",
            case.name,
            h.events.lines()
        );
        assert!(h.api.patches().is_empty(), "{}", case.name);
    }
}

/// `TestPVHealthConditionChecker_CheckControllerListVolumeStatuses`.
#[tokio::test]
async fn check_controller_list_volume_statuses() {
    let cases = [
        Case {
            name: "VolumeConditionAbnormal Case",
            pvc: create_pvc("pvc", "uid", DEFAULT_NS, "pv"),
            pv: create_pv("pvc", "pv", DEFAULT_NS, "1", "Bound"),
            volume_id: "1",
            want_err: false,
            want_abnormal_event: true,
        },
        Case {
            name: "VolumeConditionNormal Case",
            pvc: create_pvc("pvc", "uid", DEFAULT_NS, "pv"),
            pv: create_pv("pvc", "pv", DEFAULT_NS, "2", "Bound"),
            volume_id: "2",
            want_err: false,
            want_abnormal_event: false,
        },
        Case {
            name: "PV without CSI driver Case",
            pvc: create_pvc("pvc", "uid", DEFAULT_NS, "pv"),
            pv: create_pv_without_csi_driver("pv", "Bound"),
            volume_id: "1",
            want_err: false,
            want_abnormal_event: false,
        },
    ];
    for case in cases {
        let h = Harness::new().await;
        h.listers.add_pv(case.pv.clone());
        h.listers.add_pvc(case.pvc.clone());
        h.list_volumes(&[case.volume_id], 100);
        let result = h.checker.check_list_volume_statuses().await;
        assert_eq!(result.is_err(), case.want_err, "{}: {result:?}", case.name);
        assert_eq!(h.driver.calls_to("ListVolumes").len(), 1, "{}", case.name);
        check_outcome(&h, &case);
    }
}

/// `TestPVHealthConditionChecker_GetVolumeHandle`.
#[test]
fn get_volume_handle_cases() {
    let cases = [
        (
            "VolumeConditionNormal Case",
            create_pv("pvc", "pv", DEFAULT_NS, "2", "Bound"),
            false,
            "2",
        ),
        (
            "PV without CSI driver Case",
            create_pv_without_csi_driver("pv", "Bound"),
            true,
            "",
        ),
    ];
    for (name, pv, want_err, want) in cases {
        match get_volume_handle(&pv) {
            Ok(got) => {
                assert!(!want_err, "{name}");
                assert_eq!(got, want, "{name}");
            }
            Err(err) => {
                assert!(want_err, "{name}: {err}");
                assert_eq!(err.to_string(), "csi source is nil", "{name}");
            }
        }
    }
}

/// `TestPVHealthConditionChecker_CheckControllerVolumeStatus`.
#[tokio::test]
async fn check_controller_volume_status() {
    let cases = [
        Case {
            name: "VolumeConditionAbnormal Case",
            pvc: create_pvc("pvc", "uid", DEFAULT_NS, "pv"),
            pv: create_pv("pvc", "pv", DEFAULT_NS, "1", "Bound"),
            volume_id: "1",
            want_err: false,
            want_abnormal_event: true,
        },
        Case {
            name: "VolumeConditionNormal Case",
            pvc: create_pvc("pvc", "uid", DEFAULT_NS, "pv"),
            pv: create_pv("pvc", "pv", DEFAULT_NS, "2", "Bound"),
            volume_id: "2",
            want_err: false,
            want_abnormal_event: false,
        },
        Case {
            name: "PV without CSI driver Case",
            pvc: create_pvc("pvc", "uid", DEFAULT_NS, "pv"),
            pv: create_pv_without_csi_driver("pv", "Bound"),
            volume_id: "1",
            want_err: true,
            want_abnormal_event: false,
        },
        Case {
            name: "PV isn't in VolumeBound state",
            pvc: create_pvc("pvc", "uid", DEFAULT_NS, "pv"),
            pv: create_pv("pvc", "pv", DEFAULT_NS, "1", "Pending"),
            volume_id: "1",
            want_err: true,
            want_abnormal_event: false,
        },
        Case {
            name: "PV with nil VolumeHandle",
            pvc: create_pvc("pvc", "uid", DEFAULT_NS, "pv"),
            pv: create_pv_with_nil_volume_handle("pv", "Bound"),
            volume_id: "1",
            want_err: true,
            want_abnormal_event: false,
        },
    ];
    for case in cases {
        let h = Harness::new().await;
        h.listers.add_pv(case.pv.clone());
        h.listers.add_pvc(case.pvc.clone());
        h.get_volume();
        let result = h.checker.check_volume_status(&case.pv).await;
        assert_eq!(result.is_err(), case.want_err, "{}: {result:?}", case.name);
        if !case.want_err {
            let calls = h.driver.calls_to("ControllerGetVolume");
            assert_eq!(calls.len(), 1, "{}", case.name);
        }
        check_outcome(&h, &case);
    }
}

#[tokio::test]
async fn check_errors_carry_upstreams_messages() {
    let h = Harness::new().await;
    h.get_volume();
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
        let err = h.checker.check_volume_status(&pv).await.unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}

#[tokio::test]
async fn a_failed_get_volume_reports_nothing() {
    let h = Harness::new().await;
    let pv = create_pv("pvc", "pv", DEFAULT_NS, "1", "Bound");
    h.listers.add_pv(pv.clone());
    h.listers
        .add_pvc(create_pvc("pvc", "uid", DEFAULT_NS, "pv"));
    // First abnormal, so that a recovery would be due.
    h.get_volume();
    h.checker.check_volume_status(&pv).await.unwrap();
    h.events.take();
    h.driver.handle(
        "ControllerGetVolume",
        |_: csi_proto::csi::v1::ControllerGetVolumeRequest| {
            Err::<csi_proto::csi::v1::ControllerGetVolumeResponse, _>(tonic::Status::not_found("1"))
        },
    );
    let err = h.checker.check_volume_status(&pv).await.unwrap_err();
    assert!(matches!(err, CheckError::Csi(_)), "{err}");
    assert!(h.events.lines().is_empty());
    assert_eq!(h.api.patches().len(), 1, "only the first report wrote");
}
