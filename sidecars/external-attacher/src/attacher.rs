//! The CSI side of attaching: `ControllerPublishVolume` and `ControllerUnpublishVolume`
//! (upstream's `pkg/attacher`), and upstream's classification of their errors.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use csi_connection::Connection;
use csi_proto::csi::v1::controller_client::ControllerClient;
use csi_proto::csi::v1::{ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest};

use futures::future::BoxFuture;

/// Full method names of the controller calls this crate makes (log lines, metric labels).
pub mod methods {
    /// `Controller.ControllerPublishVolume`.
    pub const CONTROLLER_PUBLISH_VOLUME: &str = "/csi.v1.Controller/ControllerPublishVolume";
    /// `Controller.ControllerUnpublishVolume`.
    pub const CONTROLLER_UNPUBLISH_VOLUME: &str = "/csi.v1.Controller/ControllerUnpublishVolume";
    /// `Controller.ListVolumes`.
    pub const LIST_VOLUMES: &str = "/csi.v1.Controller/ListVolumes";
}

pub use csi_connection::{CsiError, is_final_code};

/// Attach and detach against the CSI driver (upstream's `attacher.Attacher`).
///
/// Upstream's `Attach` also returns `detached`: "the volume is for sure detached" on error.
/// Here that is [`CsiError::is_final`] of the error (upstream's handler ignores it: it always
/// detaches to be sure).
pub trait Attacher: Send + Sync + fmt::Debug {
    /// `ControllerPublishVolume` with `timeout`; returns the publish context.
    fn attach(
        &self,
        request: ControllerPublishVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<HashMap<String, String>, CsiError>>;

    /// `ControllerUnpublishVolume` with `timeout`.
    fn detach(
        &self,
        request: ControllerUnpublishVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), CsiError>>;
}

/// [`Attacher`] over the process's driver connection: every call is logged (secrets
/// stripped) and measured by [`Connection::unary`].
#[derive(Clone, Debug)]
pub struct CsiAttacher {
    connection: Connection,
}

impl CsiAttacher {
    /// An attacher on `connection`.
    pub fn new(connection: Connection) -> Self {
        CsiAttacher { connection }
    }
}

impl Attacher for CsiAttacher {
    fn attach(
        &self,
        request: ControllerPublishVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<HashMap<String, String>, CsiError>> {
        Box::pin(async move {
            let response = self
                .connection
                .unary(
                    methods::CONTROLLER_PUBLISH_VOLUME,
                    Some(timeout),
                    request,
                    |ch, req| async move {
                        ControllerClient::new(ch)
                            .controller_publish_volume(req)
                            .await
                    },
                )
                .await
                .map_err(CsiError::Status)?;
            Ok(response.publish_context)
        })
    }

    fn detach(
        &self,
        request: ControllerUnpublishVolumeRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), CsiError>> {
        Box::pin(async move {
            self.connection
                .unary(
                    methods::CONTROLLER_UNPUBLISH_VOLUME,
                    Some(timeout),
                    request,
                    |ch, req| async move {
                        ControllerClient::new(ch)
                            .controller_unpublish_volume(req)
                            .await
                    },
                )
                .await
                .map_err(CsiError::Status)?;
            Ok(())
        })
    }
}
