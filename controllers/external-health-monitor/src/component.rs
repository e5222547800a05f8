//! external-health-monitor as a component of our runtime: upstream's flags, the start-up its
//! `main` does (driver name, the four capability checks), the controller's watches and tasks.
//!
//! The monitor needs the controller service and one way to learn volume health: the CSI 1.13
//! RPCs (LIST_VOLUME_HEALTH with GET_VOLUME_HEALTH, or GET_VOLUME_HEALTH), or the CSI 1.12
//! conditions (LIST_VOLUMES or GET_VOLUME, with VOLUME_CONDITION) — see
//! [`crate::csi::Support::mode`]. Upstream exits without them; standalone we do too (exit 1),
//! and in `csi-sidecars` the controller is disabled instead, with that reason, and the others
//! run on. Upstream has no
//! `--feature-gates`, so its only gate, ReleaseLeaderElectionOnExit, is always off: the lease
//! is not released on exit.

use std::sync::Arc;

use anyhow::Context as _;
use csi_connection::rpc;
use csi_sidecar_runtime::controller::Validated;
use csi_sidecar_runtime::kube::KubeUse;
use csi_sidecar_runtime::{
    BoxFuture, Controller, Descriptor, DriverUse, Flag, FlagView, HttpDefaults, InitContext,
    InitError, Kind, Upstream,
};
use tracing::info;

use crate::checker::{CheckerParts, PvHealthChecker, StoreListers};
use crate::controller::{MonitorConfig, PvMonitorController, declare};
use crate::csi::CsiHandler;
use crate::health::Reports;
use crate::kube::ApiClient;
use crate::node_watcher::{NodeWatcher, PvcToPodsCache};

/// The timeout of GetPluginInfo and the capability checks (upstream's `csiTimeout`).
const CSI_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// external-health-monitor's own flags (the common ones are in
/// [`csi_sidecar_runtime::kube::FLAGS`]).
pub const FLAGS: &[Flag] = &[
    Flag::new(
        "monitor-interval",
        Kind::Duration,
        "1m0s",
        "Interval for controller to check volumes health condition.",
    ),
    Flag::new(
        "resync",
        Kind::Duration,
        "10m0s",
        "Resync interval of the controller.",
    ),
    Flag::new(
        "timeout",
        Kind::Duration,
        "15s",
        "Timeout for waiting for attaching or detaching the volume.",
    )
    .shared(),
    Flag::new(
        "list-volumes-interval",
        Kind::Duration,
        "5m0s",
        "Time interval for calling ListVolumes RPC to check volumes' health condition",
    ),
    Flag::new(
        "volume-list-add-interval",
        Kind::Duration,
        "5m0s",
        "Time interval for listing volumes and add them to queue",
    ),
    Flag::new(
        "node-list-add-interval",
        Kind::Duration,
        "5m0s",
        "Time interval for listing nodess and add them to queue",
    ),
    Flag::new(
        "worker-threads",
        Kind::Int,
        "10",
        "Number of pv monitor worker threads",
    ),
    Flag::new(
        "enable-node-watcher",
        Kind::Bool,
        "false",
        "Indicates whether the node watcher is enabled or not.",
    ),
];

/// The external-health-monitor controller component.
pub static DESCRIPTOR: Descriptor = Descriptor {
    name: "health-monitor",
    aliases: &[
        "external-health-monitor",
        "csi-external-health-monitor-controller",
    ],
    disabled_by_default: false,
    binary: "csi-external-health-monitor-controller",
    about: "Reports volume health on PersistentVolumeClaims: ControllerListVolumeHealth / ControllerGetVolumeHealth (CSI 1.13) or ListVolumes / ControllerGetVolume conditions (CSI 1.12) -> PVC status.healthStatus",
    upstream: Upstream {
        repo: "kubernetes-csi/external-health-monitor",
        version: "v0.19.0",
    },
    flag_groups: &[csi_sidecar_runtime::kube::FLAGS, FLAGS],
    features: &[],
    driver: DriverUse::LongLived,
    kube: Some(KubeUse {
        lease_name,
        user_agent: "csi-external-health-monitor-controller",
        kubeconfig_env: false,
    }),
    http: HttpDefaults {
        default_port: None,
        serves_metrics: true,
    },
    validate,
    init,
};

