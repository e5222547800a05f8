//! external-provisioner as a component of our runtime: upstream v6.4.0's flags, the start-up
//! its `main` does (probe, driver name, capabilities, identity, `--node-deployment`'s node), the
//! watches it declares, its queues and workers.
//!
//! Watches (each shared with every other component of the process): PVCs (with a UID index)
//! and PVs, re-handled every 15 minutes as the library does; StorageClasses; VolumeAttachments
//! when the driver attaches; CSINodes and Nodes when the driver has topology (outside node
//! deployment). Upstream opens a second StorageClass watch in the library's private factory;
//! here there is one.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use csi_connection::rpc;
use csi_kube::{Change, Selector, Subscription};
use csi_proto::csi::v1::NodeGetInfoRequest;
use csi_proto::csi::v1::controller_service_capability::rpc::Type as ControllerCapability;
use csi_proto::csi::v1::node_client::NodeClient;
use csi_proto::csi::v1::plugin_capability::service::Type as PluginCapability;
use csi_sidecar_runtime::controller::Validated;
use csi_sidecar_runtime::features::{FeatureSpec, Stage};
use csi_sidecar_runtime::kube::KubeUse;
use csi_sidecar_runtime::{
    BoxFuture, Controller, Descriptor, DriverUse, Flag, FlagView, HttpDefaults, InitContext,
    InitError, Kind, Upstream,
};
use csi_workqueue::{
    ItemExponentialFailureRateLimiter, QueueConfig, WorkQueue, default_controller_rate_limiter,
};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::{CSINode, StorageClass, VolumeAttachment};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::capacity::{
    Capacity, CapacityMetrics, CapacityOptions, KubeCapacityApi, KubeObjectReader, lookup_owner,
    managed_by_id,
};
use crate::clone_protection::{CloningProtection, CloningProtectionConfig};
use crate::controller::{
    CLAIM_QUEUE_NAME, PROVISIONING_FINALIZER, Parts, ProvisionController, RESYNC_PERIOD,
    UNSAVED_QUEUE_NAME, UNSAVED_WORKERS, VOLUME_QUEUE_NAME,
};
use crate::csi::CsiVolumeDriver;
use crate::data_source::{
    DataSourceClient, DataSourceConfig, DataSources, KubeDataSourceClient, StoreDataSourceListers,
};
use crate::kube::{ApiClient, StoreListers, UID_INDEX, uid_index};
use crate::metrics::ProvisionMetrics;
use crate::migration::Migration;
use crate::node_deployment::{NodeDeploymentConfig, NodeOwner};
use crate::provision::{DriverCapabilities, NodeDeployment, ProvisionerConfig};
use crate::snapshot_protection::SnapshotFinalizerSweep;
use csi_crd_types::gateway::v1beta1::ReferenceGrant;

