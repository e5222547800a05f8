//! Upstream's `pkg/resizer`: what expands one volume. [`CsiResizer`] calls
//! `ControllerExpandVolume` with the volume's expand secret and capability;
//! [`TrivialResizer`], for drivers that expand only on the node, reports the requested size
//! with node expansion required; [`new_resizer`] picks one from the driver's capabilities.
//!
//! CSI migration: a driver that replaced an in-tree plugin also expands that plugin's PVs when
//! kube-controller-manager handed the claim to it (`volume.kubernetes.io/storage-resizer` is the
//! driver), through the CSI PV `csi-translation` makes of them, as upstream does.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use csi_connection::accessmodes::to_csi_access_mode;
use csi_controller::SecretGetter;
use csi_controller::secrets::secret_data;
use csi_proto::csi::v1::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use csi_proto::csi::v1::{CapacityRange, ControllerExpandVolumeRequest, VolumeCapability};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use tonic::Code;
use tracing::{debug, info};

use super::csi::{CsiError, ExpandDriver};
use super::util::{ANN_VOLUME_RESIZER, bytes_to_quantity, quantity_value};

/// The outcome of a successful expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct Resized {
    /// The volume's new size.
    pub size: Quantity,
    /// Whether the node must finish (grow the file system).
    pub node_expansion_required: bool,
}

/// Why an expansion failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResizeError {
    /// The driver's `ControllerExpandVolume` failed.
    #[error(transparent)]
    Csi(#[from] CsiError),
    /// The request could not be made (secret, capability, volume handle, in-tree volume).
    #[error("{0}")]
    Other(String),
}

impl ResizeError {
    /// The gRPC code, when the driver answered with one.
    pub fn code(&self) -> Option<Code> {
        match self {
            ResizeError::Csi(err) => err.code(),
            ResizeError::Other(_) => None,
        }
    }
}

/// What handles PVC resize requests (upstream's `resizer.Resizer`).
pub trait Resizer: Send + Sync + fmt::Debug {
    /// The resizer's name: the driver name.
    fn name(&self) -> &str;
    /// Whether the driver expands in the control plane (false for [`TrivialResizer`]).
    fn driver_supports_control_plane_expansion(&self) -> bool;
    /// Whether this resizer expands `pv` (a CSI volume of this driver).
    fn can_support(&self, pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool;
    /// Expands `pv` to `request`.
    fn resize<'a>(
        &'a self,
        pv: &'a PersistentVolume,
        request: &'a Quantity,
    ) -> BoxFuture<'a, Result<Resized, ResizeError>>;
}

/// Why no resizer could be made (upstream's `NewResizerFromClient` errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NewResizerError {
    /// The plugin has no controller service (fatal upstream).
    #[error("CSI driver does not support controller service")]
    ControllerServiceNotSupported,
    /// Neither controller nor node expansion (upstream then runs without the resize
    /// controller).
    #[error("CSI driver neither supports controller resize nor node resize")]
    ResizeNotSupported,
    /// A capability check failed.
    #[error("{0}")]
    Probe(String),
}

