//! The CSI calls of the health monitor's legacy path (upstream v0.19.0's
//! `pkg/csi-handler/pv_handler.go`) and the capability checks of its `main`: the
//! `VolumeCondition` a CSI <= 1.12 driver reports through `ListVolumes` (every page) and
//! `ControllerGetVolume`, and through `NodeGetVolumeStats` for completeness of upstream's
//! handler. `VolumeCondition` and VOLUME_CONDITION are local legacy definitions of our
//! `csi.proto` (CSI 1.13 removed them). The CSI 1.13 health RPCs are in
//! [`crate::volume_health`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use csi_connection::{Connection, CsiError, rpc};
use csi_proto::csi::v1::controller_client::ControllerClient;
use csi_proto::csi::v1::controller_service_capability::rpc::Type as ControllerCapability;
use csi_proto::csi::v1::node_client::NodeClient;
use csi_proto::csi::v1::plugin_capability::service::Type as PluginCapability;
use csi_proto::csi::v1::{
    ControllerGetVolumeRequest, ListVolumesRequest, NodeGetVolumeStatsRequest, VolumeCondition,
};

/// `Controller.ListVolumes`, as logged and measured.
pub const LIST_VOLUMES: &str = "/csi.v1.Controller/ListVolumes";
/// `Controller.ControllerGetVolume`, as logged and measured.
pub const CONTROLLER_GET_VOLUME: &str = "/csi.v1.Controller/ControllerGetVolume";
/// `Node.NodeGetVolumeStats`, as logged and measured.
pub const NODE_GET_VOLUME_STATS: &str = "/csi.v1.Node/NodeGetVolumeStats";

/// A volume's condition as the driver reported it (upstream's `VolumeConditionResult`). A
/// response without a condition reads as normal with an empty message, as upstream's getters
/// on nil messages do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeConditionResult {
    /// The driver says the volume is not available or not operating optimally.
    pub abnormal: bool,
    /// The driver's description of the condition.
    pub message: String,
}

impl From<Option<VolumeCondition>> for VolumeConditionResult {
    fn from(condition: Option<VolumeCondition>) -> Self {
        let condition = condition.unwrap_or_default();
        VolumeConditionResult {
            abnormal: condition.abnormal,
            message: condition.message,
        }
    }
}

/// Why the list of volume conditions failed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// A `ListVolumes` page failed (upstream's message).
    #[error("failed to list volumes: {0}")]
    ListVolumes(#[source] CsiError),
}

/// What the driver supports of health monitoring: the CSI 1.13 health capabilities and the
/// CSI 1.12 ones the legacy path uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Support {
    /// The plugin has the CONTROLLER_SERVICE capability.
    pub controller_service: bool,
    /// The controller has LIST_VOLUME_HEALTH (CSI 1.13).
    pub list_volume_health: bool,
    /// The controller has GET_VOLUME_HEALTH (CSI 1.13).
    pub get_volume_health: bool,
    /// The controller has LIST_VOLUMES.
    pub list_volumes: bool,
    /// The controller has GET_VOLUME.
    pub get_volume: bool,
    /// The controller has VOLUME_CONDITION (CSI <= 1.12, a local legacy definition).
    pub volume_condition: bool,
}

/// How the monitor asks the driver about its volumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthMode {
    /// `ControllerListVolumeHealth` every `--list-volumes-interval`, resolving a volume that was
    /// unhealthy and is no longer listed with `ControllerGetVolumeHealth` (CSI 1.13:
    /// LIST_VOLUME_HEALTH and GET_VOLUME_HEALTH).
    ListVolumeHealth,
    /// `ControllerGetVolumeHealth` per PV (CSI 1.13: GET_VOLUME_HEALTH).
    GetVolumeHealth,
    /// `ListVolumes` conditions every `--list-volumes-interval` (CSI <= 1.12: LIST_VOLUMES and
    /// VOLUME_CONDITION).
    ListVolumes,
    /// `ControllerGetVolume` condition per PV (CSI <= 1.12: GET_VOLUME and VOLUME_CONDITION).
    GetVolume,
}

impl HealthMode {
    /// Whether the monitor sweeps every volume at once (`--list-volumes-interval`) rather than
    /// asking per PV (`--monitor-interval`).
    pub fn is_list(self) -> bool {
        matches!(self, HealthMode::ListVolumeHealth | HealthMode::ListVolumes)
    }
}

/// Why a driver with LIST_VOLUME_HEALTH but without GET_VOLUME_HEALTH cannot be monitored
/// (upstream's wording).
pub const LIST_WITHOUT_GET: &str = "the CSI driver supports ControllerListVolumeHealth without ControllerGetVolumeHealth, which the CSI specification requires alongside it";

/// Why a driver with none of the health capabilities cannot be monitored: upstream master's
/// reason for the CSI 1.13 RPCs, then v0.19.0's for the CSI 1.12 ones.
pub const NO_HEALTH_SUPPORT: &str = "the CSI driver supports neither ControllerListVolumeHealth nor ControllerGetVolumeHealth; CSI driver does not support Controller ListVolumes and GetVolume service or does not implement VolumeCondition";

/// Why a driver without the controller service cannot be monitored.
pub const NO_CONTROLLER_SERVICE: &str = "CSI driver does not support Plugin Controller Service";

