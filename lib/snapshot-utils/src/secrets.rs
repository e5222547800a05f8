//! The secrets a (group) snapshot class names for the snapshotter's CSI calls, and the
//! parameters that are for the sidecar rather than the driver.
//!
//! The parameter checks, template resolution and name validation are `csi-controller`'s
//! (shared with the provisioner); the tokens differ: `${volumesnapshotcontent.name}`,
//! `${volumesnapshot.namespace}`, `${volumesnapshot.name}` (and the group forms). Snapshot
//! classes have no deprecated `csi…SecretName` keys and no `csi.storage.k8s.io/secret-name`
//! fallback.

use std::collections::{BTreeMap, HashMap};

use csi_controller::secrets::{
    CSI_PARAMETER_PREFIX, SecretParams, SecretReferenceError, is_dns1123_label,
    is_dns1123_subdomain, resolve_template, secret_templates,
};
use csi_crd_types::VolumeSnapshot;
use csi_crd_types::group_snapshot::v1::VolumeGroupSnapshot;
use k8s_openapi::api::core::v1::SecretReference;

/// Name key of the `CreateSnapshot` / `DeleteSnapshot` secret.
pub const PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY: &str = "csi.storage.k8s.io/snapshotter-secret-name";
/// Namespace key of the `CreateSnapshot` / `DeleteSnapshot` secret.
pub const PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/snapshotter-secret-namespace";
/// Name key of the `CreateVolumeGroupSnapshot` / `DeleteVolumeGroupSnapshot` secret.
pub const PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAME_KEY: &str =
    "csi.storage.k8s.io/group-snapshotter-secret-name";
/// Namespace key of the group snapshot secret.
pub const PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/group-snapshotter-secret-namespace";
/// Name key of the `ListSnapshots` secret.
pub const PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY: &str =
    "csi.storage.k8s.io/snapshotter-list-secret-name";
/// Namespace key of the `ListSnapshots` secret.
pub const PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/snapshotter-list-secret-namespace";
/// Name key of the `GetVolumeGroupSnapshot` secret.
pub const PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAME_KEY: &str =
    "csi.storage.k8s.io/group-snapshotter-get-secret-name";
/// Namespace key of the `GetVolumeGroupSnapshot` secret.
pub const PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/group-snapshotter-get-secret-namespace";

/// `CreateSnapshot` parameter (with `--extra-create-metadata`): the VolumeSnapshot's name.
pub const PREFIXED_VOLUME_SNAPSHOT_NAME_KEY: &str = "csi.storage.k8s.io/volumesnapshot/name";
/// `CreateSnapshot` parameter: the VolumeSnapshot's namespace.
pub const PREFIXED_VOLUME_SNAPSHOT_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/volumesnapshot/namespace";
/// `CreateSnapshot` parameter: the VolumeSnapshotContent's name.
pub const PREFIXED_VOLUME_SNAPSHOT_CONTENT_NAME_KEY: &str =
    "csi.storage.k8s.io/volumesnapshotcontent/name";
/// `CreateVolumeGroupSnapshot` parameter: the VolumeGroupSnapshot's name.
pub const PREFIXED_VOLUME_GROUP_SNAPSHOT_NAME_KEY: &str =
    "csi.storage.k8s.io/volumegroupsnapshot/name";
/// `CreateVolumeGroupSnapshot` parameter: the VolumeGroupSnapshot's namespace.
pub const PREFIXED_VOLUME_GROUP_SNAPSHOT_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/volumegroupsnapshot/namespace";
/// `CreateVolumeGroupSnapshot` parameter: the VolumeGroupSnapshotContent's name.
pub const PREFIXED_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME_KEY: &str =
    "csi.storage.k8s.io/volumegroupsnapshotcontent/name";

const fn params(
    name: &'static str,
    name_key: &'static str,
    namespace_key: &'static str,
) -> SecretParams {
    SecretParams {
        name,
        deprecated_name_key: None,
        deprecated_namespace_key: None,
        name_key,
        namespace_key,
    }
}

/// The secret of `CreateSnapshot` / `DeleteSnapshot`.
pub const SNAPSHOTTER_SECRET_PARAMS: SecretParams = params(
    "Snapshotter",
    PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY,
    PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
);
/// The secret of `CreateVolumeGroupSnapshot` / `DeleteVolumeGroupSnapshot`.
pub const GROUP_SNAPSHOTTER_SECRET_PARAMS: SecretParams = params(
    "GroupSnapshotter",
    PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAME_KEY,
    PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
);
/// The secret of `ListSnapshots`.
pub const SNAPSHOTTER_LIST_SECRET_PARAMS: SecretParams = params(
    "SnapshotterList",
    PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY,
    PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY,
);
/// The secret of `GetVolumeGroupSnapshot`.
pub const GROUP_SNAPSHOTTER_GET_SECRET_PARAMS: SecretParams = params(
    "GroupSnapshotterGet",
    PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAME_KEY,
    PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE_KEY,
);

