//! OpenStack Cinder (`kubernetes.io/cinder` → `cinder.csi.openstack.org`). The handle is the
//! Cinder volume ID; zones move to the driver's key, regions are not derived.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, CinderPersistentVolumeSource, PersistentVolume,
    PersistentVolumeSpec, Volume,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{CSI_FS_TYPE_KEY, FS_TYPE_KEY, InTreePlugin, one_mode, spec, spec_mut};
use crate::topology::{
    translate_allowed_topologies, translate_topology_from_csi_to_in_tree,
    translate_topology_from_in_tree_to_csi,
};
use crate::{Error, Result, go};

/// The CSI driver's name.
pub const CINDER_DRIVER_NAME: &str = "cinder.csi.openstack.org";
/// The driver's zone topology key.
pub const CINDER_TOPOLOGY_KEY: &str = "topology.cinder.csi.openstack.org/zone";
/// The in-tree plugin's name.
pub const CINDER_IN_TREE_PLUGIN_NAME: &str = "kubernetes.io/cinder";

#[derive(Debug)]
pub(crate) struct OpenStackCinder;

fn csi_source(
    volume_id: &str,
    read_only: Option<bool>,
    fs_type: &Option<String>,
) -> CSIPersistentVolumeSource {
    CSIPersistentVolumeSource {
        driver: CINDER_DRIVER_NAME.to_owned(),
        volume_handle: volume_id.to_owned(),
        read_only: go::some_true(read_only.unwrap_or(false)),
        fs_type: go::some_str(go::str(fs_type)),
        volume_attributes: None,
        ..Default::default()
    }
}

impl InTreePlugin for OpenStackCinder {
    fn translate_in_tree_storage_class_to_csi(&self, mut sc: StorageClass) -> Result<StorageClass> {
        let mut params = BTreeMap::new();
        for (k, v) in sc.parameters.take().unwrap_or_default() {
            if k.to_lowercase() == FS_TYPE_KEY {
                params.insert(CSI_FS_TYPE_KEY.to_owned(), v);
            } else {
                params.insert(k, v);
            }
        }
        if let Some(terms) = sc.allowed_topologies.as_deref().filter(|t| !t.is_empty()) {
            sc.allowed_topologies = Some(translate_allowed_topologies(terms, CINDER_TOPOLOGY_KEY));
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
            .cinder
            .as_ref()
            .ok_or_else(|| Error::new("volume is nil or Cinder not defined on volume"))?;
        Ok(PersistentVolume {
            metadata: ObjectMeta {
                name: Some(format!("{CINDER_DRIVER_NAME}-{}", source.volume_id)),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                csi: Some(csi_source(
                    &source.volume_id,
                    source.read_only,
                    &source.fs_type,
                )),
                access_modes: one_mode("ReadWriteOnce"),
                ..Default::default()
            }),
            status: None,
        })
    }

    fn translate_in_tree_pv_to_csi(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let source = spec(&pv)
            .and_then(|s| s.cinder.clone())
            .ok_or_else(|| Error::new("pv is nil or Cinder not defined on pv"))?;
        let csi = csi_source(&source.volume_id, source.read_only, &source.fs_type);
        translate_topology_from_in_tree_to_csi(&mut pv, CINDER_TOPOLOGY_KEY);
        let spec = spec_mut(&mut pv);
        spec.cinder = None;
        spec.csi = Some(csi);
        Ok(pv)
    }

    fn translate_csi_pv_to_in_tree(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let csi = spec(&pv)
            .and_then(|s| s.csi.clone())
            .ok_or_else(|| Error::new("pv is nil or CSI source not defined on pv"))?;
        let source = CinderPersistentVolumeSource {
            volume_id: csi.volume_handle.clone(),
            fs_type: go::some_str(go::str(&csi.fs_type)),
            read_only: go::some_true(csi.read_only.unwrap_or(false)),
            secret_ref: None,
        };
        translate_topology_from_csi_to_in_tree(&mut pv, CINDER_TOPOLOGY_KEY, None).map_err(
            |e| {
                Error::new(format!(
                    "failed to translate topology. PV:{pv:?}. Error:{e}"
                ))
            },
        )?;
        let spec = spec_mut(&mut pv);
        spec.csi = None;
        spec.cinder = Some(source);
        Ok(pv)
    }

    fn can_support(&self, pv: &PersistentVolume) -> bool {
        spec(pv).is_some_and(|s| s.cinder.is_some())
    }

    fn can_support_inline(&self, volume: &Volume) -> bool {
        volume.cinder.is_some()
    }

    fn in_tree_plugin_name(&self) -> &'static str {
        CINDER_IN_TREE_PLUGIN_NAME
    }

    fn csi_plugin_name(&self) -> &'static str {
        CINDER_DRIVER_NAME
    }
}
