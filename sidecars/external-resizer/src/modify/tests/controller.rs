//! upstream's `controller_test.go`.

use std::sync::Arc;
use std::time::Duration;

use csi_kube::Change;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimStatus, PersistentVolumeSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::fakes::*;
use crate::modify::{ModifyConfig, ModifyError};

#[tokio::test]
async fn test_controller() {
    let base_pvc = create_test_pvc(PVC_NAME, TEST_VAC, TEST_VAC, "");
    let base_pv = base_pv();
    let mut first_time_pv = base_pv.clone();
    first_time_pv
        .spec
        .as_mut()
        .unwrap()
        .volume_attributes_class_name = None;
    let mut first_time_pvc = base_pvc.clone();
    first_time_pvc
        .status
        .as_mut()
        .unwrap()
        .current_volume_attributes_class_name = None;

    let cases = [
        (
            "Modify called",
            create_test_pvc(PVC_NAME, TARGET_VAC, TEST_VAC, TEST_VAC),
            base_pv.clone(),
            true,
        ),
        (
            "Nothing to modify",
            base_pvc.clone(),
            base_pv.clone(),
            false,
        ),
        ("First time modify", first_time_pvc, first_time_pv, true),
    ];
    for (name, pvc, pv, call_csi_modify) in cases {
        let env = setup(FakeDriver::new(true), objects(&pvc, &pv)).await;
        let pass = env.inner.modify(pvc, pv).await;
        assert!(
            pass.result.is_ok(),
            "{name}: unexpected error: {:?}",
            pass.result
        );
        assert_eq!(
            env.driver.modify_count() > 0,
            call_csi_modify,
            "{name}: csi modify calls: {}",
            env.driver.modify_count()
        );
    }
}

#[tokio::test]
async fn test_modify_pvc() {
    // upstream's mock returns a plain Go error; a driver can only answer with a status here.
    let cases = [
        ("Modify succeeded", None, false),
        (
            "Modify failed",
            Some(Status::unknown("fake modification error")),
            true,
        ),
    ];
    for (name, modify_failure, expect_failure) in cases {
        let pvc = create_test_pvc(PVC_NAME, TARGET_VAC, TEST_VAC, TEST_VAC);
        let driver = FakeDriver::new(true);
        driver.set_modify_error(modify_failure);
        let env = setup(driver, objects(&pvc, &base_pv())).await;
        let pass = env.inner.modify(pvc, base_pv()).await;
        assert_eq!(
            pass.result.is_err(),
            expect_failure,
            "{name}: {:?}",
            pass.result
        );
    }
}

#[tokio::test]
async fn test_sync_pvc() {
    let base_pvc = create_test_pvc(PVC_NAME, TARGET_VAC, TEST_VAC, TEST_VAC);
    let base_pv = base_pv();
    let mut other_driver_pv = base_pv.clone();
    other_driver_pv
        .spec
        .as_mut()
        .unwrap()
        .csi
        .as_mut()
        .unwrap()
        .driver = "some-other-driver".into();
    let mut unbound_pvc = base_pvc.clone();
    unbound_pvc.status.as_mut().unwrap().phase = Some("Pending".into());
    let mut pvc_with_uncreated_pv = base_pvc.clone();
    pvc_with_uncreated_pv.spec.as_mut().unwrap().volume_name = Some(String::new());
    let mut in_progress_pvc = create_test_pvc(PVC_NAME, "", "", TEST_VAC);
    in_progress_pvc
        .status
        .as_mut()
        .unwrap()
        .modify_volume_status
        .as_mut()
        .unwrap()
        .status = "InProgress".into();
    let non_csi_pvc = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(PVC_NAME.into()),
            namespace: Some(PVC_NAMESPACE.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            volume_attributes_class_name: Some(TARGET_VAC.into()),
            volume_name: Some(PV_NAME.into()),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            ..Default::default()
        }),
    };
    let non_csi_pv = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(PV_NAME.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec::default()),
        status: None,
    };

    let cases: Vec<(
        &str,
        Option<PersistentVolumeClaim>,
        Option<PersistentVolume>,
        bool,
    )> = vec![
        (
            "Should execute ModifyVolume operation when PVC's VAC changes",
            Some(base_pvc.clone()),
            Some(base_pv.clone()),
            true,
        ),
        (
            "Should NOT modify when rollback to empty VACName",
            Some(create_test_pvc(PVC_NAME, "", "", TEST_VAC)),
            Some(base_pv.clone()),
            false,
        ),
        (
            "Should NOT modify if PVC managed by another CSI Driver",
            Some(base_pvc.clone()),
            Some(other_driver_pv),
            false,
        ),
        (
            "Should execute ModifyVolume for InProgress target if PVC has empty Spec.VACName",
            Some(in_progress_pvc),
            Some(base_pv.clone()),
            true,
        ),
        ("Should NOT modify if PVC deleted", None, None, false),
        (
            "Should NOT modify if PVC not in bound state",
            Some(unbound_pvc),
            Some(base_pv.clone()),
            false,
        ),
        (
            "Should NOT modify if PVC's PV not created yet",
            Some(pvc_with_uncreated_pv),
            Some(base_pv.clone()),
            false,
        ),
        (
            "Should NOT modify if PV wasn't provisioned by CSI driver",
            Some(non_csi_pvc),
            Some(non_csi_pv),
            false,
        ),
    ];
    for (name, pvc, pv, call_csi_modify) in cases {
        let mut objs = vec![Obj::Vac(test_vac_object()), Obj::Vac(target_vac_object())];
        objs.extend(pvc.map(Obj::Pvc));
        objs.extend(pv.map(Obj::Pv));
        let env = setup(FakeDriver::new(true), objs).await;
        let result = env
            .inner
            .sync_pvc(&format!("{PVC_NAMESPACE}/{PVC_NAME}"))
            .await;
        assert!(result.is_ok(), "{name}: unexpected error: {result:?}");
        assert_eq!(
            env.driver.modify_count() > 0,
            call_csi_modify,
            "{name}: csi modify calls: {}",
            env.driver.modify_count()
        );
    }
}

