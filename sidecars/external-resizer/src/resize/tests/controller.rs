//! `pkg/controller/controller_test.go`: `TestController` (20) and `TestResizePVC` (3).

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::fakes::{FakeCluster, FakeDriver, NS, create_pv, create_pvc, setup};
use crate::resize::csi::CsiError;
use crate::resize::inuse::{ClaimSource, ClaimVolume, PodClaims, PodClaimsSpec, PodClaimsStatus};
use crate::resize::util::{ANN_PRE_RESIZE_CAPACITY, requested_size};

#[derive(Default)]
struct Case {
    name: &'static str,
    pvc: Option<PersistentVolumeClaim>,
    pv: Option<PersistentVolume>,
    create_objects: bool,
    node_resize: bool,
    call_csi_expand: bool,
    expect_block_volume: bool,
    expect_delete_annotation: bool,
    pvc_in_use: bool,
    pvc_has_in_use_errors: bool,
    disable_volume_in_use_error_handler: bool,
    enable_fs_resize_annotation: bool,
}

fn invalid_pvc() -> PersistentVolumeClaim {
    let mut claim = create_pvc(1, 1);
    claim.metadata.name = Some(String::new());
    claim.metadata.namespace = Some(String::new());
    claim
}

/// upstream's `withPVC(name, pod())`.
pub fn pod_with_claim(claim: &str) -> PodClaims {
    PodClaims {
        metadata: ObjectMeta {
            name: Some("pod1".into()),
            namespace: Some(NS.into()),
            uid: Some("uid1".into()),
            ..Default::default()
        },
        spec: PodClaimsSpec {
            volumes: vec![ClaimVolume {
                persistent_volume_claim: ClaimSource {
                    claim_name: claim.into(),
                },
            }],
        },
        status: PodClaimsStatus {
            phase: Some("Pending".into()),
        },
    }
}

