//! The CSI group snapshot calls (upstream's `pkg/group_snapshotter`): [`GroupSnapshotter`] —
//! CreateVolumeGroupSnapshot, DeleteVolumeGroupSnapshot, GetVolumeGroupSnapshot — and
//! [`CsiGroupSnapshotter`] over the process's driver connection.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use csi_connection::{Connection, rpc};
use csi_proto::csi::v1::group_controller_client::GroupControllerClient;
use csi_proto::csi::v1::{
    CreateVolumeGroupSnapshotRequest, DeleteVolumeGroupSnapshotRequest,
    GetVolumeGroupSnapshotRequest, Snapshot,
};
use futures::future::BoxFuture;
use tracing::trace;

use crate::snapshotter::{CsiError, driver_name_error, timestamp_nanos};

/// `GroupController.CreateVolumeGroupSnapshot`, as logged and measured.
pub const CREATE_VOLUME_GROUP_SNAPSHOT: &str = "/csi.v1.GroupController/CreateVolumeGroupSnapshot";
/// `GroupController.DeleteVolumeGroupSnapshot`.
pub const DELETE_VOLUME_GROUP_SNAPSHOT: &str = "/csi.v1.GroupController/DeleteVolumeGroupSnapshot";
/// `GroupController.GetVolumeGroupSnapshot`.
pub const GET_VOLUME_GROUP_SNAPSHOT: &str = "/csi.v1.GroupController/GetVolumeGroupSnapshot";

/// What CreateVolumeGroupSnapshot answered.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedGroupSnapshot {
    /// The driver's name (GetPluginInfo, asked first as upstream does).
    pub driver_name: String,
    /// The CSI group snapshot ID.
    pub group_snapshot_id: String,
    /// The member snapshots.
    pub snapshots: Vec<Snapshot>,
    /// When it was taken, in Unix nanoseconds (`None`: Go's zero time).
    pub creation_time: Option<i64>,
    /// Whether every member can be restored from already.
    pub ready_to_use: bool,
}

/// What GetVolumeGroupSnapshot says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupSnapshotStatus {
    /// Whether every member can be restored from.
    pub ready_to_use: bool,
    /// When it was taken, in Unix nanoseconds (`None`: Go's zero time).
    pub creation_time: Option<i64>,
}

/// The group snapshot calls of the sidecar (upstream's `GroupSnapshotter` interface); each
/// must finish within `timeout`.
pub trait GroupSnapshotter: Send + Sync + fmt::Debug {
    /// CreateVolumeGroupSnapshot `name` of `volume_ids`.
    fn create_group_snapshot<'a>(
        &'a self,
        name: &'a str,
        volume_ids: Vec<String>,
        parameters: HashMap<String, String>,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<CreatedGroupSnapshot, CsiError>>;

    /// DeleteVolumeGroupSnapshot `group_snapshot_id` with its members `snapshot_ids`.
    fn delete_group_snapshot<'a>(
        &'a self,
        group_snapshot_id: &'a str,
        snapshot_ids: Vec<String>,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), CsiError>>;

    /// GetVolumeGroupSnapshot `group_snapshot_id` with its members `snapshot_ids`.
    fn get_group_snapshot_status<'a>(
        &'a self,
        group_snapshot_id: &'a str,
        snapshot_ids: Vec<String>,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<GroupSnapshotStatus, CsiError>>;
}

/// [`GroupSnapshotter`] over the process's driver connection.
#[derive(Clone, Debug)]
pub struct CsiGroupSnapshotter {
    connection: Connection,
}

impl CsiGroupSnapshotter {
    /// A group snapshotter on `connection`.
    pub fn new(connection: Connection) -> Self {
        CsiGroupSnapshotter { connection }
    }

