//! The resizer workload: N PersistentVolumeClaims of an Immediate, reclaim-Delete StorageClass
//! of the bench driver with `allowVolumeExpansion: true`, provisioned first by the
//! configuration's provisioner (not timed), then every claim's request raised from 1Gi to 2Gi
//! at once, each timed from its patch until a watch has seen both its PersistentVolume's
//! capacity and its claim's `status.capacity` at 2Gi (the mock driver expands on the
//! controller and asks for no node expansion, so the resizer finishes the claim itself). Then
//! the claims are deleted and their volumes awaited (not timed). The same names every run.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::mpsc;

use super::workload::{self, Phase};

/// The namespace of the claims; left in place between runs, removed by [`cleanup`].
pub const NAMESPACE: &str = "csi-bench-expand";
pub const CLASS: &str = "csi-bench-expand";
const LABEL: &str = "csi-bench-expand";
/// What the claims are created with, and what they are raised to.
const FROM: &str = "1Gi";
const TO: &str = "2Gi";
const TO_BYTES: u64 = 2 << 30;

fn pvc_name(i: usize) -> String {
    format!("csi-bench-expand-{i:05}")
}

/// The number of claims expanded for N VolumeAttachments: half as many (500 for the full run's
/// 1 000), at least one.
pub fn count(n: usize) -> usize {
    (n / 2).max(1)
}

/// The namespace and the expandable StorageClass.
pub async fn setup(client: &Client) -> anyhow::Result<()> {
    workload::claim_class(client, NAMESPACE, CLASS, LABEL, true).await
}

/// Removes the claims and their volumes (finalizers included: the sidecars are stopped), then
/// the class and the namespace.
pub async fn cleanup(client: &Client) -> anyhow::Result<()> {
    workload::remove_claim_class(client, NAMESPACE, CLASS).await
}

/// Removes what a run left: the claims and the volumes of [`CLASS`].
pub async fn clear(client: &Client) -> anyhow::Result<()> {
    workload::clear_claims(client, NAMESPACE, CLASS).await
}

fn storage_class(pv: &PersistentVolume) -> Option<&str> {
    pv.spec.as_ref()?.storage_class_name.as_deref()
}

fn limit(n: usize) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(300 * n as u64)
}

