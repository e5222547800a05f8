//! What the sidecar uses of upstream's `pkg/utils` (v8.7.0): the annotation, finalizer and
//! label names it shares with the snapshot-controller, the `csi.storage.k8s.io/*` parameters
//! of VolumeSnapshotClasses and VolumeGroupSnapshotClasses (secrets, extra create metadata),
//! secret references with their templates, and which content changes are worth a sync.

use std::collections::{BTreeMap, HashMap};

use csi_controller::secrets::{
    SecretParams, SecretReferenceError, is_dns1123_label, is_dns1123_subdomain, resolve_template,
    secret_templates,
};
use csi_crd_types::{VolumeGroupSnapshotContent, VolumeSnapshotContent};
use k8s_openapi::api::core::v1::SecretReference;

/// The prefix of the class parameters meant for the sidecar, not the driver.
pub const CSI_PARAMETER_PREFIX: &str = "csi.storage.k8s.io/";

/// The name of the secret of CreateSnapshot / DeleteSnapshot.
pub const PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY: &str = "csi.storage.k8s.io/snapshotter-secret-name";
/// Its namespace.
pub const PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/snapshotter-secret-namespace";
/// The name of the secret of CreateVolumeGroupSnapshot / DeleteVolumeGroupSnapshot.
pub const PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAME_KEY: &str =
    "csi.storage.k8s.io/group-snapshotter-secret-name";
/// Its namespace.
pub const PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/group-snapshotter-secret-namespace";
/// The name of the secret of ListSnapshots.
pub const PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY: &str =
    "csi.storage.k8s.io/snapshotter-list-secret-name";
/// Its namespace.
pub const PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/snapshotter-list-secret-namespace";
/// The name of the secret of GetVolumeGroupSnapshot.
pub const PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAME_KEY: &str =
    "csi.storage.k8s.io/group-snapshotter-get-secret-name";
/// Its namespace.
pub const PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/group-snapshotter-get-secret-namespace";

/// `--extra-create-metadata`: the VolumeSnapshot's name, passed to CreateSnapshot.
pub const PREFIXED_VOLUME_SNAPSHOT_NAME_KEY: &str = "csi.storage.k8s.io/volumesnapshot/name";
/// The VolumeSnapshot's namespace.
pub const PREFIXED_VOLUME_SNAPSHOT_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/volumesnapshot/namespace";
/// The VolumeSnapshotContent's name.
pub const PREFIXED_VOLUME_SNAPSHOT_CONTENT_NAME_KEY: &str =
    "csi.storage.k8s.io/volumesnapshotcontent/name";
/// `--extra-create-metadata`: the VolumeGroupSnapshot's name, passed to
/// CreateVolumeGroupSnapshot.
pub const PREFIXED_VOLUME_GROUP_SNAPSHOT_NAME_KEY: &str =
    "csi.storage.k8s.io/volumegroupsnapshot/name";
/// The VolumeGroupSnapshot's namespace.
pub const PREFIXED_VOLUME_GROUP_SNAPSHOT_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/volumegroupsnapshot/namespace";
/// The VolumeGroupSnapshotContent's name.
pub const PREFIXED_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME_KEY: &str =
    "csi.storage.k8s.io/volumegroupsnapshotcontent/name";

/// The snapshot-controller's finalizer on VolumeSnapshotContents bound to a VolumeSnapshot;
/// the sidecar removes it once the snapshot is deleted (or retained).
pub const VOLUME_SNAPSHOT_CONTENT_FINALIZER: &str =
    "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection";
/// The same for VolumeGroupSnapshotContents.
pub const VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER: &str =
    "groupsnapshot.storage.kubernetes.io/volumegroupsnapshotcontent-bound-protection";

/// Set by the snapshot-controller on a content whose VolumeSnapshot is being deleted: the
/// sidecar may delete the snapshot (policy Delete) and remove the finalizer.
pub const ANN_VOLUME_SNAPSHOT_BEING_DELETED: &str =
    "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted";
/// Set by the sidecar while CreateSnapshot may still be running in the driver (removed after
/// a success or a final error), so that the content is not deleted under it.
pub const ANN_VOLUME_SNAPSHOT_BEING_CREATED: &str =
    "snapshot.storage.kubernetes.io/volumesnapshot-being-created";
/// [`ANN_VOLUME_SNAPSHOT_BEING_CREATED`] for group snapshots.
pub const ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED: &str =
    "groupsnapshot.storage.kubernetes.io/volumegroupsnapshot-being-created";
