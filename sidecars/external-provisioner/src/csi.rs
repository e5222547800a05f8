//! The CSI calls of provisioning, behind traits ([`VolumeDriver`], and [`CapacityDriver`] for
//! capacity tracking) so that the logic can be tested with a fake driver and the controller
//! loop can hand in the process's connection ([`CsiVolumeDriver`]).

use std::fmt;
use std::time::Duration;

use csi_connection::Connection;
use csi_proto::csi::v1::controller_client::ControllerClient;
use csi_proto::csi::v1::{
    CreateVolumeRequest, CreateVolumeResponse, DeleteVolumeRequest, GetCapacityRequest,
    GetCapacityResponse,
};
use futures::future::BoxFuture;

/// Full method names of the controller calls this crate makes (log lines, metric labels).
pub mod methods {
    /// `Controller.CreateVolume`.
    pub const CREATE_VOLUME: &str = "/csi.v1.Controller/CreateVolume";
    /// `Controller.DeleteVolume`.
    pub const DELETE_VOLUME: &str = "/csi.v1.Controller/DeleteVolume";
    /// `Controller.GetCapacity`.
    pub const GET_CAPACITY: &str = "/csi.v1.Controller/GetCapacity";
}

pub use csi_connection::CsiError;

/// Creating and deleting volumes in the CSI driver.
pub trait VolumeDriver: Send + Sync + fmt::Debug {
    /// `CreateVolume` with `timeout`.
    fn create_volume(
        &self,
        request: CreateVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<CreateVolumeResponse, CsiError>>;

    /// `DeleteVolume` with `timeout`.
    fn delete_volume(
        &self,
        request: DeleteVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), CsiError>>;
}

/// [`VolumeDriver`] over the process's driver connection: every call is logged (secrets
/// stripped) and measured by [`Connection::unary`].
#[derive(Clone, Debug)]
pub struct CsiVolumeDriver {
    connection: Connection,
}

impl CsiVolumeDriver {
    /// A driver on `connection`.
    pub fn new(connection: Connection) -> Self {
        CsiVolumeDriver { connection }
    }
}

impl VolumeDriver for CsiVolumeDriver {
    fn create_volume(
        &self,
        request: CreateVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<CreateVolumeResponse, CsiError>> {
        Box::pin(async move {
            self.connection
                .unary(
                    methods::CREATE_VOLUME,
                    Some(timeout),
                    request,
                    |ch, req| async move { ControllerClient::new(ch).create_volume(req).await },
                )
                .await
                .map_err(CsiError::Status)
        })
    }

    fn delete_volume(
        &self,
        request: DeleteVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), CsiError>> {
        Box::pin(async move {
            self.connection
                .unary(
                    methods::DELETE_VOLUME,
                    Some(timeout),
                    request,
                    |ch, req| async move { ControllerClient::new(ch).delete_volume(req).await },
                )
                .await
                .map_err(CsiError::Status)?;
            Ok(())
        })
    }
}

/// Asking the CSI driver how much storage is left: what capacity tracking needs of the driver
/// (upstream's `CSICapacityClient`).
pub trait CapacityDriver: Send + Sync + fmt::Debug {
    /// `GetCapacity` with `timeout`.
    fn get_capacity(
        &self,
        request: GetCapacityRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<GetCapacityResponse, CsiError>>;
}

impl CapacityDriver for CsiVolumeDriver {
    fn get_capacity(
        &self,
        request: GetCapacityRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<GetCapacityResponse, CsiError>> {
        Box::pin(async move {
            self.connection
                .unary(
                    methods::GET_CAPACITY,
                    Some(timeout),
                    request,
                    |ch, req| async move { ControllerClient::new(ch).get_capacity(req).await },
                )
                .await
                .map_err(CsiError::Status)
        })
    }
}
