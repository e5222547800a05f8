//! upstream's `modify_volume_test.go`.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::ModifyVolumeStatus;

use super::fakes::*;
use crate::modify::controller::lock;

#[tokio::test]
async fn test_modify() {
    let base_pvc = create_test_pvc(PVC_NAME, TEST_VAC, TEST_VAC, "");
    let base_pv = base_pv();
    let params = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    struct Case {
        name: &'static str,
        pvc: k8s_openapi::api::core::v1::PersistentVolumeClaim,
        vac_exists: bool,
        expect_modify_call: bool,
        expected_modify_volume_status: Option<ModifyVolumeStatus>,
        expected_current: &'static str,
        expected_pv_vac: &'static str,
        with_extra_metadata: bool,
        expected_mutable_params: Option<HashMap<String, String>>,
    }
    let cases = [
        Case {
            name: "nothing to modify",
            pvc: base_pvc.clone(),
            vac_exists: false,
            expect_modify_call: false,
            expected_modify_volume_status: None,
            expected_current: TEST_VAC,
            expected_pv_vac: TEST_VAC,
            with_extra_metadata: false,
            expected_mutable_params: None,
        },
        Case {
            name: "vac does not exist, no modification and set ModifyVolumeStatus to pending",
            pvc: create_test_pvc(PVC_NAME, TARGET_VAC, TEST_VAC, "whatever"),
            vac_exists: false,
            expect_modify_call: false,
            expected_modify_volume_status: Some(ModifyVolumeStatus {
                target_volume_attributes_class_name: Some("whatever".into()),
                status: "Pending".into(),
            }),
            expected_current: TEST_VAC,
            expected_pv_vac: TEST_VAC,
            with_extra_metadata: false,
            expected_mutable_params: None,
        },
        Case {
            name: "modify volume success",
            pvc: create_test_pvc(PVC_NAME, TARGET_VAC, TEST_VAC, TEST_VAC),
            vac_exists: true,
            expect_modify_call: true,
            expected_modify_volume_status: None,
            expected_current: TARGET_VAC,
            expected_pv_vac: TARGET_VAC,
            with_extra_metadata: false,
            expected_mutable_params: Some(params(&[("iops", "4567")])),
        },
        Case {
            name: "modify volume success with extra metadata",
            pvc: create_test_pvc(PVC_NAME, TARGET_VAC, TEST_VAC, TEST_VAC),
            vac_exists: true,
            expect_modify_call: true,
            expected_modify_volume_status: None,
            expected_current: TARGET_VAC,
            expected_pv_vac: TARGET_VAC,
            with_extra_metadata: true,
            expected_mutable_params: Some(params(&[
                ("iops", "4567"),
                ("csi.storage.k8s.io/pvc/name", PVC_NAME),
                ("csi.storage.k8s.io/pvc/namespace", PVC_NAMESPACE),
                ("csi.storage.k8s.io/pv/name", "testPV"),
            ])),
        },
    ];
    for case in cases {
        let name = case.name;
        let mut objs = vec![
            Obj::Pvc(case.pvc.clone()),
            Obj::Pv(base_pv.clone()),
            Obj::Vac(test_vac_object()),
        ];
        if case.vac_exists {
            objs.push(Obj::Vac(target_vac_object()));
        }
        let mut config = crate::modify::ModifyConfig::new(TEST_DRIVER);
        config.extra_modify_metadata = case.with_extra_metadata;
        let env = setup_with(FakeDriver::new(true), objs, config).await;

        let pass = env.inner.modify(case.pvc, base_pv.clone()).await;
        assert!(
            pass.result.is_ok(),
            "{name}: modify failed with {:?}",
            pass.result
        );
        assert_eq!(
            pass.modified, case.expect_modify_call,
            "{name}: modify called"
        );
        let status = pass.pvc.status.as_ref().unwrap();
        assert_eq!(
            status.modify_volume_status, case.expected_modify_volume_status,
            "{name}: modify volume status"
        );
        assert_eq!(
            status.current_volume_attributes_class_name.as_deref(),
            Some(case.expected_current),
            "{name}: current class"
        );
        assert_eq!(
            pass.pv
                .spec
                .as_ref()
                .unwrap()
                .volume_attributes_class_name
                .as_deref(),
            Some(case.expected_pv_vac),
            "{name}: PV class"
        );
        if let Some(expected) = case.expected_mutable_params {
            assert_eq!(
                env.driver.modified_parameters(),
                expected,
                "{name}: parameters"
            );
        }
    }
}

