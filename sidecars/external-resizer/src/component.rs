//! external-resizer as a component of our runtime: upstream v2.3.0's flags, the start-up its
//! `main` does (driver name, which of expansion and modification the driver supports, the
//! VolumeAttributesClass API check), the two controllers' watches, queues and workers.
//!
//! Upstream exits when the driver supports neither expansion nor modification; standalone we
//! do too, and in `csi-sidecars` the controller is disabled instead (the others run on).

use std::sync::Arc;

use anyhow::Context as _;
use csi_connection::rpc;
use csi_sidecar_runtime::controller::Validated;
use csi_sidecar_runtime::features::{FeatureSpec, Stage};
use csi_sidecar_runtime::kube::KubeUse;
use csi_sidecar_runtime::{
    BoxFuture, Controller, Descriptor, DriverUse, Flag, FlagView, HttpDefaults, InitContext,
    InitError, Kind, Upstream,
};
use tracing::info;

use crate::kube::ApiClient;
use crate::modify::{self, ModifyConfig, ModifyController};
use crate::resize::{self, NewResizerError, ResizeConfig, ResizeController};

/// external-resizer v2.3.0's own flags (the common ones are in
/// [`csi_sidecar_runtime::kube::FLAGS`]).
pub const FLAGS: &[Flag] = &[
    Flag::new(
        "master",
        Kind::String,
        "",
        "Master URL to build a client config from. Either this or kubeconfig needs to be set if the provisioner is being run out of cluster.",
    )
    .process(),
    Flag::new(
        "resync-period",
        Kind::Duration,
        "10m0s",
        "Resync period for cache",
    ),
    Flag::new(
        "workers",
        Kind::Int,
        "10",
        "Concurrency to process multiple resize requests",
    ),
    Flag::new(
        "extra-modify-metadata",
        Kind::Bool,
        "false",
        "If set, add pv/pvc metadata to plugin modify requests as parameters.",
    ),
    Flag::new(
        "timeout",
        Kind::Duration,
        "10s",
        "Timeout for waiting for CSI driver socket. When set explicitly, also the timeout of ControllerExpandVolume and ControllerModifyVolume (overriding --resize-timeout and --modify-timeout).",
    )
    .shared(),
    Flag::new(
        "resize-timeout",
        Kind::Duration,
        "10s",
        "Timeout for waiting for the CSI driver to expand a volume (ControllerExpandVolume).",
    ),
    Flag::new(
        "modify-timeout",
        Kind::Duration,
        "10s",
        "Timeout for waiting for the CSI driver to modify a volume (ControllerModifyVolume).",
    ),
    Flag::new(
        "retry-interval-start",
        Kind::Duration,
        "1s",
        "Initial retry interval of failed volume resize. It exponentially increases with each failure, up to retry-interval-max.",
    )
    .shared(),
    Flag::new(
        "retry-interval-max",
        Kind::Duration,
        "5m",
        "Maximum retry interval of failed volume resize.",
    )
    .shared(),
    Flag::new(
        "handle-volume-inuse-error",
        Kind::Bool,
        "true",
        "Flag to turn on/off capability to handle volume in use error in resizer controller. Defaults to true if not set.",
    ),
    Flag::new(
        "feature-gates",
        Kind::MapStringBool,
        "",
        "A set of key=value paris that describe feature gates for alpha/experimental features for csi external resizer.Options are:\nAnnotateFsResize=true|false (BETA - default=true)\nReleaseLeaderElectionOnExit=true|false (ALPHA - default=false)\nVolumeAttributesClass=true|false (GA - default=true)",
    )
    .process(),
];

