//! Data sources: the content source of a volume cloned from a PVC (upstream's `getPVCSource`),
//! from the source PVC and its PV that the caller read, and every reason a data source cannot
//! be used ([`SourceError`], clone and snapshot alike).
//!
//! Reading the objects, snapshot restores, cross-namespace sources (ReferenceGrants) and the
//! source finalizers are [`crate::data_source`]'s.

use csi_controller::ApiError;
use csi_proto::csi::v1::VolumeContentSource;
use csi_proto::csi::v1::volume_content_source::{Type, VolumeSource};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use tracing::warn;

use crate::params;

/// Why a data source cannot be used. The messages are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The source PVC does not exist.
    #[error(
        "error getting PVC {name} (namespace {namespace:?}) from api server: persistentvolumeclaim \"{name}\" not found"
    )]
    PvcNotFound {
        /// The source's name.
        name: String,
        /// The claim's namespace.
        namespace: String,
    },
    /// The source PVC is not Bound.
    #[error("the PVC DataSource {name} must have a status of Bound.  Got {phase}")]
    NotBound {
        /// The source's name.
        name: String,
        /// Its phase.
        phase: String,
    },
    /// The source PVC is being deleted.
    #[error("the PVC DataSource {0} is currently being deleted")]
    Deleting(String),
    /// The source PVC has no class.
    #[error("the source PVC ({0}) storageclass cannot be empty")]
    SourceWithoutClass(String),
    /// The new PVC has no class.
    #[error("the requested PVC ({0}) storageclass cannot be empty")]
    ClaimWithoutClass(String),
    /// The new PVC asks for less than the source.
    #[error(
        "error, new PVC request must be greater than or equal in size to the specified PVC data source, requested {requested} but source is {source_size}"
    )]
    TooSmall {
        /// The new PVC's request.
        requested: i64,
        /// The source's request.
        source_size: i64,
    },
    /// The source PVC is bound to no volume.
    #[error("volume name is empty in source PVC {0}")]
    NoVolumeName(String),
    /// The source's PV is missing, not a CSI volume of the class's driver, not bound to the
    /// source PVC, or not Bound (the reason is logged).
    #[error("claim in dataSource not bound or invalid")]
    InvalidVolume,
    /// The volume modes differ.
    #[error(
        "the source PVC and destination PVCs must have the same volume mode for cloning.  Source is {source_mode}, but new PVC requested {requested}"
    )]
    VolumeMode {
        /// The source's mode.
        source_mode: &'static str,
        /// The new PVC's mode.
        requested: &'static str,
    },
    /// The caller resolved no content source for a data source that needs one.
    #[error("data source not resolved")]
    NotResolved,
    /// The VolumeSnapshot could not be read.
    #[error("error getting snapshot {name} from api server: {error}")]
    SnapshotGet {
        /// The snapshot's name.
        name: String,
        /// The API error.
        error: ApiError,
    },
    /// The VolumeSnapshot is being deleted and no provisioning from it was under way (it
    /// lacks the snapshot source-protection finalizer).
    #[error("snapshot {0} is being deleted")]
    SnapshotDeleting(String),
    /// The VolumeSnapshot has no status or no bound VolumeSnapshotContent.
    #[error("snapshot {0} not bound")]
    SnapshotNotBound(String),
    /// The bound VolumeSnapshotContent could not be read (the cause is logged).
    #[error("error getting snapshotcontent {content} for snapshot {snapshot}")]
    ContentGet {
        /// The content's name.
        content: String,
        /// The snapshot's name.
        snapshot: String,
    },
    /// The VolumeSnapshotContent's `volumeSnapshotRef` names another snapshot (UID,
    /// namespace or name).
    #[error("snapshotcontent {content} for snapshot {snapshot} is bound to a different snapshot")]
    ContentBoundElsewhere {
        /// The content's name.
        content: String,
        /// The snapshot's name.
        snapshot: String,
    },
    /// The VolumeSnapshotContent is another driver's than the StorageClass's provisioner.
    #[error(
        "snapshotcontent {content} for snapshot {snapshot} is not handled by CSI driver of StorageClass {class}"
    )]
    ContentDriver {
        /// The content's name.
        content: String,
        /// The snapshot's name.
        snapshot: String,
        /// The StorageClass's name.
        class: String,
    },
    /// The VolumeSnapshot is not `readyToUse`.
    #[error("snapshot {0} is not Ready")]
    SnapshotNotReady(String),
    /// The VolumeSnapshotContent has no `status.snapshotHandle`.
    #[error("snapshot handle {0} is not available")]
    SnapshotHandleMissing(String),
    /// The snapshot has a restore size but the claim requests no storage.
    #[error("error getting capacity for PVC {claim} when creating snapshot {snapshot}")]
    NoRequest {
        /// The claim's name.
        claim: String,
        /// The snapshot's name.
        snapshot: String,
    },
    /// The claim requests less than the snapshot's restore size.
    #[error(
        "requested volume size {requested} is less than the size {restore_size} for the source snapshot {snapshot}"
    )]
    SmallerThanSnapshot {
        /// The claim's request in bytes.
        requested: i64,
        /// The snapshot's restore size in bytes.
        restore_size: i64,
        /// The snapshot's name.
        snapshot: String,
    },
    /// With `--prevent-volume-mode-conversion`: the claim's volume mode differs from the
    /// snapshot's source volume mode and the VolumeSnapshotContent does not allow it.
    #[error(
        "requested volume {namespace}/{claim} modifies the mode of the source volume but does not have permission to do so. {reason}"
    )]
    VolumeModeConversion {
        /// The claim's namespace.
        namespace: String,
        /// The claim's name.
        claim: String,
        /// Why the content does not allow it.
        reason: ModeConversionDenied,
    },
}

