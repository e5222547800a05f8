//! The CSI calls of modification, behind [`ModifyDriver`] so that the logic can be tested with
//! a fake driver and the component can hand in the process's connection ([`CsiModifyDriver`]).

use std::fmt;
use std::time::Duration;

use csi_connection::Connection;
use csi_proto::csi::v1::ControllerModifyVolumeRequest;
use csi_proto::csi::v1::controller_client::ControllerClient;
use csi_proto::csi::v1::controller_service_capability::rpc::Type as ControllerCapability;
use futures::future::BoxFuture;
use tonic::Status;

/// `Controller.ControllerModifyVolume`, as logs and metric labels name it.
pub const CONTROLLER_MODIFY_VOLUME: &str = "/csi.v1.Controller/ControllerModifyVolume";

/// Modifying volumes in the CSI driver.
pub trait ModifyDriver: Send + Sync + fmt::Debug {
    /// Whether the controller service reports `MODIFY_VOLUME` (upstream's
    /// `SupportsControllerModify`); the error is the failed `ControllerGetCapabilities`.
    fn supports_controller_modify(&self, timeout: Duration) -> BoxFuture<'_, Result<bool, String>>;

    /// `ControllerModifyVolume` with `timeout`.
    fn modify_volume(
        &self,
        request: ControllerModifyVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), Status>>;
}

/// [`ModifyDriver`] over the process's driver connection: every call is logged (secrets
/// stripped) and measured by [`Connection::unary`].
#[derive(Clone, Debug)]
pub struct CsiModifyDriver {
    connection: Connection,
}

impl CsiModifyDriver {
    /// A driver on `connection`.
    pub fn new(connection: Connection) -> Self {
        CsiModifyDriver { connection }
    }
}

impl ModifyDriver for CsiModifyDriver {
    fn supports_controller_modify(&self, timeout: Duration) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            let caps =
                csi_connection::rpc::get_controller_capabilities(&self.connection, Some(timeout))
                    .await
                    .map_err(|err| format!("error getting controller capabilities: {err}"))?;
            Ok(caps.contains(&ControllerCapability::ModifyVolume))
        })
    }

    fn modify_volume(
        &self,
        request: ControllerModifyVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), Status>> {
        Box::pin(async move {
            self.connection
                .unary(
                    CONTROLLER_MODIFY_VOLUME,
                    Some(timeout),
                    request,
                    |ch, req| async move {
                        ControllerClient::new(ch)
                            .controller_modify_volume(req)
                            .await
                    },
                )
                .await?;
            Ok(())
        })
    }
}
