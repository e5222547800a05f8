//! What the loop does beyond upstream: the [`PROVISIONING_FINALIZER`] on claims whose volume
//! may exist without a saved PV, the unsaved-PV queue, and the metrics as exposed.

use std::sync::Arc;

use csi_controller::ApiError;
use csi_workqueue::Outcome;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, TypedLocalObjectReference, TypedObjectReference,
};
use tonic::Code;

use super::fakes::*;
use crate::controller::PROVISIONING_FINALIZER;
use crate::provision::ANN_PROVISIONED_BY;

fn claim1() -> PersistentVolumeClaim {
    new_claim("claim-1", "uid-1-1", "class-1", DRIVER, "", &[])
}

fn protected(cluster: &FakeCluster) -> bool {
    cluster
        .claim_on_server(NS, "claim-1")
        .is_some_and(|c| finalizers_of(&c.metadata).contains(&PROVISIONING_FINALIZER.to_string()))
}

fn pv_claim_uid(cluster: &FakeCluster, name: &str) -> Option<String> {
    cluster.volume_on_server(name)?.spec?.claim_ref?.uid
}

/// A claim whose `CreateVolume` timed out (InBackground), then deleted by its user: the
/// finalizer keeps it (terminating) until the retry created the volume and saved its PV; then
/// the claim is released and the API server removes it, so that the PV is Released and
/// deleted rather than the volume leaked.
#[tokio::test]
async fn in_background_claim_deleted_meanwhile_is_provisioned_and_released() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.driver
        .create_fails(grpc(Code::DeadlineExceeded, "context deadline exceeded"));

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);
    assert!(h.ctrl.in_progress("uid-1-1"));
    assert!(protected(&h.cluster));

    // The user deletes the claim: the finalizer keeps it, terminating.
    h.cluster.sync_cache();
    assert!(h.cluster.delete_claim(NS, "claim-1").is_none());
    h.cluster.sync_cache();
    let terminating = h.cluster.claim_on_server(NS, "claim-1").unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());

    // The retry: the same volume name, the PV saved for the claim, the claim released.
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);

    assert_eq!(h.driver.created_names(), vec!["pvc-uid-1-1", "pvc-uid-1-1"]);
    assert_eq!(
        pv_claim_uid(&h.cluster, "pvc-uid-1-1").as_deref(),
        Some("uid-1-1")
    );
    assert!(!h.ctrl.in_progress("uid-1-1"));
    assert!(h.cluster.claims().is_empty(), "the released claim is gone");
    assert_eq!(
        h.cluster.writes(),
        vec![
            "update persistentvolumeclaims/default/claim-1",
            "create persistentvolumes/pvc-uid-1-1",
            "update persistentvolumeclaims/default/claim-1",
        ]
    );
    assert_eq!(
        h.events.lines().last().unwrap(),
        "Normal ProvisioningSucceeded Successfully provisioned volume pvc-uid-1-1"
    );
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 1, 1)]));
}

/// The same after a restart: the new process has nothing in memory, but the terminating claim
/// is still there (its finalizer), so it is provisioned again and released.
#[tokio::test]
async fn protected_claim_is_finished_after_a_restart() {
    let before = Harness::new();
    before
        .cluster
        .add_class(new_storage_class("class-1", DRIVER));
    before.cluster.add_claim(claim1());
    before
        .driver
        .create_fails(grpc(Code::Unavailable, "connection lost"));
    assert_eq!(before.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);
    before.cluster.sync_cache();
    before.cluster.delete_claim(NS, "claim-1");
    before.cluster.sync_cache();

    let after = Setup {
        cluster: before.cluster.clone(),
        ..Setup::default()
    }
    .build();
    assert!(!after.ctrl.in_progress("uid-1-1"));

    assert_eq!(after.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);

    assert_eq!(after.driver.created_names(), vec!["pvc-uid-1-1"]);
    assert_eq!(
        pv_claim_uid(&after.cluster, "pvc-uid-1-1").as_deref(),
        Some("uid-1-1")
    );
    assert!(after.cluster.claims().is_empty());
}