/// external-provisioner v6.4.0's own flags (the common ones are in
/// [`csi_sidecar_runtime::kube::FLAGS`]), in upstream's order.
pub const FLAGS: &[Flag] = &[
    Flag::new(
        "master",
        Kind::String,
        "",
        "Master URL to build a client config from. Either this or kubeconfig needs to be set if the provisioner is being run out of cluster.",
    )
    .process(),
    Flag::new(
        "volume-name-prefix",
        Kind::String,
        "pvc",
        "Prefix to apply to the name of a created volume.",
    ),
    Flag::new(
        "volume-name-uuid-length",
        Kind::Int,
        "-1",
        "Truncates generated UUID of a created volume to this length. Defaults behavior is to NOT truncate.",
    ),
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
        "100",
        "Number of provisioner worker threads, in other words nr. of simultaneous CSI calls.",
    )
    .shared(),
    Flag::new(
        "cloning-protection-threads",
        Kind::Int,
        "1",
        "Number of simultaneously running threads, handling cloning finalizer removal",
    ),
    Flag::new(
        "snapshot-orphan-sweep-interval",
        Kind::Duration,
        "5m",
        "How often to check for orphaned snapshot source-protection finalizers. Set to 0 to disable the sweep controller.",
    ),
    Flag::new(
        "capacity-threads",
        Kind::Int,
        "1",
        "Number of simultaneously running threads, handling CSIStorageCapacity objects",
    ),
    Flag::new(
        "timeout",
        Kind::Duration,
        "10s",
        "Timeout for waiting for volume operation (creation, deletion, capacity queries)",
    )
    .shared(),
    Flag::new(
        "strict-topology",
        Kind::Bool,
        "false",
        "Late binding: pass only selected node topology to CreateVolume Request, unlike default behavior of passing aggregated cluster topologies that match with topology keys of the selected node.",
    ),
    Flag::new(
        "immediate-topology",
        Kind::Bool,
        "true",
        "Immediate binding: pass aggregated cluster topologies for all nodes where the CSI driver is available (enabled, the default) or no topology requirements (if disabled).",
    ),
    Flag::new(
        "extra-create-metadata",
        Kind::Bool,
        "false",
        "If set, add pv/pvc metadata to plugin create requests as parameters.",
    ),
    Flag::new(
        "enable-pprof",
        Kind::Bool,
        "false",
        "Enable pprof profiling on the TCP network address specified by --http-endpoint. The HTTP path is `/debug/pprof/`. (Accepted; Go's pprof does not exist in this binary: the process warns.)",
    )
    .process(),
    Flag::new(
        "default-fstype",
        Kind::String,
        "",
        "The default filesystem type of the volume to provision when fstype is unspecified in the StorageClass. If the default is not set and fstype is unset in the StorageClass, then no fstype will be set",
    ),
    Flag::new(
        "kube-api-capacity-qps",
        Kind::Float,
        "1",
        "QPS to use for storage capacity updates while communicating with the kubernetes apiserver. Defaults to 1.0.",
    ),
    Flag::new(
        "kube-api-capacity-burst",
        Kind::Int,
        "5",
        "Burst to use for storage capacity updates while communicating with the kubernetes apiserver. Defaults to 5.",
    ),
    Flag::new(
        "enable-capacity",
        Kind::Bool,
        "false",
        "This enables producing CSIStorageCapacity objects with capacity information from the driver's GetCapacity call.",
    ),
    Flag::new(
        "capacity-for-immediate-binding",
        Kind::Bool,
        "false",
        "Enables producing capacity information for storage classes with immediate binding. Not needed for the Kubernetes scheduler, maybe useful for other consumers or for debugging.",
    ),
    Flag::new(
        "capacity-poll-interval",
        Kind::Duration,
        "1m",
        "How long the external-provisioner waits before checking for storage capacity changes.",
    ),
    Flag::new(
        "capacity-ownerref-level",
        Kind::Int,
        "1",
        "The level indicates the number of objects that need to be traversed starting from the pod identified by the POD_NAME and NAMESPACE environment variables to reach the owning object for CSIStorageCapacity objects: -1 for no owner, 0 for the pod itself, 1 for a StatefulSet or DaemonSet, 2 for a Deployment, etc.",
    ),
    Flag::new(
        "node-deployment",
        Kind::Bool,
        "false",
        "Enables deploying the external-provisioner together with a CSI driver on nodes to manage node-local volumes.",
    ),
    Flag::new(
        "node-deployment-immediate-binding",
        Kind::Bool,
        "true",
        "Determines whether immediate binding is supported when deployed on each node.",
    ),
    Flag::new(
        "node-deployment-base-delay",
        Kind::Duration,
        "20s",
        "Determines how long the external-provisioner sleeps initially before trying to own a PVC with immediate binding.",
    ),
    Flag::new(
        "node-deployment-max-delay",
        Kind::Duration,
        "1m0s",
        "Determines how long the external-provisioner sleeps at most before trying to own a PVC with immediate binding.",
    ),
    Flag::new(
        "controller-publish-readonly",
        Kind::Bool,
        "false",
        "This option enables PV to be marked as readonly at controller publish volume call if PVC accessmode has been set to ROX.",
    ),
    Flag::new(
        "prevent-volume-mode-conversion",
        Kind::Bool,
        "true",
        "Prevents an unauthorised user from modifying the volume mode when creating a PVC from an existing VolumeSnapshot.",
    ),
    Flag::new(
        "feature-gates",
        Kind::MapStringBool,
        "",
        "A set of key=value pairs that describe feature gates for alpha/experimental features. Options are: CrossNamespaceVolumeDataSource, ReleaseLeaderElectionOnExit, Topology, VolumeAttributesClass",
    )
    .process(),
];