/// Upstream's `NewResizerFromClient`: checks the driver's capabilities (each call with
/// `timeout`) and returns the CSI resizer, or the trivial one when the driver expands only on
/// the node.
pub async fn new_resizer(
    driver: Arc<dyn ExpandDriver>,
    secrets: Arc<dyn SecretGetter>,
    driver_name: &str,
    timeout: Duration,
) -> Result<Arc<dyn Resizer>, NewResizerError> {
    let controller_service = driver
        .supports_plugin_controller_service(timeout)
        .await
        .map_err(|e| {
            NewResizerError::Probe(format!(
                "failed to check if plugin supports controller service: {e}"
            ))
        })?;
    if !controller_service {
        return Err(NewResizerError::ControllerServiceNotSupported);
    }
    let controller_resize = driver
        .supports_controller_resize(timeout)
        .await
        .map_err(|e| {
            NewResizerError::Probe(format!(
                "failed to check if plugin supports controller resize: {e}"
            ))
        })?;
    if !controller_resize {
        let node_resize = driver.supports_node_resize(timeout).await.map_err(|e| {
            NewResizerError::Probe(format!(
                "failed to check if plugin supports node resize: {e}"
            ))
        })?;
        if node_resize {
            info!(
                "The CSI driver supports node resize only, using trivial resizer to handle resize requests"
            );
            return Ok(Arc::new(TrivialResizer::new(driver_name)));
        }
        return Err(NewResizerError::ResizeNotSupported);
    }
    let single_node_multi_writer = driver
        .supports_controller_single_node_multi_writer(timeout)
        .await
        .map_err(|e| {
            NewResizerError::Probe(format!(
                "failed to check if plugin supports the SINGLE_NODE_MULTI_WRITER capability: {e}"
            ))
        })?;
    Ok(Arc::new(CsiResizer {
        name: driver_name.to_string(),
        driver,
        secrets,
        timeout,
        single_node_multi_writer,
    }))
}

/// Whether `pv` is a CSI volume of `driver` (both resizers' `CanSupport`).
/// Upstream's `CanSupport` of both resizers: a CSI PV of `driver`, or any PV of a claim that
/// kube-controller-manager handed to `driver` by CSI migration (its resizer annotation is the
/// driver rather than the in-tree plugin).
fn supports(driver: &str, pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let resizer = claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_VOLUME_RESIZER));
    if csi_translation::is_migrated_csi_driver_by_name(driver)
        && resizer.map(String::as_str) == Some(driver)
    {
        return true;
    }
    is_csi_volume_of(pv, driver)
}

fn is_csi_volume_of(pv: &PersistentVolume, driver: &str) -> bool {
    match pv.spec.as_ref().and_then(|s| s.csi.as_ref()) {
        None => {
            debug!(v = 4, pv = ?pv.metadata.name, "PV is not a CSI volume, skip it");
            false
        }
        Some(csi) if csi.driver != driver => {
            debug!(v = 4, pv = ?pv.metadata.name, resizer = %csi.driver, "Skip resize PV");
            false
        }
        Some(_) => true,
    }
}

/// The resizer of a driver with controller expansion.
pub struct CsiResizer {
    name: String,
    driver: Arc<dyn ExpandDriver>,
    secrets: Arc<dyn SecretGetter>,
    timeout: Duration,
    /// Asked once, when the resizer is made (upstream asks again before every expansion).
    single_node_multi_writer: bool,
}

impl fmt::Debug for CsiResizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsiResizer")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl CsiResizer {
    /// A resizer for `driver_name` (no capability checks: [`new_resizer`] makes them).
    pub fn new(
        driver_name: &str,
        driver: Arc<dyn ExpandDriver>,
        secrets: Arc<dyn SecretGetter>,
        timeout: Duration,
        single_node_multi_writer: bool,
    ) -> Self {
        CsiResizer {
            name: driver_name.to_string(),
            driver,
            secrets,
            timeout,
            single_node_multi_writer,
        }
    }
}

impl Resizer for CsiResizer {
    fn name(&self) -> &str {
        &self.name
    }

    fn driver_supports_control_plane_expansion(&self) -> bool {
        true
    }

    fn can_support(&self, pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
        supports(&self.name, pv, claim)
    }

