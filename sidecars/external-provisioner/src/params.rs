//! StorageClass parameters and claim fields as CreateVolume sees them (upstream's
//! `pkg/controller/controller.go`): the `csi.storage.k8s.io/` parameters stripped before the
//! driver sees them, the filesystem type, the volume capabilities from access modes and volume
//! mode, the requested capacity, `--extra-create-metadata`, and the volume (PV) name.
//!
//! Secret parameters and their templates are the controller toolkit's
//! ([`csi_controller::secrets`]); this module only knows that they are reserved keys.

use std::collections::{BTreeMap, HashMap};

pub use csi_connection::accessmodes::to_csi_access_mode;
pub use csi_controller::quantity::{bytes_to_quantity, quantity_value};
use csi_controller::secrets::CSI_PARAMETER_PREFIX;
use csi_proto::csi::v1::VolumeCapability;
use csi_proto::csi::v1::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use tracing::warn;

/// `csi.storage.k8s.io/fstype`: the filesystem type of the volume.
pub const PREFIXED_FS_TYPE_KEY: &str = "csi.storage.k8s.io/fstype";
/// The deprecated (case-insensitive) form of [`PREFIXED_FS_TYPE_KEY`].
pub const DEPRECATED_FS_TYPE_KEY: &str = "fstype";
/// `--extra-create-metadata`: the PVC's name.
pub const PVC_NAME_KEY: &str = "csi.storage.k8s.io/pvc/name";
/// `--extra-create-metadata`: the PVC's namespace.
pub const PVC_NAMESPACE_KEY: &str = "csi.storage.k8s.io/pvc/namespace";
/// `--extra-create-metadata`: the PV's name.
pub const PV_NAME_KEY: &str = "csi.storage.k8s.io/pv/name";

/// The `csi.storage.k8s.io/` parameters the provisioner knows; any other key with that prefix
/// is an error.
pub const KNOWN_PREFIXED_KEYS: [&str; 17] = [
    PREFIXED_FS_TYPE_KEY,
    "csi.storage.k8s.io/provisioner-secret-name",
    "csi.storage.k8s.io/provisioner-secret-namespace",
    "csi.storage.k8s.io/controller-publish-secret-name",
    "csi.storage.k8s.io/controller-publish-secret-namespace",
    "csi.storage.k8s.io/node-stage-secret-name",
    "csi.storage.k8s.io/node-stage-secret-namespace",
    "csi.storage.k8s.io/node-publish-secret-name",
    "csi.storage.k8s.io/node-publish-secret-namespace",
    "csi.storage.k8s.io/controller-expand-secret-name",
    "csi.storage.k8s.io/controller-expand-secret-namespace",
    "csi.storage.k8s.io/secret-name",
    "csi.storage.k8s.io/secret-namespace",
    "csi.storage.k8s.io/node-expand-secret-name",
    "csi.storage.k8s.io/node-expand-secret-namespace",
    "csi.storage.k8s.io/controller-modify-secret-name",
    "csi.storage.k8s.io/controller-modify-secret-namespace",
];

/// A parameter or claim field the provisioner cannot use. The messages are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// A `csi.storage.k8s.io/` key that is not one of [`KNOWN_PREFIXED_KEYS`].
    #[error("found unknown parameter key \"{0}\" with reserved namespace csi.storage.k8s.io/")]
    UnknownPrefixedKey(String),
    /// Both `fstype` and `csi.storage.k8s.io/fstype` are given.
    #[error(
        "fstype specified in parameters with both \"fstype\" and \"csi.storage.k8s.io/fstype\" keys"
    )]
    FsTypeTwice,
    /// `--volume-name-prefix` is empty.
    #[error("volume name prefix cannot be of length 0")]
    EmptyVolumeNamePrefix,
    /// The PVC has no UID.
    #[error("corrupted PVC object, it is missing UID")]
    MissingUid,
    /// The access modes have no CSI equivalent.
    #[error("{0}")]
    AccessModes(String),
}

