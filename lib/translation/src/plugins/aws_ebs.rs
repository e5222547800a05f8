//! AWS Elastic Block Store (`kubernetes.io/aws-ebs` → `ebs.csi.aws.com`). The in-tree volume ID
//! may be `aws://<zone>/vol-…`; the CSI handle is the bare `vol-…`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    AWSElasticBlockStoreVolumeSource, CSIPersistentVolumeSource, PersistentVolume,
    PersistentVolumeSpec, Volume,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    CSI_FS_TYPE_KEY, FS_TYPE_KEY, InTreePlugin, ZONE_KEY, ZONES_KEY, apply_generated_topologies,
    attributes, one_mode, spec, spec_mut,
};
use crate::topology::{
    generate_topology_selectors, translate_topology_from_csi_to_in_tree,
    translate_topology_from_in_tree_to_csi,
};
use crate::{Error, Result, go};

/// The CSI driver's name.
pub const AWS_EBS_DRIVER_NAME: &str = "ebs.csi.aws.com";
/// The in-tree plugin's name.
pub const AWS_EBS_IN_TREE_PLUGIN_NAME: &str = "kubernetes.io/aws-ebs";
/// The driver's zone topology key.
pub const AWS_EBS_TOPOLOGY_KEY: &str = "topology.ebs.csi.aws.com/zone";

const IOPS_PER_GB_KEY: &str = "iopspergb";
const ALLOW_INCREASE_IOPS_KEY: &str = "allowautoiopspergbincrease";

#[derive(Debug)]
pub(crate) struct AwsElasticBlockStore;

fn csi_source(source: &AWSElasticBlockStoreVolumeSource) -> Result<CSIPersistentVolumeSource> {
    let handle = kubernetes_volume_id_to_ebs_volume_id(&source.volume_id).map_err(|e| {
        Error::new(format!(
            "failed to translate Kubernetes ID to EBS Volume ID {e}"
        ))
    })?;
    Ok(CSIPersistentVolumeSource {
        driver: AWS_EBS_DRIVER_NAME.to_owned(),
        volume_handle: handle,
        read_only: go::some_true(source.read_only.unwrap_or(false)),
        fs_type: go::some_str(go::str(&source.fs_type)),
        volume_attributes: Some(attributes([(
            "partition",
            source.partition.unwrap_or(0).to_string(),
        )])),
        ..Default::default()
    })
}

impl InTreePlugin for AwsElasticBlockStore {
    fn translate_in_tree_storage_class_to_csi(&self, mut sc: StorageClass) -> Result<StorageClass> {
        let mut generated = None;
        let mut params = BTreeMap::new();
        for (k, v) in sc.parameters.take().unwrap_or_default() {
            match k.to_lowercase().as_str() {
                FS_TYPE_KEY => {
                    params.insert(CSI_FS_TYPE_KEY.to_owned(), v);
                }
                ZONE_KEY => {
                    generated = Some(generate_topology_selectors(AWS_EBS_TOPOLOGY_KEY, &[&v]))
                }
                ZONES_KEY => {
                    let zones: Vec<&str> = v.split(',').collect();
                    generated = Some(generate_topology_selectors(AWS_EBS_TOPOLOGY_KEY, &zones));
                }
                IOPS_PER_GB_KEY => {
                    params.insert(k, v);
                    params.insert(ALLOW_INCREASE_IOPS_KEY.to_owned(), "true".to_owned());
                }
                _ => {
                    params.insert(k, v);
                }
            }
        }
        apply_generated_topologies(&mut sc, generated, AWS_EBS_TOPOLOGY_KEY)?;
        sc.parameters = Some(params);
        Ok(sc)
    }

