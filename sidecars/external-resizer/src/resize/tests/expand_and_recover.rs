//! `pkg/controller/expand_and_recover_test.go`: `TestExpandAndRecover` (13) and
//! `TestExpandAndRecoverConcurrent`. Upstream turns the (now removed)
//! `RecoverVolumeExpansionFailure` gate on for them; the expectations are unchanged.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use tonic::{Code, Status};

use super::fakes::{FakeCluster, FakeDriver, NS, create_pv, get_test_pvc, q, setup};
use crate::resize::csi::CsiError;
use crate::resize::util::{
    ANN_NODE_EXPANSION_NOT_REQUIRED, allocated_size, cmp_quantity, conditions::*, resize_status,
};

struct Case {
    name: &'static str,
    pvc: PersistentVolumeClaim,
    pv: PersistentVolume,
    disable_node_expansion: bool,
    disable_controller_expansion: bool,
    expected_resize_status: &'static str,
    expected_allocated_size: &'static str,
    expect_node_expansion_not_required_annotation: bool,
    final_error: bool,
    expansion_error: Option<Code>,
    expect_resize_call: bool,
}

fn case(name: &'static str, pvc: PersistentVolumeClaim, pv: PersistentVolume) -> Case {
    Case {
        name,
        pvc,
        pv,
        disable_node_expansion: false,
        disable_controller_expansion: false,
        expected_resize_status: "",
        expected_allocated_size: "",
        expect_node_expansion_not_required_annotation: false,
        final_error: false,
        expansion_error: None,
        expect_resize_call: false,
    }
}

fn pv(capacity: i64) -> PersistentVolume {
    create_pv(capacity, "claim01", NS, "test-uid", "Filesystem")
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            expected_resize_status: NODE_RESIZE_PENDING,
            expected_allocated_size: "2G",
            expect_resize_call: true,
            ..case(
                "pvc.spec.size > pv.spec.size, resize_status=node_expansion_inprogress",
                get_test_pvc("test-vol0", "2G", "1G", "", ""),
                pv(1),
            )
        },
        Case {
            expected_resize_status: NODE_RESIZE_PENDING,
            expected_allocated_size: "1G",
            expect_resize_call: true,
            ..case(
                "pvc.spec.size = pv.spec.size, resize_status=no_expansion_inprogress",
                get_test_pvc("test-vol0", "1G", "1G", "", ""),
                pv(1),
            )
        },
        Case {
            expected_resize_status: NODE_RESIZE_PENDING,
            expected_allocated_size: "5G",
            expect_resize_call: true,
            ..case(
                "pvc.spec.size > pv.spec.size, resize_status=controller_expansion_infeasible",
                get_test_pvc("test-vol0", "5G", "3G", "10G", CONTROLLER_RESIZE_INFEASIBLE),
                pv(3),
            )
        },
        Case {
            final_error: true,
            expected_resize_status: NODE_RESIZE_PENDING,
            expected_allocated_size: "5G",
            expect_resize_call: true,
            ..case(
                "pvc.spec.size > pv.spec.size, resize_status=controller_expansion_fail(final, but feasible)",
                get_test_pvc(
                    "test-vol0",
                    "5G",
                    "3G",
                    "10G",
                    CONTROLLER_RESIZE_IN_PROGRESS,
                ),
                pv(3),
            )
        },
        Case {
            final_error: true,
            expansion_error: Some(Code::FailedPrecondition),
            expected_resize_status: CONTROLLER_RESIZE_IN_PROGRESS,
            expected_allocated_size: "5G",
            expect_resize_call: true,
            ..case(
                "pvc.spec.size > pv.spec.size, resize_status=controller_expansion_fail(final, but feasible), retry fail with final error",
                get_test_pvc(
                    "test-vol0",
                    "5G",
                    "3G",
                    "10G",
                    CONTROLLER_RESIZE_IN_PROGRESS,
                ),
                pv(3),
            )
        },
        Case {
            final_error: true,
            expansion_error: Some(Code::InvalidArgument),
            expected_resize_status: CONTROLLER_RESIZE_INFEASIBLE,
            expected_allocated_size: "5G",
            expect_resize_call: true,
            ..case(
                "pvc.spec.size > pv.spec.size, resize_status=controller_expansion_fail(final, but feasible), retry fail with infeasible error",
                get_test_pvc(
                    "test-vol0",
                    "5G",
                    "3G",
                    "10G",
                    CONTROLLER_RESIZE_IN_PROGRESS,
                ),
                pv(3),
            )
        },
        Case {
            expected_resize_status: NODE_RESIZE_PENDING,
            expected_allocated_size: "10G",
            expect_resize_call: true,
            ..case(
                "pvc.spec.size > pv.spec.size, resize_status=controller_expansion_inprogress",
                get_test_pvc(
                    "test-vol0",
                    "5G",
                    "3G",
                    "10G",
                    CONTROLLER_RESIZE_IN_PROGRESS,
                ),
                pv(3),
            )
        },
        Case {
            disable_controller_expansion: true,
            expected_resize_status: NODE_RESIZE_PENDING,
            expected_allocated_size: "5G",
            expect_resize_call: true,
            ..case(
                "pvc.spec.size = pv.spec.size, resize_status=node_expansion_infeasible, disable_controller_expansion=true",
                get_test_pvc("test-vol0", "5G", "3G", "10G", NODE_RESIZE_INFEASIBLE),
                pv(10),
            )
        },
        Case {
            expected_resize_status: NODE_RESIZE_PENDING,
            expected_allocated_size: "1G",
            expect_resize_call: false,
            ..case(
                "pvc.spec.size = pv.spec.size, resize_status=node_expansion_pending",
                get_test_pvc("test-vol0", "1G", "1G", "1G", NODE_RESIZE_PENDING),
                pv(1),
            )
        },
        Case {
            disable_node_expansion: true,
            expected_resize_status: "",
            expect_node_expansion_not_required_annotation: true,
            expected_allocated_size: "2G",
            expect_resize_call: true,
            ..case(
                "pvc.spec.size > pv.spec.size, disable_node_expansion=true, resize_status=no_expansion_inprogress",
                get_test_pvc("test-vol0", "2G", "1G", "", ""),
                pv(1),
            )
        },
        Case {
            expected_resize_status: NODE_RESIZE_PENDING,
            expected_allocated_size: "2G",
            expect_resize_call: true,
            ..case(
                "pv.spec.size >= pvc.spec.size, resize_status=node_expansion_failed",
                get_test_pvc("test-vol0", "2G", "1G", "2G", NODE_RESIZE_INFEASIBLE),
                pv(2),
            )
        },
        Case {
            expected_resize_status: NODE_RESIZE_PENDING,
            expected_allocated_size: "3G",
            expect_resize_call: false,
            ..case(
                "pvc.spec.size > pv.spec.size, resize_status-node_expansion_pending",
                get_test_pvc("test-vol0", "10G", "1G", "3G", NODE_RESIZE_PENDING),
                pv(3),
            )
        },
        Case {
            expected_resize_status: NODE_RESIZE_IN_PROGRESS,
            expected_allocated_size: "3G",
            expect_resize_call: false,
            ..case(
                "pvc.spec.size > pv.spec.size, resize_status-node_expansion_inprogress",
                get_test_pvc("test-vol0", "10G", "1G", "3G", NODE_RESIZE_IN_PROGRESS),
                pv(3),
            )
        },
    ]
}

