//! The attacher workload: N VolumeAttachments created at once, timed until attached, then
//! deleted, timed until gone. Deterministic: the same names, volumes and order every run.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use csi_proto::csi::v1 as csi;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::{CSINode, VolumeAttachment};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde::Serialize;
use tokio::sync::mpsc;

use super::ScaleKind;

pub const DRIVER: &str = "bench.csi.k8s.io";
pub const NODE: &str = "csi-bench-node";
const LABEL: &str = "csi-bench";
const SELECTOR: &str = "csi-bench=true";
/// Requests in flight when creating or deleting "at once".
pub(super) const CONCURRENCY: usize = 32;
/// The mock driver's own volumes are "1".."3"; CreateVolume numbers the next ones from 4.
const FIRST_CREATED_ID: usize = 4;

fn pv_name(i: usize) -> String {
    format!("csi-bench-pv-{i:05}")
}

fn va_name(i: usize) -> String {
    format!("csi-bench-va-{i:05}")
}

/// The volume id volume `i` gets from a fresh mock driver when created in order.
fn volume_id(i: usize) -> String {
    (FIRST_CREATED_ID + i).to_string()
}

/// Creates volumes 0..n in a fresh driver, in order, so that their ids are [`volume_id`].
pub async fn create_volumes(socket: &Path, n: usize) -> anyhow::Result<()> {
    let channel = csi_test_support::unix_channel(socket).await?;
    let mut controller = csi::controller_client::ControllerClient::new(channel);
    for i in 0..n {
        let volume = controller
            .create_volume(csi::CreateVolumeRequest {
                name: format!("csi-bench-volume-{i:05}"),
                capacity_range: Some(csi::CapacityRange {
                    required_bytes: 1 << 30,
                    limit_bytes: 0,
                }),
                volume_capabilities: vec![mount_capability()],
                ..Default::default()
            })
            .await
            .with_context(|| format!("CreateVolume {i}"))?
            .into_inner()
            .volume
            .context("CreateVolume returned no volume")?;
        if volume.volume_id != volume_id(i) {
            bail!(
                "the driver is not fresh: volume {i} got id {:?}, not {:?}",
                volume.volume_id,
                volume_id(i)
            );
        }
    }
    Ok(())
}

fn mount_capability() -> csi::VolumeCapability {
    csi::VolumeCapability {
        access_mode: Some(csi::volume_capability::AccessMode {
            mode: csi::volume_capability::access_mode::Mode::SingleNodeWriter as i32,
        }),
        access_type: Some(csi::volume_capability::AccessType::Mount(
            csi::volume_capability::MountVolume::default(),
        )),
    }
}

/// The Node, its CSINode (driver -> node id = driver name, as the mock driver wants) and N PVs.
pub async fn setup(client: &Client, n: usize) -> anyhow::Result<()> {
    cleanup(client).await?;
    let params = PatchParams::apply("csi-sidecars-bench").force();
    let node: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "labels": {LABEL: "true"}}
    }))?;
    Api::<Node>::all(client.clone())
        .patch(NODE, &params, &Patch::Apply(&node))
        .await?;
    let csinode: CSINode = serde_json::from_value(serde_json::json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
        "metadata": {"name": NODE, "labels": {LABEL: "true"}},
        "spec": {"drivers": [{"name": DRIVER, "nodeID": DRIVER}]}
    }))?;
    Api::<CSINode>::all(client.clone())
        .patch(NODE, &params, &Patch::Apply(&csinode))
        .await?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    futures::stream::iter(0..n)
        .map(|i| {
            let pvs = pvs.clone();
            async move {
                let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "PersistentVolume",
                    "metadata": {"name": pv_name(i), "labels": {LABEL: "true"}},
                    "spec": {
                        "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "",
                        "persistentVolumeReclaimPolicy": "Retain",
                        "csi": {"driver": DRIVER, "volumeHandle": volume_id(i)}
                    }
                }))?;
                pvs.create(&PostParams::default(), &pv).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await
        .context("creating PersistentVolumes")
}

