//! `cargo xtask bench --health-monitor`: our `csi-external-health-monitor-controller` alone
//! (upstream's Go module is refused by the proxy here, so there is no Go figure).
//!
//! N CSI PVs, each bound to its PVC, and a driver (our in-process mock, which lists N volumes
//! with LIST_VOLUMES and VOLUME_CONDITION, 500 per page) that reports them healthy, then all
//! abnormal. Measured, from /proc and the audit log (our user agent only):
//! - idle RSS once the watches are open;
//! - API requests per ListVolumes pass: healthy, the first abnormal pass, later abnormal passes;
//! - what the cluster's Events cost: RSS and requests of ours with M more Events present, and
//!   what upstream's cluster-wide Event informer would list and keep (the JSON size of one
//!   LIST of every Event, and its one extra watch stream), which ours does not open.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use csi_proto::csi::v1 as csi;
use csi_test_support::{ChildProcess, MockCsiDriver, plugin_service_capability};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Event, Namespace, PersistentVolume, PersistentVolumeClaim};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};

use super::{audit, procfs};
use crate::cluster;

const BINARY: &str = "csi-external-health-monitor-controller";
const DRIVER: &str = "health.bench.csi.k8s.io";
const NAMESPACE: &str = "csi-bench-health";
const LABEL: &str = "csi-bench-health";
const PAGE: usize = 500;
/// The monitor's `--list-volumes-interval` with `n` volumes: long enough for the writes of one
/// pass with every volume abnormal (two per volume) to be done in half of it.
fn interval(n: usize) -> Duration {
    Duration::from_secs((n as u64 / 50).max(2))
}
/// The monitor's `--kube-api-qps` (and twice that burst): high, so that a pass's writes do not
/// spill into the next pass's window; the count of requests does not depend on it.
const QPS: u32 = 500;
const WAIT: Duration = Duration::from_secs(120);

/// What was measured.
#[derive(Debug, Default)]
pub struct Figures {
    pub idle_rss_kib: u64,
    pub requests_per_healthy_pass: f64,
    pub requests_first_abnormal_pass: u64,
    pub requests_per_abnormal_pass: f64,
    pub rss_before_events_kib: u64,
    pub rss_with_events_kib: u64,
    pub events_present: usize,
    pub requests_with_events: f64,
    pub event_list_bytes: usize,
    pub event_requests_by_ours: u64,
    /// "<phase>: <verb resource> x count, ..." per measured window.
    pub breakdown: Vec<String>,
}

pub fn run(
    n: usize,
    events: usize,
    bin_dir: &Path,
    audit_log: &Path,
    info: &cluster::ClusterInfo,
) -> anyhow::Result<Figures> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = cluster::api::client(&info.kubeconfig).await?;
        cleanup(&client).await?;
        let result = measure(n, events, bin_dir, audit_log, info, &client).await;
        cleanup(&client).await?;
        result
    })
}

fn volume_id(i: usize) -> String {
    format!("health-{i:05}")
}

/// A driver listing `n` volumes, all abnormal while `abnormal` is set.
async fn driver(n: usize, abnormal: Arc<AtomicBool>) -> anyhow::Result<MockCsiDriver> {
    let driver = MockCsiDriver::start().await?;
    driver.set_driver_name(DRIVER);
    driver.set_plugin_capabilities([plugin_service_capability(
        csi::plugin_capability::service::Type::ControllerService,
    )]);
    driver.set_controller_capabilities([
        csi::controller_service_capability::rpc::Type::ListVolumes,
        csi::controller_service_capability::rpc::Type::VolumeCondition,
    ]);
    driver.handle("ListVolumes", move |req: csi::ListVolumesRequest| {
        let start: usize = req.starting_token.parse().unwrap_or(0);
        let end = (start + PAGE).min(n);
        let abnormal = abnormal.load(Ordering::SeqCst);
        let entries = (start..end)
            .map(|i| csi::list_volumes_response::Entry {
                volume: Some(csi::Volume {
                    volume_id: volume_id(i),
                    ..csi::Volume::default()
                }),
                status: Some(csi::list_volumes_response::VolumeStatus {
                    volume_condition: Some(csi::VolumeCondition {
                        abnormal,
                        message: if abnormal {
                            "bench: volume degraded".to_string()
                        } else {
                            String::new()
                        },
                    }),
                    ..Default::default()
                }),
            })
            .collect();
        Ok(csi::ListVolumesResponse {
            entries,
            next_token: if end < n {
                end.to_string()
            } else {
                String::new()
            },
        })
    });
    Ok(driver)
}