/// [`ANN_VOLUME_SNAPSHOT_BEING_DELETED`] for group snapshots.
pub const ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED: &str =
    "groupsnapshot.storage.kubernetes.io/volumegroupsnapshot-being-deleted";

/// The name of the snapshotter secret, written on a content by the snapshot-controller.
pub const ANN_DELETION_SECRET_REF_NAME: &str =
    "snapshot.storage.kubernetes.io/deletion-secret-name";
/// Its namespace.
pub const ANN_DELETION_SECRET_REF_NAMESPACE: &str =
    "snapshot.storage.kubernetes.io/deletion-secret-namespace";
/// The name of the group snapshotter secret, on a group content.
pub const ANN_DELETION_GROUP_SECRET_REF_NAME: &str =
    "groupsnapshot.storage.kubernetes.io/deletion-secret-name";
/// Its namespace.
pub const ANN_DELETION_GROUP_SECRET_REF_NAMESPACE: &str =
    "groupsnapshot.storage.kubernetes.io/deletion-secret-namespace";

/// On a VolumeSnapshotContent that is a member of a group snapshot: the group's handle. The
/// sidecar never calls CreateSnapshot for such a content.
pub const VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION: &str =
    "groupsnapshot.storage.k8s.io/volumeGroupSnapshotHandle";

/// With distributed snapshotting, the node whose sidecar handles a content (the value); a
/// sidecar with `--node-deployment` watches only its node's contents.
pub const VOLUME_SNAPSHOT_CONTENT_MANAGED_BY_LABEL: &str =
    "snapshot.storage.kubernetes.io/managed-by";

/// The secret of CreateSnapshot / DeleteSnapshot (upstream's `SnapshotterSecretParams`).
pub const SNAPSHOTTER_SECRET_PARAMS: SecretParams = SecretParams {
    name: "Snapshotter",
    deprecated_name_key: None,
    deprecated_namespace_key: None,
    name_key: PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY,
    namespace_key: PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
};

/// The secret of the group snapshot calls (upstream's `GroupSnapshotterSecretParams`).
pub const GROUP_SNAPSHOTTER_SECRET_PARAMS: SecretParams = SecretParams {
    name: "GroupSnapshotter",
    deprecated_name_key: None,
    deprecated_namespace_key: None,
    name_key: PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAME_KEY,
    namespace_key: PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
};

/// The secret of ListSnapshots (upstream's `SnapshotterListSecretParams`).
pub const SNAPSHOTTER_LIST_SECRET_PARAMS: SecretParams = SecretParams {
    name: "SnapshotterList",
    deprecated_name_key: None,
    deprecated_namespace_key: None,
    name_key: PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY,
    namespace_key: PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY,
};

/// The secret of GetVolumeGroupSnapshot (upstream's `GroupSnapshotterGetSecretParams`).
pub const GROUP_SNAPSHOTTER_GET_SECRET_PARAMS: SecretParams = SecretParams {
    name: "GroupSnapshotterGet",
    deprecated_name_key: None,
    deprecated_namespace_key: None,
    name_key: PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAME_KEY,
    namespace_key: PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE_KEY,
};

/// The object a secret template may name besides the content: upstream passes the
/// VolumeSnapshot (or VolumeGroupSnapshot) when it has it, the sidecar never does.
#[derive(Debug, Clone, Copy)]
pub struct TemplateObject<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
}

