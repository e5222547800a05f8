//! livenessprobe: answers the kubelet's liveness probe by asking the CSI driver.
//!
//! Every `/healthz` request opens a fresh connection to the driver and calls `Probe` within
//! `--probe-timeout`, as upstream does, so a driver that stopped answering, died, or reports
//! `ready: false` fails the probe even if some other connection to it still looks alive.
//! At start the driver's name is read (waiting for the driver as long as it takes: the probe
//! itself must never crash); the HTTP server opens only after that.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use csi_connection::{ConnectOptions, Connection};
use csi_metrics::CsiOperationMetrics;
use csi_sidecar_runtime::controller::no_validation;
use csi_sidecar_runtime::{
    BoxFuture, CheckResult, Controller, Descriptor, DriverUse, Flag, HttpDefaults, InitContext,
    InitError, Kind, Upstream,
};
use tracing::{info, trace};

/// The port upstream listens on when neither `--health-port` nor `--http-endpoint` is given.
pub const DEFAULT_HEALTH_PORT: u16 = 9808;

/// Upstream's flags (livenessprobe v2.20.0), names, types and defaults unchanged.
pub const FLAGS: &[Flag] = &[
    Flag::new(
        "csi-address",
        Kind::String,
        "/run/csi/socket",
        "Address of the CSI driver socket.",
    )
    .process(),
    Flag::new(
        "probe-timeout",
        Kind::Duration,
        "3s",
        "Probe timeout in seconds.",
    ),
    Flag::new(
        "health-port",
        Kind::Int,
        "9808",
        "(deprecated) TCP ports for listening healthz requests. The default is `9808`. If set, `--http-endpoint` cannot be set.",
    )
    .process(),
    Flag::new(
        "metrics-address",
        Kind::String,
        "",
        "(deprecated) The TCP network address where the prometheus metrics endpoint will listen (example: `:8080`). The default is empty string, which means metrics endpoint is disabled. If set, `--http-endpoint` cannot be set, and the address cannot resolve to localhost + the port from `--health-port`.",
    )
    .process(),
    Flag::new(
        "http-endpoint",
        Kind::String,
        "",
        "The TCP network address where the HTTP server for diagnostics, including CSI driver health check and metrics. The default is empty string, which means the server is disabled. If set, `--health-port` and `--metrics-address` cannot be explicitly set.",
    )
    .process(),
    Flag::new(
        "metrics-path",
        Kind::String,
        "/metrics",
        "The HTTP path where prometheus metrics will be exposed. Default is `/metrics`.",
    )
    .process(),
];

/// The livenessprobe component.
pub static DESCRIPTOR: Descriptor = Descriptor {
    name: "livenessprobe",
    aliases: &["liveness-probe"],
    disabled_by_default: false,
    binary: "livenessprobe",
    about: "Answers /healthz by calling the CSI driver's Probe",
    upstream: Upstream {
        repo: "kubernetes-csi/livenessprobe",
        version: "v2.20.0",
    },
    flag_groups: &[FLAGS],
    features: &[],
    driver: DriverUse::StartupOnly { wait_forever: true },
    kube: None,
    http: HttpDefaults {
        default_port: Some(DEFAULT_HEALTH_PORT),
        serves_metrics: true,
    },
    validate: no_validation,
    init,
};

fn init(ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async move {
        let probe_timeout = ctx.flags.duration("probe-timeout");
        info!("Calling CSI driver to discover driver name");
        // No timeout, as upstream: a driver that is slow to start must not crash the probe.
        let driver = ctx
            .shared
            .driver_name(None)
            .await
            .context("Failed to get CSI driver name")?;
        let probe = Probe {
            address: ctx.shared.csi_address.clone(),
            timeout: probe_timeout,
            metrics: ctx.shared.csi_metrics.clone(),
            driver,
        };
        ctx.shared.health.register(ctx.name, move || {
            let probe = probe.clone();
            async move { probe.check().await }
        });
        let shutdown = ctx.shared.shutdown.clone();
        Ok(Controller::new(async move {
            shutdown.cancelled().await;
            Ok(())
        }))
    })
}

/// One health check against the driver.
#[derive(Clone, Debug)]
pub struct Probe {
    /// `--csi-address`.
    pub address: String,
    /// `--probe-timeout`: the whole check, connecting included.
    pub timeout: Duration,
    /// Where the Probe call's duration is recorded.
    pub metrics: CsiOperationMetrics,
    /// The driver's name, for logs.
    pub driver: String,
}

impl Probe {
    /// Connects afresh and calls `Probe`: 200 `ok` if the driver is ready (or does not say),
    /// 500 with the reason otherwise.
    pub async fn check(&self) -> CheckResult {
        let deadline = Instant::now() + self.timeout;
        let conn = match Connection::connect(
            &self.address,
            ConnectOptions {
                timeout: Some(self.timeout),
                metrics: Some(self.metrics.clone()),
                ..ConnectOptions::default()
            },
        )
        .await
        {
            Ok(conn) => conn,
            Err(err) => {
                tracing::error!(%err, "Failed to establish connection to CSI driver");
                return CheckResult::failed(err.to_string());
            }
        };
        trace!(driver = %self.driver, "Sending probe request to CSI driver");
        let remaining = deadline.saturating_duration_since(Instant::now());
        match csi_connection::rpc::probe(&conn, Some(remaining)).await {
            Ok(true) => {
                trace!("Health check succeeded");
                CheckResult::Ok
            }
            Ok(false) => {
                tracing::error!("Driver responded but is not ready");
                CheckResult::failed("driver responded but is not ready")
            }
            Err(err) => {
                tracing::error!(%err, "Health check failed");
                CheckResult::failed(match err {
                    csi_connection::Error::Rpc { status, .. } => {
                        csi_connection::format_status(&status)
                    }
                    other => other.to_string(),
                })
            }
        }
    }
}
