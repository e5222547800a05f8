//! Upstream's `csiHandler`: a content to the CSI call it needs — the snapshot name from the
//! VolumeSnapshot's UID, the snapshot handle from the status or the spec, the per-call
//! timeout — with upstream's error messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use csi_crd_types::{VolumeGroupSnapshotContent, VolumeSnapshotContent};

use super::go_quote;
use crate::group_snapshotter::{CreatedGroupSnapshot, GroupSnapshotStatus, GroupSnapshotter};
use crate::snapshotter::{CreatedSnapshot, CsiError, SnapshotStatus, Snapshotter};

/// The CSI side of the controller (upstream's `Handler`).
#[derive(Debug, Clone)]
pub struct Handler {
    /// The snapshot calls.
    pub snapshotter: Arc<dyn Snapshotter>,
    /// The group snapshot calls, with group snapshots on.
    pub group_snapshotter: Option<Arc<dyn GroupSnapshotter>>,
    /// `--timeout`: the deadline of each call.
    pub timeout: Duration,
    /// `--snapshot-name-prefix`.
    pub snapshot_name_prefix: String,
    /// `--snapshot-name-uuid-length` (-1: the whole UID).
    pub snapshot_name_uuid_length: i64,
    /// `--groupsnapshot-name-prefix`.
    pub group_snapshot_name_prefix: String,
    /// `--groupsnapshot-name-uuid-length` (-1: the whole UID).
    pub group_snapshot_name_uuid_length: i64,
}

/// `<prefix>-<uid>`; with a UUID length, the UID without dashes cut to that many characters
/// (upstream's `makeSnapshotName`; a length past the end takes all of it instead of panicking).
pub fn make_snapshot_name(prefix: &str, uid: &str, uuid_length: i64) -> Result<String, CsiError> {
    if uid.is_empty() {
        return Err(CsiError::Other(
            "Corrupted snapshot object, it is missing UID".to_string(),
        ));
    }
    Ok(format!("{prefix}-{}", cut_uid(uid, uuid_length)))
}

fn cut_uid(uid: &str, uuid_length: i64) -> String {
    if uuid_length == -1 {
        return uid.to_string();
    }
    let compact: String = uid.chars().filter(|c| *c != '-').collect();
    let length = usize::try_from(uuid_length).unwrap_or(0).min(compact.len());
    compact[..length].to_string()
}

/// The handle of the snapshot of `content`: the status's, else the spec's (pre-provisioned).
fn snapshot_handle(content: &VolumeSnapshotContent) -> Option<&str> {
    content
        .status
        .as_ref()
        .and_then(|s| s.snapshot_handle.as_deref())
        .or(content.spec.source.snapshot_handle.as_deref())
}

