//! The claim side: the provisioning cases of the library's `TestController`, and its
//! `TestShouldProvision`, `TestCanProvision`, `TestTopologyParams`,
//! `TestControllerSharedInformers` (provisioning), `TestInfeasibleRetry`, and
//! external-provisioner's `TestProvisionErrorHandling` run through the loop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use csi_workqueue::Outcome;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, TopologySelectorLabelRequirement, TopologySelectorTerm,
    TypedObjectReference,
};
use k8s_openapi::api::storage::v1::StorageClass;
use tonic::Code;

use super::fakes::*;
use crate::controller::PROVISIONING_FINALIZER;
use crate::provision::{
    ANN_PROVISIONED_BY, ANN_SELECTED_NODE, ANN_STORAGE_PROVISIONER, PV_FINALIZER,
};

const WAIT: &str = "WaitForFirstConsumer";
const ZONE: &str = "failure-domain.beta.kubernetes.io/zone";

fn claim1() -> PersistentVolumeClaim {
    new_claim("claim-1", "uid-1-1", "class-1", DRIVER, "", &[])
}

/// upstream's `newProvisionedVolume` / `newProvisionedVolumeWithReclaimPolicy`, checked field
/// by field on the saved PV: the name, what the library adds (claimRef, provisioned-by,
/// storageClassName, the finalizer) and what the claim and class ask for.
fn assert_provisioned(h: &Harness, class: &StorageClass, claim: &PersistentVolumeClaim) {
    let uid = claim.metadata.uid.clone().unwrap();
    let name = format!("pvc-{uid}");
    let pv = h
        .cluster
        .volume_on_server(&name)
        .unwrap_or_else(|| panic!("PV {name} not saved; PVs: {:?}", h.cluster.volume_names()));
    let spec = pv.spec.as_ref().unwrap();
    let claim_ref = spec.claim_ref.as_ref().unwrap();
    assert_eq!(claim_ref.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(claim_ref.name, claim.metadata.name);
    assert_eq!(claim_ref.namespace, claim.metadata.namespace);
    assert_eq!(claim_ref.kind.as_deref(), Some("PersistentVolumeClaim"));
    assert_eq!(
        pv.metadata.annotations.as_ref().unwrap()[ANN_PROVISIONED_BY],
        class.provisioner
    );
    assert_eq!(spec.storage_class_name, class.metadata.name);
    assert_eq!(spec.persistent_volume_reclaim_policy, class.reclaim_policy);
    assert_eq!(finalizers_of(&pv.metadata), vec![PV_FINALIZER.to_string()]);
    assert_eq!(
        spec.access_modes,
        claim.spec.as_ref().unwrap().access_modes.clone()
    );
    assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "1Mi");
    assert_eq!(spec.csi.as_ref().unwrap().driver, DRIVER);
    assert_eq!(spec.csi.as_ref().unwrap().volume_handle, name);
}

fn annotations(claim: &PersistentVolumeClaim) -> BTreeMap<String, String> {
    claim.metadata.annotations.clone().unwrap_or_default()
}

/// A class whose provisioner secret is `default/secret`: without the Secret, provisioning
/// fails before `CreateVolume` in state NoChange.
fn class_with_secret(class: StorageClass) -> StorageClass {
    StorageClass {
        parameters: Some(map(&[
            ("csi.storage.k8s.io/provisioner-secret-name", "secret"),
            ("csi.storage.k8s.io/provisioner-secret-namespace", NS),
        ])),
        ..class
    }
}

/// Two nodes as in external-provisioner's topology tables (zone and rack keys).
fn add_topology(cluster: &FakeCluster) {
    for (node, rack) in [("node-1", "rack1"), ("node-2", "rack2")] {
        cluster.add_node(new_node(
            node,
            &[
                ("com.example.csi/zone", "zone1"),
                ("com.example.csi/rack", rack),
            ],
        ));
        cluster.add_csi_node(new_csi_node(
            node,
            &["com.example.csi/zone", "com.example.csi/rack"],
        ));
    }
}

fn topology_setup() -> Setup {
    let mut setup = Setup::default();
    setup.config.capabilities.topology = true;
    add_topology(&setup.cluster);
    setup
}

// ----- TestController ------------------------------------------------------------------------

/// "provision for claim-1 but not claim-2"
#[tokio::test]
async fn provision_for_claim_1_but_not_claim_2() {
    let h = Harness::new();
    let class1 = new_storage_class("class-1", DRIVER);
    h.cluster.add_class(class1.clone());
    h.cluster.add_class(new_storage_class("class-2", OTHER));
    h.cluster.add_claim(claim1());
    h.cluster
        .add_claim(new_claim("claim-2", "uid-1-2", "class-2", OTHER, "", &[]));

    assert_eq!(
        h.sync_claims().await,
        vec![Outcome::Forget, Outcome::Forget]
    );

    assert_eq!(h.cluster.volume_names(), vec!["pvc-uid-1-1"]);
    assert_provisioned(&h, &class1, &claim1());
    assert_eq!(h.driver.created_names(), vec!["pvc-uid-1-1"]);
    assert_eq!(
        h.metrics(),
        TestMetrics {
            provisioned: counts(&[("class-1", 1, 0)]),
            ..Default::default()
        }
    );
    // Nothing at all for claim-2, not even an Event.
    assert!(
        h.events
            .all()
            .iter()
            .all(|e| e.object_key() == "PersistentVolumeClaim default/claim-1")
    );
    assert_eq!(
        h.events.lines(),
        vec![
            "Normal Provisioning External provisioner is provisioning volume for claim \"default/claim-1\"",
            "Normal ProvisioningSucceeded Successfully provisioned volume pvc-uid-1-1",
        ]
    );
}

