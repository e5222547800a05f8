//! The provisioner workload: N PersistentVolumeClaims of an Immediate, reclaim-Delete
//! StorageClass of the bench driver created at once, each timed from its create request until
//! a watch sees it Bound; then all deleted at once, each timed until its PersistentVolume is
//! gone (kube-controller-manager releases it, the provisioner calls DeleteVolume and deletes
//! it). The same names every run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::mpsc;

use super::workload::{self, Phase};

/// The namespace of the claims; left in place between runs, removed by [`cleanup`].
pub const NAMESPACE: &str = "csi-bench-provision";
pub const CLASS: &str = "csi-bench-provision";
const LABEL: &str = "csi-bench-provision";

fn pvc_name(i: usize) -> String {
    format!("csi-bench-pvc-{i:05}")
}

/// The namespace and the StorageClass.
pub async fn setup(client: &Client) -> anyhow::Result<()> {
    workload::claim_class(client, NAMESPACE, CLASS, LABEL, false).await
}

/// Removes the claims and the volumes provisioned for them, finalizers included (the
/// provisioners are stopped), then the class and the namespace.
pub async fn cleanup(client: &Client) -> anyhow::Result<()> {
    workload::remove_claim_class(client, NAMESPACE, CLASS).await
}

/// Removes what a run left: the claims and the volumes of [`CLASS`].
pub async fn clear(client: &Client) -> anyhow::Result<()> {
    workload::clear_claims(client, NAMESPACE, CLASS).await
}

#[derive(Debug)]
enum Seen {
    /// Claim name and its volume's name.
    Bound(String, String),
    /// A volume's name.
    VolumeGone(String),
}

/// Creates N claims at once, waits until all are Bound, deletes them at once, waits until
/// their volumes are gone.
pub async fn provision_delete(client: &Client, n: usize) -> anyhow::Result<(Phase, Phase)> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let watch = tokio::spawn(watch(pvcs.clone(), pvs, tx, ready_tx));
    ready_rx.await.context("the watches ended")?;
    let limit = Duration::from_secs(120) + Duration::from_millis(300 * n as u64);

    let start = Instant::now();
    let sent = workload::send_all(n, pvc_name, |i| {
        let pvcs = pvcs.clone();
        async move {
            let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": pvc_name(i), "labels": {LABEL: "true"}},
                "spec": {
                    "storageClassName": CLASS,
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}
                }
            }))?;
            pvcs.create(&PostParams::default(), &pvc).await?;
            Ok(())
        }
    })
    .await
    .context("creating PersistentVolumeClaims")?;
    // Claim -> volume, for the deletion.
    let volumes: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let bound = {
        let volumes = volumes.clone();
        workload::collect(
            &mut rx,
            &sent,
            start,
            limit,
            "PersistentVolumeClaims Bound",
            move |s| match s {
                Seen::Bound(claim, volume) => {
                    volumes.lock().unwrap().insert(claim.clone(), volume);
                    Some(claim)
                }
                Seen::VolumeGone(_) => None,
            },
        )
        .await?
    };

    let volumes = volumes.lock().unwrap().clone();
    let start = Instant::now();
    let sent_claims = workload::send_all(n, pvc_name, |i| {
        let pvcs = pvcs.clone();
        async move {
            pvcs.delete(&pvc_name(i), &DeleteParams::default()).await?;
            Ok(())
        }
    })
    .await
    .context("deleting PersistentVolumeClaims")?;
    // Timed by volume: from its claim's delete request until the volume is gone.
    let sent: HashMap<String, Instant> = sent_claims
        .iter()
        .filter_map(|(claim, at)| Some((volumes.get(claim)?.clone(), *at)))
        .collect();
    let deleted = workload::collect(
        &mut rx,
        &sent,
        start,
        limit,
        "PersistentVolumes deleted",
        |s| match s {
            Seen::VolumeGone(volume) => Some(volume),
            Seen::Bound(..) => None,
        },
    )
    .await?;
    watch.abort();
    Ok((bound, deleted))
}

/// What the watches report.
enum Update {
    /// A watch finished its initial list.
    Synced,
    Seen(Seen),
    Nothing,
}

fn claim_update(event: Result<watcher::Event<PersistentVolumeClaim>, watcher::Error>) -> Update {
    match event {
        Ok(watcher::Event::InitDone) => Update::Synced,
        Ok(watcher::Event::Apply(pvc) | watcher::Event::InitApply(pvc)) => {
            let phase = pvc.status.as_ref().and_then(|s| s.phase.as_deref());
            let volume = pvc.spec.as_ref().and_then(|s| s.volume_name.clone());
            match (phase, volume) {
                (Some("Bound"), Some(volume)) => {
                    Update::Seen(Seen::Bound(pvc.metadata.name.unwrap_or_default(), volume))
                }
                _ => Update::Nothing,
            }
        }
        _ => Update::Nothing,
    }
}

fn volume_update(event: Result<watcher::Event<PersistentVolume>, watcher::Error>) -> Update {
    match event {
        Ok(watcher::Event::InitDone) => Update::Synced,
        Ok(watcher::Event::Delete(pv)) => {
            Update::Seen(Seen::VolumeGone(pv.metadata.name.unwrap_or_default()))
        }
        _ => Update::Nothing,
    }
}

/// Claims of [`NAMESPACE`] seen Bound, and volumes seen deleted.
async fn watch(
    pvcs: Api<PersistentVolumeClaim>,
    pvs: Api<PersistentVolume>,
    tx: mpsc::UnboundedSender<(Seen, Instant)>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let claims = watcher(pvcs, watcher::Config::default()).map(claim_update);
    let volumes = watcher(pvs, watcher::Config::default()).map(volume_update);
    let stream = futures::stream::select(claims, volumes);
    futures::pin_mut!(stream);
    let mut ready = Some(ready);
    let mut synced = 0;
    while let Some(update) = stream.next().await {
        let now = Instant::now();
        match update {
            Update::Synced => {
                synced += 1;
                if synced == 2
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(());
                }
            }
            Update::Seen(seen) => {
                if tx.send((seen, now)).is_err() {
                    return;
                }
            }
            Update::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workload_is_deterministic() {
        assert_eq!(pvc_name(7), "csi-bench-pvc-00007");
    }
}
