//! The objects of the snapshot bench: a claim bound to a volume of the bench driver (the source
//! of every snapshot), a VolumeSnapshotClass of the driver; N VolumeSnapshots created at once,
//! each timed from its create request until a watch sees it readyToUse, then deleted at once,
//! each timed until it is gone, and the phase over once the driver's contents are gone too;
//! and, for the idle measurement, ready pre-provisioned snapshots (a VolumeSnapshot and its
//! bound content, with the finalizers and status the controllers give them) created fast.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::workload::{self, DRIVER, Phase};

/// The namespace of the workload's snapshots and their source claim.
pub const NAMESPACE: &str = "csi-bench-snapshot";
/// The namespace of the idle measurement's snapshots.
pub const SCALE_NAMESPACE: &str = "csi-bench-snapshot-scale";
pub const CLASS: &str = "csi-bench-snapshot";
const SOURCE: &str = "csi-bench-snapshot-source";
const LABEL: &str = "csi-bench-snapshot";
/// Requests in flight when creating the idle measurement's objects.
const SCALE_CONCURRENCY: usize = 64;

const VS_FINALIZERS: [&str; 2] = [
    "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection",
    "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection",
];
const VSC_FINALIZER: &str = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection";

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", kind),
        plural,
    )
}

pub fn snapshots(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("VolumeSnapshot", "volumesnapshots"),
    )
}

pub fn contents(client: &Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &resource("VolumeSnapshotContent", "volumesnapshotcontents"),
    )
}

fn classes(client: &Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &resource("VolumeSnapshotClass", "volumesnapshotclasses"),
    )
}

fn snapshot_name(i: usize) -> String {
    format!("csi-bench-snap-{i:05}")
}

fn dynamic(value: Value) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(value)?)
}

async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    match namespaces
        .create(&PostParams::default(), &serde_json::from_value(ns)?)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(anyhow::Error::from(e).context(format!("creating namespace {name}"))),
    }
}

fn exists_ok<T>(result: Result<T, kube::Error>, what: &str) -> anyhow::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(anyhow::Error::from(e).context(what.to_string())),
    }
}