/// "don't provision, volume already exists"
#[tokio::test]
async fn dont_provision_volume_already_exists() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    let mut existing = new_csi_volume(
        "pvc-uid-1-1",
        "Bound",
        "Delete",
        &[(ANN_PROVISIONED_BY, DRIVER)],
        None,
        None,
        DRIVER,
    );
    existing.metadata.labels = Some(map(&[("pre-existing", "true")]));
    h.cluster.add_volume(existing);

    assert_eq!(h.sync_claims().await, vec![Outcome::Forget]);

    assert_eq!(h.driver.create_calls(), 0);
    assert!(h.cluster.writes().is_empty(), "{:?}", h.cluster.writes());
    assert_eq!(
        h.cluster
            .volume_on_server("pvc-uid-1-1")
            .unwrap()
            .metadata
            .labels,
        Some(map(&[("pre-existing", "true")]))
    );
    assert_eq!(
        h.metrics(),
        TestMetrics {
            provisioned: counts(&[("class-1", 0, 1)]),
            ..Default::default()
        }
    );
    assert!(h.events.all().is_empty());
}

/// "don't provision for claim-1 because it's already bound"
#[tokio::test]
async fn dont_provision_for_claim_1_because_its_already_bound() {
    let h = Harness::new();
    h.cluster.add_claim(new_claim(
        "claim-1",
        "uid-1-1",
        "class-1",
        DRIVER,
        "volume-1",
        &[],
    ));

    assert_eq!(h.sync_claims().await, vec![Outcome::Forget]);

    assert!(h.cluster.volumes().is_empty());
    assert_eq!(h.driver.create_calls(), 0);
    assert_eq!(h.metrics(), TestMetrics::default());
}

/// "don't provision for claim-1 because its class doesn't exist"
#[tokio::test]
async fn dont_provision_for_claim_1_because_its_class_doesnt_exist() {
    let h = Harness::new();
    h.cluster.add_claim(claim1());

    assert_eq!(h.sync_claims().await, vec![Outcome::Requeue]);

    assert!(h.cluster.volumes().is_empty());
    assert_eq!(h.driver.create_calls(), 0);
    assert_eq!(
        h.metrics(),
        TestMetrics {
            provisioned: counts(&[("class-1", 0, 1)]),
            ..Default::default()
        }
    );
    assert!(h.events.all().is_empty());
}

/// "provisioner fails to provision for claim-1: no pv is created"
#[tokio::test]
async fn provisioner_fails_to_provision_for_claim_1_no_pv_is_created() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.driver
        .create_fails(grpc(Code::Internal, "fake final error"));

    assert_eq!(h.sync_claims().await, vec![Outcome::Requeue]);

    assert!(h.cluster.volumes().is_empty());
    assert!(!h.ctrl.in_progress("uid-1-1"));
    assert_eq!(
        h.metrics(),
        TestMetrics {
            provisioned: counts(&[("class-1", 0, 1)]),
            ..Default::default()
        }
    );
    assert_eq!(
        h.events.lines(),
        vec![
            "Normal Provisioning External provisioner is provisioning volume for claim \"default/claim-1\"",
            "Warning ProvisioningFailed rpc error: code = Internal desc = fake final error",
        ]
    );
}

/// A claim whose data source an external populator fills: the provisioner's `IgnoredError`.
fn populated_claim(name: &str, uid: &str) -> PersistentVolumeClaim {
    let mut claim = new_claim(name, uid, "class-1", DRIVER, "", &[]);
    claim.spec.as_mut().unwrap().data_source_ref = Some(TypedObjectReference {
        api_group: Some("populator.example.com".into()),
        kind: "Populator".into(),
        name: "source".into(),
        namespace: None,
    });
    claim
}

/// "don't provision, because it is ignored"
#[tokio::test]
async fn dont_provision_because_it_is_ignored() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(populated_claim("claim-2", "uid-1-1"));

    assert_eq!(h.sync_claims().await, vec![Outcome::Forget]);

    assert!(h.cluster.volumes().is_empty());
    assert_eq!(h.driver.create_calls(), 0);
    assert_eq!(
        h.metrics(),
        TestMetrics {
            provisioned: counts(&[("class-1", 0, 1)]),
            ..Default::default()
        }
    );
    // No ProvisioningFailed; the populator case says why nothing happens.
    assert_eq!(
        h.events.lines(),
        vec![
            "Normal Provisioning External provisioner is provisioning volume for claim \"default/claim-2\"",
            "Normal Provisioning Assuming an external populator will provision the volume",
        ]
    );
}

/// "provision for claim-1 but not claim-2, because it is ignored"
#[tokio::test]
async fn provision_for_claim_1_but_not_claim_2_because_it_is_ignored() {
    let h = Harness::new();
    let class1 = new_storage_class("class-1", DRIVER);
    h.cluster.add_class(class1.clone());
    h.cluster.add_claim(claim1());
    h.cluster.add_claim(populated_claim("claim-2", "uid-1-2"));

    assert_eq!(
        h.sync_claims().await,
        vec![Outcome::Forget, Outcome::Forget]
    );

    assert_eq!(h.cluster.volume_names(), vec!["pvc-uid-1-1"]);
    assert_provisioned(&h, &class1, &claim1());
    assert_eq!(
        h.metrics(),
        TestMetrics {
            provisioned: counts(&[("class-1", 1, 1)]),
            ..Default::default()
        }
    );
}

/// "provision with Retain reclaim policy"
#[tokio::test]
async fn provision_with_retain_reclaim_policy() {
    let h = Harness::new();
    let class = new_storage_class_with_reclaim_policy("class-1", DRIVER, "Retain");
    h.cluster.add_class(class.clone());
    h.cluster.add_claim(claim1());

    assert_eq!(h.sync_claims().await, vec![Outcome::Forget]);

    assert_provisioned(&h, &class, &claim1());
    assert_eq!(
        h.cluster.volumes()[0]
            .spec
            .as_ref()
            .unwrap()
            .persistent_volume_reclaim_policy
            .as_deref(),
        Some("Retain")
    );
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 1, 0)]));
}

/// "provision for ext provisioner"
#[tokio::test]
async fn provision_for_ext_provisioner() {
    let h = Harness::new();
    let class = new_storage_class("class-1", DRIVER);
    h.cluster.add_class(class.clone());
    h.cluster.add_claim(claim1());

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);

    // The provisioner is asked for the volume the library names: pvc-<uid>.
    assert_eq!(h.driver.created_names(), vec!["pvc-uid-1-1"]);
    assert_provisioned(&h, &class, &claim1());
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 1, 0)]));
    assert!(!h.ctrl.in_progress("uid-1-1"));
}

