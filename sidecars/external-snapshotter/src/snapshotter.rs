//! The CSI snapshot calls (upstream's `pkg/snapshotter`): [`Snapshotter`] — CreateSnapshot,
//! DeleteSnapshot and the status of a snapshot from ListSnapshots — and [`CsiSnapshotter`]
//! over the process's driver connection. Every call is logged with its secrets stripped and
//! measured in `csi_sidecar_operations_seconds` by the connection.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use csi_connection::{Connection, rpc};
use csi_proto::csi::v1::controller_client::ControllerClient;
use csi_proto::csi::v1::controller_service_capability::rpc::Type as ControllerCapability;
use csi_proto::csi::v1::{
    CreateSnapshotRequest, DeleteSnapshotRequest, ListSnapshotsRequest, Snapshot,
};
use futures::future::BoxFuture;
use tracing::trace;

pub use csi_connection::CsiError;

/// `Controller.CreateSnapshot`, as logged and measured.
pub const CREATE_SNAPSHOT: &str = "/csi.v1.Controller/CreateSnapshot";
/// `Controller.DeleteSnapshot`.
pub const DELETE_SNAPSHOT: &str = "/csi.v1.Controller/DeleteSnapshot";
/// `Controller.ListSnapshots`.
pub const LIST_SNAPSHOTS: &str = "/csi.v1.Controller/ListSnapshots";

/// What CreateSnapshot answered.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedSnapshot {
    /// The driver's name (GetPluginInfo, asked before the call as upstream does).
    pub driver_name: String,
    /// The CSI snapshot ID.
    pub snapshot_id: String,
    /// When the snapshot was taken, in Unix nanoseconds; `None` is Go's zero time (the
    /// controller then uses the current time). A driver that sends no time gives `Some(0)`,
    /// as protobuf's `AsTime` of a missing timestamp.
    pub creation_time: Option<i64>,
    /// The size in bytes.
    pub size: i64,
    /// Whether it can be restored from already.
    pub ready_to_use: bool,
}

/// What ListSnapshots says of one snapshot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SnapshotStatus {
    /// Whether it can be restored from.
    pub ready_to_use: bool,
    /// When it was taken, in Unix nanoseconds (`None`: unknown, Go's zero time).
    pub creation_time: Option<i64>,
    /// The size in bytes.
    pub size: i64,
    /// The group snapshot it belongs to, `""` if none.
    pub group_snapshot_id: String,
}

/// Unix nanoseconds of a CSI timestamp, as protobuf's `AsTime().UnixNano()` (a missing
/// timestamp is the epoch). Nanoseconds outside `0..1e9` count as the seconds they add up to,
/// as `time.Unix` normalizes them; a time outside what an `i64` of nanoseconds holds (before
/// 1678 or after 2262), where Go's result is undefined, is clamped to the nearest end.
pub fn timestamp_nanos(timestamp: Option<&prost_types::Timestamp>) -> i64 {
    timestamp.map_or(0, |t| {
        let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
        i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
    })
}

/// The snapshot calls of the sidecar (upstream's `Snapshotter` interface). Each call, with
/// the driver-name lookup before CreateSnapshot and the capability check before
/// ListSnapshots, must finish within `timeout`.
pub trait Snapshotter: Send + Sync + fmt::Debug {
    /// CreateSnapshot `name` of `volume_handle`.
    fn create_snapshot<'a>(
        &'a self,
        name: &'a str,
        volume_handle: &'a str,
        parameters: HashMap<String, String>,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<CreatedSnapshot, CsiError>>;

    /// DeleteSnapshot `snapshot_id`.
    fn delete_snapshot<'a>(
        &'a self,
        snapshot_id: &'a str,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), CsiError>>;

    /// The status of `snapshot_id` from ListSnapshots; a driver without LIST_SNAPSHOTS says
    /// nothing, and the snapshot is taken as ready.
    fn get_snapshot_status<'a>(
        &'a self,
        snapshot_id: &'a str,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<SnapshotStatus, CsiError>>;
}

/// [`Snapshotter`] over the process's driver connection.
#[derive(Clone, Debug)]
pub struct CsiSnapshotter {
    connection: Connection,
}

/// What is left of a deadline.
fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

impl CsiSnapshotter {
    /// A snapshotter on `connection`.
    pub fn new(connection: Connection) -> Self {
        CsiSnapshotter { connection }
    }