/// Removes the attacher's finalizers from the PVs, so that every run starts from the same
/// state (upstream and ours add a PV finalizer on the first attach and keep it until the PV is
/// deleted: without this, only the first configuration would pay for those patches).
pub async fn reset_pvs(client: &Client) -> anyhow::Result<()> {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let names: Vec<String> = pvs
        .list_metadata(&ListParams::default().labels(SELECTOR))
        .await?
        .items
        .into_iter()
        .filter(|o| {
            o.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| !f.is_empty())
        })
        .filter_map(|o| o.metadata.name)
        .collect();
    let patch = serde_json::json!({"metadata": {"finalizers": null}});
    futures::stream::iter(names)
        .map(|name| {
            let pvs = pvs.clone();
            let patch = patch.clone();
            async move {
                pvs.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await
        .context("removing PV finalizers")
}

/// Creates (or keeps) the namespace `name` with the label `label=true`. One that is still being
/// deleted (a previous run's cleanup) is waited out first: applied to while terminating, it
/// would be gone a moment later, and requests into it would fail.
pub(super) async fn namespace(client: &Client, name: &str, label: &str) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(180);
    while let Some(ns) = namespaces.get_opt(name).await? {
        if ns.metadata.deletion_timestamp.is_none() {
            break;
        }
        if Instant::now() > deadline {
            bail!("namespace {name} is still being deleted");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {label: "true"}}
    }))?;
    namespaces
        .patch(
            name,
            &PatchParams::apply("csi-sidecars-bench").force(),
            &Patch::Apply(&ns),
        )
        .await?;
    Ok(())
}

/// Removes every object the benchmark made (finalizers included: the attachers are stopped).
pub async fn cleanup(client: &Client) -> anyhow::Result<()> {
    let lp = ListParams::default().labels(SELECTOR);
    delete_all(Api::<VolumeAttachment>::all(client.clone()), &lp).await?;
    delete_all(Api::<PersistentVolume>::all(client.clone()), &lp).await?;
    delete_all(Api::<CSINode>::all(client.clone()), &lp).await?;
    delete_all(Api::<Node>::all(client.clone()), &lp).await?;
    Ok(())
}