/// "ext provisioner: final error does not mark claim as in progress"
#[tokio::test]
async fn ext_provisioner_final_error_does_not_mark_claim_as_in_progress() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.driver.create_fails(grpc(Code::Internal, "mock error"));

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);

    assert!(!h.ctrl.in_progress("uid-1-1"));
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 0, 1)]));
    // Nothing may be left in the driver: the claim is not protected.
    assert!(h.cluster.writes().is_empty(), "{:?}", h.cluster.writes());
}

/// "ext provisioner: provisional error marks claim as in progress"
#[tokio::test]
async fn ext_provisioner_provisional_error_marks_claim_as_in_progress() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.driver
        .create_fails(grpc(Code::DeadlineExceeded, "mock error"));

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);

    assert!(h.ctrl.in_progress("uid-1-1"));
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 0, 1)]));
    // Ours beyond upstream: the claim is protected while its volume may exist.
    let claim = h.cluster.claim_on_server(NS, "claim-1").unwrap();
    assert_eq!(
        finalizers_of(&claim.metadata),
        vec![PROVISIONING_FINALIZER.to_string()]
    );
}

/// "ext provisioner: NoChange error does not mark claim as in progress"
#[tokio::test]
async fn ext_provisioner_nochange_error_does_not_mark_claim_as_in_progress() {
    let h = Harness::new();
    h.cluster
        .add_class(class_with_secret(new_storage_class("class-1", DRIVER)));
    h.cluster.add_claim(claim1());

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);

    assert_eq!(h.driver.create_calls(), 0);
    assert!(!h.ctrl.in_progress("uid-1-1"));
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 0, 1)]));
    assert_eq!(
        h.events.reasons(),
        vec!["Provisioning", "ProvisioningFailed"]
    );
}

/// Puts claim-1 in progress the only way there is: a `CreateVolume` that timed out. The
/// secret is there (for the NoChange cases that remove it afterwards).
async fn claim_in_progress() -> Harness {
    let h = Harness::new();
    h.cluster
        .add_class(class_with_secret(new_storage_class("class-1", DRIVER)));
    h.cluster
        .add_secret(new_secret(NS, "secret", &[("key", "value")]));
    h.cluster.add_claim(claim1());
    h.driver
        .create_fails(grpc(Code::DeadlineExceeded, "mock error"));
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);
    assert!(h.ctrl.in_progress("uid-1-1"));
    h
}

/// "ext provisioner: final error removes claim from in progress"
#[tokio::test]
async fn ext_provisioner_final_error_removes_claim_from_in_progress() {
    let h = claim_in_progress().await;
    h.cluster.sync_cache();
    h.driver.create_fails(grpc(Code::Internal, "mock error"));

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);

    assert!(!h.ctrl.in_progress("uid-1-1"));
    // One failure more than upstream's table: our claim got in progress by a failed attempt.
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 0, 2)]));
    // The attempt is final: nothing is left in the driver, the claim is released.
    let claim = h.cluster.claim_on_server(NS, "claim-1").unwrap();
    assert!(finalizers_of(&claim.metadata).is_empty());
}

/// "ext provisioner: provisional error does not remove claim from in progress"
#[tokio::test]
async fn ext_provisioner_provisional_error_does_not_remove_claim_from_in_progress() {
    let h = claim_in_progress().await;
    h.driver
        .create_fails(grpc(Code::DeadlineExceeded, "mock error"));

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);

    assert!(h.ctrl.in_progress("uid-1-1"));
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 0, 2)]));
}

/// "ext provisioner: NoChange error does not remove claim from in progress"
#[tokio::test]
async fn ext_provisioner_nochange_error_does_not_remove_claim_from_in_progress() {
    let h = claim_in_progress().await;
    h.cluster.remove_secrets();

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);

    assert_eq!(h.driver.create_calls(), 1);
    assert!(h.ctrl.in_progress("uid-1-1"));
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 0, 2)]));
    let claim = h.cluster.claim_on_server(NS, "claim-1").unwrap();
    assert_eq!(
        finalizers_of(&claim.metadata),
        vec![PROVISIONING_FINALIZER.to_string()]
    );
}

/// "ext provisioner: claimsInProgress is used for deleted PVCs": the claim could not be
/// protected (its update fails), so once deleted it is only in memory.
#[tokio::test]
async fn ext_provisioner_claims_in_progress_is_used_for_deleted_pvcs() {
    let h = Harness::new();
    let class = new_storage_class("class-1", DRIVER);
    h.cluster.add_class(class.clone());
    h.cluster.add_claim(claim1());
    h.cluster.fail(
        Verb::UpdateClaim,
        None,
        csi_controller::ApiError::other("fake error"),
    );
    h.driver
        .create_fails(grpc(Code::DeadlineExceeded, "mock error"));
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);
    assert!(h.ctrl.in_progress("uid-1-1"));

    let gone = h
        .cluster
        .delete_claim(NS, "claim-1")
        .expect("claim deleted");
    h.cluster.sync_cache();
    h.ctrl.claim_deleted(&gone);
    assert!(h.ctrl.in_progress("uid-1-1"));

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);

    assert!(!h.ctrl.in_progress("uid-1-1"));
    assert_provisioned(&h, &class, &claim1());
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 1, 1)]));
    assert_eq!(
        h.events.lines().last().unwrap(),
        "Normal ProvisioningSucceeded Successfully provisioned volume pvc-uid-1-1"
    );
    // Once done, the key is forgotten.
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);
    assert_eq!(h.driver.create_calls(), 2);
}

/// "PV save backoff: provision a PV and fail to save it -> it's in the queue"
#[tokio::test]
async fn pv_save_backoff_provision_a_pv_and_fail_to_save_it_its_in_the_queue() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.cluster.fail(
        Verb::CreateVolume,
        None,
        csi_controller::ApiError::other("fake error"),
    );

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);

    assert!(h.cluster.volumes().is_empty());
    assert_eq!(h.ctrl.unsaved_count(), 1);
    assert_eq!(h.unsaved_queue.len(), 1);
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 1, 0)]));
    assert!(
        !h.events
            .reasons()
            .contains(&"ProvisioningSucceeded".to_string())
    );
    // And it stays there while saving fails.
    assert_eq!(
        h.ctrl.save_unsaved("pvc-uid-1-1".into()).await,
        Outcome::Requeue
    );
    assert_eq!(h.ctrl.unsaved_count(), 1);
}

