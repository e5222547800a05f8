//! csi-snapshotter on the real control plane, under the RBAC we ship, as a ServiceAccount,
//! against Kubernetes' mock CSI driver as a separate process (it has CreateSnapshot,
//! DeleteSnapshot and ListSnapshots, no group snapshots) and, for group snapshots, our
//! in-process mock driver. The snapshot-controller does not run: the tests write the
//! (group) snapshot contents as it would.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, ensure};
use csi_crd_types::{VolumeSnapshotClass, VolumeSnapshotContent};
use csi_e2e_support::storage::{StorageFixture as Fixture, WAIT};
use csi_e2e_support::{ignore_not_found, wait_until};
use csi_test_support::ChildProcess;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The UID the snapshot-controller would have copied from the VolumeSnapshot.
const SNAPSHOT_UID: &str = "6f1c1d52-0b7e-4c55-9a53-2f1e1d3c0001";

/// Whether the driver still has snapshot `id` (ListSnapshots by ID).
async fn driver_has_snapshot(fixture: &Fixture, id: &str) -> anyhow::Result<bool> {
    use csi_proto::csi::v1::ListSnapshotsRequest;
    use csi_proto::csi::v1::controller_client::ControllerClient;
    let channel = csi_test_support::unix_channel(fixture.driver.socket()).await?;
    let entries = ControllerClient::new(channel)
        .list_snapshots(ListSnapshotsRequest {
            snapshot_id: id.to_string(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    Ok(entries
        .iter()
        .any(|e| e.snapshot.as_ref().is_some_and(|s| s.snapshot_id == id)))
}

fn content(name: &str, ns: &str, spec: serde_json::Value) -> anyhow::Result<VolumeSnapshotContent> {
    let mut object = json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotContent",
        "metadata": {"name": name},
        "spec": spec,
    });
    object["spec"]["volumeSnapshotRef"]["namespace"] = json!(ns);
    Ok(serde_json::from_value(object)?)
}

#[tokio::test(flavor = "multi_thread")]
async fn takes_reports_and_deletes_snapshots_under_shipped_rbac() -> anyhow::Result<()> {
    let fixture = Fixture::new(
        "snapshotter",
        &repo_path("sidecars/external-snapshotter/deploy/rbac.yaml"),
        &[],
    )
    .await?;
    let ns = fixture.ns.name.clone();
    let contents: Api<VolumeSnapshotContent> = Api::all(fixture.admin.clone());
    let classes: Api<VolumeSnapshotClass> = Api::all(fixture.admin.clone());
    let (pre, dynamic, class) = (
        format!("{ns}-pre"),
        format!("{ns}-dynamic"),
        format!("{ns}-class"),
    );
    let outcome = async {
        let volume = fixture.driver.create_volume_of("source", 1 << 30).await?;
        let (existing, size) = fixture.driver.create_snapshot("existing", &volume).await?;
        classes
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "snapshot.storage.k8s.io/v1",
                    "kind": "VolumeSnapshotClass",
                    "metadata": {"name": class},
                    "driver": fixture.driver_name(),
                    "deletionPolicy": "Delete",
                    "parameters": {"color": "blue"},
                }))?,
            )
            .await?;
        // A pre-provisioned content (the snapshot exists) and a dynamic one (to be taken),
        // bound as the snapshot-controller binds them.
        contents
            .create(
                &PostParams::default(),
                &content(
                    &pre,
                    &ns,
                    json!({
                        "driver": fixture.driver_name(),
                        "deletionPolicy": "Retain",
                        "source": {"snapshotHandle": existing},
                        "volumeSnapshotRef": {"name": "pre"},
                    }),
                )?,
            )
            .await?;
        let mut dynamic_content = content(
            &dynamic,
            &ns,
            json!({
                "driver": fixture.driver_name(),
                "deletionPolicy": "Delete",
                "source": {"volumeHandle": volume},
                "volumeSnapshotClassName": class,
                "volumeSnapshotRef": {"name": "dynamic", "uid": SNAPSHOT_UID},
            }),
        )?;
        dynamic_content.metadata.finalizers = Some(vec![
            csi_snapshot_utils::VOLUME_SNAPSHOT_CONTENT_FINALIZER.into(),
        ]);
        contents
            .create(&PostParams::default(), &dynamic_content)
            .await?;

        let metrics_address = format!("127.0.0.1:{}", csi_test_support::free_port());
        let mut args = fixture.common_args();
        args.push(format!("--http-endpoint={metrics_address}"));
        let snapshotter = ChildProcess::spawn(fixture.env.binary("csi-snapshotter")?, args)?;
        let processes = [("csi-snapshotter", &snapshotter)];
        let ready = |name: String| {
            let contents = contents.clone();
            move || {
                let contents = contents.clone();
                let name = name.clone();
                async move {
                    let content = contents.get(&name).await.ok()?;
                    let status = content.status.clone()?;
                    (status.ready_to_use == Some(true)).then_some(content)
                }
            }
        };

        // The pre-provisioned content: readiness and size from ListSnapshots.
        let got = wait_until(
            "the pre-provisioned content ready",
            WAIT,
            ready(pre.clone()),
            || fixture.diagnostics(&processes),
        )
        .await?;
        let status = got.status.unwrap_or_default();
        ensure!(
            status.snapshot_handle.as_deref() == Some(existing.as_str())
                && status.restore_size == (size > 0).then_some(size)
                && status.creation_time.is_some(),
            "pre-provisioned status: {status:?}"
        );
        ensure!(
            fixture
                .driver
                .grpc_calls()
                .iter()
                .any(|c| c.short_method() == "ListSnapshots"
                    && c.request["snapshot_id"] == existing.as_str()),
            "ListSnapshots of {existing}"
        );

        // The dynamic content: CreateSnapshot named after the VolumeSnapshot's UID, with the
        // class parameters and the extra metadata left out (the flag is off).
        let got = wait_until(
            "the dynamic content ready",
            WAIT,
            ready(dynamic.clone()),
            || fixture.diagnostics(&processes),
        )
        .await?;
        let taken = got
            .status
            .clone()
            .unwrap_or_default()
            .snapshot_handle
            .context("a snapshot handle")?;
        let create = fixture
            .driver
            .grpc_calls()
            .into_iter()
            .find(|c| c.short_method() == "CreateSnapshot" && c.request["name"] != "existing")
            .context("a CreateSnapshot")?;
        ensure!(
            create.request["name"] == format!("snapshot-{SNAPSHOT_UID}").as_str()
                && create.request["source_volume_id"] == volume.as_str()
                && create.request["parameters"] == json!({"color": "blue"}),
            "CreateSnapshot: {}",
            create.request
        );
        ensure!(
            !got.metadata
                .annotations
                .unwrap_or_default()
                .contains_key(csi_snapshot_utils::ANN_VOLUME_SNAPSHOT_BEING_CREATED),
            "the being-created annotation is gone once the snapshot is cut"
        );
        ensure!(driver_has_snapshot(&fixture, &taken).await?);

        // Deletion as the snapshot-controller starts it: the being-deleted annotation, then
        // the delete; policy Delete removes the snapshot from the driver and the finalizer.
        contents
            .patch(
                &dynamic,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {
                    csi_snapshot_utils::ANN_VOLUME_SNAPSHOT_BEING_DELETED: "yes"
                }}})),
            )
            .await?;
        contents.delete(&dynamic, &DeleteParams::default()).await?;
        wait_until(
            "the dynamic content gone",
            WAIT,
            || async { matches!(contents.get_opt(&dynamic).await, Ok(None)).then_some(()) },
            || fixture.diagnostics(&processes),
        )
        .await?;
        ensure!(
            fixture
                .driver
                .grpc_calls()
                .iter()
                .any(|c| c.short_method() == "DeleteSnapshot"
                    && c.request["snapshot_id"] == taken.as_str()),
            "DeleteSnapshot of {taken}"
        );
        ensure!(
            !driver_has_snapshot(&fixture, &taken).await?,
            "the driver still has {taken}"
        );

        // Upstream's lease: external-snapshotter-leader-<sanitized driver>.
        let lease = format!(
            "external-snapshotter-leader-{}",
            fixture.driver_name().replace('.', "-")
        );
        let leases: Api<Lease> = Api::namespaced(fixture.admin.clone(), &ns);
        ensure!(leases.get_opt(&lease).await?.is_some(), "the lease {lease}");
        // Upstream's metrics: the CSI calls by method, the queues by name.
        let (code, metrics) = csi_test_support::http_get(&metrics_address, "/metrics").await?;
        ensure!(code == 200, "GET /metrics: {code}");
        for expected in [
            "csi_sidecar_operations_seconds_count{driver_name=\"",
            "method_name=\"/csi.v1.Controller/CreateSnapshot\"",
            "method_name=\"/csi.v1.Controller/DeleteSnapshot\"",
            "method_name=\"/csi.v1.Controller/ListSnapshots\"",
            "workqueue_adds_total{name=\"csi-snapshotter-content\"}",
            "workqueue_adds_total{name=\"csi-snapshotter-groupsnapshotcontent\"}",
        ] {
            ensure!(
                metrics.contains(expected),
                "{expected} in /metrics:\n{metrics}"
            );
        }
        fixture.assert_nothing_forbidden()?;
        drop(snapshotter);
        anyhow::Ok(())
    }
    .await;
    let no_finalizers = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    for name in [&pre, &dynamic] {
        let _ = ignore_not_found(
            contents
                .patch(name, &PatchParams::default(), &no_finalizers)
                .await,
        );
        let _ = ignore_not_found(contents.delete(name, &DeleteParams::default()).await);
    }
    let _ = ignore_not_found(classes.delete(&class, &DeleteParams::default()).await);
    fixture.finish(outcome).await
}

