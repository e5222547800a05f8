//! The CSI 1.13 volume health RPCs (upstream master's `pkg/csi-handler`, whose CSI client
//! calls `ControllerListVolumeHealth` and `ControllerGetVolumeHealth`), and how a driver's
//! `VolumeHealth` becomes the entries of a claim's `status.healthStatus`.
//!
//! - `DEGRADED`, `INACCESSIBLE` and `DATA_LOSS` become `Degraded`, `Inaccessible` and
//!   `DataLoss`, with the driver's reason and message.
//! - Any other status (`UNKNOWN_VOLUME_HEALTH_TYPE`, or a value of a later spec) is not a
//!   condition: the spec says a CO ignores what it does not know. The monitor only tells about
//!   it (a log line and a Warning Event, as upstream).
//! - What the API would refuse is kept out of the status too, with an error log: a reason that
//!   is not a valid condition reason (CamelCase-like, at most 256 bytes), a second entry with
//!   the same (status, reason). Messages are cut to the API's 1024 bytes, the list to its 16
//!   entries, sorted by (status, reason) so that the same report is the same write.
//!
//! Each call has its own deadline (`--timeout`), each page of a list too: a long paged list is
//! not squeezed into one timeout (upstream master does the same). A driver whose tokens go round
//! in a circle ends the sweep with an error (ours; upstream's loop would not end).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use csi_connection::CsiError;
use csi_proto::csi::v1::controller_client::ControllerClient;
use csi_proto::csi::v1::node_client::NodeClient;
use csi_proto::csi::v1::{
    ControllerGetVolumeHealthRequest, ControllerListVolumeHealthRequest,
    NodeGetVolumeHealthRequest, VolumeHealth, VolumeHealthErrorType,
};
use tracing::error;

use crate::csi::CsiHandler;
use crate::health::{HealthCondition, MAX_MESSAGE_BYTES, truncate};

/// `Controller.ControllerListVolumeHealth`, as logged and measured.
pub const CONTROLLER_LIST_VOLUME_HEALTH: &str = "/csi.v1.Controller/ControllerListVolumeHealth";
/// `Controller.ControllerGetVolumeHealth`, as logged and measured.
pub const CONTROLLER_GET_VOLUME_HEALTH: &str = "/csi.v1.Controller/ControllerGetVolumeHealth";
/// `Node.NodeGetVolumeHealth`, as logged and measured.
pub const NODE_GET_VOLUME_HEALTH: &str = "/csi.v1.Node/NodeGetVolumeHealth";

/// The API's limit on a condition's reason (bytes).
pub const MAX_REASON_BYTES: usize = 256;
/// The API's limit on the number of conditions.
pub const MAX_CONDITIONS: usize = 16;

/// An entry whose status the monitor does not know, kept as text for the log and the Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCondition {
    /// The status as the spec's Go code prints it: the enum value's name, or its number.
    pub status: String,
    /// The driver's reason.
    pub reason: String,
    /// The driver's message.
    pub message: String,
}

/// One volume's health as the driver reported it. No conditions: healthy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeHealthResult {
    /// What goes into `status.healthStatus.healthConditions`, normalized.
    pub conditions: Vec<HealthCondition>,
    /// Entries of a status this monitor does not know.
    pub unknown: Vec<UnknownCondition>,
}

/// The claim status of a CSI health status, or `None` for one this monitor does not know.
pub fn status_of(status: i32) -> Option<&'static str> {
    match VolumeHealthErrorType::try_from(status).ok()? {
        VolumeHealthErrorType::Degraded => Some("Degraded"),
        VolumeHealthErrorType::Inaccessible => Some("Inaccessible"),
        VolumeHealthErrorType::DataLoss => Some("DataLoss"),
        VolumeHealthErrorType::UnknownVolumeHealthType => None,
    }
}

/// How Go's generated code prints a `VolumeHealthErrorType`: the name, or the number of a
/// value it does not know.
fn status_text(status: i32) -> String {
    VolumeHealthErrorType::try_from(status)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| status.to_string())
}

/// Whether `reason` is a valid condition reason for the API (apimachinery's
/// `IsValidConditionReason`: `[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?`) within its length.
pub fn is_valid_reason(reason: &str) -> bool {
    let bytes = reason.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    reason.len() <= MAX_REASON_BYTES
        && first.is_ascii_alphabetic()
        && (last.is_ascii_alphanumeric() || *last == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b',' | b':'))
}

