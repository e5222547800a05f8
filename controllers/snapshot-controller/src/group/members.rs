//! The members of a dynamic group snapshot (upstream's `createSnapshotsForGroupSnapshotContent`
//! and what it calls): once the sidecar has written the group content's
//! `status.volumeGroupSnapshotHandle` and `volumeSnapshotInfoList`, one VolumeSnapshot and one
//! VolumeSnapshotContent per member volume, named from the group snapshot's UID and the volume
//! handle, bound to each other, the snapshot owned by the group snapshot and protected by the
//! in-group finalizer, the content carrying the member's handle, size, time and readiness.

use std::collections::BTreeMap;

use csi_crd_types::group_snapshot::v1::{
    VolumeGroupSnapshot, VolumeGroupSnapshotContent, VolumeSnapshotInfo,
};
use csi_crd_types::snapshot::v1::{
    VolumeSnapshot, VolumeSnapshotContent, VolumeSnapshotContentSource, VolumeSnapshotContentSpec,
};
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, SecretReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;
use tracing::{debug, error};

use super::GroupController;
use crate::controller::{Result, SyncError, name, uid};
use csi_controller::ApiError;
use csi_snapshot_utils as utils;

fn sha256_hex(data: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The name of the member VolumeSnapshot of `volume_handle` in the group snapshot with UID
/// `group_uid`: `snapshot-<sha256(uid + handle)>`.
pub fn member_snapshot_name(group_uid: &str, volume_handle: &str) -> String {
    format!(
        "snapshot-{}",
        sha256_hex(&format!("{group_uid}{volume_handle}"))
    )
}

/// The name of the member VolumeSnapshotContent: `snapcontent-<sha256(uid + handle)>`.
pub fn member_content_name(group_uid: &str, volume_handle: &str) -> String {
    format!(
        "snapcontent-{}",
        sha256_hex(&format!("{group_uid}{volume_handle}"))
    )
}

/// The group content has what member creation needs: a member list and a group handle.
pub fn is_group_content_ready_for_snapshot_creation(content: &VolumeGroupSnapshotContent) -> bool {
    content.status.as_ref().is_some_and(|s| {
        !s.volume_snapshot_info_list.is_empty() && s.volume_group_snapshot_handle.is_some()
    })
}

impl GroupController {
    /// Creates the members of a group snapshot whose group content is ready for it; the
    /// group content is returned as given.
    pub(crate) async fn create_snapshots_for_group_snapshot_content(
        &self,
        content: &VolumeGroupSnapshotContent,
        group: &VolumeGroupSnapshot,
    ) -> Result<VolumeGroupSnapshotContent> {
        if !is_group_content_ready_for_snapshot_creation(content) {
            return Ok(content.clone());
        }
        let secret = self.group_snapshot_secret(group, content)?;
        debug!(
            "createSnapshotsForGroupSnapshotContent[{}]: creating volumesnapshots and volumesnapshotcontent for group snapshot content",
            name(&content.metadata)
        );
        let infos = content
            .status
            .as_ref()
            .map(|s| s.volume_snapshot_info_list.clone())
            .unwrap_or_default();
        for info in &infos {
            self.create_individual_snapshot_for_group_snapshot(
                info,
                content,
                group,
                secret.as_ref(),
            )
            .await?;
        }
        Ok(content.clone())
    }

    /// The deletion secret of the members: the group class's snapshotter secret.
    fn group_snapshot_secret(
        &self,
        group: &VolumeGroupSnapshot,
        content: &VolumeGroupSnapshotContent,
    ) -> Result<Option<SecretReference>> {
        let Some(class_name) = group.spec.volume_group_snapshot_class_name.as_deref() else {
            return Err(SyncError::new(
                "getGroupSnapshotSecret: internal error: cannot find reference to volume group snapshot class",
            ));
        };
        let class = self.listers.group_class(class_name).ok_or_else(|| {
            let err = ApiError::not_found(
                "volumegroupsnapshotclass.groupsnapshot.storage.k8s.io",
                class_name,
            );
            SyncError::new(format!(
                "getGroupSnapshotSecret: failed to get volume snapshot class {class_name}: {:?}",
                err.message
            ))
        })?;
        utils::group_snapshot_secret_reference(
            &utils::GROUP_SNAPSHOTTER_SECRET_PARAMS,
            &class.parameters.clone().unwrap_or_default(),
            name(&content.metadata),
            None,
        )
        .map_err(|err| {
            SyncError::new(format!(
                "getGroupSnapshotSecret: failed to get secret reference for group snapshot content {}: {err}",
                name(&content.metadata)
            ))
        })
    }

    /// Creates (or finds) one member's content and snapshot, binds them to each other and
    /// writes the member's status into the content.
    pub(crate) async fn create_individual_snapshot_for_group_snapshot(
        &self,
        info: &VolumeSnapshotInfo,
        content: &VolumeGroupSnapshotContent,
        group: &VolumeGroupSnapshot,
        secret: Option<&SecretReference>,
    ) -> Result<()> {
        let volume_handle = &info.volume_handle;
        let driver = &content.spec.driver;
        let pv = self
            .find_persistent_volume_by_csi_driver_handle(driver, volume_handle)
            .unwrap_or_else(|err| {
                error!(
                    "createIndividualSnapshotForGroupSnapshot: error while finding PV for volumeHandle:[{volume_handle}] and CSI driver:[{driver}]: {err}"
                );
                None
            });
        let member_content =
            build_member_content(group, content, volume_handle, pv.as_ref(), secret);
        let member_snapshot = build_member_snapshot(group, content, volume_handle, pv.as_ref());

        let created_content = self
            .create_or_get_volume_snapshot_content(&member_content)
            .await
            .map_err(|err| {
                SyncError::new(format!(
                    "createIndividualSnapshotForGroupSnapshot: creating volumesnapshotcontent {err}"
                ))
            })?;
        let created_snapshot = self
            .create_or_get_volume_snapshot(&member_snapshot)
            .await
            .map_err(|err| {
                SyncError::new(format!(
                    "createIndividualSnapshotForGroupSnapshot: error creating or fetching volumesnapshot {err}"
                ))
            })?;
        if uid(&created_snapshot.metadata).is_empty() {
            return Err(SyncError::new(format!(
                "createIndividualSnapshotForGroupSnapshot: created snapshot {} has an empty UID",
                name(&created_snapshot.metadata)
            )));
        }
        self.bind_snapshot_content_to_snapshot(&created_content, &created_snapshot)
            .await
            .map_err(|err| {
                SyncError::new(format!(
                    "createIndividualSnapshotForGroupSnapshot: binding volumesnapshotcontent to volumesnapshot {err}"
                ))
            })?;
        self.bind_snapshot_to_snapshot_content(&created_snapshot, name(&created_content.metadata))
            .await
            .map_err(|err| {
                SyncError::new(format!(
                    "createIndividualSnapshotForGroupSnapshot: binding volumesnapshot to volumesnapshotcontent {err}"
                ))
            })?;
        self.update_volume_snapshot_content_status(&created_content, info, content)
            .await
            .map_err(|err| {
                SyncError::new(format!(
                    "createIndividualSnapshotForGroupSnapshot: setting snapshotHandle in volumesnapshotcontent {err}"
                ))
            })?;
        Ok(())
    }

    /// Creates the content, or reads the one of that name that exists; the API server's
    /// object either way.
    pub(crate) async fn create_or_get_volume_snapshot_content(
        &self,
        content: &VolumeSnapshotContent,
    ) -> Result<VolumeSnapshotContent, ApiError> {
        match self.api.create_content(content).await {
            Err(err) if err.is_already_exists() => {
                self.api.get_content(name(&content.metadata)).await
            }
            other => other,
        }
    }

    /// Creates the snapshot, or reads the one of that name that exists; the API server's
    /// object either way.
    pub(crate) async fn create_or_get_volume_snapshot(
        &self,
        snapshot: &VolumeSnapshot,
    ) -> Result<VolumeSnapshot, ApiError> {
        match self.api.create_snapshot(snapshot).await {
            Err(err) if err.is_already_exists() => {
                self.api
                    .get_snapshot(
                        snapshot.metadata.namespace.as_deref().unwrap_or_default(),
                        name(&snapshot.metadata),
                    )
                    .await
            }
            other => other,
        }
    }

    /// Points the content at the snapshot's UID (a JSON patch of
    /// `spec.volumeSnapshotRef.uid`).
    pub(crate) async fn bind_snapshot_content_to_snapshot(
        &self,
        content: &VolumeSnapshotContent,
        snapshot: &VolumeSnapshot,
    ) -> Result<(), ApiError> {
        let patch = json!([{
            "op": "replace",
            "path": "/spec/volumeSnapshotRef/uid",
            "value": uid(&snapshot.metadata),
        }]);
        self.api
            .patch_content(name(&content.metadata), &patch)
            .await
            .map(|_| ())
    }

    /// Sets the snapshot's `status.boundVolumeSnapshotContentName` (a JSON patch of its
    /// status, started empty).
    pub(crate) async fn bind_snapshot_to_snapshot_content(
        &self,
        snapshot: &VolumeSnapshot,
        content_name: &str,
    ) -> Result<(), ApiError> {
        let patch = json!([
            {"op": "replace", "path": "/status", "value": {}},
            {"op": "replace", "path": "/status/boundVolumeSnapshotContentName", "value": content_name},
        ]);
        self.api
            .patch_snapshot_status(
                snapshot.metadata.namespace.as_deref().unwrap_or_default(),
                name(&snapshot.metadata),
                &patch,
            )
            .await
            .map(|_| ())
    }

    /// Writes the member's snapshot handle, the group handle, creation time, size and
    /// readiness into the content's status (a JSON patch of its status, started empty).
    pub(crate) async fn update_volume_snapshot_content_status(
        &self,
        content: &VolumeSnapshotContent,
        info: &VolumeSnapshotInfo,
        group_content: &VolumeGroupSnapshotContent,
    ) -> Result<(), ApiError> {
        let group_handle = group_content
            .status
            .as_ref()
            .and_then(|s| s.volume_group_snapshot_handle.clone());
        let patch = json!([
            {"op": "replace", "path": "/status", "value": {}},
            {"op": "replace", "path": "/status/snapshotHandle", "value": info.snapshot_handle},
            {"op": "replace", "path": "/status/volumeGroupSnapshotHandle", "value": group_handle},
            {"op": "replace", "path": "/status/creationTime", "value": info.creation_time},
            {"op": "replace", "path": "/status/restoreSize", "value": info.restore_size},
            {"op": "replace", "path": "/status/readyToUse", "value": info.ready_to_use},
        ]);
        self.api
            .patch_content_status(name(&content.metadata), &patch)
            .await
            .map(|_| ())
    }

    /// The PV of `driver` with `volume_handle`, from the `ByVolumeHandle` index; more than
    /// one is an error.
    pub(crate) fn find_persistent_volume_by_csi_driver_handle(
        &self,
        driver: &str,
        volume_handle: &str,
    ) -> Result<Option<PersistentVolume>> {
        let volumes = self.listers.volumes_by_handle(driver, volume_handle);
        match volumes.as_slice() {
            [] => Ok(None),
            [pv] => Ok(Some((**pv).clone())),
            _ => {
                error!(
                    "findPersistentVolumeByCSIDriverHandle: multiple PVs found for for volumeHandle:[{volume_handle}] and CSI driver:[{driver}]"
                );
                Err(SyncError::new("multiple PVs found"))
            }
        }
    }
}

/// The member content of `volume_handle`: bound by name to the member snapshot, with the
/// group content's driver and deletion policy, the group handle annotation, the source
/// volume's mode when its PV is known, and the deletion secret annotations.
pub(crate) fn build_member_content(
    group: &VolumeGroupSnapshot,
    content: &VolumeGroupSnapshotContent,
    volume_handle: &str,
    pv: Option<&PersistentVolume>,
    secret: Option<&SecretReference>,
) -> VolumeSnapshotContent {
    let group_uid = uid(&group.metadata);
    let group_handle = content
        .status
        .as_ref()
        .and_then(|s| s.volume_group_snapshot_handle.clone())
        .unwrap_or_default();
    let mut annotations = BTreeMap::from([(
        utils::VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION.to_string(),
        group_handle,
    )]);
    if let Some(secret) = secret {
        debug!(
            "buildVolumeSnapshotContentSpecForGroupSnapshot: set annotation [{}] on volume snapshot content.",
            utils::ANN_DELETION_SECRET_REF_NAME
        );
        annotations.insert(
            utils::ANN_DELETION_SECRET_REF_NAME.to_string(),
            secret.name.clone().unwrap_or_default(),
        );
        annotations.insert(
            utils::ANN_DELETION_SECRET_REF_NAMESPACE.to_string(),
            secret.namespace.clone().unwrap_or_default(),
        );
    }
    VolumeSnapshotContent {
        metadata: ObjectMeta {
            name: Some(member_content_name(group_uid, volume_handle)),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: VolumeSnapshotContentSpec {
            volume_snapshot_ref: ObjectReference {
                kind: Some("VolumeSnapshot".to_string()),
                name: Some(member_snapshot_name(group_uid, volume_handle)),
                namespace: content.spec.volume_group_snapshot_ref.namespace.clone(),
                ..Default::default()
            },
            deletion_policy: content.spec.deletion_policy.clone(),
            driver: content.spec.driver.clone(),
            source: VolumeSnapshotContentSource {
                volume_handle: Some(volume_handle.to_string()),
                snapshot_handle: None,
            },
            volume_snapshot_class_name: None,
            source_volume_mode: pv
                .and_then(|pv| pv.spec.as_ref())
                .and_then(|s| s.volume_mode.clone()),
        },
        status: None,
    }
}

/// The member snapshot of `volume_handle`: owned by the group snapshot, with the in-group
/// finalizer, its source the claim of the member's PV (empty when the PV is not known).
pub(crate) fn build_member_snapshot(
    group: &VolumeGroupSnapshot,
    content: &VolumeGroupSnapshotContent,
    volume_handle: &str,
    pv: Option<&PersistentVolume>,
) -> VolumeSnapshot {
    let mut snapshot = VolumeSnapshot {
        metadata: ObjectMeta {
            name: Some(member_snapshot_name(uid(&group.metadata), volume_handle)),
            namespace: content.spec.volume_group_snapshot_ref.namespace.clone(),
            owner_references: Some(vec![utils::volume_group_snapshot_owner_reference(group)]),
            finalizers: Some(vec![utils::VOLUME_SNAPSHOT_IN_GROUP_FINALIZER.to_string()]),
            ..Default::default()
        },
        ..Default::default()
    };
    let claim = pv
        .and_then(|pv| pv.spec.as_ref())
        .and_then(|s| s.claim_ref.as_ref())
        .and_then(|r| r.name.clone())
        .unwrap_or_default();
    snapshot.spec.source.persistent_volume_claim_name = Some(claim);
    snapshot
}