/// A claim in progress whose next attempt fails finally (nothing left in the driver): the
/// claim is released too.
#[tokio::test]
async fn protected_claim_is_released_after_a_final_error() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.driver.create_fails(grpc(Code::Aborted, "busy"));
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);
    h.cluster.sync_cache();
    assert!(protected(&h.cluster));

    h.driver
        .create_fails(grpc(Code::InvalidArgument, "no such thing"));
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);

    assert!(!h.ctrl.in_progress("uid-1-1"));
    assert!(!protected(&h.cluster));
}

/// Releasing the claim fails (its update fails): the key is retried, and the retry, which
/// finds the PV, releases it.
#[tokio::test]
async fn failed_release_is_retried() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.driver.create_fails(grpc(Code::DeadlineExceeded, "slow"));
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);
    h.cluster.sync_cache();
    assert!(protected(&h.cluster));

    h.cluster
        .fail(Verb::UpdateClaim, Some(1), ApiError::other("fake error"));
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);
    assert!(protected(&h.cluster));
    assert!(h.cluster.volume_on_server("pvc-uid-1-1").is_some());

    h.cluster.sync_cache();
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);
    assert!(!protected(&h.cluster));
    assert_eq!(h.driver.create_calls(), 2);
}

/// Protecting is best effort and never retried forever: a claim whose update conflicts keeps
/// being read fresh and updated; a plain failure leaves it to the in-memory record.
#[tokio::test]
async fn protecting_a_claim_retries_conflicts() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.cluster.fail(
        Verb::UpdateClaim,
        Some(2),
        ApiError::conflict("persistentvolumeclaims", "claim-1", "modified"),
    );
    h.driver.create_fails(grpc(Code::DeadlineExceeded, "slow"));

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Requeue);

    assert!(protected(&h.cluster));
    let updates = h
        .cluster
        .writes()
        .iter()
        .filter(|w| w.starts_with("update "))
        .count();
    assert_eq!(updates, 3);
}

/// A created volume whose PV cannot be saved: the claim is protected, the PV waits in the
/// `unsavedpvs` queue, `ProvisioningSucceeded` comes only once it is saved, then the claim is
/// released.
#[tokio::test]
async fn unsaved_pv_is_saved_by_the_queue_then_the_claim_released() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.cluster
        .fail(Verb::CreateVolume, Some(1), ApiError::other("etcd is sad"));

    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);

    assert!(h.cluster.volumes().is_empty());
    assert_eq!(h.ctrl.unsaved_count(), 1);
    assert_eq!(h.unsaved_queue.len(), 1);
    assert!(protected(&h.cluster), "protected while the PV is unsaved");
    assert_eq!(h.events.reasons(), vec!["Provisioning"]);
    assert_eq!(h.metrics().provisioned, counts(&[("class-1", 1, 0)]));

    h.cluster.sync_cache();
    assert_eq!(
        h.ctrl.save_unsaved("pvc-uid-1-1".into()).await,
        Outcome::Forget
    );

    assert_eq!(h.ctrl.unsaved_count(), 0);
    assert_eq!(
        pv_claim_uid(&h.cluster, "pvc-uid-1-1").as_deref(),
        Some("uid-1-1")
    );
    assert_eq!(
        h.events.lines(),
        vec![
            "Normal Provisioning External provisioner is provisioning volume for claim \"default/claim-1\"",
            "Normal ProvisioningSucceeded Successfully provisioned volume pvc-uid-1-1",
        ]
    );
    assert!(!protected(&h.cluster), "released once saved");
    assert!(h.cluster.claim_on_server(NS, "claim-1").is_some());
}

