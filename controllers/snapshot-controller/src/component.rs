//! The snapshot-controller as a component of our runtime: upstream v8.7.0's flags (its own
//! set: no `--csi-address`, no driver), the CRD check at start-up, the watches, queues and
//! workers, and the operation metrics on the process registry.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use csi_crd_types::group_snapshot::v1::{
    VolumeGroupSnapshot, VolumeGroupSnapshotClass, VolumeGroupSnapshotContent,
};
use csi_crd_types::snapshot::v1::{VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent};
use csi_kube::{Caches, Change, Selector};
use csi_sidecar_runtime::controller::Validated;
use csi_sidecar_runtime::features::{FeatureSpec, Stage};
use csi_sidecar_runtime::kube::KubeUse;
use csi_sidecar_runtime::{
    BoxFuture, Controller, Descriptor, DriverUse, Flag, FlagView, HttpDefaults, InitContext,
    InitError, Kind, Upstream,
};
use csi_snapshot_utils as utils;
use csi_workqueue::{ItemExponentialFailureRateLimiter, Outcome, QueueConfig, WorkQueue};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use kube::Api;
use kube::api::ListParams;
use tracing::{error, info, warn};

use crate::api::{CacheListers, KubeApi, NAMESPACE_INDEX};
use crate::controller::{
    CONTENT_QUEUE, Config, EVENT_COMPONENT, Parts, SNAPSHOT_QUEUE, SnapshotController,
};
use crate::group::api::KubeGroupApi;
use crate::group::{GROUP_CONTENT_QUEUE, GROUP_SNAPSHOT_QUEUE, GroupController, GroupParts};
use crate::metrics::{IN_FLIGHT_CHECK_INTERVAL, OperationMetrics};

/// snapshot-controller v8.7.0's flags (besides the logging flags every binary has).
pub const FLAGS: &[Flag] = &[
    Flag::new(
        "kubeconfig",
        Kind::String,
        "",
        "Absolute path to the kubeconfig file. Required only when running out of cluster.",
    )
    .process(),
    Flag::new(
        "resync-period",
        Kind::Duration,
        "15m0s",
        "Resync interval of the controller.",
    ),
    Flag::new(
        "worker-threads",
        Kind::Int,
        "10",
        "Number of worker threads.",
    ),
    Flag::new(
        "leader-election",
        Kind::Bool,
        "false",
        "Enables leader election.",
    )
    .process(),
    Flag::new(
        "leader-election-namespace",
        Kind::String,
        "",
        "The namespace where the leader election resource exists. Defaults to the pod namespace if not set.",
    )
    .process(),
    Flag::new(
        "leader-election-lease-duration",
        Kind::Duration,
        "15s",
        "Duration, in seconds, that non-leader candidates will wait to force acquire leadership. Defaults to 15 seconds.",
    )
    .process(),
    Flag::new(
        "leader-election-renew-deadline",
        Kind::Duration,
        "10s",
        "Duration, in seconds, that the acting leader will retry refreshing leadership before giving up. Defaults to 10 seconds.",
    )
    .process(),
    Flag::new(
        "leader-election-retry-period",
        Kind::Duration,
        "5s",
        "Duration, in seconds, the LeaderElector clients should wait between tries of actions. Defaults to 5 seconds.",
    )
    .process(),
    Flag::new(
        "kube-api-qps",
        Kind::Float,
        "5",
        "QPS to use while communicating with the kubernetes apiserver. Defaults to 5.0.",
    )
    .shared(),
    Flag::new(
        "kube-api-burst",
        Kind::Int,
        "10",
        "Burst to use while communicating with the kubernetes apiserver. Defaults to 10.",
    )
    .shared(),
    Flag::new(
        "http-endpoint",
        Kind::String,
        "",
        "The TCP network address where the HTTP server for diagnostics, including metrics, will listen (example: :8080). The default is empty string, which means the server is disabled.",
    )
    .process(),
    Flag::new(
        "metrics-path",
        Kind::String,
        "/metrics",
        "The HTTP path where prometheus metrics will be exposed. Default is `/metrics`.",
    )
    .process(),
    Flag::new(
        "retry-interval-start",
        Kind::Duration,
        "1s",
        "Initial retry interval of failed volume snapshot creation or deletion. It doubles with each failure, up to retry-interval-max. Default is 1 second.",
    ),
    Flag::new(
        "retry-interval-max",
        Kind::Duration,
        "5m0s",
        "Maximum retry interval of failed volume snapshot creation or deletion. Default is 5 minutes.",
    ),
    Flag::new(
        "enable-distributed-snapshotting",
        Kind::Bool,
        "false",
        "Enables each node to handle snapshotting for the local volumes created on that node",
    ),
    Flag::new(
        "prevent-volume-mode-conversion",
        Kind::Bool,
        "true",
        "Prevents an unauthorised user from modifying the volume mode when creating a PVC from an existing VolumeSnapshot.",
    ),
    Flag::new(
        "retry-crd-interval-max",
        Kind::Duration,
        "30s",
        "Maximum time to wait for CRDs to appear. The default is 30 seconds.",
    ),
    Flag::new(
        "feature-gates",
        Kind::MapStringBool,
        "",
        "Comma-seprated list of key=value pairs that describe feature gates for alpha/experimental features. Options are:\nCSIVolumeGroupSnapshot=true|false (GA - default=true)\nReleaseLeaderElectionOnExit=true|false (ALPHA - default=false)",
    )
    .process(),
];