#[tokio::test]
async fn test_expand_and_recover() {
    let cases = cases();
    assert_eq!(cases.len(), 13);
    for test in cases {
        let name = test.name;
        let driver = FakeDriver::new(
            !test.disable_node_expansion,
            !test.disable_controller_expansion,
            true,
            true,
        );
        if let Some(code) = test.expansion_error {
            driver.set_expansion_error(CsiError::Status(Status::new(code, "something broke")));
        }
        let cluster = FakeCluster::new();
        cluster.add_claim(test.pvc.clone());
        cluster.add_volume(test.pv.clone());
        let s = setup("foo", driver, cluster).await;
        if test.final_error {
            s.reconciler.add_final_error("default/claim01");
        }
        let outcome = s.reconciler.expand_and_recover(&test.pvc, &test.pv).await;
        if test.expansion_error.is_none() {
            assert!(
                outcome.result.is_ok(),
                "{name}: expansion failed with {:?}",
                outcome.result
            );
        }
        assert_eq!(
            outcome.resize_called, test.expect_resize_call,
            "{name}: resize called"
        );
        assert_eq!(
            resize_status(&outcome.claim),
            test.expected_resize_status,
            "{name}: resize status"
        );
        let annotated = outcome
            .claim
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(ANN_NODE_EXPANSION_NOT_REQUIRED));
        assert_eq!(
            annotated, test.expect_node_expansion_not_required_annotation,
            "{name}: annotation"
        );
        assert!(
            cmp_quantity(
                allocated_size(&outcome.claim),
                Some(&q(test.expected_allocated_size))
            )
            .is_eq(),
            "{name}: expected allocated size {}, got {:?}",
            test.expected_allocated_size,
            allocated_size(&outcome.claim)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_expand_and_recover_concurrent() {
    let driver = FakeDriver::new(true, true, true, true);
    driver.set_expansion_error(CsiError::Status(Status::new(
        Code::Internal,
        "simulated volume not found error",
    )));
    let cluster = FakeCluster::new();
    let mut objects = Vec::new();
    for i in 0..20 {
        let mut claim = get_test_pvc(&format!("test-pv-{i}"), "2Gi", "1Gi", "", "");
        claim.metadata.name = Some(format!("test-pvc-{i}"));
        claim.metadata.uid = Some(format!("test-pvc-{i}-uid"));
        let mut pv = create_pv(
            1,
            &format!("test-pvc-{i}"),
            NS,
            &format!("test-pvc-{i}-uid"),
            "Filesystem",
        );
        pv.metadata.name = Some(format!("test-pv-{i}"));
        pv.spec.as_mut().unwrap().csi.as_mut().unwrap().driver = "mock-driver".into();
        cluster.add_claim(claim.clone());
        cluster.add_volume(pv.clone());
        objects.push((claim, pv));
    }
    let s = Arc::new(setup("mock-driver", driver.clone(), cluster).await);
    let objects = Arc::new(objects);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..100 {
        let s = s.clone();
        let objects = objects.clone();
        tasks.spawn(async move {
            let (claim, pv) = &objects[worker % 20];
            s.reconciler.expand_and_recover(claim, pv).await
        });
    }
    let mut failed = 0;
    while let Some(outcome) = tasks.join_next().await {
        if outcome.unwrap().result.is_err() {
            failed += 1;
        }
    }
    // Every call failed (the expansion or, for stale copies, the claim patch), none hung.
    assert_eq!(failed, 100);
    assert!(driver.expand_count() >= 20);
}
