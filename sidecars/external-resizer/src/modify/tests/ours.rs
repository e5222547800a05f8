//! What upstream's tables leave unchecked: the patches as sent, the Events, the modify
//! secrets, the PVC handlers and the messages.

use std::collections::{BTreeMap, HashMap};

use csi_kube::EventType;
use k8s_openapi::api::core::v1::SecretReference;
use serde_json::json;

use super::fakes::*;
use crate::modify::{ModifyConfig, Support};

fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn a_modification_is_written_as_upstream_writes_it() {
    let mut pvc = create_test_pvc(PVC_NAME, TARGET_VAC, TEST_VAC, "");
    pvc.metadata.resource_version = Some("7".into());
    let env = setup(FakeDriver::new(true), objects(&pvc, &base_pv())).await;
    env.inner
        .sync_pvc(&format!("{PVC_NAMESPACE}/{PVC_NAME}"))
        .await
        .unwrap();

    let writes = env.cluster.writes();
    assert_eq!(writes.len(), 3, "{writes:#?}");
    // 1. InProgress, with a resourceVersion precondition.
    let Write::ClaimStatus(name, patch) = &writes[0] else {
        panic!("{writes:#?}")
    };
    assert_eq!(name, PVC_NAME);
    assert_eq!(patch["metadata"], json!({"resourceVersion": "7"}));
    assert_eq!(
        patch["status"]["modifyVolumeStatus"],
        json!({"status": "InProgress", "targetVolumeAttributesClassName": "target-vac"})
    );
    assert_eq!(
        patch["status"]["conditions"][0]["message"],
        json!("Modifying volume to \"target-vac\" is in progress.")
    );
    assert_eq!(
        patch["status"]["conditions"][0]["type"],
        json!("ModifyingVolume")
    );
    // 2. The PV before the PVC.
    assert_eq!(
        writes[1],
        Write::Volume(
            PV_NAME.into(),
            json!({"spec": {"volumeAttributesClassName": "target-vac"}})
        )
    );
    // 3. Completed: no precondition, status and conditions gone.
    assert_eq!(
        writes[2],
        Write::ClaimStatus(
            PVC_NAME.into(),
            json!({"status": {
                "conditions": null,
                "currentVolumeAttributesClassName": "target-vac",
                "modifyVolumeStatus": null,
            }})
        )
    );
    let request = &env.driver.requests()[0];
    assert_eq!(request.volume_id, "foo");
    assert!(request.secrets.is_empty());
    assert_eq!(
        env.take_events(),
        vec![
            (
                EventType::Normal,
                "VolumeModify".to_string(),
                "external resizer is modifying volume foo with vac target-vac".to_string()
            ),
            (
                EventType::Normal,
                "VolumeModifySuccessful".to_string(),
                "external resizer modified volume foo with vac target-vac successfully".to_string()
            ),
        ]
    );
    let pvc = env.cluster.claim_now(PVC_NAMESPACE, PVC_NAME).unwrap();
    let status = pvc.status.unwrap();
    assert_eq!(
        status.current_volume_attributes_class_name.as_deref(),
        Some(TARGET_VAC)
    );
    assert!(status.modify_volume_status.is_none() && status.conditions.is_none());
}

#[tokio::test]
async fn failures_are_reported_in_events() {
    let pvc = create_test_pvc(PVC_NAME, TARGET_VAC, TEST_VAC, "");
    let driver = FakeDriver::new(true);
    driver.set_modify_error(Some(non_final_err()));
    let env = setup(driver, objects(&pvc, &base_pv())).await;
    let err = env
        .inner
        .modify(pvc.clone(), base_pv())
        .await
        .result
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "rpc error: code = Aborted desc = Non-final error"
    );
    let events = env.take_events();
    assert_eq!(
        events.last().unwrap(),
        &(
            EventType::Warning,
            "VolumeModifyFailed".to_string(),
            "rpc error: code = Aborted desc = Non-final error. Still modifying to VAC target-vac"
                .to_string()
        )
    );

    // A missing class: an Event, and Pending.
    let mut missing = pvc.clone();
    missing.spec.as_mut().unwrap().volume_attributes_class_name = Some("nope".into());
    let env = setup(FakeDriver::new(true), objects(&missing, &base_pv())).await;
    let pass = env.inner.modify(missing, base_pv()).await;
    assert!(pass.result.is_ok());
    assert_eq!(
        env.take_events(),
        vec![(
            EventType::Warning,
            "VolumeModifyFailed".to_string(),
            "VAC \"nope\" does not exist.".to_string()
        )]
    );
    assert_eq!(
        pass.pvc
            .status
            .unwrap()
            .modify_volume_status
            .unwrap()
            .status,
        "Pending"
    );
}