/// The feature gates of v8.7.0.
pub const FEATURES: &[FeatureSpec] = &[
    FeatureSpec {
        name: "CSIVolumeGroupSnapshot",
        default: true,
        stage: Stage::Ga,
        locked_to_default: false,
    },
    FeatureSpec {
        name: "ReleaseLeaderElectionOnExit",
        default: false,
        stage: Stage::Alpha,
        locked_to_default: false,
    },
];

/// The lease name (no driver in it).
pub const LEASE_NAME: &str = "snapshot-controller-leader";

/// The snapshot-controller component.
pub static DESCRIPTOR: Descriptor = Descriptor {
    name: "snapshot-controller",
    aliases: &[],
    disabled_by_default: false,
    binary: "snapshot-controller",
    about: "Binds VolumeSnapshots to VolumeSnapshotContents and creates the contents of dynamic snapshots (cluster-wide)",
    upstream: Upstream {
        repo: "kubernetes-csi/external-snapshotter",
        version: "v8.7.0",
    },
    flag_groups: &[FLAGS],
    features: FEATURES,
    driver: DriverUse::None,
    kube: Some(KubeUse {
        lease_name,
        user_agent: "snapshot-controller",
        kubeconfig_env: false,
    }),
    http: HttpDefaults {
        default_port: None,
        serves_metrics: true,
    },
    validate,
    init,
};

/// `snapshot-controller-leader`, whatever the driver (there is none).
pub fn lease_name(_: &str) -> String {
    LEASE_NAME.to_string()
}

fn validate(flags: &FlagView) -> Result<Validated, String> {
    if flags.int("worker-threads") <= 0 {
        return Err("--worker-threads must be greater than zero".to_string());
    }
    Ok(Validated::Run)
}

/// Waits for `check` with a backoff from 100ms growing by half each time, for at most `max`
/// (at least a second), as upstream's `waitForCRDCondition`.
async fn wait_for_crds<F, Fut>(max: Duration, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + max.max(Duration::from_secs(1));
    let mut delay = Duration::from_millis(100);
    loop {
        let last = match check().await {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        let now = tokio::time::Instant::now();
        if now + delay > deadline {
            return Err(format!("timed out waiting for the condition: {last}"));
        }
        tokio::time::sleep(delay).await;
        delay = delay.mul_f64(1.5);
    }
}

async fn list_one<K>(api: Api<K>, what: &str) -> Result<(), String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default().limit(1))
        .await
        .map(|_| ())
        .map_err(|err| {
            let message = format!("Failed to list v1 {what} with error={err}");
            error!("{message}");
            message
        })
}

/// The VolumeSnapshot v1 CRDs are served (upstream's `ensureCustomResourceDefinitionsExist`).
async fn snapshot_crds(client: &kube::Client, max: Duration) -> Result<(), String> {
    wait_for_crds(max, || async {
        list_one(
            Api::<VolumeSnapshot>::all(client.clone()),
            "volumesnapshots",
        )
        .await?;
        list_one(
            Api::<VolumeSnapshotClass>::all(client.clone()),
            "volumesnapshotclasses",
        )
        .await?;
        list_one(
            Api::<VolumeSnapshotContent>::all(client.clone()),
            "volumesnapshotcontents",
        )
        .await
    })
    .await
}

