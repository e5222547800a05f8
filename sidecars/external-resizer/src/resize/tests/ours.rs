//! Behaviour upstream's tables do not cover: which claim updates queue a key, the compact Pod
//! decoding, the slow retry of an infeasible expansion, recovery by lowering the request, and
//! the patches sent.

use serde_json::json;
use tonic::{Code, Status};

use super::fakes::{FakeCluster, FakeDriver, NS, create_pv, get_test_pvc, q, setup};
use crate::resize::controller::{SyncError, should_enqueue_update};
use crate::resize::csi::CsiError;
use crate::resize::inuse::PodClaims;
use crate::resize::util::{ANN_VOLUME_RESIZER, allocated_size, conditions::*, resize_status};

#[test]
fn claim_updates_that_queue_the_claim() {
    let old = get_test_pvc("v", "2G", "1G", "", "");
    let mut new = old.clone();
    new.metadata.resource_version = Some("2".into());
    assert!(!should_enqueue_update(&old, &new), "a label-only change");
    assert!(should_enqueue_update(&old, &old), "a resync");
    let mut grown = new.clone();
    grown
        .spec
        .as_mut()
        .unwrap()
        .resources
        .as_mut()
        .unwrap()
        .requests = Some([("storage".to_string(), q("3G"))].into());
    assert!(should_enqueue_update(&old, &grown), "request grew");
    let mut shrunk = new.clone();
    shrunk
        .spec
        .as_mut()
        .unwrap()
        .resources
        .as_mut()
        .unwrap()
        .requests = Some([("storage".to_string(), q("1500M"))].into());
    assert!(
        should_enqueue_update(&old, &shrunk),
        "request lowered (recovery)"
    );
    let mut capacity = new.clone();
    capacity.status.as_mut().unwrap().capacity = Some([("storage".to_string(), q("2G"))].into());
    assert!(should_enqueue_update(&old, &capacity), "capacity grew");
    let mut status = new.clone();
    status.status.as_mut().unwrap().allocated_resource_statuses =
        Some([("storage".to_string(), NODE_RESIZE_INFEASIBLE.to_string())].into());
    assert!(
        should_enqueue_update(&old, &status),
        "resize status changed"
    );
    let mut annotated = new.clone();
    annotated.metadata.annotations =
        Some([(ANN_VOLUME_RESIZER.to_string(), "foo".to_string())].into());
    assert!(
        should_enqueue_update(&old, &annotated),
        "resizer annotation changed"
    );
}

#[test]
fn a_pod_is_decoded_to_its_claims_and_phase_only() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
            "labels": {"app": "x"}, "annotations": {"big": "x".repeat(10000)}},
        "spec": {
            "containers": [{"name": "c", "image": "i", "env": [{"name": "A", "value": "x".repeat(10000)}]}],
            "volumes": [
                {"name": "a", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "b", "configMap": {"name": "cm"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "logs", "readOnly": true}}
            ]
        },
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    });
    let decoded: PodClaims = serde_json::from_value(pod).unwrap();
    assert_eq!(decoded.claim_names().collect::<Vec<_>>(), ["data", "logs"]);
    assert!(!decoded.is_terminated());
    let stored = serde_json::to_string(&decoded).unwrap();
    assert!(stored.len() < 250, "{} bytes: {stored}", stored.len());
    // What the cache stores decodes to the same.
    assert_eq!(serde_json::from_str::<PodClaims>(&stored).unwrap(), decoded);
}

