//! external-attacher as a component of our runtime: upstream's flags, the capability checks
//! its `main` makes, the watches it declares, its two work queues and their workers, the
//! periodic resync and the `ListVolumes` reconcile.
//!
//! What upstream's `main.go` and `CSIAttachController.Run` do, in order: probe the driver until
//! it is ready (`--timeout` per probe), read its name, check `CONTROLLER_SERVICE` and the
//! controller capabilities (one second each), pick the CSI handler (driver has
//! `PUBLISH_UNPUBLISH_VOLUME`) or the trivial one, then — once the caches are synced and, with
//! `--leader-election`, while this replica leads — run `--worker-threads` workers per queue.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use csi_connection::rpc;
use csi_kube::{Change, Selector, Subscription};
use csi_proto::csi::v1::controller_service_capability::rpc::Type as ControllerCapability;
use csi_proto::csi::v1::plugin_capability::service::Type as PluginCapability;
use csi_sidecar_runtime::controller::Validated;
use csi_sidecar_runtime::features::{FeatureSpec, Stage};
use csi_sidecar_runtime::kube::KubeUse;
use csi_sidecar_runtime::{
    BoxFuture, Controller, Descriptor, DriverUse, Flag, FlagView, HttpDefaults, InitContext,
    InitError, Kind, Upstream,
};
use csi_workqueue::{ItemExponentialFailureRateLimiter, Outcome, QueueConfig, WorkQueue};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::{CSINode, VolumeAttachment};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

use crate::{
    ApiClient, AttachController, CsiAttacher, CsiHandler, CsiHandlerConfig, CsiVolumeLister,
    Handler, KubeListers, PV_QUEUE_NAME, StoreListers, SyncOutcome, TrivialHandler, VA_QUEUE_NAME,
    VolumeLister,
};

/// Timeout of the start-up calls (GetPluginInfo, capabilities), as upstream's `csiTimeout`.
const CSI_TIMEOUT: Duration = Duration::from_secs(1);

/// external-attacher v4.13.0's own flags (the common ones are in
/// [`csi_sidecar_runtime::kube::FLAGS`]).
pub const FLAGS: &[Flag] = &[
    Flag::new(
        "resync",
        Kind::Duration,
        "10m",
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
        "retry-interval-start",
        Kind::Duration,
        "1s",
        "Initial retry interval of failed provisioning or deletion. It doubles with each failure, up to retry-interval-max.",
    )
    .shared(),
    Flag::new(
        "retry-interval-max",
        Kind::Duration,
        "5m",
        "Maximum retry interval of failed provisioning or deletion.",
    )
    .shared(),
    Flag::new(
        "worker-threads",
        Kind::Int,
        "10",
        "Number of attacher worker threads",
    )
    .shared(),
    Flag::new(
        "max-entries",
        Kind::Int,
        "0",
        "Max entries per each page in volume lister call, 0 means no limit.",
    ),
    Flag::new(
        "default-fstype",
        Kind::String,
        "",
        "The default filesystem type of the volume to publish. Defaults to empty string",
    ),
    Flag::new(
        "reconcile-sync",
        Kind::Duration,
        "1m",
        "Resync interval of the VolumeAttachment reconciler.",
    ),
    Flag::new(
        "max-grpc-log-length",
        Kind::Int,
        "-1",
        "The maximum amount of characters logged for every grpc responses. Defaults to no limit",
    )
    .process(),
    Flag::new(
        "feature-gates",
        Kind::MapStringBool,
        "",
        "A set of key=value pairs that describe feature gates for alpha/experimental features. Options are: MutableCSINodeAllocatableCount, ReleaseLeaderElectionOnExit",
    )
    .process(),
];

/// external-attacher's feature gates.
pub const FEATURES: &[FeatureSpec] = &[
    FeatureSpec {
        name: "ReleaseLeaderElectionOnExit",
        default: false,
        stage: Stage::Alpha,
        locked_to_default: false,
    },
    FeatureSpec {
        name: "MutableCSINodeAllocatableCount",
        default: true,
        stage: Stage::Ga,
        locked_to_default: false,
    },
];

/// The external-attacher component.
pub static DESCRIPTOR: Descriptor = Descriptor {
    name: "attacher",
    aliases: &["external-attacher", "csi-attacher"],
    disabled_by_default: false,
    binary: "csi-attacher",
    about: "Attaches and detaches volumes: VolumeAttachment -> ControllerPublishVolume",
    upstream: Upstream {
        repo: "kubernetes-csi/external-attacher",
        version: "v4.13.0",
    },
    flag_groups: &[csi_sidecar_runtime::kube::FLAGS, FLAGS],
    features: FEATURES,
    driver: DriverUse::LongLived,
    kube: Some(KubeUse {
        lease_name,
        user_agent: "csi-attacher",
        kubeconfig_env: false,
    }),
    http: HttpDefaults {
        default_port: None,
        serves_metrics: true,
    },
    validate,
    init,
};

/// Upstream's lease name before sanitizing: `external-attacher-leader-<driver>`.
pub fn lease_name(driver: &str) -> String {
    format!("external-attacher-leader-{driver}")
}