/// Creates N claims of [`CLASS`] at once and waits until all are Bound (not timed: the
/// provisioning workload times that).
pub async fn provision(client: &Client, n: usize) -> anyhow::Result<()> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    workload::send_all(n, pvc_name, |i| {
        let pvcs = pvcs.clone();
        async move {
            let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": pvc_name(i), "labels": {LABEL: "true"}},
                "spec": {
                    "storageClassName": CLASS,
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": FROM}}
                }
            }))?;
            pvcs.create(&PostParams::default(), &pvc).await?;
            Ok(())
        }
    })
    .await
    .context("creating the PersistentVolumeClaims to expand")?;
    let deadline = Instant::now() + limit(n);
    loop {
        let bound = pvcs
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
            .count();
        if bound >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {bound} of {n} claims to expand Bound after {:?}",
                limit(n)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Raises every claim's request to [`TO`] at once and times each until its volume and its
/// claim show that capacity.
pub async fn expand(client: &Client, n: usize) -> anyhow::Result<Phase> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let watch = tokio::spawn(watch(pvcs.clone(), pvs, tx, ready_tx));
    ready_rx.await.context("the watches ended")?;

    let start = Instant::now();
    let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": TO}}}});
    let sent = workload::send_all(n, pvc_name, |i| {
        let (pvcs, patch) = (pvcs.clone(), patch.clone());
        async move {
            pvcs.patch(&pvc_name(i), &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(())
        }
    })
    .await
    .context("raising the claims' requests")?;
    let expanded = workload::collect(
        &mut rx,
        &sent,
        start,
        limit(n),
        "PersistentVolumeClaims expanded",
        Some,
    )
    .await;
    watch.abort();
    expanded
}

/// Deletes the claims at once and waits until their volumes are gone (not timed).
pub async fn delete(client: &Client, n: usize) -> anyhow::Result<()> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    workload::send_all(n, pvc_name, |i| {
        let pvcs = pvcs.clone();
        async move {
            pvcs.delete(&pvc_name(i), &DeleteParams::default()).await?;
            Ok(())
        }
    })
    .await
    .context("deleting the expanded claims")?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let deadline = Instant::now() + limit(n);
    loop {
        let left = pvs
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|pv| storage_class(pv) == Some(CLASS))
            .count();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "{left} volumes of expanded claims still there after {:?}",
                limit(n)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A quantity in bytes: an integer with an optional binary (Ki..Ei) or decimal (k..E) suffix,
/// which is how the API server writes what the sidecars store; `None` for anything else.
fn bytes(quantity: &str) -> Option<u64> {
    let split = quantity
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// Whether a capacity (a PV's `spec.capacity`, a claim's `status.capacity`) is [`TO`] or more.
fn expanded(capacity: Option<&BTreeMap<String, Quantity>>) -> bool {
    capacity
        .and_then(|c| c.get("storage"))
        .and_then(|q| bytes(&q.0))
        .is_some_and(|b| b >= TO_BYTES)
}

/// What the watches report: a claim whose volume, or whose status, shows the new capacity.
enum Update {
    /// A watch finished its initial list.
    Synced,
    Volume(String),
    Claim(String),
    Nothing,
}

fn claim_update(event: Result<watcher::Event<PersistentVolumeClaim>, watcher::Error>) -> Update {
    match event {
        Ok(watcher::Event::InitDone) => Update::Synced,
        Ok(watcher::Event::Apply(pvc) | watcher::Event::InitApply(pvc))
            if expanded(pvc.status.as_ref().and_then(|s| s.capacity.as_ref())) =>
        {
            Update::Claim(pvc.metadata.name.unwrap_or_default())
        }
        _ => Update::Nothing,
    }
}

fn volume_update(event: Result<watcher::Event<PersistentVolume>, watcher::Error>) -> Update {
    match event {
        Ok(watcher::Event::InitDone) => Update::Synced,
        Ok(watcher::Event::Apply(pv) | watcher::Event::InitApply(pv)) => {
            let Some(spec) = pv.spec.as_ref() else {
                return Update::Nothing;
            };
            let claim = spec.claim_ref.as_ref().filter(|r| {
                r.namespace.as_deref() == Some(NAMESPACE)
                    && spec.storage_class_name.as_deref() == Some(CLASS)
            });
            match claim.and_then(|r| r.name.clone()) {
                Some(claim) if expanded(spec.capacity.as_ref()) => Update::Volume(claim),
                _ => Update::Nothing,
            }
        }
        _ => Update::Nothing,
    }
}

/// Claims of [`NAMESPACE`] whose volume and status both show the new capacity, each once, at
/// the time the second of the two was seen.
async fn watch(
    pvcs: Api<PersistentVolumeClaim>,
    pvs: Api<PersistentVolume>,
    tx: mpsc::UnboundedSender<(String, Instant)>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let claims = watcher(pvcs, watcher::Config::default()).map(claim_update);
    let volumes = watcher(pvs, watcher::Config::default()).map(volume_update);
    let stream = futures::stream::select(claims, volumes);
    futures::pin_mut!(stream);
    let mut ready = Some(ready);
    let mut synced = 0;
    let mut volume_seen = HashSet::new();
    let mut claim_seen = HashSet::new();
    let mut reported = HashSet::new();
    while let Some(update) = stream.next().await {
        let now = Instant::now();
        let claim = match update {
            Update::Synced => {
                synced += 1;
                if synced == 2
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(());
                }
                continue;
            }
            Update::Volume(claim) => {
                volume_seen.insert(claim.clone());
                claim
            }
            Update::Claim(claim) => {
                claim_seen.insert(claim.clone());
                claim
            }
            Update::Nothing => continue,
        };
        if volume_seen.contains(&claim)
            && claim_seen.contains(&claim)
            && reported.insert(claim.clone())
            && tx.send((claim, now)).is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workload_is_deterministic() {
        assert_eq!(pvc_name(7), "csi-bench-expand-00007");
        assert_eq!(count(1000), 500);
        assert_eq!(count(200), 100);
        assert_eq!(count(1), 1);
    }

    #[test]
    fn quantities_in_bytes() {
        assert_eq!(bytes("2Gi"), Some(TO_BYTES));
        assert_eq!(bytes("2147483648"), Some(TO_BYTES));
        assert_eq!(bytes("2048Mi"), Some(TO_BYTES));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1.5Gi"), None);
        assert_eq!(bytes("Gi"), None);
    }
}
