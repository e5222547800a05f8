//! node-driver-registrar: registers the CSI driver with the kubelet's plugin watcher.
//!
//! The kubelet watches `/var/lib/kubelet/plugins_registry/`; we serve the plugin-registration
//! API on `<--plugin-registration-path>/<driver>-reg.sock`. The kubelet calls `GetInfo` (we
//! answer: a CSI plugin, the driver's name, the driver socket's path on the host, versions
//! `["1.0.0"]`), registers the driver (it calls `NodeGetInfo` itself) and reports the outcome
//! with `NotifyRegistrationStatus`.
//!
//! When the kubelet reports a failed registration, upstream exits 1 so the container restarts;
//! the standalone binary does the same. Inside `csi-sidecars` an exit would take every other
//! controller down, so instead we remove the socket, create it again (the kubelet's watcher sees
//! a new socket and retries) and report unhealthy until a registration succeeds.

pub mod socket;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use csi_proto::pluginregistration::v1 as reg;
use csi_sidecar_runtime::controller::Validated;
use csi_sidecar_runtime::health::StatusCode;
use csi_sidecar_runtime::{
    BoxFuture, CheckResult, Controller, Descriptor, DriverUse, Flag, FlagView, HttpDefaults,
    InitContext, InitError, Kind, Mode, Upstream,
};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};
use tracing::{debug, error, info, warn};

/// The plugin-registration API versions we speak.
pub const SUPPORTED_VERSIONS: &[&str] = &["1.0.0"];

/// The deprecated mode that makes the binary exit 0 at once.
pub const MODE_KUBELET_REGISTRATION_PROBE: &str = "kubelet-registration-probe";

/// How long to wait before offering the socket again after a failed registration.
const REREGISTER_DELAY: Duration = Duration::from_secs(1);

/// Upstream's flags (node-driver-registrar v2.17.0), names, types and defaults unchanged.
pub const FLAGS: &[Flag] = &[
    Flag::new(
        "connection-timeout",
        Kind::Duration,
        "0s",
        "The --connection-timeout flag is deprecated",
    )
    .deprecated("--connection-timeout is deprecated and will have no effect"),
    Flag::new(
        "timeout",
        Kind::Duration,
        "1s",
        "Timeout for waiting for communication with driver",
    )
    .shared(),
    Flag::new(
        "csi-address",
        Kind::String,
        "/run/csi/socket",
        "Path of the CSI driver socket that the node-driver-registrar will connect to.",
    )
    .process(),
    Flag::new(
        "plugin-registration-path",
        Kind::String,
        "/registration",
        "Path to Kubernetes plugin registration directory.",
    ),
    Flag::new(
        "kubelet-registration-path",
        Kind::String,
        "",
        "Path of the CSI driver socket on the Kubernetes host machine.",
    ),
    Flag::new(
        "health-port",
        Kind::Int,
        "0",
        "(deprecated) TCP port for healthz requests. Set to 0 to disable the healthz server. Only one of `--health-port` and `--http-endpoint` can be set.",
    )
    .process(),
    Flag::new(
        "http-endpoint",
        Kind::String,
        "",
        "The TCP network address where the HTTP server for diagnostics, including the health check indicating whether the registration socket exists, will listen (example: `:8080`). The default is empty string, which means the server is disabled. Only one of `--health-port` and `--http-endpoint` can be set.",
    )
    .process(),
    Flag::new(
        "mode",
        Kind::String,
        "",
        "DEPRECATED. If this is set to kubelet-registration-probe, the driver will exit successfully without registering with CSI. If set to any other value node-driver-registrar will do the kubelet plugin registration. This flag will be removed in a future major release because the mode kubelet-registration-probe is no longer needed.",
    ),
    Flag::new(
        "enable-pprof",
        Kind::Bool,
        "false",
        "enable pprof profiling (accepted; Go's pprof does not exist in this binary)",
    )
    .process(),
];

/// The node-driver-registrar component.
pub static DESCRIPTOR: Descriptor = Descriptor {
    name: "node-driver-registrar",
    aliases: &["registrar"],
    // Node-side only, and it needs --kubelet-registration-path: never part of `*`.
    disabled_by_default: true,
    binary: "csi-node-driver-registrar",
    about: "Registers the CSI driver with the kubelet (node side)",
    upstream: Upstream {
        repo: "kubernetes-csi/node-driver-registrar",
        version: "v2.17.0",
    },
    flag_groups: &[FLAGS],
    features: &[],
    driver: DriverUse::StartupOnly {
        wait_forever: false,
    },
    kube: None,
    http: HttpDefaults {
        default_port: None,
        serves_metrics: false,
    },
    validate,
    init,
};

