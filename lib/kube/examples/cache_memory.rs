//! Measures the resident memory a cache of PersistentVolumes or PersistentVolumeClaims costs per
//! object, for the cache's layout (trimmed JSON, shared by every controller) and for the layout
//! it replaced (kube-runtime's reflector store of trimmed, decoded objects).
//!
//! ```text
//! cargo run -p csi-kube --example cache_memory -- KUBECONFIG create N   # N PVs and N PVCs
//! cargo run -p csi-kube --example cache_memory -- KUBECONFIG measure packed|decoded pv|pvc
//! cargo run -p csi-kube --example cache_memory -- KUBECONFIG delete
//! ```
//!
//! Run each measurement in its own process: the figure is the growth of the process's RSS from
//! just before the watch starts to a few seconds after its initial list, divided by the number
//! of objects listed. Delete the objects afterwards: thousands of claims nobody can bind keep
//! kube-controller-manager's volume controllers busy, and slow every other test on the cluster.

use std::time::Duration;

use anyhow::{Context as _, bail};
use csi_kube::cache::trim;
use csi_kube::{Caches, Selector};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use kube::{Api, Client};

const LABEL: &str = "csi-cache-memory";
const NAMESPACE: &str = "csi-cache-memory";

fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("bad VmRSS")?
        .parse()?;
    Ok(kib * 1024)
}

async fn create(client: &Client, n: usize) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": NAMESPACE}}))?;
    let _ = namespaces.create(&PostParams::default(), &ns).await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    futures::stream::iter(0..n)
        .map(|i| {
            let (pvs, pvcs) = (pvs.clone(), pvcs.clone());
            async move {
                // The shape of the bench's scale PVs: CSI, no claim.
                let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("{LABEL}-pv-{i:05}"), "labels": {LABEL: "true"}},
                    "spec": {
                        "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "",
                        "persistentVolumeReclaimPolicy": "Retain",
                        "csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": format!("scale-{i:05}")}
                    }
                }))?;
                // A claim of a class nobody provisions: it stays Pending and unbound.
                let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("{LABEL}-pvc-{i:05}"), "labels": {LABEL: "true"}},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "csi-cache-memory-nobody",
                        "resources": {"requests": {"storage": "1Gi"}}
                    }
                }))?;
                for result in [
                    pvs.create(&PostParams::default(), &pv).await.map(|_| ()),
                    pvcs.create(&PostParams::default(), &pvc).await.map(|_| ()),
                ] {
                    match result {
                        Ok(()) => {}
                        Err(kube::Error::Api(e)) if e.code == 409 => {}
                        Err(e) => return Err(anyhow::Error::from(e)),
                    }
                }
                Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<()>()
        .await
}

async fn delete(client: &Client) -> anyhow::Result<()> {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("{LABEL}=true"));
    pvs.delete_collection(&DeleteParams::default(), &lp).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(NAMESPACE, &DeleteParams::default()).await;
    Ok(())
}

/// Lists with the cache's layout; returns the objects held.
async fn packed<K: csi_kube::cache::Cacheable>(client: &Client) -> anyhow::Result<usize> {
    let caches = Caches::new(client.clone());
    let store = caches.store::<K>(&Selector::labels(format!("{LABEL}=true")))?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let watches = caches.start(&shutdown)?;
    caches.wait_for_sync().await;
    let n = store.len();
    println!(
        "stored JSON bytes per object: {}",
        store.stored_bytes() / n.max(1)
    );
    std::mem::forget(watches);
    std::mem::forget(store);
    Ok(n)
}

/// Lists with the layout the cache replaced: kube-runtime's store of decoded, trimmed objects.
async fn decoded<K>(client: &Client) -> anyhow::Result<usize>
where
    K: csi_kube::cache::Cacheable,
{
    let (store, writer) = reflector::store::<K>();
    let config = watcher::Config::default()
        .any_semantic()
        .labels(&format!("{LABEL}=true"));
    let stream = watcher(Api::<K>::all(client.clone()), config)
        .default_backoff()
        .modify(trim::<K>)
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while stream.next().await.is_some() {}
    });
    store.wait_until_ready().await?;
    let n = store.state().len();
    std::mem::forget(store);
    Ok(n)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kubeconfig, command, rest @ ..] = args.as_slice() else {
        bail!("usage: cache_memory KUBECONFIG create N | measure packed|decoded pv|pvc | delete");
    };
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = Client::try_from(config)?;
    match (command.as_str(), rest) {
        ("create", [n]) => create(&client, n.parse()?).await,
        ("delete", []) => delete(&client).await,
        ("measure", [layout, kind]) => {
            // Warm up: one request, so that TLS and the connection pool are in the baseline.
            Api::<PersistentVolume>::all(client.clone())
                .list_metadata(&ListParams::default().limit(1))
                .await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let before = rss_bytes()?;
            let n = match (layout.as_str(), kind.as_str()) {
                ("packed", "pv") => packed::<PersistentVolume>(&client).await?,
                ("packed", "pvc") => packed::<PersistentVolumeClaim>(&client).await?,
                ("decoded", "pv") => decoded::<PersistentVolume>(&client).await?,
                ("decoded", "pvc") => decoded::<PersistentVolumeClaim>(&client).await?,
                _ => bail!("unknown layout or kind"),
            };
            tokio::time::sleep(Duration::from_secs(3)).await;
            let after = rss_bytes()?;
            let growth = after.saturating_sub(before);
            println!(
                "layout={layout} kind={kind} objects={n} rss_before={:.1}MiB rss_after={:.1}MiB per_object={}B",
                before as f64 / 1048576.0,
                after as f64 / 1048576.0,
                growth / n.max(1) as u64
            );
            Ok(())
        }
        _ => bail!(
            "usage: cache_memory KUBECONFIG create N | measure packed|decoded pv|pvc | delete"
        ),
    }
}
