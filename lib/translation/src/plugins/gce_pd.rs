//! GCE Persistent Disk (`kubernetes.io/gce-pd` → `pd.csi.storage.gke.io`). Volume handles are
//! `projects/<project>/zones/<zone>/disks/<name>` or `.../regions/<region>/disks/<name>`; the
//! project (and without a zone label, the zone) is `UNSPECIFIED` until the attacher repairs the
//! handle from the node ID.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, GCEPersistentDiskVolumeSource, PersistentVolume,
    PersistentVolumeSpec, Volume,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    CSI_FS_TYPE_KEY, FS_TYPE_KEY, InTreePlugin, ZONE_KEY, ZONES_KEY, apply_generated_topologies,
    attributes, one_mode, spec, spec_mut,
};
use crate::topology::{
    LABEL_FAILURE_DOMAIN_BETA_ZONE, LABEL_MULTI_ZONE_DELIMITER, LABEL_TOPOLOGY_ZONE,
    generate_topology_selectors, translate_topology_from_csi_to_in_tree,
    translate_topology_from_in_tree_to_csi,
};
use crate::{Error, Result, go};

/// The CSI driver's name.
pub const GCE_PD_DRIVER_NAME: &str = "pd.csi.storage.gke.io";
/// The in-tree plugin's name.
pub const GCE_PD_IN_TREE_PLUGIN_NAME: &str = "kubernetes.io/gce-pd";
/// The driver's zone topology key.
pub const GCE_PD_TOPOLOGY_KEY: &str = "topology.gke.io/zone";
/// A part of a volume handle the translation cannot know.
pub const UNSPECIFIED_VALUE: &str = "UNSPECIFIED";

const VOL_ID_PROJECT_VALUE: usize = 1;
const VOL_ID_REGIONALITY_VALUE: usize = 2;
const VOL_ID_ZONE_VALUE: usize = 3;
const VOL_ID_DISK_NAME_VALUE: usize = 5;
const VOL_ID_TOTAL_ELEMENTS: usize = 6;

fn zonal_id(project: &str, zone: &str, disk: &str) -> String {
    format!("projects/{project}/zones/{zone}/disks/{disk}")
}

fn regional_id(project: &str, region: &str, disk: &str) -> String {
    format!("projects/{project}/regions/{region}/disks/{disk}")
}

#[derive(Debug)]
pub(crate) struct GcePersistentDisk;

fn partition_attribute(partition: Option<i32>) -> String {
    match partition.unwrap_or(0) {
        0 => String::new(),
        p => p.to_string(),
    }
}

/// Access modes the GCE PD CSI driver accepts: ReadWriteMany counts as ReadWriteOnce, and the
/// result is ReadWriteOnce unless only ReadOnlyMany was asked for.
pub(crate) fn backward_compatible_access_modes(modes: Option<Vec<String>>) -> Option<Vec<String>> {
    let modes = modes?;
    let mut rwo = false;
    let mut rox = false;
    for mode in &modes {
        match mode.as_str() {
            "ReadWriteMany" | "ReadWriteOnce" => rwo = true,
            "ReadOnlyMany" => rox = true,
            _ => {}
        }
    }
    if rox && !rwo {
        one_mode("ReadOnlyMany")
    } else {
        one_mode("ReadWriteOnce")
    }
}

impl InTreePlugin for GcePersistentDisk {
    fn translate_in_tree_storage_class_to_csi(&self, mut sc: StorageClass) -> Result<StorageClass> {
        let mut generated = None;
        let mut params = std::collections::BTreeMap::new();
        for (k, v) in sc.parameters.take().unwrap_or_default() {
            match k.to_lowercase().as_str() {
                FS_TYPE_KEY => {
                    params.insert(CSI_FS_TYPE_KEY.to_owned(), v);
                }
                ZONE_KEY => {
                    generated = Some(generate_topology_selectors(GCE_PD_TOPOLOGY_KEY, &[&v]))
                }
                ZONES_KEY => {
                    let zones: Vec<&str> = v.split(',').collect();
                    generated = Some(generate_topology_selectors(GCE_PD_TOPOLOGY_KEY, &zones));
                }
                _ => {
                    params.insert(k, v);
                }
            }
        }
        apply_generated_topologies(&mut sc, generated, GCE_PD_TOPOLOGY_KEY)?;
        sc.parameters = Some(params);
        Ok(sc)
    }