/// "PV save backoff: provision a PV and fail to save it two times -> it's removed from the
/// queue"
#[tokio::test]
async fn pv_save_backoff_provision_a_pv_and_fail_to_save_it_two_times_its_removed_from_the_queue() {
    let h = Harness::new();
    let class = new_storage_class("class-1", DRIVER);
    h.cluster.add_class(class.clone());
    h.cluster.add_claim(claim1());
    h.cluster.fail(
        Verb::CreateVolume,
        Some(2),
        csi_controller::ApiError::other("fake error"),
    );

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);
    assert_eq!(
        h.ctrl.save_unsaved("pvc-uid-1-1".into()).await,
        Outcome::Requeue
    );
    assert_eq!(
        h.ctrl.save_unsaved("pvc-uid-1-1".into()).await,
        Outcome::Forget
    );

    assert_eq!(h.ctrl.unsaved_count(), 0);
    assert_provisioned(&h, &class, &claim1());
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 1, 0)]));
    // A key whose PV was saved is simply dropped.
    assert_eq!(
        h.ctrl.save_unsaved("pvc-uid-1-1".into()).await,
        Outcome::Forget
    );
}

fn wffc_claim_on_node_1() -> PersistentVolumeClaim {
    new_claim(
        "claim-1",
        "uid-1-1",
        "class-1",
        DRIVER,
        "",
        &[(ANN_SELECTED_NODE, "node-1")],
    )
}

fn wffc_harness(class: StorageClass) -> Harness {
    let h = topology_setup().build();
    h.cluster.add_class(class);
    h.cluster.add_claim(wffc_claim_on_node_1());
    h
}

/// "remove selectedNode and claim on reschedule"
#[tokio::test]
async fn remove_selected_node_and_claim_on_reschedule() {
    let h = wffc_harness(new_storage_class_with_binding_mode("class-1", DRIVER, WAIT));
    h.driver
        .create_fails(grpc(Code::ResourceExhausted, "fake error, reschedule"));

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);

    let claim = h.cluster.claim_on_server(NS, "claim-1").unwrap();
    assert_eq!(
        annotations(&claim),
        map(&[(crate::provision::ANN_BETA_STORAGE_PROVISIONER, DRIVER)])
    );
    assert!(!h.ctrl.in_progress("uid-1-1"));
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 0, 1)]));
    assert_eq!(
        h.events.lines().last().unwrap(),
        "Warning ProvisioningFailed rpc error: code = ResourceExhausted desc = fake error, reschedule"
    );
}

/// Rescheduling when the first update conflicts: the fresh claim is read again.
#[tokio::test]
async fn reschedule_retries_on_conflict() {
    let h = wffc_harness(new_storage_class_with_binding_mode("class-1", DRIVER, WAIT));
    h.driver
        .create_fails(grpc(Code::ResourceExhausted, "fake error, reschedule"));
    h.cluster.fail(
        Verb::UpdateClaim,
        Some(1),
        csi_controller::ApiError::conflict("persistentvolumeclaims", "claim-1", "modified"),
    );

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);

    let claim = h.cluster.claim_on_server(NS, "claim-1").unwrap();
    assert!(!annotations(&claim).contains_key(ANN_SELECTED_NODE));
}

/// When removing the selected node fails, the claim is retried as after a final error.
#[tokio::test]
async fn reschedule_failure_retries_the_claim() {
    let h = wffc_harness(new_storage_class_with_binding_mode("class-1", DRIVER, WAIT));
    h.driver
        .create_fails(grpc(Code::ResourceExhausted, "fake error, reschedule"));
    h.cluster.fail(
        Verb::UpdateClaim,
        None,
        csi_controller::ApiError::forbidden("persistentvolumeclaims", "claim-1", "no"),
    );

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);

    let claim = h.cluster.claim_on_server(NS, "claim-1").unwrap();
    assert!(annotations(&claim).contains_key(ANN_SELECTED_NODE));
    assert!(!h.ctrl.in_progress("uid-1-1"));
}

/// "do not remove selectedNode after final error, only the claim"
#[tokio::test]
async fn do_not_remove_selected_node_after_final_error_only_the_claim() {
    let h = wffc_harness(new_storage_class_with_binding_mode("class-1", DRIVER, WAIT));
    h.driver
        .create_fails(grpc(Code::Internal, "fake final error"));

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);

    let claim = h.cluster.claim_on_server(NS, "claim-1").unwrap();
    assert_eq!(annotations(&claim)[ANN_SELECTED_NODE], "node-1");
    assert!(!h.ctrl.in_progress("uid-1-1"));
    assert!(h.cluster.writes().is_empty(), "{:?}", h.cluster.writes());
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 0, 1)]));
}

/// "do not remove selectedNode if nothing changes"
#[tokio::test]
async fn do_not_remove_selected_node_if_nothing_changes() {
    let h = wffc_harness(class_with_secret(new_storage_class_with_binding_mode(
        "class-1", DRIVER, WAIT,
    )));

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);

    assert_eq!(h.driver.create_calls(), 0);
    let claim = h.cluster.claim_on_server(NS, "claim-1").unwrap();
    assert_eq!(annotations(&claim)[ANN_SELECTED_NODE], "node-1");
    assert!(h.cluster.writes().is_empty(), "{:?}", h.cluster.writes());
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 0, 1)]));
}

/// "do not remove selectedNode while in progress"
#[tokio::test]
async fn do_not_remove_selected_node_while_in_progress() {
    let h = wffc_harness(new_storage_class_with_binding_mode("class-1", DRIVER, WAIT));
    h.driver
        .create_fails(grpc(Code::DeadlineExceeded, "fake error, in progress"));

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);

    let claim = h.cluster.claim_on_server(NS, "claim-1").unwrap();
    assert_eq!(annotations(&claim)[ANN_SELECTED_NODE], "node-1");
    assert!(h.ctrl.in_progress("uid-1-1"));
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 0, 1)]));
}