fn validate(flags: &FlagView) -> Result<Validated, String> {
    if flags.int("worker-threads") <= 0 {
        return Err("Option -worker-threads must be greater than zero".to_string());
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
        // Upstream connects again for a driver of CSI migration, with the `migrated` metric
        // label, and probes that connection until the driver is ready.
        if csi_translation::is_migrated_csi_driver_by_name(&driver)
            && shared.enable_migration_metrics()
        {
            rpc::probe_forever(&shared.csi, timeout)
                .await
                .context("Failed to probe the CSI driver")?;
        }
        let plugin = rpc::get_plugin_capabilities(&shared.csi, Some(CSI_TIMEOUT))
            .await
            .context("Failed to check if the CSI Driver supports the CONTROLLER_SERVICE")?;
        let controller_caps = if plugin.contains(&PluginCapability::ControllerService) {
            Some(
                rpc::get_controller_capabilities(&shared.csi, Some(CSI_TIMEOUT))
                    .await
                    .context("Failed to controller capability check")?,
            )
        } else {
            None
        };
        let caps = controller_caps.unwrap_or_default();
        let supports_attach = caps.contains(&ControllerCapability::PublishUnpublishVolume);
        let supports_list_published = caps.contains(&ControllerCapability::ListVolumes)
            && caps.contains(&ControllerCapability::ListVolumesPublishedNodes);

        let kube = shared.kube();
        let client = kube
            .client_for(&flags, "csi-attacher")
            .map_err(anyhow::Error::from)?;
        let all = Selector::all();
        // Upstream's informer factory resyncs both informers every --resync.
        let va_events = kube
            .caches
            .subscribe::<VolumeAttachment>(&all)
            .map_err(anyhow::Error::from)?
            .with_resync(flags.duration("resync"));
        let pv_events = kube
            .caches
            .subscribe::<PersistentVolume>(&all)
            .map_err(anyhow::Error::from)?
            .with_resync(flags.duration("resync"));
        let (va_store, pv_store) = (va_events.store(), pv_events.store());
        // Upstream watches CSINodes only for the CSI handler.
        let csi_nodes = if supports_attach {
            Some(
                kube.caches
                    .store::<CSINode>(&all)
                    .map_err(anyhow::Error::from)?,
            )
        } else {
            None
        };
        let listers: Arc<dyn KubeListers> =
            Arc::new(StoreListers::new(pv_store.clone(), va_store, csi_nodes));
        let api: Arc<dyn crate::KubeClient> =
            Arc::new(ApiClient::new(client.clone()).with_field_manager("csi-attacher"));
        let handler: Arc<dyn Handler> = if supports_attach {
            info!("CSI driver supports ControllerPublishUnpublish, using real CSI handler");
            let volume_lister: Option<Arc<dyn VolumeLister>> = supports_list_published.then(|| {
                let max_entries = i32::try_from(flags.int("max-entries")).unwrap_or(i32::MAX);
                Arc::new(CsiVolumeLister::new(shared.csi.clone(), max_entries)) as _
            });
            let mut config = CsiHandlerConfig::new(driver.clone());
            config.timeout = timeout;
            config.supports_publish_read_only =
                caps.contains(&ControllerCapability::PublishReadonly);
            config.supports_single_node_multi_writer =
                caps.contains(&ControllerCapability::SingleNodeMultiWriter);
            config.default_fs_type = flags.string("default-fstype");
            config.attach_error_code = shared.features.enabled("MutableCSINodeAllocatableCount");
            Arc::new(CsiHandler::new(
                config,
                api.clone(),
                listers.clone(),
                Arc::new(CsiAttacher::new(shared.csi.clone())),
                volume_lister,
            ))
        } else {
            if plugin.contains(&PluginCapability::ControllerService) {
                info!(
                    "CSI driver does not support ControllerPublishUnpublish, using trivial handler"
                );
            } else {
                info!(
                    "CSI driver does not support Plugin Controller Service, using trivial handler"
                );
            }
            Arc::new(TrivialHandler::new(api.clone()))
        };
        if supports_list_published {
            info!(
                "CSI driver supports list volumes published nodes. Using capability to reconcile volume attachment objects with actual backend state"
            );
        }

        let backoff = || {
            ItemExponentialFailureRateLimiter::<String>::new(
                flags.duration("retry-interval-start"),
                flags.duration("retry-interval-max"),
            )
        };
        let queue_config = |name: &str| {
            let config = QueueConfig::new(name);
            match shared.workqueue_metrics() {
                Some(metrics) => config.metrics(metrics),
                None => config,
            }
        };
        let run = Run {
            controller: Arc::new(AttachController::new(driver.clone(), handler, listers)),
            va_queue: WorkQueue::with_config(backoff(), queue_config(VA_QUEUE_NAME)),
            pv_queue: WorkQueue::with_config(backoff(), queue_config(PV_QUEUE_NAME)),
            workers: usize::try_from(flags.int("worker-threads")).unwrap_or(1),
            reconcile: supports_list_published.then(|| flags.duration("reconcile-sync")),
            shutdown: shared.shutdown.clone(),
        };
        Ok(Controller::new(run.run(va_events, pv_events)))
    })
}