impl Support {
    /// How the driver is monitored, or why it cannot be: the CSI 1.13 RPCs when the driver
    /// has them (LIST_VOLUME_HEALTH needs GET_VOLUME_HEALTH, which the spec requires beside
    /// it), else the CSI 1.12 conditions (LIST_VOLUMES or GET_VOLUME, with VOLUME_CONDITION).
    pub fn mode(&self) -> Result<HealthMode, &'static str> {
        if !self.controller_service {
            return Err(NO_CONTROLLER_SERVICE);
        }
        match (self.list_volume_health, self.get_volume_health) {
            (true, true) => return Ok(HealthMode::ListVolumeHealth),
            (true, false) => return Err(LIST_WITHOUT_GET),
            (false, true) => return Ok(HealthMode::GetVolumeHealth),
            (false, false) => {}
        }
        if !self.volume_condition {
            return Err(NO_HEALTH_SUPPORT);
        }
        match (self.list_volumes, self.get_volume) {
            (true, _) => Ok(HealthMode::ListVolumes),
            (false, true) => Ok(HealthMode::GetVolume),
            (false, false) => Err(NO_HEALTH_SUPPORT),
        }
    }

    /// The reason the monitor cannot run, or `None` when it can.
    pub fn missing(&self) -> Option<&'static str> {
        self.mode().err()
    }
}

/// The health monitor's CSI calls over the process's driver connection (each logged with
/// secrets stripped and measured in `csi_sidecar_operations_seconds`).
#[derive(Clone, Debug)]
pub struct CsiHandler {
    pub(crate) connection: Connection,
}

impl CsiHandler {
    /// A handler on `connection`.
    pub fn new(connection: Connection) -> Self {
        CsiHandler { connection }
    }

    /// The capability checks of upstream's `main`, each with `timeout`. Errors carry
    /// upstream's wording (`Failed to check whether the CSI driver supports ...`).
    pub async fn support(&self, timeout: Duration) -> Result<Support, String> {
        let plugin = rpc::get_plugin_capabilities(&self.connection, Some(timeout))
            .await
            .map_err(|err| {
                format!(
                    "Failed to check whether the CSI driver supports the Plugin Controller Service: {err}"
                )
            })?;
        let controller_service = plugin.contains(&PluginCapability::ControllerService);
        if !controller_service {
            return Ok(Support::default());
        }
        let controller = rpc::get_controller_capabilities(&self.connection, Some(timeout))
            .await
            .map_err(|err| {
                format!(
                    "Failed to check whether the CSI driver supports the Controller Service ListVolumes: failed to get controller capabilities: {err}"
                )
            })?;
        Ok(Support {
            controller_service,
            list_volume_health: controller.contains(&ControllerCapability::ListVolumeHealth),
            get_volume_health: controller.contains(&ControllerCapability::GetVolumeHealth),
            list_volumes: controller.contains(&ControllerCapability::ListVolumes),
            get_volume: controller.contains(&ControllerCapability::GetVolume),
            volume_condition: controller.contains(&ControllerCapability::VolumeCondition),
        })
    }

    /// Every volume's condition by volume ID, following `next_token` until the driver has no
    /// more pages (upstream asks with no `max_entries`: the driver picks the page size). The
    /// whole sweep shares one deadline, `timeout` from now, as upstream's context does.
    pub async fn list_volume_conditions(
        &self,
        timeout: Duration,
    ) -> Result<HashMap<String, VolumeConditionResult>, ListError> {
        let deadline = Instant::now() + timeout;
        let mut conditions = HashMap::new();
        let mut token = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let page = self
                .connection
                .unary(
                    LIST_VOLUMES,
                    Some(left),
                    ListVolumesRequest {
                        max_entries: 0,
                        starting_token: token.clone(),
                    },
                    |ch, req| async move { ControllerClient::new(ch).list_volumes(req).await },
                )
                .await
                .map_err(|status| ListError::ListVolumes(CsiError::Status(status)))?;
            for entry in page.entries {
                let id = entry.volume.map(|v| v.volume_id).unwrap_or_default();
                let condition = entry.status.and_then(|s| s.volume_condition);
                conditions.insert(id, VolumeConditionResult::from(condition));
            }
            token = page.next_token;
            if token.is_empty() {
                return Ok(conditions);
            }
        }
    }

    /// One volume's condition from `ControllerGetVolume`.
    pub async fn get_volume_condition(
        &self,
        volume_id: &str,
        timeout: Duration,
    ) -> Result<VolumeConditionResult, CsiError> {
        let response = self
            .connection
            .unary(
                CONTROLLER_GET_VOLUME,
                Some(timeout),
                ControllerGetVolumeRequest {
                    volume_id: volume_id.to_string(),
                },
                |ch, req| async move { ControllerClient::new(ch).controller_get_volume(req).await },
            )
            .await
            .map_err(CsiError::Status)?;
        Ok(response.status.and_then(|s| s.volume_condition).into())
    }

    /// One volume's condition as the node plugin sees it (`NodeGetVolumeStats`). Upstream's
    /// handler has it; the controller does not call it.
    pub async fn node_get_volume_condition(
        &self,
        volume_id: &str,
        volume_path: &str,
        staging_path: &str,
        timeout: Duration,
    ) -> Result<VolumeConditionResult, CsiError> {
        let response = self
            .connection
            .unary(
                NODE_GET_VOLUME_STATS,
                Some(timeout),
                NodeGetVolumeStatsRequest {
                    volume_id: volume_id.to_string(),
                    volume_path: volume_path.to_string(),
                    staging_target_path: staging_path.to_string(),
                },
                |ch, req| async move { NodeClient::new(ch).node_get_volume_stats(req).await },
            )
            .await
            .map_err(CsiError::Status)?;
        Ok(response.volume_condition.into())
    }
}
