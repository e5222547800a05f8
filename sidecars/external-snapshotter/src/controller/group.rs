//! One VolumeGroupSnapshotContent of this driver (upstream's `groupsnapshot_helper.go`):
//! CreateVolumeGroupSnapshot for a dynamic group content, GetVolumeGroupSnapshot until a
//! pre-provisioned one is ready, DeleteVolumeGroupSnapshot with policy Delete, and the
//! snapshot-controller's finalizer taken off afterwards.

use std::collections::{BTreeMap, HashMap};

use csi_controller::secrets::secret_data;
use csi_crd_types::VolumeGroupSnapshotContent;
use csi_crd_types::group_snapshot::v1::VolumeSnapshotInfo;
use csi_crd_types::snapshot::v1::DELETION_POLICY_DELETE;
use csi_kube::EventType;
use csi_proto::csi::v1::Snapshot;
use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tracing::{debug, error, info, trace};

use super::{Reconciler, SyncError, go_quote, now_nanos};
use crate::snapshotter::timestamp_nanos;
use csi_snapshot_utils::{
    ANN_DELETION_GROUP_SECRET_REF_NAME, ANN_DELETION_GROUP_SECRET_REF_NAMESPACE,
    ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED, ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
    GROUP_SNAPSHOTTER_GET_SECRET_PARAMS, PREFIXED_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME_KEY,
    PREFIXED_VOLUME_GROUP_SNAPSHOT_NAME_KEY, PREFIXED_VOLUME_GROUP_SNAPSHOT_NAMESPACE_KEY,
};

mod writes;

type Content = VolumeGroupSnapshotContent;
type Failed = (Content, SyncError);

fn name(content: &Content) -> &str {
    content.metadata.name.as_deref().unwrap_or_default()
}

fn has_annotation(content: &Content, key: &str) -> bool {
    content
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(key))
}

/// Upstream's `groupSnapshotContentIsReady`.
pub fn group_content_is_ready(content: &Content) -> bool {
    content
        .status
        .as_ref()
        .and_then(|s| s.ready_to_use)
        .unwrap_or(false)
}