/// external-provisioner's feature gates.
pub const FEATURES: &[FeatureSpec] = &[
    FeatureSpec {
        name: "Topology",
        default: true,
        stage: Stage::Ga,
        locked_to_default: false,
    },
    FeatureSpec {
        name: "CrossNamespaceVolumeDataSource",
        default: false,
        stage: Stage::Alpha,
        locked_to_default: false,
    },
    FeatureSpec {
        name: "VolumeAttributesClass",
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

/// The external-provisioner component.
pub static DESCRIPTOR: Descriptor = Descriptor {
    name: "provisioner",
    aliases: &["external-provisioner", "csi-provisioner"],
    disabled_by_default: false,
    binary: "csi-provisioner",
    about: "Provisions and deletes volumes: PersistentVolumeClaim -> CreateVolume -> PersistentVolume",
    upstream: Upstream {
        repo: "kubernetes-csi/external-provisioner",
        version: "v6.4.0",
    },
    flag_groups: &[csi_sidecar_runtime::kube::FLAGS, FLAGS],
    features: FEATURES,
    driver: DriverUse::LongLived,
    kube: Some(KubeUse {
        lease_name,
        user_agent: "csi-provisioner",
        kubeconfig_env: true,
    }),
    http: HttpDefaults {
        default_port: None,
        serves_metrics: true,
    },
    validate,
    init,
};

/// Upstream's lease name before sanitizing: the driver name with `/` replaced by `-`.
pub fn lease_name(driver: &str) -> String {
    driver.replace('/', "-")
}

fn validate(flags: &FlagView) -> Result<Validated, String> {
    for name in [
        "worker-threads",
        "cloning-protection-threads",
        "capacity-threads",
    ] {
        if flags.int(name) < 0 {
            return Err(format!(
                "invalid argument \"{}\" for \"--{name}\" flag: strconv.ParseUint: parsing \"{}\": invalid syntax",
                flags.int(name),
                flags.int(name)
            ));
        }
    }
    if flags.bool("node-deployment") && std::env::var("NODE_NAME").unwrap_or_default().is_empty() {
        return Err("--node-deployment requires NODE_NAME env and --csi-address".to_string());
    }
    Ok(Validated::Run)
}

/// Upstream's identity: `<unix milliseconds>-<random 0..9999>-<driver>[-<node>]`.
fn identity(driver: &str, node: Option<&str>) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let random = csi_controller::random::random_u64() % 10000;
    match node {
        Some(node) => format!("{millis}-{random}-{driver}-{node}"),
        None => format!("{millis}-{random}-{driver}"),
    }
}

/// Upstream builds a snapshot clientset and a Gateway API clientset next to the core one, each
/// with its own `--kube-api-qps` budget.
const PROVISIONER_CLIENTSETS: &[&[&str]] = &[
    csi_kube::client::SNAPSHOT_CLIENTSET,
    csi_kube::client::GATEWAY_CLIENTSET,
];

fn init(ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async move {
        let shared = ctx.shared.clone();
        let flags = ctx.flags.clone();
        let timeout = flags.duration("timeout");

        rpc::probe_forever(&shared.csi, timeout)
            .await
            .context("Error probing CSI driver")?;
        let driver = shared
            .driver_name(Some(timeout))
            .await
            .context("Error getting CSI driver name")?;
        info!("Detected CSI driver {driver}");
        // Upstream connects again for a driver of CSI migration, with the `migrated` metric
        // label, and probes that connection.
        if csi_translation::is_migrated_csi_driver_by_name(&driver)
            && shared.enable_migration_metrics()
        {
            rpc::probe_forever(&shared.csi, timeout)
                .await
                .context("Error probing CSI driver")?;
        }
        let plugin = rpc::get_plugin_capabilities(&shared.csi, Some(timeout))
            .await
            .context("Error getting CSI driver capabilities")?;
        let controller_caps = rpc::get_controller_capabilities(&shared.csi, Some(timeout))
            .await
            .context("Error getting CSI driver capabilities")?;

        let mut node_id = String::new();
        let node_deployment = if flags.bool("node-deployment") {
            let node_name = std::env::var("NODE_NAME").unwrap_or_default();
            let info = shared
                .csi
                .unary(
                    "/csi.v1.Node/NodeGetInfo",
                    Some(timeout),
                    NodeGetInfoRequest {},
                    |ch, req| async move { NodeClient::new(ch).node_get_info(req).await },
                )
                .await
                .map_err(|status| {
                    anyhow::anyhow!(
                        "Failed to get node info from CSI driver: {}",
                        csi_connection::format_status(&status)
                    )
                })?;
            info!("Node deployment for node {node_name}, node info {info:?}");
            node_id = info.node_id.clone();
            Some(NodeDeployment {
                node_name,
                accessible_topology: info.accessible_topology,
            })
        } else {
            None
        };

        let topology = plugin.contains(&PluginCapability::VolumeAccessibilityConstraints)
            && ctx.features.enabled("Topology");
        let capabilities = DriverCapabilities {
            controller_service: plugin.contains(&PluginCapability::ControllerService),
            create_delete_volume: controller_caps
                .contains(&ControllerCapability::CreateDeleteVolume),
            single_node_multi_writer: controller_caps
                .contains(&ControllerCapability::SingleNodeMultiWriter),
            create_delete_snapshot: controller_caps
                .contains(&ControllerCapability::CreateDeleteSnapshot),
            clone_volume: controller_caps.contains(&ControllerCapability::CloneVolume),
            modify_volume: controller_caps.contains(&ControllerCapability::ModifyVolume),
            topology,
        };
        let config = ProvisionerConfig {
            identity: identity(
                &driver,
                node_deployment.as_ref().map(|n| n.node_name.as_str()),
            ),
            driver_name: driver.clone(),
            volume_name_prefix: flags.string("volume-name-prefix"),
            volume_name_uuid_length: i32::try_from(flags.int("volume-name-uuid-length"))
                .unwrap_or(-1),
            timeout,
            strict_topology: flags.bool("strict-topology"),
            immediate_topology: flags.bool("immediate-topology"),
            extra_create_metadata: flags.bool("extra-create-metadata"),
            default_fs_type: flags.string("default-fstype"),
            controller_publish_readonly: flags.bool("controller-publish-readonly"),
            volume_attributes_class: ctx.features.enabled("VolumeAttributesClass"),
            capabilities,
            node_deployment: node_deployment.clone(),
            migration: Migration::for_driver(&driver),
        };
        if let Some(migration) = &config.migration {
            debug!(
                v = 2,
                "Supports migration from in-tree plugin: {}", migration.in_tree_plugin_name
            );
        }

        let kube = shared.kube();
        let client = kube
            .client_for_clientsets(&flags, "csi-provisioner", PROVISIONER_CLIENTSETS)
            .map_err(anyhow::Error::from)?;
        let all = Selector::all();
        kube.caches
            .index::<PersistentVolumeClaim, _>(&all, UID_INDEX, uid_index)
            .map_err(anyhow::Error::from)?;
        let claim_events = kube
            .caches
            .subscribe::<PersistentVolumeClaim>(&all)
            .map_err(anyhow::Error::from)?
            .with_resync(RESYNC_PERIOD);
        let volume_events = kube
            .caches
            .subscribe::<PersistentVolume>(&all)
            .map_err(anyhow::Error::from)?
            .with_resync(RESYNC_PERIOD);
        let classes = kube
            .caches
            .store::<StorageClass>(&all)
            .map_err(anyhow::Error::from)?;
        let attachments = if controller_caps.contains(&ControllerCapability::PublishUnpublishVolume)
        {
            Some(
                kube.caches
                    .store::<VolumeAttachment>(&all)
                    .map_err(anyhow::Error::from)?,
            )
        } else {
            None
        };
        let (csi_nodes, nodes) = if topology && node_deployment.is_none() {
            (
                Some(
                    kube.caches
                        .store::<CSINode>(&all)
                        .map_err(anyhow::Error::from)?,
                ),
                Some(
                    kube.caches
                        .store::<Node>(&all)
                        .map_err(anyhow::Error::from)?,
                ),
            )
        } else {
            (None, None)
        };
        let listers = StoreListers {
            claims: claim_events.store(),
            volumes: volume_events.store(),
            classes,
            csi_nodes,
            nodes,
            attachments,
        };
        let listers: Arc<dyn crate::kube::Listers> = match &node_deployment {
            Some(node) if topology => Arc::new(crate::kube::NodeLocalListers::new(
                listers,
                &driver,
                &node.node_name,
                &node_id,
                node.accessible_topology.as_ref(),
            )),
            _ => Arc::new(listers),
        };

        let metrics = shared
            .once(|| ProvisionMetrics::register(&shared.metrics).map_err(|e| e.to_string()))
            .map_err(|e| anyhow::anyhow!("registering the provisioning metrics: {e}"))?;
        let queue_config = |name: &str| {
            let config = QueueConfig::new(name);
            match shared.workqueue_metrics() {
                Some(metrics) => config.metrics(metrics),
                None => config,
            }
        };
        // The library shares one rate limiter between its claim and volume queues; keys never
        // collide (claim UIDs, PV names), so two limiters behave the same.
        let backoff = || {
            ItemExponentialFailureRateLimiter::<String>::new(
                flags.duration("retry-interval-start"),
                flags.duration("retry-interval-max"),
            )
        };
        let unsaved_queue = WorkQueue::with_config(
            default_controller_rate_limiter::<String>(),
            queue_config(UNSAVED_QUEUE_NAME),
        );
        let source_client: Arc<dyn DataSourceClient> =
            Arc::new(KubeDataSourceClient::new(client.clone(), "csi-provisioner"));
        let cross_namespace = ctx.features.enabled("CrossNamespaceVolumeDataSource");
        let grants = if cross_namespace {
            kube.caches
                .wait_for_definition::<ReferenceGrant>(&all)
                .map_err(anyhow::Error::from)?;
            Some(
                kube.caches
                    .store::<ReferenceGrant>(&all)
                    .map_err(anyhow::Error::from)?,
            )
        } else {
            None
        };
        let data_sources = Arc::new(DataSources::new(
            DataSourceConfig {
                cross_namespace,
                prevent_volume_mode_conversion: flags.bool("prevent-volume-mode-conversion"),
            },
            source_client.clone(),
            Arc::new(StoreDataSourceListers::new(claim_events.store(), grants)),
        ));
        let cloning_protection = CloningProtection::declare(
            &kube.caches,
            capabilities.clone_volume,
            CloningProtectionConfig {
                threads: usize::try_from(flags.int("cloning-protection-threads")).unwrap_or(1),
                retry_interval_start: flags.duration("retry-interval-start"),
                retry_interval_max: flags.duration("retry-interval-max"),
            },
            source_client.clone(),
            shared.workqueue_metrics(),
        )
        .map_err(anyhow::Error::from)?;
        let snapshot_sweep = SnapshotFinalizerSweep::declare(
            &kube.caches,
            &client,
            capabilities.create_delete_snapshot,
            flags.duration("snapshot-orphan-sweep-interval"),
            source_client,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let capacity = if flags.bool("enable-capacity") {
            Some(
                capacity_tracking(&ctx, &client, &driver, node_deployment.as_ref(), timeout)
                    .await?,
            )
        } else {
            None
        };
        let observer = capacity
            .as_ref()
            .map(|c| Arc::new(c.refresh_handle()) as Arc<dyn crate::controller::ProvisionObserver>);
        let api: Arc<dyn crate::kube::ProvisionerApi> = Arc::new(ApiClient::new(client.clone()));
        let node_check = node_deployment.as_ref().map(|node| {
            Arc::new(NodeOwner::new(
                NodeDeploymentConfig {
                    node_name: node.node_name.clone(),
                    immediate_binding: flags.bool("node-deployment-immediate-binding"),
                    base_delay: flags.duration("node-deployment-base-delay"),
                    max_delay: flags.duration("node-deployment-max-delay"),
                },
                config.clone(),
                listers.clone(),
                api.clone(),
                Arc::new(CsiVolumeDriver::new(shared.csi.clone())),
            )) as Arc<dyn crate::controller::NodeCheck>
        });
        let controller = Arc::new(ProvisionController::new(Parts {
            config,
            listers,
            api,
            driver: Arc::new(CsiVolumeDriver::new(shared.csi.clone())),
            // The library's recorder: component `<driver>_<host>_<uuid>`, no host.
            events: Arc::new(csi_kube::Recorder::new(
                client.clone(),
                format!(
                    "{driver}_{}_{}",
                    csi_leader_election::default_identity().unwrap_or_default(),
                    csi_controller::random::random_uuid()
                ),
                "",
            )),
            populator_events: Some(Arc::new(csi_kube::Recorder::new(
                client.clone(),
                "external-provisioner",
                "",
            ))),
            metrics: Some(metrics),
            observer,
            node_check,
            data_sources: Some(data_sources),
            retry_interval_max: flags.duration("retry-interval-max"),
            unsaved_queue: unsaved_queue.clone(),
        }));
        let workers = usize::try_from(flags.int("worker-threads"))
            .unwrap_or(1)
            .max(1);
        let run = Run {
            controller,
            claim_queue: WorkQueue::with_config(backoff(), queue_config(CLAIM_QUEUE_NAME)),
            volume_queue: WorkQueue::with_config(backoff(), queue_config(VOLUME_QUEUE_NAME)),
            unsaved_queue,
            workers,
            cloning_protection,
            snapshot_sweep,
            capacity,
            shutdown: shared.shutdown.clone(),
        };
        Ok(Controller::new(run.run(claim_events, volume_events)))
    })
}

/// Everything the running provisioner needs.
struct Run {
    controller: Arc<ProvisionController>,
    claim_queue: WorkQueue<String>,
    volume_queue: WorkQueue<String>,
    unsaved_queue: WorkQueue<String>,
    workers: usize,
    cloning_protection: Option<CloningProtection>,
    snapshot_sweep: Option<SnapshotFinalizerSweep>,
    capacity: Option<Capacity>,
    shutdown: CancellationToken,
}

impl Run {
    async fn run(
        mut self,
        claim_events: Subscription<PersistentVolumeClaim>,
        volume_events: Subscription<PersistentVolume>,
    ) -> anyhow::Result<()> {
        info!("Starting provisioner controller");
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(cloning_protection) = self.cloning_protection.take() {
            tasks.spawn(cloning_protection.run(self.shutdown.clone()));
        }
        if let Some(sweep) = self.snapshot_sweep.take() {
            tasks.spawn(sweep.run(self.shutdown.clone()));
        }
        if let Some(capacity) = self.capacity.take() {
            let shutdown = self.shutdown.clone();
            tasks.spawn(async move {
                if let Err(err) = capacity.run(shutdown).await {
                    tracing::error!(%err, "Capacity tracking stopped");
                }
            });
        }
        let this = Arc::new(self);
        tasks.spawn(this.clone().feed_claims(claim_events));
        tasks.spawn(this.clone().feed_volumes(volume_events));
        for (queue, workers) in [
            (this.claim_queue.clone(), this.workers),
            (this.volume_queue.clone(), this.workers),
            (this.unsaved_queue.clone(), UNSAVED_WORKERS),
        ] {
            let name = queue.name().to_string();
            let controller = this.controller.clone();
            tasks.spawn(csi_workqueue::run_workers(
                queue,
                workers,
                this.shutdown.clone(),
                move |key: String| {
                    let controller = controller.clone();
                    let name = name.clone();
                    async move {
                        match name.as_str() {
                            CLAIM_QUEUE_NAME => controller.sync_claim(&key).await,
                            VOLUME_QUEUE_NAME => controller.sync_volume(&key).await,
                            _ => controller.save_unsaved(key).await,
                        }
                    }
                },
            ));
        }
        info!("Started provisioner controller");
        let panicked = loop {
            tokio::select! {
                () = this.shutdown.cancelled() => break None,
                Some(joined) = tasks.join_next() => {
                    if let Err(err) = joined
                        && err.is_panic()
                    {
                        break Some(err.to_string());
                    }
                }
            }
        };
        if let Some(message) = panicked {
            this.claim_queue.shut_down();
            this.volume_queue.shut_down();
            this.unsaved_queue.shut_down();
            tasks.shutdown().await;
            anyhow::bail!("provisioner task panicked: {message}");
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// The library's claim handlers: add and update (and resync) queue the UID.
    async fn feed_claims(self: Arc<Self>, events: Subscription<PersistentVolumeClaim>) {
        let mut events = std::pin::pin!(events.events());
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                change = events.next() => match change {
                    None => return,
                    Some(Change::Added(claim)) => {
                        if let Some(key) = self.controller.claim_key(&claim) {
                            self.claim_queue.add(key);
                        }
                    }
                    Some(Change::Updated { old, new }) => {
                        if only_our_finalizer_changed(&old, &new) {
                            continue;
                        }
                        if let Some(key) = self.controller.claim_key(&new) {
                            self.claim_queue.add(key);
                        }
                    }
                    Some(Change::Deleted { last, .. }) => self.controller.claim_deleted(&last),
                },
            }
        }
    }

    /// The library's volume handlers: add and update queue the name, delete forgets it.
    async fn feed_volumes(self: Arc<Self>, events: Subscription<PersistentVolume>) {
        let mut events = std::pin::pin!(events.events());
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                change = events.next() => match change {
                    None => return,
                    Some(Change::Added(pv)) | Some(Change::Updated { new: pv, .. }) => {
                        self.volume_queue.add(pv.metadata.name.clone().unwrap_or_default());
                    }
                    Some(Change::Deleted { last, .. }) => {
                        self.volume_queue.forget(&last.metadata.name.clone().unwrap_or_default());
                    }
                },
            }
        }
    }
}