/// A dynamic VolumeGroupSnapshotContent: CreateVolumeGroupSnapshot, the members in the status
/// (through the group CRD's `v1`, stored as `v1beta2`), then DeleteVolumeGroupSnapshot with
/// the members' IDs when it is deleted with policy Delete.
#[tokio::test(flavor = "multi_thread")]
async fn takes_and_deletes_a_group_snapshot_under_shipped_rbac() -> anyhow::Result<()> {
    use csi_crd_types::{VolumeGroupSnapshotClass, VolumeGroupSnapshotContent};
    use csi_proto::csi::v1::controller_service_capability::rpc::Type as Rpc;
    use csi_proto::csi::v1::group_controller_service_capability::rpc::Type as GroupRpc;
    use csi_proto::csi::v1::{
        CreateVolumeGroupSnapshotRequest, CreateVolumeGroupSnapshotResponse,
        DeleteVolumeGroupSnapshotRequest, DeleteVolumeGroupSnapshotResponse, Snapshot,
        VolumeGroupSnapshot,
    };

    let fixture = Fixture::new(
        "groupsnapshotter",
        &repo_path("sidecars/external-snapshotter/deploy/rbac.yaml"),
        &[],
    )
    .await?;
    let ns = fixture.ns.name.clone();
    let contents: Api<VolumeGroupSnapshotContent> = Api::all(fixture.admin.clone());
    let classes: Api<VolumeGroupSnapshotClass> = Api::all(fixture.admin.clone());
    let (name, class) = (format!("{ns}-group"), format!("{ns}-gclass"));
    let driver = csi_test_support::MockCsiDriver::start().await?;
    let outcome = async {
        driver.set_driver_name(fixture.driver_name());
        driver.set_controller_capabilities([Rpc::CreateDeleteSnapshot]);
        driver.set_group_controller_capabilities([GroupRpc::CreateDeleteGetVolumeGroupSnapshot]);
        driver.handle(
            "CreateVolumeGroupSnapshot",
            |req: CreateVolumeGroupSnapshotRequest| {
                let snapshots = req
                    .source_volume_ids
                    .iter()
                    .map(|volume| Snapshot {
                        snapshot_id: format!("snap-{volume}"),
                        source_volume_id: volume.clone(),
                        size_bytes: 1 << 30,
                        ready_to_use: true,
                        creation_time: Some(prost_types::Timestamp {
                            seconds: 1_764_460_800,
                            nanos: 0,
                        }),
                        group_snapshot_id: "group-1".into(),
                        accessible_topology: Vec::new(),
                    })
                    .collect();
                Ok(CreateVolumeGroupSnapshotResponse {
                    group_snapshot: Some(VolumeGroupSnapshot {
                        group_snapshot_id: "group-1".into(),
                        snapshots,
                        creation_time: Some(prost_types::Timestamp {
                            seconds: 1_764_460_800,
                            nanos: 0,
                        }),
                        ready_to_use: true,
                    }),
                })
            },
        );
        driver.handle(
            "DeleteVolumeGroupSnapshot",
            |_: DeleteVolumeGroupSnapshotRequest| Ok(DeleteVolumeGroupSnapshotResponse {}),
        );
        classes
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "groupsnapshot.storage.k8s.io/v1",
                    "kind": "VolumeGroupSnapshotClass",
                    "metadata": {"name": class},
                    "driver": fixture.driver_name(),
                    "deletionPolicy": "Delete",
                    "parameters": {"tier": "gold"},
                }))?,
            )
            .await?;
        contents
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "groupsnapshot.storage.k8s.io/v1",
                    "kind": "VolumeGroupSnapshotContent",
                    "metadata": {
                        "name": name,
                        "finalizers": [csi_snapshot_utils::VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER],
                    },
                    "spec": {
                        "driver": fixture.driver_name(),
                        "deletionPolicy": "Delete",
                        "volumeGroupSnapshotClassName": class,
                        "source": {"volumeHandles": ["vol-a", "vol-b"]},
                        "volumeGroupSnapshotRef": {
                            "name": "group", "namespace": ns, "uid": SNAPSHOT_UID,
                        },
                    },
                }))?,
            )
            .await?;
        let mut args = fixture.common_args();
        args[0] = format!("--csi-address={}", driver.endpoint());
        let snapshotter = ChildProcess::spawn(fixture.env.binary("csi-snapshotter")?, args)?;
        let processes = [("csi-snapshotter", &snapshotter)];

        let got = wait_until(
            "the group content ready",
            WAIT,
            || async {
                let content = contents.get(&name).await.ok()?;
                let ready = content.status.as_ref()?.ready_to_use == Some(true);
                ready.then_some(content)
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        let status = got.status.unwrap_or_default();
        ensure!(
            status.volume_group_snapshot_handle.as_deref() == Some("group-1")
                && status.creation_time.is_some()
                && status
                    .volume_snapshot_info_list
                    .iter()
                    .map(|i| (
                        i.volume_handle.as_str(),
                        i.snapshot_handle.as_str(),
                        i.restore_size
                    ))
                    .collect::<Vec<_>>()
                    == [
                        ("vol-a", "snap-vol-a", Some(1 << 30)),
                        ("vol-b", "snap-vol-b", Some(1 << 30))
                    ],
            "group status: {status:?}"
        );
        let create = driver.calls_to("CreateVolumeGroupSnapshot");
        let request = create[0]
            .request::<CreateVolumeGroupSnapshotRequest>()
            .context("a CreateVolumeGroupSnapshot")?;
        ensure!(
            request.name == format!("groupsnapshot-{SNAPSHOT_UID}")
                && request.source_volume_ids == ["vol-a", "vol-b"]
                && request.parameters.get("tier").map(String::as_str) == Some("gold")
                && request.parameters.len() == 1,
            "CreateVolumeGroupSnapshot: {request:?}"
        );

        contents
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {
                    csi_snapshot_utils::ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED: "yes"
                }}})),
            )
            .await?;
        contents.delete(&name, &DeleteParams::default()).await?;
        wait_until(
            "the group content gone",
            WAIT,
            || async { matches!(contents.get_opt(&name).await, Ok(None)).then_some(()) },
            || fixture.diagnostics(&processes),
        )
        .await?;
        let delete = driver.calls_to("DeleteVolumeGroupSnapshot");
        let request = delete
            .first()
            .and_then(|c| c.request::<DeleteVolumeGroupSnapshotRequest>())
            .context("a DeleteVolumeGroupSnapshot")?;
        ensure!(
            request.group_snapshot_id == "group-1"
                && request.snapshot_ids == ["snap-vol-a", "snap-vol-b"],
            "DeleteVolumeGroupSnapshot: {request:?}"
        );
        fixture.assert_nothing_forbidden()?;
        drop(snapshotter);
        anyhow::Ok(())
    }
    .await;
    let no_finalizers = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    let _ = ignore_not_found(
        contents
            .patch(&name, &PatchParams::default(), &no_finalizers)
            .await,
    );
    let _ = ignore_not_found(contents.delete(&name, &DeleteParams::default()).await);
    let _ = ignore_not_found(classes.delete(&class, &DeleteParams::default()).await);
    fixture.finish(outcome).await
}