/// The namespaces, the class, and the source claim bound (by kube-controller-manager) to a
/// PV of the driver's built-in volume `1` (the mock driver snapshots any volume ID).
pub async fn setup(client: &Client) -> anyhow::Result<()> {
    ensure_namespace(client, NAMESPACE).await?;
    ensure_namespace(client, SCALE_NAMESPACE).await?;
    exists_ok(
        classes(client)
            .create(
                &PostParams::default(),
                &dynamic(json!({
                    "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
                    "metadata": {"name": CLASS}, "driver": DRIVER, "deletionPolicy": "Delete",
                }))?,
            )
            .await,
        "creating the VolumeSnapshotClass",
    )?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv: PersistentVolume = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": SOURCE, "labels": {LABEL: "true"}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": NAMESPACE, "name": SOURCE},
            "csi": {"driver": DRIVER, "volumeHandle": "1"},
        },
    }))?;
    exists_ok(
        pvs.create(&PostParams::default(), &pv).await,
        "creating the source PV",
    )?;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": SOURCE},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "",
            "volumeName": SOURCE,
        },
    }))?;
    exists_ok(
        pvcs.create(&PostParams::default(), &pvc).await,
        "creating the source claim",
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let claim = pvcs.get(SOURCE).await?;
        if claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the source claim {NAMESPACE}/{SOURCE} was not Bound within 60s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Removes the snapshots and contents of the bench (finalizers first: the controllers are
/// stopped), the class, the source claim and PV, and the namespaces.
pub async fn cleanup(client: &Client) -> anyhow::Result<()> {
    clear(client, NAMESPACE).await?;
    clear(client, SCALE_NAMESPACE).await?;
    let _ = classes(client)
        .delete(CLASS, &DeleteParams::default())
        .await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    let _ = pvcs.delete(SOURCE, &DeleteParams::default()).await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let _ = pvs.delete(SOURCE, &DeleteParams::default()).await;
    let no_finalizers = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    let _ = pvcs
        .patch(SOURCE, &PatchParams::default(), &no_finalizers)
        .await;
    let _ = pvs
        .patch(SOURCE, &PatchParams::default(), &no_finalizers)
        .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [NAMESPACE, SCALE_NAMESPACE] {
        let _ = namespaces.delete(ns, &DeleteParams::default()).await;
    }
    Ok(())
}

/// Removes the VolumeSnapshots of `namespace` and every content of the bench driver,
/// finalizers included.
pub async fn clear(client: &Client, namespace: &str) -> anyhow::Result<()> {
    delete_all(snapshots(client, namespace), |_| true).await?;
    delete_all(contents(client), |c| {
        c.data["spec"]["driver"].as_str() == Some(DRIVER)
    })
    .await
}

async fn delete_all(
    api: Api<DynamicObject>,
    select: impl Fn(&DynamicObject) -> bool,
) -> anyhow::Result<()> {
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|o| select(o))
        .filter_map(|o| o.metadata.name)
        .collect();
    let no_finalizers = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    futures::stream::iter(names)
        .map(|name| {
            let (api, patch) = (api.clone(), no_finalizers.clone());
            async move {
                let _ = api.delete(&name, &DeleteParams::default()).await;
                match api.patch(&name, &PatchParams::default(), &patch).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    Err(e) => Err(anyhow::Error::from(e).context(format!("clearing {name}"))),
                }
            }
        })
        .buffer_unordered(SCALE_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// How many contents of the bench driver exist.
pub async fn driver_contents(client: &Client) -> anyhow::Result<usize> {
    Ok(contents(client)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|c| c.data["spec"]["driver"].as_str() == Some(DRIVER))
        .count())
}

#[derive(Debug)]
enum Seen {
    Ready(String),
    Gone(String),
}

/// Creates N snapshots of the source claim at once, waits until all are readyToUse, deletes
/// them at once, waits until all are gone and the driver's contents with them.
pub async fn create_delete(client: &Client, n: usize) -> anyhow::Result<(Phase, Phase)> {
    let api = snapshots(client, NAMESPACE);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let watch = tokio::spawn(watch(api.clone(), tx, ready_tx));
    ready_rx.await.context("the VolumeSnapshot watch ended")?;
    let limit = Duration::from_secs(120) + Duration::from_millis(300 * n as u64);

    let start = Instant::now();
    let sent = workload::send_all(n, snapshot_name, |i| {
        let api = api.clone();
        async move {
            let snapshot = dynamic(json!({
                "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                "metadata": {"name": snapshot_name(i), "labels": {LABEL: "true"}},
                "spec": {
                    "volumeSnapshotClassName": CLASS,
                    "source": {"persistentVolumeClaimName": SOURCE},
                },
            }))?;
            api.create(&PostParams::default(), &snapshot).await?;
            Ok(())
        }
    })
    .await
    .context("creating VolumeSnapshots")?;
    let ready = workload::collect(
        &mut rx,
        &sent,
        start,
        limit,
        "VolumeSnapshots readyToUse",
        |s| match s {
            Seen::Ready(name) => Some(name),
            Seen::Gone(_) => None,
        },
    )
    .await?;

    let start = Instant::now();
    let sent = workload::send_all(n, snapshot_name, |i| {
        let api = api.clone();
        async move {
            api.delete(&snapshot_name(i), &DeleteParams::default())
                .await?;
            Ok(())
        }
    })
    .await
    .context("deleting VolumeSnapshots")?;
    let mut deleted = workload::collect(
        &mut rx,
        &sent,
        start,
        limit,
        "VolumeSnapshots deleted",
        |s| match s {
            Seen::Gone(name) => Some(name),
            Seen::Ready(_) => None,
        },
    )
    .await?;
    watch.abort();
    let deadline = Instant::now() + limit;
    loop {
        let left = driver_contents(client).await?;
        if left == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{left} VolumeSnapshotContents of the bench driver left after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    deleted.total_s = start.elapsed().as_secs_f64();
    Ok((ready, deleted))
}

async fn watch(
    api: Api<DynamicObject>,
    tx: mpsc::UnboundedSender<(Seen, Instant)>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let stream = watcher(
        api,
        watcher::Config::default().labels(&format!("{LABEL}=true")),
    );
    futures::pin_mut!(stream);
    let mut ready = Some(ready);
    while let Some(event) = stream.next().await {
        let now = Instant::now();
        let seen = match event {
            Ok(watcher::Event::InitDone) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                None
            }
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))
                if o.data["status"]["readyToUse"].as_bool() == Some(true) =>
            {
                Some(Seen::Ready(o.metadata.name.unwrap_or_default()))
            }
            Ok(watcher::Event::Delete(o)) => Some(Seen::Gone(o.metadata.name.unwrap_or_default())),
            _ => None,
        };
        if let Some(seen) = seen
            && tx.send((seen, now)).is_err()
        {
            return;
        }
    }
}

