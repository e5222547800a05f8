//! Upstream's `pkg/controller/util.go`: names, the CSI request pieces taken from a
//! PersistentVolume spec, and the two status writes shared by both handlers
//! ([`mark_as_attached`], [`mark_as_detached`]).

use std::collections::BTreeMap;

use csi_proto::csi::v1::VolumeCapability;
use csi_proto::csi::v1::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use k8s_openapi::api::core::v1::{CSIPersistentVolumeSource, PersistentVolumeSpec};
use k8s_openapi::api::storage::v1::{CSINode, VolumeAttachment};
use serde_json::Value;
use tracing::debug;

use crate::kube::{ApiError, KubeClient};
pub use csi_connection::accessmodes::to_csi_access_mode;
use csi_controller::patch::create_merge_patch;
use csi_controller::sanitize_name;

/// The VolumeAttachment annotation holding the CSI node ID the volume was attached to; the
/// last resort for finding the node ID when detaching.
pub const VA_NODE_ID_ANNOTATION: &str = "csi.alpha.kubernetes.io/node-id";

/// The PersistentVolume annotation naming the CSI driver an in-tree volume was migrated to.
pub const ANN_MIGRATED_TO: &str = "pv.kubernetes.io/migrated-to";

/// Upstream's `GetFinalizerName`: `external-attacher/<sanitized driver name>` (its
/// `SanitizeDriverName` is the toolkit's [`sanitize_name`]), used on both
/// VolumeAttachments and PersistentVolumes.
pub fn finalizer_name(driver: &str) -> String {
    format!("external-attacher/{}", sanitize_name(driver))
}

/// Upstream's `GetNodeIDFromCSINode`: the node ID `driver` registered in the CSINode.
pub fn node_id_from_csi_node(driver: &str, csi_node: &CSINode) -> Option<String> {
    csi_node
        .spec
        .drivers
        .iter()
        .find(|d| d.name == driver)
        .map(|d| d.node_id.clone())
}

/// Why no CSI volume capability could be made from a PersistentVolume spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeCapabilityError {
    /// The spec has no CSI source.
    #[error("CSI volume source was nil")]
    NoCsiSource,
    /// The access modes have no CSI equivalent.
    #[error("{0}")]
    AccessModes(String),
}

/// Upstream's `GetVolumeCapabilities`: a block or mount capability (fsType from the PV, else
/// `default_fs_type`; mount options from the PV) with the access mode mapped by
/// [`to_csi_access_mode`].
pub fn volume_capabilities(
    pv_spec: &PersistentVolumeSpec,
    single_node_multi_writer: bool,
    default_fs_type: &str,
) -> Result<VolumeCapability, VolumeCapabilityError> {
    let csi = pv_spec
        .csi
        .as_ref()
        .ok_or(VolumeCapabilityError::NoCsiSource)?;
    let access_type = if pv_spec.volume_mode.as_deref() == Some("Block") {
        AccessType::Block(BlockVolume {})
    } else {
        let mut fs_type = csi.fs_type.clone().unwrap_or_default();
        if fs_type.is_empty() {
            fs_type = default_fs_type.to_string();
            debug!(
                v = 4,
                defaultFSType = %fs_type,
                "Filesystem type not found in PV spec. Using defaultFSType"
            );
        }
        AccessType::Mount(MountVolume {
            fs_type,
            mount_flags: pv_spec.mount_options.clone().unwrap_or_default(),
            volume_mount_group: String::new(),
        })
    };
    let modes = pv_spec.access_modes.as_deref().unwrap_or_default();
    let mode = to_csi_access_mode(modes, single_node_multi_writer)
        .map_err(VolumeCapabilityError::AccessModes)?;
    Ok(VolumeCapability {
        access_type: Some(access_type),
        access_mode: Some(AccessMode { mode: mode.into() }),
    })
}

/// Upstream's `GetVolumeHandle`: the volume handle and the read-only flag.
pub fn volume_handle(csi: &CSIPersistentVolumeSource) -> (String, bool) {
    (csi.volume_handle.clone(), csi.read_only.unwrap_or(false))
}

/// Whether the VolumeAttachment is marked attached.
pub fn is_attached(va: &VolumeAttachment) -> bool {
    va.status.as_ref().is_some_and(|s| s.attached)
}