fn validate(flags: &FlagView) -> Result<Validated, String> {
    if flags.string("kubelet-registration-path").is_empty() {
        return Err("kubelet-registration-path is a required parameter".to_string());
    }
    if flags.string("mode") == MODE_KUBELET_REGISTRATION_PROBE {
        // Upstream deprecated this mode in v2.9.0 as no longer needed and made it exit 0 at
        // once, without registering; manifests that still pass it keep working.
        return Ok(Validated::ExitSuccess);
    }
    Ok(Validated::Run)
}

/// Where `driver`'s registration socket lives.
pub fn socket_path(registration_dir: &str, driver: &str) -> PathBuf {
    Path::new(registration_dir).join(format!("{driver}-reg.sock"))
}

/// What the kubelet last told us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationState {
    /// The socket is up; the kubelet has not reported yet.
    Waiting,
    /// The kubelet registered the driver.
    Registered,
    /// The kubelet reported a failure; we are offering the socket again.
    Failed(String),
}

fn init(ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async move {
        let timeout = ctx.flags.duration("timeout");
        info!("Calling CSI driver to discover driver name");
        let driver = ctx
            .shared
            .driver_name(Some(timeout))
            .await
            .context("Error retrieving CSI driver name")?;
        let registrar = Registrar {
            driver: driver.clone(),
            endpoint: ctx.flags.string("kubelet-registration-path"),
            socket: socket_path(&ctx.flags.string("plugin-registration-path"), &driver),
            timeout,
            exit_on_failure: ctx.shared.mode == Mode::Standalone,
            state: Arc::new(Mutex::new(RegistrationState::Waiting)),
        };
        let listener = socket::listen(&registrar.socket).map_err(|e| {
            InitError::Failed(anyhow!(e).context("Failed to start the registration server"))
        })?;
        info!(socket_path = %registrar.socket.display(), "Registration Server started");
        let check = registrar.clone();
        ctx.shared.health.register(ctx.name, move || {
            let check = check.clone();
            async move { check.health().await }
        });
        let shutdown = ctx.shared.shutdown.clone();
        Ok(Controller::new(registrar.run(listener, shutdown)))
    })
}

/// One registration socket and what the kubelet said about it.
#[derive(Clone, Debug)]
pub struct Registrar {
    /// The driver's name (`GetPluginInfo`).
    pub driver: String,
    /// `--kubelet-registration-path`: the driver's socket as the kubelet sees it.
    pub endpoint: String,
    /// The registration socket.
    pub socket: PathBuf,
    /// `--timeout`, for the health check's `GetInfo`.
    pub timeout: Duration,
    /// Standalone: a failed registration ends the process (exit 1), as upstream.
    pub exit_on_failure: bool,
    /// The kubelet's last word.
    pub state: Arc<Mutex<RegistrationState>>,
}