/// Why a VolumeSnapshotContent does not allow a restore to another volume mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeConversionDenied {
    /// No `snapshot.storage.kubernetes.io/allow-volume-mode-change` annotation.
    #[error(
        "snapshot.storage.kubernetes.io/allow-volume-mode-change annotation is not present on snapshotcontent {0}"
    )]
    NotAnnotated(String),
    /// The annotation is not a boolean (Go's `strconv.ParseBool` message).
    #[error(
        "failed to convert snapshot.storage.kubernetes.io/allow-volume-mode-change annotation value to boolean with error: strconv.ParseBool: parsing {0:?}: invalid syntax"
    )]
    NotBoolean(String),
    /// The annotation is false.
    #[error(
        "snapshot.storage.kubernetes.io/allow-volume-mode-change is set to false on snapshotcontent {0}"
    )]
    Disallowed(String),
}

/// The content source for cloning `source_pvc` (with its PV `source_pv`) into `claim` of
/// `class`: the source must be Bound, not being deleted, have a class (as must the claim), be
/// no larger than the claim's request, and be bound to a Bound CSI PV of the class's
/// provisioner that is bound back to it; both must have the same volume mode.
pub fn clone_source(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    source_name: &str,
    source_pvc: Option<&PersistentVolumeClaim>,
    source_pv: Option<&PersistentVolume>,
) -> Result<VolumeContentSource, SourceError> {
    let source = source_pvc.ok_or_else(|| SourceError::PvcNotFound {
        name: source_name.to_string(),
        namespace: claim.metadata.namespace.clone().unwrap_or_default(),
    })?;
    let phase = source
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    if phase != "Bound" {
        return Err(SourceError::NotBound {
            name: source_name.to_string(),
            phase,
        });
    }
    if source.metadata.deletion_timestamp.is_some() {
        return Err(SourceError::Deleting(source_name.to_string()));
    }
    let source_spec = source.spec.clone().unwrap_or_default();
    let source_pvc_name = source.metadata.name.clone().unwrap_or_default();
    if source_spec.storage_class_name.is_none() {
        return Err(SourceError::SourceWithoutClass(source_pvc_name));
    }
    let claim_spec = claim.spec.clone().unwrap_or_default();
    if claim_spec.storage_class_name.is_none() {
        return Err(SourceError::ClaimWithoutClass(
            claim.metadata.name.clone().unwrap_or_default(),
        ));
    }
    let requested = params::requested_bytes(claim);
    let source_size = params::requested_bytes(source);
    if requested < source_size {
        return Err(SourceError::TooSmall {
            requested,
            source_size,
        });
    }
    let volume_name = source_spec.volume_name.clone().unwrap_or_default();
    if volume_name.is_empty() {
        return Err(SourceError::NoVolumeName(source_pvc_name));
    }
    let source_namespace = source.metadata.namespace.clone().unwrap_or_default();
    let invalid = |reason: &str| {
        warn!(
            "the source volume {volume_name} for PVC {source_namespace}/{source_pvc_name}: {reason}"
        );
        SourceError::InvalidVolume
    };
    let pv = source_pv.ok_or_else(|| invalid("not found"))?;
    let pv_spec = pv.spec.clone().unwrap_or_default();
    let csi = pv_spec
        .csi
        .as_ref()
        .ok_or_else(|| invalid("not a CSI volume"))?;
    if csi.driver != class.provisioner {
        return Err(invalid(
            "is handled by a different CSI driver than requested by the StorageClass",
        ));
    }
    let claim_ref = pv_spec
        .claim_ref
        .as_ref()
        .ok_or_else(|| invalid("is not bound"))?;
    if claim_ref.uid != source.metadata.uid
        || claim_ref.namespace.clone().unwrap_or_default() != source_namespace
        || claim_ref.name.clone().unwrap_or_default() != source_pvc_name
    {
        return Err(invalid("is bound to a different PVC than requested"));
    }
    let pv_phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
    if pv_phase != Some("Bound") {
        return Err(invalid("status is not \"Bound\""));
    }
    let claim_block = claim_spec.volume_mode.as_deref() == Some("Block");
    let source_block = pv_spec.volume_mode.as_deref() == Some("Block");
    let source_filesystem = pv_spec
        .volume_mode
        .as_deref()
        .is_none_or(|m| m == "Filesystem");
    if !claim_block && !source_filesystem {
        return Err(SourceError::VolumeMode {
            source_mode: "Block",
            requested: "Filesystem",
        });
    }
    if claim_block && !source_block {
        return Err(SourceError::VolumeMode {
            source_mode: "Filesystem",
            requested: "Block",
        });
    }
    Ok(VolumeContentSource {
        r#type: Some(Type::Volume(VolumeSource {
            volume_id: csi.volume_handle.clone(),
        })),
    })
}