pub(super) async fn delete_all<K>(api: Api<K>, lp: &ListParams) -> anyhow::Result<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let names: Vec<String> = api
        .list_metadata(lp)
        .await?
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    let no_finalizers = serde_json::json!({"metadata": {"finalizers": null}});
    futures::stream::iter(names)
        .map(|name| {
            let api = api.clone();
            let patch = no_finalizers.clone();
            // Deleted first, then its finalizers dropped: a protection controller adds its
            // finalizer back to an object that is not being deleted, never to one that is.
            async move {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
                    Err(e) => {
                        return Err(anyhow::Error::from(e).context(format!("deleting {name}")));
                    }
                }
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
                    Err(e) => Err(anyhow::Error::from(e)
                        .context(format!("removing the finalizers of {name}"))),
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Label of the objects of the scale measurement (and of nothing else), so that
/// [`cleanup_scale`] removes exactly them.
const SCALE_LABEL: &str = "csi-bench-scale";
const SCALE_SELECTOR: &str = "csi-bench-scale=true";
/// The namespace of the scale PVCs.
const SCALE_NAMESPACE: &str = "csi-bench-scale";
/// Requests in flight when bulk-creating the scale objects: the admin has no rate limit on the
/// local API server, and our client none of its own, so this alone bounds the pace.
const SCALE_CONCURRENCY: usize = 64;
/// The finalizers kube-controller-manager's protection controllers would add, one write per
/// object at its QPS: set at creation, they leave it nothing to write.
const PV_PROTECTION: &str = "kubernetes.io/pv-protection";
const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";

fn scale_pv_name(i: usize) -> String {
    format!("csi-bench-scale-pv-{i:05}")
}

fn scale_pvc_name(i: usize) -> String {
    format!("csi-bench-scale-pvc-{i:05}")
}

/// Creates the scale objects `from..to`: that many CSI PVs of the bench driver and as many
/// PVCs, labelled [`SCALE_LABEL`], in parallel. Nothing is bound and kube-controller-manager
/// (at its own QPS) has nothing to write: the PVs are created with the protection finalizer
/// and made `Available` by us; each PVC names a volume that does not exist, so the binder
/// leaves it `Pending` without a write or an Event, and carries its protection finalizer.
pub async fn create_scale_objects(client: &Client, from: usize, to: usize) -> anyhow::Result<()> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": SCALE_NAMESPACE, "labels": {SCALE_LABEL: "true"}}
    });
    match namespaces
        .create(&PostParams::default(), &serde_json::from_value(ns)?)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(anyhow::Error::from(e).context("creating the scale namespace")),
    }
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), SCALE_NAMESPACE);
    let available = serde_json::json!({"status": {"phase": "Available"}});
    futures::stream::iter(from..to)
        .map(|i| {
            let (pvs, pvcs, available) = (pvs.clone(), pvcs.clone(), available.clone());
            async move {
                let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "PersistentVolume",
                    "metadata": {
                        "name": scale_pv_name(i),
                        "labels": {SCALE_LABEL: "true"},
                        "finalizers": [PV_PROTECTION]
                    },
                    "spec": {
                        "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "",
                        "persistentVolumeReclaimPolicy": "Retain",
                        "csi": {"driver": DRIVER, "volumeHandle": format!("scale-{i:05}")}
                    }
                }))?;
                let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {
                        "name": scale_pvc_name(i),
                        "namespace": SCALE_NAMESPACE,
                        "labels": {SCALE_LABEL: "true"},
                        "finalizers": [PVC_PROTECTION]
                    },
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                        "storageClassName": "",
                        "volumeName": "csi-bench-scale-no-such-volume"
                    }
                }))?;
                created(
                    pvs.create(&PostParams::default(), &pv).await.map(drop),
                    format!("creating PV {}", scale_pv_name(i)),
                )?;
                pvs.patch_status(
                    &scale_pv_name(i),
                    &PatchParams::default(),
                    &Patch::Merge(&available),
                )
                .await
                .with_context(|| format!("making PV {} Available", scale_pv_name(i)))?;
                created(
                    pvcs.create(&PostParams::default(), &pvc).await.map(drop),
                    format!("creating PVC {}", scale_pvc_name(i)),
                )
            }
        })
        .buffer_unordered(SCALE_CONCURRENCY)
        .try_collect::<()>()
        .await
        .context("creating the scale objects")?;
    let lp = ListParams::default().labels(SCALE_SELECTOR);
    // Should kube-controller-manager have got to some PVs before our status patch, its own
    // updates are queued behind its rate limit: wait for them to be over before measuring.
    let deadline = Instant::now() + Duration::from_secs(60) + Duration::from_millis(to as u64);
    loop {
        let list = pvs.list(&lp).await?;
        let pending = list
            .items
            .iter()
            .filter(|pv| pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Available"))
            .count();
        if list.items.len() >= to && pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            // Not fatal: the figures are still taken, with the controller still at work.
            eprintln!(
                "bench: {pending} of {} scale PVs not Available yet",
                list.items.len()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `Ok` for a created object or one that already exists.
fn created(result: Result<(), kube::Error>, what: String) -> anyhow::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(anyhow::Error::from(e).context(what)),
    }
}

/// How many objects of each scale kind the cluster holds (anyone's).
pub async fn count_scale_kinds(
    client: &Client,
) -> anyhow::Result<std::collections::BTreeMap<ScaleKind, usize>> {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let all = ListParams::default();
    Ok(std::collections::BTreeMap::from([
        (
            ScaleKind::PersistentVolume,
            pvs.list_metadata(&all).await?.items.len(),
        ),
        (
            ScaleKind::PersistentVolumeClaim,
            pvcs.list_metadata(&all).await?.items.len(),
        ),
    ]))
}

/// Removes the scale objects (and only them), finalizers first, so that nothing waits for
/// kube-controller-manager.
pub async fn cleanup_scale(client: &Client) -> anyhow::Result<()> {
    let lp = ListParams::default().labels(SCALE_SELECTOR);
    delete_all(
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), SCALE_NAMESPACE),
        &lp,
    )
    .await?;
    delete_all(Api::<PersistentVolume>::all(client.clone()), &lp).await
}

