//! [`FakeKubelet`]: the kubelet plugin watcher's side of plugin registration, as
//! node-driver-registrar sees it.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use csi_proto::pluginregistration::v1::{
    InfoRequest, PluginInfo, RegistrationStatus, RegistrationStatusResponse,
    registration_client::RegistrationClient,
};
use tonic::{Status, transport::Channel};

use crate::{unix_channel, wait_for_path};

/// The plugin type the kubelet's CSI handler registers (`CSIPlugin`).
const CSI_PLUGIN_TYPE: &str = "CSIPlugin";

/// The CSI version a CSI plugin must offer in `supported_versions`.
pub const SUPPORTED_CSI_VERSION: &str = "1.0.0";

/// A client of a plugin's `Registration` service, as the kubelet's plugin watcher is.
#[derive(Debug, Clone)]
pub struct FakeKubelet {
    client: RegistrationClient<Channel>,
    socket_path: PathBuf,
}

impl FakeKubelet {
    /// Connects to the registration socket at `socket_path` (which must exist and listen).
    pub async fn connect(socket_path: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let socket_path = socket_path.into();
        let channel = unix_channel(socket_path.clone()).await?;
        Ok(Self {
            client: RegistrationClient::new(channel),
            socket_path,
        })
    }

    /// The registration socket this client talks to.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// Calls `GetInfo`.
    pub async fn get_info(&self) -> Result<PluginInfo, Status> {
        let response = self.client.clone().get_info(InfoRequest {}).await?;
        Ok(response.into_inner())
    }

    /// Calls `NotifyRegistrationStatus`, as the kubelet does after accepting (`registered`
    /// true, `error` empty) or refusing a plugin.
    pub async fn notify_registration_status(
        &self,
        registered: bool,
        error: &str,
    ) -> Result<RegistrationStatusResponse, Status> {
        let status = RegistrationStatus {
            plugin_registered: registered,
            error: error.to_owned(),
        };
        let response = self
            .client
            .clone()
            .notify_registration_status(status)
            .await?;
        Ok(response.into_inner())
    }

    /// Registers a CSI driver the way the kubelet does: waits up to `timeout` for
    /// `<dir>/<driver_name>-reg.sock`, calls `GetInfo`, checks that the plugin type is
    /// `CSIPlugin` and that `supported_versions` contains [`SUPPORTED_CSI_VERSION`], then
    /// notifies the plugin — registered, or refused with the reason (and then fails) — and
    /// returns the plugin's info.
    pub async fn register(
        dir: impl AsRef<Path>,
        driver_name: &str,
        timeout: Duration,
    ) -> anyhow::Result<PluginInfo> {
        let socket_path = dir.as_ref().join(format!("{driver_name}-reg.sock"));
        wait_for_path(&socket_path, timeout).await?;
        let kubelet = Self::connect(&socket_path).await?;
        let info = tokio::time::timeout(timeout, kubelet.get_info())
            .await
            .context("GetInfo timed out")?
            .context("GetInfo failed")?;

        if let Err(reason) = validate(&info) {
            kubelet
                .notify_registration_status(false, &reason)
                .await
                .context("NotifyRegistrationStatus(false) failed")?;
            bail!("plugin at {} refused: {reason}", socket_path.display());
        }
        kubelet
            .notify_registration_status(true, "")
            .await
            .context("NotifyRegistrationStatus(true) failed")?;
        Ok(info)
    }
}

