//! One VolumeSnapshotContent of this driver (upstream's `snapshot_controller.go`): create the
//! snapshot of a dynamic content, poll a content until it is ready, delete the snapshot of a
//! content being deleted with policy Delete, and take the snapshot-controller's finalizer off
//! once that is done — with upstream's annotations, status errors and Events.

use std::collections::HashMap;

use csi_controller::secrets::secret_data;
use csi_crd_types::VolumeSnapshotContent;
use csi_crd_types::snapshot::v1::DELETION_POLICY_DELETE;
use csi_kube::EventType;
use k8s_openapi::api::core::v1::SecretReference;
use tracing::{debug, error, info, trace};

use super::{Reconciler, SyncError, go_quote, now_nanos};
use csi_snapshot_utils::{
    ANN_DELETION_SECRET_REF_NAME, ANN_DELETION_SECRET_REF_NAMESPACE,
    ANN_VOLUME_SNAPSHOT_BEING_CREATED, ANN_VOLUME_SNAPSHOT_BEING_DELETED,
    PREFIXED_VOLUME_SNAPSHOT_CONTENT_NAME_KEY, PREFIXED_VOLUME_SNAPSHOT_NAME_KEY,
    PREFIXED_VOLUME_SNAPSHOT_NAMESPACE_KEY, SNAPSHOTTER_LIST_SECRET_PARAMS,
    VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION,
};

mod writes;

/// A content and what went wrong with it: upstream's operations return the latest content
/// they saw together with their error.
type Failed = (VolumeSnapshotContent, SyncError);

fn name(content: &VolumeSnapshotContent) -> &str {
    content.metadata.name.as_deref().unwrap_or_default()
}

fn has_annotation(content: &VolumeSnapshotContent, key: &str) -> bool {
    content
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(key))
}

/// Whether the snapshot is cut and ready (upstream's `contentIsReady`).
pub fn content_is_ready(content: &VolumeSnapshotContent) -> bool {
    content
        .status
        .as_ref()
        .and_then(|s| s.ready_to_use)
        .unwrap_or(false)
}

impl Reconciler {
    /// Whether `content` is this driver's (upstream's `isDriverMatch`): it has a source, names
    /// this driver, and its class (when cached) does too.
    pub fn is_content_driver_match(&self, content: &VolumeSnapshotContent) -> bool {
        let source = &content.spec.source;
        if source.volume_handle.is_none() && source.snapshot_handle.is_none() {
            return false;
        }
        if content.spec.driver != self.driver_name {
            return false;
        }
        if let Some(class_name) = &content.spec.volume_snapshot_class_name
            && let Some(class) = self.listers.class(class_name)
            && class.driver != self.driver_name
        {
            return false;
        }
        true
    }

    /// Remembers `content` as the newest version seen; `false` if an older one than the
    /// remembered (upstream's `storeContentUpdate`).
    pub(crate) fn store_content(&self, content: &VolumeSnapshotContent) -> Result<bool, String> {
        super::store_update(
            &self.content_versions,
            name(content),
            content.metadata.resource_version.as_deref(),
            "content",
        )
    }

    pub(crate) fn store_content_logged(&self, content: &VolumeSnapshotContent) {
        if let Err(err) = self.store_content(content) {
            debug!(content = name(content), %err, "Cannot update internal content cache");
        }
    }