/// external-resizer's feature gates (v2.3.0 removed `RecoverVolumeExpansionFailure`: recovery
/// is always on, and naming the gate is an error, as for any unknown gate).
pub const FEATURES: &[FeatureSpec] = &[
    FeatureSpec {
        name: "AnnotateFsResize",
        default: true,
        stage: Stage::Beta,
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

/// The external-resizer component.
pub static DESCRIPTOR: Descriptor = Descriptor {
    name: "resizer",
    aliases: &["external-resizer", "csi-resizer"],
    disabled_by_default: false,
    binary: "csi-resizer",
    about: "Expands and modifies volumes: PersistentVolumeClaim -> ControllerExpandVolume / ControllerModifyVolume",
    upstream: Upstream {
        repo: "kubernetes-csi/external-resizer",
        version: "v2.3.0",
    },
    flag_groups: &[csi_sidecar_runtime::kube::FLAGS, FLAGS],
    features: FEATURES,
    driver: DriverUse::LongLived,
    kube: Some(KubeUse {
        lease_name,
        user_agent: "csi-resizer",
        kubeconfig_env: false,
    }),
    http: HttpDefaults {
        default_port: None,
        serves_metrics: true,
    },
    validate,
    init,
};

/// Upstream's lease name before sanitizing (its lock name, which its LeaderElection Events
/// show): `external-resizer-<driver>`, the driver's name already sanitized.
pub fn lease_name(driver: &str) -> String {
    format!("external-resizer-{}", csi_controller::sanitize_name(driver))
}

fn validate(flags: &FlagView) -> Result<Validated, String> {
    if flags.int("workers") <= 0 {
        return Err("--workers must be greater than zero".to_string());
    }
    Ok(Validated::Run)
}

fn init(ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async move {
        let shared = ctx.shared.clone();
        let flags = ctx.flags.clone();
        let timeout = flags.duration("timeout");
        // An explicitly set --timeout also bounds the two operations (v2.3.0).
        let operation_timeout = |name: &str| {
            if flags.is_set("timeout") {
                timeout
            } else {
                flags.duration(name)
            }
        };

        rpc::probe_forever(&shared.csi, timeout)
            .await
            .context("Failed to probe the CSI driver")?;
        let driver = shared
            .driver_name(Some(timeout))
            .await
            .context("Get driver name failed")?;
        info!(driverName = driver, "CSI driver name");
        // Upstream connects again for a driver of CSI migration, with the `migrated` metric
        // label (and no probe).
        if csi_translation::is_migrated_csi_driver_by_name(&driver) {
            shared.enable_migration_metrics();
        }

        let kube = shared.kube();
        let client = kube
            .client_for(&flags, "csi-resizer")
            .map_err(anyhow::Error::from)?;
        let workers = usize::try_from(flags.int("workers")).unwrap_or(1).max(1);
        let resync = flags.duration("resync-period");

        let api = Arc::new(ApiClient::new(client.clone()));
        let resizer = match resize::resizer::new_resizer(
            Arc::new(resize::csi::CsiExpandDriver::new(shared.csi.clone())),
            api.clone(),
            &driver,
            operation_timeout("resize-timeout"),
        )
        .await
        {
            Ok(resizer) => Some(resizer),
            Err(NewResizerError::ResizeNotSupported) => {
                info!(message = %NewResizerError::ResizeNotSupported, "Resize not supported");
                None
            }
            Err(err) => return Err(anyhow::anyhow!("Failed to create CSI resizer: {err}").into()),
        };

        let modify_config = ModifyConfig {
            timeout: operation_timeout("modify-timeout"),
            workers,
            retry_interval_start: flags.duration("retry-interval-start"),
            retry_interval_max: flags.duration("retry-interval-max"),
            extra_modify_metadata: flags.bool("extra-modify-metadata"),
            resync,
            ..ModifyConfig::new(driver.clone())
        };
        let modifier = match modify::modifier::Modifier::new(
            Arc::new(modify::csi::CsiModifyDriver::new(shared.csi.clone())),
            api.clone(),
            modify_config.timeout,
            driver.clone(),
        )
        .await
        {
            Ok(modifier) => Some(Arc::new(modifier)),
            Err(modify::modifier::NewModifierError::NotSupported) => {
                info!("Modify not supported");
                None
            }
            Err(err) => return Err(anyhow::anyhow!("Failed to create CSI modifier: {err}").into()),
        };
        if resizer.is_none() && modifier.is_none() {
            return Err(InitError::Disabled(
                "CSI driver does not support resize nor modify".to_string(),
            ));
        }

        let gate_if_set = flags
            .map_string_bool("feature-gates")
            .into_iter()
            .rev()
            .find(|(name, _)| name == "VolumeAttributesClass")
            .map(|(_, value)| value);
        let vac_api = if modifier.is_some() {
            modify::vac_gate(&client, gate_if_set).await
        } else {
            false
        };

        let resize = match resizer {
            Some(resizer) => {
                let config = ResizeConfig {
                    driver_name: driver.clone(),
                    timeout: operation_timeout("resize-timeout"),
                    workers,
                    retry_interval_start: flags.duration("retry-interval-start"),
                    retry_interval_max: flags.duration("retry-interval-max"),
                    handle_volume_inuse_error: flags.bool("handle-volume-inuse-error"),
                    resync_period: resync,
                    annotate_fs_resize: ctx.features.enabled("AnnotateFsResize"),
                };
                let watches =
                    resize::declare(&kube.caches, &config).map_err(anyhow::Error::from)?;
                Some(ResizeController::new(
                    config,
                    watches,
                    resize::Parts {
                        resizer,
                        api: api.clone(),
                        events: Arc::new(csi_kube::Recorder::new(
                            client.clone(),
                            modify::event_component(&driver),
                            "",
                        )),
                        workqueue_metrics: shared.workqueue_metrics().cloned(),
                    },
                ))
            }
            None => None,
        };
        let support = modify::Support {
            driver_modify: modifier.is_some(),
            vac_api,
        };
        if let Some(reason) = support.disabled_reason() {
            info!(reason, "Volume modification is off");
        }
        let modify = match (
            modify::declare(&kube.caches, &modify_config, support).map_err(anyhow::Error::from)?,
            modifier,
        ) {
            (Some(watches), Some(modifier)) => Some(ModifyController::new(
                watches,
                modify::Parts {
                    config: modify_config,
                    modifier,
                    api,
                    events: Arc::new(csi_kube::Recorder::new(
                        client,
                        modify::event_component(&driver),
                        "",
                    )),
                    workqueue_metrics: shared.workqueue_metrics().cloned(),
                },
            )),
            _ => None,
        };
        let shutdown = shared.shutdown.clone();
        Ok(Controller::new(async move {
            let mut tasks = tokio::task::JoinSet::new();
            if let Some(resize) = resize {
                tasks.spawn(resize.run(shutdown.clone()));
            }
            if let Some(modify) = modify {
                tasks.spawn(modify.run(shutdown.clone()));
            }
            while let Some(joined) = tasks.join_next().await {
                if let Err(err) = joined
                    && err.is_panic()
                {
                    tasks.shutdown().await;
                    anyhow::bail!("resizer task panicked: {err}");
                }
            }
            Ok(())
        }))
    })
}
