//! The identity and capability calls every sidecar makes (csi-lib-utils' `rpc` package).

use std::collections::HashSet;
use std::time::Duration;

use csi::controller_client::ControllerClient;
use csi::group_controller_client::GroupControllerClient;
use csi::identity_client::IdentityClient;
use csi::node_client::NodeClient;
use csi_proto::csi::v1 as csi;
use tonic::Code;
use tracing::{info, warn};

use crate::{Connection, Error, Result};

/// Full method names, as they appear in logs and in the `method_name` metric label.
pub mod methods {
    /// `Identity.GetPluginInfo`.
    pub const GET_PLUGIN_INFO: &str = "/csi.v1.Identity/GetPluginInfo";
    /// `Identity.GetPluginCapabilities`.
    pub const GET_PLUGIN_CAPABILITIES: &str = "/csi.v1.Identity/GetPluginCapabilities";
    /// `Identity.Probe`.
    pub const PROBE: &str = "/csi.v1.Identity/Probe";
    /// `Controller.ControllerGetCapabilities`.
    pub const CONTROLLER_GET_CAPABILITIES: &str = "/csi.v1.Controller/ControllerGetCapabilities";
    /// `GroupController.GroupControllerGetCapabilities`.
    pub const GROUP_CONTROLLER_GET_CAPABILITIES: &str =
        "/csi.v1.GroupController/GroupControllerGetCapabilities";
    /// `Node.NodeGetCapabilities`.
    pub const NODE_GET_CAPABILITIES: &str = "/csi.v1.Node/NodeGetCapabilities";
}

/// The interval between two probes in [`probe_forever`].
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

fn rpc_error(method: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Rpc { method, status }
}

/// `GetPluginInfo`: the driver's name. An empty name is an error, as the spec requires one.
pub async fn get_driver_name(conn: &Connection, timeout: Option<Duration>) -> Result<String> {
    let info = conn
        .unary(
            methods::GET_PLUGIN_INFO,
            timeout,
            csi::GetPluginInfoRequest {},
            |ch, req| async move { IdentityClient::new(ch).get_plugin_info(req).await },
        )
        .await
        .map_err(rpc_error(methods::GET_PLUGIN_INFO))?;
    if info.name.is_empty() {
        return Err(Error::InvalidResponse("driver name is empty".to_string()));
    }
    Ok(info.name)
}

/// The plugin's service capabilities (`CONTROLLER_SERVICE`, `VOLUME_ACCESSIBILITY_CONSTRAINTS`,
/// `GROUP_CONTROLLER_SERVICE`, ...), as a set.
pub async fn get_plugin_capabilities(
    conn: &Connection,
    timeout: Option<Duration>,
) -> Result<HashSet<csi::plugin_capability::service::Type>> {
    let resp = conn
        .unary(
            methods::GET_PLUGIN_CAPABILITIES,
            timeout,
            csi::GetPluginCapabilitiesRequest {},
            |ch, req| async move { IdentityClient::new(ch).get_plugin_capabilities(req).await },
        )
        .await
        .map_err(rpc_error(methods::GET_PLUGIN_CAPABILITIES))?;
    Ok(resp
        .capabilities
        .iter()
        .filter_map(|cap| match &cap.r#type {
            Some(csi::plugin_capability::Type::Service(service)) => {
                csi::plugin_capability::service::Type::try_from(service.r#type).ok()
            }
            _ => None,
        })
        .collect())
}

/// The controller service's RPC capabilities, as a set.
pub async fn get_controller_capabilities(
    conn: &Connection,
    timeout: Option<Duration>,
) -> Result<HashSet<csi::controller_service_capability::rpc::Type>> {
    let resp = conn
        .unary(
            methods::CONTROLLER_GET_CAPABILITIES,
            timeout,
            csi::ControllerGetCapabilitiesRequest {},
            |ch, req| async move {
                ControllerClient::new(ch)
                    .controller_get_capabilities(req)
                    .await
            },
        )
        .await
        .map_err(rpc_error(methods::CONTROLLER_GET_CAPABILITIES))?;
    Ok(resp
        .capabilities
        .iter()
        .filter_map(|cap| match &cap.r#type {
            Some(csi::controller_service_capability::Type::Rpc(rpc)) => {
                csi::controller_service_capability::rpc::Type::try_from(rpc.r#type).ok()
            }
            _ => None,
        })
        .collect())
}

/// The group controller service's RPC capabilities, as a set.
pub async fn get_group_controller_capabilities(
    conn: &Connection,
    timeout: Option<Duration>,
) -> Result<HashSet<csi::group_controller_service_capability::rpc::Type>> {
    let resp = conn
        .unary(
            methods::GROUP_CONTROLLER_GET_CAPABILITIES,
            timeout,
            csi::GroupControllerGetCapabilitiesRequest {},
            |ch, req| async move {
                GroupControllerClient::new(ch)
                    .group_controller_get_capabilities(req)
                    .await
            },
        )
        .await
        .map_err(rpc_error(methods::GROUP_CONTROLLER_GET_CAPABILITIES))?;
    Ok(resp
        .capabilities
        .iter()
        .filter_map(|cap| match &cap.r#type {
            Some(csi::group_controller_service_capability::Type::Rpc(rpc)) => {
                csi::group_controller_service_capability::rpc::Type::try_from(rpc.r#type).ok()
            }
            _ => None,
        })
        .collect())
}

/// The node service's RPC capabilities, as a set.
pub async fn get_node_capabilities(
    conn: &Connection,
    timeout: Option<Duration>,
) -> Result<HashSet<csi::node_service_capability::rpc::Type>> {
    let resp = conn
        .unary(
            methods::NODE_GET_CAPABILITIES,
            timeout,
            csi::NodeGetCapabilitiesRequest {},
            |ch, req| async move { NodeClient::new(ch).node_get_capabilities(req).await },
        )
        .await
        .map_err(rpc_error(methods::NODE_GET_CAPABILITIES))?;
    Ok(resp
        .capabilities
        .iter()
        .filter_map(|cap| match &cap.r#type {
            Some(csi::node_service_capability::Type::Rpc(rpc)) => {
                csi::node_service_capability::rpc::Type::try_from(rpc.r#type).ok()
            }
            _ => None,
        })
        .collect())
}

/// One `Probe`. A response without `ready` means ready, as the CSI spec says.
pub async fn probe(conn: &Connection, timeout: Option<Duration>) -> Result<bool> {
    let resp = conn
        .unary(
            methods::PROBE,
            timeout,
            csi::ProbeRequest {},
            |ch, req| async move { IdentityClient::new(ch).probe(req).await },
        )
        .await
        .map_err(rpc_error(methods::PROBE))?;
    Ok(resp.ready.unwrap_or(true))
}

/// Probes every [`PROBE_INTERVAL`] until the driver says it is ready. Retries only when a probe
/// timed out or the driver is not ready yet; any other error is returned at once.
pub async fn probe_forever(conn: &Connection, single_probe_timeout: Duration) -> Result<()> {
    loop {
        info!("Probing CSI driver for readiness");
        match probe(conn, Some(single_probe_timeout)).await {
            Ok(true) => return Ok(()),
            Ok(false) => warn!("CSI driver is not ready"),
            Err(Error::Rpc { status, .. }) if status.code() == Code::DeadlineExceeded => {
                warn!("CSI driver probe timed out");
            }
            Err(err) => return Err(err),
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}
