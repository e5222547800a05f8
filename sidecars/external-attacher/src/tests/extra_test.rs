//! Tests of our own (no upstream counterpart): the exact patch bodies on the wire, the patch
//! algorithms, the handler over the real CSI attacher and a mock driver, ListVolumes paging,
//! CSI migration (translation errors, handle repair), reconcile of inline volumes, and the fake's modes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use csi_connection::{ConnectOptions, Connection};
use csi_proto::csi::v1::list_volumes_response::{Entry, VolumeStatus};
use csi_proto::csi::v1::{
    ControllerPublishVolumeRequest, ControllerPublishVolumeResponse,
    ControllerUnpublishVolumeRequest, ControllerUnpublishVolumeResponse, ListVolumesRequest,
    ListVolumesResponse, Volume,
};
use csi_test_support::MockCsiDriver;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, PersistentVolume, PersistentVolumeSpec,
};
use serde_json::{Value, json};
use tonic::Status;

use super::csi_handler_test::{csi_node, gce_pd_pv_with_finalizer, pv_with_finalizer};
use super::framework::*;
use crate::attacher::CsiAttacher;
use crate::controller::AttachController;
use crate::handler::{CsiHandler, CsiHandlerConfig, Handler, SyncOutcome};
use crate::kube::{ApiError, KubeClient, KubeListers, resources};
use crate::lister::{CsiVolumeLister, PublishedNodes, VolumeLister};
use crate::tests::fake::{Action, FakeKube, PatchType, Verb, resource};
use crate::util::mark_as_detached;
use csi_controller::finalizer;
use csi_controller::patch::{apply_json_patch, apply_merge_patch, create_merge_patch};

async fn mock_connection() -> (MockCsiDriver, Connection) {
    let mock = MockCsiDriver::start().await.expect("mock driver");
    let conn = Connection::connect(&mock.endpoint(), ConnectOptions::default())
        .await
        .expect("connection");
    (mock, conn)
}

fn handler_config() -> CsiHandlerConfig {
    CsiHandlerConfig {
        timeout: Duration::from_millis(200),
        supports_publish_read_only: true,
        default_fs_type: DEFAULT_FS_TYPE.to_string(),
        ..CsiHandlerConfig::new(TEST_ATTACHER_NAME)
    }
}

/// A controller with a CSI handler over `kube` and the real attacher on `conn`.
fn real_controller(
    kube: &FakeKube,
    conn: Connection,
    lister: Option<Arc<dyn VolumeLister>>,
) -> AttachController {
    let handler = CsiHandler::new(
        handler_config(),
        Arc::new(kube.clone()),
        Arc::new(kube.clone()),
        Arc::new(CsiAttacher::new(conn)),
        lister,
    );
    AttachController::new(
        TEST_ATTACHER_NAME,
        Arc::new(handler),
        Arc::new(kube.clone()),
    )
}

fn patches(kube: &FakeKube) -> Vec<(&'static str, Value)> {
    kube.actions()
        .into_iter()
        .filter_map(|a| a.patch.map(|(_, p)| (a.subresource, p)))
        .collect()
}