    async fn create(
        &self,
        name: &str,
        volume_ids: Vec<String>,
        parameters: HashMap<String, String>,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> Result<CreatedGroupSnapshot, CsiError> {
        trace!("CSI CreateGroupSnapshot: {name}");
        let deadline = Instant::now() + timeout;
        let driver_name = rpc::get_driver_name(&self.connection, Some(timeout))
            .await
            .map_err(driver_name_error)?;
        let request = CreateVolumeGroupSnapshotRequest {
            name: name.to_string(),
            source_volume_ids: volume_ids,
            secrets,
            parameters,
        };
        let response = self
            .connection
            .unary(
                CREATE_VOLUME_GROUP_SNAPSHOT,
                Some(deadline.saturating_duration_since(Instant::now())),
                request,
                |ch, req| async move {
                    GroupControllerClient::new(ch)
                        .create_volume_group_snapshot(req)
                        .await
                },
            )
            .await
            .map_err(CsiError::Status)?;
        let group = response.group_snapshot.unwrap_or_default();
        trace!(
            "CSI CreateGroupSnapshot: {name} driver name [{driver_name}] group snapshot ID [{}] snapshots [{}] readyToUse [{}]",
            group.group_snapshot_id,
            group.snapshots.len(),
            group.ready_to_use
        );
        Ok(CreatedGroupSnapshot {
            driver_name,
            creation_time: Some(timestamp_nanos(group.creation_time.as_ref())),
            group_snapshot_id: group.group_snapshot_id,
            snapshots: group.snapshots,
            ready_to_use: group.ready_to_use,
        })
    }

    async fn delete(
        &self,
        group_snapshot_id: &str,
        snapshot_ids: Vec<String>,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> Result<(), CsiError> {
        let request = DeleteVolumeGroupSnapshotRequest {
            group_snapshot_id: group_snapshot_id.to_string(),
            snapshot_ids,
            secrets,
        };
        self.connection
            .unary(
                DELETE_VOLUME_GROUP_SNAPSHOT,
                Some(timeout),
                request,
                |ch, req| async move {
                    GroupControllerClient::new(ch)
                        .delete_volume_group_snapshot(req)
                        .await
                },
            )
            .await
            .map(drop)
            .map_err(CsiError::Status)
    }

    async fn status(
        &self,
        group_snapshot_id: &str,
        snapshot_ids: Vec<String>,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> Result<GroupSnapshotStatus, CsiError> {
        trace!("CSI GetGroupSnapshotStatus: {group_snapshot_id}");
        let request = GetVolumeGroupSnapshotRequest {
            group_snapshot_id: group_snapshot_id.to_string(),
            snapshot_ids,
            secrets,
        };
        let response = self
            .connection
            .unary(
                GET_VOLUME_GROUP_SNAPSHOT,
                Some(timeout),
                request,
                |ch, req| async move {
                    GroupControllerClient::new(ch)
                        .get_volume_group_snapshot(req)
                        .await
                },
            )
            .await
            .map_err(CsiError::Status)?;
        let group = response.group_snapshot.unwrap_or_default();
        Ok(GroupSnapshotStatus {
            ready_to_use: group.ready_to_use,
            creation_time: Some(timestamp_nanos(group.creation_time.as_ref())),
        })
    }
}

impl GroupSnapshotter for CsiGroupSnapshotter {
    fn create_group_snapshot<'a>(
        &'a self,
        name: &'a str,
        volume_ids: Vec<String>,
        parameters: HashMap<String, String>,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<CreatedGroupSnapshot, CsiError>> {
        Box::pin(self.create(name, volume_ids, parameters, secrets, timeout))
    }

    fn delete_group_snapshot<'a>(
        &'a self,
        group_snapshot_id: &'a str,
        snapshot_ids: Vec<String>,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), CsiError>> {
        Box::pin(self.delete(group_snapshot_id, snapshot_ids, secrets, timeout))
    }

    fn get_group_snapshot_status<'a>(
        &'a self,
        group_snapshot_id: &'a str,
        snapshot_ids: Vec<String>,
        secrets: HashMap<String, String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<GroupSnapshotStatus, CsiError>> {
        Box::pin(self.status(group_snapshot_id, snapshot_ids, secrets, timeout))
    }
}

#[cfg(test)]
mod tests;
