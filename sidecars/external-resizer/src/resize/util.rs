//! Upstream's `pkg/util` for expansion: annotations, Event reasons, the PVC condition merges
//! (modification's too), the PVC status patch, sizes, and how a CSI error is classified.

use csi_controller::patch::create_merge_patch;
pub use csi_controller::quantity::{bytes_to_quantity, cmp_quantity, quantity_value};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimCondition};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;
use tonic::Code;

/// The PV annotation holding the PVC's status capacity before an expansion that needs the
/// node to finish (written with AnnotateFsResize when the file system must grow; the PV
/// controller reads it when it binds a claim, and it is removed once the node is done).
pub const ANN_PRE_RESIZE_CAPACITY: &str = "volume.alpha.kubernetes.io/pre-resize-capacity";

/// The PVC annotation telling the kubelet that no node expansion is needed.
pub const ANN_NODE_EXPANSION_NOT_REQUIRED: &str =
    "volume.kubernetes.io/node-expansion-not-required";

/// The PVC annotation naming the resizer (the CSI driver, or the in-tree plugin).
pub const ANN_VOLUME_RESIZER: &str = "volume.kubernetes.io/storage-resizer";

/// The `storage` resource name.
pub const STORAGE: &str = "storage";

/// Event reasons of expansion, as upstream's.
pub mod reasons {
    /// Normal: the resizer starts expanding the volume.
    pub const VOLUME_RESIZING: &str = "Resizing";
    /// Warning: the expansion failed.
    pub const VOLUME_RESIZE_FAILED: &str = "VolumeResizeFailed";
    /// Normal: the expansion is complete.
    pub const VOLUME_RESIZE_SUCCESS: &str = "VolumeResizeSuccessful";
    /// Normal: the node must now grow the file system.
    pub const FILE_SYSTEM_RESIZE_REQUIRED: &str = "FileSystemResizeRequired";
}

/// PVC condition types and `allocatedResourceStatuses` values used by expansion.
pub mod conditions {
    /// The controller is expanding the volume.
    pub const RESIZING: &str = "Resizing";
    /// The controller is done; the node must grow the file system.
    pub const FILE_SYSTEM_RESIZE_PENDING: &str = "FileSystemResizePending";
    /// The controller's expansion failed.
    pub const CONTROLLER_RESIZE_ERROR: &str = "ControllerResizeError";
    /// The node's expansion failed.
    pub const NODE_RESIZE_ERROR: &str = "NodeResizeError";

    /// `allocatedResourceStatuses`: the controller expansion is in progress.
    pub const CONTROLLER_RESIZE_IN_PROGRESS: &str = "ControllerResizeInProgress";
    /// `allocatedResourceStatuses`: the controller expansion failed as infeasible.
    pub const CONTROLLER_RESIZE_INFEASIBLE: &str = "ControllerResizeInfeasible";
    /// `allocatedResourceStatuses`: the node must expand.
    pub const NODE_RESIZE_PENDING: &str = "NodeResizePending";
    /// `allocatedResourceStatuses`: the node is expanding.
    pub const NODE_RESIZE_IN_PROGRESS: &str = "NodeResizeInProgress";
    /// `allocatedResourceStatuses`: the node expansion failed as infeasible.
    pub const NODE_RESIZE_INFEASIBLE: &str = "NodeResizeInfeasible";
}

/// The message of the `FileSystemResizePending` condition.
pub const FS_RESIZE_PENDING_MESSAGE: &str =
    "Waiting for user to (re-)start a pod to finish file system resize of volume on node.";

fn is_resize_condition(kind: &str) -> bool {
    matches!(
        kind,
        conditions::RESIZING
            | conditions::FILE_SYSTEM_RESIZE_PENDING
            | conditions::CONTROLLER_RESIZE_ERROR
            | conditions::NODE_RESIZE_ERROR
    )
}

/// Upstream's `MergeResizeConditionsOfPVC`: the conditions that are not about resizing stay;
/// a resize condition is replaced by a new one of its type, dropped unless
/// `keep_old_resize_conditions`; new conditions of other types are appended.
pub fn merge_resize_conditions(
    old: &[PersistentVolumeClaimCondition],
    new: &[PersistentVolumeClaimCondition],
    keep_old_resize_conditions: bool,
) -> Vec<PersistentVolumeClaimCondition> {
    let mut remaining: Vec<&PersistentVolumeClaimCondition> = new.iter().collect();
    let mut result = Vec::new();
    for condition in old {
        if !is_resize_condition(&condition.type_) {
            result.push(condition.clone());
            continue;
        }
        if let Some(at) = remaining.iter().position(|c| c.type_ == condition.type_) {
            result.push(remaining.remove(at).clone());
        } else if keep_old_resize_conditions {
            result.push(condition.clone());
        }
    }
    result.extend(remaining.into_iter().cloned());
    result
}