#[tokio::test]
async fn a_stale_pvc_is_refused_by_the_resource_version_check() {
    let mut pvc = create_test_pvc(PVC_NAME, TARGET_VAC, TEST_VAC, "");
    pvc.metadata.resource_version = Some("7".into());
    let env = setup(FakeDriver::new(true), objects(&pvc, &base_pv())).await;
    let mut stale = pvc.clone();
    stale.metadata.resource_version = Some("6".into());
    let pass = env.inner.modify(stale, base_pv()).await;
    let err = pass.result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "mark PVC \"foo\" as modify volume failed, errored with: can't patch status of  PVC \
         modify/foo with Operation cannot be fulfilled on persistentvolumeclaims \"foo\": the \
         object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(env.driver.modify_count(), 0);
}

#[tokio::test]
async fn modify_secrets_come_from_the_pv_annotations_or_the_expand_secret() {
    let pvc = create_test_pvc(PVC_NAME, TARGET_VAC, TEST_VAC, "");

    // The annotations the provisioner writes.
    let mut pv = base_pv();
    pv.metadata.annotations = Some(BTreeMap::from([
        (
            "volume.kubernetes.io/controller-modify-secret-name".to_string(),
            "modify".to_string(),
        ),
        (
            "volume.kubernetes.io/controller-modify-secret-namespace".to_string(),
            "secrets".to_string(),
        ),
    ]));
    pv.spec
        .as_mut()
        .unwrap()
        .csi
        .as_mut()
        .unwrap()
        .controller_expand_secret_ref = Some(SecretReference {
        name: Some("expand".into()),
        namespace: Some("secrets".into()),
    });
    let env = setup(FakeDriver::new(true), objects(&pvc, &pv)).await;
    env.cluster
        .add_secret("secrets", "modify", &[("user", "m")]);
    env.cluster
        .add_secret("secrets", "expand", &[("user", "e")]);
    env.inner
        .modify(pvc.clone(), pv.clone())
        .await
        .result
        .unwrap();
    assert_eq!(env.driver.requests()[0].secrets, names(&[("user", "m")]));

    // Without both annotations: the expand secret.
    pv.metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove("volume.kubernetes.io/controller-modify-secret-namespace");
    let env = setup(FakeDriver::new(true), objects(&pvc, &pv)).await;
    env.cluster
        .add_secret("secrets", "expand", &[("user", "e")]);
    env.inner
        .modify(pvc.clone(), pv.clone())
        .await
        .result
        .unwrap();
    assert_eq!(env.driver.requests()[0].secrets, names(&[("user", "e")]));

    // A missing secret: no call, upstream's message.
    let env = setup(FakeDriver::new(true), objects(&pvc, &pv)).await;
    let err = env.inner.modify(pvc, pv).await.result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot get error status from modify volume err: error getting secret expand in \
         namespace secrets: secrets \"expand\" not found"
    );
    assert_eq!(env.driver.modify_count(), 0);
}

#[tokio::test]
async fn pvc_updates_are_queued_as_upstream_queues_them() {
    let env = setup(FakeDriver::new(true), vec![Obj::Pv(base_pv())]).await;
    let old = create_test_pvc(PVC_NAME, TEST_VAC, TEST_VAC, "");
    // The class changed.
    let mut new = old.clone();
    new.spec.as_mut().unwrap().volume_attributes_class_name = Some(TARGET_VAC.into());
    env.inner.update_pvc(&old, &new);
    assert_eq!(env.inner.queue.len(), 1);
    let key = env.inner.queue.get().await.unwrap();
    env.inner.queue.done(&key);
    // Same class, a modification recorded: nothing to do.
    let recorded = create_test_pvc(PVC_NAME, TEST_VAC, TEST_VAC, TARGET_VAC);
    env.inner.update_pvc(&recorded, &recorded);
    assert_eq!(env.inner.queue.len(), 0);
    // Same class, no modification recorded (a resync): queued.
    env.inner.update_pvc(&old, &old);
    assert_eq!(env.inner.queue.len(), 1);
    let key = env.inner.queue.get().await.unwrap();
    env.inner.queue.done(&key);
    // Not bound.
    let mut pending = new.clone();
    pending.status.as_mut().unwrap().phase = Some("Pending".into());
    env.inner.update_pvc(&old, &pending);
    assert_eq!(env.inner.queue.len(), 0);
    // Its PV not in the cache.
    let mut elsewhere = old.clone();
    elsewhere.spec.as_mut().unwrap().volume_name = Some("other".into());
    env.inner.update_pvc(&elsewhere, &new);
    assert_eq!(env.inner.queue.len(), 0);
}

#[test]
fn modification_is_off_without_the_driver_capability_or_the_api() {
    let on = Support {
        driver_modify: true,
        vac_api: true,
    };
    assert_eq!(on.disabled_reason(), None);
    assert!(
        Support {
            driver_modify: false,
            ..on
        }
        .disabled_reason()
        .is_some()
    );
    assert!(
        Support {
            vac_api: false,
            ..on
        }
        .disabled_reason()
        .is_some()
    );
    let config = ModifyConfig::new("hostpath.csi.k8s.io");
    assert_eq!(config.queue_name(), "hostpath.csi.k8s.io-pvc");
    assert_eq!(config.timeout, std::time::Duration::from_secs(10));
    assert_eq!(
        crate::modify::event_component("hostpath.csi.k8s.io"),
        "external-resizer hostpath.csi.k8s.io"
    );
}