/// Everything the running attacher needs.
struct Run {
    controller: Arc<AttachController>,
    va_queue: WorkQueue<String>,
    pv_queue: WorkQueue<String>,
    workers: usize,
    reconcile: Option<Duration>,
    shutdown: CancellationToken,
}

impl Run {
    async fn run(
        self,
        va_events: Subscription<VolumeAttachment>,
        pv_events: Subscription<PersistentVolume>,
    ) -> anyhow::Result<()> {
        info!("Starting CSI attacher");
        let this = Arc::new(self);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(this.clone().feed_volume_attachments(va_events));
        tasks.spawn(this.clone().feed_persistent_volumes(pv_events));
        if let Some(period) = this.reconcile {
            tasks.spawn(this.clone().reconcile_loop(period));
        }
        tasks.spawn(csi_workqueue::run_workers(
            this.va_queue.clone(),
            this.workers,
            this.shutdown.clone(),
            {
                let this = this.clone();
                move |key: String| this.clone().sync_va(key)
            },
        ));
        tasks.spawn(csi_workqueue::run_workers(
            this.pv_queue.clone(),
            this.workers,
            this.shutdown.clone(),
            {
                let this = this.clone();
                move |key: String| this.clone().sync_pv(key)
            },
        ));
        // Until shutdown, unless a task panics (a bug in a handler): then this controller
        // stops and reports it, rather than carry on with some of its workers gone.
        let panicked = loop {
            tokio::select! {
                () = this.shutdown.cancelled() => break None,
                Some(joined) = tasks.join_next() => {
                    if let Err(err) = joined
                        && err.is_panic()
                    {
                        break Some(csi_sidecar_runtime::supervisor::panic_message(err.into_panic()));
                    }
                }
            }
        };
        if let Some(message) = panicked {
            this.va_queue.shut_down();
            this.pv_queue.shut_down();
            tasks.shutdown().await;
            anyhow::bail!("CSI attacher task panicked: {message}");
        }
        while tasks.join_next().await.is_some() {}
        info!("Shutting CSI attacher");
        Ok(())
    }

    /// Upstream's VolumeAttachment add / update / delete handlers; resyncs arrive as updates.
    async fn feed_volume_attachments(self: Arc<Self>, events: Subscription<VolumeAttachment>) {
        let mut events = std::pin::pin!(events.events());
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                change = events.next() => match change {
                    None => return,
                    Some(Change::Added(va)) => self.va_queue.add(self.controller.va_added(&va)),
                    Some(Change::Updated { old, new }) => {
                        if let Some(key) = self.controller.va_updated(&old, &new) {
                            self.va_queue.add(key);
                        }
                    }
                    Some(Change::Deleted { last, .. }) => {
                        if let Some(pv) = self.controller.va_deleted(&last) {
                            self.pv_queue.add(pv);
                        }
                    }
                },
            }
        }
    }

    /// Upstream's PersistentVolume add / update handlers (it has no delete handler).
    async fn feed_persistent_volumes(self: Arc<Self>, events: Subscription<PersistentVolume>) {
        let mut events = std::pin::pin!(events.events());
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                change = events.next() => {
                    let key = match change {
                        None => return,
                        Some(Change::Added(pv)) => self.controller.pv_added(&pv),
                        Some(Change::Updated { old, new }) => self.controller.pv_updated(&old, &new),
                        Some(Change::Deleted { .. }) => None,
                    };
                    if let Some(key) = key {
                        self.pv_queue.add(key);
                    }
                }
            }
        }
    }

    /// Upstream's `ReconcileVA` every `--reconcile-sync` (the driver lists published nodes).
    async fn reconcile_loop(self: Arc<Self>, period: Duration) {
        let mut ticker = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = ticker.tick() => match self.controller.reconcile_va().await {
                    Ok(keys) => {
                        for key in keys {
                            self.va_queue.add(key);
                        }
                    }
                    Err(err) => error!(%err, "Failed to reconcile VolumeAttachment"),
                },
            }
        }
    }

    /// Upstream's `syncVA` for one key.
    async fn sync_va(self: Arc<Self>, key: String) -> Outcome {
        let outcome = self.controller.sync_va(&key).await;
        queue_outcome(&key, outcome)
    }

    /// Upstream's `syncPV` for one key.
    async fn sync_pv(self: Arc<Self>, key: String) -> Outcome {
        let outcome = self.controller.sync_pv(&key).await;
        queue_outcome(&key, outcome)
    }
}

/// What the work queue does with a key after a sync, as upstream's `syncVA` / `syncPV` (the
/// error was logged where it happened).
fn queue_outcome(key: &str, outcome: SyncOutcome) -> Outcome {
    match outcome {
        SyncOutcome::Done => Outcome::Done,
        SyncOutcome::Forget => Outcome::Forget,
        SyncOutcome::Requeue(err) => {
            debug!(key, %err, "Requeueing with backoff");
            Outcome::Requeue
        }
    }
}