/// The VolumeGroupSnapshot v1 CRDs are served.
async fn group_snapshot_crds(client: &kube::Client, max: Duration) -> Result<(), String> {
    wait_for_crds(max, || async {
        list_one(
            Api::<VolumeGroupSnapshot>::all(client.clone()),
            "volumegroupsnapshots",
        )
        .await?;
        list_one(
            Api::<VolumeGroupSnapshotClass>::all(client.clone()),
            "volumegroupsnapshotclasses",
        )
        .await?;
        list_one(
            Api::<VolumeGroupSnapshotContent>::all(client.clone()),
            "volumegroupsnapshotcontents",
        )
        .await
    })
    .await
}

/// The watches the controller needs.
struct Watches {
    snapshots: csi_kube::Subscription<VolumeSnapshot>,
    contents: csi_kube::Subscription<VolumeSnapshotContent>,
    listers: CacheListers,
    group: Option<crate::group::GroupCaches>,
}

fn declare(
    caches: &Caches,
    config: &Config,
    resync: Duration,
) -> Result<Watches, csi_kube::cache::Error> {
    let all = Selector::all();
    // Tens of thousands of snapshots are listed in pages.
    caches.paged_list::<VolumeSnapshot>(&all)?;
    caches.paged_list::<VolumeSnapshotContent>(&all)?;
    let snapshots = caches
        .subscribe::<VolumeSnapshot>(&all)?
        .with_resync(resync);
    let contents = caches
        .subscribe::<VolumeSnapshotContent>(&all)?
        .with_resync(resync);
    let namespace_of = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        vec![meta.namespace.clone().unwrap_or_default()]
    };
    caches.index::<VolumeSnapshot, _>(&all, NAMESPACE_INDEX, move |s| namespace_of(&s.metadata))?;
    caches.index::<PersistentVolumeClaim, _>(&all, NAMESPACE_INDEX, move |p| {
        namespace_of(&p.metadata)
    })?;
    caches.index::<PersistentVolume, _>(&all, utils::CSI_DRIVER_HANDLE_INDEX_NAME, |pv| {
        let key = utils::persistent_volume_key(Some(pv));
        if key.is_empty() {
            Vec::new()
        } else {
            vec![key]
        }
    })?;
    let group = crate::group::declare(caches, config.enable_volume_group_snapshots, resync)?;
    let listers = CacheListers {
        snapshots: snapshots.store(),
        contents: contents.store(),
        classes: caches.store(&all)?,
        pvcs: caches.store(&all)?,
        nodes: if config.enable_distributed_snapshotting {
            Some(caches.store::<Node>(&all)?)
        } else {
            None
        },
        group_snapshots: group.as_ref().map(|g| g.group_snapshots.clone()),
        group_contents: group.as_ref().map(|g| g.group_contents.clone()),
    };
    Ok(Watches {
        snapshots,
        contents,
        listers,
        group,
    })
}

