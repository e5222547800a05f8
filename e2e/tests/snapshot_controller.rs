//! snapshot-controller on the real control plane, as its ServiceAccount under the RBAC we ship:
//! a VolumeSnapshot of a bound claim gets its content (`snapcontent-<snapshot UID>`) with
//! upstream's fields; once the content's status is written (the test stands in for the
//! csi-snapshotter sidecar) the snapshot is ready with its restore size; deleting the snapshot
//! (deletion policy Delete) deletes the content; a snapshot of a claim that is not bound gets
//! upstream's Event and no content, and goes when deleted. No request is refused.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, ensure};
use csi_crd_types::snapshot::v1::{VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent};
use csi_e2e_support::storage::{StorageFixture as Fixture, WAIT};
use csi_e2e_support::{ignore_not_found, wait_until};
use csi_test_support::{ChildProcess, free_port, http_get};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const AS_SOURCE: &str = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection";
const BOUND: &str = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection";
const CONTENT_BOUND: &str = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection";
const PVC_AS_SOURCE: &str = "snapshot.storage.kubernetes.io/pvc-as-source-protection";
const BEING_DELETED: &str = "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted";

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn finalizers(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Vec<String> {
    meta.finalizers.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_content_created_bound_ready_and_deleted_under_shipped_rbac() -> anyhow::Result<()>
{
    let mut fixture = Fixture::new(
        "snapctl",
        &repo_path("controllers/snapshot-controller/deploy/rbac.yaml"),
        &[],
    )
    .await?;
    let class_name = format!("{}-snapclass", fixture.ns.name);
    let classes: Api<VolumeSnapshotClass> = Api::all(fixture.admin.clone());
    let snapshots: Api<VolumeSnapshot> = Api::namespaced(fixture.admin.clone(), &fixture.ns.name);
    let contents: Api<VolumeSnapshotContent> = Api::all(fixture.admin.clone());
    let mut content_name = None;
    let outcome = async {
        let storage_class = fixture.storage_class("data", json!({})).await?;
        let provisioner = ChildProcess::spawn(
            fixture.env.binary("csi-provisioner")?,
            [
                format!("--csi-address={}", fixture.driver.endpoint()),
                format!("--kubeconfig={}", fixture.env.kubeconfig.display()),
            ],
        )?;
        fixture.claim("data", &storage_class, json!({})).await?;
        let pvs = fixture
            .wait_bound(&["data".to_string()], WAIT, &[("csi-provisioner", &provisioner)])
            .await?;
        drop(provisioner);
        let handle = pvs["data"]
            .spec
            .clone()
            .unwrap_or_default()
            .csi
            .unwrap_or_default()
            .volume_handle;

        let class: VolumeSnapshotClass = serde_json::from_value(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": class_name},
            "driver": fixture.driver_name(),
            "deletionPolicy": "Delete",
        }))?;
        classes.create(&PostParams::default(), &class).await?;

        let http = format!("127.0.0.1:{}", free_port());
        let controller = ChildProcess::spawn(
            fixture.env.binary("snapshot-controller")?,
            [
                format!("--kubeconfig={}", fixture.kubeconfig.display()),
                "--leader-election".to_string(),
                format!("--leader-election-namespace={}", fixture.ns.name),
                format!("--http-endpoint={http}"),
                "--v=5".to_string(),
            ],
        )?;
        let processes = [("snapshot-controller", &controller)];

        let snapshot: VolumeSnapshot = serde_json::from_value(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": "snap"},
            "spec": {
                "volumeSnapshotClassName": class_name,
                "source": {"persistentVolumeClaimName": "data"},
            },
        }))?;
        let snapshot = snapshots.create(&PostParams::default(), &snapshot).await?;
        let uid = snapshot.metadata.uid.clone().context("a snapshot UID")?;
        let name = format!("snapcontent-{uid}");
        content_name = Some(name.clone());

        // The content, with upstream's name and fields; the snapshot bound to it.
        let content = wait_until(
            &format!("VolumeSnapshotContent {name} and the snapshot bound to it"),
            WAIT,
            || async {
                let content = contents.get_opt(&name).await.ok()??;
                let snapshot = snapshots.get("snap").await.ok()?;
                let bound = snapshot.status.as_ref()?.bound_volume_snapshot_content_name.as_deref()?;
                (bound == name && finalizers(&content.metadata).contains(&CONTENT_BOUND.to_string()))
                    .then_some(content)
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        let reference = &content.spec.volume_snapshot_ref;
        ensure!(
            reference.name.as_deref() == Some("snap")
                && reference.namespace.as_deref() == Some(fixture.ns.name.as_str())
                && reference.uid.as_deref() == Some(uid.as_str())
                && reference.kind.as_deref() == Some("VolumeSnapshot")
                && reference.api_version.as_deref() == Some("snapshot.storage.k8s.io/v1"),
            "volumeSnapshotRef: {reference:?}"
        );
        ensure!(content.spec.source.volume_handle.as_deref() == Some(handle.as_str()), "{:?}", content.spec.source);
        ensure!(content.spec.source.snapshot_handle.is_none());
        ensure!(content.spec.driver == fixture.driver_name(), "{}", content.spec.driver);
        ensure!(content.spec.deletion_policy == "Delete");
        ensure!(content.spec.volume_snapshot_class_name.as_deref() == Some(class_name.as_str()));
        // --prevent-volume-mode-conversion is on by default: the source's mode is kept.
        ensure!(content.spec.source_volume_mode.as_deref() == Some("Filesystem"), "{:?}", content.spec.source_volume_mode);
        // Both finalizers once the content exists (the bound one on the sync after).
        wait_until(
            "the snapshot's as-source and bound finalizers",
            WAIT,
            || async {
                let snapshot = snapshots.get("snap").await.ok()?;
                let mut list = finalizers(&snapshot.metadata);
                list.sort();
                (list == [AS_SOURCE, BOUND]).then_some(())
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        let claim = fixture.claims().get("data").await?;
        ensure!(finalizers(&claim.metadata).contains(&PVC_AS_SOURCE.to_string()), "{:?}", claim.metadata.finalizers);

        // The sidecar's part: the snapshot is cut and ready.
        contents
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "snapshotHandle": "snapshot-1",
                    "readyToUse": true,
                    "restoreSize": 1i64 << 30,
                    "creationTime": 1_700_000_000_000_000_000i64,
                }})),
            )
            .await?;
        let snapshot = wait_until(
            "the snapshot ready to use",
            WAIT,
            || async {
                let snapshot = snapshots.get("snap").await.ok()?;
                (snapshot.status.as_ref()?.ready_to_use == Some(true)).then_some(snapshot)
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        let status = snapshot.status.clone().unwrap_or_default();
        ensure!(status.restore_size.as_ref().map(|q| q.0.as_str()) == Some("1Gi"), "{status:?}");
        ensure!(status.creation_time.is_some() && status.error.is_none(), "{status:?}");
        // No snapshot of the claim is being taken any more: its finalizer goes.
        wait_until(
            "the claim's pvc-as-source-protection removed",
            WAIT,
            || async {
                let claim = fixture.claims().get("data").await.ok()?;
                (!finalizers(&claim.metadata).contains(&PVC_AS_SOURCE.to_string())).then_some(())
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        let events = fixture.events_of("snap").await?;
        for expected in [
            format!("Normal CreatingSnapshot: Waiting for a snapshot {}/snap to be created by the CSI driver.", fixture.ns.name),
            format!("Normal SnapshotCreated: Snapshot {}/snap was successfully created by the CSI driver.", fixture.ns.name),
            format!("Normal SnapshotReady: Snapshot {}/snap is ready to use.", fixture.ns.name),
        ] {
            ensure!(events.contains(&expected), "{expected:?} among the Events {events:#?}");
        }

        // Deletion with policy Delete: the content is marked and deleted; once the sidecar
        // (the test) lets it go, the snapshot's finalizers go too.
        snapshots.delete("snap", &DeleteParams::default()).await?;
        wait_until(
            "the content marked and being deleted",
            WAIT,
            || async {
                let content = contents.get_opt(&name).await.ok()??;
                let marked = content.metadata.annotations.as_ref()?.get(BEING_DELETED)? == "yes";
                (marked && content.metadata.deletion_timestamp.is_some()).then_some(())
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        contents
            .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
            .await?;
        wait_until(
            "the snapshot and its content gone",
            WAIT,
            || async {
                let snapshot = snapshots.get_opt("snap").await.ok()?;
                let content = contents.get_opt(&name).await.ok()?;
                (snapshot.is_none() && content.is_none()).then_some(())
            },
            || fixture.diagnostics(&processes),
        )
        .await?;

        // Bad input: a snapshot of a claim that is not bound (no provisioner runs now) gets an
        // error status and an Event, and no content; deleted, it goes, and leaves the claim
        // without the snapshot's finalizer.
        fixture.claim("pending", &storage_class, json!({})).await?;
        let bad: VolumeSnapshot = serde_json::from_value(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": "bad"},
            "spec": {
                "volumeSnapshotClassName": class_name,
                "source": {"persistentVolumeClaimName": "pending"},
            },
        }))?;
        let bad = snapshots.create(&PostParams::default(), &bad).await?;
        let message = "Failed to create snapshot content with error failed to get input parameters to create snapshot bad: \"the PVC pending is not yet bound to a PV, will not attempt to take a snapshot\"";
        wait_until(
            "the SnapshotContentCreationFailed Event and error status of snapshot bad",
            WAIT,
            || async {
                let events = fixture.events_of("bad").await.ok()?;
                let snapshot = snapshots.get("bad").await.ok()?;
                let error = snapshot.status?.error?.message?;
                (error == message
                    && events.contains(&format!("Warning SnapshotContentCreationFailed: {message}")))
                .then_some(())
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        let bad_content = format!("snapcontent-{}", bad.metadata.uid.unwrap_or_default());
        ensure!(contents.get_opt(&bad_content).await?.is_none(), "no content for snapshot bad");
        snapshots.delete("bad", &DeleteParams::default()).await?;
        wait_until(
            "snapshot bad gone, and the pending claim without pvc-as-source-protection",
            WAIT,
            || async {
                let gone = snapshots.get_opt("bad").await.ok()?.is_none();
                let claim = fixture.claims().get("pending").await.ok()?;
                (gone && !finalizers(&claim.metadata).contains(&PVC_AS_SOURCE.to_string()))
                    .then_some(())
            },
            || fixture.diagnostics(&processes),
        )
        .await?;

        let leases: Api<Lease> = Api::namespaced(fixture.admin.clone(), &fixture.ns.name);
        ensure!(
            leases.get_opt("snapshot-controller-leader").await?.is_some(),
            "the lease snapshot-controller-leader exists"
        );
        // Every operation ends once the controller saw both snapshots go.
        let metrics = wait_until(
            "no operation in flight",
            WAIT,
            || async {
                let (_, metrics) = http_get(&http, "/metrics").await.ok()?;
                metrics
                    .contains("snapshot_controller_operations_in_flight 0")
                    .then_some(metrics)
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        for series in [
            "snapshot_controller_operation_total_seconds_count{driver_name=",
            "operation_name=\"CreateSnapshotAndReady\",operation_status=\"success\",snapshot_type=\"dynamic\"} 1",
            "process_start_time_seconds",
        ] {
            ensure!(metrics.contains(series), "{series:?} in /metrics:\n{metrics}");
        }
        // The deletion of snap ends a DeleteSnapshot operation. That of bad ends one too when
        // the controller saw bad with its deletion timestamp before it was gone (it then
        // started one, as upstream's processSnapshotWithDeletionTimestamp does), which depends
        // on timing: one or two.
        let deletes = metrics
            .lines()
            .find(|l| {
                l.starts_with("snapshot_controller_operation_total_seconds_count{")
                    && l.contains("operation_name=\"DeleteSnapshot\",operation_status=\"success\",snapshot_type=\"dynamic\"}")
            })
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_default();
        ensure!(
            deletes == "1" || deletes == "2",
            "one or two successful DeleteSnapshot operations, not {deletes:?}, in /metrics:\n{metrics}"
        );
        ensure!(!metrics.contains("csi_sidecar_operations_seconds"), "{metrics}");
        let (status, _) = http_get(&http, "/healthz/leader-election").await?;
        ensure!(status == 200, "/healthz/leader-election: {status}");
        fixture.assert_nothing_forbidden()?;
        drop(controller);
        anyhow::Ok(())
    }
    .await;
    // Leave nothing behind, whatever happened.
    let no_finalizers = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    if snapshots.get_opt("snap").await.ok().flatten().is_some() {
        let _ = snapshots
            .patch("snap", &PatchParams::default(), &no_finalizers)
            .await;
        let _ = ignore_not_found(snapshots.delete("snap", &DeleteParams::default()).await);
    }
    if let Some(name) = content_name
        && contents.get_opt(&name).await.ok().flatten().is_some()
    {
        let _ = contents
            .patch(&name, &PatchParams::default(), &no_finalizers)
            .await;
        let _ = ignore_not_found(contents.delete(&name, &DeleteParams::default()).await);
    }
    let _ = ignore_not_found(classes.delete(&class_name, &DeleteParams::default()).await);
    if let Ok(claim) = fixture.claims().get("data").await
        && finalizers(&claim.metadata).contains(&PVC_AS_SOURCE.to_string())
    {
        let _ = fixture
            .claims()
            .patch("data", &PatchParams::default(), &no_finalizers)
            .await;
    }
    fixture.finish(outcome).await
}