fn cases() -> Vec<Case> {
    let fs = "Filesystem";
    let block = "Block";
    vec![
        Case {
            name: "Invalid key",
            pvc: Some(invalid_pvc()),
            ..Default::default()
        },
        Case {
            name: "PVC not found",
            pvc: Some(create_pvc(1, 1)),
            ..Default::default()
        },
        Case {
            name: "PVC doesn't need resize",
            pvc: Some(create_pvc(1, 1)),
            create_objects: true,
            ..Default::default()
        },
        Case {
            name: "PV not found",
            pvc: Some(create_pvc(2, 1)),
            create_objects: true,
            ..Default::default()
        },
        Case {
            name: "pv claimref does not have pvc UID",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobaz", fs)),
            ..Default::default()
        },
        Case {
            name: "pv claimref does not have PVC namespace",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", "test1", "foobar", fs)),
            ..Default::default()
        },
        Case {
            name: "pv claimref is nil",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "", "test1", "foobar", fs)),
            ..Default::default()
        },
        Case {
            name: "Resize PVC, no FS resize",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobar", fs)),
            create_objects: true,
            call_csi_expand: true,
            ..Default::default()
        },
        Case {
            name: "Resize PVC with FS resize",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobar", fs)),
            create_objects: true,
            node_resize: true,
            call_csi_expand: true,
            ..Default::default()
        },
        Case {
            name: "PV nodeExpand Complete",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobar", fs)),
            create_objects: true,
            node_resize: true,
            call_csi_expand: true,
            expect_delete_annotation: true,
            enable_fs_resize_annotation: true,
            ..Default::default()
        },
        Case {
            name: "Block Resize PVC with FS resize",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobar", block)),
            create_objects: true,
            node_resize: true,
            call_csi_expand: true,
            expect_block_volume: true,
            ..Default::default()
        },
        Case {
            name: "Resize PVC, no FS resize, pvc-inuse with failedprecondition",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobar", fs)),
            create_objects: true,
            call_csi_expand: false,
            pvc_has_in_use_errors: true,
            pvc_in_use: true,
            ..Default::default()
        },
        Case {
            name: "Resize PVC, no FS resize, pvc-inuse but no failedprecondition error",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobar", fs)),
            create_objects: true,
            call_csi_expand: true,
            pvc_in_use: true,
            ..Default::default()
        },
        Case {
            name: "Resize PVC, no FS resize, pvc not in-use but has failedprecondition error",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobar", fs)),
            create_objects: true,
            call_csi_expand: true,
            pvc_has_in_use_errors: true,
            ..Default::default()
        },
        Case {
            name: "With volume-in-use error handler disabled, Resize PVC, no FS resize, pvc-inuse with failedprecondition",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobar", fs)),
            create_objects: true,
            call_csi_expand: true,
            pvc_has_in_use_errors: true,
            pvc_in_use: true,
            disable_volume_in_use_error_handler: true,
            ..Default::default()
        },
        Case {
            name: "With volume-in-use error handler disabled, Resize PVC, no FS resize, pvc-inuse but no failedprecondition error",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobar", fs)),
            create_objects: true,
            call_csi_expand: true,
            pvc_in_use: true,
            disable_volume_in_use_error_handler: true,
            ..Default::default()
        },
        Case {
            name: "With volume-in-use error handler disabled, Resize PVC, no FS resize, pvc not in-use but has failedprecondition error",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobar", fs)),
            create_objects: true,
            call_csi_expand: true,
            pvc_has_in_use_errors: true,
            disable_volume_in_use_error_handler: true,
            ..Default::default()
        },
        Case {
            name: "With volume-in-use error handler disabled, Block Resize PVC with FS resize",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobar", block)),
            create_objects: true,
            node_resize: true,
            call_csi_expand: true,
            expect_block_volume: true,
            disable_volume_in_use_error_handler: true,
            ..Default::default()
        },
        Case {
            name: "With volume-in-use error handler disabled, Resize PVC with FS resize",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobar", fs)),
            create_objects: true,
            node_resize: true,
            call_csi_expand: true,
            disable_volume_in_use_error_handler: true,
            ..Default::default()
        },
        Case {
            name: "With volume-in-use error handler disabled, Resize PVC, no FS resize",
            pvc: Some(create_pvc(2, 1)),
            pv: Some(create_pv(1, "testPVC", NS, "foobar", fs)),
            create_objects: true,
            call_csi_expand: true,
            disable_volume_in_use_error_handler: true,
            ..Default::default()
        },
    ]
}

#[tokio::test]
async fn test_controller() {
    let cases = cases();
    assert_eq!(cases.len(), 20);
    for test in cases {
        let name = test.name;
        let driver = FakeDriver::new(test.node_resize, true, true, true);
        let cluster = FakeCluster::new();
        let claim = test.pvc.clone().unwrap();
        if test.create_objects {
            cluster.add_claim(claim.clone());
            if let Some(pv) = &test.pv {
                cluster.add_volume(pv.clone());
            }
        }
        let s = setup("foo", driver.clone(), cluster.clone()).await;
        if test.pvc_in_use && !test.disable_volume_in_use_error_handler {
            // The Pod watch runs only with the handler on.
            s.in_use.add_pod(&pod_with_claim("testPVC"));
        }
        if test.pvc_has_in_use_errors {
            s.in_use.add_claim_with_in_use_error("foobar");
            assert!(s.in_use.has_in_use_errors("foobar"), "{name}");
        }
        let key = csi_kube::key_of(&claim);
        let _ = s.reconciler.sync_pvc(&key).await;
        // A second pass, as the update events of the first would start.
        let _ = s.reconciler.sync_pvc(&key).await;

        let count = driver.expand_count();
        assert_eq!(
            count > 0,
            test.call_csi_expand,
            "{name}: expand calls {count}"
        );
        if test.call_csi_expand {
            let capability = driver.capability.lock().unwrap().clone().unwrap();
            let is_block = matches!(
                capability.access_type,
                Some(csi_proto::csi::v1::volume_capability::AccessType::Block(_))
            );
            assert_eq!(is_block, test.expect_block_volume, "{name}: {capability:?}");
        }
        if test.create_objects && test.node_resize && test.call_csi_expand {
            let pv = cluster.volume_now("testPV").unwrap();
            let annotation = pv
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_PRE_RESIZE_CAPACITY));
            assert_eq!(annotation.map(String::as_str), Some("1Gi"), "{name}");
        }
        if test.enable_fs_resize_annotation && test.expect_delete_annotation {
            // The node finished: the claim's capacity reached the request.
            let now = cluster.claim_now(&key).unwrap();
            let request = requested_size(&now).cloned().unwrap();
            s.reconciler
                .mark_overall_expansion_as_finished(&now, &request)
                .await
                .unwrap();
            s.reconciler.sync_pvc(&key).await.unwrap();
            let pv = cluster.volume_now("testPV").unwrap();
            assert!(
                pv.metadata
                    .annotations
                    .as_ref()
                    .is_none_or(|a| !a.contains_key(ANN_PRE_RESIZE_CAPACITY)),
                "{name}: expected annotation {ANN_PRE_RESIZE_CAPACITY} to be gone: {:?}",
                pv.metadata.annotations
            );
        }
    }
}

