//! A VolumeSnapshot's sync (upstream's `syncSnapshot` and what it calls): validation, the
//! finalizers, binding to a pre-provisioned content or creating the content of a dynamic
//! snapshot, and deletion (the content deleted or kept by its deletion policy).

use std::collections::BTreeMap;
use std::sync::Arc;

use csi_controller::ApiError;
use csi_crd_types::snapshot::v1::{
    DELETION_POLICY_DELETE, VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent,
    VolumeSnapshotContentSource, VolumeSnapshotContentSpec,
};
use csi_kube::EventType;
use csi_snapshot_utils as utils;
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, SecretReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tracing::{debug, error, info};

use super::{Result, SnapshotController, SyncError, name, namespace, uid};
use crate::metrics::{self, OperationKey};

impl SnapshotController {
    /// Syncs a snapshot.
    pub async fn sync_snapshot(&self, snapshot: &VolumeSnapshot) -> Result<()> {
        debug!(
            "synchronizing VolumeSnapshot[{}]: {}",
            utils::snapshot_key(snapshot),
            utils::snapshot_status_for_logging(snapshot)
        );
        if let Err(err) = self.check_and_remove_pvc_finalizer(snapshot, false).await {
            error!(
                "error check and remove PVC finalizer for snapshot [{}]: {err}",
                name(&snapshot.metadata)
            );
            self.events.record(
                snapshot,
                EventType::Warning,
                "ErrorPVCFinalizer",
                "Error check and remove PVC Finalizer for VolumeSnapshot",
            );
        }
        if snapshot.metadata.deletion_timestamp.is_some() {
            return self
                .process_snapshot_with_deletion_timestamp(snapshot)
                .await;
        }
        let source = &snapshot.spec.source;
        if source.persistent_volume_claim_name.is_some()
            == source.volume_snapshot_content_name.is_some()
        {
            let message = "Exactly one of PersistentVolumeClaimName and VolumeSnapshotContentName should be specified";
            error!(
                "syncSnapshot[{}]: validation error, {message}",
                utils::snapshot_key(snapshot)
            );
            let _ = self
                .update_snapshot_error_status_with_event(
                    snapshot,
                    true,
                    EventType::Warning,
                    "SnapshotValidationError",
                    message,
                )
                .await;
            return Err(SyncError::new(message));
        }
        if let Err(err) = self.check_and_add_snapshot_finalizers(snapshot).await {
            error!(
                "error check and add Snapshot finalizers for snapshot [{}]: {err}",
                name(&snapshot.metadata)
            );
            self.events.record(
                snapshot,
                EventType::Warning,
                "SnapshotFinalizerError",
                &format!("Failed to check and update snapshot: {err}"),
            );
            return Err(err);
        }
        if !utils::is_snapshot_ready(snapshot)
            || !utils::is_bound_volume_snapshot_content_name_set(snapshot)
        {
            return self.sync_unready_snapshot(snapshot).await;
        }
        self.sync_ready_snapshot(snapshot).await
    }