/// "provision for ext provisioner with finalizer"
#[tokio::test]
async fn provision_for_ext_provisioner_with_finalizer() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);

    let pv = h.cluster.volume_on_server("pvc-uid-1-1").unwrap();
    assert_eq!(finalizers_of(&pv.metadata), vec![PV_FINALIZER.to_string()]);
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 1, 0)]));
}

// ----- TestControllerSharedInformers (provisioning) -----------------------------------------

/// "provision for claim-1 with v1 storage class"
#[tokio::test]
async fn shared_informers_provision_for_claim_1_with_v1_storage_class() {
    let h = Harness::new();
    let class = new_storage_class_with_reclaim_policy("class-1", DRIVER, "Delete");
    h.cluster.add_class(class.clone());
    h.cluster.add_claim(claim1());

    assert_eq!(h.sync_claims().await, vec![Outcome::Forget]);

    assert_eq!(h.cluster.volume_names(), vec!["pvc-uid-1-1"]);
    assert_provisioned(&h, &class, &claim1());
}

// ----- TestShouldProvision -------------------------------------------------------------------

struct ShouldProvisionCase {
    name: &'static str,
    class: StorageClass,
    claim: PersistentVolumeClaim,
    node_check: Option<Result<bool, String>>,
    expected_should: bool,
}

/// upstream's `TestShouldProvision` through `sync_claim`: "should provision" is a
/// `CreateVolume` (with its `Provisioning` Event); "should not" is no call, no Event, no metric
/// and no error.
#[tokio::test]
async fn should_provision() {
    let cases = vec![
        ShouldProvisionCase {
            name: "should provision based on provisionerName",
            class: new_storage_class("class-1", DRIVER),
            claim: new_claim("claim-1", "1-1", "class-1", DRIVER, "", &[]),
            node_check: None,
            expected_should: true,
        },
        ShouldProvisionCase {
            name: "claim already bound",
            class: new_storage_class("class-1", DRIVER),
            claim: new_claim("claim-1", "1-1", "class-1", DRIVER, "foo", &[]),
            node_check: None,
            expected_should: false,
        },
        ShouldProvisionCase {
            name: "no such class",
            class: new_storage_class("class-1", DRIVER),
            claim: new_claim("claim-1", "1-1", "class-2", "", "", &[]),
            node_check: None,
            expected_should: false,
        },
        ShouldProvisionCase {
            name: "not this provisioner's job",
            class: new_storage_class("class-1", OTHER),
            claim: new_claim("claim-1", "1-1", "class-1", OTHER, "", &[]),
            node_check: None,
            expected_should: false,
        },
        ShouldProvisionCase {
            name: "unknown provisioner annotation 1.5",
            class: new_storage_class("class-1", DRIVER),
            claim: new_claim(
                "claim-1",
                "1-1",
                "class-1",
                "",
                "",
                &[(crate::provision::ANN_BETA_STORAGE_PROVISIONER, OTHER)],
            ),
            node_check: None,
            expected_should: false,
        },
        ShouldProvisionCase {
            name: "no provisioner annotation 1.5",
            class: new_storage_class("class-1", DRIVER),
            claim: new_claim("claim-1", "1-1", "class-1", "", "", &[]),
            node_check: None,
            expected_should: false,
        },
        ShouldProvisionCase {
            name: "unknown provisioner annotation 1.23",
            class: new_storage_class("class-1", DRIVER),
            claim: new_claim(
                "claim-1",
                "1-1",
                "class-1",
                "",
                "",
                &[(ANN_STORAGE_PROVISIONER, OTHER)],
            ),
            node_check: None,
            expected_should: false,
        },
        // The provisioner's qualifier is external-provisioner's `ShouldProvision`: the claim
        // names the driver, and with --node-deployment the node check.
        ShouldProvisionCase {
            name: "qualifier says no",
            class: new_storage_class("class-1", DRIVER),
            claim: new_claim("claim-1", "1-1", "class-1", DRIVER, "", &[]),
            node_check: Some(Ok(false)),
            expected_should: false,
        },
        ShouldProvisionCase {
            name: "qualifier says yes, should provision",
            class: new_storage_class("class-1", DRIVER),
            claim: new_claim("claim-1", "1-1", "class-1", DRIVER, "", &[]),
            node_check: Some(Ok(true)),
            expected_should: true,
        },
        ShouldProvisionCase {
            name: "if PVC is in delay binding mode, should not provision if annSelectedNode is not set",
            class: new_storage_class_with_binding_mode("class-1", DRIVER, WAIT),
            claim: new_claim(
                "claim-1",
                "1-1",
                "class-1",
                "",
                "",
                &[(crate::provision::ANN_BETA_STORAGE_PROVISIONER, DRIVER)],
            ),
            node_check: None,
            expected_should: false,
        },
        ShouldProvisionCase {
            name: "if PVC is in delay binding mode, should provision if annSelectedNode is set",
            class: new_storage_class_with_binding_mode("class-1", DRIVER, WAIT),
            claim: new_claim(
                "claim-1",
                "1-1",
                "class-1",
                "",
                "",
                &[
                    (crate::provision::ANN_BETA_STORAGE_PROVISIONER, DRIVER),
                    (ANN_SELECTED_NODE, "node1"),
                ],
            ),
            node_check: None,
            expected_should: true,
        },
        ShouldProvisionCase {
            name: "if PVC is in delay binding mode, should provision if annSelectedNode is set with annStorageProvisioner",
            class: new_storage_class_with_binding_mode("class-1", DRIVER, WAIT),
            claim: new_claim(
                "claim-1",
                "1-1",
                "class-1",
                "",
                "",
                &[
                    (ANN_STORAGE_PROVISIONER, DRIVER),
                    (ANN_SELECTED_NODE, "node1"),
                ],
            ),
            node_check: None,
            expected_should: true,
        },
    ];
    for case in cases {
        let h = Setup {
            node_check: case.node_check.map(|answer| {
                Arc::new(FakeNodeCheck {
                    answer,
                    forgotten: Default::default(),
                }) as Arc<dyn crate::controller::NodeCheck>
            }),
            ..Setup::default()
        }
        .build();
        h.cluster.add_class(case.class);
        h.cluster.add_claim(case.claim);

        let outcome = h.ctrl.sync_claim("1-1").await;

        assert_eq!(outcome, Outcome::Forget, "{}", case.name);
        let should = h.driver.create_calls() == 1;
        assert_eq!(should, case.expected_should, "{}", case.name);
        if !case.expected_should {
            assert!(h.events.all().is_empty(), "{}", case.name);
            assert_eq!(h.metrics(), TestMetrics::default(), "{}", case.name);
        }
    }
}