#[tokio::test]
async fn attach_and_detach_through_the_driver_send_upstreams_patches() {
    let (mock, conn) = mock_connection().await;
    mock.handle(
        "ControllerPublishVolume",
        |req: ControllerPublishVolumeRequest| {
            Ok(ControllerPublishVolumeResponse {
                publish_context: [("devicePath".to_string(), format!("/dev/{}", req.volume_id))]
                    .into(),
            })
        },
    );
    mock.handle(
        "ControllerUnpublishVolume",
        |_: ControllerUnpublishVolumeRequest| Ok(ControllerUnpublishVolumeResponse {}),
    );
    let kube = FakeKube::new();
    kube.add_persistent_volume(pv_with_finalizer());
    kube.add_csi_node(csi_node());
    kube.add_volume_attachment(va(false, "", None));
    kube.set_write_through(true);
    let ctrl = real_controller(&kube, conn, None);

    assert!(matches!(ctrl.sync_va(VA_NAME).await, SyncOutcome::Forget));
    let publish = mock.calls_to("ControllerPublishVolume");
    let req = publish[0]
        .request::<ControllerPublishVolumeRequest>()
        .expect("request");
    assert_eq!(req.volume_id, TEST_VOLUME_HANDLE);
    assert_eq!(req.node_id, TEST_NODE_ID);
    assert!(!req.readonly);
    // The bodies on the wire, byte for byte as upstream's (Go's maps marshal sorted).
    let sent: Vec<(&str, String)> = patches(&kube)
        .into_iter()
        .map(|(sub, p)| (sub, p.to_string()))
        .collect();
    assert_eq!(
        sent,
        [
            (
                "",
                r#"{"metadata":{"annotations":{"csi.alpha.kubernetes.io/node-id":"nodeID1"},"finalizers":["external-attacher/csi-test"]}}"#.to_string()
            ),
            (
                "status",
                r#"{"status":{"attached":true,"attachmentMetadata":{"devicePath":"/dev/handle1"}}}"#.to_string()
            ),
        ]
    );

    // Delete it: the watch delivers the deletion timestamp.
    kube.clear_actions();
    let mut deleting = kube.server_volume_attachment(VA_NAME).expect("VA");
    deleting.metadata.deletion_timestamp = Some(zero_time());
    kube.add_volume_attachment(deleting);
    assert!(matches!(ctrl.sync_va(VA_NAME).await, SyncOutcome::Forget));
    let sent: Vec<(&str, String)> = patches(&kube)
        .into_iter()
        .map(|(sub, p)| (sub, p.to_string()))
        .collect();
    assert_eq!(
        sent,
        [
            ("", r#"{"metadata":{"finalizers":null}}"#.to_string()),
            (
                "status",
                r#"{"status":{"attached":false,"attachmentMetadata":null}}"#.to_string()
            ),
        ]
    );
    assert_eq!(mock.calls_to("ControllerUnpublishVolume").len(), 1);
}

#[tokio::test]
async fn a_driver_timeout_saves_deadline_exceeded_with_its_code() {
    let (mock, conn) = mock_connection().await;
    mock.set_delay("ControllerPublishVolume", Duration::from_secs(2));
    mock.handle(
        "ControllerPublishVolume",
        |_: ControllerPublishVolumeRequest| Ok(ControllerPublishVolumeResponse::default()),
    );
    let kube = FakeKube::new();
    kube.add_persistent_volume(pv_with_finalizer());
    kube.add_csi_node(csi_node());
    kube.add_volume_attachment(va(false, "", None));
    let ctrl = real_controller(&kube, conn, None);

    let outcome = ctrl.sync_va(VA_NAME).await;
    let err = outcome.error().expect("requeued");
    assert_eq!(
        err.to_string(),
        "failed to attach: rpc error: code = DeadlineExceeded desc = context deadline exceeded"
    );
    let saved = kube
        .server_volume_attachment(VA_NAME)
        .and_then(|va| va.status)
        .and_then(|s| s.attach_error)
        .expect("attachError");
    assert_eq!(saved.error_code, Some(4));
    assert_eq!(
        saved.message.as_deref(),
        Some("rpc error: code = DeadlineExceeded desc = context deadline exceeded")
    );
    // The time is there, in RFC 3339 with seconds, as metav1.Time marshals.
    let (_, status_patch) = patches(&kube).pop().expect("status patch");
    let time = status_patch["status"]["attachError"]["time"]
        .as_str()
        .expect("time")
        .to_string();
    assert_eq!(time.len(), "2006-01-02T15:04:05Z".len(), "{time}");
    assert!(time.ends_with('Z'));
}

#[tokio::test]
async fn error_code_is_not_saved_with_the_gate_off() {
    let (mock, conn) = mock_connection().await;
    mock.handle(
        "ControllerPublishVolume",
        |_: ControllerPublishVolumeRequest| {
            Err::<ControllerPublishVolumeResponse, _>(Status::resource_exhausted("no room"))
        },
    );
    let kube = FakeKube::new();
    kube.add_persistent_volume(pv_with_finalizer());
    kube.add_csi_node(csi_node());
    kube.add_volume_attachment(va(false, "", None));
    let handler = CsiHandler::new(
        CsiHandlerConfig {
            attach_error_code: false,
            ..handler_config()
        },
        Arc::new(kube.clone()),
        Arc::new(kube.clone()),
        Arc::new(CsiAttacher::new(conn)),
        None,
    );
    let va = kube.server_volume_attachment(VA_NAME).expect("VA");
    assert!(matches!(
        handler.sync_volume_attachment(&va).await,
        SyncOutcome::Requeue(_)
    ));
    let saved = kube
        .server_volume_attachment(VA_NAME)
        .and_then(|va| va.status)
        .and_then(|s| s.attach_error)
        .expect("attachError");
    assert_eq!(saved.error_code, None);
    assert_eq!(
        saved.message.as_deref(),
        Some("rpc error: code = ResourceExhausted desc = no room")
    );
}

#[tokio::test]
async fn in_tree_pv_that_cannot_be_translated_fails_before_any_csi_call() {
    let (mock, conn) = mock_connection().await;
    let kube = FakeKube::new();
    // Two zones in different regions: GCE PD cannot name a regional disk for them.
    let mut pv = gce_pd_pv_with_finalizer();
    pv.metadata.labels = Some(BTreeMap::from([(
        "topology.kubernetes.io/zone".to_string(),
        "us-central1-a__us-east1-b".to_string(),
    )]));
    kube.add_persistent_volume(pv);
    kube.add_csi_node(csi_node());
    kube.add_volume_attachment(va(false, "", None));
    let ctrl = real_controller(&kube, conn, None);

    let outcome = ctrl.sync_va(VA_NAME).await;
    let err = outcome.error().expect("requeued");
    assert_eq!(
        err.to_string(),
        "failed to attach: failed to translate in tree pv to CSI: failed to get region from zones: \
         multiple or no regions gotten from zones, got: map[us-central1:{} us-east1:{}]"
    );
    assert!(mock.calls_to("ControllerPublishVolume").is_empty());
}

/// With the `migrated` metric label (a driver of CSI migration), attaching and detaching an
/// in-tree PV are recorded with `migrated="true"`, a CSI PV's with `"false"`, as upstream marks
/// them (`markAsMigrated(ctx, migratable)`).
#[tokio::test]
async fn in_tree_attach_and_detach_are_recorded_as_migrated() {
    let mock = MockCsiDriver::start().await.expect("mock driver");
    mock.handle(
        "ControllerPublishVolume",
        |_: ControllerPublishVolumeRequest| Ok(ControllerPublishVolumeResponse::default()),
    );
    mock.handle(
        "ControllerUnpublishVolume",
        |_: ControllerUnpublishVolumeRequest| Ok(ControllerUnpublishVolumeResponse {}),
    );
    let registry = csi_metrics::Registry::new();
    let metrics = csi_metrics::CsiOperationMetrics::builder()
        .driver_name(TEST_ATTACHER_NAME)
        .process_start_time(false)
        .register(&registry)
        .expect("metrics");
    assert!(metrics.enable_migration());
    let conn = Connection::connect(
        &mock.endpoint(),
        ConnectOptions {
            metrics: Some(metrics),
            ..ConnectOptions::default()
        },
    )
    .await
    .expect("connection");
    for pv in [gce_pd_pv_with_finalizer(), pv_with_finalizer()] {
        let kube = FakeKube::new();
        kube.add_persistent_volume(pv);
        kube.add_csi_node(csi_node());
        kube.add_volume_attachment(va(false, "", None));
        kube.set_write_through(true);
        let ctrl = real_controller(&kube, conn.clone(), None);
        assert!(matches!(ctrl.sync_va(VA_NAME).await, SyncOutcome::Forget));
        kube.add_volume_attachment(deleted(va(true, FIN, ann())));
        assert!(matches!(ctrl.sync_va(VA_NAME).await, SyncOutcome::Forget));
    }
    let text = registry.gather_text();
    for method in ["ControllerPublishVolume", "ControllerUnpublishVolume"] {
        for migrated in ["true", "false"] {
            let series = format!(
                r#"csi_sidecar_operations_seconds_count{{driver_name="{TEST_ATTACHER_NAME}",grpc_status_code="OK",method_name="/csi.v1.Controller/{method}",migrated="{migrated}"}} 1"#
            );
            assert!(text.contains(&series), "{series} in\n{text}");
        }
    }
}

/// The GCE PD handle of a translated in-tree PV has `UNSPECIFIED` for the project: the
/// reconciler completes it from the node ID before looking it up in ListVolumes' answer.
#[tokio::test]
async fn reconcile_repairs_the_gce_pd_volume_handle_with_the_node_id() {
    let (_mock, conn) = mock_connection().await;
    let node_id = "projects/project-1/zones/us-central1-c/instances/node1";
    let kube = FakeKube::new();
    kube.add_persistent_volume(gce_pd_pv_with_finalizer());
    let mut node = csi_node();
    if let Some(driver) = node.spec.drivers.first_mut() {
        driver.node_id = node_id.to_string();
    }
    kube.add_csi_node(node);
    // Not attached according to the VolumeAttachment, published according to the driver.
    kube.add_volume_attachment(va(false, FIN, ann()));
    let published = PublishedNodes::from([(
        "projects/project-1/zones/testZone/disks/testpd".to_string(),
        vec![node_id.to_string()],
    )]);
    let ctrl = real_controller(&kube, conn.clone(), Some(Arc::new(StaticLister(published))));
    assert_eq!(
        ctrl.reconcile_va().await.expect("reconcile"),
        vec![VA_NAME.to_string()]
    );

    // Published under the unrepaired handle only: not found, nothing to do.
    let published = PublishedNodes::from([(
        "projects/UNSPECIFIED/zones/testZone/disks/testpd".to_string(),
        vec![node_id.to_string()],
    )]);
    let ctrl = real_controller(&kube, conn, Some(Arc::new(StaticLister(published))));
    assert!(ctrl.reconcile_va().await.expect("reconcile").is_empty());
}

/// A VolumeAttachment the reconciler marks for a forced sync and that is deleted before the
/// sync runs leaves no mark behind: one created again under its name is synced as usual.
#[tokio::test]
async fn a_forced_sync_of_a_deleted_volume_attachment_is_forgotten() {
    let (mock, conn) = mock_connection().await;
    let kube = FakeKube::new();
    kube.add_persistent_volume(pv_with_finalizer());
    kube.add_csi_node(csi_node());
    // Attached according to the VolumeAttachment, published nowhere according to the driver.
    kube.add_volume_attachment(va(true, FIN, ann()));
    let lister = Arc::new(StaticLister(PublishedNodes::new()));
    let ctrl = real_controller(&kube, conn, Some(lister));
    assert_eq!(
        ctrl.reconcile_va().await.expect("reconcile"),
        vec![VA_NAME.to_string()]
    );

    kube.remove_volume_attachment(VA_NAME);
    assert!(matches!(ctrl.sync_va(VA_NAME).await, SyncOutcome::Done));

    kube.add_volume_attachment(va(true, FIN, ann()));
    ctrl.sync_va(VA_NAME).await;
    assert!(
        mock.calls_to("ControllerPublishVolume").is_empty(),
        "an attached VolumeAttachment without a forced sync is not published again"
    );
}

#[tokio::test]
async fn list_volumes_follows_tokens_and_skips_entries_without_status() {
    let (mock, conn) = mock_connection().await;
    mock.handle("ListVolumes", |req: ListVolumesRequest| {
        let entry = |id: &str, nodes: Option<&[&str]>| Entry {
            volume: Some(Volume {
                volume_id: id.to_string(),
                ..Default::default()
            }),
            status: nodes.map(|nodes| VolumeStatus {
                published_node_ids: nodes.iter().map(|n| n.to_string()).collect(),
                ..Default::default()
            }),
        };
        assert_eq!(req.max_entries, 2);
        Ok(match req.starting_token.as_str() {
            "" => ListVolumesResponse {
                entries: vec![entry("vol-1", Some(&["node-a"])), entry("vol-2", None)],
                next_token: "page-2".to_string(),
            },
            "page-2" => ListVolumesResponse {
                entries: vec![
                    entry("vol-3", Some(&["node-a", "node-b"])),
                    Entry::default(),
                ],
                next_token: String::new(),
            },
            other => panic!("unexpected token {other:?}"),
        })
    });
    let lister = CsiVolumeLister::new(conn, 2);
    let published = lister
        .list_volumes(Duration::from_secs(5))
        .await
        .expect("list");
    let expected: PublishedNodes = [
        ("vol-1".to_string(), vec!["node-a".to_string()]),
        (
            "vol-3".to_string(),
            vec!["node-a".to_string(), "node-b".to_string()],
        ),
    ]
    .into();
    assert_eq!(published, expected);
    assert_eq!(mock.calls_to("ListVolumes").len(), 2);

    mock.handle("ListVolumes", |_: ListVolumesRequest| {
        Err::<ListVolumesResponse, _>(Status::internal("boom"))
    });
    let err = lister
        .list_volumes(Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to list volumes: rpc error: code = Internal desc = boom"
    );
}

#[derive(Debug)]
struct StaticLister(PublishedNodes);

impl VolumeLister for StaticLister {
    fn list_volumes(
        &self,
        _timeout: Duration,
    ) -> futures::future::BoxFuture<'_, Result<PublishedNodes, crate::lister::ListVolumesError>>
    {
        let published = self.0.clone();
        Box::pin(async move { Ok(published) })
    }
}

/// Upstream's reconciler asks csi-translation-lib to repair the handle of every inline volume;
/// for a driver that replaced no in-tree plugin that fails and the VolumeAttachment is skipped.
/// The migrated drivers whose repair keeps the handle as it is (all but GCE PD) are reconciled.
#[tokio::test]
async fn reconcile_skips_inline_volumes_as_upstream() {
    let (_mock, conn) = mock_connection().await;
    let kube = FakeKube::new();
    kube.add_csi_node(csi_node());
    // Attached, but the driver does not list it: would be re-queued if it were a PV's.
    kube.add_volume_attachment(va_with_inline_spec(va(true, FIN, ann())));
    let ctrl = real_controller(
        &kube,
        conn.clone(),
        Some(Arc::new(StaticLister(PublishedNodes::new()))),
    );
    assert_eq!(
        ctrl.reconcile_va().await.expect("reconcile"),
        Vec::<String>::new()
    );

    // The same VolumeAttachment with a PersistentVolume is re-queued.
    let kube = FakeKube::new();
    kube.add_csi_node(csi_node());
    kube.add_persistent_volume(pv_with_finalizer());
    kube.add_volume_attachment(va(true, FIN, ann()));
    let ctrl = real_controller(
        &kube,
        conn.clone(),
        Some(Arc::new(StaticLister(PublishedNodes::new()))),
    );
    assert_eq!(
        ctrl.reconcile_va().await.expect("reconcile"),
        vec![VA_NAME.to_string()]
    );

    // An inline volume of a migrated driver with an identity repair (EBS) is reconciled.
    let kube = FakeKube::new();
    kube.add_csi_node(csi_node());
    let mut inline = va_with_inline_spec(va(true, FIN, ann()));
    if let Some(csi) = inline
        .spec
        .source
        .inline_volume_spec
        .as_mut()
        .and_then(|s| s.csi.as_mut())
    {
        csi.driver = "ebs.csi.aws.com".to_string();
    }
    kube.add_volume_attachment(inline);
    let ctrl = real_controller(
        &kube,
        conn,
        Some(Arc::new(StaticLister(PublishedNodes::new()))),
    );
    assert_eq!(
        ctrl.reconcile_va().await.expect("reconcile"),
        vec![VA_NAME.to_string()]
    );
}

#[tokio::test]
async fn without_a_volume_lister_reconcile_does_nothing() {
    let (_mock, conn) = mock_connection().await;
    let kube = FakeKube::new();
    kube.add_volume_attachment(va(true, FIN, ann()));
    let ctrl = real_controller(&kube, conn, None);
    assert!(ctrl.reconcile_va().await.expect("reconcile").is_empty());
}

#[tokio::test]
async fn status_patch_of_a_vanished_attachment_counts_as_detached() {
    let kube = FakeKube::new();
    kube.add_volume_attachment(deleted(va(true, FIN, ann())));
    // The API server deletes the object when its last finalizer goes: the status patch 404s.
    kube.prepend_reactor(
        Verb::Patch,
        resource::VOLUME_ATTACHMENTS,
        |action: &Action| {
            (action.subresource == "status")
                .then(|| ApiError::not_found(resources::VOLUME_ATTACHMENTS, VA_NAME))
        },
    );
    let result = mark_as_detached(&kube, &deleted(va(true, FIN, ann()))).await;
    let va = result.expect("not-found status patch is a success");
    assert!(va.metadata.finalizers.is_none());
    assert_eq!(kube.action_count(), 2);
}

#[test]
fn merge_patch_is_evanphx_create_merge_patch() {
    let a = json!({"a": 1, "b": {"c": [1, 2], "d": "x", "e": {"f": 1}}, "g": null, "h": true});
    let b = json!({"a": 1, "b": {"c": [1, 3], "d": "x", "e": {"f": 1}}, "g": null, "i": "new"});
    assert_eq!(
        create_merge_patch(&a, &b),
        json!({"b": {"c": [1, 3]}, "h": null, "i": "new"})
    );
    assert_eq!(create_merge_patch(&a, &a), json!({}));
    assert_eq!(
        create_merge_patch(&json!({"a": {"b": 1}}), &json!({"a": 5})),
        json!({"a": 5})
    );

    let mut doc = a.clone();
    apply_merge_patch(&mut doc, &create_merge_patch(&a, &b));
    assert_eq!(doc, b);
    // A null in a merge patch removes the key.
    apply_merge_patch(&mut doc, &json!({"b": {"e": null}}));
    assert_eq!(doc["b"], json!({"c": [1, 3], "d": "x"}));
}

#[test]
fn json_patch_tests_guard_finalizer_changes() {
    let mut doc = json!({"metadata": {"name": "pv1"}});
    // `test` null on a missing list passes (evanphx v4), then `add` creates it.
    let add = finalizer::add_finalizer_patch(None, "a");
    apply_json_patch(&mut doc, &add).expect("applies");
    assert_eq!(doc["metadata"]["finalizers"], json!(["a"]));
    // The same patch again fails its test and changes nothing.
    let before = doc.clone();
    assert!(apply_json_patch(&mut doc, &add).is_err());
    assert_eq!(doc, before);
    // Append.
    let append = finalizer::add_finalizer_patch(Some(&["a".to_string()]), "b");
    apply_json_patch(&mut doc, &append).expect("applies");
    assert_eq!(doc["metadata"]["finalizers"], json!(["a", "b"]));
    // Remove by index, guarded by its value.
    let list = ["a".to_string(), "b".to_string()];
    let remove = finalizer::remove_finalizer_patch(Some(&list), "b").expect("present");
    apply_json_patch(&mut doc, &remove).expect("applies");
    assert_eq!(doc["metadata"]["finalizers"], json!(["a"]));
    // A stale index fails atomically.
    assert!(apply_json_patch(&mut doc, &remove).is_err());
    assert_eq!(doc["metadata"]["finalizers"], json!(["a"]));
    // Empty list: test [] then replace.
    let mut doc = json!({"metadata": {"finalizers": []}});
    apply_json_patch(&mut doc, &finalizer::add_finalizer_patch(Some(&[]), "x")).expect("applies");
    assert_eq!(doc["metadata"]["finalizers"], json!(["x"]));
}

#[tokio::test]
async fn fake_write_through_updates_the_cache() {
    let kube = FakeKube::new();
    kube.add_volume_attachment(va(false, "", None));
    let patch = json!({"metadata": {"finalizers": [FIN]}});
    kube.patch_volume_attachment(VA_NAME, &patch)
        .await
        .expect("patch");
    let cached = kube.volume_attachment(VA_NAME).expect("cached");
    assert!(
        cached.metadata.finalizers.is_none(),
        "not written through by default"
    );
    kube.set_write_through(true);
    kube.patch_volume_attachment(VA_NAME, &patch)
        .await
        .expect("patch");
    let cached = kube.volume_attachment(VA_NAME).expect("cached");
    assert_eq!(cached.metadata.finalizers, Some(vec![FIN.to_string()]));
    assert_eq!(
        kube.actions()[0],
        Action::patch(
            resource::VOLUME_ATTACHMENTS,
            VA_NAME,
            PatchType::Merge,
            patch
        )
    );
    // Patching what the server does not have is a 404.
    let err = kube
        .json_patch_persistent_volume("nope", &json!([]))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
}

#[tokio::test]
async fn secrets_are_read_with_a_get_and_given_to_the_driver() {
    let (mock, conn) = mock_connection().await;
    mock.handle(
        "ControllerPublishVolume",
        |_: ControllerPublishVolumeRequest| Ok(ControllerPublishVolumeResponse::default()),
    );
    let kube = FakeKube::new();
    let mut pv: PersistentVolume = pv_with_finalizer();
    pv.spec = Some(PersistentVolumeSpec {
        csi: Some(CSIPersistentVolumeSource {
            driver: TEST_ATTACHER_NAME.to_string(),
            volume_handle: TEST_VOLUME_HANDLE.to_string(),
            controller_publish_secret_ref: Some(k8s_openapi::api::core::v1::SecretReference {
                name: Some("creds".to_string()),
                namespace: Some("ns".to_string()),
            }),
            ..Default::default()
        }),
        access_modes: Some(vec!["ReadWriteOnce".to_string()]),
        ..Default::default()
    });
    kube.add_persistent_volume(pv);
    kube.add_csi_node(csi_node());
    kube.add_volume_attachment(va(false, "", None));
    kube.add_secret(k8s_openapi::api::core::v1::Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("creds".to_string()),
            namespace: Some("ns".to_string()),
            ..Default::default()
        },
        data: Some(
            [(
                "user".to_string(),
                k8s_openapi::ByteString(b"admin".to_vec()),
            )]
            .into(),
        ),
        ..Default::default()
    });
    let ctrl = real_controller(&kube, conn, None);
    assert!(matches!(ctrl.sync_va(VA_NAME).await, SyncOutcome::Forget));
    assert_eq!(
        kube.actions()[0],
        Action::get(resource::SECRETS, "ns", "creds")
    );
    let calls = mock.calls_to("ControllerPublishVolume");
    let req = calls[0]
        .request::<ControllerPublishVolumeRequest>()
        .expect("request");
    let expected: HashMap<String, String> = [("user".to_string(), "admin".to_string())].into();
    assert_eq!(req.secrets, expected);
    let cap = req.volume_capability.as_ref().expect("capability");
    assert_eq!(
        cap.access_mode.as_ref().map(|m| m.mode),
        Some(csi_proto::csi::v1::volume_capability::access_mode::Mode::SingleNodeWriter as i32)
    );
    match &cap.access_type {
        Some(csi_proto::csi::v1::volume_capability::AccessType::Mount(mount)) => {
            assert_eq!(mount.fs_type, DEFAULT_FS_TYPE, "--default-fstype applies");
        }
        other => panic!("access type {other:?}"),
    }
}

/// The traits are object-safe and the handlers are shareable across worker tasks.
#[test]
fn handlers_are_send_sync_trait_objects() {
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn Handler>();
    assert_send_sync::<dyn KubeClient>();
    assert_send_sync::<dyn KubeListers>();
    assert_send_sync::<AttachController>();
}
