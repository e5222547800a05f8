//! csi-snapshotter as a component of our runtime: upstream v8.7.0's flags and feature gates,
//! the start-up its `main` does (probe, driver name, the CREATE_DELETE_SNAPSHOT capability, the
//! group snapshot CRDs and capability, `--node-deployment`'s node), the watches, queues and
//! workers.
//!
//! Upstream exits when the driver cannot create snapshots; standalone we do too, and in
//! `csi-sidecars` the controller is disabled instead (the others run on). Without the group
//! snapshot CRDs, group snapshots are off with a warning, as upstream v8.7.0.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use csi_connection::rpc;
use csi_crd_types::{VolumeGroupSnapshotClass, VolumeGroupSnapshotContent};
use csi_proto::csi::v1::controller_service_capability::rpc::Type as ControllerCapability;
use csi_proto::csi::v1::group_controller_service_capability::rpc::Type as GroupCapability;
use csi_sidecar_runtime::controller::Validated;
use csi_sidecar_runtime::features::{FeatureSpec, Stage};
use csi_sidecar_runtime::kube::KubeUse;
use csi_sidecar_runtime::{
    BoxFuture, Controller, Descriptor, DriverUse, Flag, FlagView, HttpDefaults, InitContext,
    InitError, Kind, Upstream,
};
use kube::Api;
use kube::api::ListParams;
use tracing::{error, info, warn};

use crate::controller::{
    self, ApiClient, Config, Handler, Reconciler, ReconcilerParts, SidecarController,
};
use crate::group_snapshotter::{CsiGroupSnapshotter, GroupSnapshotter};
use crate::snapshotter::CsiSnapshotter;

/// The group snapshot feature gate.
pub const VOLUME_GROUP_SNAPSHOT_GATE: &str = "CSIVolumeGroupSnapshot";

/// csi-snapshotter v8.7.0's own flags (the common ones are in
/// [`csi_sidecar_runtime::kube::FLAGS`]).
pub const FLAGS: &[Flag] = &[
    Flag::new(
        "resync-period",
        Kind::Duration,
        "15m0s",
        "Resync interval of the controller. Default is 15 minutes",
    ),
    Flag::new(
        "snapshot-name-prefix",
        Kind::String,
        "snapshot",
        "Prefix to apply to the name of a created snapshot",
    ),
    Flag::new(
        "snapshot-name-uuid-length",
        Kind::Int,
        "-1",
        "Length in characters for the generated uuid of a created snapshot. Defaults behavior is to NOT truncate.",
    ),
    Flag::new(
        "worker-threads",
        Kind::Int,
        "10",
        "Number of worker threads.",
    ),
    Flag::new(
        "timeout",
        Kind::Duration,
        "1m0s",
        "The timeout for any RPCs to the CSI driver. Default is 1 minute.",
    )
    .shared(),
    Flag::new(
        "extra-create-metadata",
        Kind::Bool,
        "false",
        "If set, add snapshot metadata to plugin snapshot requests as parameters.",
    ),
    Flag::new(
        "retry-interval-start",
        Kind::Duration,
        "1s",
        "Initial retry interval of failed volume snapshot creation or deletion. It doubles with each failure, up to retry-interval-max. Default is 1 second.",
    )
    .shared(),
    Flag::new(
        "retry-interval-max",
        Kind::Duration,
        "5m0s",
        "Maximum retry interval of failed volume snapshot creation or deletion. Default is 5 minutes.",
    )
    .shared(),
    Flag::new(
        "node-deployment",
        Kind::Bool,
        "false",
        "Enables deploying the sidecar controller together with a CSI driver on nodes to manage snapshots for node-local volumes.",
    ),
    Flag::new(
        "groupsnapshot-name-prefix",
        Kind::String,
        "groupsnapshot",
        "Prefix to apply to the name of a created group snapshot",
    ),
    Flag::new(
        "groupsnapshot-name-uuid-length",
        Kind::Int,
        "-1",
        "Length in characters for the generated uuid of a created group snapshot. Defaults behavior is to NOT truncate.",
    ),
    Flag::new(
        "feature-gates",
        Kind::MapStringBool,
        "",
        "Comma-seprated list of key=value pairs that describe feature gates for alpha/experimental features. Options are:\nReleaseLeaderElectionOnExit=true|false (ALPHA - default=false)",
    )
    .process(),
];