/// A node check that fails does not stop provisioning in `ShouldProvision`; the check in
/// `Provision` then fails the attempt: state NoChange, a `ProvisioningFailed` Event (the
/// library records one for every error `Provision` returns), retried.
#[tokio::test]
async fn should_provision_node_check_error_tries_provisioning() {
    let h = Setup {
        node_check: Some(Arc::new(FakeNodeCheck {
            answer: Err("boom".into()),
            forgotten: Default::default(),
        })),
        ..Setup::default()
    }
    .build();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);

    assert_eq!(h.driver.create_calls(), 0);
    assert!(!h.ctrl.in_progress("uid-1-1"));
    assert_eq!(
        h.events.lines(),
        vec![
            "Normal Provisioning External provisioner is provisioning volume for claim \"default/claim-1\"",
            "Warning ProvisioningFailed node check failed: boom",
        ]
    );
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 0, 1)]));
}

// ----- TestCanProvision ----------------------------------------------------------------------

/// The three rows of a provisioner that supports Block (external-provisioner's `SupportsBlock`
/// is always true): "Undefined volumeMode PV request to BlockProvisoner that returns true",
/// "FileSystem volumeMode PV request to BlockProvisoner that returns true", "Block volumeMode
/// PV request to BlockProvisioner that returns true". Each claim is provisioned, with its mode.
#[tokio::test]
async fn can_provision() {
    for mode in [None, Some("Filesystem"), Some("Block")] {
        let h = Harness::new();
        h.cluster.add_class(new_storage_class("class-1", DRIVER));
        let claim = match mode {
            Some(mode) => new_claim_with_volume_mode("claim-1", "1-1", "class-1", DRIVER, mode),
            None => new_claim("claim-1", "1-1", "class-1", DRIVER, "", &[]),
        };
        h.cluster.add_claim(claim);

        assert_eq!(h.ctrl.sync_claim("1-1").await, Outcome::Forget, "{mode:?}");

        let pv = h.cluster.volume_on_server("pvc-1-1").expect("provisioned");
        let spec = pv.spec.unwrap();
        assert_eq!(spec.volume_mode.as_deref(), mode, "{mode:?}");
        let fs_type = spec.csi.unwrap().fs_type;
        if mode == Some("Block") {
            assert_eq!(fs_type, None);
        } else {
            assert_eq!(fs_type.as_deref(), Some("ext4"));
        }
        assert!(
            !h.events
                .reasons()
                .contains(&"ProvisioningFailed".to_string())
        );
    }
}

// ----- TestTopologyParams --------------------------------------------------------------------

fn zone_topology() -> Vec<TopologySelectorTerm> {
    vec![TopologySelectorTerm {
        match_label_expressions: Some(vec![TopologySelectorLabelRequirement {
            key: ZONE.into(),
            values: strings(&["zone1"]),
        }]),
    }]
}

/// upstream's `TestTopologyParams`: what reaches the provisioner. For a CSI driver with
/// topology, the class's allowed topologies and the selected node become the
/// `CreateVolume` accessibility requirements (Immediate claims get none without
/// `--immediate-topology`).
#[tokio::test]
async fn topology_params() {
    struct Case {
        name: &'static str,
        class: StorageClass,
        selected_node: Option<&'static str>,
        /// The requisite topologies, `None`: no requirements.
        expected: Option<Vec<BTreeMap<String, String>>>,
    }
    let zone1 = BTreeMap::from([(ZONE.to_string(), "zone1".to_string())]);
    let cases = vec![
        Case {
            name: "provision without topology information",
            class: new_storage_class("class-1", DRIVER),
            selected_node: None,
            expected: None,
        },
        Case {
            name: "provision with AllowedTopologies",
            class: StorageClass {
                allowed_topologies: Some(zone_topology()),
                ..new_storage_class("class-1", DRIVER)
            },
            selected_node: None,
            expected: Some(vec![zone1.clone()]),
        },
        Case {
            name: "provision with selected node",
            class: new_storage_class_with_binding_mode("class-1", DRIVER, WAIT),
            selected_node: Some("node-1"),
            expected: Some(vec![zone1.clone()]),
        },
        Case {
            name: "provision with AllowedTopologies and selected node",
            class: StorageClass {
                allowed_topologies: Some(zone_topology()),
                ..new_storage_class_with_binding_mode("class-1", DRIVER, WAIT)
            },
            selected_node: Some("node-1"),
            expected: Some(vec![zone1.clone()]),
        },
    ];
    for case in cases {
        let mut setup = Setup::default();
        setup.config.capabilities.topology = true;
        setup.config.immediate_topology = false;
        let h = setup.build();
        h.cluster.add_node(new_node("node-1", &[(ZONE, "zone1")]));
        h.cluster.add_csi_node(new_csi_node("node-1", &[ZONE]));
        h.cluster.add_class(case.class);
        let mut extra = vec![];
        if let Some(node) = case.selected_node {
            extra.push((ANN_SELECTED_NODE, node));
        }
        h.cluster.add_claim(new_claim(
            "claim-1", "uid-1-1", "class-1", DRIVER, "", &extra,
        ));

        assert_eq!(
            h.ctrl.sync_claim("uid-1-1").await,
            Outcome::Forget,
            "{}",
            case.name
        );

        let request = crate::controller::tests::fakes::lock(&h.driver.created)[0].clone();
        let requisite = request.accessibility_requirements.map(|r| {
            r.requisite
                .into_iter()
                .map(|t| t.segments.into_iter().collect::<BTreeMap<_, _>>())
                .collect::<Vec<_>>()
        });
        assert_eq!(requisite, case.expected, "{}", case.name);
        // The PV's node affinity comes from what the driver answered (nothing here).
        assert!(
            h.cluster.volume_on_server("pvc-uid-1-1").is_some(),
            "{}",
            case.name
        );
    }
}