/// `n` PVs pre-bound to `n` claims, and the claims; the PVs marked Bound by us, so the
/// monitor checks them without waiting for kube-controller-manager's binder.
async fn objects(client: &Client, n: usize) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": NAMESPACE, "labels": {LABEL: "true"}}
    }))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    futures::stream::iter(0..n)
        .map(|i| {
            let (pvs, pvcs) = (pvs.clone(), pvcs.clone());
            async move {
                let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("claim-{i:05}")},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "",
                        "volumeName": format!("csi-bench-health-{i:05}"),
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }))?;
                let claim = pvcs.create(&PostParams::default(), &claim).await?;
                let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("csi-bench-health-{i:05}"), "labels": {LABEL: "true"}},
                    "spec": {
                        "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "",
                        "persistentVolumeReclaimPolicy": "Retain",
                        "claimRef": {"namespace": NAMESPACE, "name": format!("claim-{i:05}"), "uid": claim.metadata.uid},
                        "csi": {"driver": DRIVER, "volumeHandle": volume_id(i)},
                    },
                }))?;
                let pv = pvs.create(&PostParams::default(), &pv).await?;
                pvs.patch_status(
                    pv.metadata.name.as_deref().unwrap_or_default(),
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"status": {"phase": "Bound"}})),
                )
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(super::workload::CONCURRENCY)
        .try_collect::<()>()
        .await
        .context("creating PVs and claims")
}

/// `m` Events about claim-00000, as other components would write them.
async fn events(client: &Client, m: usize) -> anyhow::Result<()> {
    let api: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    futures::stream::iter(0..m)
        .map(|i| {
            let api = api.clone();
            async move {
                let event: Event = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("bench-event-{i:06}")},
                    "involvedObject": {"kind": "PersistentVolumeClaim", "namespace": NAMESPACE, "name": "claim-00000"},
                    "reason": "BenchNoise",
                    "message": format!("an Event of another component, number {i}"),
                    "type": "Normal",
                    "source": {"component": "bench"},
                    "count": 1,
                }))?;
                api.create(&PostParams::default(), &event).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(super::workload::CONCURRENCY)
        .try_collect::<()>()
        .await
        .context("creating Events")
}

/// First-page ListVolumes calls so far: the passes.
fn passes(driver: &MockCsiDriver) -> usize {
    driver
        .calls_to("ListVolumes")
        .iter()
        .filter(|c| {
            c.request::<csi::ListVolumesRequest>()
                .is_some_and(|r| r.starting_token.is_empty())
        })
        .count()
}

