//! Upstream's `pkg/util` for expansion: annotations, Event reasons, the PVC condition merges,
//! the PVC status patch, sizes, and how a CSI error is classified.

use std::cmp::Ordering;

use csi_controller::patch::create_merge_patch;
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

/// Upstream's `MergePVCConditions` (used by modification): conditions of the new types
/// replace the old ones of the same type, keeping the old `lastTransitionTime` unless the
/// reason or status changed (then it is the new `lastProbeTime`); others stay; new types are
/// appended in order with `lastTransitionTime` = `lastProbeTime`.
pub fn merge_pvc_conditions(
    old: &[PersistentVolumeClaimCondition],
    new: &[PersistentVolumeClaimCondition],
) -> Vec<PersistentVolumeClaimCondition> {
    let mut result = Vec::new();
    let mut used = vec![false; new.len()];
    for old_condition in old {
        match new.iter().position(|c| c.type_ == old_condition.type_) {
            None => result.push(old_condition.clone()),
            Some(at) => {
                used[at] = true;
                let mut condition = new[at].clone();
                condition.last_transition_time = if condition.reason != old_condition.reason
                    || condition.status != old_condition.status
                {
                    condition.last_probe_time.clone()
                } else {
                    old_condition.last_transition_time.clone()
                };
                result.push(condition);
            }
        }
    }
    for (condition, used) in new.iter().zip(used) {
        if !used && !result.iter().any(|c| c.type_ == condition.type_) {
            let mut condition = condition.clone();
            condition.last_transition_time = condition.last_probe_time.clone();
            result.push(condition);
        }
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
    if resource_version_check && let Value::Object(map) = &mut patch {
        let metadata = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(metadata) = metadata {
            metadata.insert(
                "resourceVersion".into(),
                Value::String(old.metadata.resource_version.clone().unwrap_or_default()),
            );
        }
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

/// apimachinery's `Quantity.Value()`: the value rounded up to an integer (`1.5Gi`, `100M`,
/// `1e3`). `None` when it does not parse.
pub fn quantity_value(quantity: &str) -> Option<i64> {
    let s = quantity.trim();
    let (negative, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = s.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mantissa: i128 = format!("{whole}{fraction}").parse().ok()?;
    let (base, exponent): (i128, i32) = match suffix {
        "" => (10, 0),
        "Ki" => (1024, 1),
        "Mi" => (1024, 2),
        "Gi" => (1024, 3),
        "Ti" => (1024, 4),
        "Pi" => (1024, 5),
        "Ei" => (1024, 6),
        "n" => (10, -9),
        "u" => (10, -6),
        "m" => (10, -3),
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        other if other.starts_with(['e', 'E']) => (10, other[1..].parse().ok()?),
        _ => return None,
    };
    let mut numerator = mantissa;
    let mut denominator: i128 = 10i128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    if exponent >= 0 {
        numerator = numerator.checked_mul(base.checked_pow(exponent.unsigned_abs())?)?;
    } else {
        denominator = denominator.checked_mul(base.checked_pow(exponent.unsigned_abs())?)?;
    }
    let mut value = numerator / denominator;
    if numerator % denominator != 0 {
        value += 1;
    }
    let value = if negative { -value } else { value };
    Some(value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// A byte count as apimachinery writes `resource.NewQuantity(bytes, BinarySI)`: the largest
/// binary suffix that divides it exactly (`5Gi`), plain digits otherwise, decimal below 1024.
pub fn bytes_to_quantity(bytes: i64) -> Quantity {
    if bytes > -1024 && bytes < 1024 {
        if bytes != 0 && bytes % 1000 == 0 {
            return Quantity(format!("{}k", bytes / 1000));
        }
        return Quantity(bytes.to_string());
    }
    let mut value = bytes;
    let mut suffix = "";
    for s in ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"] {
        if value % 1024 != 0 {
            break;
        }
        value /= 1024;
        suffix = s;
    }
    Quantity(format!("{value}{suffix}"))
}

/// `a.Cmp(b)` of two quantities; a missing or unparsable quantity is zero.
pub fn cmp_quantity(a: Option<&Quantity>, b: Option<&Quantity>) -> Ordering {
    let value = |q: Option<&Quantity>| q.and_then(|q| quantity_value(&q.0)).unwrap_or(0);
    value(a).cmp(&value(b))
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
