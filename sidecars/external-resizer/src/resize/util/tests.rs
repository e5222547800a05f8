//! `pkg/util/util_test.go`: `TestGetPVCPatchData` (2), `TestMergeResizeConditionsOfPVC` (3),
//! `TestMergePVCConditions` (6).

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::*;

fn at(second: i64) -> Option<Time> {
    Some(Time(Timestamp::from_second(second).unwrap()))
}

const NOW: i64 = 1_700_000_100;
const OLD: i64 = 1_700_000_000;

fn cond(
    kind: &str,
    message: &str,
    reason: &str,
    transition: Option<Time>,
    probe: Option<Time>,
) -> PersistentVolumeClaimCondition {
    PersistentVolumeClaimCondition {
        type_: kind.into(),
        status: "True".into(),
        message: Some(message.into()),
        reason: (!reason.is_empty()).then(|| reason.to_string()),
        last_transition_time: transition,
        last_probe_time: probe,
    }
}

fn resize_pending() -> PersistentVolumeClaimCondition {
    cond(
        conditions::FILE_SYSTEM_RESIZE_PENDING,
        FS_RESIZE_PENDING_MESSAGE,
        "",
        at(NOW),
        None,
    )
}
fn controller_resize_error() -> PersistentVolumeClaimCondition {
    cond(
        conditions::CONTROLLER_RESIZE_ERROR,
        "controller resize failed",
        "",
        at(NOW),
        None,
    )
}
fn controller_resize_error2() -> PersistentVolumeClaimCondition {
    cond(
        conditions::CONTROLLER_RESIZE_ERROR,
        "controller resize failed with error2",
        "",
        at(NOW),
        None,
    )
}
fn modify_progress() -> PersistentVolumeClaimCondition {
    cond(
        "ModifyingVolume",
        "ModifyVolume operation in progress.",
        "",
        None,
        at(NOW),
    )
}
fn infeasible() -> PersistentVolumeClaimCondition {
    cond(
        "ModifyVolumeError",
        "invalid parameter",
        "InvalidParameter",
        None,
        at(NOW),
    )
}
fn timeout() -> PersistentVolumeClaimCondition {
    cond(
        "ModifyVolumeError",
        "Progress: 10%",
        "DeadlineExceeded",
        None,
        at(NOW),
    )
}
fn transit(mut c: PersistentVolumeClaimCondition, t: i64) -> PersistentVolumeClaimCondition {
    c.last_transition_time = at(t);
    c
}

#[test]
fn test_get_pvc_patch_data() {
    for version in ["1", "2"] {
        let old = PersistentVolumeClaim {
            metadata: ObjectMeta {
                resource_version: Some(version.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut new = old.clone();
        new.status.get_or_insert_with(Default::default).conditions =
            Some(vec![PersistentVolumeClaimCondition {
                type_: "Resizing".into(),
                status: "True".into(),
                ..Default::default()
            }]);
        let patch = claim_patch(&old, &new, true);
        assert_eq!(patch["metadata"]["resourceVersion"], version, "{patch}");
        assert_eq!(
            patch["status"]["conditions"][0]["type"], "Resizing",
            "{patch}"
        );
        assert!(claim_patch(&old, &new, false).get("metadata").is_none());
    }
}

#[test]
fn test_merge_resize_conditions_of_pvc() {
    let cases = [
        (
            "should not remove previous non-resize conditions",
            vec![modify_progress()],
            vec![resize_pending()],
            vec![modify_progress(), resize_pending()],
            false,
        ),
        (
            "should not remove previous resize conditions if requested",
            vec![modify_progress()],
            vec![controller_resize_error()],
            vec![modify_progress(), controller_resize_error()],
            true,
        ),
        (
            "should not keep previous resize conditions of same type",
            vec![controller_resize_error()],
            vec![controller_resize_error2()],
            vec![controller_resize_error2()],
            true,
        ),
    ];
    for (name, old, new, expected, keep) in cases {
        assert_eq!(
            merge_resize_conditions(&old, &new, keep),
            expected,
            "{name}"
        );
    }
    // Old resize conditions go unless kept.
    assert_eq!(
        merge_resize_conditions(&[resize_pending()], &[], false),
        vec![]
    );
    assert_eq!(
        merge_resize_conditions(&[resize_pending()], &[], true),
        vec![resize_pending()]
    );
}

#[test]
fn test_merge_pvc_conditions() {
    let cases = [
        (
            "merge new into irrelevant",
            vec![resize_pending()],
            vec![modify_progress()],
            vec![resize_pending(), transit(modify_progress(), NOW)],
        ),
        (
            "no transition",
            vec![transit(modify_progress(), OLD), transit(infeasible(), OLD)],
            vec![infeasible()],
            vec![transit(modify_progress(), OLD), transit(infeasible(), OLD)],
        ),
        (
            "transit",
            vec![transit(modify_progress(), OLD), transit(infeasible(), OLD)],
            vec![timeout()],
            vec![transit(modify_progress(), OLD), transit(timeout(), NOW)],
        ),
        (
            "merge empty",
            vec![modify_progress()],
            vec![],
            vec![modify_progress()],
        ),
        (
            "merge new into empty",
            vec![],
            vec![modify_progress(), infeasible()],
            vec![transit(modify_progress(), NOW), transit(infeasible(), NOW)],
        ),
        ("noop", vec![], vec![], vec![]),
    ];
    for (name, old, new, expected) in cases {
        assert_eq!(merge_pvc_conditions(&old, &new), expected, "{name}");
    }
}

#[test]
fn error_classes() {
    use tonic::Code::*;
    for code in [
        Cancelled,
        DeadlineExceeded,
        Unavailable,
        ResourceExhausted,
        Aborted,
    ] {
        assert!(!is_final_error(Some(code)), "{code:?}");
    }
    assert!(!is_final_error(None));
    for code in [InvalidArgument, OutOfRange, NotFound] {
        assert!(
            is_final_error(Some(code)) && is_infeasible_error(Some(code)),
            "{code:?}"
        );
    }
    assert!(is_final_error(Some(Internal)) && !is_infeasible_error(Some(Internal)));
    assert!(is_in_use_error(Some(FailedPrecondition)) && !is_in_use_error(None));
}