fn init(ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async move {
        let shared = ctx.shared.clone();
        let flags = ctx.flags.clone();
        let kube = shared.kube();
        let client = kube
            .client_for_clientsets(
                &flags,
                "snapshot-controller",
                &[csi_kube::client::SNAPSHOT_CLIENTSET],
            )
            .map_err(anyhow::Error::from)?;
        let crd_max = flags.duration("retry-crd-interval-max");
        if let Err(err) = snapshot_crds(&client, crd_max).await {
            return Err(anyhow::anyhow!(
                "Exiting due to failure to ensure CRDs exist during startup: {err}"
            )
            .into());
        }
        let mut enable_groups = ctx.features.enabled("CSIVolumeGroupSnapshot");
        if enable_groups && let Err(err) = group_snapshot_crds(&client, crd_max).await {
            warn!(
                "VolumeGroupSnapshot CRDs were not found; disabling the VolumeGroupSnapshot feature for this run. Install the VolumeGroupSnapshot CRDs to use this feature: {err}"
            );
            enable_groups = false;
        }
        let config = Config {
            enable_distributed_snapshotting: flags.bool("enable-distributed-snapshotting"),
            prevent_volume_mode_conversion: flags.bool("prevent-volume-mode-conversion"),
            enable_volume_group_snapshots: enable_groups,
        };
        let resync = flags.duration("resync-period");
        info!(resync_period = ?resync, "Start NewCSISnapshotController");
        let watches = declare(&kube.caches, &config, resync).map_err(anyhow::Error::from)?;
        let metrics = shared
            .once(|| OperationMetrics::register(&shared.metrics))
            .context("Failed to register the snapshot controller metrics")?;
        let workers = usize::try_from(flags.int("worker-threads"))
            .unwrap_or(1)
            .max(1);
        let (start, max) = (
            flags.duration("retry-interval-start"),
            flags.duration("retry-interval-max"),
        );
        let queue = |name: &str| {
            WorkQueue::<String>::with_config(
                ItemExponentialFailureRateLimiter::new(start, max),
                QueueConfig::new(name),
            )
        };
        let controller = Arc::new(SnapshotController::new(
            config,
            Parts {
                api: Arc::new(KubeApi::new(client.clone())),
                listers: Arc::new(watches.listers.clone()),
                // Upstream's broadcaster names no host: `source.host` and
                // `reportingInstance` stay empty.
                events: Arc::new(csi_kube::Recorder::new(client.clone(), EVENT_COMPONENT, "")),
                metrics: metrics.clone(),
                snapshot_queue: queue(SNAPSHOT_QUEUE),
                content_queue: queue(CONTENT_QUEUE),
            },
        ));
        let group = watches.group.as_ref().map(|g| {
            Arc::new(GroupController::new(
                controller.clone(),
                GroupParts {
                    api: Arc::new(KubeGroupApi::new(client.clone())),
                    listers: Arc::new(g.listers.clone()),
                    group_snapshot_queue: queue(GROUP_SNAPSHOT_QUEUE),
                    group_content_queue: queue(GROUP_CONTENT_QUEUE),
                },
            ))
        });
        let shutdown = shared.shutdown.clone();
        Ok(Controller::new(run(
            controller, group, watches, workers, metrics, shutdown,
        )))
    })
}

