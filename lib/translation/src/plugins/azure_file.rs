//! Azure File (`kubernetes.io/azure-file` → `file.csi.azure.com`). The CSI handle is
//! `<resource group>#<account>#<share>#<PV name>#<secret namespace>`; the account name comes from
//! the secret name `azure-storage-account-<account>-secret`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{
    AzureFilePersistentVolumeSource, CSIPersistentVolumeSource, PersistentVolume,
    PersistentVolumeSpec, SecretReference, Volume,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use regex::Regex;

use super::{InTreePlugin, attributes, one_mode, spec, spec_mut};
use crate::{Error, Result, go};

/// The CSI driver's name.
pub const AZURE_FILE_DRIVER_NAME: &str = "file.csi.azure.com";
/// The in-tree plugin's name.
pub const AZURE_FILE_IN_TREE_PLUGIN_NAME: &str = "kubernetes.io/azure-file";

const SHARE_NAME_FIELD: &str = "sharename";
const SECRET_NAME_FIELD: &str = "secretname";
const SECRET_NAMESPACE_FIELD: &str = "secretnamespace";
const DEFAULT_SECRET_NAMESPACE: &str = "default";
const RESOURCE_GROUP_ANNOTATION: &str = "kubernetes.io/azure-file-resource-group";
const SECRET_NAME_FORMAT: &str = "azure-storage-account-(.+)-secret";

static SECRET_NAME_FORMAT_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(SECRET_NAME_FORMAT).expect("valid regex"));

#[derive(Debug)]
pub(crate) struct AzureFile;

fn volume_id(rg: &str, account: &str, share: &str, name: &str, namespace: &str) -> String {
    format!("{rg}#{account}#{share}#{name}#{namespace}")
}

fn secret_ref(name: &str, namespace: &str) -> SecretReference {
    SecretReference {
        name: go::some_str(name),
        namespace: go::some_str(namespace),
    }
}

/// The storage account of a secret name `azure-storage-account-<account>-secret`.
fn get_storage_account_name(secret_name: &str) -> Result<String> {
    SECRET_NAME_FORMAT_RE
        .captures(secret_name)
        .and_then(|c| c.get(1))
        .map(|account| account.as_str().to_owned())
        .ok_or_else(|| {
            Error::new(format!(
                "could not get account name from {secret_name}, correct format: {SECRET_NAME_FORMAT}"
            ))
        })
}

/// The storage account of a secret name, or the secret name itself when it has another form.
fn storage_account_name(secret_name: &str) -> String {
    get_storage_account_name(secret_name).unwrap_or_else(|err| {
        tracing::debug!(secret_name, %err, "getStorageAccountName returned with error");
        secret_name.to_owned()
    })
}

impl InTreePlugin for AzureFile {
    fn translate_in_tree_storage_class_to_csi(&self, sc: StorageClass) -> Result<StorageClass> {
        Ok(sc)
    }

    fn translate_in_tree_inline_volume_to_csi(
        &self,
        volume: &Volume,
        pod_namespace: &str,
    ) -> Result<PersistentVolume> {
        let source = volume
            .azure_file
            .as_ref()
            .ok_or_else(|| Error::new("volume is nil or Azure File not defined on volume"))?;
        let account = storage_account_name(&source.secret_name);
        let namespace = if pod_namespace.is_empty() {
            DEFAULT_SECRET_NAMESPACE
        } else {
            pod_namespace
        };
        let id = volume_id("", &account, &source.share_name, &volume.name, namespace);
        Ok(PersistentVolume {
            metadata: ObjectMeta {
                name: Some(id.clone()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                csi: Some(CSIPersistentVolumeSource {
                    driver: AZURE_FILE_DRIVER_NAME.to_owned(),
                    volume_handle: id,
                    read_only: go::some_true(source.read_only.unwrap_or(false)),
                    volume_attributes: Some(attributes([(
                        SHARE_NAME_FIELD,
                        source.share_name.clone(),
                    )])),
                    node_stage_secret_ref: Some(secret_ref(&source.secret_name, namespace)),
                    ..Default::default()
                }),
                access_modes: one_mode("ReadWriteMany"),
                ..Default::default()
            }),
            status: None,
        })
    }

