//! The `ByVolumeHandle` index of PersistentVolumes (upstream's `pkg/utils/pvs.go`): finding
//! the PV of a driver's volume handle without a scan.

use k8s_openapi::api::core::v1::PersistentVolume;

/// The name of the PersistentVolume index by CSI driver and volume handle.
pub const CSI_DRIVER_HANDLE_INDEX_NAME: &str = "ByVolumeHandle";

/// The index key of a PV: `<driver>^<volume handle>`; empty for no PV or a PV that is not a
/// CSI volume.
pub fn persistent_volume_key(pv: Option<&PersistentVolume>) -> String {
    pv.and_then(|pv| pv.spec.as_ref())
        .and_then(|spec| spec.csi.as_ref())
        .map(|csi| persistent_volume_key_by_csi_driver_handle(&csi.driver, &csi.volume_handle))
        .unwrap_or_default()
}

/// The index key of a driver's volume handle: `<driver>^<volume handle>`.
pub fn persistent_volume_key_by_csi_driver_handle(driver: &str, volume_handle: &str) -> String {
    format!("{driver}^{volume_handle}")
}