/// One phase (attach or detach): seconds until all done, and each object's latency.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Phase {
    pub total_s: f64,
    /// Per object, milliseconds from its request being sent to the watch seeing it done.
    pub latencies_ms: Vec<f64>,
}

impl Phase {
    pub fn quantile_ms(&self, q: f64) -> f64 {
        quantile(&self.latencies_ms, q)
    }
}

/// The `q` quantile (nearest rank) of `values`; 0 when empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[derive(Debug)]
enum Seen {
    Attached(String),
    Gone(String),
}

/// Creates N VolumeAttachments at once, waits until all are attached, deletes them at once,
/// waits until all are gone.
pub async fn attach_detach(client: &Client, n: usize) -> anyhow::Result<(Phase, Phase)> {
    let vas: Api<VolumeAttachment> = Api::all(client.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let watch = tokio::spawn(watch_attachments(vas.clone(), tx, ready_tx));
    ready_rx.await.context("the VolumeAttachment watch ended")?;
    let limit = Duration::from_secs(120) + Duration::from_millis(300 * n as u64);

    let start = Instant::now();
    let sent = send_all(n, va_name, |i| {
        let vas = vas.clone();
        async move {
            let va: VolumeAttachment = serde_json::from_value(serde_json::json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                "metadata": {"name": va_name(i), "labels": {LABEL: "true"}},
                "spec": {
                    "attacher": DRIVER,
                    "nodeName": NODE,
                    "source": {"persistentVolumeName": pv_name(i)}
                }
            }))?;
            vas.create(&PostParams::default(), &va).await?;
            Ok(())
        }
    })
    .await
    .context("creating VolumeAttachments")?;
    let attach = collect(
        &mut rx,
        &sent,
        start,
        limit,
        "VolumeAttachments",
        |s| match s {
            Seen::Attached(name) => Some(name),
            Seen::Gone(_) => None,
        },
    )
    .await
    .context("attaching")?;

    let start = Instant::now();
    let sent = send_all(n, va_name, |i| {
        let vas = vas.clone();
        async move {
            vas.delete(&va_name(i), &DeleteParams::default()).await?;
            Ok(())
        }
    })
    .await
    .context("deleting VolumeAttachments")?;
    let detach = collect(
        &mut rx,
        &sent,
        start,
        limit,
        "VolumeAttachments",
        |s| match s {
            Seen::Gone(name) => Some(name),
            Seen::Attached(_) => None,
        },
    )
    .await
    .context("detaching")?;
    watch.abort();
    Ok((attach, detach))
}

/// Runs `request(i)` for 0..n, [`CONCURRENCY`] at a time; returns when each was sent, by
/// `name(i)`.
pub(super) async fn send_all<F, Fut>(
    n: usize,
    name: fn(usize) -> String,
    request: F,
) -> anyhow::Result<HashMap<String, Instant>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    futures::stream::iter(0..n)
        .map(|i| {
            let sent = Instant::now();
            let request = request(i);
            async move {
                request.await?;
                anyhow::Ok((name(i), sent))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
}

/// Waits until `done` has named every object of `sent` (`what` they are, for the error), and
/// times them.
pub(super) async fn collect<T>(
    rx: &mut mpsc::UnboundedReceiver<(T, Instant)>,
    sent: &HashMap<String, Instant>,
    start: Instant,
    limit: Duration,
    what: &str,
    done: impl Fn(T) -> Option<String>,
) -> anyhow::Result<Phase> {
    let mut latencies: HashMap<String, f64> = HashMap::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = start;
    while latencies.len() < sent.len() {
        let Ok(next) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            bail!(
                "only {} of {} {what} done after {limit:?}",
                latencies.len(),
                sent.len()
            );
        };
        let (seen, at) = next.with_context(|| format!("the watch of {what} ended"))?;
        if let Some(name) = done(seen)
            && let Some(sent_at) = sent.get(&name)
            && !latencies.contains_key(&name)
        {
            // The watch may see an object done before its create call returned.
            let at = at.max(*sent_at);
            latencies.insert(name, (at - *sent_at).as_secs_f64() * 1000.0);
            last = last.max(at);
        }
    }
    let mut latencies_ms: Vec<(String, f64)> = latencies.into_iter().collect();
    latencies_ms.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Phase {
        total_s: (last - start).as_secs_f64(),
        latencies_ms: latencies_ms.into_iter().map(|(_, ms)| ms).collect(),
    })
}

