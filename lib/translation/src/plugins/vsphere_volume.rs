//! vSphere volumes (`kubernetes.io/vsphere-volume` → `csi.vsphere.vmware.com`). StorageClass
//! parameters the CSI driver knows under another name get a `-migrationparam` suffix, the rest
//! are dropped, and `csimigration=true` marks the class.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, PersistentVolume, PersistentVolumeSpec, Volume,
    VsphereVirtualDiskVolumeSource,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{CSI_FS_TYPE_KEY, FS_TYPE_KEY, InTreePlugin, one_mode, some_map, spec, spec_mut};
use crate::topology::{
    translate_allowed_topologies, translate_topology_from_csi_to_in_tree_vsphere,
    translate_topology_from_in_tree_vsphere_to_csi,
};
use crate::{Error, Result, go};

/// The CSI driver's name.
pub const VSPHERE_DRIVER_NAME: &str = "csi.vsphere.vmware.com";
/// The in-tree plugin's name.
pub const VSPHERE_IN_TREE_PLUGIN_NAME: &str = "kubernetes.io/vsphere-volume";

const ZONE_KEY: &str = "topology.csi.vmware.com/zone";
const REGION_KEY: &str = "topology.csi.vmware.com/region";
const PARAM_STORAGE_POLICY_NAME: &str = "storagepolicyname";
const PARAM_CSI_MIGRATION: &str = "csimigration";
const ATTRIBUTE_INITIAL_VOLUME_FILEPATH: &str = "initialvolumefilepath";

/// In-tree parameter (lower case) → CSI parameter.
const RENAMED_PARAMETERS: &[(&str, &str)] = &[
    ("datastore", "datastore-migrationparam"),
    ("diskformat", "diskformat-migrationparam"),
    (
        "hostfailurestotolerate",
        "hostfailurestotolerate-migrationparam",
    ),
    ("forceprovisioning", "forceprovisioning-migrationparam"),
    ("cachereservation", "cachereservation-migrationparam"),
    ("diskstripes", "diskstripes-migrationparam"),
    (
        "objectspacereservation",
        "objectspacereservation-migrationparam",
    ),
    ("iopslimit", "iopslimit-migrationparam"),
];

#[derive(Debug)]
pub(crate) struct VSphere;

fn csi_source(source: &VsphereVirtualDiskVolumeSource) -> CSIPersistentVolumeSource {
    let mut attributes = BTreeMap::new();
    if let Some(policy) = source
        .storage_policy_name
        .as_ref()
        .filter(|p| !p.is_empty())
    {
        attributes.insert(PARAM_STORAGE_POLICY_NAME.to_owned(), policy.clone());
    }
    CSIPersistentVolumeSource {
        driver: VSPHERE_DRIVER_NAME.to_owned(),
        volume_handle: source.volume_path.clone(),
        fs_type: go::some_str(go::str(&source.fs_type)),
        volume_attributes: some_map(attributes),
        ..Default::default()
    }
}

impl InTreePlugin for VSphere {
    fn translate_in_tree_storage_class_to_csi(&self, mut sc: StorageClass) -> Result<StorageClass> {
        let mut params = BTreeMap::new();
        for (k, v) in sc.parameters.take().unwrap_or_default() {
            let lower = k.to_lowercase();
            if lower == FS_TYPE_KEY {
                params.insert(CSI_FS_TYPE_KEY.to_owned(), v);
            } else if lower == PARAM_STORAGE_POLICY_NAME {
                params.insert(PARAM_STORAGE_POLICY_NAME.to_owned(), v);
            } else if let Some((_, csi)) = RENAMED_PARAMETERS.iter().find(|(p, _)| *p == lower) {
                params.insert((*csi).to_owned(), v);
            } else {
                tracing::debug!(name = %k, value = %v, "StorageClass parameter is not supported");
            }
        }
        params.insert(PARAM_CSI_MIGRATION.to_owned(), "true".to_owned());
        if let Some(terms) = sc.allowed_topologies.as_deref().filter(|t| !t.is_empty()) {
            sc.allowed_topologies = Some(translate_allowed_topologies(terms, ZONE_KEY));
        }
        sc.parameters = Some(params);
        Ok(sc)
    }

    fn translate_in_tree_inline_volume_to_csi(
        &self,
        volume: &Volume,
        _pod_namespace: &str,
    ) -> Result<PersistentVolume> {
        let source = volume
            .vsphere_volume
            .as_ref()
            .ok_or_else(|| Error::new("volume is nil or VsphereVolume not defined on volume"))?;
        if source
            .storage_policy_name
            .as_ref()
            .is_some_and(|p| !p.is_empty())
        {
            // csi-translation-lib reads the policy from the PV it is building, which has no
            // vSphere source, and crashes; here that is an error.
            return Err(Error::new(
                "inline vSphere volume with a storage policy name cannot be translated",
            ));
        }
        Ok(PersistentVolume {
            metadata: ObjectMeta {
                name: Some(format!("{VSPHERE_DRIVER_NAME}-{}", source.volume_path)),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                csi: Some(csi_source(source)),
                access_modes: one_mode("ReadWriteOnce"),
                ..Default::default()
            }),
            status: None,
        })
    }

    fn translate_in_tree_pv_to_csi(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let source = spec(&pv)
            .and_then(|s| s.vsphere_volume.clone())
            .ok_or_else(|| Error::new("pv is nil or VsphereVolume not defined on pv"))?;
        let csi = csi_source(&source);
        translate_topology_from_in_tree_vsphere_to_csi(&mut pv, ZONE_KEY, REGION_KEY);
        let spec = spec_mut(&mut pv);
        spec.vsphere_volume = None;
        spec.csi = Some(csi);
        Ok(pv)
    }

    fn translate_csi_pv_to_in_tree(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let csi = spec(&pv)
            .and_then(|s| s.csi.clone())
            .ok_or_else(|| Error::new("pv is nil or CSI source not defined on pv"))?;
        let source = VsphereVirtualDiskVolumeSource {
            fs_type: go::some_str(go::str(&csi.fs_type)),
            volume_path: csi
                .volume_attributes
                .as_ref()
                .and_then(|a| a.get(ATTRIBUTE_INITIAL_VOLUME_FILEPATH))
                .cloned()
                .unwrap_or_default(),
            ..Default::default()
        };
        translate_topology_from_csi_to_in_tree_vsphere(&mut pv, ZONE_KEY, REGION_KEY);
        let spec = spec_mut(&mut pv);
        spec.csi = None;
        spec.vsphere_volume = Some(source);
        Ok(pv)
    }

    fn can_support(&self, pv: &PersistentVolume) -> bool {
        spec(pv).is_some_and(|s| s.vsphere_volume.is_some())
    }

    fn can_support_inline(&self, volume: &Volume) -> bool {
        volume.vsphere_volume.is_some()
    }

    fn in_tree_plugin_name(&self) -> &'static str {
        VSPHERE_IN_TREE_PLUGIN_NAME
    }

    fn csi_plugin_name(&self) -> &'static str {
        VSPHERE_DRIVER_NAME
    }
}