/// The result of one `VolumeHealth` (none: healthy).
pub fn result_of(health: Option<&VolumeHealth>) -> VolumeHealthResult {
    let mut result = VolumeHealthResult::default();
    let Some(health) = health else {
        return result;
    };
    let mut seen = HashSet::new();
    for entry in &health.health_statuses {
        let Some(status) = status_of(entry.status) else {
            result.unknown.push(UnknownCondition {
                status: status_text(entry.status),
                reason: entry.reason.clone(),
                message: entry.message.clone(),
            });
            continue;
        };
        if !is_valid_reason(&entry.reason) {
            error!(
                volume = health.volume_id,
                status,
                reason = entry.reason,
                "The CSI driver reported a volume health condition whose reason the API does not accept; it is left out of the claim's status"
            );
            continue;
        }
        if !seen.insert((status, entry.reason.clone())) {
            error!(
                volume = health.volume_id,
                status,
                reason = entry.reason,
                "The CSI driver reported the same volume health condition twice; the first is kept"
            );
            continue;
        }
        result.conditions.push(HealthCondition {
            status: status.to_string(),
            reason: entry.reason.clone(),
            message: truncate(&entry.message, MAX_MESSAGE_BYTES).to_string(),
        });
    }
    result
        .conditions
        .sort_by(|a, b| (&a.status, &a.reason).cmp(&(&b.status, &b.reason)));
    result.conditions.truncate(MAX_CONDITIONS);
    result
}

/// Upstream master's sorted, one-line description of unknown entries:
/// `STATUS (reason: R): message; ...`.
pub fn unknown_details(unknown: &[UnknownCondition]) -> String {
    let mut entries: Vec<String> = unknown
        .iter()
        .map(|u| {
            let mut entry = u.status.clone();
            if !u.reason.is_empty() {
                entry.push_str(&format!(" (reason: {})", u.reason));
            }
            if !u.message.is_empty() {
                entry.push_str(&format!(": {}", u.message));
            }
            entry
        })
        .collect();
    entries.sort();
    entries.join("; ")
}

/// Why the list of volume health failed.
#[derive(Debug, thiserror::Error)]
pub enum ListHealthError {
    /// A `ControllerListVolumeHealth` page failed (upstream master's message).
    #[error("list volume health: {0}")]
    ListVolumeHealth(#[source] CsiError),
    /// The driver gave a `next_token` it had already given in this sweep: the pages go round
    /// in a circle (each page has its own deadline, so nothing else would end the sweep).
    #[error("list volume health: the CSI driver returned the next_token {0:?} twice")]
    RepeatedToken(String),
}

impl CsiHandler {
    /// The health of every volume the driver lists, by volume ID, following `next_token` until
    /// the driver has no more pages, each page with its own `timeout`. The driver lists the
    /// volumes with adverse conditions; a volume it does not list is not in the map (which is
    /// not the same as listed with no conditions: healthy).
    pub async fn list_volume_health(
        &self,
        timeout: Duration,
    ) -> Result<HashMap<String, VolumeHealthResult>, ListHealthError> {
        let mut results = HashMap::new();
        let mut token = String::new();
        let mut seen = HashSet::new();
        loop {
            let page = self
                .connection
                .unary(
                    CONTROLLER_LIST_VOLUME_HEALTH,
                    Some(timeout),
                    ControllerListVolumeHealthRequest {
                        max_entries: 0,
                        starting_token: token.clone(),
                        secrets: HashMap::new(),
                    },
                    |ch, req| async move {
                        ControllerClient::new(ch)
                            .controller_list_volume_health(req)
                            .await
                    },
                )
                .await
                .map_err(|status| ListHealthError::ListVolumeHealth(CsiError::Status(status)))?;
            for health in &page.entries {
                results.insert(health.volume_id.clone(), result_of(Some(health)));
            }
            token = page.next_token;
            if token.is_empty() {
                return Ok(results);
            }
            if !seen.insert(token.clone()) {
                return Err(ListHealthError::RepeatedToken(token));
            }
        }
    }

    /// One volume's health from `ControllerGetVolumeHealth`. An answer without entries is the
    /// driver saying the volume is healthy; a failed call is not.
    pub async fn get_volume_health(
        &self,
        volume_id: &str,
        timeout: Duration,
    ) -> Result<VolumeHealthResult, CsiError> {
        let response = self
            .connection
            .unary(
                CONTROLLER_GET_VOLUME_HEALTH,
                Some(timeout),
                ControllerGetVolumeHealthRequest {
                    volume_id: volume_id.to_string(),
                    secrets: HashMap::new(),
                },
                |ch, req| async move {
                    ControllerClient::new(ch)
                        .controller_get_volume_health(req)
                        .await
                },
            )
            .await
            .map_err(CsiError::Status)?;
        Ok(result_of(response.volume_health.as_ref()))
    }

    /// One volume's health as the node plugin sees it (`NodeGetVolumeHealth`, the CSI 1.13
    /// successor of the condition in `NodeGetVolumeStats`). The controller does not call it:
    /// node-side health is the kubelet's (Pod `status.volumeHealth`).
    pub async fn node_get_volume_health(
        &self,
        volume_id: &str,
        volume_path: &str,
        staging_path: &str,
        timeout: Duration,
    ) -> Result<VolumeHealthResult, CsiError> {
        let response = self
            .connection
            .unary(
                NODE_GET_VOLUME_HEALTH,
                Some(timeout),
                NodeGetVolumeHealthRequest {
                    volume_id: volume_id.to_string(),
                    volume_publish_path: volume_path.to_string(),
                    staging_target_path: staging_path.to_string(),
                },
                |ch, req| async move { NodeClient::new(ch).node_get_volume_health(req).await },
            )
            .await
            .map_err(CsiError::Status)?;
        Ok(result_of(response.volume_health.as_ref()))
    }
}