    fn resize<'a>(
        &'a self,
        pv: &'a PersistentVolume,
        request: &'a Quantity,
    ) -> BoxFuture<'a, Result<Resized, ResizeError>> {
        Box::pin(async move {
            let pv_name = pv.metadata.name.clone().unwrap_or_default();
            let mut spec = pv.spec.clone().unwrap_or_default();
            let migrated = spec.csi.is_none();
            if migrated {
                if !csi_translation::is_migrated_csi_driver_by_name(&self.name) {
                    return Err(ResizeError::Other(format!(
                        "volume {pv_name} is not migrated to CSI"
                    )));
                }
                let translated = csi_translation::translate_in_tree_pv_to_csi(pv).map_err(|e| {
                    ResizeError::Other(format!("failed to translate persistent volume: {e}"))
                })?;
                spec = translated.spec.unwrap_or_default();
            }
            let Some(source) = spec.csi.as_ref() else {
                return Err(ResizeError::Other(format!(
                    "volume {pv_name} is not migrated to CSI"
                )));
            };
            if source.volume_handle.is_empty() {
                return Err(ResizeError::Other("empty volume handle".into()));
            }
            let secrets = match &source.controller_expand_secret_ref {
                Some(reference) => secret_data(&*self.secrets, reference)
                    .await
                    .map_err(|e| ResizeError::Other(e.to_string()))?
                    .into_map(),
                None => Default::default(),
            };
            let capability =
                volume_capabilities(&spec, self.single_node_multi_writer).map_err(|e| {
                    ResizeError::Other(format!(
                        "failed to get capabilities of volume {pv_name} with {e}"
                    ))
                })?;
            let request = ControllerExpandVolumeRequest {
                volume_id: source.volume_handle.clone(),
                capacity_range: Some(CapacityRange {
                    required_bytes: quantity_value(&request.0).unwrap_or(0),
                    limit_bytes: 0,
                }),
                secrets: secrets.into_iter().collect(),
                volume_capability: Some(capability),
            };
            let expand = self.driver.expand(request, self.timeout);
            let response = csi_connection::mark_as_migrated(migrated, expand).await?;
            Ok(Resized {
                size: bytes_to_quantity(response.capacity_bytes),
                node_expansion_required: response.node_expansion_required,
            })
        })
    }
}

/// The resizer of a driver that expands only on the node: every expansion "succeeds" at the
/// requested size with node expansion required (upstream's `trivialResizer`).
#[derive(Debug, Clone)]
pub struct TrivialResizer {
    name: String,
}

impl TrivialResizer {
    /// The trivial resizer of `driver_name`.
    pub fn new(driver_name: &str) -> Self {
        TrivialResizer {
            name: driver_name.to_string(),
        }
    }
}

impl Resizer for TrivialResizer {
    fn name(&self) -> &str {
        &self.name
    }

    fn driver_supports_control_plane_expansion(&self) -> bool {
        false
    }

    fn can_support(&self, pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
        supports(&self.name, pv, claim)
    }

    fn resize<'a>(
        &'a self,
        _pv: &'a PersistentVolume,
        request: &'a Quantity,
    ) -> BoxFuture<'a, Result<Resized, ResizeError>> {
        Box::pin(async move {
            Ok(Resized {
                size: request.clone(),
                node_expansion_required: true,
            })
        })
    }
}

/// Upstream's `GetVolumeCapabilities`: a block capability for block volumes, else a mount
/// capability with the PV's fsType and mount options; the access mode from the PV's access
/// modes (`single_node_multi_writer`: the driver has SINGLE_NODE_MULTI_WRITER).
pub fn volume_capabilities(
    spec: &PersistentVolumeSpec,
    single_node_multi_writer: bool,
) -> Result<VolumeCapability, String> {
    let Some(csi) = spec.csi.as_ref() else {
        return Err("CSI volume source was nil".into());
    };
    let access_type = if spec.volume_mode.as_deref() == Some("Block") {
        AccessType::Block(BlockVolume {})
    } else {
        AccessType::Mount(MountVolume {
            fs_type: csi.fs_type.clone().unwrap_or_default(),
            mount_flags: spec.mount_options.clone().unwrap_or_default(),
            volume_mount_group: String::new(),
        })
    };
    let modes = spec.access_modes.as_deref().unwrap_or_default();
    let mode = to_csi_access_mode(modes, single_node_multi_writer)?;
    Ok(VolumeCapability {
        access_type: Some(access_type),
        access_mode: Some(AccessMode { mode: mode.into() }),
    })
}