/// Creates ready pre-provisioned snapshots `from..to` in [`SCALE_NAMESPACE`] as the
/// controllers leave them (a VolumeSnapshot bound to its content, both with their finalizers
/// and a ready status), [`SCALE_CONCURRENCY`] at a time: four requests each.
pub async fn create_scale_snapshots(client: &Client, from: usize, to: usize) -> anyhow::Result<()> {
    let vs_api = snapshots(client, SCALE_NAMESPACE);
    let vsc_api = contents(client);
    futures::stream::iter(from..to)
        .map(|i| {
            let (vs_api, vsc_api) = (vs_api.clone(), vsc_api.clone());
            async move {
                let name = format!("csi-bench-scale-snap-{i:05}");
                let content = format!("csi-bench-scale-content-{i:05}");
                let vs = vs_api
                    .create(
                        &PostParams::default(),
                        &dynamic(json!({
                            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                            "metadata": {"name": name, "finalizers": VS_FINALIZERS},
                            "spec": {"source": {"volumeSnapshotContentName": content}},
                        }))?,
                    )
                    .await
                    .with_context(|| format!("creating VolumeSnapshot {name}"))?;
                vsc_api
                    .create(
                        &PostParams::default(),
                        &dynamic(json!({
                            "apiVersion": "snapshot.storage.k8s.io/v1",
                            "kind": "VolumeSnapshotContent",
                            "metadata": {"name": content, "finalizers": [VSC_FINALIZER]},
                            "spec": {
                                "deletionPolicy": "Retain",
                                "driver": DRIVER,
                                "source": {"snapshotHandle": format!("scale-{i:05}")},
                                "volumeSnapshotRef": {
                                    "namespace": SCALE_NAMESPACE, "name": name,
                                    "uid": vs.metadata.uid,
                                },
                            },
                        }))?,
                    )
                    .await
                    .with_context(|| format!("creating VolumeSnapshotContent {content}"))?;
                let status = |s: Value| Patch::Merge(json!({"status": s}));
                vsc_api
                    .patch_status(
                        &content,
                        &PatchParams::default(),
                        &status(json!({
                            "readyToUse": true,
                            "snapshotHandle": format!("scale-{i:05}"),
                            "restoreSize": 0,
                        })),
                    )
                    .await
                    .with_context(|| format!("status of {content}"))?;
                vs_api
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &status(json!({
                            "boundVolumeSnapshotContentName": content,
                            "readyToUse": true,
                            "restoreSize": "0",
                        })),
                    )
                    .await
                    .with_context(|| format!("status of {name}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(SCALE_CONCURRENCY)
        .try_collect::<()>()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic() {
        assert_eq!(snapshot_name(7), "csi-bench-snap-00007");
        assert_eq!(
            resource("VolumeSnapshot", "volumesnapshots").api_version,
            "snapshot.storage.k8s.io/v1"
        );
    }
}