/// The checks the kubelet makes before registering a CSI plugin, with its reasons.
fn validate(info: &PluginInfo) -> Result<(), String> {
    if info.r#type != CSI_PLUGIN_TYPE {
        return Err(format!(
            "no handler registered for plugin type: {}",
            info.r#type
        ));
    }
    if !info
        .supported_versions
        .iter()
        .any(|v| v == SUPPORTED_CSI_VERSION)
    {
        return Err(format!(
            "none of the versions specified {:?} are supported by the fake kubelet (want {SUPPORTED_CSI_VERSION})",
            info.supported_versions
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use csi_proto::pluginregistration::v1::registration_server::{
        Registration, RegistrationServer,
    };
    use tokio::net::UnixListener;
    use tokio_stream::wrappers::UnixListenerStream;
    use tokio_util::sync::CancellationToken;
    use tonic::{Request, Response};

    use super::*;

    /// A minimal node-driver-registrar: serves a fixed `PluginInfo`, records notifications.
    #[derive(Clone)]
    struct TestRegistrar {
        info: PluginInfo,
        notifications: Arc<Mutex<Vec<RegistrationStatus>>>,
    }

    #[tonic::async_trait]
    impl Registration for TestRegistrar {
        async fn get_info(&self, _: Request<InfoRequest>) -> Result<Response<PluginInfo>, Status> {
            Ok(Response::new(self.info.clone()))
        }

        async fn notify_registration_status(
            &self,
            request: Request<RegistrationStatus>,
        ) -> Result<Response<RegistrationStatusResponse>, Status> {
            self.notifications
                .lock()
                .unwrap()
                .push(request.into_inner());
            Ok(Response::new(RegistrationStatusResponse {}))
        }
    }

    fn plugin_info(kind: &str, versions: &[&str]) -> PluginInfo {
        PluginInfo {
            r#type: kind.into(),
            name: "mock.csi.k8s.io".into(),
            endpoint: "/var/lib/kubelet/plugins/mock/csi.sock".into(),
            supported_versions: versions.iter().map(ToString::to_string).collect(),
        }
    }

    /// Serves `registrar` on `path` until the returned token is cancelled.
    fn serve(path: &Path, registrar: TestRegistrar) -> CancellationToken {
        let listener = UnixListener::bind(path).unwrap();
        let shutdown = CancellationToken::new();
        let server = tonic::transport::Server::builder()
            .add_service(RegistrationServer::new(registrar))
            .serve_with_incoming_shutdown(
                UnixListenerStream::new(listener),
                shutdown.clone().cancelled_owned(),
            );
        tokio::spawn(server);
        shutdown
    }

    fn registrar(info: PluginInfo) -> TestRegistrar {
        TestRegistrar {
            info,
            notifications: Arc::default(),
        }
    }

    #[tokio::test]
    async fn register_waits_for_the_socket_and_notifies() {
        let dir = tempfile::tempdir().unwrap();
        let registrar = registrar(plugin_info("CSIPlugin", &["1.0.0"]));
        let notifications = Arc::clone(&registrar.notifications);

        let path = dir.path().join("mock.csi.k8s.io-reg.sock");
        let late_server = {
            let registrar = registrar.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                serve(&path, registrar)
            })
        };
        let info = FakeKubelet::register(dir.path(), "mock.csi.k8s.io", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(info, registrar.info);
        let notified = notifications.lock().unwrap().clone();
        assert_eq!(
            notified,
            [RegistrationStatus {
                plugin_registered: true,
                error: String::new()
            }]
        );
        late_server.await.unwrap().cancel();
    }

    #[tokio::test]
    async fn register_refuses_wrong_type_and_versions() {
        for (info, reason) in [
            (plugin_info("DevicePlugin", &["1.0.0"]), "plugin type"),
            (plugin_info("CSIPlugin", &["0.3.0"]), "versions"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let registrar = registrar(info);
            let notifications = Arc::clone(&registrar.notifications);
            let shutdown = serve(&dir.path().join("d-reg.sock"), registrar);

            let err = FakeKubelet::register(dir.path(), "d", Duration::from_secs(5))
                .await
                .unwrap_err();
            assert!(err.to_string().contains(reason), "{err}");
            let notified = notifications.lock().unwrap().clone();
            assert_eq!(notified.len(), 1);
            assert!(!notified[0].plugin_registered);
            assert!(notified[0].error.contains(reason), "{:?}", notified[0]);
            shutdown.cancel();
        }
    }

    #[tokio::test]
    async fn register_times_out_without_socket() {
        let dir = tempfile::tempdir().unwrap();
        let err = FakeKubelet::register(dir.path(), "absent", Duration::from_millis(30))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("absent-reg.sock"), "{err}");
    }

    #[tokio::test]
    async fn get_info_and_notify_directly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-reg.sock");
        let registrar = registrar(plugin_info("CSIPlugin", &["1.0.0", "1.2.0"]));
        let notifications = Arc::clone(&registrar.notifications);
        let shutdown = serve(&path, registrar);

        let kubelet = FakeKubelet::connect(&path).await.unwrap();
        assert_eq!(kubelet.socket_path(), path);
        let info = kubelet.get_info().await.unwrap();
        assert_eq!(info.supported_versions, ["1.0.0", "1.2.0"]);
        kubelet
            .notify_registration_status(false, "plugin name mismatch")
            .await
            .unwrap();
        assert_eq!(
            notifications.lock().unwrap()[0].error,
            "plugin name mismatch"
        );
        shutdown.cancel();
    }
}
