//! The CSI calls of expansion, behind [`ExpandDriver`] (upstream's `csi.Client`, the part the
//! resizer uses) so that the resizer can be tested with a fake driver, and [`CsiExpandDriver`]
//! over the process's driver connection.

use std::fmt;
use std::time::Duration;

use csi_connection::{Connection, rpc};
use csi_proto::csi::v1::controller_client::ControllerClient;
use csi_proto::csi::v1::controller_service_capability::rpc::Type as ControllerCapability;
use csi_proto::csi::v1::node_service_capability::rpc::Type as NodeCapability;
use csi_proto::csi::v1::plugin_capability::service::Type as PluginCapability;
use csi_proto::csi::v1::{ControllerExpandVolumeRequest, ControllerExpandVolumeResponse};
use futures::future::BoxFuture;

/// `Controller.ControllerExpandVolume`, as logged and measured.
pub const CONTROLLER_EXPAND_VOLUME: &str = "/csi.v1.Controller/ControllerExpandVolume";

pub use csi_connection::CsiError;

/// What the resizer asks of the CSI driver. The capability checks answer with upstream's
/// messages on failure (`error getting controller capabilities: ...`).
pub trait ExpandDriver: Send + Sync + fmt::Debug {
    /// Whether the plugin has the CONTROLLER_SERVICE capability.
    fn supports_plugin_controller_service(
        &self,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<bool, String>>;
    /// Whether the controller has EXPAND_VOLUME.
    fn supports_controller_resize(&self, timeout: Duration) -> BoxFuture<'_, Result<bool, String>>;
    /// Whether the node service has EXPAND_VOLUME (asked on the controller's socket, as
    /// upstream does).
    fn supports_node_resize(&self, timeout: Duration) -> BoxFuture<'_, Result<bool, String>>;
    /// Whether the controller has SINGLE_NODE_MULTI_WRITER.
    fn supports_controller_single_node_multi_writer(
        &self,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<bool, String>>;
    /// `ControllerExpandVolume` with `timeout`.
    fn expand(
        &self,
        request: ControllerExpandVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<ControllerExpandVolumeResponse, CsiError>>;
}

/// [`ExpandDriver`] over the process's driver connection: every call is logged (secrets
/// stripped) and measured by [`Connection::unary`].
#[derive(Clone, Debug)]
pub struct CsiExpandDriver {
    connection: Connection,
}

impl CsiExpandDriver {
    /// A driver on `connection`.
    pub fn new(connection: Connection) -> Self {
        CsiExpandDriver { connection }
    }

    async fn controller_capability(
        &self,
        wanted: ControllerCapability,
        timeout: Duration,
    ) -> Result<bool, String> {
        rpc::get_controller_capabilities(&self.connection, Some(timeout))
            .await
            .map(|caps| caps.contains(&wanted))
            .map_err(|err| format!("error getting controller capabilities: {err}"))
    }
}

impl ExpandDriver for CsiExpandDriver {
    fn supports_plugin_controller_service(
        &self,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            rpc::get_plugin_capabilities(&self.connection, Some(timeout))
                .await
                .map(|caps| caps.contains(&PluginCapability::ControllerService))
                .map_err(|err| format!("error getting controller capabilities: {err}"))
        })
    }

    fn supports_controller_resize(&self, timeout: Duration) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(self.controller_capability(ControllerCapability::ExpandVolume, timeout))
    }

    fn supports_node_resize(&self, timeout: Duration) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            rpc::get_node_capabilities(&self.connection, Some(timeout))
                .await
                .map(|caps| caps.contains(&NodeCapability::ExpandVolume))
                .map_err(|err| format!("error getting node capabilities: {err}"))
        })
    }

    fn supports_controller_single_node_multi_writer(
        &self,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(self.controller_capability(ControllerCapability::SingleNodeMultiWriter, timeout))
    }

    fn expand(
        &self,
        request: ControllerExpandVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<ControllerExpandVolumeResponse, CsiError>> {
        Box::pin(async move {
            self.connection
                .unary(
                    CONTROLLER_EXPAND_VOLUME,
                    Some(timeout),
                    request,
                    |ch, req| async move {
                        ControllerClient::new(ch)
                            .controller_expand_volume(req)
                            .await
                    },
                )
                .await
                .map_err(CsiError::Status)
        })
    }
}