    fn translate_in_tree_inline_volume_to_csi(
        &self,
        volume: &Volume,
        _pod_namespace: &str,
    ) -> Result<PersistentVolume> {
        let source = volume
            .gce_persistent_disk
            .as_ref()
            .ok_or_else(|| Error::new("volume is nil or GCE PD not defined on volume"))?;
        let read_only = source.read_only.unwrap_or(false);
        Ok(PersistentVolume {
            metadata: ObjectMeta {
                name: Some(format!("{GCE_PD_DRIVER_NAME}-{}", source.pd_name)),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                csi: Some(CSIPersistentVolumeSource {
                    driver: GCE_PD_DRIVER_NAME.to_owned(),
                    volume_handle: zonal_id(UNSPECIFIED_VALUE, UNSPECIFIED_VALUE, &source.pd_name),
                    read_only: go::some_true(read_only),
                    fs_type: go::some_str(go::str(&source.fs_type)),
                    volume_attributes: Some(attributes([(
                        "partition",
                        partition_attribute(source.partition),
                    )])),
                    ..Default::default()
                }),
                access_modes: one_mode(if read_only {
                    "ReadOnlyMany"
                } else {
                    "ReadWriteOnce"
                }),
                volume_mode: Some("Filesystem".to_owned()),
                ..Default::default()
            }),
            status: None,
        })
    }

    fn translate_in_tree_pv_to_csi(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let source = spec(&pv)
            .and_then(|s| s.gce_persistent_disk.clone())
            .ok_or_else(|| {
                Error::new("pv is nil or GCE Persistent Disk source not defined on pv")
            })?;
        let labels = pv.metadata.labels.clone().unwrap_or_default();
        let mut zones_label = labels
            .get(LABEL_FAILURE_DOMAIN_BETA_ZONE)
            .cloned()
            .unwrap_or_default();
        if zones_label.is_empty() {
            zones_label = labels.get(LABEL_TOPOLOGY_ZONE).cloned().unwrap_or_default();
        }
        let zones: Vec<String> = zones_label
            .split(LABEL_MULTI_ZONE_DELIMITER)
            .map(str::to_owned)
            .collect();
        let volume_id = if zones.len() == 1 && !zones[0].is_empty() {
            zonal_id(UNSPECIFIED_VALUE, &zones[0], &source.pd_name)
        } else if zones.len() > 1 {
            let region = gce_get_region_from_zones(&zones)
                .map_err(|e| Error::new(format!("failed to get region from zones: {e}")))?;
            regional_id(UNSPECIFIED_VALUE, &region, &source.pd_name)
        } else {
            zonal_id(UNSPECIFIED_VALUE, UNSPECIFIED_VALUE, &source.pd_name)
        };
        let csi = CSIPersistentVolumeSource {
            driver: GCE_PD_DRIVER_NAME.to_owned(),
            volume_handle: volume_id,
            read_only: go::some_true(source.read_only.unwrap_or(false)),
            fs_type: go::some_str(go::str(&source.fs_type)),
            volume_attributes: Some(attributes([(
                "partition",
                partition_attribute(source.partition),
            )])),
            ..Default::default()
        };
        translate_topology_from_in_tree_to_csi(&mut pv, GCE_PD_TOPOLOGY_KEY);
        let spec = spec_mut(&mut pv);
        spec.gce_persistent_disk = None;
        spec.csi = Some(csi);
        spec.access_modes = backward_compatible_access_modes(spec.access_modes.take());
        Ok(pv)
    }

    fn translate_csi_pv_to_in_tree(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let csi = spec(&pv)
            .and_then(|s| s.csi.clone())
            .ok_or_else(|| Error::new("pv is nil or CSI source not defined on pv"))?;
        let pd_name = pd_name_from_volume_id(&csi.volume_handle)?;
        let mut source = GCEPersistentDiskVolumeSource {
            pd_name,
            fs_type: go::some_str(go::str(&csi.fs_type)),
            read_only: go::some_true(csi.read_only.unwrap_or(false)),
            partition: None,
        };
        if let Some(partition) = csi
            .volume_attributes
            .as_ref()
            .and_then(|a| a.get("partition"))
            && !partition.is_empty()
        {
            let value = go::atoi_i32(partition).map_err(|e| {
                Error::new(format!(
                    "Failed to convert partition {partition} to integer: {e}"
                ))
            })?;
            source.partition = (value != 0).then_some(value);
        }
        translate_topology_from_csi_to_in_tree(
            &mut pv,
            GCE_PD_TOPOLOGY_KEY,
            Some(gce_get_region_from_zones),
        )
        .map_err(|e| {
            Error::new(format!(
                "failed to translate topology. PV:{pv:?}. Error:{e}"
            ))
        })?;
        let spec = spec_mut(&mut pv);
        spec.csi = None;
        spec.gce_persistent_disk = Some(source);
        Ok(pv)
    }

    fn can_support(&self, pv: &PersistentVolume) -> bool {
        spec(pv).is_some_and(|s| s.gce_persistent_disk.is_some())
    }

    fn can_support_inline(&self, volume: &Volume) -> bool {
        volume.gce_persistent_disk.is_some()
    }

    fn in_tree_plugin_name(&self) -> &'static str {
        GCE_PD_IN_TREE_PLUGIN_NAME
    }

    fn csi_plugin_name(&self) -> &'static str {
        GCE_PD_DRIVER_NAME
    }

    fn repair_volume_handle(&self, volume_handle: &str, node_id: &str) -> Result<String> {
        let tok: Vec<&str> = volume_handle.split('/').collect();
        if tok.len() < VOL_ID_TOTAL_ELEMENTS {
            return Err(Error::new(format!(
                "volume handle has wrong number of elements; got {}, wanted {} or more",
                tok.len(),
                VOL_ID_TOTAL_ELEMENTS
            )));
        }
        if tok[VOL_ID_PROJECT_VALUE] != UNSPECIFIED_VALUE {
            return Ok(volume_handle.to_owned());
        }
        let node_tok: Vec<&str> = node_id.split('/').collect();
        if node_tok.len() < VOL_ID_TOTAL_ELEMENTS {
            return Err(Error::new(format!(
                "node handle has wrong number of elements; got {}, wanted {} or more",
                node_tok.len(),
                VOL_ID_TOTAL_ELEMENTS
            )));
        }
        let project = node_tok[VOL_ID_PROJECT_VALUE];
        let disk = tok[VOL_ID_DISK_NAME_VALUE];
        match tok[VOL_ID_REGIONALITY_VALUE] {
            "zones" => {
                let zone = if tok[VOL_ID_ZONE_VALUE] == UNSPECIFIED_VALUE {
                    node_tok[VOL_ID_ZONE_VALUE]
                } else {
                    tok[VOL_ID_ZONE_VALUE]
                };
                Ok(zonal_id(project, zone, disk))
            }
            "regions" => {
                let region = if tok[VOL_ID_ZONE_VALUE] == UNSPECIFIED_VALUE {
                    let zone = node_tok[VOL_ID_ZONE_VALUE];
                    gce_get_region_from_zones(&[zone.to_owned()]).map_err(|e| {
                        Error::new(format!("failed to get region from zone {zone}: {e}"))
                    })?
                } else {
                    tok[VOL_ID_ZONE_VALUE].to_owned()
                };
                Ok(regional_id(project, &region, disk))
            }
            other => Err(Error::new(format!(
                "expected volume handle to have zones or regions regionality value, got: {other}"
            ))),
        }
    }
}