#[tokio::test]
async fn test_modify_uncertain() {
    let mut base_pvc = create_test_pvc(PVC_NAME, TARGET_VAC, TEST_VAC, TARGET_VAC);
    base_pvc
        .status
        .as_mut()
        .unwrap()
        .modify_volume_status
        .as_mut()
        .unwrap()
        .status = "InProgress".into();
    let driver = FakeDriver::new(true);
    let env = setup(driver.clone(), objects(&base_pvc, &base_pv())).await;
    let key = format!("{PVC_NAMESPACE}/{PVC_NAME}");
    let is_uncertain = || lock(&env.inner.uncertain).contains(&key);

    assert!(is_uncertain(), "initialized to uncertain");

    driver.set_modify_error(Some(final_err()));
    let pass = env.inner.modify(base_pvc, base_pv()).await;
    let err = pass.result.unwrap_err();
    assert_eq!(status_of(&err), Some(same_status(&final_err())));
    assert!(!is_uncertain(), "a final error clears the uncertain state");

    driver.set_modify_error(Some(non_final_err()));
    let pass = env.inner.modify(pass.pvc, pass.pv).await;
    let err = pass.result.unwrap_err();
    assert_eq!(status_of(&err), Some(same_status(&non_final_err())));
    assert!(is_uncertain(), "a non-final error makes it uncertain again");

    let mut pvc = pass.pvc;
    pvc.spec.as_mut().unwrap().volume_attributes_class_name = Some("yet-another-vac".into());
    let pass = env.inner.modify(pvc, pass.pv).await;
    let err = pass.result.unwrap_err();
    assert_eq!(status_of(&err), Some(same_status(&non_final_err())));
    // The target does not change: yet-another-vac is ignored.
    assert_eq!(
        pass.pvc
            .status
            .unwrap()
            .modify_volume_status
            .unwrap()
            .target_volume_attributes_class_name
            .as_deref(),
        Some(TARGET_VAC)
    );
}

#[tokio::test]
async fn test_cancel() {
    let mut base_pvc = create_test_pvc(PVC_NAME, "", TEST_VAC, TARGET_VAC);
    let status = base_pvc.status.as_mut().unwrap();
    status.modify_volume_status.as_mut().unwrap().status = "InProgress".into();
    status.conditions = Some(vec![cond("ModifyingVolume", "", "")]);
    let driver = FakeDriver::new(true);
    let env = setup(driver.clone(), objects(&base_pvc, &base_pv())).await;

    driver.set_modify_error(Some(infeasible_err()));
    // InProgress, so still tried.
    let pass = env.inner.modify(base_pvc, base_pv()).await;
    let err = pass.result.unwrap_err();
    assert_eq!(status_of(&err), Some(same_status(&infeasible_err())));
    // Infeasible now: cancelled.
    let pass = env.inner.modify(pass.pvc, pass.pv).await;
    assert!(
        pass.result.is_ok(),
        "expected modify cancelled, got {:?}",
        pass.result
    );
    let conditions = pass.pvc.status.unwrap().conditions.unwrap_or_default();
    assert!(
        !conditions.iter().any(|c| c.type_ == "ModifyingVolume"),
        "expected modify volume condition to be cleared, got {conditions:?}"
    );
    assert_eq!(driver.modify_count(), 1);
}