/// `--enable-capacity`: the capacity tracker, as upstream's `main` sets it up (`NAMESPACE`,
/// `POD_NAME` and the owner walk, a client with `--kube-api-capacity-qps/-burst`, the
/// node-specific managed-by value and topology in node deployment).
async fn capacity_tracking(
    ctx: &InitContext,
    client: &kube::Client,
    driver: &str,
    node: Option<&NodeDeployment>,
    timeout: std::time::Duration,
) -> anyhow::Result<Capacity> {
    let shared = &ctx.shared;
    let flags = &ctx.flags;
    let namespace = std::env::var("NAMESPACE").unwrap_or_default();
    anyhow::ensure!(
        !namespace.is_empty(),
        "need NAMESPACE env variable for CSIStorageCapacity objects"
    );
    let level = flags.int("capacity-ownerref-level");
    let owner = if level >= 0 {
        let pod = std::env::var("POD_NAME").unwrap_or_default();
        anyhow::ensure!(
            !pod.is_empty(),
            "need POD_NAME env variable to determine CSIStorageCapacity owner"
        );
        lookup_owner(
            &KubeObjectReader::new(client.clone()),
            &namespace,
            &pod,
            level,
        )
        .await
        .map_err(|e| anyhow::anyhow!("look up owner(s) of pod: {e}"))?
    } else {
        None
    };
    let node_name = node.map(|n| n.node_name.as_str());
    let options = CapacityOptions {
        owner,
        managed_by: managed_by_id(node_name),
        poll_interval: flags.duration("capacity-poll-interval"),
        immediate_binding: flags.bool("capacity-for-immediate-binding"),
        workers: usize::try_from(flags.int("capacity-threads")).unwrap_or(1),
        timeout,
        retry_interval_start: flags.duration("retry-interval-start"),
        retry_interval_max: flags.duration("retry-interval-max"),
        node_topology: node.map(|n| {
            n.accessible_topology
                .as_ref()
                .map(|t| t.segments.clone().into_iter().collect())
                .unwrap_or_default()
        }),
        ..CapacityOptions::new(driver, namespace)
    };
    let kube = shared.kube();
    let watches = crate::capacity::declare(&kube.caches, &options)?;
    let capacity_client = kube.client_with_budget(
        flags.float("kube-api-capacity-qps"),
        u32::try_from(flags.int("kube-api-capacity-burst")).unwrap_or(0),
        "csi-provisioner",
    )?;
    let capacity = Capacity::new(
        options,
        watches,
        Arc::new(CsiVolumeDriver::new(shared.csi.clone())),
        Arc::new(KubeCapacityApi::new(capacity_client)),
        shared.workqueue_metrics(),
    );
    let metrics = shared
        .once(|| {
            let metrics = CapacityMetrics::default();
            shared
                .metrics
                .register(metrics.clone())
                .map(|()| metrics)
                .map_err(|e| e.to_string())
        })
        .map_err(|e| anyhow::anyhow!("registering the capacity metrics: {e}"))?;
    capacity.report_to(&metrics);
    Ok(capacity)
}

