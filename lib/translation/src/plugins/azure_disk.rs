//! Azure Disk (`kubernetes.io/azure-disk` → `disk.csi.azure.com`). Only managed disks migrate;
//! the CSI handle is the disk URI, and the disk name is read back from it.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{
    AzureDiskVolumeSource, CSIPersistentVolumeSource, PersistentVolume, PersistentVolumeSpec,
    TopologySelectorTerm, Volume,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use regex::Regex;

use super::{
    InTreePlugin, ZONE_KEY, ZONES_KEY, apply_generated_topologies, one_mode, spec, spec_mut,
};
use crate::topology::generate_topology_selectors;
use crate::{Error, Result, go};

/// The CSI driver's name.
pub const AZURE_DISK_DRIVER_NAME: &str = "disk.csi.azure.com";
/// The driver's zone topology key.
pub const AZURE_DISK_TOPOLOGY_KEY: &str = "topology.disk.csi.azure.com/zone";
/// The in-tree plugin's name.
pub const AZURE_DISK_IN_TREE_PLUGIN_NAME: &str = "kubernetes.io/azure-disk";

const AZURE_DISK_KIND: &str = "kind";
const AZURE_DISK_CACHING_MODE: &str = "cachingmode";
const AZURE_DISK_FS_TYPE: &str = "fstype";
const MANAGED: &str = "Managed";

const MANAGED_DISK_PATH: &str =
    ".*/subscriptions/(?:.*)/resourceGroups/(?:.*)/providers/Microsoft.Compute/disks/(.+)";
const UNMANAGED_DISK_PATH: &str = "http(?:.*)://(?:.*)/vhds/(.+)";

static MANAGED_DISK_PATH_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(MANAGED_DISK_PATH).expect("valid regex"));
static UNMANAGED_DISK_PATH_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(UNMANAGED_DISK_PATH).expect("valid regex"));

#[derive(Debug)]
pub(crate) struct AzureDisk;

fn check_kind(kind: &Option<String>) -> Result<()> {
    match kind {
        Some(kind) if !kind.eq_ignore_ascii_case(MANAGED) => Err(Error::new(format!(
            "kind({kind}) is not supported in csi migration"
        ))),
        _ => Ok(()),
    }
}

impl InTreePlugin for AzureDisk {
    fn translate_in_tree_storage_class_to_csi(&self, mut sc: StorageClass) -> Result<StorageClass> {
        let mut generated = None;
        let mut params = BTreeMap::new();
        for (k, v) in sc.parameters.take().unwrap_or_default() {
            match k.to_lowercase().as_str() {
                ZONE_KEY => {
                    generated = Some(generate_topology_selectors(AZURE_DISK_TOPOLOGY_KEY, &[&v]))
                }
                ZONES_KEY => {
                    let zones: Vec<&str> = v.split(',').collect();
                    generated = Some(generate_topology_selectors(AZURE_DISK_TOPOLOGY_KEY, &zones));
                }
                _ => {
                    params.insert(k, v);
                }
            }
        }
        apply_generated_topologies(&mut sc, generated, AZURE_DISK_TOPOLOGY_KEY)?;
        sc.allowed_topologies = sc
            .allowed_topologies
            .take()
            .map(replace_failure_domains_to_csi);
        sc.parameters = Some(params);
        Ok(sc)
    }

    fn translate_in_tree_inline_volume_to_csi(
        &self,
        volume: &Volume,
        _pod_namespace: &str,
    ) -> Result<PersistentVolume> {
        let source = volume
            .azure_disk
            .as_ref()
            .ok_or_else(|| Error::new("volume is nil or Azure Disk not defined on volume"))?;
        check_kind(&source.kind)?;
        let mut attributes = BTreeMap::from([(AZURE_DISK_KIND.to_owned(), MANAGED.to_owned())]);
        if let Some(mode) = source.caching_mode.as_ref().filter(|m| !m.is_empty()) {
            attributes.insert(AZURE_DISK_CACHING_MODE.to_owned(), mode.clone());
        }
        let mut fs_type = None;
        if let Some(fs) = &source.fs_type {
            fs_type = go::some_str(fs.clone());
            attributes.insert(AZURE_DISK_FS_TYPE.to_owned(), fs.clone());
        }
        Ok(PersistentVolume {
            metadata: ObjectMeta {
                name: go::some_str(source.disk_uri.clone()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                csi: Some(CSIPersistentVolumeSource {
                    driver: AZURE_DISK_DRIVER_NAME.to_owned(),
                    volume_handle: source.disk_uri.clone(),
                    read_only: go::some_true(source.read_only.unwrap_or(false)),
                    fs_type,
                    volume_attributes: Some(attributes),
                    ..Default::default()
                }),
                access_modes: one_mode("ReadWriteOnce"),
                ..Default::default()
            }),
            status: None,
        })
    }