/// Upstream's lease name before sanitizing: `external-health-monitor-leader-<driver>`.
pub fn lease_name(driver: &str) -> String {
    format!("external-health-monitor-leader-{driver}")
}

/// The Events' component (`source.component`): `csi-pv-monitor-controller-<driver>`.
pub fn event_component(driver: &str) -> String {
    format!("csi-pv-monitor-controller-{driver}")
}

fn validate(flags: &FlagView) -> Result<Validated, String> {
    let workers = flags.int("worker-threads");
    if workers < 0 {
        // A Go `uint` flag refuses a negative value while parsing.
        return Err(format!(
            "invalid value \"{workers}\" for flag -worker-threads: parse error"
        ));
    }
    if workers == 0 {
        return Err("Option --worker-threads must be greater than zero".to_string());
    }
    Ok(Validated::Run)
}

fn init(ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async move {
        let shared = ctx.shared.clone();
        let flags = ctx.flags.clone();
        let timeout = flags.duration("timeout");

        rpc::probe_forever(&shared.csi, timeout)
            .await
            .context("Failed to probe the CSI driver")?;
        let driver = shared
            .driver_name(Some(CSI_TIMEOUT))
            .await
            .context("Failed to get the CSI driver name")?;
        info!(driver, "CSI driver name");

        let csi = CsiHandler::new(shared.csi.clone());
        let support = csi.support(CSI_TIMEOUT).await.map_err(anyhow::Error::msg)?;
        let mode = support
            .mode()
            .map_err(|reason| InitError::Disabled(reason.to_string()))?;
        info!(?mode, "Volume health monitoring mode");

        let kube = shared.kube();
        let client = kube
            .client_for(&flags, "csi-external-health-monitor-controller")
            .map_err(anyhow::Error::from)?;
        let config = MonitorConfig {
            driver_name: driver.clone(),
            enable_node_watcher: flags.bool("enable-node-watcher"),
            mode,
            list_volumes_interval: flags.duration("list-volumes-interval"),
            monitor_interval: flags.duration("monitor-interval"),
            volume_list_add_interval: flags.duration("volume-list-add-interval"),
            node_list_add_interval: flags.duration("node-list-add-interval"),
            workers: usize::try_from(flags.int("worker-threads")).unwrap_or(1),
            resync: flags.duration("resync"),
        };
        let watches = declare(&kube.caches, &config).map_err(anyhow::Error::from)?;
        let listers: Arc<dyn crate::checker::Listers> = Arc::new(StoreListers {
            volumes: watches.volumes.store(),
            claims: watches.claims.clone(),
        });
        // Upstream's recorder names a component and no host.
        let events: Arc<dyn csi_kube::EventRecorder> = Arc::new(csi_kube::Recorder::new(
            client.clone(),
            event_component(&driver),
            "",
        ));
        let api: Arc<dyn crate::kube::HealthApi> = Arc::new(ApiClient::new(client));
        let checker = Arc::new(PvHealthChecker::new(CheckerParts {
            driver_name: driver.clone(),
            timeout,
            csi,
            mode,
            listers: listers.clone(),
            api: api.clone(),
            events: events.clone(),
            reports: Arc::new(Reports::default()),
        }));
        let pvc_to_pods = Arc::new(PvcToPodsCache::default());
        let node_watcher = config.enable_node_watcher.then(|| {
            Arc::new(NodeWatcher::new(
                driver.clone(),
                listers.clone(),
                events,
                pvc_to_pods.clone(),
            ))
        });
        let controller = PvMonitorController::new(
            config,
            watches,
            checker,
            listers,
            node_watcher,
            pvc_to_pods,
            Some(api),
        );
        let shutdown = shared.shutdown.clone();
        Ok(Controller::new(async move {
            controller.run(shutdown).await;
            Ok(())
        }))
    })
}
