//! `pkg/controller/resize_status_test.go`: `TestResizeFunctions` (5).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::fakes::{FakeCluster, FakeDriver, q, setup};
use crate::resize::util::conditions::*;

/// testutil's `MakePVC`: `resize/foo`, 2Gi requested and had, RWO + ROX, Bound.
fn base_pvc(statuses: &[(&str, &str)]) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("foo".into()),
            namespace: Some("resize".into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into(), "ReadOnlyMany".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_string(), q("2Gi"))].into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            capacity: Some([("storage".to_string(), q("2Gi"))].into()),
            allocated_resource_statuses: (!statuses.is_empty()).then(|| {
                statuses
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            ..Default::default()
        }),
    }
}

fn statuses(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    (!pairs.is_empty()).then(|| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

#[tokio::test]
async fn test_resize_functions() {
    let cpu_infeasible = ("cpu", CONTROLLER_RESIZE_INFEASIBLE);
    let cases: [(&str, Vec<(&str, &str)>, Vec<(&str, &str)>); 5] = [
        (
            "mark fs resize, with no other conditions",
            vec![],
            vec![("storage", NODE_RESIZE_PENDING)],
        ),
        (
            "mark fs resize, when other resource statuses are present",
            vec![cpu_infeasible],
            vec![cpu_infeasible, ("storage", NODE_RESIZE_PENDING)],
        ),
        (
            "mark controller resize in-progress",
            vec![],
            vec![("storage", CONTROLLER_RESIZE_IN_PROGRESS)],
        ),
        (
            "mark controller resize failed",
            vec![],
            vec![("storage", CONTROLLER_RESIZE_INFEASIBLE)],
        ),
        (
            "mark resize finished",
            vec![cpu_infeasible, ("storage", NODE_RESIZE_PENDING)],
            vec![cpu_infeasible],
        ),
    ];
    for (i, (name, initial, expected)) in cases.into_iter().enumerate() {
        let claim = base_pvc(&initial);
        let cluster = FakeCluster::new();
        cluster.add_claim(claim.clone());
        let s = setup("foo", FakeDriver::new(true, true, true, true), cluster).await;
        let r = &s.reconciler;
        let result = match i {
            0 | 1 => r.mark_for_pending_node_expansion(&claim).await,
            2 => {
                r.mark_controller_resize_in_progress(&claim, &q("10Gi"), true)
                    .await
            }
            3 => {
                r.mark_controller_expansion_failed(&claim, "things failed", true)
                    .await
            }
            _ => {
                r.mark_overall_expansion_as_finished(&claim, &q("10Gi"))
                    .await
            }
        };
        let updated = result.unwrap_or_else(|e| panic!("{name}: Expected no error but got {e}"));
        let got = updated
            .status
            .as_ref()
            .and_then(|s| s.allocated_resource_statuses.clone());
        assert_eq!(got, statuses(&expected), "{name}");
    }
}
