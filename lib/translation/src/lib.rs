//! CSI migration: translation of in-tree volume sources to their CSI driver's form and back.
//!
//! A driver that replaced an in-tree volume plugin (GCE PD, AWS EBS, Azure Disk, Azure File,
//! Cinder, vSphere, Portworx) keeps serving PersistentVolumes that still carry the in-tree source.
//! The sidecars translate such a PV to a CSI PV before they talk to the driver, a StorageClass of
//! the in-tree provisioner to the driver's parameters, and a provisioned CSI PV back to the
//! in-tree form the claim's StorageClass promised. The rules are those of Kubernetes'
//! `k8s.io/csi-translation-lib` v0.36, rule for rule, error message for error message; what the
//! translation writes serializes to the JSON that library writes (Go's empty values become
//! absent fields here).
//!
//! This crate only transforms objects: it never reads or writes the API server.

mod error;
mod go;
pub mod plugins;
mod topology;

use k8s_openapi::api::core::v1::{PersistentVolume, Volume};
use k8s_openapi::api::storage::v1::StorageClass;

pub use error::{Error, Result};
pub use plugins::InTreePlugin;
pub use topology::topology_key_exist;

/// The `pv.kubernetes.io/migrated-to` annotation: the CSI driver a migrated PV or PVC is handled
/// by, set by kube-controller-manager.
pub const ANN_MIGRATED_TO: &str = "pv.kubernetes.io/migrated-to";

/// The in-tree PVs and inline volumes every plugin translates, in a fixed order.
fn in_tree_plugins() -> &'static [&'static dyn InTreePlugin] {
    plugins::ALL
}

fn plugin_by_csi_name(driver: &str) -> Option<&'static dyn InTreePlugin> {
    in_tree_plugins()
        .iter()
        .copied()
        .find(|p| p.csi_plugin_name() == driver)
}

fn plugin_by_in_tree_name(name: &str) -> Option<&'static dyn InTreePlugin> {
    in_tree_plugins()
        .iter()
        .copied()
        .find(|p| p.in_tree_plugin_name() == name)
}

/// Translates a StorageClass of the in-tree provisioner `in_tree_plugin_name` into the
/// StorageClass its CSI driver understands (parameters renamed, `zone`/`zones` turned into
/// allowed topologies of the driver's topology key).
pub fn translate_in_tree_storage_class_to_csi(
    in_tree_plugin_name: &str,
    sc: &StorageClass,
) -> Result<StorageClass> {
    let plugin = plugin_by_in_tree_name(in_tree_plugin_name).ok_or_else(|| {
        Error::new(format!(
            "could not find in-tree storage class parameter translation logic for {:?}",
            in_tree_plugin_name
        ))
    })?;
    plugin.translate_in_tree_storage_class_to_csi(sc.clone())
}

/// Translates an in-tree inline volume of a Pod into a CSI PV (volume mode Filesystem unless the
/// plugin set one).
pub fn translate_in_tree_inline_volume_to_csi(
    volume: &Volume,
    pod_namespace: &str,
) -> Result<PersistentVolume> {
    for plugin in in_tree_plugins() {
        if plugin.can_support_inline(volume) {
            let mut pv = plugin.translate_in_tree_inline_volume_to_csi(volume, pod_namespace)?;
            let spec = pv.spec.get_or_insert_with(Default::default);
            if spec.volume_mode.is_none() {
                spec.volume_mode = Some("Filesystem".to_owned());
            }
            return Ok(pv);
        }
    }
    Err(Error::new(format!(
        "could not find in-tree plugin translation logic for {:?}",
        volume.name
    )))
}

/// Translates an in-tree PV into the CSI PV its driver handles.
pub fn translate_in_tree_pv_to_csi(pv: &PersistentVolume) -> Result<PersistentVolume> {
    for plugin in in_tree_plugins() {
        if plugin.can_support(pv) {
            return plugin.translate_in_tree_pv_to_csi(pv.clone());
        }
    }
    Err(Error::new(format!(
        "could not find in-tree plugin translation logic for {:?}",
        go::name(&pv.metadata.name)
    )))
}

