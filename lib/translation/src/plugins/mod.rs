//! One translator per in-tree plugin, each behind [`InTreePlugin`].

mod aws_ebs;
mod azure_disk;
mod azure_file;
mod gce_pd;
mod openstack_cinder;
mod portworx;
mod vsphere_volume;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolume, Volume};
use k8s_openapi::api::storage::v1::StorageClass;

use crate::Result;

pub use aws_ebs::{
    AWS_EBS_DRIVER_NAME, AWS_EBS_IN_TREE_PLUGIN_NAME, AWS_EBS_TOPOLOGY_KEY,
    kubernetes_volume_id_to_ebs_volume_id,
};
pub use azure_disk::{
    AZURE_DISK_DRIVER_NAME, AZURE_DISK_IN_TREE_PLUGIN_NAME, AZURE_DISK_TOPOLOGY_KEY,
};
pub use azure_file::{AZURE_FILE_DRIVER_NAME, AZURE_FILE_IN_TREE_PLUGIN_NAME};
pub use gce_pd::{
    GCE_PD_DRIVER_NAME, GCE_PD_IN_TREE_PLUGIN_NAME, GCE_PD_TOPOLOGY_KEY, UNSPECIFIED_VALUE,
};
pub use openstack_cinder::{CINDER_DRIVER_NAME, CINDER_IN_TREE_PLUGIN_NAME, CINDER_TOPOLOGY_KEY};
pub use portworx::{PORTWORX_DRIVER_NAME, PORTWORX_VOLUME_PLUGIN_NAME};
pub use vsphere_volume::{VSPHERE_DRIVER_NAME, VSPHERE_IN_TREE_PLUGIN_NAME};

/// What one in-tree plugin's translation does.
pub trait InTreePlugin: Sync + std::fmt::Debug {
    /// The StorageClass the CSI driver understands, from one of the in-tree provisioner.
    fn translate_in_tree_storage_class_to_csi(&self, sc: StorageClass) -> Result<StorageClass>;
    /// A CSI PV for an inline volume of a Pod in `pod_namespace`.
    fn translate_in_tree_inline_volume_to_csi(
        &self,
        volume: &Volume,
        pod_namespace: &str,
    ) -> Result<PersistentVolume>;
    /// The CSI PV for an in-tree PV.
    fn translate_in_tree_pv_to_csi(&self, pv: PersistentVolume) -> Result<PersistentVolume>;
    /// The in-tree PV for a CSI PV of this plugin's driver.
    fn translate_csi_pv_to_in_tree(&self, pv: PersistentVolume) -> Result<PersistentVolume>;
    /// Whether the PV has this plugin's in-tree source.
    fn can_support(&self, pv: &PersistentVolume) -> bool;
    /// Whether the inline volume has this plugin's in-tree source.
    fn can_support_inline(&self, volume: &Volume) -> bool;
    /// `kubernetes.io/<plugin>`.
    fn in_tree_plugin_name(&self) -> &'static str;
    /// The CSI driver's name.
    fn csi_plugin_name(&self) -> &'static str;
    /// The volume handle completed from the node ID, where the plugin needs that.
    fn repair_volume_handle(&self, volume_handle: &str, _node_id: &str) -> Result<String> {
        Ok(volume_handle.to_owned())
    }
}

/// GCE PD's region parser, for the topology tests.
#[cfg(test)]
pub(crate) fn gce_region_parser() -> crate::topology::RegionParser {
    gce_pd::gce_get_region_from_zones
}

/// Every plugin `csi-translation-lib` knows.
pub static ALL: &[&dyn InTreePlugin] = &[
    &gce_pd::GcePersistentDisk,
    &aws_ebs::AwsElasticBlockStore,
    &openstack_cinder::OpenStackCinder,
    &azure_disk::AzureDisk,
    &azure_file::AzureFile,
    &vsphere_volume::VSphere,
    &portworx::Portworx,
];

/// The plugin of a migrated CSI driver.
pub fn by_csi_name(driver: &str) -> Option<&'static dyn InTreePlugin> {
    ALL.iter().copied().find(|p| p.csi_plugin_name() == driver)
}

/// StorageClass parameter names (compared in lower case).
pub(crate) const FS_TYPE_KEY: &str = "fstype";
pub(crate) const CSI_FS_TYPE_KEY: &str = "csi.storage.k8s.io/fstype";
pub(crate) const ZONE_KEY: &str = "zone";
pub(crate) const ZONES_KEY: &str = "zones";

fn spec(pv: &PersistentVolume) -> Option<&k8s_openapi::api::core::v1::PersistentVolumeSpec> {
    pv.spec.as_ref()
}

fn spec_mut(pv: &mut PersistentVolume) -> &mut k8s_openapi::api::core::v1::PersistentVolumeSpec {
    pv.spec.get_or_insert_with(Default::default)
}

fn one_mode(mode: &str) -> Option<Vec<String>> {
    Some(vec![mode.to_owned()])
}

fn attributes<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// `None` for an empty map (Go writes no field for it).
fn some_map(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

/// StorageClass topology: `zone`/`zones` parameters become allowed topologies on `key`; they
/// cannot be combined with allowed topologies of the class; existing allowed topologies have
/// their zone key moved to `key`.
fn apply_generated_topologies(
    sc: &mut StorageClass,
    generated: Option<Vec<k8s_openapi::api::core::v1::TopologySelectorTerm>>,
    key: &str,
) -> Result<()> {
    let existing = sc.allowed_topologies.as_deref().unwrap_or_default();
    match generated {
        Some(_) if !existing.is_empty() => Err(crate::Error::new(
            "cannot simultaneously set allowed topologies and zone/zones parameters",
        )),
        Some(generated) => {
            sc.allowed_topologies = Some(generated);
            Ok(())
        }
        None => {
            if !existing.is_empty() {
                sc.allowed_topologies =
                    Some(crate::topology::translate_allowed_topologies(existing, key));
            }
            Ok(())
        }
    }
}