/// While a PV is unsaved, another sync of its claim does not release the claim.
#[tokio::test]
async fn unsaved_pv_keeps_the_claim_protected_across_claim_syncs() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.cluster
        .fail(Verb::CreateVolume, None, ApiError::other("etcd is sad"));
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);
    h.cluster.sync_cache();

    // The claim's update (its finalizer) brings it back to the claim queue.
    h.ctrl.sync_claim("uid-1-1").await;

    assert!(protected(&h.cluster));
    assert_eq!(h.ctrl.unsaved_count(), 1);
}

/// A PV that already exists (an earlier create whose answer was lost) is saved: AlreadyExists
/// is a success, at once and from the queue.
#[tokio::test]
async fn already_exists_is_a_successful_save() {
    // At once: the server has the PV, the cache not yet.
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.cluster.fail(
        Verb::CreateVolume,
        Some(1),
        ApiError::already_exists("persistentvolumes", "pvc-uid-1-1"),
    );
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);
    assert_eq!(h.ctrl.unsaved_count(), 0);
    assert!(!protected(&h.cluster));
    assert_eq!(
        h.events.reasons(),
        vec!["Provisioning", "ProvisioningSucceeded"]
    );

    // From the queue.
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.cluster
        .fail(Verb::CreateVolume, Some(1), ApiError::other("timeout"));
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);
    h.cluster.sync_cache();
    // Saved meanwhile by someone (the lost answer of the first create).
    h.cluster.add_volume(new_csi_volume(
        "pvc-uid-1-1",
        "Pending",
        "Delete",
        &[(ANN_PROVISIONED_BY, DRIVER)],
        None,
        None,
        DRIVER,
    ));
    assert_eq!(
        h.ctrl.save_unsaved("pvc-uid-1-1".into()).await,
        Outcome::Forget
    );
    assert_eq!(h.ctrl.unsaved_count(), 0);
    assert!(!protected(&h.cluster));
    assert_eq!(
        h.events.reasons(),
        vec!["Provisioning", "ProvisioningSucceeded"]
    );
}

/// A PV saved before the cache saw the claim's finalizer: the claim is released by the claim
/// sync that the finalizer's own update event brings.
#[tokio::test]
async fn unsaved_pv_saved_before_the_cache_saw_the_finalizer() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.cluster
        .fail(Verb::CreateVolume, Some(1), ApiError::other("etcd is sad"));
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);

    assert_eq!(
        h.ctrl.save_unsaved("pvc-uid-1-1".into()).await,
        Outcome::Forget
    );
    assert!(h.cluster.volume_on_server("pvc-uid-1-1").is_some());

    // The informer delivers the claim (with the finalizer) and the PV.
    h.cluster.sync_cache();
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);

    assert!(!protected(&h.cluster));
    assert_eq!(h.driver.create_calls(), 1);
}

/// An unsaved PV whose claim is deleted meanwhile: the claim stays (terminating) until the PV
/// is saved, then goes.
#[tokio::test]
async fn unsaved_pv_of_a_deleted_claim_is_saved_then_the_claim_goes() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    h.cluster
        .fail(Verb::CreateVolume, Some(2), ApiError::other("etcd is sad"));
    assert_eq!(h.ctrl.sync_claim("uid-1-1").await, Outcome::Forget);
    h.cluster.sync_cache();
    assert!(h.cluster.delete_claim(NS, "claim-1").is_none());
    h.cluster.sync_cache();

    assert_eq!(
        h.ctrl.save_unsaved("pvc-uid-1-1".into()).await,
        Outcome::Requeue
    );
    assert!(h.cluster.claim_on_server(NS, "claim-1").is_some());
    assert_eq!(
        h.ctrl.save_unsaved("pvc-uid-1-1".into()).await,
        Outcome::Forget
    );

    assert_eq!(
        pv_claim_uid(&h.cluster, "pvc-uid-1-1").as_deref(),
        Some("uid-1-1")
    );
    assert!(h.cluster.claims().is_empty());
}