    fn translate_in_tree_inline_volume_to_csi(
        &self,
        volume: &Volume,
        _pod_namespace: &str,
    ) -> Result<PersistentVolume> {
        let source = volume
            .aws_elastic_block_store
            .as_ref()
            .ok_or_else(|| Error::new("volume is nil or AWS EBS not defined on volume"))?;
        let csi = csi_source(source)?;
        Ok(PersistentVolume {
            metadata: ObjectMeta {
                name: Some(format!("{AWS_EBS_DRIVER_NAME}-{}", csi.volume_handle)),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                csi: Some(csi),
                access_modes: one_mode("ReadWriteOnce"),
                ..Default::default()
            }),
            status: None,
        })
    }

    fn translate_in_tree_pv_to_csi(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let source = spec(&pv)
            .and_then(|s| s.aws_elastic_block_store.clone())
            .ok_or_else(|| Error::new("pv is nil or AWS EBS not defined on pv"))?;
        let csi = csi_source(&source)?;
        translate_topology_from_in_tree_to_csi(&mut pv, AWS_EBS_TOPOLOGY_KEY);
        let spec = spec_mut(&mut pv);
        spec.aws_elastic_block_store = None;
        spec.csi = Some(csi);
        Ok(pv)
    }

    fn translate_csi_pv_to_in_tree(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let csi = spec(&pv)
            .and_then(|s| s.csi.clone())
            .ok_or_else(|| Error::new("pv is nil or CSI source not defined on pv"))?;
        let mut source = AWSElasticBlockStoreVolumeSource {
            volume_id: csi.volume_handle.clone(),
            fs_type: go::some_str(go::str(&csi.fs_type)),
            read_only: go::some_true(csi.read_only.unwrap_or(false)),
            partition: None,
        };
        if let Some(partition) = csi
            .volume_attributes
            .as_ref()
            .and_then(|a| a.get("partition"))
        {
            let value = go::atoi_i32(partition).map_err(|e| {
                Error::new(format!(
                    "failed to convert partition {partition} to integer: {e}"
                ))
            })?;
            source.partition = (value != 0).then_some(value);
        }
        translate_topology_from_csi_to_in_tree(
            &mut pv,
            AWS_EBS_TOPOLOGY_KEY,
            Some(get_aws_region_from_zones),
        )
        .map_err(|e| {
            Error::new(format!(
                "failed to translate topology. PV:{pv:?}. Error:{e}"
            ))
        })?;
        let spec = spec_mut(&mut pv);
        spec.csi = None;
        spec.aws_elastic_block_store = Some(source);
        Ok(pv)
    }

    fn can_support(&self, pv: &PersistentVolume) -> bool {
        spec(pv).is_some_and(|s| s.aws_elastic_block_store.is_some())
    }

    fn can_support_inline(&self, volume: &Volume) -> bool {
        volume.aws_elastic_block_store.is_some()
    }

    fn in_tree_plugin_name(&self) -> &'static str {
        AWS_EBS_IN_TREE_PLUGIN_NAME
    }

    fn csi_plugin_name(&self) -> &'static str {
        AWS_EBS_DRIVER_NAME
    }
}

/// The EBS volume ID (`vol-…`) of an in-tree volume ID, which may be `aws://<zone>/vol-…`.
pub fn kubernetes_volume_id_to_ebs_volume_id(kubernetes_id: &str) -> Result<String> {
    if !kubernetes_id.starts_with("aws://") {
        return Ok(kubernetes_id.to_owned());
    }
    let (scheme, path) = go::parse_url_path(kubernetes_id)
        .map_err(|e| Error::new(format!("Invalid disk name ({kubernetes_id}): {e}")))?;
    if scheme != "aws" {
        return Err(Error::new(format!(
            "Invalid scheme for AWS volume ({kubernetes_id})"
        )));
    }
    let aws_id = path.trim_matches('/');
    let valid = aws_id
        .strip_prefix("vol-")
        .is_some_and(|rest| !rest.contains('/'));
    if !valid {
        return Err(Error::new(format!(
            "Invalid format for AWS volume ({kubernetes_id})"
        )));
    }
    Ok(aws_id.to_owned())
}

/// The one region of AWS zones (`us-east-1a`, `us-gov-west-1b`, local and wavelength zones).
fn get_aws_region_from_zones(zones: &[String]) -> Result<String> {
    if zones.is_empty() {
        return Err(Error::new("no zones specified"));
    }
    let mut regions = BTreeSet::new();
    for zone in zones {
        let mut parts: Vec<String> = zone.split('-').map(str::to_owned).collect();
        let n = parts.len();
        if (n == 3 || n == 4) && parts[n - 1].len() == 2 {
            let last = &parts[n - 1];
            // Go slices bytes: the first byte of a two-byte last part.
            parts[n - 1] = String::from_utf8_lossy(&last.as_bytes()[..1]).into_owned();
            regions.insert(parts.join("-"));
        } else if n == 5 || n == 7 {
            regions.insert(parts[..3].join("-"));
        } else {
            return Err(Error::new(format!(
                "Unexpected zone format: {zone} is not a valid AWS zone"
            )));
        }
    }
    if regions.len() != 1 {
        return Err(Error::new(format!(
            "multiple or no regions gotten from zones, got: {}",
            go::set_string(&regions)
        )));
    }
    Ok(regions.into_iter().next().unwrap_or_default())
}
