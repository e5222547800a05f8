//! Upstream's `pkg/csi-handler/pv_handler_test.go`, and ours.

use std::collections::HashMap;
use std::time::Duration;

use csi_proto::csi::v1 as csi;

use super::fixtures::{Harness, condition_of};
use crate::csi::VolumeConditionResult;

const TIMEOUT: Duration = Duration::from_secs(15);

fn result(abnormal: bool, message: &str) -> VolumeConditionResult {
    VolumeConditionResult {
        abnormal,
        message: message.to_string(),
    }
}

/// `Test_csiPVHandler_ControllerListVolumeConditions`.
#[tokio::test]
async fn controller_list_volume_conditions() {
    struct Case {
        name: &'static str,
        want: HashMap<String, VolumeConditionResult>,
    }
    let cases = [Case {
        name: "case1",
        want: HashMap::from([
            ("1".to_string(), result(true, "Volume not found")),
            ("2".to_string(), result(false, "")),
        ]),
    }];
    for case in cases {
        let h = Harness::new().await;
        h.list_volumes(&["1", "2"], 100);
        let got = h.csi.list_volume_conditions(TIMEOUT).await.unwrap();
        assert_eq!(got, case.want, "{}", case.name);
        let calls = h.driver.calls_to("ListVolumes");
        assert_eq!(calls.len(), 1, "{}", case.name);
        let req = calls[0].request::<csi::ListVolumesRequest>().unwrap();
        assert_eq!(req, &csi::ListVolumesRequest::default(), "{}", case.name);
    }
}

/// `Test_csiPVHandler_ControllerGetVolumeCondition`.
#[tokio::test]
async fn controller_get_volume_condition() {
    let cases = [
        ("AbnormalCase", "1", result(true, "Volume not found")),
        ("NormalCase", "2", result(false, "")),
    ];
    for (name, volume_id, want) in cases {
        let h = Harness::new().await;
        h.get_volume();
        let got = h
            .csi
            .get_volume_condition(volume_id, TIMEOUT)
            .await
            .unwrap();
        assert_eq!(got, want, "{name}");
        let calls = h.driver.calls_to("ControllerGetVolume");
        let req = calls[0]
            .request::<csi::ControllerGetVolumeRequest>()
            .unwrap();
        assert_eq!(req.volume_id, volume_id, "{name}");
    }
}

/// `Test_csiPVHandler_NodeGetVolumeCondition`.
#[tokio::test]
async fn node_get_volume_condition() {
    let cases = [
        ("AbnormalCase", "1", result(true, "Volume not found")),
        ("NormalCase", "2", result(false, "")),
    ];
    for (name, volume_id, want) in cases {
        let h = Harness::new().await;
        h.driver.handle(
            "NodeGetVolumeStats",
            |req: csi::NodeGetVolumeStatsRequest| {
                Ok(csi::NodeGetVolumeStatsResponse {
                    volume_condition: Some(condition_of(&req.volume_id)),
                    ..Default::default()
                })
            },
        );
        let got = h
            .csi
            .node_get_volume_condition(volume_id, "", "", TIMEOUT)
            .await
            .unwrap();
        assert_eq!(got, want, "{name}");
    }
}

#[tokio::test]
async fn list_volume_conditions_follows_every_page() {
    let h = Harness::new().await;
    h.list_volumes(&["1", "2", "3", "4", "5"], 2);
    let got = h.csi.list_volume_conditions(TIMEOUT).await.unwrap();
    assert_eq!(got.len(), 5);
    let tokens: Vec<String> = h
        .driver
        .calls_to("ListVolumes")
        .iter()
        .map(|c| {
            c.request::<csi::ListVolumesRequest>()
                .unwrap()
                .starting_token
                .clone()
        })
        .collect();
    assert_eq!(tokens, ["", "2", "4"]);
}

#[tokio::test]
async fn list_volume_conditions_error_has_upstreams_message() {
    let h = Harness::new().await;
    h.driver
        .handle("ListVolumes", |_: csi::ListVolumesRequest| {
            Err::<csi::ListVolumesResponse, _>(tonic::Status::unavailable("backend down"))
        });
    let err = h.csi.list_volume_conditions(TIMEOUT).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to list volumes: rpc error: code = Unavailable desc = backend down"
    );
}