/// The prefixed keys a snapshot class may carry; any other `csi.storage.k8s.io/` key is an
/// error.
const KNOWN_PREFIXED_KEYS: [&str; 8] = [
    PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY,
    PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
    PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY,
    PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY,
    PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAME_KEY,
    PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE_KEY,
    PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAME_KEY,
    PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
];

/// A class parameter in the sidecars' reserved `csi.storage.k8s.io/` namespace that no
/// snapshotter knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("found unknown parameter key \"{0}\" with reserved namespace {CSI_PARAMETER_PREFIX}")]
pub struct UnknownPrefixedParameter(pub String);

/// The class parameters for the driver: the known `csi.storage.k8s.io/` keys removed (other
/// keys, including deprecated `csi…` ones, kept); an unknown prefixed key is an error.
pub fn remove_prefixed_parameters(
    params: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, UnknownPrefixedParameter> {
    let mut out = BTreeMap::new();
    for (key, value) in params {
        if key.starts_with(CSI_PARAMETER_PREFIX) {
            if !KNOWN_PREFIXED_KEYS.contains(&key.as_str()) {
                return Err(UnknownPrefixedParameter(key.clone()));
            }
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    Ok(out)
}

/// The secret `class_params` name for `secret`, templates resolved; `None` when none is named.
/// The secret is not read.
///
/// Namespace tokens: `${volumesnapshotcontent.name}`, `${volumesnapshot.namespace}`. Name
/// tokens: those and `${volumesnapshot.name}`. The snapshot tokens exist only when `snapshot`
/// is given (at deletion the snapshot may be gone).
pub fn secret_reference(
    secret: &SecretParams,
    class_params: &BTreeMap<String, String>,
    content_name: &str,
    snapshot: Option<&VolumeSnapshot>,
) -> Result<Option<SecretReference>, SecretReferenceError> {
    let object = snapshot.map(|s| {
        (
            s.metadata.name.clone().unwrap_or_default(),
            s.metadata.namespace.clone().unwrap_or_default(),
        )
    });
    reference(secret, class_params, "volumesnapshot", content_name, object)
}

/// [`secret_reference`] for group snapshot classes, with the tokens
/// `${volumegroupsnapshotcontent.name}`, `${volumegroupsnapshot.namespace}` and
/// `${volumegroupsnapshot.name}`.
pub fn group_snapshot_secret_reference(
    secret: &SecretParams,
    class_params: &BTreeMap<String, String>,
    content_name: &str,
    group: Option<&VolumeGroupSnapshot>,
) -> Result<Option<SecretReference>, SecretReferenceError> {
    let object = group.map(|g| {
        (
            g.metadata.name.clone().unwrap_or_default(),
            g.metadata.namespace.clone().unwrap_or_default(),
        )
    });
    reference(
        secret,
        class_params,
        "volumegroupsnapshot",
        content_name,
        object,
    )
}

fn reference(
    secret: &SecretParams,
    class_params: &BTreeMap<String, String>,
    kind: &str,
    content_name: &str,
    object: Option<(String, String)>,
) -> Result<Option<SecretReference>, SecretReferenceError> {
    let (name_template, namespace_template) =
        secret_templates(secret, class_params).map_err(SecretReferenceError::Params)?;
    if name_template.is_empty() && namespace_template.is_empty() {
        return Ok(None);
    }
    let content_token = format!("{kind}content.name");

    let mut namespace_params = HashMap::from([(content_token.clone(), content_name.to_string())]);
    if let Some((_, namespace)) = &object {
        namespace_params.insert(format!("{kind}.namespace"), namespace.clone());
    }
    let namespace = resolve_template(&namespace_template, &namespace_params).map_err(|error| {
        SecretReferenceError::Resolve {
            template: namespace_template.clone(),
            error,
        }
    })?;
    if !is_dns1123_label(&namespace) {
        return Err(SecretReferenceError::InvalidNamespace {
            template: namespace_template,
            resolved: namespace,
        });
    }

    let mut name_params = HashMap::from([(content_token, content_name.to_string())]);
    if let Some((name, namespace)) = object {
        name_params.insert(format!("{kind}.name"), name);
        name_params.insert(format!("{kind}.namespace"), namespace);
    }
    let name = resolve_template(&name_template, &name_params).map_err(|error| {
        SecretReferenceError::Resolve {
            template: name_template.clone(),
            error,
        }
    })?;
    if !is_dns1123_subdomain(&name) {
        return Err(SecretReferenceError::InvalidName {
            template: name_template,
            resolved: name,
        });
    }
    Ok(Some(SecretReference {
        name: Some(name),
        namespace: Some(namespace),
    }))
}
