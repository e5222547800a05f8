//! Deleting the volume of a released PV (upstream's `Delete`): the `DeleteVolume` request with
//! the provisioner secret (from the PV's deletion-secret annotations, or for older PVs from its
//! StorageClass), refused while a VolumeAttachment still names the PV.
//!
//! Takes the PV, the StorageClasses and the VolumeAttachments as arguments; deciding when a PV
//! is deleted (reclaim policy, phase, finalizer) and Events are the controller loop's.

use csi_controller::SecretGetter;
use csi_controller::secrets::{
    PROVISIONER_SECRET_PARAMS, SecretReferenceError, secret_data, secret_reference,
};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, SecretReference};
use k8s_openapi::api::storage::v1::{StorageClass, VolumeAttachment};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tracing::{debug, error, info, warn};

use crate::csi::{CsiError, VolumeDriver};
use crate::migration::Migration;
use crate::provision::{
    ANN_BETA_STORAGE_CLASS, ANN_DELETION_SECRET_NAME, ANN_DELETION_SECRET_NAMESPACE,
    ProvisionerConfig,
};
use crate::topology::volume_is_accessible;
use csi_proto::csi::v1::DeleteVolumeRequest;

/// Why a volume was not deleted. The messages are upstream's.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeleteError {
    /// The PV has no CSI source.
    #[error("invalid CSI PV")]
    InvalidPv,
    /// CSI migration: the in-tree PV or its StorageClass could not be translated.
    #[error("{0}")]
    Translate(csi_translation::Error),
    /// With `--node-deployment`: the volume is not accessible from this node, another
    /// instance deletes it (upstream's `IgnoredError`: not an error for the PV).
    #[error("PV was not provisioned on this node")]
    NotThisNode,
    /// With `--node-deployment`: the PV's node affinity could not be evaluated.
    #[error("checking volume affinity failed: {0}")]
    Affinity(String),
    /// The driver cannot delete volumes.
    #[error("{0}")]
    MissingCapability(&'static str),
    /// The StorageClass names the provisioner secret wrongly.
    #[error("failed to get secretreference for volume {pv}: {error}")]
    SecretReference {
        /// The PV.
        pv: String,
        /// What is wrong.
        error: SecretReferenceError,
    },
    /// A VolumeAttachment still names the PV: wait for the detach (upstream's
    /// `VolumeInUseError`; the library records a Normal `VolumeDelete` Event and retries with
    /// backoff).
    #[error("persistentvolume {pv} is still attached to node {node}, waiting for detach")]
    InUse {
        /// The PV.
        pv: String,
        /// The node of the VolumeAttachment.
        node: String,
    },
    /// `DeleteVolume` failed.
    #[error(transparent)]
    Csi(CsiError),
}

impl DeleteError {
    /// Whether the volume is still attached (upstream's `VolumeInUseError`).
    pub fn is_in_use(&self) -> bool {
        matches!(self, DeleteError::InUse { .. })
    }

    /// Whether the PV is simply not this instance's to delete: no Event, no retry.
    pub fn is_ignored(&self) -> bool {
        matches!(self, DeleteError::NotThisNode)
    }
}

/// The PV's class: the beta annotation, else `spec.storageClassName` (component-helpers'
/// `GetPersistentVolumeClass`).
pub fn pv_class(pv: &PersistentVolume) -> String {
    pv.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_BETA_STORAGE_CLASS).cloned())
        .or_else(|| pv.spec.as_ref().and_then(|s| s.storage_class_name.clone()))
        .unwrap_or_default()
}