/// Upstream's `MergePVCConditions` (used by modification): a condition of a new type replaces
/// the old one of its type, keeping the old `lastTransitionTime` unless the reason or status
/// changed (then it is the new `lastProbeTime`); the other old conditions stay; new types are
/// appended in order with `lastTransitionTime` = `lastProbeTime`.
pub fn merge_pvc_conditions(
    old: &[PersistentVolumeClaimCondition],
    new: &[PersistentVolumeClaimCondition],
) -> Vec<PersistentVolumeClaimCondition> {
    let mut result = Vec::with_capacity(old.len() + new.len());
    let mut pending: Vec<Option<&PersistentVolumeClaimCondition>> = new.iter().map(Some).collect();
    for existing in old {
        let replacement = pending
            .iter_mut()
            .find(|c| matches!(c, Some(c) if c.type_ == existing.type_))
            .and_then(Option::take);
        match replacement {
            None => result.push(existing.clone()),
            Some(replacement) => {
                let mut replacement = replacement.clone();
                replacement.last_transition_time = if replacement.reason != existing.reason
                    || replacement.status != existing.status
                {
                    replacement.last_probe_time.clone()
                } else {
                    existing.last_transition_time.clone()
                };
                result.push(replacement);
            }
        }
    }
    for added in pending.into_iter().flatten() {
        let mut added = added.clone();
        added.last_transition_time = added.last_probe_time.clone();
        result.push(added);
    }
    result
}

/// Upstream's `GetPVCPatchData`: the patch from `old` to `new` (a JSON merge patch: it
/// replaces `status.conditions` whole, which is what the list ends up as with upstream's
/// strategic patch), with `metadata.resourceVersion` = `old`'s when `resource_version_check`,
/// so that the API server refuses it with a Conflict if the claim changed meanwhile.
pub fn claim_patch(
    old: &PersistentVolumeClaim,
    new: &PersistentVolumeClaim,
    resource_version_check: bool,
) -> Value {
    let old_json = serde_json::to_value(old).unwrap_or(Value::Null);
    let new_json = serde_json::to_value(new).unwrap_or(Value::Null);
    let mut patch = create_merge_patch(&old_json, &new_json);
    if resource_version_check {
        crate::kube::add_resource_version_check(&mut patch, &old.metadata);
    }
    patch
}

/// Upstream's `HasFileSystemResizePendingCondition`.
pub fn has_fs_resize_pending_condition(claim: &PersistentVolumeClaim) -> bool {
    claim
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == conditions::FILE_SYSTEM_RESIZE_PENDING && c.status == "True")
        })
}

/// Upstream's `IsFinalError`: the operation is certainly not running in the driver any more.
/// Errors without a gRPC code (`None`) are not final: the call may never have been made.
pub fn is_final_error(code: Option<Code>) -> bool {
    code.is_some_and(csi_connection::is_final_code)
}

/// Upstream's `IsInfeasibleError`: InvalidArgument, OutOfRange, NotFound (all final).
pub fn is_infeasible_error(code: Option<Code>) -> bool {
    matches!(
        code,
        Some(Code::InvalidArgument | Code::OutOfRange | Code::NotFound)
    )
}

/// Upstream's `inUseError`: FailedPrecondition, what a driver answers when it can expand
/// only volumes that are not in use.
pub fn is_in_use_error(code: Option<Code>) -> bool {
    code == Some(Code::FailedPrecondition)
}

/// The claim's requested storage (`spec.resources.requests.storage`).
pub fn requested_size(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get(STORAGE)
}

/// The claim's actual size (`status.capacity.storage`).
pub fn status_size(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim.status.as_ref()?.capacity.as_ref()?.get(STORAGE)
}

/// The size the controller last expanded to (`status.allocatedResources.storage`).
pub fn allocated_size(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim
        .status
        .as_ref()?
        .allocated_resources
        .as_ref()?
        .get(STORAGE)
}

/// The claim's resize status (`status.allocatedResourceStatuses.storage`), empty when unset.
pub fn resize_status(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.allocated_resource_statuses.as_ref())
        .and_then(|s| s.get(STORAGE))
        .map(String::as_str)
        .unwrap_or("")
}

#[cfg(test)]
mod tests;