/// The sidecar does not spam the driver after an infeasible error (an invalid class
/// parameter).
#[tokio::test]
async fn test_infeasible_retry() {
    let cases = [
        (
            "Should retry non-infeasible error normally",
            2,
            Status::internal("fake non-infeasible error"),
            false,
        ),
        (
            "Should NOT retry infeasible error normally",
            1,
            Status::invalid_argument("fake infeasible error"),
            false,
        ),
        (
            "Should EVENTUALLY retry infeasible error",
            2,
            Status::invalid_argument("fake infeasible error"),
            true,
        ),
    ];
    for (name, expected_calls, csi_error, eventually_remove) in cases {
        let pvc = create_test_pvc(PVC_NAME, TARGET_VAC, TEST_VAC, TEST_VAC);
        let driver = FakeDriver::new(true);
        driver.set_modify_error(Some(csi_error.clone()));
        let env = setup(driver, objects(&pvc, &base_pv())).await;
        let key = format!("{PVC_NAMESPACE}/{PVC_NAME}");

        let first = env.inner.sync_pvc(&key).await.unwrap_err();
        assert_eq!(
            status_of(&first),
            Some(same_status(&csi_error)),
            "{name}: first"
        );
        if csi_error.code() == tonic::Code::InvalidArgument {
            // What upstream waits for in its informer: the PVC Infeasible towards target-vac.
            let cached = env.cluster.claim_now(PVC_NAMESPACE, PVC_NAME).unwrap();
            let status = cached.status.unwrap().modify_volume_status.unwrap();
            assert_eq!(status.status, "Infeasible", "{name}");
            assert_eq!(
                status.target_volume_attributes_class_name.as_deref(),
                Some(TARGET_VAC)
            );
        }
        if eventually_remove {
            // Time passing.
            env.inner.slow_set.remove(&key);
        }

        let second = env.inner.sync_pvc(&key).await.unwrap_err();
        match expected_calls {
            1 => assert!(
                matches!(second, ModifyError::DelayRetry { try_after, .. } if try_after > Duration::ZERO),
                "{name}: second: {second:?}"
            ),
            _ => assert_eq!(
                status_of(&second),
                Some(same_status(&csi_error)),
                "{name}: second"
            ),
        }
        assert_eq!(
            env.driver.modify_count(),
            expected_calls,
            "{name}: csi modify calls"
        );
    }
}

/// Races in the controller: ten uncertain PVCs handled by three workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_concurrent_sync() {
    // "uncertain"
    let driver = FakeDriver::new(true);
    driver.set_modify_error(Some(non_final_err()));
    let mut objs = vec![Obj::Vac(test_vac_object()), Obj::Vac(target_vac_object())];
    let mut pvcs = Vec::new();
    for i in 0..10 {
        let pvc = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(format!("foo-{i}")),
                namespace: Some(PVC_NAMESPACE.into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                volume_attributes_class_name: Some(TEST_VAC.into()),
                volume_name: Some(format!("testPV-{i}")),
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: Some("Bound".into()),
                ..Default::default()
            }),
        };
        pvcs.push(pvc.clone());
        objs.push(Obj::Pvc(pvc));
        objs.push(Obj::Pv(PersistentVolume {
            metadata: ObjectMeta {
                name: Some(format!("testPV-{i}")),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                csi: Some(CSIPersistentVolumeSource {
                    driver: TEST_DRIVER.into(),
                    volume_handle: format!("foo-{i}"),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        }));
    }
    let mut config = ModifyConfig::new(TEST_DRIVER);
    config.workers = 3;
    config.retry_interval_start = Duration::from_millis(5);
    let env = setup_with(driver, objs, config).await;
    let shutdown = CancellationToken::new();
    let changes = futures::stream::iter(pvcs.into_iter().map(|p| Change::Added(Arc::new(p))))
        .chain(futures::stream::pending());
    let run = tokio::spawn(crate::modify::run_loop(
        env.inner.clone(),
        changes,
        shutdown.clone(),
    ));
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while env.driver.modify_count() < 30 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    shutdown.cancel();
    run.await.unwrap();
    assert!(
        waited.is_ok(),
        "only {} csi modify calls",
        env.driver.modify_count()
    );
    // Every PVC is uncertain, InProgress towards test-vac.
    for i in 0..10 {
        let pvc = env
            .cluster
            .claim_now(PVC_NAMESPACE, &format!("foo-{i}"))
            .unwrap();
        let status = pvc.status.unwrap().modify_volume_status.unwrap();
        assert_eq!(status.status, "InProgress");
        assert_eq!(
            status.target_volume_attributes_class_name.as_deref(),
            Some(TEST_VAC)
        );
    }
    assert_eq!(
        crate::modify::controller::lock(&env.inner.uncertain).len(),
        10
    );
}

use futures::StreamExt as _;