/// Translates a CSI PV of a migrated driver back into the in-tree PV it stands for.
pub fn translate_csi_pv_to_in_tree(pv: &PersistentVolume) -> Result<PersistentVolume> {
    let Some(csi) = pv.spec.as_ref().and_then(|s| s.csi.as_ref()) else {
        return Err(Error::new("CSI persistent volume was nil"));
    };
    let plugin = plugin_by_csi_name(&csi.driver).ok_or_else(|| {
        Error::new(format!(
            "could not find in-tree plugin translation logic for {}",
            csi.driver
        ))
    })?;
    plugin.translate_csi_pv_to_in_tree(pv.clone())
}

/// Whether `in_tree_plugin_name` (`kubernetes.io/gce-pd`, …) is a plugin that migrates to CSI.
pub fn is_migratable_in_tree_plugin_by_name(in_tree_plugin_name: &str) -> bool {
    plugin_by_in_tree_name(in_tree_plugin_name).is_some()
}

/// Whether `csi_plugin_name` is the CSI driver of a migrated in-tree plugin.
pub fn is_migrated_csi_driver_by_name(csi_plugin_name: &str) -> bool {
    plugin_by_csi_name(csi_plugin_name).is_some()
}

/// The in-tree plugin name of a PV (when given) or else of an inline volume.
pub fn get_in_tree_plugin_name_from_spec(
    pv: Option<&PersistentVolume>,
    volume: Option<&Volume>,
) -> Result<&'static str> {
    if let Some(pv) = pv {
        return in_tree_plugins()
            .iter()
            .find(|p| p.can_support(pv))
            .map(|p| p.in_tree_plugin_name())
            .ok_or_else(|| {
                Error::new(format!(
                    "could not find in-tree plugin name from persistent volume {}",
                    go::name(&pv.metadata.name)
                ))
            });
    }
    if let Some(volume) = volume {
        return in_tree_plugins()
            .iter()
            .find(|p| p.can_support_inline(volume))
            .map(|p| p.in_tree_plugin_name())
            .ok_or_else(|| {
                Error::new(format!(
                    "could not find in-tree plugin name from volume {}",
                    volume.name
                ))
            });
    }
    Err(Error::new("both persistent volume and volume are nil"))
}

/// The CSI driver name of an in-tree plugin.
pub fn get_csi_name_from_in_tree_name(plugin_name: &str) -> Result<&'static str> {
    plugin_by_in_tree_name(plugin_name)
        .map(|p| p.csi_plugin_name())
        .ok_or_else(|| {
            Error::new(format!(
                "could not find CSI Driver name for plugin {plugin_name}"
            ))
        })
}

/// The in-tree plugin name of a migrated CSI driver.
pub fn get_in_tree_name_from_csi_name(plugin_name: &str) -> Result<&'static str> {
    plugin_by_csi_name(plugin_name)
        .map(|p| p.in_tree_plugin_name())
        .ok_or_else(|| {
            Error::new(format!(
                "could not find In-Tree driver name for CSI plugin {plugin_name}"
            ))
        })
}

/// Whether a PV has an in-tree source that migrates to CSI.
pub fn is_pv_migratable(pv: &PersistentVolume) -> bool {
    in_tree_plugins().iter().any(|p| p.can_support(pv))
}

/// Whether an inline volume has an in-tree source that migrates to CSI.
pub fn is_inline_migratable(volume: &Volume) -> bool {
    in_tree_plugins()
        .iter()
        .any(|p| p.can_support_inline(volume))
}

/// Completes a volume handle that was translated without all its parts (GCE PD writes
/// `UNSPECIFIED` for the project and sometimes the zone) from the node ID of the node it is
/// attached to. Other drivers' handles come back unchanged.
pub fn repair_volume_handle(
    driver_name: &str,
    volume_handle: &str,
    node_id: &str,
) -> Result<String> {
    let plugin = plugin_by_csi_name(driver_name).ok_or_else(|| {
        Error::new(format!(
            "could not find In-Tree driver name for CSI plugin {driver_name}"
        ))
    })?;
    plugin.repair_volume_handle(volume_handle, node_id)
}