impl Registrar {
    fn set_state(&self, state: RegistrationState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// The kubelet's last word.
    pub fn state(&self) -> RegistrationState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Serves registration on `listener` until shutdown (the socket is then removed). A failed
    /// registration ends this with an error when [`Registrar::exit_on_failure`]; otherwise the
    /// socket is offered again.
    pub async fn run(
        self,
        mut listener: tokio::net::UnixListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            let (failed_tx, mut failed_rx) = mpsc::channel::<String>(1);
            let service = RegistrationService {
                driver: self.driver.clone(),
                endpoint: self.endpoint.clone(),
                failed: failed_tx,
                registrar: self.clone(),
            };
            let stop = CancellationToken::new();
            let server_stop = stop.clone();
            let server = tokio::spawn(
                Server::builder()
                    .add_service(reg::registration_server::RegistrationServer::new(service))
                    .serve_with_incoming_shutdown(
                        csi_grpc_server::incoming(listener),
                        async move { server_stop.cancelled().await },
                    ),
            );
            let failure = tokio::select! {
                _ = shutdown.cancelled() => None,
                failure = failed_rx.recv() => failure,
            };
            stop.cancel();
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => error!(%err, "Registration Server stopped serving"),
                Err(err) => error!(%err, "Registration Server task failed"),
            }
            let Some(reason) = failure else {
                // Shutdown: the socket goes, so the kubelet stops using it.
                if let Err(err) = socket::remove(&self.socket) {
                    error!(%err, "Failed to remove socket with error");
                    return Err(err.into());
                }
                info!(socket = %self.socket.display(), "Removed registration socket");
                return Ok(());
            };
            if self.exit_on_failure {
                return Err(anyhow!(
                    "Registration process failed with error: {reason}, restarting registration container"
                ));
            }
            warn!(
                %reason,
                "Registration process failed; offering the registration socket again"
            );
            if let Err(err) = socket::remove(&self.socket) {
                error!(%err, "Failed to remove socket");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(REREGISTER_DELAY) => {}
            }
            listener = socket::listen(&self.socket)?;
            info!(socket_path = %self.socket.display(), "Registration Server started");
        }
    }

    /// The `/healthz` check: 404 if the socket is gone, 500 if it does not answer `GetInfo`
    /// with our driver's name (within `--timeout`) or the kubelet rejected the registration,
    /// 200 otherwise.
    pub async fn health(&self) -> CheckResult {
        match socket::socket_exists(&self.socket) {
            Ok(true) => {}
            Ok(false) => {
                return CheckResult::Failed {
                    status: StatusCode::NOT_FOUND,
                    reason: "registration socket does not exist".to_string(),
                };
            }
            Err(err) => return CheckResult::failed(err.to_string()),
        }
        if let Err(err) =
            check_live_registration_socket(&self.socket, &self.driver, self.timeout).await
        {
            return CheckResult::failed(err);
        }
        match self.state() {
            RegistrationState::Failed(reason) => {
                CheckResult::failed(format!("kubelet plugin registration failed: {reason}"))
            }
            RegistrationState::Waiting | RegistrationState::Registered => CheckResult::Ok,
        }
    }
}

/// Dials the registration socket and checks that it answers `GetInfo` with `driver`.
pub async fn check_live_registration_socket(
    socket: &Path,
    driver: &str,
    timeout: Duration,
) -> Result<(), String> {
    debug!(socketfile = %socket.display(), "Attempting to open a gRPC connection");
    let path = socket.to_path_buf();
    let channel = Endpoint::from_static("http://registration.sock")
        .connect_timeout(timeout)
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .map_err(|e| {
            format!(
                "error connecting to node-registrar socket {}: {}",
                socket.display(),
                csi_connection::error_chain(&e)
            )
        })?;
    debug!("Calling node registrar to check if it still responds");
    let mut client = reg::registration_client::RegistrationClient::new(channel);
    let mut request = Request::new(reg::InfoRequest {});
    request.set_timeout(timeout);
    let info = tokio::time::timeout(timeout, client.get_info(request))
        .await
        .map_err(|_| {
            "error getting info from node-registrar socket: context deadline exceeded".to_string()
        })?
        .map_err(|e| {
            format!(
                "error getting info from node-registrar socket: {}",
                e.message()
            )
        })?
        .into_inner();
    if info.name == driver {
        Ok(())
    } else {
        Err(format!("invalid driver name {}", info.name))
    }
}

#[derive(Debug)]
struct RegistrationService {
    driver: String,
    endpoint: String,
    failed: mpsc::Sender<String>,
    registrar: Registrar,
}

#[tonic::async_trait]
impl reg::registration_server::Registration for RegistrationService {
    async fn get_info(
        &self,
        request: Request<reg::InfoRequest>,
    ) -> Result<Response<reg::PluginInfo>, Status> {
        debug!(request = ?request.get_ref(), "Received GetInfo call");
        Ok(Response::new(reg::PluginInfo {
            r#type: "CSIPlugin".to_string(),
            name: self.driver.clone(),
            endpoint: self.endpoint.clone(),
            supported_versions: SUPPORTED_VERSIONS.iter().map(|v| v.to_string()).collect(),
        }))
    }

    async fn notify_registration_status(
        &self,
        request: Request<reg::RegistrationStatus>,
    ) -> Result<Response<reg::RegistrationStatusResponse>, Status> {
        let status = request.into_inner();
        info!(
            plugin_registered = status.plugin_registered,
            error = %status.error,
            "Received NotifyRegistrationStatus call"
        );
        if status.plugin_registered {
            self.registrar.set_state(RegistrationState::Registered);
        } else {
            error!(err = %status.error, "Registration process failed with error");
            self.registrar
                .set_state(RegistrationState::Failed(status.error.clone()));
            // The kubelet gets its answer first; then the socket is torn down.
            let _ = self.failed.try_send(status.error);
        }
        Ok(Response::new(reg::RegistrationStatusResponse {}))
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
