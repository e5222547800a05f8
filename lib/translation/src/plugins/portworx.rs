//! Portworx (`kubernetes.io/portworx-volume` → `pxd.portworx.com`). The OpenStorage auth secret
//! (StorageClass parameters, PV annotations) becomes every CSI secret reference.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, PersistentVolume, PersistentVolumeSpec, PortworxVolumeSource,
    SecretReference, Volume,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{InTreePlugin, one_mode, spec, spec_mut};
use crate::{Error, Result, go};

/// The in-tree plugin's name.
pub const PORTWORX_VOLUME_PLUGIN_NAME: &str = "kubernetes.io/portworx-volume";
/// The CSI driver's name.
pub const PORTWORX_DRIVER_NAME: &str = "pxd.portworx.com";

const AUTH_SECRET_NAME_KEY: &str = "openstorage.io/auth-secret-name";
const AUTH_SECRET_NAMESPACE_KEY: &str = "openstorage.io/auth-secret-namespace";

/// The CSI secret parameters the auth secret fills.
const SECRET_KINDS: [&str; 6] = [
    "provisioner",
    "controller-publish",
    "node-publish",
    "node-stage",
    "controller-expand",
    "node-expand",
];

#[derive(Debug)]
pub(crate) struct Portworx;

impl InTreePlugin for Portworx {
    fn translate_in_tree_storage_class_to_csi(&self, mut sc: StorageClass) -> Result<StorageClass> {
        let mut params = BTreeMap::new();
        for (k, v) in sc.parameters.take().unwrap_or_default() {
            let suffix = match k.to_lowercase().as_str() {
                AUTH_SECRET_NAME_KEY => "name",
                AUTH_SECRET_NAMESPACE_KEY => "namespace",
                _ => {
                    params.insert(k, v);
                    continue;
                }
            };
            for kind in SECRET_KINDS {
                params.insert(
                    format!("csi.storage.k8s.io/{kind}-secret-{suffix}"),
                    v.clone(),
                );
            }
        }
        sc.parameters = (!params.is_empty()).then_some(params);
        sc.provisioner = PORTWORX_DRIVER_NAME.to_owned();
        Ok(sc)
    }

    fn translate_in_tree_inline_volume_to_csi(
        &self,
        volume: &Volume,
        _pod_namespace: &str,
    ) -> Result<PersistentVolume> {
        let source = volume
            .portworx_volume
            .as_ref()
            .ok_or_else(|| Error::new("volume is nil or PortworxVolume not defined on volume"))?;
        let read_only = source.read_only.unwrap_or(false);
        Ok(PersistentVolume {
            metadata: ObjectMeta {
                name: Some(format!("{PORTWORX_DRIVER_NAME}-{}", source.volume_id)),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                csi: Some(CSIPersistentVolumeSource {
                    driver: PORTWORX_DRIVER_NAME.to_owned(),
                    volume_handle: source.volume_id.clone(),
                    fs_type: go::some_str(go::str(&source.fs_type)),
                    ..Default::default()
                }),
                access_modes: one_mode(if read_only {
                    "ReadOnlyMany"
                } else {
                    "ReadWriteOnce"
                }),
                ..Default::default()
            }),
            status: None,
        })
    }

    fn translate_in_tree_pv_to_csi(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let source = spec(&pv)
            .and_then(|s| s.portworx_volume.clone())
            .ok_or_else(|| Error::new("pv is nil or PortworxVolume not defined on pv"))?;
        let annotations = pv.metadata.annotations.clone().unwrap_or_default();
        let secret = match (
            annotations.get(AUTH_SECRET_NAME_KEY),
            annotations.get(AUTH_SECRET_NAMESPACE_KEY),
        ) {
            (Some(name), Some(namespace)) => Some(SecretReference {
                name: go::some_str(name.clone()),
                namespace: go::some_str(namespace.clone()),
            }),
            _ => None,
        };
        let spec = spec_mut(&mut pv);
        spec.portworx_volume = None;
        spec.csi = Some(CSIPersistentVolumeSource {
            driver: PORTWORX_DRIVER_NAME.to_owned(),
            volume_handle: source.volume_id.clone(),
            fs_type: go::some_str(go::str(&source.fs_type)),
            controller_publish_secret_ref: secret.clone(),
            node_stage_secret_ref: secret.clone(),
            node_publish_secret_ref: secret.clone(),
            controller_expand_secret_ref: secret.clone(),
            node_expand_secret_ref: secret,
            ..Default::default()
        });
        Ok(pv)
    }

    fn translate_csi_pv_to_in_tree(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let csi = spec(&pv)
            .and_then(|s| s.csi.clone())
            .ok_or_else(|| Error::new("pv is nil or CSI source not defined on pv"))?;
        let spec = spec_mut(&mut pv);
        spec.csi = None;
        spec.portworx_volume = Some(PortworxVolumeSource {
            volume_id: csi.volume_handle,
            fs_type: go::some_str(go::str(&csi.fs_type)),
            read_only: go::some_true(csi.read_only.unwrap_or(false)),
        });
        Ok(pv)
    }

    fn can_support(&self, pv: &PersistentVolume) -> bool {
        spec(pv).is_some_and(|s| s.portworx_volume.is_some())
    }

    fn can_support_inline(&self, volume: &Volume) -> bool {
        volume.portworx_volume.is_some()
    }

    fn in_tree_plugin_name(&self) -> &'static str {
        PORTWORX_VOLUME_PLUGIN_NAME
    }

    fn csi_plugin_name(&self) -> &'static str {
        PORTWORX_DRIVER_NAME
    }
}