    fn translate_in_tree_pv_to_csi(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let source = spec(&pv)
            .and_then(|s| s.azure_disk.clone())
            .ok_or_else(|| Error::new("pv is nil or Azure Disk source not defined on pv"))?;
        check_kind(&source.kind)?;
        let mut attributes = BTreeMap::from([(AZURE_DISK_KIND.to_owned(), MANAGED.to_owned())]);
        if let Some(mode) = &source.caching_mode {
            attributes.insert(AZURE_DISK_CACHING_MODE.to_owned(), mode.clone());
        }
        let mut fs_type = None;
        if let Some(fs) = &source.fs_type {
            fs_type = go::some_str(fs.clone());
            attributes.insert(AZURE_DISK_FS_TYPE.to_owned(), fs.clone());
        }
        let spec = spec_mut(&mut pv);
        spec.azure_disk = None;
        spec.csi = Some(CSIPersistentVolumeSource {
            driver: AZURE_DISK_DRIVER_NAME.to_owned(),
            volume_handle: source.disk_uri.clone(),
            read_only: go::some_true(source.read_only.unwrap_or(false)),
            fs_type,
            volume_attributes: Some(attributes),
            ..Default::default()
        });
        Ok(pv)
    }

    fn translate_csi_pv_to_in_tree(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let csi = spec(&pv)
            .and_then(|s| s.csi.clone())
            .ok_or_else(|| Error::new("pv is nil or CSI source not defined on pv"))?;
        let disk_name = get_disk_name(&csi.volume_handle)?;
        let mut source = AzureDiskVolumeSource {
            disk_name,
            disk_uri: csi.volume_handle.clone(),
            fs_type: Some(go::str(&csi.fs_type).to_owned()),
            read_only: Some(csi.read_only.unwrap_or(false)),
            kind: Some(MANAGED.to_owned()),
            caching_mode: None,
        };
        for (k, v) in csi.volume_attributes.iter().flatten() {
            match k.to_lowercase().as_str() {
                AZURE_DISK_CACHING_MODE if !v.is_empty() => source.caching_mode = Some(v.clone()),
                AZURE_DISK_FS_TYPE if !v.is_empty() => source.fs_type = Some(v.clone()),
                _ => {}
            }
        }
        let spec = spec_mut(&mut pv);
        spec.csi = None;
        spec.azure_disk = Some(source);
        Ok(pv)
    }

    fn can_support(&self, pv: &PersistentVolume) -> bool {
        spec(pv).is_some_and(|s| s.azure_disk.is_some())
    }

    fn can_support_inline(&self, volume: &Volume) -> bool {
        volume.azure_disk.is_some()
    }

    fn in_tree_plugin_name(&self) -> &'static str {
        AZURE_DISK_IN_TREE_PLUGIN_NAME
    }

    fn csi_plugin_name(&self) -> &'static str {
        AZURE_DISK_DRIVER_NAME
    }
}

fn is_managed_disk(uri: &str) -> bool {
    !(uri.len() > 4 && uri.as_bytes()[..4].eq_ignore_ascii_case(b"http"))
}

fn get_disk_name(uri: &str) -> Result<String> {
    let (re, pattern) = if is_managed_disk(uri) {
        (&*MANAGED_DISK_PATH_RE, MANAGED_DISK_PATH)
    } else {
        (&*UNMANAGED_DISK_PATH_RE, UNMANAGED_DISK_PATH)
    };
    re.captures(uri)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_owned())
        .ok_or_else(|| {
            Error::new(format!(
                "could not get disk name from {uri}, correct format: {pattern}"
            ))
        })
}

/// A zone value that is only digits is an unzoned CSI "region" (fault domain) and becomes
/// empty.
fn replace_failure_domains_to_csi(terms: Vec<TopologySelectorTerm>) -> Vec<TopologySelectorTerm> {
    terms
        .into_iter()
        .map(|mut term| {
            for expression in term.match_label_expressions.iter_mut().flatten() {
                if expression.key == AZURE_DISK_TOPOLOGY_KEY {
                    for value in &mut expression.values {
                        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                            value.clear();
                        }
                    }
                }
            }
            term
        })
        .collect()
}

#[cfg(test)]
#[path = "azure_disk_tests.rs"]
mod tests;