fn pd_name_from_volume_id(id: &str) -> Result<String> {
    let split: Vec<&str> = id.split('/').collect();
    if split.len() < VOL_ID_TOTAL_ELEMENTS {
        return Err(Error::new(format!(
            "failed to get id components.Got: {}, wanted {} components or more. ",
            split.len(),
            VOL_ID_TOTAL_ELEMENTS
        )));
    }
    Ok(split[VOL_ID_DISK_NAME_VALUE].to_owned())
}

/// The one region of GCE zones `<locale>-<region>-<zone>`.
pub(crate) fn gce_get_region_from_zones(zones: &[String]) -> Result<String> {
    if zones.is_empty() {
        return Err(Error::new("no zones specified"));
    }
    let mut regions = BTreeSet::new();
    for zone in zones {
        let parts: Vec<&str> = zone.split('-').collect();
        if parts.len() != 3 {
            return Err(Error::new(format!(
                "zone in unexpected format, expected: {{locale}}-{{region}}-{{zone}}, got: {zone}"
            )));
        }
        regions.insert(parts[..2].join("-"));
    }
    if regions.len() != 1 {
        return Err(Error::new(format!(
            "multiple or no regions gotten from zones, got: {}",
            go::set_string(&regions)
        )));
    }
    Ok(regions.into_iter().next().unwrap_or_default())
}