#[tokio::test]
async fn an_infeasible_expansion_waits_and_a_lowered_request_recovers() {
    let driver = FakeDriver::new(false, true, true, true);
    driver.set_expansion_error(CsiError::Status(Status::new(Code::OutOfRange, "too big")));
    let cluster = FakeCluster::new();
    let claim = get_test_pvc("testPV", "10G", "1G", "", "");
    let mut pv = create_pv(1, "claim01", NS, "test-uid", "Filesystem");
    pv.metadata.name = Some("testPV".into());
    cluster.add_claim(claim);
    cluster.add_volume(pv);
    let s = setup("foo", driver.clone(), cluster.clone()).await;
    let key = "default/claim01";

    // The driver refuses 10G as infeasible.
    let err = s.reconciler.sync_pvc(key).await.unwrap_err();
    assert!(matches!(err, SyncError::Failed(_)), "{err:?}");
    let now = cluster.claim_now(key).unwrap();
    assert_eq!(resize_status(&now), CONTROLLER_RESIZE_INFEASIBLE);
    assert_eq!(allocated_size(&now), Some(&q("10G")));
    assert_eq!(driver.expand_count(), 1);

    // Retrying at once: the first retry is made, then the slow set holds it back.
    let _ = s.reconciler.sync_pvc(key).await;
    assert_eq!(driver.expand_count(), 2);
    match s.reconciler.sync_pvc(key).await {
        Err(SyncError::DelayRetry { after, message }) => {
            assert!(after.as_secs() > 100, "{after:?}");
            assert_eq!(
                message,
                "skipping volume expansion for pvc default/claim01, because expansion previously failed with infeasible error"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(driver.expand_count(), 2);

    // The user lowers the request: expanded to 5G at once.
    *driver.expansion_error.lock().unwrap() = None;
    let mut lowered = cluster.claim_now(key).unwrap();
    lowered
        .spec
        .as_mut()
        .unwrap()
        .resources
        .as_mut()
        .unwrap()
        .requests = Some([("storage".to_string(), q("5G"))].into());
    cluster.add_claim(lowered);
    s.reconciler.sync_pvc(key).await.unwrap();
    let now = cluster.claim_now(key).unwrap();
    assert_eq!(allocated_size(&now), Some(&q("5G")));
    assert_eq!(resize_status(&now), "");
    assert_eq!(
        now.status
            .as_ref()
            .unwrap()
            .capacity
            .as_ref()
            .unwrap()
            .get("storage"),
        // `resource.NewQuantity(5e9, BinarySI)` as apimachinery writes it.
        Some(&q("5000000000"))
    );
    assert_eq!(
        s.events.lines().last().map(String::as_str),
        Some("Normal VolumeResizeSuccessful Resize volume succeeded")
    );
}

#[tokio::test]
async fn the_patches_sent() {
    let cluster = FakeCluster::new();
    let claim = get_test_pvc("testPV", "2Gi", "1Gi", "", "");
    let mut pv = create_pv(1, "claim01", NS, "test-uid", "Filesystem");
    pv.metadata.name = Some("testPV".into());
    cluster.add_claim(claim);
    cluster.add_volume(pv);
    let s = setup(
        "foo",
        FakeDriver::new(true, true, true, true),
        cluster.clone(),
    )
    .await;
    s.reconciler.sync_pvc("default/claim01").await.unwrap();
    let patches = cluster.patches();
    assert_eq!(patches.len(), 3, "{patches:#?}");
    let (resource, name, first) = &patches[0];
    assert_eq!(
        (resource.as_str(), name.as_str()),
        ("persistentvolumeclaims/status", "default/claim01")
    );
    assert_eq!(first["metadata"], json!({"resourceVersion": "1"}));
    assert_eq!(
        first["status"]["allocatedResources"],
        json!({"storage": "2Gi"})
    );
    assert_eq!(
        first["status"]["allocatedResourceStatuses"],
        json!({"storage": CONTROLLER_RESIZE_IN_PROGRESS})
    );
    assert_eq!(first["status"]["conditions"][0]["type"], "Resizing");
    let (resource, _, second) = &patches[1];
    assert_eq!(resource, "persistentvolumes");
    assert_eq!(
        second,
        &json!({"metadata": {"annotations": {"volume.alpha.kubernetes.io/pre-resize-capacity": "1Gi"}},
                "spec": {"capacity": {"storage": "2Gi"}}})
    );
    let (_, _, third) = &patches[2];
    assert_eq!(
        third["status"]["allocatedResourceStatuses"],
        json!({"storage": NODE_RESIZE_PENDING})
    );
    // The Resizing condition stays (upstream keeps old resize conditions here).
    assert_eq!(third["status"]["conditions"][0]["type"], "Resizing");
    assert_eq!(
        third["status"]["conditions"][1]["type"],
        "FileSystemResizePending"
    );
}

#[tokio::test]
async fn a_deleted_claim_leaves_nothing_of_its_failed_attempts() {
    let driver = FakeDriver::new(false, true, true, true);
    driver.set_expansion_error(CsiError::Status(Status::new(Code::OutOfRange, "too big")));
    let cluster = FakeCluster::new();
    cluster.add_claim(get_test_pvc("testPV", "10G", "1G", "", ""));
    let mut pv = create_pv(1, "claim01", NS, "test-uid", "Filesystem");
    pv.metadata.name = Some("testPV".into());
    cluster.add_volume(pv);
    let s = setup("foo", driver.clone(), cluster.clone()).await;
    let (key, uid) = ("default/claim01", "test-uid");

    // An infeasible expansion puts the claim in the slow set; a final error and an in-use
    // error are remembered too.
    let _ = s.reconciler.sync_pvc(key).await;
    let _ = s.reconciler.sync_pvc(key).await;
    assert!(matches!(
        s.reconciler.sync_pvc(key).await,
        Err(SyncError::DelayRetry { .. })
    ));
    s.reconciler.add_final_error(key);
    s.in_use.add_claim_with_in_use_error(uid);
    assert!(s.reconciler.remembers_claim(key, uid));

    // The claim is deleted: the PVC watch's delete handler forgets all of it.
    s.reconciler.forget_claim(key, uid);
    assert!(!s.reconciler.remembers_claim(key, uid));
    assert!(!s.in_use.has_in_use_errors(uid));
}