async fn watch_attachments(
    api: Api<VolumeAttachment>,
    tx: mpsc::UnboundedSender<(Seen, Instant)>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let stream = watcher(api, watcher::Config::default().labels(SELECTOR));
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let now = Instant::now();
        let seen = match event {
            Ok(watcher::Event::InitDone) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                continue;
            }
            Ok(watcher::Event::Apply(va) | watcher::Event::InitApply(va)) => {
                if va.status.as_ref().is_some_and(|s| s.attached) {
                    Seen::Attached(va.metadata.name.unwrap_or_default())
                } else {
                    continue;
                }
            }
            Ok(watcher::Event::Delete(va)) => Seen::Gone(va.metadata.name.unwrap_or_default()),
            Ok(watcher::Event::Init) | Err(_) => continue,
        };
        if tx.send((seen, now)).is_err() {
            return;
        }
    }
}

/// The namespace `namespace` and a StorageClass `class` of the bench driver (Immediate,
/// reclaim Delete; `expandable` sets `allowVolumeExpansion`), both labelled `label`.
pub async fn claim_class(
    client: &kube::Client,
    namespace: &str,
    class: &str,
    label: &str,
    expandable: bool,
) -> anyhow::Result<()> {
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::{Patch, PatchParams};
    self::namespace(client, namespace, label).await?;
    let params = PatchParams::apply("csi-sidecars-bench").force();
    let mut value = serde_json::json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": class, "labels": {label: "true"}},
        "provisioner": DRIVER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate"
    });
    if expandable {
        value["allowVolumeExpansion"] = serde_json::json!(true);
    }
    let object: StorageClass = serde_json::from_value(value)?;
    kube::Api::<StorageClass>::all(client.clone())
        .patch(class, &params, &Patch::Apply(&object))
        .await?;
    Ok(())
}

/// Removes what a run of a claim workload left: the claims in `namespace` and the volumes of
/// `class`, finalizers included (the sidecars are stopped).
pub async fn clear_claims(
    client: &kube::Client,
    namespace: &str,
    class: &str,
) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
    let all = ListParams::default();
    delete_all(
        kube::Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace),
        &all,
    )
    .await?;
    let pvs: kube::Api<PersistentVolume> = kube::Api::all(client.clone());
    for pv in pvs.list(&all).await?.items {
        let of_class = pv
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref())
            == Some(class);
        let Some(name) = pv.metadata.name.filter(|_| of_class) else {
            continue;
        };
        let _ = pvs.delete(&name, &DeleteParams::default()).await;
        let _ = pvs
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
            )
            .await;
    }
    Ok(())
}

/// [`clear_claims`], then the class and the namespace.
pub async fn remove_claim_class(
    client: &kube::Client,
    namespace: &str,
    class: &str,
) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::DeleteParams;
    clear_claims(client, namespace, class).await?;
    let _ = kube::Api::<StorageClass>::all(client.clone())
        .delete(class, &DeleteParams::default())
        .await;
    let _ = kube::Api::<Namespace>::all(client.clone())
        .delete(namespace, &DeleteParams::default())
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn the_workload_is_deterministic() {
        assert_eq!(pv_name(7), "csi-bench-pv-00007");
        assert_eq!(va_name(7), "csi-bench-va-00007");
        assert_eq!(volume_id(0), "4");
    }
}