// ----- TestInfeasibleRetry -------------------------------------------------------------------

/// upstream's `TestInfeasibleRetry`: a claim whose `CreateVolume` was InvalidArgument is not
/// tried again before `--retry-interval-max` (the second sync is a delay, no call); other
/// errors are retried at once; once the interval passed, it is tried again.
#[tokio::test]
async fn infeasible_retry() {
    struct Case {
        name: &'static str,
        code: Code,
        expected_provision_call_count: usize,
        eventually_remove_from_slow_set: bool,
    }
    let cases = [
        Case {
            name: "Should retry non-infeasible error normally",
            code: Code::Internal,
            expected_provision_call_count: 2,
            eventually_remove_from_slow_set: false,
        },
        Case {
            name: "Should NOT retry infeasible error normally",
            code: Code::InvalidArgument,
            expected_provision_call_count: 1,
            eventually_remove_from_slow_set: false,
        },
        Case {
            name: "Should EVENTUALLY retry infeasible error",
            code: Code::InvalidArgument,
            expected_provision_call_count: 2,
            eventually_remove_from_slow_set: true,
        },
    ];
    for case in cases {
        // Time passing: the slow retry is over after 20 ms.
        let h = Setup {
            retry_interval_max: if case.eventually_remove_from_slow_set {
                Duration::from_millis(20)
            } else {
                Duration::from_secs(300)
            },
            ..Setup::default()
        }
        .build();
        h.cluster.add_class(new_storage_class("class-1", DRIVER));
        h.cluster.add_claim(new_claim(
            "test-claim",
            "uid-1-1",
            "class-1",
            DRIVER,
            "",
            &[],
        ));
        h.driver.create_fails(grpc(case.code, "fake error"));
        h.driver.create_fails(grpc(case.code, "fake error"));

        assert_eq!(
            h.ctrl.sync_claim("uid-1-1").await,
            Outcome::Requeue,
            "{}",
            case.name
        );
        if case.code == Code::InvalidArgument {
            assert_eq!(
                h.events.lines().last().unwrap(),
                "Warning ProvisioningFailed Volume provisioning failed with infeasible error. Retries will be delayed. rpc error: code = InvalidArgument desc = fake error",
                "{}",
                case.name
            );
        }
        if case.eventually_remove_from_slow_set {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let events_before = h.events.all().len();
        assert_eq!(
            h.ctrl.sync_claim("uid-1-1").await,
            Outcome::Requeue,
            "{}",
            case.name
        );

        assert_eq!(
            h.driver.create_calls(),
            case.expected_provision_call_count,
            "{}",
            case.name
        );
        if case.expected_provision_call_count == 1 {
            // The delayed attempt is silent and not counted.
            assert_eq!(h.events.all().len(), events_before, "{}", case.name);
            assert_eq!(
                h.metrics().provisioned,
                counts(&[("class-1", 0, 1)]),
                "{}",
                case.name
            );
        } else {
            assert_eq!(
                h.metrics().provisioned,
                counts(&[("class-1", 0, 2)]),
                "{}",
                case.name
            );
        }
        assert!(!h.ctrl.in_progress("uid-1-1"), "{}", case.name);
    }
}

/// The slow retry ends early when the claim's StorageClass is replaced (another UID).
#[tokio::test]
async fn infeasible_retry_ends_when_the_class_changes() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.driver
        .create_fails(grpc(Code::InvalidArgument, "fake error"));
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);
    assert_eq!(h.driver.create_calls(), 1);

    let mut class = new_storage_class("class-1", DRIVER);
    class.metadata.uid = Some("uid-class-1-recreated".into());
    h.cluster.add_class(class);

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);
    assert_eq!(h.driver.create_calls(), 2);
    assert!(h.cluster.volume_on_server("pvc-uid-1-1").is_some());
}

// ----- TestProvisionErrorHandling (external-provisioner), through the loop -------------------

