//! The CSI modifier (upstream's `pkg/modifier`): `ControllerModifyVolume` for a
//! PersistentVolume, with the VolumeAttributesClass's parameters as mutable parameters and the
//! modify secrets.
//!
//! The secrets come from the PV's annotations
//! `volume.kubernetes.io/controller-modify-secret-{name,namespace}`, which external-provisioner
//! writes from the StorageClass's `csi.storage.k8s.io/controller-modify-secret-*` parameters;
//! without both, from the PV's `controllerExpandSecretRef`; without either, there are none.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use csi_controller::SecretGetter;
use csi_controller::secrets::{GetSecretError, secret_data};
use csi_proto::csi::v1::ControllerModifyVolumeRequest;
use k8s_openapi::api::core::v1::{PersistentVolume, SecretReference};
use tonic::Status;

use super::csi::ModifyDriver;

/// The PV annotation naming the modify secret (written by external-provisioner).
pub const ANN_MODIFY_SECRET_NAME: &str = "volume.kubernetes.io/controller-modify-secret-name";
/// The PV annotation naming the modify secret's namespace.
pub const ANN_MODIFY_SECRET_NAMESPACE: &str =
    "volume.kubernetes.io/controller-modify-secret-namespace";

/// Why a modifier could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NewModifierError {
    /// The driver does not report `MODIFY_VOLUME` (upstream's `ModifyNotSupportErr`):
    /// modification is off, which is not a failure of the sidecar.
    #[error("CSI driver does not support controller modify")]
    NotSupported,
    /// Asking the driver for its capabilities failed.
    #[error("failed to check if plugin supports controller modify: {0}")]
    Capabilities(String),
}

/// Why a modification failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModifierError {
    /// The PV has no CSI source.
    #[error("volume {0} is not a CSI volumes, modify volume feature only supports CSI volumes")]
    NotCsi(String),
    /// The PV's CSI source has no volume handle.
    #[error("empty volume handle")]
    EmptyHandle,
    /// The modify secret could not be read.
    #[error(transparent)]
    Secret(#[from] GetSecretError),
    /// The driver (or our deadline) answered with a gRPC status.
    #[error("{}", csi_connection::format_status(.0))]
    Csi(Status),
}

/// Modifies volumes through the CSI driver (upstream's `csiModifier`).
pub struct Modifier {
    name: String,
    driver: Arc<dyn ModifyDriver>,
    secrets: Arc<dyn SecretGetter>,
    timeout: Duration,
}

impl fmt::Debug for Modifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Modifier")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Modifier {
    /// A modifier for `driver_name` (upstream's `NewModifierFromClient`): asks the driver
    /// whether it supports `MODIFY_VOLUME` within `timeout`, and uses `timeout` for every
    /// `ControllerModifyVolume`.
    pub async fn new(
        driver: Arc<dyn ModifyDriver>,
        secrets: Arc<dyn SecretGetter>,
        timeout: Duration,
        driver_name: impl Into<String>,
    ) -> Result<Self, NewModifierError> {
        let supported = driver
            .supports_controller_modify(timeout)
            .await
            .map_err(NewModifierError::Capabilities)?;
        if !supported {
            return Err(NewModifierError::NotSupported);
        }
        Ok(Modifier {
            name: driver_name.into(),
            driver,
            secrets,
            timeout,
        })
    }

    /// The driver name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ControllerModifyVolume` of `pv`'s volume with `mutable_parameters`.
    pub async fn modify(
        &self,
        pv: &PersistentVolume,
        mutable_parameters: HashMap<String, String>,
    ) -> Result<(), ModifierError> {
        let pv_name = pv.metadata.name.clone().unwrap_or_default();
        let Some(source) = pv.spec.as_ref().and_then(|spec| spec.csi.as_ref()) else {
            return Err(ModifierError::NotCsi(pv_name));
        };
        if source.volume_handle.is_empty() {
            return Err(ModifierError::EmptyHandle);
        }
        let annotations = pv.metadata.annotations.as_ref();
        let secrets = self
            .modify_credentials(source.controller_expand_secret_ref.as_ref(), annotations)
            .await?;
        let request = ControllerModifyVolumeRequest {
            volume_id: source.volume_handle.clone(),
            secrets,
            mutable_parameters,
        };
        self.driver
            .modify_volume(request, self.timeout)
            .await
            .map_err(ModifierError::Csi)
    }

    /// The modify secret's data: the one the annotations name, else `expand_secret`, else
    /// none (upstream's `getModifyCredentials`).
    async fn modify_credentials(
        &self,
        expand_secret: Option<&SecretReference>,
        annotations: Option<&std::collections::BTreeMap<String, String>>,
    ) -> Result<HashMap<String, String>, GetSecretError> {
        let annotation = |key: &str| {
            annotations
                .and_then(|a| a.get(key))
                .cloned()
                .unwrap_or_default()
        };
        let (name, namespace) = (
            annotation(ANN_MODIFY_SECRET_NAME),
            annotation(ANN_MODIFY_SECRET_NAMESPACE),
        );
        let reference = if name.is_empty() || namespace.is_empty() {
            match expand_secret {
                None => return Ok(HashMap::new()),
                Some(reference) => reference.clone(),
            }
        } else {
            SecretReference {
                name: Some(name),
                namespace: Some(namespace),
            }
        };
        Ok(secret_data(self.secrets.as_ref(), &reference)
            .await?
            .into_map())
    }
}