    fn translate_in_tree_pv_to_csi(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let spec_ref = spec(&pv);
        let source = spec_ref
            .and_then(|s| s.azure_file.clone())
            .ok_or_else(|| Error::new("pv is nil or Azure File source not defined on pv"))?;
        let account = storage_account_name(&source.secret_name);
        let resource_group = pv
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RESOURCE_GROUP_ANNOTATION))
            .cloned()
            .unwrap_or_default();
        let namespace = match &source.secret_namespace {
            Some(namespace) => namespace.clone(),
            None => spec_ref
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|c| c.namespace.clone())
                .unwrap_or_default(),
        };
        if namespace.is_empty() {
            return Err(Error::new(
                "could not find a secret namespace in PersistentVolumeSource or ClaimRef",
            ));
        }
        let id = volume_id(
            &resource_group,
            &account,
            &source.share_name,
            go::name(&pv.metadata.name),
            &namespace,
        );
        let spec = spec_mut(&mut pv);
        spec.azure_file = None;
        spec.csi = Some(CSIPersistentVolumeSource {
            driver: AZURE_FILE_DRIVER_NAME.to_owned(),
            node_stage_secret_ref: Some(secret_ref(&source.secret_name, &namespace)),
            read_only: go::some_true(source.read_only.unwrap_or(false)),
            volume_attributes: Some(attributes([(SHARE_NAME_FIELD, source.share_name.clone())])),
            volume_handle: id,
            ..Default::default()
        });
        Ok(pv)
    }

    fn translate_csi_pv_to_in_tree(&self, mut pv: PersistentVolume) -> Result<PersistentVolume> {
        let csi = spec(&pv)
            .and_then(|s| s.csi.clone())
            .ok_or_else(|| Error::new("pv is nil or CSI source not defined on pv"))?;
        let mut source = AzureFilePersistentVolumeSource {
            read_only: go::some_true(csi.read_only.unwrap_or(false)),
            ..Default::default()
        };
        for (k, v) in csi.volume_attributes.iter().flatten() {
            match k.to_lowercase().as_str() {
                SHARE_NAME_FIELD => source.share_name = v.clone(),
                SECRET_NAME_FIELD => source.secret_name = v.clone(),
                SECRET_NAMESPACE_FIELD => source.secret_namespace = Some(v.clone()),
                _ => {}
            }
        }
        let mut resource_group = String::new();
        if let Some(secret) = &csi.node_stage_secret_ref
            && !go::str(&secret.name).is_empty()
        {
            source.secret_name = go::str(&secret.name).to_owned();
            source.secret_namespace = Some(go::str(&secret.namespace).to_owned());
        }
        if source.share_name.is_empty() || source.secret_name.is_empty() {
            let (rg, account, share, _) = get_file_share_info(&csi.volume_handle)?;
            if source.share_name.is_empty() {
                source.share_name = share;
            }
            if source.secret_name.is_empty() {
                source.secret_name = format!("azure-storage-account-{account}-secret");
            }
            resource_group = rg;
        }
        if source.secret_namespace.is_none() {
            source.secret_namespace = Some(DEFAULT_SECRET_NAMESPACE.to_owned());
        }
        let annotations = pv.metadata.annotations.get_or_insert_with(BTreeMap::new);
        if !resource_group.is_empty() {
            annotations.insert(RESOURCE_GROUP_ANNOTATION.to_owned(), resource_group);
        }
        let spec = spec_mut(&mut pv);
        spec.csi = None;
        spec.azure_file = Some(source);
        Ok(pv)
    }

    fn can_support(&self, pv: &PersistentVolume) -> bool {
        spec(pv).is_some_and(|s| s.azure_file.is_some())
    }

    fn can_support_inline(&self, volume: &Volume) -> bool {
        volume.azure_file.is_some()
    }

    fn in_tree_plugin_name(&self) -> &'static str {
        AZURE_FILE_IN_TREE_PLUGIN_NAME
    }

    fn csi_plugin_name(&self) -> &'static str {
        AZURE_FILE_DRIVER_NAME
    }
}

/// Resource group, storage account, share and disk name of a CSI volume handle.
fn get_file_share_info(id: &str) -> Result<(String, String, String, String)> {
    let segments: Vec<&str> = id.split('#').collect();
    if segments.len() < 3 {
        return Err(Error::new(format!(
            "error parsing volume id: {}, should at least contain two #",
            go::quote(id)
        )));
    }
    Ok((
        segments[0].to_owned(),
        segments[1].to_owned(),
        segments[2].to_owned(),
        segments.get(3).copied().unwrap_or_default().to_owned(),
    ))
}

#[cfg(test)]
#[path = "azure_file_tests.rs"]
mod tests;