/// external-provisioner's `TestProvisionErrorHandling`: every gRPC code of a failed
/// `CreateVolume`, with and without topology and a selected node, and what the loop does with
/// the state each leaves: InBackground keeps the claim in progress (and protected), Reschedule
/// (ResourceExhausted with topology and a node) removes the selected node and stops,
/// InvalidArgument is retried slowly, every other code is final.
#[tokio::test]
async fn provision_error_handling() {
    use crate::provision::ProvisioningState::*;
    let codes = [
        (Code::Cancelled, InBackground),
        (Code::DeadlineExceeded, InBackground),
        (Code::Unavailable, InBackground),
        (Code::Aborted, InBackground),
        (Code::ResourceExhausted, Finished),
        (Code::Unknown, Finished),
        (Code::InvalidArgument, Finished),
        (Code::NotFound, Finished),
        (Code::AlreadyExists, Finished),
        (Code::PermissionDenied, Finished),
        (Code::FailedPrecondition, Finished),
        (Code::OutOfRange, Finished),
        (Code::Unimplemented, Finished),
        (Code::Internal, Finished),
        (Code::DataLoss, Finished),
        (Code::Unauthenticated, Finished),
    ];
    for topology in [false, true] {
        for node_selected in [false, true] {
            for (code, state) in codes {
                let name = format!("topology={topology} node={node_selected} {code:?}");
                let mut setup = Setup::default();
                setup.config.capabilities.topology = topology;
                add_topology(&setup.cluster);
                let h = setup.build();
                // A selected node comes with WaitForFirstConsumer: once the node is removed,
                // the claim waits for the scheduler.
                h.cluster.add_class(if node_selected {
                    new_storage_class_with_binding_mode("class-1", DRIVER, WAIT)
                } else {
                    new_storage_class("class-1", DRIVER)
                });
                let extra: &[(&str, &str)] = if node_selected {
                    &[(ANN_SELECTED_NODE, "node-1")]
                } else {
                    &[]
                };
                h.cluster.add_claim(new_claim(
                    "claim-1", "uid-1-1", "class-1", DRIVER, "", extra,
                ));
                h.driver.create_fails(grpc(code, "fake error"));
                let state = if topology && node_selected && code == Code::ResourceExhausted {
                    Reschedule
                } else {
                    state
                };

                let outcome = h.ctrl.sync_claim("uid-1-1").await;

                assert_eq!(h.driver.create_calls(), 1, "{name}");
                assert!(h.cluster.volumes().is_empty(), "{name}");
                let claim = h.cluster.claim_on_server(NS, "claim-1").unwrap();
                let protected =
                    finalizers_of(&claim.metadata).contains(&PROVISIONING_FINALIZER.to_string());
                assert_eq!(
                    h.ctrl.in_progress("uid-1-1"),
                    state == InBackground,
                    "{name}"
                );
                assert_eq!(protected, state == InBackground, "{name}");
                assert_eq!(
                    annotations(&claim).contains_key(ANN_SELECTED_NODE),
                    node_selected && state != Reschedule,
                    "{name}"
                );
                let expected = if state == Reschedule {
                    Outcome::Forget
                } else {
                    Outcome::Requeue
                };
                assert_eq!(outcome, expected, "{name}");
                let last = h.events.lines().last().cloned().unwrap();
                assert!(
                    last.starts_with("Warning ProvisioningFailed ")
                        && last.ends_with(&grpc(code, "fake error").to_string()),
                    "{name}: {last}"
                );
                // The next sync: delayed (InvalidArgument), or another CreateVolume.
                h.cluster.sync_cache();
                let again = h.ctrl.sync_claim("uid-1-1").await;
                let calls = match (code, state) {
                    (Code::InvalidArgument, _) => 1,
                    // The scheduler picks a node again: until then, nothing to do.
                    (_, Reschedule) => 1,
                    _ => 2,
                };
                assert_eq!(h.driver.create_calls(), calls, "{name}");
                if calls == 2 {
                    assert_eq!(again, Outcome::Forget, "{name}");
                    assert!(
                        h.cluster.volume_on_server("pvc-uid-1-1").is_some(),
                        "{name}"
                    );
                    let claim = h.cluster.claim_on_server(NS, "claim-1").unwrap();
                    assert!(finalizers_of(&claim.metadata).is_empty(), "{name}");
                    assert!(!h.ctrl.in_progress("uid-1-1"), "{name}");
                }
            }
        }
    }
}

// ----- additional provisioner names (CSI migration) -------------------------------------------

/// A translation that changes nothing: what these cases check is which claims the loop takes.
struct Identity;

impl crate::migration::ProvisionerTranslator for Identity {
    fn translate_in_tree_storage_class_to_csi(
        &self,
        _in_tree: &str,
        class: &StorageClass,
    ) -> Result<StorageClass, csi_translation::Error> {
        Ok(class.clone())
    }
    fn translate_csi_pv_to_in_tree(
        &self,
        pv: &k8s_openapi::api::core::v1::PersistentVolume,
    ) -> Result<k8s_openapi::api::core::v1::PersistentVolume, csi_translation::Error> {
        Ok(pv.clone())
    }
    fn is_pv_migratable(&self, _pv: &k8s_openapi::api::core::v1::PersistentVolume) -> bool {
        false
    }
    fn translate_in_tree_pv_to_csi(
        &self,
        pv: &k8s_openapi::api::core::v1::PersistentVolume,
    ) -> Result<k8s_openapi::api::core::v1::PersistentVolume, csi_translation::Error> {
        Ok(pv.clone())
    }
}

/// upstream's `provisionerName` of these cases; the in-tree name is `DRIVER` ("foo.bar/baz"),
/// upstream's additional provisioner name.
const MOCK_CSI: &str = "csi.com/mock-csi";

fn migrating_harness(migrates: bool) -> Harness {
    let mut setup = Setup::default();
    setup.config.driver_name = MOCK_CSI.into();
    setup.config.migration = migrates.then(|| crate::migration::Migration {
        in_tree_plugin_name: DRIVER.into(),
        translator: std::sync::Arc::new(Identity),
    });
    setup.build()
}

/// `TestController` "provision for claim-1 with storage class provisioner name distinct from
/// controller provisioner name" and `TestShouldProvision` "should provision based on
/// additionalProvisionerNames": the in-tree plugin a driver replaced is the loop's additional
/// provisioner name (upstream's `AdditionalProvisionerNames`). external-provisioner's own check
/// also wants the claim handed to the driver, which kube-controller-manager does with
/// `pv.kubernetes.io/migrated-to`. Without migration the same claim is not provisioned.
#[tokio::test]
async fn provision_for_claim_1_with_storage_class_provisioner_name_distinct_from_controller_provisioner_name()
 {
    let claim = new_claim(
        "claim-1",
        "uid-1-1",
        "class-1",
        DRIVER,
        "",
        &[(crate::provision::ANN_MIGRATED_TO, MOCK_CSI)],
    );
    let class1 = new_storage_class("class-1", DRIVER);

    let h = migrating_harness(true);
    h.cluster.add_class(class1.clone());
    h.cluster.add_claim(claim.clone());
    assert_eq!(h.sync_claims().await, vec![Outcome::Forget]);
    assert_eq!(h.cluster.volume_names(), vec!["pvc-uid-1-1"]);
    let pv = h.cluster.volume_on_server("pvc-uid-1-1").unwrap();
    assert_eq!(
        pv.metadata.annotations.as_ref().unwrap()[ANN_PROVISIONED_BY],
        DRIVER
    );
    assert_eq!(
        pv.spec.as_ref().unwrap().csi.as_ref().unwrap().driver,
        MOCK_CSI
    );
    assert_eq!(
        h.metrics(),
        TestMetrics {
            provisioned: counts(&[("class-1", 1, 0)]),
            ..Default::default()
        }
    );

    let h = migrating_harness(false);
    h.cluster.add_class(class1);
    h.cluster.add_claim(claim);
    h.sync_claims().await;
    assert_eq!(h.cluster.volume_names(), Vec::<String>::new());
    assert!(h.driver.created_names().is_empty());
}