    /// The key of the content queue, as a worker gets it (upstream's `syncContentByKey`):
    /// `Ok(requeue)`, or an error (then always requeued).
    pub async fn sync_content_by_key(&self, key: &str) -> Result<bool, SyncError> {
        trace!("syncContentByKey[{key}]");
        if let Some(content) = self.listers.content(key) {
            if !self.is_content_driver_match(&content) {
                return Ok(false);
            }
            match self.store_content(&content) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(err) => {
                    error!("{err}");
                    return Ok(false);
                }
            }
            return match self.sync_content(&content).await {
                Ok(requeue) => Ok(requeue),
                Err(err) => {
                    if err.conflict {
                        debug!("could not sync content {key:?}: {err}");
                    } else {
                        error!("could not sync content {key:?}: {err}");
                    }
                    Err(err)
                }
            };
        }
        // Gone from the cache: the event was a deletion.
        if self.forget_content(key) {
            debug!("content {key:?} deleted");
        } else {
            debug!("deletion of content {key:?} was already processed");
        }
        Ok(false)
    }

    pub(crate) fn forget_content(&self, name: &str) -> bool {
        super::lock(&self.content_versions).remove(name).is_some()
    }

    /// Upstream's `syncContent`: `Ok(requeue)`.
    pub async fn sync_content(&self, content: &VolumeSnapshotContent) -> Result<bool, SyncError> {
        trace!("synchronizing VolumeSnapshotContent[{}]", name(content));
        if self.should_delete(content) {
            debug!(
                "VolumeSnapshotContent[{}]: the policy is {}",
                name(content),
                content.spec.deletion_policy
            );
            let mut content = content.clone();
            let status = content.status.as_ref();
            if content.spec.deletion_policy == DELETION_POLICY_DELETE
                && status.is_some_and(|s| {
                    s.snapshot_handle.is_some() && s.volume_group_snapshot_handle.is_none()
                })
            {
                content = self.delete_csi_snapshot(&content).await?;
            }
            self.remove_content_finalizer(&content).await?;
            return Ok(false);
        }
        let group_member = has_annotation(content, VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION);
        if content.spec.source.volume_handle.is_some() && content.status.is_none() && !group_member
        {
            trace!(
                "syncContent: Call CreateSnapshot for content {}",
                name(content)
            );
            return self.create_snapshot(content).await;
        }
        if content_is_ready(content) {
            self.remove_ann_being_created(content.clone())
                .await
                .map_err(|(_, err)| err)?;
            return Ok(false);
        }
        self.check_and_update_content_status(content).await
    }

    /// Upstream's `shouldDelete`.
    pub(crate) fn should_delete(&self, content: &VolumeSnapshotContent) -> bool {
        if content.metadata.deletion_timestamp.is_none() {
            return false;
        }
        let bound = content
            .spec
            .volume_snapshot_ref
            .uid
            .as_deref()
            .is_some_and(|uid| !uid.is_empty());
        if content.spec.source.snapshot_handle.is_some() && !bound {
            return true;
        }
        if has_annotation(content, ANN_VOLUME_SNAPSHOT_BEING_CREATED) {
            return false;
        }
        has_annotation(content, ANN_VOLUME_SNAPSHOT_BEING_DELETED)
    }

    pub(crate) async fn create_snapshot(
        &self,
        content: &VolumeSnapshotContent,
    ) -> Result<bool, SyncError> {
        match self.create_snapshot_wrapper(content.clone()).await {
            Err((latest, err)) => {
                let _ = self
                    .update_content_error_status_with_event(
                        &latest,
                        EventType::Warning,
                        "SnapshotCreationFailed",
                        &format!("Failed to create snapshot: {err}"),
                    )
                    .await;
                error!(
                    "createSnapshot for content [{}]: error occurred in createSnapshotWrapper: {err}",
                    name(content)
                );
                Err(err)
            }
            Ok(latest) => {
                self.store_content_logged(&latest);
                Ok(!content_is_ready(&latest))
            }
        }
    }

    pub(crate) async fn check_and_update_content_status(
        &self,
        content: &VolumeSnapshotContent,
    ) -> Result<bool, SyncError> {
        trace!("checkandUpdateContentStatus[{}] started", name(content));
        match self.check_and_update_operation(content.clone()).await {
            Err((latest, err)) => {
                let _ = self
                    .update_content_error_status_with_event(
                        &latest,
                        EventType::Warning,
                        "SnapshotContentCheckandUpdateFailed",
                        &format!("Failed to check and update snapshot content: {err}"),
                    )
                    .await;
                error!(
                    "checkandUpdateContentStatus [{}]: error occurred {err}",
                    name(content)
                );
                Err(err)
            }
            Ok(latest) => {
                self.store_content_logged(&latest);
                Ok(!content_is_ready(&latest))
            }
        }
    }

    /// The class and the snapshotter secret of a content to create (upstream's
    /// `getCSISnapshotInput`).
    pub(crate) async fn csi_snapshot_input(
        &self,
        content: &VolumeSnapshotContent,
    ) -> Result<
        (
            Option<std::collections::BTreeMap<String, String>>,
            HashMap<String, String>,
        ),
        String,
    > {
        let parameters = match &content.spec.volume_snapshot_class_name {
            Some(class_name) => match self.listers.class(class_name) {
                Some(class) => Some(class.parameters.clone().unwrap_or_default()),
                None => {
                    let err = super::class_not_found("volumesnapshotclass", class_name);
                    error!("getCSISnapshotInput failed to getClassFromVolumeSnapshot {err}");
                    return Err(err);
                }
            },
            None => {
                let group_member = has_annotation(content, VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION);
                if content.spec.source.volume_handle.is_some() && !group_member {
                    return Err(format!(
                        "failed to take snapshot {} without a snapshot class",
                        name(content)
                    ));
                }
                None
            }
        };
        let credentials = self.credentials_from_annotation(content).await?;
        Ok((parameters, credentials))
    }

    /// The snapshotter secret named by the content's deletion-secret annotations (upstream's
    /// `GetCredentialsFromAnnotation`); empty when there are none.
    pub(crate) async fn credentials_from_annotation(
        &self,
        content: &VolumeSnapshotContent,
    ) -> Result<HashMap<String, String>, String> {
        let annotations = content.metadata.annotations.clone().unwrap_or_default();
        let (Some(secret_name), Some(secret_namespace)) = (
            annotations.get(ANN_DELETION_SECRET_REF_NAME),
            annotations.get(ANN_DELETION_SECRET_REF_NAMESPACE),
        ) else {
            return Ok(HashMap::new());
        };
        if secret_name.is_empty() || secret_namespace.is_empty() {
            return Err(format!(
                "cannot retrieve secrets for snapshot content {}, err: secret name or namespace not specified",
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
                    "Failed to get credentials for snapshot {}: {err}",
                    name(content)
                );
                Err(format!(
                    "cannot get credentials for snapshot content {}",
                    go_quote(name(content))
                ))
            }
        }
    }

    /// Upstream's `checkandUpdateContentStatusOperation`: the status of a snapshot that
    /// exists (pre-provisioned, or a group member with its handle) from ListSnapshots, else
    /// CreateSnapshot (which returns the existing snapshot again, as CSI's CreateSnapshot is
    /// idempotent) unless the content is a group member.
    pub(crate) async fn check_and_update_operation(
        &self,
        content: VolumeSnapshotContent,
    ) -> Result<VolumeSnapshotContent, Failed> {
        let status = content.status.as_ref();
        let group_member_with_handle =
            status.is_some_and(|s| s.volume_group_snapshot_handle.is_some());
        let has_handle = content.spec.source.snapshot_handle.is_some()
            || (group_member_with_handle && status.is_some_and(|s| s.snapshot_handle.is_some()));
        if has_handle {
            trace!(
                "checkandUpdateContentStatusOperation: call GetSnapshotStatus for snapshot content [{}]",
                name(&content)
            );
            let mut credentials = HashMap::new();
            if let Some(class_name) = &content.spec.volume_snapshot_class_name {
                let Some(class) = self.listers.class(class_name) else {
                    let err = super::class_not_found("volumesnapshotclass", class_name);
                    let message = format!(
                        "failed to get snapshot class {class_name} for snapshot content {}: {err}",
                        name(&content)
                    );
                    return Err((content, SyncError::new(message)));
                };
                let parameters = class.parameters.clone().unwrap_or_default();
                let reference = match csi_snapshot_utils::secret_reference(
                    &SNAPSHOTTER_LIST_SECRET_PARAMS,
                    &parameters,
                    name(&content),
                    None,
                ) {
                    Ok(reference) => reference,
                    Err(err) => {
                        let message = format!(
                            "failed to get secret reference for snapshot content {}: {err}",
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
                                "failed to get credentials for snapshot content {}: {err}",
                                name(&content)
                            );
                            return Err((content, SyncError::new(message)));
                        }
                    }
                }
            }
            // Members of a group snapshot never have a class: their secret is in the
            // annotations.
            if group_member_with_handle {
                match self.credentials_from_annotation(&content).await {
                    Ok(found) => credentials = found,
                    Err(err) => {
                        let message = format!(
                            "failed to get credentials from annotation for snapshot content {}: {err}",
                            name(&content)
                        );
                        return Err((content, SyncError::new(message)));
                    }
                }
            }
            let found = match self
                .handler
                .get_snapshot_status(&content, credentials)
                .await
            {
                Ok(found) => found,
                Err(err) => {
                    error!(
                        "checkandUpdateContentStatusOperation: failed to call get snapshot status to check whether snapshot is ready to use {}",
                        go_quote(&err.to_string())
                    );
                    return Err((content, SyncError::new(err.to_string())));
                }
            };
            let snapshot_id = content
                .spec
                .source
                .snapshot_handle
                .clone()
                .or_else(|| {
                    content
                        .status
                        .as_ref()
                        .and_then(|s| s.snapshot_handle.clone())
                })
                .unwrap_or_default();
            let created = found.creation_time.unwrap_or_else(now_nanos);
            return self
                .update_snapshot_content_status(
                    &content,
                    &snapshot_id,
                    found.ready_to_use,
                    created,
                    found.size,
                    &found.group_snapshot_id,
                )
                .await
                .map_err(|err| (content, err));
        }
        if has_annotation(&content, VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION) {
            return Ok(content);
        }
        self.create_snapshot_wrapper(content).await
    }

    /// Upstream's `createSnapshotWrapper`: marks the content as being created, calls
    /// CreateSnapshot, writes the status and removes the mark (also after a final error).
    pub(crate) async fn create_snapshot_wrapper(
        &self,
        content: VolumeSnapshotContent,
    ) -> Result<VolumeSnapshotContent, Failed> {
        info!(
            "createSnapshotWrapper: Creating snapshot for content {} through the plugin ...",
            name(&content)
        );
        let (class_parameters, credentials) = match self.csi_snapshot_input(&content).await {
            Ok(input) => input,
            Err(err) => {
                let message = format!(
                    "failed to get input parameters to create snapshot for content {}: {}",
                    name(&content),
                    go_quote(&err)
                );
                return Err((content, SyncError::new(message)));
            }
        };
        let content = self
            .set_ann_being_created(content)
            .await
            .map_err(|(c, err)| {
                let message = format!(
                    "failed to add VolumeSnapshotBeingCreated annotation on the content {}: {}",
                    name(&c),
                    go_quote(&err.to_string())
                );
                (c, SyncError::new(message))
            })?;
        let extra = self.extra_create_metadata.then(|| {
            (
                [
                    PREFIXED_VOLUME_SNAPSHOT_NAME_KEY,
                    PREFIXED_VOLUME_SNAPSHOT_NAMESPACE_KEY,
                    PREFIXED_VOLUME_SNAPSHOT_CONTENT_NAME_KEY,
                ],
                &content.spec.volume_snapshot_ref,
                name(&content),
            )
        });
        let parameters = match super::create_parameters(class_parameters, extra) {
            Ok(parameters) => parameters,
            Err(message) => return Err((content, SyncError::new(message))),
        };
        let created = match self
            .handler
            .create_snapshot(&content, parameters, credentials)
            .await
        {
            Ok(created) => created,
            Err(err) => {
                info!(
                    "createSnapshotWrapper: CreateSnapshot for content {} returned error: {err}",
                    name(&content)
                );
                let mut content = content;
                if err.is_final() {
                    content = match self.remove_ann_being_created(content).await {
                        Ok(content) => content,
                        Err((content, remove_err)) => {
                            let message = format!(
                                "failed to remove VolumeSnapshotBeingCreated annotation from the content {}: {remove_err}",
                                name(&content)
                            );
                            return Err((content, SyncError::new(message)));
                        }
                    };
                }
                let message = format!(
                    "failed to take snapshot of the volume {}: {}",
                    content
                        .spec
                        .source
                        .volume_handle
                        .as_deref()
                        .unwrap_or_default(),
                    go_quote(&err.to_string())
                );
                return Err((content, SyncError::new(message)));
            }
        };
        trace!(
            "Created snapshot: driver {}, snapshotId {}, size {}, readyToUse {}",
            created.driver_name, created.snapshot_id, created.size, created.ready_to_use
        );
        let creation_time = created.creation_time.unwrap_or_else(now_nanos);
        let content = match self
            .update_snapshot_content_status(
                &content,
                &created.snapshot_id,
                created.ready_to_use,
                creation_time,
                created.size,
                "",
            )
            .await
        {
            Ok(updated) => updated,
            Err(err) => {
                error!(
                    "error updating status for volume snapshot content {}: {err}.",
                    name(&content)
                );
                let message = format!(
                    "error updating status for volume snapshot content {}: {err}",
                    name(&content)
                );
                return Err((content, SyncError::new(message)));
            }
        };
        self.remove_ann_being_created(content)
            .await
            .map_err(|(c, err)| {
                let message = format!(
                    "failed to remove VolumeSnapshotBeingCreated annotation on the content {}: {}",
                    name(&c),
                    go_quote(&err.to_string())
                );
                (c, SyncError::new(message))
            })
    }

    /// Upstream's `deleteCSISnapshotOperation`: DeleteSnapshot, then the snapshot fields of
    /// the status cleared (which triggers the sync that removes the finalizer).
    pub(crate) async fn delete_csi_snapshot(
        &self,
        content: &VolumeSnapshotContent,
    ) -> Result<VolumeSnapshotContent, SyncError> {
        trace!("deleteCSISnapshotOperation [{}] started", name(content));
        let credentials = match self.credentials_from_annotation(content).await {
            Ok(credentials) => credentials,
            Err(err) => {
                self.events.record(
                    content,
                    EventType::Warning,
                    "SnapshotDeleteError",
                    "Failed to get snapshot credentials",
                );
                return Err(SyncError::new(format!(
                    "failed to get input parameters to delete snapshot for content {}: {}",
                    name(content),
                    go_quote(&err)
                )));
            }
        };
        if let Err(err) = self.handler.delete_snapshot(content, credentials).await {
            self.events.record(
                content,
                EventType::Warning,
                "SnapshotDeleteError",
                "Failed to delete snapshot",
            );
            return Err(SyncError::new(format!(
                "failed to delete snapshot {}, err: {err}",
                go_quote(name(content))
            )));
        }
        match self.clear_volume_content_status(name(content)).await {
            Ok(cleared) => Ok(cleared),
            Err(err) => {
                self.events.record(
                    content,
                    EventType::Warning,
                    "SnapshotDeleteError",
                    "Failed to clear content status",
                );
                Err(err)
            }
        }
    }
}