/// The JSON merge patch from `original` to `modified`, as upstream's `createMergePatch` makes
/// it. A missing `status` counts as `{"attached": false}`, which is how Go serializes an empty
/// status, so that a patch never carries an unchanged `attached`.
pub fn volume_attachment_merge_patch(
    original: &VolumeAttachment,
    modified: &VolumeAttachment,
) -> Result<Value, serde_json::Error> {
    let as_go = |va: &VolumeAttachment| -> Result<Value, serde_json::Error> {
        let mut value = serde_json::to_value(va)?;
        if let Value::Object(map) = &mut value {
            map.entry("status")
                .or_insert_with(|| serde_json::json!({"attached": false}));
        }
        Ok(value)
    };
    Ok(create_merge_patch(&as_go(original)?, &as_go(modified)?))
}

/// [`volume_attachment_merge_patch`] with the error as an [`ApiError`] (the request was never
/// sent).
pub(crate) fn va_patch(
    original: &VolumeAttachment,
    modified: &VolumeAttachment,
) -> Result<Value, ApiError> {
    volume_attachment_merge_patch(original, modified)
        .map_err(|err| ApiError::other(format!("failed to create patch: {err}")))
}

/// Upstream's `markAsAttached`: one merge patch of the status subresource setting
/// `attached: true`, the attachment metadata (the publish context; none when empty) and no
/// `attachError`. Returns the patched object.
pub async fn mark_as_attached(
    client: &dyn KubeClient,
    va: &VolumeAttachment,
    metadata: Option<BTreeMap<String, String>>,
) -> Result<VolumeAttachment, ApiError> {
    let name = va.metadata.name.as_deref().unwrap_or_default();
    debug!(v = 4, VolumeAttachment = name, "Marking as attached");
    let mut clone = va.clone();
    let status = clone.status.get_or_insert_with(Default::default);
    status.attached = true;
    status.attachment_metadata = metadata.filter(|m| !m.is_empty());
    status.attach_error = None;
    let patch = va_patch(va, &clone)?;
    let patched = client.patch_volume_attachment_status(name, &patch).await?;
    debug!(v = 4, VolumeAttachment = name, "Marked as attached");
    Ok(patched)
}

/// A write of [`mark_as_detached`] failed: the error, and the object as far as it got (to
/// save the detach error against).
#[derive(Debug)]
pub struct MarkDetachedError {
    /// The VolumeAttachment after the writes that succeeded.
    pub volume_attachment: Box<VolumeAttachment>,
    /// What failed.
    pub error: ApiError,
}

/// Upstream's `markAsDetached`. First removes the attacher's finalizer (a deleted
/// VolumeAttachment without it counts as detached, whatever the status says), then patches the
/// status: `attached: false`, no `detachError`, no attachment metadata. A status patch that
/// finds the object gone is a success (the API server deleted it when its last finalizer
/// went). Nothing is written when the finalizer is absent and the status says detached.
pub async fn mark_as_detached(
    client: &dyn KubeClient,
    va: &VolumeAttachment,
) -> Result<VolumeAttachment, MarkDetachedError> {
    let name = va.metadata.name.as_deref().unwrap_or_default();
    let finalizer = finalizer_name(&va.spec.attacher);
    let finalizers = va.metadata.finalizers.as_deref().unwrap_or_default();
    let found = finalizers.contains(&finalizer);
    if !found && !is_attached(va) {
        debug!(v = 4, VolumeAttachment = name, "Already fully detached");
        return Ok(va.clone());
    }
    let fail = |va: &VolumeAttachment, error: ApiError| MarkDetachedError {
        volume_attachment: Box::new(va.clone()),
        error,
    };

    let mut current = va.clone();
    if found {
        let remaining: Vec<String> = finalizers
            .iter()
            .filter(|f| **f != finalizer)
            .cloned()
            .collect();
        let mut clone = va.clone();
        clone.metadata.finalizers = (!remaining.is_empty()).then_some(remaining);
        let patch = va_patch(va, &clone).map_err(|e| fail(va, e))?;
        current = client
            .patch_volume_attachment(name, &patch)
            .await
            .map_err(|e| fail(va, e))?;
        debug!(v = 4, VolumeAttachment = name, "Finalizer removed");
    }

    debug!(v = 4, VolumeAttachment = name, "Marking as detached");
    let mut clone = current.clone();
    let status = clone.status.get_or_insert_with(Default::default);
    status.attached = false;
    status.detach_error = None;
    status.attachment_metadata = None;
    let patch = va_patch(&current, &clone).map_err(|e| fail(&current, e))?;
    match client.patch_volume_attachment_status(name, &patch).await {
        Ok(patched) => Ok(patched),
        // The VolumeAttachment has no finalizer left: the API server may have deleted it.
        Err(err) if err.is_not_found() => Ok(current),
        Err(err) => Err(fail(&current, err)),
    }
}