/// Whether two versions of a claim differ only by [`PROVISIONING_FINALIZER`] (and the
/// version): the loop's own write, which must not start another attempt at once (the
/// attempt that wrote it is retried with backoff).
fn only_our_finalizer_changed(old: &PersistentVolumeClaim, new: &PersistentVolumeClaim) -> bool {
    let without = |claim: &PersistentVolumeClaim| {
        let mut claim = claim.clone();
        claim.metadata.resource_version = None;
        claim.metadata.managed_fields = None;
        if let Some(finalizers) = claim.metadata.finalizers.as_mut() {
            finalizers.retain(|f| f != PROVISIONING_FINALIZER);
        }
        if claim
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(Vec::is_empty)
        {
            claim.metadata.finalizers = None;
        }
        claim
    };
    old.metadata.resource_version != new.metadata.resource_version
        && old.metadata.finalizers != new.metadata.finalizers
        && csi_controller::semantic_eq(&without(old), &without(new))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn claim(version: &str, finalizers: &[&str], node: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("c".into()),
                resource_version: Some(version.into()),
                finalizers: (!finalizers.is_empty())
                    .then(|| finalizers.iter().map(|f| f.to_string()).collect()),
                annotations: node.map(|n| {
                    [(
                        crate::provision::ANN_SELECTED_NODE.to_string(),
                        n.to_string(),
                    )]
                    .into()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn the_loops_own_finalizer_write_is_not_a_reason_to_provision_again() {
        let ours = PROVISIONING_FINALIZER;
        let protection = "kubernetes.io/pvc-protection";
        assert!(only_our_finalizer_changed(
            &claim("1", &[protection], None),
            &claim("2", &[protection, ours], None)
        ));
        assert!(only_our_finalizer_changed(
            &claim("2", &[ours], None),
            &claim("3", &[], None)
        ));
        // A resync (same version), another finalizer, another change: handled as usual.
        assert!(!only_our_finalizer_changed(
            &claim("1", &[ours], None),
            &claim("1", &[ours], None)
        ));
        assert!(!only_our_finalizer_changed(
            &claim("1", &[], None),
            &claim("2", &[protection], None)
        ));
        assert!(!only_our_finalizer_changed(
            &claim("1", &[], None),
            &claim("2", &[ours], Some("node"))
        ));
    }
}