/// The parameters for `CreateVolume`: every key without the `csi.storage.k8s.io/` prefix,
/// including the deprecated unprefixed ones (`fstype`, `csiProvisionerSecretName`, ...), which
/// are passed on for compatibility (upstream's `removePrefixedParameters`).
pub fn strip_prefixed_parameters(
    params: &BTreeMap<String, String>,
) -> Result<HashMap<String, String>, ParamsError> {
    let mut out = HashMap::new();
    for (key, value) in params {
        if key.starts_with(CSI_PARAMETER_PREFIX) {
            if !KNOWN_PREFIXED_KEYS.contains(&key.as_str()) {
                return Err(ParamsError::UnknownPrefixedKey(key.clone()));
            }
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    Ok(out)
}

/// The filesystem type from `csi.storage.k8s.io/fstype` or the deprecated `fstype` (any case,
/// logged as deprecated), else `default_fs_type` (`--default-fstype`; may be empty).
pub fn fs_type(
    params: &BTreeMap<String, String>,
    default_fs_type: &str,
) -> Result<String, ParamsError> {
    let mut found = 0;
    let mut fs_type = String::new();
    for (key, value) in params {
        let deprecated = key.to_lowercase() == DEPRECATED_FS_TYPE_KEY;
        if deprecated || key == PREFIXED_FS_TYPE_KEY {
            fs_type = value.clone();
            found += 1;
        }
        if deprecated {
            warn!(
                "\"fstype\" is deprecated and will be removed in a future release, please use \"{PREFIXED_FS_TYPE_KEY}\" instead"
            );
        }
    }
    if found > 1 {
        return Err(ParamsError::FsTypeTwice);
    }
    if fs_type.is_empty() {
        fs_type = default_fs_type.to_string();
    }
    Ok(fs_type)
}

/// The PV (and CSI volume) name: `<prefix>-<uid>`, or with `uuid_length` ≥ 0 the UID without
/// dashes cut to that length (upstream's `makeVolumeName`; `--volume-name-prefix`,
/// `--volume-name-uuid-length`).
pub fn volume_name(prefix: &str, pvc_uid: &str, uuid_length: i32) -> Result<String, ParamsError> {
    if prefix.is_empty() {
        return Err(ParamsError::EmptyVolumeNamePrefix);
    }
    if pvc_uid.is_empty() {
        return Err(ParamsError::MissingUid);
    }
    if uuid_length < 0 {
        return Ok(format!("{prefix}-{pvc_uid}"));
    }
    let uid: String = pvc_uid.chars().filter(|c| *c != '-').collect();
    let len = (uuid_length as usize).min(uid.len());
    Ok(format!("{prefix}-{}", &uid[..len]))
}

/// Whether the claim asks for a raw block volume.
pub fn is_block(claim: &PersistentVolumeClaim) -> bool {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .is_some_and(|m| m == "Block")
}

/// One volume capability per access mode of the claim: Block, or Mount with `fs_type` and the
/// class's mount options (upstream's `getVolumeCapabilities`).
pub fn volume_capabilities(
    claim: &PersistentVolumeClaim,
    mount_options: &[String],
    fs_type: &str,
    single_node_multi_writer: bool,
) -> Result<Vec<VolumeCapability>, ParamsError> {
    let modes = claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    let block = is_block(claim);
    modes
        .into_iter()
        .map(|mode| {
            let mode = to_csi_access_mode(&[mode], single_node_multi_writer)
                .map_err(ParamsError::AccessModes)?;
            let access_type = if block {
                AccessType::Block(BlockVolume {})
            } else {
                AccessType::Mount(MountVolume {
                    fs_type: fs_type.to_string(),
                    mount_flags: mount_options.to_vec(),
                    volume_mount_group: String::new(),
                })
            };
            Ok(VolumeCapability {
                access_type: Some(access_type),
                access_mode: Some(AccessMode { mode: mode.into() }),
            })
        })
        .collect()
}

/// The claim's storage request in bytes (apimachinery's `Quantity.Value()`: rounded up; 0
/// without a request or when it does not parse).
pub fn requested_bytes(claim: &PersistentVolumeClaim) -> i64 {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| quantity_value(&q.0))
        .unwrap_or(0)
}

/// The `--extra-create-metadata` parameters: the PVC's name and namespace, the PV's name.
pub fn add_extra_create_metadata(
    params: &mut HashMap<String, String>,
    claim: &PersistentVolumeClaim,
    pv_name: &str,
) {
    params.insert(
        PVC_NAME_KEY.to_string(),
        claim.metadata.name.clone().unwrap_or_default(),
    );
    params.insert(
        PVC_NAMESPACE_KEY.to_string(),
        claim.metadata.namespace.clone().unwrap_or_default(),
    );
    params.insert(PV_NAME_KEY.to_string(), pv_name.to_string());
}