/// The group snapshot handle of `content`: the status's, else the spec's.
fn group_snapshot_handle(content: &VolumeGroupSnapshotContent) -> Option<&str> {
    content
        .status
        .as_ref()
        .and_then(|s| s.volume_group_snapshot_handle.as_deref())
        .or(content
            .spec
            .source
            .group_snapshot_handles
            .as_ref()
            .map(|h| h.volume_group_snapshot_handle.as_str()))
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

impl Handler {
    fn group_snapshotter(&self) -> Result<&Arc<dyn GroupSnapshotter>, CsiError> {
        self.group_snapshotter
            .as_ref()
            .ok_or_else(|| CsiError::Other("group snapshots are disabled".to_string()))
    }

    /// CreateSnapshot for a dynamic content.
    pub async fn create_snapshot(
        &self,
        content: &VolumeSnapshotContent,
        parameters: HashMap<String, String>,
        secrets: HashMap<String, String>,
    ) -> Result<CreatedSnapshot, CsiError> {
        let name = name_of(&content.metadata);
        let uid = content
            .spec
            .volume_snapshot_ref
            .uid
            .as_deref()
            .unwrap_or_default();
        if uid.is_empty() {
            return Err(CsiError::Other(format!(
                "cannot create snapshot. Snapshot content {name} not bound to a snapshot"
            )));
        }
        let Some(volume_handle) = content.spec.source.volume_handle.as_deref() else {
            return Err(CsiError::Other(format!(
                "cannot create snapshot. Volume handle not found in snapshot content {name}"
            )));
        };
        let snapshot_name = make_snapshot_name(
            &self.snapshot_name_prefix,
            uid,
            self.snapshot_name_uuid_length,
        )?;
        self.snapshotter
            .create_snapshot(
                &snapshot_name,
                volume_handle,
                parameters,
                secrets,
                self.timeout,
            )
            .await
    }

    /// DeleteSnapshot of the content's snapshot.
    pub async fn delete_snapshot(
        &self,
        content: &VolumeSnapshotContent,
        secrets: HashMap<String, String>,
    ) -> Result<(), CsiError> {
        let name = name_of(&content.metadata);
        let Some(handle) = snapshot_handle(content) else {
            return Err(CsiError::Other(format!(
                "failed to delete snapshot content {name}: snapshotHandle is missing"
            )));
        };
        self.snapshotter
            .delete_snapshot(handle, secrets, self.timeout)
            .await
            .map_err(|err| {
                CsiError::Other(format!(
                    "failed to delete snapshot content {name}: {}",
                    go_quote(&err.to_string())
                ))
            })
    }

    /// The status of the content's snapshot (ListSnapshots).
    pub async fn get_snapshot_status(
        &self,
        content: &VolumeSnapshotContent,
        secrets: HashMap<String, String>,
    ) -> Result<SnapshotStatus, CsiError> {
        let name = name_of(&content.metadata);
        let Some(handle) = snapshot_handle(content) else {
            return Err(CsiError::Other(format!(
                "failed to list snapshot for content {name}: snapshotHandle is missing"
            )));
        };
        self.snapshotter
            .get_snapshot_status(handle, secrets, self.timeout)
            .await
            .map_err(|err| {
                CsiError::Other(format!(
                    "failed to list snapshot for content {name}: {}",
                    go_quote(&err.to_string())
                ))
            })
    }

    /// CreateVolumeGroupSnapshot for a dynamic group content.
    pub async fn create_group_snapshot(
        &self,
        content: &VolumeGroupSnapshotContent,
        parameters: HashMap<String, String>,
        secrets: HashMap<String, String>,
    ) -> Result<CreatedGroupSnapshot, CsiError> {
        let name = name_of(&content.metadata);
        let uid = content
            .spec
            .volume_group_snapshot_ref
            .uid
            .as_deref()
            .unwrap_or_default();
        if uid.is_empty() {
            return Err(CsiError::Other(format!(
                "cannot create group snapshot. Group snapshot content {name} not bound to a group snapshot"
            )));
        }
        if content.spec.source.volume_handles.is_empty() {
            return Err(CsiError::Other(format!(
                "cannot create group snapshot. PVCs to be snapshotted not found in group snapshot content {name}"
            )));
        }
        let group_name = self.make_group_snapshot_name(uid)?;
        self.group_snapshotter()?
            .create_group_snapshot(
                &group_name,
                content.spec.source.volume_handles.clone(),
                parameters,
                secrets,
                self.timeout,
            )
            .await
    }

    /// DeleteVolumeGroupSnapshot of the group content's group snapshot and `snapshot_ids`.
    pub async fn delete_group_snapshot(
        &self,
        content: &VolumeGroupSnapshotContent,
        snapshot_ids: Vec<String>,
        secrets: HashMap<String, String>,
    ) -> Result<(), CsiError> {
        let name = name_of(&content.metadata);
        if snapshot_ids.is_empty() {
            return Err(CsiError::Other(format!(
                "cannot delete group snapshot content {name}. No snapshots found in the group snapshot"
            )));
        }
        let Some(handle) = group_snapshot_handle(content) else {
            return Err(CsiError::Other(format!(
                "failed to delete group snapshot content {name}: groupsnapshotHandle is missing"
            )));
        };
        self.group_snapshotter()?
            .delete_group_snapshot(handle, snapshot_ids, secrets, self.timeout)
            .await
    }

    /// The status of the group content's group snapshot (GetVolumeGroupSnapshot).
    pub async fn get_group_snapshot_status(
        &self,
        content: &VolumeGroupSnapshotContent,
        snapshot_ids: Vec<String>,
        secrets: HashMap<String, String>,
    ) -> Result<GroupSnapshotStatus, CsiError> {
        let name = name_of(&content.metadata);
        if snapshot_ids.is_empty() {
            return Err(CsiError::Other(format!(
                "cannot list group snapshot {name}. No snapshots found in the group snapshot content"
            )));
        }
        let Some(handle) = group_snapshot_handle(content) else {
            return Err(CsiError::Other(format!(
                "failed to list group snapshot for group snapshot content {name}: groupSnapshotHandle is missing"
            )));
        };
        self.group_snapshotter()?
            .get_group_snapshot_status(handle, snapshot_ids, secrets, self.timeout)
            .await
            .map_err(|err| {
                CsiError::Other(format!(
                    "failed to list group snapshot for group snapshot content {name}: {}",
                    go_quote(&err.to_string())
                ))
            })
    }

    /// `<groupsnapshot prefix>-<uid>` (upstream's `makeGroupSnapshotName`).
    pub fn make_group_snapshot_name(&self, uid: &str) -> Result<String, CsiError> {
        if uid.is_empty() {
            return Err(CsiError::Other(
                "group snapshot object is missing UID".to_string(),
            ));
        }
        Ok(format!(
            "{}-{}",
            self.group_snapshot_name_prefix,
            cut_uid(uid, self.group_snapshot_name_uuid_length)
        ))
    }
}