/// Runs the controller until `shutdown`: fills its own stores, feeds the queues from the
/// watches and runs the workers.
async fn run(
    controller: Arc<SnapshotController>,
    group: Option<Arc<GroupController>>,
    watches: Watches,
    workers: usize,
    metrics: OperationMetrics,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    info!("Starting snapshot controller");
    controller.initialize_caches(
        watches.listers.snapshots.state(),
        watches.listers.contents.state(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    {
        let queue = controller.snapshot_queue.clone();
        let mut events = watches.snapshots.events();
        tasks.spawn(async move {
            while let Some(change) = events.next().await {
                let snapshot = match &change {
                    Change::Added(s) => s,
                    Change::Updated { new, .. } => new,
                    Change::Deleted { last, .. } => last,
                };
                queue.add(utils::snapshot_key(snapshot));
            }
        });
    }
    {
        let queue = controller.content_queue.clone();
        let mut events = watches.contents.events();
        tasks.spawn(async move {
            while let Some(change) = events.next().await {
                let content = match &change {
                    Change::Added(c) => c,
                    Change::Updated { new, .. } => new,
                    Change::Deleted { last, .. } => last,
                };
                queue.add(content.metadata.name.clone().unwrap_or_default());
            }
        });
    }
    {
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            metrics
                .refresh_in_flight(IN_FLIGHT_CHECK_INTERVAL, shutdown)
                .await;
        });
    }
    {
        let c = controller.clone();
        tasks.spawn(csi_workqueue::run_workers(
            controller.snapshot_queue.clone(),
            workers,
            shutdown.clone(),
            move |key: String| {
                let c = c.clone();
                async move {
                    match c.sync_snapshot_by_key(&key).await {
                        Ok(()) => Outcome::Forget,
                        Err(err) => {
                            tracing::debug!(
                                "Failed to sync snapshot {key:?}, will retry again: {err}"
                            );
                            Outcome::Requeue
                        }
                    }
                }
            },
        ));
    }
    {
        let c = controller.clone();
        tasks.spawn(csi_workqueue::run_workers(
            controller.content_queue.clone(),
            workers,
            shutdown.clone(),
            move |name: String| {
                let c = c.clone();
                async move {
                    match c.sync_content_by_key(&name).await {
                        Ok(()) => Outcome::Forget,
                        Err(err) => {
                            tracing::debug!(
                                "Failed to sync content {name:?}, will retry again: {err}"
                            );
                            Outcome::Requeue
                        }
                    }
                }
            },
        ));
    }
    if let (Some(group), Some(caches)) = (group, &watches.group) {
        crate::group::run::spawn(&mut tasks, group, caches, workers, shutdown.clone());
    }
    tokio::select! {
        _ = shutdown.cancelled() => {}
        Some(joined) = tasks.join_next() => {
            if let Err(err) = joined && err.is_panic() {
                tasks.shutdown().await;
                anyhow::bail!("snapshot controller task panicked: {err}");
            }
        }
    }
    info!("Shutting snapshot controller");
    tasks.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use csi_sidecar_runtime::process::standalone_flags;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::tests::framework::{Case, harness};

    #[test]
    fn the_command_passes_clap_debug_asserts() {
        standalone_flags(&DESCRIPTOR)
            .command()
            .clone()
            .debug_assert();
    }

    #[test]
    fn upstream_manifest_arguments_parse_with_upstream_defaults() {
        let flags = standalone_flags(&DESCRIPTOR);
        // deploy/kubernetes/snapshot-controller/setup-snapshot-controller.yaml's arguments,
        // in Go's one-dash form too.
        let parsed = flags
            .parse(["snapshot-controller", "--v=5", "-leader-election=true"])
            .unwrap();
        let view = parsed.controller(None);
        assert!(view.bool("leader-election"));
        assert_eq!(view.int("worker-threads"), 10);
        assert_eq!(view.duration("resync-period"), Duration::from_secs(900));
        assert_eq!(
            view.duration("retry-crd-interval-max"),
            Duration::from_secs(30)
        );
        assert!(view.bool("prevent-volume-mode-conversion"));
        assert!(!view.bool("enable-distributed-snapshotting"));
        assert_eq!(view.float("kube-api-qps"), 5.0);
        assert_eq!(view.int("kube-api-burst"), 10);
        // A sidecar's flags are not the controller's.
        assert!(
            flags
                .parse(["snapshot-controller", "--csi-address=/csi/csi.sock"])
                .is_err()
        );
        assert_eq!(validate(&view), Ok(Validated::Run));
        let parsed = flags
            .parse(["snapshot-controller", "--worker-threads=0"])
            .unwrap();
        assert!(validate(&parsed.controller(None)).is_err());
        assert_eq!(lease_name("any.driver"), "snapshot-controller-leader");
    }

    #[test]
    fn the_descriptor_names_the_version_in_release_tools() {
        let text = include_str!("../../../release-tools/upstream-versions.toml");
        let body = text
            .split("[snapshot-controller]")
            .nth(1)
            .expect("[snapshot-controller] in upstream-versions.toml");
        let body = body.split("\n[").next().unwrap_or_default();
        assert!(body.contains(&format!("upstream = \"{}\"", DESCRIPTOR.upstream.repo)));
        assert!(body.contains(&format!("version = \"{}\"", DESCRIPTOR.upstream.version)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_crd_wait_gives_up_after_its_maximum() {
        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let result = wait_for_crds(Duration::from_secs(3), || {
            calls += 1;
            async { Err("no such resource".to_string()) }
        })
        .await;
        assert!(result.unwrap_err().contains("no such resource"));
        let waited = started.elapsed();
        assert!(
            waited <= Duration::from_secs(3) && waited >= Duration::from_secs(2),
            "{waited:?}"
        );
        // 100ms growing by half: 0.1, 0.15, 0.225, ... within 3s.
        assert!((5..=9).contains(&calls), "{calls}");
        let mut calls = 0;
        wait_for_crds(Duration::from_secs(3), || {
            calls += 1;
            let ready = calls == 3;
            async move { if ready { Ok(()) } else { Err("not yet".into()) } }
        })
        .await
        .unwrap();
        assert_eq!(calls, 3);
    }

    // upstream's TestRunShutsDownEventBroadcaster "stop after caches synced": the controller
    // returns once stopped. ("cache sync failure" has no counterpart: the runtime waits for
    // the caches before it runs a controller.)
    #[tokio::test]
    async fn run_returns_after_shutdown() {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        let caches = Caches::new(client);
        let watches = declare(&caches, &Config::default(), Duration::ZERO).unwrap();
        let h = harness(&Case::default(), &[]);
        let metrics = h.ctrl.metrics.clone();
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        tokio::time::timeout(
            Duration::from_secs(30),
            run(Arc::new(h.ctrl), None, watches, 2, metrics, shutdown),
        )
        .await
        .expect("run returns")
        .unwrap();
    }
}