    fn provision_type(snapshot: &VolumeSnapshot) -> &'static str {
        if snapshot.spec.source.volume_snapshot_content_name.is_some() {
            metrics::PRE_PROVISIONED
        } else {
            metrics::DYNAMIC
        }
    }

    /// A snapshot being deleted: find its content, then remove the finalizers and delete
    /// the content by its deletion policy.
    async fn process_snapshot_with_deletion_timestamp(
        &self,
        snapshot: &VolumeSnapshot,
    ) -> Result<()> {
        let driver = self.snapshot_driver_name(snapshot);
        self.metrics.operation_start(
            OperationKey::new(metrics::DELETE_SNAPSHOT, uid(&snapshot.metadata)),
            &driver,
            Self::provision_type(snapshot),
        );
        let mut content_name = snapshot
            .status
            .as_ref()
            .and_then(|s| s.bound_volume_snapshot_content_name.clone())
            .unwrap_or_default();
        if content_name.is_empty() && snapshot.spec.source.persistent_volume_claim_name.is_some() {
            content_name = utils::dynamic_snapshot_content_name(snapshot);
        }
        let content = self
            .content_store
            .get(&content_name)
            .filter(|c| utils::is_volume_snapshot_ref_set(snapshot, c));
        let delete_content = content
            .as_ref()
            .is_some_and(|c| c.spec.deletion_policy == DELETION_POLICY_DELETE);
        self.check_and_remove_snapshot_finalizers_and_delete_content(
            snapshot,
            content,
            delete_content,
        )
        .await
    }

    async fn check_and_remove_snapshot_finalizers_and_delete_content(
        &self,
        snapshot: &VolumeSnapshot,
        content: Option<Arc<VolumeSnapshotContent>>,
        delete_content: bool,
    ) -> Result<()> {
        if !utils::is_snapshot_deletion_candidate(snapshot) {
            return Ok(());
        }
        if content.is_some() && self.volume_being_created_from_snapshot(snapshot) {
            self.events.record(
                snapshot,
                EventType::Warning,
                "SnapshotDeletePending",
                "Snapshot is being used to restore a PVC",
            );
            return Err(SyncError::new(format!(
                "snapshot {} is in use (being used to restore a PVC), will retry deletion",
                utils::snapshot_key(snapshot)
            )));
        }
        let mut remove_group_finalizer = false;
        if let Some(group_name) = snapshot
            .status
            .as_ref()
            .and_then(|s| s.volume_group_snapshot_name.as_deref())
        {
            if let Some(group) = self
                .listers
                .group_snapshot(namespace(&snapshot.metadata), group_name)
            {
                let message = format!(
                    "deletion of the individual volume snapshot {} is not allowed as it belongs to group snapshot {}. Deleting the group snapshot will trigger the deletion of all the individual volume snapshots that are part of the group.",
                    utils::snapshot_key(snapshot),
                    utils::group_snapshot_key(&group)
                );
                error!("{message}");
                self.events.record(
                    snapshot,
                    EventType::Warning,
                    "SnapshotDeletePending",
                    &message,
                );
                return Err(SyncError::new(message));
            }
            remove_group_finalizer = true;
        }
        let mut content = content;
        if let Some(c) = &content {
            content = Some(self.set_ann_volume_snapshot_being_deleted(c).await?);
        }
        if let Some(c) = &content
            && delete_content
        {
            let content_name = name(&c.metadata);
            debug!(
                "checkandRemoveSnapshotFinalizersAndCheckandDeleteContent: set DeletionTimeStamp on content [{content_name}]."
            );
            if let Err(err) = self.api.delete_content(content_name).await
                && !err.is_not_found()
            {
                self.events.record(
                    snapshot,
                    EventType::Warning,
                    "SnapshotContentObjectDeleteError",
                    "Failed to delete snapshot content API object",
                );
                return Err(SyncError::new(format!(
                    "failed to delete VolumeSnapshotContent {content_name} from API server: {:?}",
                    err.message
                )));
            }
        }
        let remove_bound = !(content.is_some() && delete_content);
        self.remove_snapshot_finalizer(snapshot, true, remove_bound, remove_group_finalizer)
            .await
    }

    /// Adds the as-source finalizer, and the bound finalizer once bound to a content with
    /// deletion policy Delete.
    async fn check_and_add_snapshot_finalizers(&self, snapshot: &VolumeSnapshot) -> Result<()> {
        let content = if snapshot.spec.source.volume_snapshot_content_name.is_some() {
            self.preprovisioned_content_from_store(snapshot).await?
        } else {
            self.dynamic_content_from_store(snapshot).await?
        };
        let add_source = utils::need_to_add_snapshot_as_source_finalizer(snapshot);
        let add_bound = content.is_some_and(|c| {
            utils::need_to_add_snapshot_bound_finalizer(snapshot)
                && c.spec.deletion_policy == DELETION_POLICY_DELETE
        });
        if add_source || add_bound {
            return self
                .add_snapshot_finalizer(snapshot, add_source, add_bound)
                .await;
        }
        Ok(())
    }

    /// A ready, bound snapshot: check that its content still exists and points back at it;
    /// give a group member its owner reference.
    async fn sync_ready_snapshot(&self, snapshot: &VolumeSnapshot) -> Result<()> {
        let Some(content_name) = snapshot
            .status
            .as_ref()
            .and_then(|s| s.bound_volume_snapshot_content_name.clone())
            .filter(|n| !n.is_empty())
        else {
            return Err(SyncError::new(format!(
                "snapshot {} is not bound to a content",
                utils::snapshot_key(snapshot)
            )));
        };
        let Some(content) = self.content_store.get(&content_name) else {
            return self
                .update_snapshot_error_status_with_event(
                    snapshot,
                    true,
                    EventType::Warning,
                    "SnapshotContentMissing",
                    "VolumeSnapshotContent is missing",
                )
                .await;
        };
        if !utils::is_volume_snapshot_ref_set(snapshot, &content) {
            return self
                .update_snapshot_error_status_with_event(
                    snapshot,
                    true,
                    EventType::Warning,
                    "SnapshotMisbound",
                    "VolumeSnapshotContent is not bound to the VolumeSnapshot correctly",
                )
                .await;
        }
        if utils::need_to_add_volume_group_snapshot_ownership(Some(snapshot)) {
            self.add_volume_group_snapshot_ownership(snapshot).await?;
        }
        Ok(())
    }

    /// Adds the owner reference of the group snapshot the member names in its status.
    async fn add_volume_group_snapshot_ownership(&self, snapshot: &VolumeSnapshot) -> Result<()> {
        let Some(group_name) = snapshot
            .status
            .as_ref()
            .and_then(|s| s.volume_group_snapshot_name.clone())
        else {
            return Ok(());
        };
        let Some(group) = self
            .listers
            .group_snapshot(namespace(&snapshot.metadata), &group_name)
        else {
            return Err(ApiError::not_found(
                "volumegroupsnapshot.groupsnapshot.storage.k8s.io",
                &group_name,
            )
            .into());
        };
        let mut updated = snapshot.clone();
        updated
            .metadata
            .owner_references
            .get_or_insert_with(Vec::new)
            .push(utils::volume_group_snapshot_owner_reference(&group));
        self.api.update_snapshot(&updated).await?;
        Ok(())
    }

    /// A snapshot not ready or not bound yet: bind it to its pre-provisioned content, wait
    /// for a group member's content, bind it to the content created for it, or create that
    /// content.
    pub(crate) async fn sync_unready_snapshot(&self, snapshot: &VolumeSnapshot) -> Result<()> {
        let key = utils::snapshot_key(snapshot);
        let driver = self.snapshot_driver_name(snapshot);
        let provision_type = Self::provision_type(snapshot);
        let snapshot_uid = uid(&snapshot.metadata);
        if !utils::is_snapshot_created(snapshot) {
            self.metrics.operation_start(
                OperationKey::new(metrics::CREATE_SNAPSHOT, snapshot_uid),
                &driver,
                provision_type,
            );
        }
        self.metrics.operation_start(
            OperationKey::new(metrics::CREATE_SNAPSHOT_AND_READY, snapshot_uid),
            &driver,
            provision_type,
        );

        if let Some(wanted) = snapshot.spec.source.volume_snapshot_content_name.clone() {
            let Some(content) = self.preprovisioned_content_from_store(snapshot).await? else {
                let _ = self
                    .update_snapshot_error_status_with_event(
                        snapshot,
                        true,
                        EventType::Warning,
                        "SnapshotContentMissing",
                        "VolumeSnapshotContent is missing",
                    )
                    .await;
                return Err(SyncError::new(format!(
                    "snapshot {key} requests an non-existing content {wanted}"
                )));
            };
            let new_content = match self
                .check_and_bind_snapshot_content(snapshot, &content)
                .await
            {
                Ok(c) => c,
                Err(err) => {
                    let _ = self
                        .update_snapshot_error_status_with_event(
                            snapshot,
                            true,
                            EventType::Warning,
                            "SnapshotBindFailed",
                            &format!("Snapshot failed to bind VolumeSnapshotContent, {err}"),
                        )
                        .await;
                    return Err(SyncError::new(format!(
                        "snapshot {key} is bound, but VolumeSnapshotContent {} is not bound to the VolumeSnapshot correctly, {err}",
                        name(&content.metadata)
                    )));
                }
            };
            if let Err(err) = self.update_snapshot_status(snapshot, &new_content).await {
                let _ = self
                    .update_snapshot_error_status_with_event(
                        snapshot,
                        false,
                        EventType::Warning,
                        "SnapshotStatusUpdateFailed",
                        &format!("Snapshot status update failed, {err}"),
                    )
                    .await;
                return Err(err);
            }
            return Ok(());
        }

        if utils::is_volume_group_snapshot_member(Some(snapshot)) {
            let Some(content_name) = snapshot
                .status
                .as_ref()
                .and_then(|s| s.bound_volume_snapshot_content_name.clone())
            else {
                debug!(
                    "syncUnreadySnapshot [{key}]: detected group snapshot member with no content, retrying"
                );
                return Err(SyncError::new(format!(
                    "detected group snapshot member {key} with no content, retrying"
                )));
            };
            let Some(content) = self.content_store.get(&content_name) else {
                return Err(SyncError::new(format!(
                    "group snapshot member {key} requests an non-existing content {content_name}"
                )));
            };
            if let Err(err) = self.update_snapshot_status(snapshot, &content).await {
                let _ = self
                    .update_snapshot_error_status_with_event(
                        snapshot,
                        false,
                        EventType::Warning,
                        "SnapshotStatusUpdateFailed",
                        &format!("Snapshot status update failed, {err}"),
                    )
                    .await;
                return Err(err);
            }
            return Ok(());
        }

        if let Some(content) = self.dynamic_content_from_store(snapshot).await? {
            if content.spec.source.snapshot_handle.is_some() {
                let _ = self
                    .update_snapshot_error_status_with_event(
                        snapshot,
                        true,
                        EventType::Warning,
                        "SnapshotHandleSet",
                        &format!(
                            "Snapshot handle should not be set in content {key} for dynamic provisioning"
                        ),
                    )
                    .await;
                return Err(SyncError::new(format!(
                    "snapshotHandle should not be set in the content for dynamic provisioning for snapshot {key}"
                )));
            }
            self.bind_and_update_volume_snapshot(&content, snapshot)
                .await?;
            return Ok(());
        }

        if snapshot.spec.source.persistent_volume_claim_name.is_none() {
            let _ = self
                .update_snapshot_error_status_with_event(
                    snapshot,
                    true,
                    EventType::Warning,
                    "SnapshotPVCSourceMissing",
                    &format!("PVC source for snapshot {key} is missing"),
                )
                .await;
            return Err(SyncError::new(format!(
                "expected PVC source for snapshot {key} but got nil"
            )));
        }
        let content = match self.create_snapshot_content(snapshot).await {
            Ok(content) => content,
            Err(err) => {
                let _ = self
                    .update_snapshot_error_status_with_event(
                        snapshot,
                        true,
                        EventType::Warning,
                        "SnapshotContentCreationFailed",
                        &format!("Failed to create snapshot content with error {err}"),
                    )
                    .await;
                return Err(err);
            }
        };
        if let Err(err) = self.update_snapshot_status(snapshot, &content).await {
            let _ = self
                .update_snapshot_error_status_with_event(
                    snapshot,
                    false,
                    EventType::Warning,
                    "SnapshotStatusUpdateFailed",
                    &format!("Snapshot status update failed, {err}"),
                )
                .await;
            return Err(err);
        }
        Ok(())
    }

    /// The pre-provisioned content the snapshot names, checked: it must be pre-provisioned
    /// and point at this snapshot (or at no UID yet).
    async fn preprovisioned_content_from_store(
        &self,
        snapshot: &VolumeSnapshot,
    ) -> Result<Option<Arc<VolumeSnapshotContent>>> {
        let content_name = snapshot
            .spec
            .source
            .volume_snapshot_content_name
            .clone()
            .unwrap_or_default();
        if content_name.is_empty() {
            return Err(SyncError::new(format!(
                "empty VolumeSnapshotContentName for snapshot {}",
                utils::snapshot_key(snapshot)
            )));
        }
        let Some(content) = self.content_store.get(&content_name) else {
            return Ok(None);
        };
        if content.spec.source.snapshot_handle.is_none() {
            let _ = self
                .update_snapshot_error_status_with_event(
                    snapshot,
                    true,
                    EventType::Warning,
                    "SnapshotContentMismatch",
                    "VolumeSnapshotContent is dynamically provisioned while expecting a pre-provisioned one",
                )
                .await;
            return Err(SyncError::new(format!(
                "snapshot {} expects a pre-provisioned VolumeSnapshotContent {content_name} but gets a dynamically provisioned one",
                utils::snapshot_key(snapshot)
            )));
        }
        let reference = &content.spec.volume_snapshot_ref;
        let ref_uid = reference.uid.as_deref().unwrap_or_default();
        if reference.name.as_deref().unwrap_or_default() != name(&snapshot.metadata)
            || reference.namespace.as_deref().unwrap_or_default() != namespace(&snapshot.metadata)
            || (!ref_uid.is_empty() && ref_uid != uid(&snapshot.metadata))
        {
            let message =
                format!("VolumeSnapshotContent [{content_name}] is bound to a different snapshot");
            let _ = self
                .update_snapshot_error_status_with_event(
                    snapshot,
                    true,
                    EventType::Warning,
                    "SnapshotContentMisbound",
                    &message,
                )
                .await;
            return Err(SyncError::new(message));
        }
        Ok(Some(content))
    }

    /// The content created for a dynamic snapshot (`snapcontent-<uid>`), checked: it must be
    /// dynamic and point at this snapshot.
    async fn dynamic_content_from_store(
        &self,
        snapshot: &VolumeSnapshot,
    ) -> Result<Option<Arc<VolumeSnapshotContent>>> {
        let content_name = utils::dynamic_snapshot_content_name(snapshot);
        let Some(content) = self.content_store.get(&content_name) else {
            return Ok(None);
        };
        if content.spec.source.volume_handle.is_none() {
            let _ = self
                .update_snapshot_error_status_with_event(
                    snapshot,
                    true,
                    EventType::Warning,
                    "SnapshotContentMismatch",
                    &format!("VolumeSnapshotContent {content_name} is pre-provisioned while expecting a dynamically provisioned one"),
                )
                .await;
            return Err(SyncError::new(format!(
                "snapshot {} expects a dynamically provisioned VolumeSnapshotContent {content_name} but gets a pre-provisioned one",
                utils::snapshot_key(snapshot)
            )));
        }
        let reference = &content.spec.volume_snapshot_ref;
        if reference.name.as_deref().unwrap_or_default() != name(&snapshot.metadata)
            || reference.namespace.as_deref().unwrap_or_default() != namespace(&snapshot.metadata)
            || reference.uid.as_deref().unwrap_or_default() != uid(&snapshot.metadata)
        {
            let message =
                format!("VolumeSnapshotContent [{content_name}] is bound to a different snapshot");
            let _ = self
                .update_snapshot_error_status_with_event(
                    snapshot,
                    true,
                    EventType::Warning,
                    "SnapshotContentMisbound",
                    &message,
                )
                .await;
            return Err(SyncError::new(message));
        }
        Ok(Some(content))
    }

    /// Creates the content of a dynamic snapshot (after the PVC's finalizer): bound to the
    /// snapshot, with the class's driver and deletion policy, the source volume handle (and
    /// mode), the managed-by node, and the deletion secret annotations. An existing content
    /// of that name is reused.
    async fn create_snapshot_content(
        &self,
        snapshot: &VolumeSnapshot,
    ) -> Result<Arc<VolumeSnapshotContent>> {
        let key = utils::snapshot_key(snapshot);
        info!("createSnapshotContent: Creating content for snapshot {key} through the plugin ...");
        self.ensure_pvc_finalizer(snapshot)
            .await
            .inspect_err(|err| {
                error!(
                    "createSnapshotContent failed to add finalizer for source of snapshot {err}"
                );
            })?;
        let (class, volume, content_name, secret) =
            self.create_snapshot_input(snapshot).await.map_err(|err| {
                SyncError::new(format!(
                    "failed to get input parameters to create snapshot {}: {:?}",
                    name(&snapshot.metadata),
                    err.message
                ))
            })?;
        let Some(csi) = volume.spec.as_ref().and_then(|s| s.csi.as_ref()) else {
            return Err(SyncError::new(format!(
                "cannot find CSI PersistentVolumeSource for volume {}",
                name(&volume.metadata)
            )));
        };
        let mut content = VolumeSnapshotContent {
            metadata: ObjectMeta {
                name: Some(content_name.clone()),
                ..Default::default()
            },
            spec: VolumeSnapshotContentSpec {
                volume_snapshot_ref: snapshot_reference(snapshot),
                source: VolumeSnapshotContentSource {
                    volume_handle: Some(csi.volume_handle.clone()),
                    snapshot_handle: None,
                },
                volume_snapshot_class_name: Some(name(&class.metadata).to_string()),
                deletion_policy: class.deletion_policy.clone(),
                driver: class.driver.clone(),
                source_volume_mode: None,
            },
            status: None,
        };
        if self.config.enable_distributed_snapshotting {
            let node = self.managed_by_node(&volume);
            if !node.is_empty() {
                content.metadata.labels = Some(BTreeMap::from([(
                    utils::VOLUME_SNAPSHOT_CONTENT_MANAGED_BY_LABEL.to_string(),
                    node,
                )]));
            }
        }
        if self.config.prevent_volume_mode_conversion
            && let Some(mode) = volume.spec.as_ref().and_then(|s| s.volume_mode.clone())
        {
            content.spec.source_volume_mode = Some(mode);
        }
        if let Some(secret) = secret {
            let annotations = content
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new);
            annotations.insert(
                utils::ANN_DELETION_SECRET_REF_NAME.to_string(),
                secret.name.unwrap_or_default(),
            );
            annotations.insert(
                utils::ANN_DELETION_SECRET_REF_NAMESPACE.to_string(),
                secret.namespace.unwrap_or_default(),
            );
        }
        let created = match self.api.create_content(&content).await {
            Ok(created) => created,
            Err(err) if err.is_already_exists() => {
                debug!(
                    "volume snapshot content {content_name:?} for snapshot {key:?} already exists, reusing"
                );
                content
            }
            Err(err) => {
                let message = format!(
                    "Error creating volume snapshot content object for snapshot {key}: {err}."
                );
                error!("{message}");
                self.events.record(
                    snapshot,
                    EventType::Warning,
                    "CreateSnapshotContentFailed",
                    &message,
                );
                return Err(SyncError::update(&key, err));
            }
        };
        self.events.record(
            snapshot,
            EventType::Normal,
            "CreatingSnapshot",
            &format!("Waiting for a snapshot {key} to be created by the CSI driver."),
        );
        let created = Arc::new(created);
        if let Err(err) = self.store_content_update(created.clone()) {
            error!("failed to update content store {err}");
        }
        Ok(created)
    }

    /// The class, source PV, content name and deletion secret of a dynamic snapshot.
    async fn create_snapshot_input(
        &self,
        snapshot: &VolumeSnapshot,
    ) -> Result<(
        Arc<VolumeSnapshotClass>,
        PersistentVolume,
        String,
        Option<SecretReference>,
    )> {
        let Some(class_name) = snapshot.spec.volume_snapshot_class_name.as_deref() else {
            error!(
                "failed to getCreateSnapshotInput {} without a snapshot class",
                name(&snapshot.metadata)
            );
            return Err(SyncError::new(format!(
                "failed to take snapshot {} without a snapshot class",
                name(&snapshot.metadata)
            )));
        };
        let class = self.snapshot_class(class_name)?;
        let volume = self.volume_from_snapshot(snapshot).await?;
        let content_name = utils::dynamic_snapshot_content_name(snapshot);
        let secret = utils::secret_reference(
            &utils::SNAPSHOTTER_SECRET_PARAMS,
            &class.parameters.clone().unwrap_or_default(),
            &content_name,
            Some(snapshot),
        )
        .map_err(|err| SyncError::new(err.to_string()))?;
        Ok((class, volume, content_name, secret))
    }
}

/// client-go's `reference.GetReference` of a snapshot.
fn snapshot_reference(snapshot: &VolumeSnapshot) -> ObjectReference {
    ObjectReference {
        api_version: Some("snapshot.storage.k8s.io/v1".to_string()),
        kind: Some("VolumeSnapshot".to_string()),
        name: snapshot.metadata.name.clone(),
        namespace: snapshot.metadata.namespace.clone(),
        uid: snapshot.metadata.uid.clone(),
        resource_version: snapshot.metadata.resource_version.clone(),
        field_path: None,
    }
}