/// Upstream's `GetSecretReference` (`group` false: tokens `${volumesnapshotcontent.name}`,
/// `${volumesnapshot.namespace}`, `${volumesnapshot.name}`) and
/// `GetGroupSnapshotSecretReference` (`group` true: the `volumegroupsnapshot*` tokens): the
/// secret `params` name for `secret`, templates resolved and validated; `None` when none is
/// named. Snapshot classes have no deprecated keys and no default secret.
pub fn secret_reference(
    secret: &SecretParams,
    params: &BTreeMap<String, String>,
    content_name: &str,
    snapshot: Option<TemplateObject<'_>>,
    group: bool,
) -> Result<Option<SecretReference>, SecretReferenceError> {
    let (name_template, namespace_template) =
        secret_templates(secret, params).map_err(SecretReferenceError::Params)?;
    if name_template.is_empty() && namespace_template.is_empty() {
        return Ok(None);
    }
    let (content_token, snapshot_token) = if group {
        ("volumegroupsnapshotcontent", "volumegroupsnapshot")
    } else {
        ("volumesnapshotcontent", "volumesnapshot")
    };

    let mut namespace_params =
        HashMap::from([(format!("{content_token}.name"), content_name.to_string())]);
    if let Some(snapshot) = snapshot {
        namespace_params.insert(
            format!("{snapshot_token}.namespace"),
            snapshot.namespace.to_string(),
        );
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

    let mut name_params =
        HashMap::from([(format!("{content_token}.name"), content_name.to_string())]);
    if let Some(snapshot) = snapshot {
        name_params.insert(format!("{snapshot_token}.name"), snapshot.name.to_string());
        name_params.insert(
            format!("{snapshot_token}.namespace"),
            snapshot.namespace.to_string(),
        );
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

/// Upstream's `RemovePrefixedParameters`: the class parameters without the sidecar's secret
/// keys; any other `csi.storage.k8s.io/` key is an error.
pub fn remove_prefixed_parameters(
    params: &BTreeMap<String, String>,
) -> Result<HashMap<String, String>, String> {
    const KNOWN: [&str; 8] = [
        PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY,
        PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
        PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY,
        PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY,
        PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAME_KEY,
        PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE_KEY,
        PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAME_KEY,
        PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
    ];
    let mut out = HashMap::new();
    for (key, value) in params {
        if key.starts_with(CSI_PARAMETER_PREFIX) {
            if !KNOWN.contains(&key.as_str()) {
                return Err(format!(
                    "found unknown parameter key {} with reserved namespace {CSI_PARAMETER_PREFIX}",
                    go_quote(key)
                ));
            }
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    Ok(out)
}

/// Resets the sidecar's own annotations of `new` to their values in `old` (upstream's
/// `sanitizeSidecarAnnotations`).
fn sanitize_sidecar_annotations(
    old: &Option<BTreeMap<String, String>>,
    new: &mut Option<BTreeMap<String, String>>,
    own: &str,
) {
    match old.as_ref().and_then(|old| old.get(own)) {
        Some(value) => {
            new.get_or_insert_with(BTreeMap::new)
                .insert(own.to_string(), value.clone());
        }
        None => {
            if let Some(new) = new.as_mut() {
                new.remove(own);
            }
        }
    }
}

/// Upstream's `ShouldEnqueueContentChange`: whether an update of a VolumeSnapshotContent may
/// need a sync. Resyncs (same `resourceVersion`) and a content that just became ready do;
/// changes of only the status, the finalizers, `managedFields` or the sidecar's own
/// `volumesnapshot-being-created` annotation do not.
pub fn should_enqueue_content_change(
    old: &VolumeSnapshotContent,
    new: &VolumeSnapshotContent,
) -> bool {
    if old.metadata.resource_version == new.metadata.resource_version {
        return true;
    }
    let ready = |c: &VolumeSnapshotContent| {
        c.status
            .as_ref()
            .and_then(|s| s.ready_to_use)
            .unwrap_or(false)
    };
    if !ready(old) && ready(new) {
        return true;
    }
    let mut sanitized = new.clone();
    sanitized.metadata.resource_version = old.metadata.resource_version.clone();
    sanitized.status = old.status.clone();
    sanitized.metadata.managed_fields = old.metadata.managed_fields.clone();
    sanitized.metadata.finalizers = old.metadata.finalizers.clone();
    sanitize_sidecar_annotations(
        &old.metadata.annotations,
        &mut sanitized.metadata.annotations,
        ANN_VOLUME_SNAPSHOT_BEING_CREATED,
    );
    !csi_controller::semantic_eq(old, &sanitized)
}

/// Upstream's `ShouldEnqueueGroupContentChange`: [`should_enqueue_content_change`] for
/// VolumeGroupSnapshotContents.
pub fn should_enqueue_group_content_change(
    old: &VolumeGroupSnapshotContent,
    new: &VolumeGroupSnapshotContent,
) -> bool {
    if old.metadata.resource_version == new.metadata.resource_version {
        return true;
    }
    let ready = |c: &VolumeGroupSnapshotContent| {
        c.status
            .as_ref()
            .and_then(|s| s.ready_to_use)
            .unwrap_or(false)
    };
    if !ready(old) && ready(new) {
        return true;
    }
    let mut sanitized = new.clone();
    sanitized.metadata.resource_version = old.metadata.resource_version.clone();
    sanitized.status = old.status.clone();
    sanitized.metadata.managed_fields = old.metadata.managed_fields.clone();
    sanitized.metadata.finalizers = old.metadata.finalizers.clone();
    sanitize_sidecar_annotations(
        &old.metadata.annotations,
        &mut sanitized.metadata.annotations,
        ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED,
    );
    !csi_controller::semantic_eq(old, &sanitized)
}

/// Go's `%q` of a string.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    csi_gofmt::quote_into(&mut out, s);
    out
}

#[cfg(test)]
mod tests;