#[tokio::test]
async fn test_resize_pvc() {
    let conflict = "Operation cannot be fulfilled on persistentvolumeclaims \"testPVC\": the object has been modified; please apply your changes to the latest version and try again";
    let cases: [(&str, Option<CsiError>, bool, Vec<&str>); 3] = [
        (
            "Resize PVC with FS resize",
            None,
            false,
            vec![
                "Normal Resizing External resizer is resizing volume testPV",
                "Normal FileSystemResizeRequired Require file system resize of volume on node",
            ],
        ),
        (
            "Resize PVC with FS resize failure",
            Some(CsiError::Other("expansion failed".into())),
            true,
            vec![
                "Normal Resizing External resizer is resizing volume testPV",
                "Warning VolumeResizeFailed resize volume \"testPV\" by resizer \"mock\" failed: expansion failed",
            ],
        ),
        (
            // v2.3.0: expandAndRecover records every failure (see the module doc).
            "Resize PVC with resource version conflict should not emit event",
            Some(CsiError::Other(conflict.into())),
            true,
            vec!["Normal Resizing External resizer is resizing volume testPV"],
        ),
    ];
    for (name, error, expect_failure, mut expected_events) in cases {
        let driver = FakeDriver::new(true, true, true, true);
        if let Some(error) = &error {
            driver.set_expansion_error(error.clone());
        }
        let cluster = FakeCluster::new();
        let claim = create_pvc(2, 1);
        let mut pv = create_pv(1, "testPVC", NS, "foobar", "Filesystem");
        pv.spec.as_mut().unwrap().csi.as_mut().unwrap().driver = "mock".into();
        cluster.add_claim(claim.clone());
        cluster.add_volume(pv.clone());
        let s = setup("mock", driver, cluster.clone()).await;
        let outcome = s.reconciler.expand_and_recover(&claim, &pv).await;
        assert_eq!(
            outcome.result.is_err(),
            expect_failure,
            "{name}: {:?}",
            outcome.result
        );
        if !expect_failure {
            let pv = cluster.volume_now("testPV").unwrap();
            let annotation = pv
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_PRE_RESIZE_CAPACITY));
            assert_eq!(annotation.map(String::as_str), Some("1Gi"), "{name}");
        }
        let conflict_event = format!(
            "Warning VolumeResizeFailed resize volume \"testPV\" by resizer \"mock\" failed: {conflict}"
        );
        if name.contains("conflict") {
            expected_events.push(&conflict_event);
        }
        assert_eq!(s.events.lines(), expected_events, "{name}");
    }
}