/// The provisioner secret of `pv`'s `DeleteVolume`: from the deletion-secret annotations when
/// the PV has both (none when they are empty), else from the StorageClass (found in
/// `classes`) with the templates resolved over the PV name and the claimRef's name and
/// namespace. A missing StorageClass or claimRef means no secret.
pub fn deletion_secret(
    pv: &PersistentVolume,
    classes: &[StorageClass],
    migration: Option<&Migration>,
) -> Result<Option<SecretReference>, DeleteError> {
    let pv_name = pv.metadata.name.clone().unwrap_or_default();
    let annotations = pv.metadata.annotations.clone().unwrap_or_default();
    if let (Some(name), Some(namespace)) = (
        annotations.get(ANN_DELETION_SECRET_NAME),
        annotations.get(ANN_DELETION_SECRET_NAMESPACE),
    ) {
        if !name.is_empty() && !namespace.is_empty() {
            return Ok(Some(SecretReference {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
            }));
        }
        if name.is_empty() && namespace.is_empty() {
            info!("volume {pv_name} does not need any deletion secrets");
        }
        return Ok(None);
    }

    let class_name = pv_class(pv);
    if class_name.is_empty() {
        return Ok(None);
    }
    let Some(class) = classes
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(class_name.as_str()))
    else {
        warn!(
            "failed to get storageclass: {class_name}, proceeding to delete without secrets. storageclass.storage.k8s.io \"{class_name}\" not found"
        );
        return Ok(None);
    };
    // CSI migration: the in-tree class's secret parameters, as the driver knows them.
    let translated;
    let class = match migration.and_then(|m| m.translate_class(class)) {
        Some(result) => {
            debug!(
                v = 2,
                "translating storage class for in-tree plugin {} to CSI", class.provisioner
            );
            translated = result.map_err(DeleteError::Translate)?;
            &translated
        }
        None => class,
    };
    let Some(claim_ref) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        warn!(
            "claim reference does not exists in volume: {pv_name}, proceeding to delete without secrets."
        );
        return Ok(None);
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(claim_ref.name.clone().unwrap_or_default()),
            namespace: Some(claim_ref.namespace.clone().unwrap_or_default()),
            ..Default::default()
        },
        ..Default::default()
    };
    let parameters = class.parameters.clone().unwrap_or_default();
    secret_reference(
        &PROVISIONER_SECRET_PARAMS,
        &parameters,
        &pv_name,
        Some(&claim),
    )
    .map_err(|error| DeleteError::SecretReference {
        pv: pv_name.clone(),
        error,
    })
}

/// Deletes the volume of `pv` in the driver (upstream's `Delete`). With `--node-deployment`
/// only a volume this node can reach is deleted. `attachments` are the
/// VolumeAttachments when the driver attaches (`None`: no check). A secret that cannot be read
/// is logged and the volume deleted without it (it may be gone already).
pub async fn delete_volume(
    config: &ProvisionerConfig,
    pv: &PersistentVolume,
    classes: &[StorageClass],
    attachments: Option<&[VolumeAttachment]>,
    driver: &dyn VolumeDriver,
    secrets: &dyn SecretGetter,
) -> Result<(), DeleteError> {
    // CSI migration: an in-tree PV (kube-controller-manager hands its deletion over to the
    // driver) is deleted as the CSI PV it translates to.
    let migration = config
        .migration
        .as_ref()
        .filter(|m| m.translator.is_pv_migratable(pv));
    let translated;
    let pv = match migration {
        Some(m) => {
            translated = m
                .translator
                .translate_in_tree_pv_to_csi(pv)
                .map_err(DeleteError::Translate)?;
            &translated
        }
        None => pv,
    };
    let csi = pv
        .spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .ok_or(DeleteError::InvalidPv)?;
    let pv_name = pv.metadata.name.clone().unwrap_or_default();
    if let Some(node) = &config.node_deployment {
        let affinity = pv.spec.as_ref().and_then(|s| s.node_affinity.as_ref());
        if !volume_is_accessible(affinity, node.accessible_topology.as_ref())
            .map_err(DeleteError::Affinity)?
        {
            return Err(DeleteError::NotThisNode);
        }
    }
    let caps = &config.capabilities;
    if !caps.controller_service {
        return Err(DeleteError::MissingCapability(
            "CSI driver does not support dynamic provisioning: plugin CONTROLLER_SERVICE capability is not reported",
        ));
    }
    if !caps.create_delete_volume {
        return Err(DeleteError::MissingCapability(
            "CSI driver does not support dynamic provisioning: controller CREATE_DELETE_VOLUME capability is not reported",
        ));
    }

    let mut request = DeleteVolumeRequest {
        volume_id: csi.volume_handle.clone(),
        ..Default::default()
    };
    if let Some(reference) = deletion_secret(pv, classes, migration)? {
        match secret_data(secrets, &reference).await {
            Ok(data) => request.secrets = data.into_map(),
            Err(e) => error!("failed to get credentials for volume {pv_name}: {e}"),
        }
    }

    if let Some(attachment) = attachments
        .into_iter()
        .flatten()
        .find(|va| va.spec.source.persistent_volume_name.as_deref() == Some(pv_name.as_str()))
    {
        return Err(DeleteError::InUse {
            pv: pv_name,
            node: attachment.spec.node_name.clone(),
        });
    }

    let delete = driver.delete_volume(request, config.timeout);
    csi_connection::mark_as_migrated(migration.is_some(), delete)
        .await
        .map_err(DeleteError::Csi)
}
