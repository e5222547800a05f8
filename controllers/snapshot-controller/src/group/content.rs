//! A VolumeGroupSnapshotContent's sync (upstream's `syncGroupSnapshotContent`,
//! `addGroupSnapshotContentFinalizer`) and the creation of the group content of a dynamic
//! group snapshot from the bound claims its label selector picks (`createGroupSnapshotContent`,
//! `getCreateGroupSnapshotInput`, `getVolumesFromVolumeGroupSnapshot`,
//! `getClaimsFromVolumeGroupSnapshot`).

use std::collections::BTreeMap;
use std::sync::Arc;

use csi_crd_types::group_snapshot::v1::{
    VolumeGroupSnapshot, VolumeGroupSnapshotClass, VolumeGroupSnapshotContent,
    VolumeGroupSnapshotContentSource, VolumeGroupSnapshotContentSpec,
};
use csi_kube::EventType;
use csi_snapshot_utils as utils;
use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, SecretReference,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::json;
use tracing::{debug, error, info};

use super::GroupController;
use crate::controller::pvc::{claim_is_bound, volume_bound_to_claim};
use crate::controller::{Result, SyncError, name, namespace};

impl GroupController {
    /// Syncs a group content: validates its source, adds its finalizer once bound, and tells
    /// its group snapshot when its status has news for it.
    pub async fn sync_group_content(&self, content: &VolumeGroupSnapshotContent) -> Result<()> {
        let content_name = name(&content.metadata);
        let group_key = utils::group_snapshot_ref_key(&content.spec.volume_group_snapshot_ref);
        debug!(
            "synchronizing VolumeGroupSnapshotContent[{content_name}]: group snapshot content is bound to group snapshot {group_key}"
        );
        let source = &content.spec.source;
        if source.group_snapshot_handles.is_some() != source.volume_handles.is_empty() {
            let message =
                "Exactly one of GroupSnapshotHandles and VolumeHandles should be specified";
            error!("syncGroupSnapshotContent[{content_name}]: validation error, {message}");
            self.ctrl.events.record(
                content,
                EventType::Warning,
                "GroupContentValidationError",
                message,
            );
            return Err(SyncError::new(message));
        }
        if content
            .spec
            .volume_group_snapshot_ref
            .uid
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            debug!(
                "syncGroupSnapshotContent [{content_name}]: VolumeGroupSnapshotContent is pre-bound to VolumeGroupSnapshot {group_key}"
            );
            return Ok(());
        }
        if utils::need_to_add_group_snapshot_content_finalizer(content) {
            debug!(
                "syncGroupSnapshotContent [{content_name}]: Add Finalizer for VolumeGroupSnapshotContent"
            );
            return self.add_group_content_finalizer(content).await;
        }
        let group = self
            .group_snapshot_store
            .get(&group_key)
            .filter(|g| g.metadata.uid == content.spec.volume_group_snapshot_ref.uid);
        if let Some(group) = group
            && self.needs_update_group_snapshot_status(&group, content)
        {
            debug!(
                "synchronizing VolumeGroupSnapshotContent for group snapshot [{group_key}]: update group snapshot status to true if needed."
            );
            self.group_snapshot_queue.add(group_key);
        }
        Ok(())
    }

    /// Adds the group content finalizer with a JSON patch.
    async fn add_group_content_finalizer(
        &self,
        content: &VolumeGroupSnapshotContent,
    ) -> Result<()> {
        let content_name = name(&content.metadata);
        let patch = if content
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| !f.is_empty())
        {
            json!([{
                "op": "add",
                "path": "/metadata/finalizers/-",
                "value": utils::VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER,
            }])
        } else {
            json!([{
                "op": "add",
                "path": "/metadata/finalizers",
                "value": [utils::VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER],
            }])
        };
        let patched = self
            .api
            .patch_group_content(content_name, &patch)
            .await
            .map_err(|err| SyncError::update(content_name, err))?;
        if let Err(err) = self.store_group_content_update(Arc::new(patched)) {
            error!("failed to update group snapshot content store {err}");
        }
        debug!("Added protection finalizer to volume group snapshot content {content_name}");
        Ok(())
    }

    /// Creates the group content of a dynamic group snapshot: bound to it, with the class's
    /// driver and deletion policy, the volume handles of its claims' PVs, and the deletion
    /// secret annotations. An existing group content of that name is reused.
    pub(crate) async fn create_group_snapshot_content(
        &self,
        group: &VolumeGroupSnapshot,
    ) -> Result<Arc<VolumeGroupSnapshotContent>> {
        let key = utils::group_snapshot_key(group);
        info!(
            "createGroupSnapshotContent: Creating group snapshot content for group snapshot {key} through the plugin ..."
        );
        let (class, volumes, content_name, secret) = self
            .create_group_snapshot_input(group)
            .await
            .map_err(|err| {
                SyncError::new(format!(
                    "failed to get input parameters to create group snapshot {}: {:?}",
                    name(&group.metadata),
                    err.message
                ))
            })?;
        let mut volume_handles = Vec::new();
        for pv in &volumes {
            let pv_name = name(&pv.metadata);
            let Some(csi) = pv.spec.as_ref().and_then(|s| s.csi.as_ref()) else {
                let message =
                    format!("cannot snapshot a non-CSI volume for group snapshot {key}: {pv_name}");
                error!("{message}");
                self.ctrl.events.record(
                    group,
                    EventType::Warning,
                    "CreateGroupSnapshotContentFailed",
                    &format!("Cannot snapshot a non-CSI volume: {pv_name}"),
                );
                return Err(SyncError::new(message));
            };
            if csi.driver != class.driver {
                let message = format!(
                    "Volume CSI driver ({}) mismatch with VolumeGroupSnapshotClass ({}) {key}: {pv_name}",
                    csi.driver, class.driver
                );
                error!("{message}");
                self.ctrl.events.record(
                    group,
                    EventType::Warning,
                    "CreateGroupSnapshotContentFailed",
                    &message,
                );
                return Err(SyncError::update(&key, message));
            }
            volume_handles.push(csi.volume_handle.clone());
        }
        let mut content = VolumeGroupSnapshotContent {
            metadata: ObjectMeta {
                name: Some(content_name.clone()),
                ..Default::default()
            },
            spec: VolumeGroupSnapshotContentSpec {
                volume_group_snapshot_ref: group_snapshot_reference(group),
                source: VolumeGroupSnapshotContentSource {
                    volume_handles,
                    group_snapshot_handles: None,
                },
                volume_group_snapshot_class_name: Some(name(&class.metadata).to_string()),
                deletion_policy: class.deletion_policy.clone(),
                driver: class.driver.clone(),
            },
            status: None,
        };
        if let Some(secret) = secret {
            let annotations = content
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new);
            annotations.insert(
                utils::ANN_DELETION_GROUP_SECRET_REF_NAME.to_string(),
                secret.name.unwrap_or_default(),
            );
            annotations.insert(
                utils::ANN_DELETION_GROUP_SECRET_REF_NAMESPACE.to_string(),
                secret.namespace.unwrap_or_default(),
            );
        }
        debug!(
            "createGroupSnapshotContent [{key}]: trying to save volume group snapshot content {content_name}"
        );
        let created = match self.api.create_group_content(&content).await {
            Ok(created) => created,
            Err(err) if err.is_already_exists() => {
                debug!(
                    "volume group snapshot content {content_name:?} for group snapshot {key:?} already exists, reusing"
                );
                content
            }
            Err(err) => {
                let message = format!(
                    "Error creating volume group snapshot content object for group snapshot {key}: {err}."
                );
                error!("{message}");
                self.ctrl.events.record(
                    group,
                    EventType::Warning,
                    "CreateGroupSnapshotContentFailed",
                    &message,
                );
                return Err(SyncError::update(&key, err));
            }
        };
        self.ctrl.events.record(
            group,
            EventType::Normal,
            "CreatingGroupSnapshot",
            &format!("Waiting for a group snapshot {key} to be created by the CSI driver."),
        );
        let created = Arc::new(created);
        if let Err(err) = self.store_group_content_update(created.clone()) {
            error!("failed to update group snapshot content store {err}");
        }
        Ok(created)
    }

    /// The class, PVs, group content name and deletion secret of a dynamic group snapshot.
    async fn create_group_snapshot_input(
        &self,
        group: &VolumeGroupSnapshot,
    ) -> Result<(
        Arc<VolumeGroupSnapshotClass>,
        Vec<PersistentVolume>,
        String,
        Option<SecretReference>,
    )> {
        let group_name = name(&group.metadata);
        let Some(class_name) = group.spec.volume_group_snapshot_class_name.as_deref() else {
            error!(
                "failed to getCreateGroupSnapshotInput {group_name} without a group snapshot class"
            );
            return Err(SyncError::new(format!(
                "failed to take group snapshot {group_name} without a group snapshot class"
            )));
        };
        let class = self.group_snapshot_class(class_name)?;
        let volumes = self.volumes_from_group_snapshot(group).await?;
        let content_name = utils::dynamic_group_snapshot_content_name(group);
        let secret = utils::group_snapshot_secret_reference(
            &utils::GROUP_SNAPSHOTTER_SECRET_PARAMS,
            &class.parameters.clone().unwrap_or_default(),
            &content_name,
            Some(group),
        )
        .map_err(|err| SyncError::new(err.to_string()))?;
        Ok((class, volumes, content_name, secret))
    }

    /// The PVs of the claims the group snapshot's selector picks: each claim must be bound,
    /// its PV bound back to it.
    pub(crate) async fn volumes_from_group_snapshot(
        &self,
        group: &VolumeGroupSnapshot,
    ) -> Result<Vec<PersistentVolume>> {
        let claims = self.claims_from_group_snapshot(group).await?;
        let mut volumes = Vec::new();
        for pvc in &claims {
            let pvc_name = name(&pvc.metadata);
            if !claim_is_bound(pvc) {
                return Err(SyncError::new(format!(
                    "the PVC {pvc_name} is not yet bound to a PV, will not attempt to take a group snapshot"
                )));
            }
            let pv_name = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.clone())
                .unwrap_or_default();
            let pv = self.api.get_pv(&pv_name).await.map_err(|err| {
                SyncError::new(format!(
                    "failed to retrieve PV {pv_name} from the API server: {:?}",
                    err.message
                ))
            })?;
            if !volume_bound_to_claim(&pv, pvc) {
                tracing::warn!("binding between PV {pv_name} and PVC {pvc_name} is broken");
                return Err(SyncError::new("claim in dataSource not bound or invalid"));
            }
            debug!(
                "getVolumeFromVolumeGroupSnapshot: group snapshot [{}] PV name [{pv_name}]",
                name(&group.metadata)
            );
            volumes.push(pv);
        }
        Ok(volumes)
    }

    /// The claims in the group snapshot's namespace that carry its selector's `matchLabels`
    /// (upstream lists by those labels only); at least one.
    async fn claims_from_group_snapshot(
        &self,
        group: &VolumeGroupSnapshot,
    ) -> Result<Vec<PersistentVolumeClaim>> {
        let selector = group.spec.source.selector.clone().unwrap_or_default();
        let labels = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let claims = self
            .api
            .list_pvcs(namespace(&group.metadata), &labels)
            .await
            .map_err(|err| {
                SyncError::new(format!(
                    "failed to list PVCs with label selector {}: {:?}",
                    format_label_selector(&selector),
                    err.message
                ))
            })?;
        if claims.is_empty() {
            return Err(SyncError::new(format!(
                "label selector {} for group snapshot not applied to any PVC",
                format_label_selector(&selector)
            )));
        }
        Ok(claims)
    }
}

/// client-go's `reference.GetReference` of a group snapshot.
pub(crate) fn group_snapshot_reference(group: &VolumeGroupSnapshot) -> ObjectReference {
    ObjectReference {
        api_version: Some("groupsnapshot.storage.k8s.io/v1".to_string()),
        kind: Some("VolumeGroupSnapshot".to_string()),
        name: group.metadata.name.clone(),
        namespace: group.metadata.namespace.clone(),
        uid: group.metadata.uid.clone(),
        resource_version: group.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// apimachinery's `FormatLabelSelector`: the selector's requirements sorted by key
/// (`k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`), `<none>` when there are none.
pub(crate) fn format_label_selector(selector: &LabelSelector) -> String {
    let mut requirements: Vec<(String, String)> = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        requirements.push((key.clone(), format!("{key}={value}")));
    }
    for expression in selector.match_expressions.iter().flatten() {
        let mut values = expression.values.clone().unwrap_or_default();
        values.sort();
        let key = &expression.key;
        let text = match expression.operator.as_str() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<error>".to_string(),
        };
        requirements.push((key.clone(), text));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    let text = requirements
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",");
    if text.is_empty() {
        "<none>".to_string()
    } else {
        text
    }
}