    async fn create(
        &self,
        name: &str,
        volume_handle: &str,
        parameters: HashMap<String, String>,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> Result<CreatedSnapshot, CsiError> {
        trace!("CSI CreateSnapshot: {name}");
        let deadline = Instant::now() + timeout;
        let driver_name = rpc::get_driver_name(&self.connection, Some(timeout))
            .await
            .map_err(driver_name_error)?;
        let request = CreateSnapshotRequest {
            source_volume_id: volume_handle.to_string(),
            name: name.to_string(),
            parameters,
            secrets,
            // CSI 1.13's SNAPSHOT_ACCESSIBILITY_CONSTRAINTS: upstream v8.7.0 sets no topology.
            accessibility_requirements: None,
        };
        let response = self
            .connection
            .unary(
                CREATE_SNAPSHOT,
                Some(remaining(deadline)),
                request,
                |ch, req| async move { ControllerClient::new(ch).create_snapshot(req).await },
            )
            .await
            .map_err(CsiError::Status)?;
        let snapshot = response.snapshot.unwrap_or_default();
        trace!(
            "CSI CreateSnapshot: {name} driver name [{driver_name}] snapshot ID [{}] size [{}] readyToUse [{}]",
            snapshot.snapshot_id, snapshot.size_bytes, snapshot.ready_to_use
        );
        Ok(CreatedSnapshot {
            driver_name,
            creation_time: Some(timestamp_nanos(snapshot.creation_time.as_ref())),
            snapshot_id: snapshot.snapshot_id,
            size: snapshot.size_bytes,
            ready_to_use: snapshot.ready_to_use,
        })
    }

    async fn delete(
        &self,
        snapshot_id: &str,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> Result<(), CsiError> {
        let request = DeleteSnapshotRequest {
            snapshot_id: snapshot_id.to_string(),
            secrets,
        };
        self.connection
            .unary(
                DELETE_SNAPSHOT,
                Some(timeout),
                request,
                |ch, req| async move { ControllerClient::new(ch).delete_snapshot(req).await },
            )
            .await
            .map(drop)
            .map_err(CsiError::Status)
    }

    async fn status(
        &self,
        snapshot_id: &str,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> Result<SnapshotStatus, CsiError> {
        trace!("GetSnapshotStatus: {snapshot_id}");
        let deadline = Instant::now() + timeout;
        let supported = rpc::get_controller_capabilities(&self.connection, Some(timeout))
            .await
            .map(|caps| caps.contains(&ControllerCapability::ListSnapshots))
            .map_err(|err| {
                let status = match err {
                    csi_connection::Error::Rpc { status, .. } => {
                        csi_connection::format_status(&status)
                    }
                    other => other.to_string(),
                };
                CsiError::Other(format!(
                    "failed to check if ListSnapshots is supported: {status}"
                ))
            })?;
        if !supported {
            return Ok(SnapshotStatus {
                ready_to_use: true,
                ..Default::default()
            });
        }
        let request = ListSnapshotsRequest {
            snapshot_id: snapshot_id.to_string(),
            secrets,
            ..Default::default()
        };
        let response = self
            .connection
            .unary(
                LIST_SNAPSHOTS,
                Some(remaining(deadline)),
                request,
                |ch, req| async move { ControllerClient::new(ch).list_snapshots(req).await },
            )
            .await
            .map_err(CsiError::Status)?;
        let Some(snapshot) = response
            .entries
            .into_iter()
            .next()
            .map(|entry| entry.snapshot.unwrap_or_default())
        else {
            return Err(CsiError::Other(format!(
                "can not find snapshot for snapshotID {snapshot_id}"
            )));
        };
        Ok(status_of(snapshot))
    }
}

fn status_of(snapshot: Snapshot) -> SnapshotStatus {
    SnapshotStatus {
        ready_to_use: snapshot.ready_to_use,
        creation_time: Some(timestamp_nanos(snapshot.creation_time.as_ref())),
        size: snapshot.size_bytes,
        group_snapshot_id: snapshot.group_snapshot_id,
    }
}

/// GetPluginInfo's failure as the CSI call's: its gRPC status when it has one.
pub(crate) fn driver_name_error(err: csi_connection::Error) -> CsiError {
    match err {
        csi_connection::Error::Rpc { status, .. } => CsiError::Status(status),
        other => CsiError::Other(other.to_string()),
    }
}

impl Snapshotter for CsiSnapshotter {
    fn create_snapshot<'a>(
        &'a self,
        name: &'a str,
        volume_handle: &'a str,
        parameters: HashMap<String, String>,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<CreatedSnapshot, CsiError>> {
        Box::pin(self.create(name, volume_handle, parameters, secrets, timeout))
    }

    fn delete_snapshot<'a>(
        &'a self,
        snapshot_id: &'a str,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), CsiError>> {
        Box::pin(self.delete(snapshot_id, secrets, timeout))
    }

    fn get_snapshot_status<'a>(
        &'a self,
        snapshot_id: &'a str,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<SnapshotStatus, CsiError>> {
        Box::pin(self.status(snapshot_id, secrets, timeout))
    }
}

#[cfg(test)]
mod tests;