#[tokio::test]
async fn a_response_without_condition_reads_normal() {
    let h = Harness::new().await;
    h.driver.handle(
        "ControllerGetVolume",
        |_: csi::ControllerGetVolumeRequest| Ok(csi::ControllerGetVolumeResponse::default()),
    );
    let got = h.csi.get_volume_condition("x", TIMEOUT).await.unwrap();
    assert_eq!(got, result(false, ""));
}

/// The mode table: upstream master's `TestHealthMode` (CSI 1.13 capabilities, its case names)
/// and v0.19.0's exit rules (CSI 1.12 capabilities).
#[tokio::test]
async fn support_gives_the_mode_or_upstreams_reason() {
    use crate::csi::{HealthMode, LIST_WITHOUT_GET, NO_CONTROLLER_SERVICE, NO_HEALTH_SUPPORT};
    use csi::controller_service_capability::rpc::Type as Rpc;
    use csi::plugin_capability::service::Type as Service;
    type Want = Result<HealthMode, &'static str>;
    let cases: [(&str, bool, &[Rpc], Want); 11] = [
        // Upstream master's TestHealthMode.
        (
            "get only",
            true,
            &[Rpc::GetVolumeHealth],
            Ok(HealthMode::GetVolumeHealth),
        ),
        (
            "list and get",
            true,
            &[Rpc::ListVolumeHealth, Rpc::GetVolumeHealth],
            Ok(HealthMode::ListVolumeHealth),
        ),
        ("neither", true, &[], Err(NO_HEALTH_SUPPORT)),
        (
            "list without required get",
            true,
            &[Rpc::ListVolumeHealth],
            Err(LIST_WITHOUT_GET),
        ),
        // v0.19.0's checks in main.
        (
            "no controller service",
            false,
            &[Rpc::ListVolumes, Rpc::VolumeCondition],
            Err(NO_CONTROLLER_SERVICE),
        ),
        (
            "list and condition",
            true,
            &[Rpc::ListVolumes, Rpc::VolumeCondition],
            Ok(HealthMode::ListVolumes),
        ),
        (
            "get and condition",
            true,
            &[Rpc::GetVolume, Rpc::VolumeCondition],
            Ok(HealthMode::GetVolume),
        ),
        (
            "no condition",
            true,
            &[Rpc::ListVolumes, Rpc::GetVolume],
            Err(NO_HEALTH_SUPPORT),
        ),
        (
            "condition only",
            true,
            &[Rpc::VolumeCondition],
            Err(NO_HEALTH_SUPPORT),
        ),
        // Ours: the CSI 1.13 RPCs win over the legacy conditions.
        (
            "health and legacy",
            true,
            &[Rpc::GetVolumeHealth, Rpc::ListVolumes, Rpc::VolumeCondition],
            Ok(HealthMode::GetVolumeHealth),
        ),
        (
            "1.13 mock driver of Kubernetes 1.37",
            true,
            &[Rpc::ListVolumes, Rpc::GetVolume, Rpc::GetVolumeHealth],
            Ok(HealthMode::GetVolumeHealth),
        ),
    ];
    for (name, controller, rpcs, want) in cases {
        let h = Harness::new().await;
        if controller {
            h.driver
                .set_plugin_capabilities([csi_test_support::plugin_service_capability(
                    Service::ControllerService,
                )]);
        } else {
            h.driver.set_plugin_capabilities([]);
        }
        h.driver.set_controller_capabilities(rpcs.iter().copied());
        let support = h.csi.support(TIMEOUT).await.unwrap();
        assert_eq!(support.mode(), want, "{name}");
        assert_eq!(support.missing(), want.err(), "{name}");
    }
    // The reason keeps the words of both upstream versions.
    assert!(NO_HEALTH_SUPPORT.contains(
        "CSI driver does not support Controller ListVolumes and GetVolume service or does not implement VolumeCondition"
    ));
    assert!(NO_HEALTH_SUPPORT.contains(
        "the CSI driver supports neither ControllerListVolumeHealth nor ControllerGetVolumeHealth"
    ));
}