/// A deleted claim that is not in progress is forgotten by the node check (its claim delays).
#[tokio::test]
async fn claim_deleted_forgets_the_node_check_delays() {
    let check = Arc::new(FakeNodeCheck {
        answer: Ok(true),
        forgotten: Default::default(),
    });
    let setup = Setup {
        node_check: Some(check.clone()),
        ..Setup::default()
    };
    let h = setup.build();
    h.ctrl.claim_deleted(&claim1());
    assert_eq!(*lock(&check.forgotten), vec!["uid-1-1".to_string()]);
}

/// The library's six metric families as exposed: provisions per class and data source kind
/// (successes with their duration; failed and stopped attempts), deletions per class; a
/// deletion waiting for a detach is not counted.
#[tokio::test]
async fn metrics_as_exposed() {
    let h = Harness::new();
    h.cluster.add_class(new_storage_class("class-1", DRIVER));
    h.cluster.add_claim(claim1());
    // A populator's claim: stopped, counted as failed, with its source kind.
    let mut populated = new_claim("claim-2", "uid-1-2", "class-1", DRIVER, "", &[]);
    let spec = populated.spec.as_mut().unwrap();
    spec.data_source = Some(TypedLocalObjectReference {
        api_group: Some("populator.example.com".into()),
        kind: "Populator".into(),
        name: "source".into(),
    });
    spec.data_source_ref = Some(TypedObjectReference {
        api_group: Some("populator.example.com".into()),
        kind: "Populator".into(),
        name: "source".into(),
        namespace: None,
    });
    h.cluster.add_claim(populated);
    h.sync_claims().await;

    let mut released = new_csi_volume(
        "volume-1",
        "Released",
        "Delete",
        &[(ANN_PROVISIONED_BY, DRIVER)],
        None,
        None,
        DRIVER,
    );
    released.spec.as_mut().unwrap().storage_class_name = Some("class-1".into());
    h.cluster.add_volume(released.clone());
    let mut failing = released.clone();
    failing.metadata.name = Some("volume-2".into());
    failing.spec.as_mut().unwrap().storage_class_name = Some("class-2".into());
    h.cluster.add_volume(failing);
    let mut attached = released;
    attached.metadata.name = Some("volume-3".into());
    h.cluster.add_volume(attached);
    h.cluster
        .add_attachment(k8s_openapi::api::storage::v1::VolumeAttachment {
            metadata: Default::default(),
            spec: k8s_openapi::api::storage::v1::VolumeAttachmentSpec {
                attacher: DRIVER.into(),
                node_name: "node".into(),
                source: k8s_openapi::api::storage::v1::VolumeAttachmentSource {
                    persistent_volume_name: Some("volume-3".into()),
                    ..Default::default()
                },
            },
            status: None,
        });
    assert_eq!(h.ctrl.sync_volume("volume-1").await, Outcome::Forget);
    h.driver.delete_fails(grpc(Code::Internal, "fake"));
    assert_eq!(h.ctrl.sync_volume("volume-2").await, Outcome::Requeue);
    assert_eq!(h.ctrl.sync_volume("volume-3").await, Outcome::Requeue);

    let text = h.registry.gather_text();
    for line in [
        "controller_persistentvolumeclaim_provision_total{class=\"class-1\",source=\"\"} 1",
        "controller_persistentvolumeclaim_provision_failed_total{class=\"class-1\",source=\"Populator\"} 1",
        "controller_persistentvolumeclaim_provision_duration_seconds_count{class=\"class-1\",source=\"\"} 1",
        "controller_persistentvolume_delete_total{class=\"class-1\"} 1",
        "controller_persistentvolume_delete_failed_total{class=\"class-2\"} 1",
        "controller_persistentvolume_delete_duration_seconds_count{class=\"class-1\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("controller_") && !l.contains("_bucket{"))
            .count(),
        8,
        "{text}"
    );
}