async fn wait_passes(driver: &MockCsiDriver, at_least: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    while passes(driver) < at_least {
        if Instant::now() > deadline {
            bail!("the monitor did not make {at_least} ListVolumes passes in {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Requests of ours over the next `k` passes (counted from one pass start to another).
async fn per_pass(
    driver: &MockCsiDriver,
    audit_log: &Path,
    k: usize,
    interval: Duration,
    phase: &str,
    breakdown: &mut Vec<String>,
) -> anyhow::Result<(u64, usize)> {
    // Called halfway between two passes (see [`align`]), when the last pass's writes are done
    // and the next one's have not begun: the window holds exactly the next `k` passes and
    // ends halfway after the last of them.
    let from = audit::offset(audit_log);
    wait_passes(driver, passes(driver) + k).await?;
    tokio::time::sleep(interval / 2).await;
    let to = audit::offset(audit_log);
    let load = audit::load_between(audit_log, from, to, super::AUDIT_USER, &[BINARY])?;
    let requests: Vec<String> = load
        .by_verb_resource
        .iter()
        .map(|(what, count)| format!("{what} x{count}"))
        .collect();
    breakdown.push(format!("{phase} ({k} passes): {}", requests.join(", ")));
    Ok((load.total - leases(&load), k))
}

/// Waits until halfway after the next pass starts.
async fn align(driver: &MockCsiDriver, interval: Duration) -> anyhow::Result<()> {
    wait_passes(driver, passes(driver) + 1).await?;
    tokio::time::sleep(interval / 2).await;
    Ok(())
}

/// Lease requests (leader election is off here, so none are expected).
fn leases(load: &audit::ApiLoad) -> u64 {
    load.by_verb_resource
        .iter()
        .filter(|(k, _)| k.contains("leases"))
        .map(|(_, v)| *v)
        .sum()
}

async fn measure(
    n: usize,
    m: usize,
    bin_dir: &Path,
    audit_log: &Path,
    info: &cluster::ClusterInfo,
    client: &Client,
) -> anyhow::Result<Figures> {
    let mut figures = Figures::default();
    eprintln!("bench health: {n} PVs and claims");
    objects(client, n).await?;
    let abnormal = Arc::new(AtomicBool::new(false));
    let driver = driver(n, abnormal.clone()).await?;
    let from = audit::offset(audit_log);
    let monitor = ChildProcess::spawn(
        bin_dir.join(BINARY),
        [
            format!("--csi-address={}", driver.endpoint()),
            format!("--kubeconfig={}", info.kubeconfig.display()),
            format!("--list-volumes-interval={}s", interval(n).as_secs()),
            format!("--kube-api-qps={QPS}"),
            format!("--kube-api-burst={}", 2 * QPS),
        ],
    )?;
    let deadline = Instant::now() + WAIT;
    while !(audit::watch_seen(
        audit_log,
        from,
        super::AUDIT_USER,
        &[BINARY],
        "persistentvolumes",
    ) && audit::watch_seen(
        audit_log,
        from,
        super::AUDIT_USER,
        &[BINARY],
        "persistentvolumeclaims",
    )) {
        if Instant::now() > deadline {
            bail!("the monitor's watches did not open:\n{}", monitor.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(super::SETTLE).await;
    figures.idle_rss_kib = procfs::rss_kib(monitor.id()).unwrap_or_default();

    align(&driver, interval(n)).await?;
    let (requests, k) = per_pass(
        &driver,
        audit_log,
        3,
        interval(n),
        "healthy",
        &mut figures.breakdown,
    )
    .await?;
    figures.requests_per_healthy_pass = requests as f64 / k as f64;

    // Every volume abnormal: the first pass records N Events and writes N statuses.
    abnormal.store(true, Ordering::SeqCst);
    let (requests, _) = per_pass(
        &driver,
        audit_log,
        1,
        interval(n),
        "first abnormal",
        &mut figures.breakdown,
    )
    .await?;
    figures.requests_first_abnormal_pass = requests;
    let (requests, k) = per_pass(
        &driver,
        audit_log,
        2,
        interval(n),
        "still abnormal",
        &mut figures.breakdown,
    )
    .await?;
    figures.requests_per_abnormal_pass = requests as f64 / k as f64;
    abnormal.store(false, Ordering::SeqCst);
    // Recovery passes (N recovery Events, N status clears), then quiet ones.
    per_pass(
        &driver,
        audit_log,
        2,
        interval(n),
        "recovered",
        &mut figures.breakdown,
    )
    .await?;

    // Other components' Events: upstream's informer would list and keep every one.
    figures.rss_before_events_kib = procfs::rss_kib(monitor.id()).unwrap_or_default();
    events(client, m).await?;
    let all = Api::<Event>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    figures.events_present = all.items.len();
    figures.event_list_bytes = serde_json::to_vec(&all)?.len();
    let from = audit::offset(audit_log);
    align(&driver, interval(n)).await?;
    let (requests, k) = per_pass(
        &driver,
        audit_log,
        3,
        interval(n),
        "with Events present",
        &mut figures.breakdown,
    )
    .await?;
    figures.requests_with_events = requests as f64 / k as f64;
    tokio::time::sleep(super::SETTLE).await;
    figures.rss_with_events_kib = procfs::rss_kib(monitor.id()).unwrap_or_default();
    let load = audit::load_since(audit_log, from, super::AUDIT_USER, &[BINARY])?;
    figures.event_requests_by_ours = load
        .by_verb_resource
        .iter()
        .filter(|(k, _)| k.starts_with("list events") || k.starts_with("watch events"))
        .map(|(_, v)| *v)
        .sum();
    drop(monitor);
    Ok(figures)
}

async fn cleanup(client: &Client) -> anyhow::Result<()> {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    pvs.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(&format!("{LABEL}=true")),
    )
    .await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.delete(NAMESPACE, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let deadline = Instant::now() + WAIT;
    while namespaces.get_opt(NAMESPACE).await?.is_some() {
        if Instant::now() > deadline {
            bail!("namespace {NAMESPACE} was not deleted");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

impl Figures {
    /// The report, as Markdown.
    pub fn markdown(&self, n: usize, profile: &str) -> String {
        format!(
            "\
## csi-external-health-monitor-controller ({profile}; no Go figure: the module is refused here)

| with {n} bound CSI PVs | ours |
|---|---|
| idle RSS | {} KiB |
| API requests per ListVolumes pass, all healthy | {:.1} |
| API requests in the first pass with all abnormal | {} |
| API requests per later pass, all still abnormal | {:.1} |
| RSS after those passes (its recorder remembers the Events it wrote) | {} KiB |
| with {} Events in the cluster (M more, by others): RSS / requests per pass / Event lists or watches | {} KiB / {:.1} / {} |
| what upstream's Event informer would list and keep instead (one LIST, JSON) | {} KiB, plus one watch stream |
",
            self.idle_rss_kib,
            self.requests_per_healthy_pass,
            self.requests_first_abnormal_pass,
            self.requests_per_abnormal_pass,
            self.rss_before_events_kib,
            self.events_present,
            self.rss_with_events_kib,
            self.requests_with_events,
            self.event_requests_by_ours,
            self.event_list_bytes / 1024,
        ) + &format!(
            "\nRequests of each window (audit log, our user agent):\n\n{}\n",
            self.breakdown
                .iter()
                .map(|line| format!("- {line}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
}