fn nanos_to_time(nanos: i64) -> Time {
    Time(
        k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(nanos))
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

/// A member of a created group snapshot, as the status lists it.
fn snapshot_info(snapshot: &Snapshot) -> VolumeSnapshotInfo {
    VolumeSnapshotInfo {
        volume_handle: snapshot.source_volume_id.clone(),
        snapshot_handle: snapshot.snapshot_id.clone(),
        creation_time: snapshot
            .creation_time
            .as_ref()
            .map(|t| timestamp_nanos(Some(t))),
        ready_to_use: Some(snapshot.ready_to_use),
        restore_size: (snapshot.size_bytes != 0).then_some(snapshot.size_bytes),
    }
}

impl Reconciler {
    /// Whether `content` is this driver's (upstream's `isDriverMatch` for group contents).
    pub fn is_group_driver_match(&self, content: &Content) -> bool {
        let source = &content.spec.source;
        if source.group_snapshot_handles.is_none() && source.volume_handles.is_empty() {
            return false;
        }
        if content.spec.driver != self.driver_name {
            return false;
        }
        if let Some(class_name) = &content.spec.volume_group_snapshot_class_name
            && let Some(class) = self.listers.group_class(class_name)
            && class.driver != self.driver_name
        {
            return false;
        }
        true
    }

    pub(crate) fn store_group_content(&self, content: &Content) -> Result<bool, String> {
        super::store_update(
            &self.group_versions,
            name(content),
            content.metadata.resource_version.as_deref(),
            "groupsnapshotcontent",
        )
    }

    pub(crate) fn store_group_logged(&self, content: &Content) {
        if let Err(err) = self.store_group_content(content) {
            debug!(content = name(content), %err, "Cannot update internal group snapshot content cache");
        }
    }

    pub(crate) fn forget_group_content(&self, name: &str) -> bool {
        super::lock(&self.group_versions).remove(name).is_some()
    }

    /// The key of the group content queue (upstream's `syncGroupSnapshotContentByKey`).
    pub async fn sync_group_content_by_key(&self, key: &str) -> Result<bool, SyncError> {
        trace!("syncGroupSnapshotContentByKey[{key}]");
        if let Some(content) = self.listers.group_content(key) {
            if !self.is_group_driver_match(&content) {
                return Ok(false);
            }
            return Box::pin(self.update_group_content_in_cache(&content)).await;
        }
        if self.forget_group_content(key) {
            debug!("group snapshot content {key:?} deleted");
        } else {
            debug!("deletion of group snapshot content {key:?} was already processed");
        }
        Ok(false)
    }

    /// Upstream's `updateGroupSnapshotContentInInformerCache`.
    pub(crate) async fn update_group_content_in_cache(
        &self,
        content: &Content,
    ) -> Result<bool, SyncError> {
        match self.store_group_content(content) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(err) => {
                error!("{err}");
                return Ok(false);
            }
        }
        match self.sync_group_content(content).await {
            Ok(requeue) => Ok(requeue),
            Err(err) => {
                if err.conflict {
                    debug!(
                        "could not sync group snapshot content {:?}: {err}",
                        name(content)
                    );
                } else {
                    error!(
                        "could not sync group snapshot content {:?}: {err}",
                        name(content)
                    );
                }
                Err(err)
            }
        }
    }

    /// Upstream's `syncGroupSnapshotContent`: `Ok(requeue)`.
    pub async fn sync_group_content(&self, content: &Content) -> Result<bool, SyncError> {
        trace!(
            "synchronizing VolumeGroupSnapshotContent[{}]",
            name(content)
        );
        if self.should_delete_group(content) {
            if content.spec.deletion_policy == DELETION_POLICY_DELETE
                && content
                    .status
                    .as_ref()
                    .is_some_and(|s| s.volume_group_snapshot_handle.is_some())
            {
                self.delete_csi_group_snapshot(content).await?;
                return Ok(false);
            }
            self.remove_group_finalizer(content).await?;
            return Ok(false);
        }
        if !content.spec.source.volume_handles.is_empty() && content.status.is_none() {
            return self.create_group_snapshot(content).await;
        }
        if group_content_is_ready(content) {
            self.remove_ann_group_being_created(content.clone())
                .await
                .map_err(|(_, err)| err)?;
            return Ok(false);
        }
        self.check_and_update_group_status(content).await
    }

    /// Upstream's `shouldDeleteGroupSnapshotContent`.
    pub(crate) fn should_delete_group(&self, content: &Content) -> bool {
        if content.metadata.deletion_timestamp.is_none() {
            return false;
        }
        let bound = content
            .spec
            .volume_group_snapshot_ref
            .uid
            .as_deref()
            .is_some_and(|uid| !uid.is_empty());
        if content.spec.source.group_snapshot_handles.is_some() && !bound {
            return true;
        }
        if has_annotation(content, ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED) {
            return false;
        }
        has_annotation(content, ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED)
    }

    pub(crate) async fn create_group_snapshot(&self, content: &Content) -> Result<bool, SyncError> {
        match self.create_group_snapshot_wrapper(content.clone()).await {
            Err((latest, err)) => {
                let _ = self
                    .update_group_error_status_with_event(
                        &latest,
                        EventType::Warning,
                        "GroupSnapshotCreationFailed",
                        &format!("Failed to create group snapshot: {err}"),
                    )
                    .await;
                error!(
                    "createGroupSnapshot for groupSnapshotContent [{}]: error occurred in createGroupSnapshotWrapper: {err}",
                    name(content)
                );
                Err(err)
            }
            Ok(latest) => {
                self.store_group_logged(&latest);
                Ok(!group_content_is_ready(&latest))
            }
        }
    }

    pub(crate) async fn check_and_update_group_status(
        &self,
        content: &Content,
    ) -> Result<bool, SyncError> {
        match self.check_and_update_group_operation(content.clone()).await {
            Err((latest, err)) => {
                let _ = self
                    .update_group_error_status_with_event(
                        &latest,
                        EventType::Warning,
                        "GroupSnapshotContentCheckandUpdateFailed",
                        &format!("Failed to check and update group snapshot content: {err}"),
                    )
                    .await;
                error!(
                    "checkandUpdateGroupSnapshotContentStatus [{}]: error occurred {err}",
                    name(content)
                );
                Err(err)
            }
            Ok(latest) => {
                self.store_group_logged(&latest);
                Ok(!group_content_is_ready(&latest))
            }
        }
    }

    /// The group snapshotter secret named by the group content's annotations (upstream's
    /// `GetCredentialsFromAnnotationForGroupSnapshot`).
    pub(crate) async fn group_credentials_from_annotation(
        &self,
        content: &Content,
    ) -> Result<HashMap<String, String>, String> {
        let annotations = content.metadata.annotations.clone().unwrap_or_default();
        let (Some(secret_name), Some(secret_namespace)) = (
            annotations.get(ANN_DELETION_GROUP_SECRET_REF_NAME),
            annotations.get(ANN_DELETION_GROUP_SECRET_REF_NAMESPACE),
        ) else {
            return Ok(HashMap::new());
        };
        if secret_name.is_empty() || secret_namespace.is_empty() {
            return Err(format!(
                "cannot retrieve secrets for group snapshot content {}, err: secret name or namespace not specified",
                go_quote(name(content))
            ));
        }
        let reference = SecretReference {
            name: Some(secret_name.clone()),
            namespace: Some(secret_namespace.clone()),
        };
        match secret_data(self.api.as_ref(), &reference).await {
            Ok(data) => Ok(data.into_map()),
            Err(err) => {
                error!(
                    "Failed to get credentials for group snapshot content {}: {err}",
                    name(content)
                );
                Err(format!(
                    "cannot get credentials for group snapshot content {}",
                    go_quote(name(content))
                ))
            }
        }
    }

    /// Upstream's `deleteCSIGroupSnapshotOperation`: DeleteVolumeGroupSnapshot with the
    /// member snapshot IDs, the status cleared, and the content synced again at once (which
    /// removes the finalizer).
    pub(crate) async fn delete_csi_group_snapshot(
        &self,
        content: &Content,
    ) -> Result<(), SyncError> {
        trace!(
            "deleteCSIGroupSnapshotOperation [{}] started",
            name(content)
        );
        let credentials = match self.group_credentials_from_annotation(content).await {
            Ok(credentials) => credentials,
            Err(err) => {
                self.events.record(
                    content,
                    EventType::Warning,
                    "GroupSnapshotDeleteError",
                    "Failed to get snapshot credentials",
                );
                return Err(SyncError::new(format!(
                    "failed to get input parameters to delete group snapshot for group snapshot content {}: {}",
                    name(content),
                    go_quote(&err)
                )));
            }
        };
        let mut snapshot_ids = Vec::new();
        if let Some(status) = &content.status {
            if !status.volume_snapshot_info_list.is_empty() {
                snapshot_ids = status
                    .volume_snapshot_info_list
                    .iter()
                    .map(|info| info.snapshot_handle.clone())
                    .collect();
            } else if let Some(handles) = &content.spec.source.group_snapshot_handles {
                snapshot_ids = handles.volume_snapshot_handles.clone();
            }
        }
        if let Err(err) = self
            .handler
            .delete_group_snapshot(content, snapshot_ids, credentials)
            .await
        {
            self.events.record(
                content,
                EventType::Warning,
                "GroupSnapshotDeleteError",
                "Failed to delete group snapshot",
            );
            return Err(SyncError::new(format!(
                "failed to delete group snapshot {}, err: {err}",
                go_quote(name(content))
            )));
        }
        let cleared = match self.clear_group_content_status(name(content)).await {
            Ok(cleared) => cleared,
            Err(err) => {
                self.events.record(
                    content,
                    EventType::Warning,
                    "GroupSnapshotDeleteError",
                    "Failed to clear content status",
                );
                return Err(err);
            }
        };
        Box::pin(self.update_group_content_in_cache(&cleared))
            .await
            .map(drop)
    }

    /// Upstream's `createGroupSnapshotWrapper`.
    pub(crate) async fn create_group_snapshot_wrapper(
        &self,
        content: Content,
    ) -> Result<Content, Failed> {
        info!(
            "createGroupSnapshotWrapper: Creating group snapshot for group snapshot content {} through the plugin ...",
            name(&content)
        );
        let (class_parameters, credentials) = match self.csi_group_snapshot_input(&content).await {
            Ok(input) => input,
            Err(err) => {
                let message = format!(
                    "failed to get input parameters to create group snapshot for group snapshot content {}: {}",
                    name(&content),
                    go_quote(&err)
                );
                return Err((content, SyncError::new(message)));
            }
        };
        let content = self
            .set_ann_group_being_created(content)
            .await
            .map_err(|(c, err)| {
                let message = format!(
                    "failed to add VolumeGroupSnapshotBeingCreated annotation on the group snapshot content {}: {}",
                    name(&c),
                    go_quote(&err.to_string())
                );
                (c, SyncError::new(message))
            })?;
        let extra = self.extra_create_metadata.then(|| {
            (
                [
                    PREFIXED_VOLUME_GROUP_SNAPSHOT_NAME_KEY,
                    PREFIXED_VOLUME_GROUP_SNAPSHOT_NAMESPACE_KEY,
                    PREFIXED_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME_KEY,
                ],
                &content.spec.volume_group_snapshot_ref,
                name(&content),
            )
        });
        let parameters = match super::create_parameters(class_parameters, extra) {
            Ok(parameters) => parameters,
            Err(message) => return Err((content, SyncError::new(message))),
        };
        let created = match self
            .handler
            .create_group_snapshot(&content, parameters, credentials)
            .await
        {
            Ok(created) => created,
            Err(err) => {
                info!(
                    "createGroupSnapshotWrapper: CreateGroupSnapshot for groupSnapshotContent {} returned error: {err}",
                    name(&content)
                );
                let mut content = content;
                if err.is_final() {
                    content = match self.remove_ann_group_being_created(content).await {
                        Ok(content) => content,
                        Err((content, remove_err)) => {
                            let message = format!(
                                "failed to remove VolumeGroupSnapshotBeingCreated annotation from the group snapshot content {}: {remove_err}",
                                name(&content)
                            );
                            return Err((content, SyncError::new(message)));
                        }
                    };
                }
                let message = format!(
                    "failed to take group snapshot of the volumes [{}]: {}",
                    content.spec.source.volume_handles.join(" "),
                    go_quote(&err.to_string())
                );
                return Err((content, SyncError::new(message)));
            }
        };
        let creation_time = created.creation_time.unwrap_or_else(now_nanos);
        let content = match self
            .update_group_content_status(
                &content,
                &created.group_snapshot_id,
                created.ready_to_use,
                creation_time,
                &created.snapshots,
            )
            .await
        {
            Ok(updated) => updated,
            Err(err) => {
                let message = format!(
                    "error updating status for volume group snapshot content {}: {err}",
                    name(&content)
                );
                error!("{message}.");
                return Err((content, SyncError::new(message)));
            }
        };
        self.remove_ann_group_being_created(content)
            .await
            .map_err(|(c, err)| {
                let message = format!(
                    "failed to remove VolumeGroupSnapshotBeingCreated annotation on the groupSnapshotContent {}: {}",
                    name(&c),
                    go_quote(&err.to_string())
                );
                (c, SyncError::new(message))
            })
    }

    /// Upstream's `getCSIGroupSnapshotInput`.
    pub(crate) async fn csi_group_snapshot_input(
        &self,
        content: &Content,
    ) -> Result<(Option<BTreeMap<String, String>>, HashMap<String, String>), String> {
        let parameters = match &content.spec.volume_group_snapshot_class_name {
            Some(class_name) => match self.listers.group_class(class_name) {
                Some(class) => Some(class.parameters.clone().unwrap_or_default()),
                None => {
                    return Err(super::class_not_found(
                        "volumegroupsnapshotclass",
                        class_name,
                    ));
                }
            },
            None => {
                if !content.spec.source.volume_handles.is_empty() {
                    return Err(format!(
                        "failed to take group snapshot {} without a group snapshot class",
                        name(content)
                    ));
                }
                None
            }
        };
        let credentials = self.group_credentials_from_annotation(content).await?;
        Ok((parameters, credentials))
    }

    /// Upstream's `checkandUpdateGroupSnapshotContentStatusOperation`.
    pub(crate) async fn check_and_update_group_operation(
        &self,
        content: Content,
    ) -> Result<Content, Failed> {
        let Some(handles) = content.spec.source.group_snapshot_handles.clone() else {
            return self.create_group_snapshot_wrapper(content).await;
        };
        let mut credentials = HashMap::new();
        if let Some(class_name) = &content.spec.volume_group_snapshot_class_name {
            let Some(class) = self.listers.group_class(class_name) else {
                let err = super::class_not_found("volumegroupsnapshotclass", class_name);
                let message = format!(
                    "failed to get group snapshot class {class_name} for group snapshot content {}: {err}",
                    name(&content)
                );
                return Err((content, SyncError::new(message)));
            };
            let parameters = class.parameters.clone().unwrap_or_default();
            let reference = match csi_snapshot_utils::group_snapshot_secret_reference(
                &GROUP_SNAPSHOTTER_GET_SECRET_PARAMS,
                &parameters,
                name(&content),
                None,
            ) {
                Ok(reference) => reference,
                Err(err) => {
                    let message = format!(
                        "failed to get secret reference for group snapshot content {}: {err}",
                        name(&content)
                    );
                    return Err((content, SyncError::new(message)));
                }
            };
            if let Some(reference) = reference {
                match secret_data(self.api.as_ref(), &reference).await {
                    Ok(data) => credentials = data.into_map(),
                    Err(err) => {
                        let message = format!(
                            "failed to get credentials for group snapshot content {}: {err}",
                            name(&content)
                        );
                        return Err((content, SyncError::new(message)));
                    }
                }
            }
        }
        let status = match self
            .handler
            .get_group_snapshot_status(
                &content,
                handles.volume_snapshot_handles.clone(),
                credentials,
            )
            .await
        {
            Ok(status) => status,
            Err(err) => return Err((content, SyncError::new(err.to_string()))),
        };
        let created = status.creation_time.unwrap_or_else(now_nanos);
        self.update_group_content_status(
            &content,
            &handles.volume_group_snapshot_handle,
            status.ready_to_use,
            created,
            &[],
        )
        .await
        .map_err(|err| (content, err))
    }
}