/// csi-snapshotter's feature gates (`--help` lists only the ones that are not GA, as
/// component-base does).
pub const FEATURES: &[FeatureSpec] = &[
    FeatureSpec {
        name: VOLUME_GROUP_SNAPSHOT_GATE,
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

/// The csi-snapshotter component.
pub static DESCRIPTOR: Descriptor = Descriptor {
    name: "snapshotter",
    aliases: &["csi-snapshotter", "external-snapshotter"],
    disabled_by_default: false,
    binary: "csi-snapshotter",
    about: "Takes snapshots: VolumeSnapshotContent / VolumeGroupSnapshotContent -> CreateSnapshot / DeleteSnapshot / CreateVolumeGroupSnapshot",
    upstream: Upstream {
        repo: "kubernetes-csi/external-snapshotter",
        version: "v8.7.0",
    },
    flag_groups: &[csi_sidecar_runtime::kube::FLAGS, FLAGS],
    features: FEATURES,
    driver: DriverUse::LongLived,
    kube: Some(KubeUse {
        lease_name,
        user_agent: "csi-snapshotter",
        kubeconfig_env: false,
    }),
    http: HttpDefaults {
        default_port: None,
        serves_metrics: true,
    },
    validate,
    init,
};

/// Upstream's lease name before sanitizing: `external-snapshotter-leader-<driver>` with `/`
/// replaced by `-`.
pub fn lease_name(driver: &str) -> String {
    format!("external-snapshotter-leader-{}", driver.replace('/', "-"))
}

fn validate(flags: &FlagView) -> Result<Validated, String> {
    if flags.bool("node-deployment") {
        if flags.parsed().process().bool("leader-election") {
            return Err("Leader election cannot happen when node-deployment is set to true".into());
        }
        if std::env::var("NODE_NAME").unwrap_or_default().is_empty() {
            return Err(
                "The NODE_NAME environment variable must be set when using --enable-node-deployment."
                    .into(),
            );
        }
    }
    if flags.string("snapshot-name-prefix").is_empty() {
        return Err("Snapshot name prefix cannot be of length 0".into());
    }
    if flags.int("worker-threads") <= 0 {
        return Err("--worker-threads must be greater than zero".into());
    }
    Ok(Validated::Run)
}

/// Upstream's `ensureVolumeGroupSnapshotCRDsExist`: lists one VolumeGroupSnapshotContent and
/// one VolumeGroupSnapshotClass.
async fn group_snapshot_crds_exist(client: &kube::Client, timeout: Duration) -> Result<(), String> {
    let one = ListParams::default().limit(1);
    let check = async {
        Api::<VolumeGroupSnapshotContent>::all(client.clone())
            .list(&one)
            .await
            .map_err(|err| err.to_string())?;
        Api::<VolumeGroupSnapshotClass>::all(client.clone())
            .list(&one)
            .await
            .map_err(|err| err.to_string())?;
        Ok(())
    };
    tokio::time::timeout(timeout, check)
        .await
        .unwrap_or_else(|_| Err("context deadline exceeded".to_string()))
}

fn init(ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async move {
        let shared = ctx.shared.clone();
        let flags = ctx.flags.clone();
        let timeout = flags.duration("timeout");

        let driver = shared
            .driver_name(Some(timeout))
            .await
            .context("error getting CSI driver name")?;
        info!(driverName = driver, "CSI driver name");
        rpc::probe_forever(&shared.csi, timeout)
            .await
            .context("error waiting for CSI driver to be ready")?;
        let capabilities = rpc::get_controller_capabilities(&shared.csi, Some(timeout))
            .await
            .context("error determining if driver supports create/delete snapshot operations")?;
        if !capabilities.contains(&ControllerCapability::CreateDeleteSnapshot) {
            return Err(InitError::Disabled(format!(
                "CSI driver {driver} does not support ControllerCreateSnapshot"
            )));
        }

        let kube = shared.kube();
        let client = kube
            .client_for_clientsets(
                &flags,
                "csi-snapshotter",
                &[csi_kube::client::SNAPSHOT_CLIENTSET],
            )
            .map_err(anyhow::Error::from)?;

        let mut group_snapshots = ctx.features.enabled(VOLUME_GROUP_SNAPSHOT_GATE);
        if group_snapshots && let Err(err) = group_snapshot_crds_exist(&client, timeout).await {
            warn!(
                "VolumeGroupSnapshot CRDs were not found; disabling the VolumeGroupSnapshot feature for this run. Install the VolumeGroupSnapshot CRDs to use this feature: {err}"
            );
            group_snapshots = false;
        }
        let mut group_snapshotter: Option<Arc<dyn GroupSnapshotter>> = None;
        if group_snapshots {
            match rpc::get_group_controller_capabilities(&shared.csi, Some(timeout)).await {
                Err(err) => error!(
                    "error determining if driver supports create/delete group snapshot operations: {err}"
                ),
                Ok(caps)
                    if !caps.contains(&GroupCapability::CreateDeleteGetVolumeGroupSnapshot) =>
                {
                    warn!(
                        "CSI driver {driver} does not support GroupControllerCreateVolumeGroupSnapshot when the --feature-gates=CSIVolumeGroupSnapshot=true flag is set"
                    )
                }
                Ok(_) => {}
            }
            group_snapshotter = Some(Arc::new(CsiGroupSnapshotter::new(shared.csi.clone())));
            if flags.string("groupsnapshot-name-prefix").is_empty() {
                return Err(
                    anyhow::anyhow!("group snapshot name prefix cannot be of length 0").into(),
                );
            }
        }

        let node_name = flags
            .bool("node-deployment")
            .then(|| std::env::var("NODE_NAME").unwrap_or_default());
        let config = Config {
            workers: usize::try_from(flags.int("worker-threads"))
                .unwrap_or(1)
                .max(1),
            retry_interval_start: flags.duration("retry-interval-start"),
            retry_interval_max: flags.duration("retry-interval-max"),
            resync_period: flags.duration("resync-period"),
            node_name,
            group_snapshots,
        };
        let watches = controller::declare(&kube.caches, &config).map_err(anyhow::Error::from)?;
        let reconciler = Arc::new(Reconciler::new(ReconcilerParts {
            driver_name: driver.clone(),
            handler: Handler {
                snapshotter: Arc::new(CsiSnapshotter::new(shared.csi.clone())),
                group_snapshotter,
                timeout,
                snapshot_name_prefix: flags.string("snapshot-name-prefix"),
                snapshot_name_uuid_length: flags.int("snapshot-name-uuid-length"),
                group_snapshot_name_prefix: flags.string("groupsnapshot-name-prefix"),
                group_snapshot_name_uuid_length: flags.int("groupsnapshot-name-uuid-length"),
            },
            api: Arc::new(ApiClient::new(client.clone())),
            listers: Arc::new(watches.listers()),
            events: Arc::new(csi_kube::Recorder::new(
                client,
                format!("csi-snapshotter {driver}"),
                "",
            )),
            extra_create_metadata: flags.bool("extra-create-metadata"),
        }));
        let sidecar =
            SidecarController::new(config, watches, reconciler, shared.workqueue_metrics());
        let shutdown = shared.shutdown.clone();
        Ok(Controller::new(async move {
            sidecar.run(shutdown).await;
            Ok(())
        }))
    })
}

#[cfg(test)]
mod tests;
