//! upstream's `modify_status_test.go`.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimCondition};
use tonic::Status;

use super::fakes::*;
use crate::modify::ModifyError;

fn in_progress() -> Vec<PersistentVolumeClaimCondition> {
    vec![cond(
        "ModifyingVolume",
        "",
        "Modifying volume to \"target-vac\" is in progress.",
    )]
}

fn infeasible() -> Vec<PersistentVolumeClaimCondition> {
    vec![
        cond(
            "ModifyingVolume",
            "",
            "Modifying volume to \"target-vac\" failed. Waiting for retry.",
        ),
        cond(
            "ModifyVolumeError",
            "InvalidArgument",
            "Parameters in VolumeAttributesClass is invalid",
        ),
    ]
}

fn uncertain() -> Vec<PersistentVolumeClaimCondition> {
    vec![
        cond(
            "ModifyingVolume",
            "",
            "Modifying volume to \"target-vac\" is still in progress.",
        ),
        cond("ModifyVolumeError", "Aborted", "Non-final error"),
    ]
}

fn error() -> Vec<PersistentVolumeClaimCondition> {
    vec![
        cond(
            "ModifyingVolume",
            "",
            "Modifying volume to \"target-vac\" failed. Waiting for retry.",
        ),
        cond("ModifyVolumeError", "Internal", "Final error"),
    ]
}

/// upstream's `testutil.CompareConditions`: type, status, reason and message, in order.
fn without_times(
    conditions: &[PersistentVolumeClaimCondition],
) -> Vec<PersistentVolumeClaimCondition> {
    conditions
        .iter()
        .map(|c| PersistentVolumeClaimCondition {
            last_probe_time: None,
            last_transition_time: None,
            ..c.clone()
        })
        .collect()
}

/// A row: name, PVC, status to mark, expected conditions, expected status, error.
type Row = (
    &'static str,
    PersistentVolumeClaim,
    &'static str,
    Vec<PersistentVolumeClaimCondition>,
    &'static str,
    Option<Status>,
);

#[tokio::test]
async fn test_mark_controller_modify_volume_status() {
    let cases: Vec<Row> = vec![
        (
            "mark modify volume as in progress",
            make_test_pvc(vec![]),
            "InProgress",
            in_progress(),
            "InProgress",
            None,
        ),
        (
            "mark modify volume as failed",
            make_test_pvc(in_progress()),
            "InProgress",
            error(),
            "InProgress",
            Some(final_err()),
        ),
        (
            "mark modify volume as uncertain",
            make_test_pvc(in_progress()),
            "InProgress",
            uncertain(),
            "InProgress",
            Some(non_final_err()),
        ),
        (
            "mark modify volume as infeasible",
            make_test_pvc(in_progress()),
            "Infeasible",
            infeasible(),
            "Infeasible",
            Some(infeasible_err()),
        ),
        (
            "mark modify volume as pending",
            make_test_pvc(infeasible()),
            "Pending",
            // Not touched.
            infeasible(),
            "Pending",
            None,
        ),
    ];
    for (name, pvc, mark, expected_conditions, expected_status, err) in cases {
        let env = setup(FakeDriver::new(true), vec![Obj::Pvc(pvc.clone())]).await;
        let err = err.map(ModifyError::Csi);
        let pvc = env
            .inner
            .mark_controller_modify_volume_status(&pvc, mark, err.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let status = pvc.status.unwrap();
        assert_eq!(
            status.modify_volume_status.unwrap().status,
            expected_status,
            "{name}"
        );
        assert_eq!(
            without_times(status.conditions.as_deref().unwrap_or_default()),
            expected_conditions,
            "{name}"
        );
    }
}

#[tokio::test]
async fn test_mark_controller_modify_volume_completed() {
    let base_pv = base_pv();
    let mut expected_pv = base_pv.clone();
    expected_pv
        .spec
        .as_mut()
        .unwrap()
        .volume_attributes_class_name = Some(TARGET_VAC.into());
    let mut expected_pvc = make_test_pvc(vec![]);
    let status = expected_pvc.status.as_mut().unwrap();
    status.current_volume_attributes_class_name = Some(TARGET_VAC.into());
    status.modify_volume_status = None;

    let cases = [
        (
            "update modify volume status to completed",
            make_test_pvc(vec![]),
        ),
        (
            "update modify volume status to completed, and clear conditions",
            make_test_pvc(in_progress()),
        ),
    ];
    for (name, pvc) in cases {
        let env = setup(
            FakeDriver::new(true),
            vec![Obj::Pvc(pvc.clone()), Obj::Pv(base_pv.clone())],
        )
        .await;
        let (mut pvc, mut pv) = env
            .inner
            .mark_controller_modify_volume_completed(&pvc, &base_pv)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The fake server versions what it writes; the rest must be as expected.
        pvc.metadata.resource_version = None;
        pv.metadata.resource_version = None;
        assert_eq!(pvc, expected_pvc, "{name}");
        assert_eq!(pv, expected_pv, "{name}");
    }
}