/// Without access to the group snapshot API (here: RBAC without its rules, which upstream's
/// check cannot tell from absent CRDs), group snapshots are off with upstream's warning and
/// snapshots still work.
#[tokio::test(flavor = "multi_thread")]
async fn runs_without_group_snapshots_when_their_api_is_unavailable() -> anyhow::Result<()> {
    let shipped =
        std::fs::read_to_string(repo_path("sidecars/external-snapshotter/deploy/rbac.yaml"))?;
    let mut rbac = String::new();
    let mut skip = false;
    for line in shipped.lines() {
        if line.starts_with("  - apiGroups:") {
            skip = line.contains("groupsnapshot.storage.k8s.io");
        } else if !line.starts_with("    ") {
            skip = false;
        }
        if !skip {
            rbac.push_str(line);
            rbac.push('\n');
        }
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("rbac.yaml");
    std::fs::write(&path, rbac)?;
    let fixture = Fixture::new("nogroupsnapshots", &path, &[]).await?;
    let contents: Api<VolumeSnapshotContent> = Api::all(fixture.admin.clone());
    let name = format!("{}-pre", fixture.ns.name);
    let outcome = async {
        let volume = fixture.driver.create_volume("source").await?;
        let (existing, _) = fixture.driver.create_snapshot("existing", &volume).await?;
        contents
            .create(
                &PostParams::default(),
                &content(
                    &name,
                    &fixture.ns.name,
                    json!({
                        "driver": fixture.driver_name(),
                        "deletionPolicy": "Retain",
                        "source": {"snapshotHandle": existing},
                        "volumeSnapshotRef": {"name": "pre"},
                    }),
                )?,
            )
            .await?;
        let snapshotter = ChildProcess::spawn(
            fixture.env.binary("csi-snapshotter")?,
            fixture.common_args(),
        )?;
        let processes = [("csi-snapshotter", &snapshotter)];
        wait_until(
            "the content ready",
            WAIT,
            || async {
                let content = contents.get(&name).await.ok()?;
                (content.status?.ready_to_use == Some(true)).then_some(())
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        let logs = snapshotter.logs();
        ensure!(
            logs.contains("VolumeGroupSnapshot CRDs were not found; disabling the VolumeGroupSnapshot feature for this run"),
            "upstream's warning in the log:\n{logs}"
        );
        drop(snapshotter);
        anyhow::Ok(())
    }
    .await;
    let _ = ignore_not_found(contents.delete(&name, &DeleteParams::default()).await);
    fixture.finish(outcome).await
}
