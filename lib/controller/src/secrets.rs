//! Secrets named by StorageClass-style parameters, as external-provisioner reads them.
//!
//! Owns: which parameters name the secret of each CSI call ([`SecretKind`], [`SecretParams`]):
//! `csi.storage.k8s.io/<kind>-secret-name` / `-namespace`, the deprecated `csi<Kind>SecretName`
//! / `csi<Kind>SecretNamespace` forms, and the fallback `csi.storage.k8s.io/secret-name` /
//! `-namespace`; the templates in their values (`${pv.name}`, `${pvc.name}`,
//! `${pvc.namespace}`, `${pvc.annotations['<key>']}`) and upstream's validation of the result
//! ([`secret_reference`], [`resolve_template`]); reading the secret's data ([`secret_data`]).
//!
//! Secret *values* are never logged and never shown by [`SecretData`]'s `Debug`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, SecretReference};
use kube::Api;
use tracing::warn;

use crate::ApiError;

/// The prefix of the parameters that are meant for the sidecars, not the driver.
pub const CSI_PARAMETER_PREFIX: &str = "csi.storage.k8s.io/";

/// The parameter keys that name one kind of secret (upstream's `secretParamsMap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretParams {
    /// The kind's name in error messages (`Provisioner`, `NodePublish`, ...).
    pub name: &'static str,
    /// The deprecated name key (`csiProvisionerSecretName`), for the kinds that have one.
    pub deprecated_name_key: Option<&'static str>,
    /// The deprecated namespace key (`csiProvisionerSecretNamespace`).
    pub deprecated_namespace_key: Option<&'static str>,
    /// The name key (`csi.storage.k8s.io/provisioner-secret-name`).
    pub name_key: &'static str,
    /// The namespace key (`csi.storage.k8s.io/provisioner-secret-namespace`).
    pub namespace_key: &'static str,
}

/// `csi.storage.k8s.io/secret-name` / `-namespace`: used when a kind's own keys are absent.
pub const DEFAULT_SECRET_PARAMS: SecretParams = SecretParams {
    name: "Default",
    deprecated_name_key: None,
    deprecated_namespace_key: None,
    name_key: "csi.storage.k8s.io/secret-name",
    namespace_key: "csi.storage.k8s.io/secret-namespace",
};

/// The secret of `CreateVolume` / `DeleteVolume` (and snapshots' source volume).
pub const PROVISIONER_SECRET_PARAMS: SecretParams = SecretParams {
    name: "Provisioner",
    deprecated_name_key: Some("csiProvisionerSecretName"),
    deprecated_namespace_key: Some("csiProvisionerSecretNamespace"),
    name_key: "csi.storage.k8s.io/provisioner-secret-name",
    namespace_key: "csi.storage.k8s.io/provisioner-secret-namespace",
};

/// The secret of `ControllerPublishVolume` / `ControllerUnpublishVolume`.
pub const CONTROLLER_PUBLISH_SECRET_PARAMS: SecretParams = SecretParams {
    name: "ControllerPublish",
    deprecated_name_key: Some("csiControllerPublishSecretName"),
    deprecated_namespace_key: Some("csiControllerPublishSecretNamespace"),
    name_key: "csi.storage.k8s.io/controller-publish-secret-name",
    namespace_key: "csi.storage.k8s.io/controller-publish-secret-namespace",
};

/// The secret of `NodeStageVolume`.
pub const NODE_STAGE_SECRET_PARAMS: SecretParams = SecretParams {
    name: "NodeStage",
    deprecated_name_key: Some("csiNodeStageSecretName"),
    deprecated_namespace_key: Some("csiNodeStageSecretNamespace"),
    name_key: "csi.storage.k8s.io/node-stage-secret-name",
    namespace_key: "csi.storage.k8s.io/node-stage-secret-namespace",
};

/// The secret of `NodePublishVolume`.
pub const NODE_PUBLISH_SECRET_PARAMS: SecretParams = SecretParams {
    name: "NodePublish",
    deprecated_name_key: Some("csiNodePublishSecretName"),
    deprecated_namespace_key: Some("csiNodePublishSecretNamespace"),
    name_key: "csi.storage.k8s.io/node-publish-secret-name",
    namespace_key: "csi.storage.k8s.io/node-publish-secret-namespace",
};

/// The secret of `ControllerExpandVolume`.
pub const CONTROLLER_EXPAND_SECRET_PARAMS: SecretParams = SecretParams {
    name: "ControllerExpand",
    deprecated_name_key: None,
    deprecated_namespace_key: None,
    name_key: "csi.storage.k8s.io/controller-expand-secret-name",
    namespace_key: "csi.storage.k8s.io/controller-expand-secret-namespace",
};

/// The secret of `NodeExpandVolume`.
pub const NODE_EXPAND_SECRET_PARAMS: SecretParams = SecretParams {
    name: "NodeExpand",
    deprecated_name_key: None,
    deprecated_namespace_key: None,
    name_key: "csi.storage.k8s.io/node-expand-secret-name",
    namespace_key: "csi.storage.k8s.io/node-expand-secret-namespace",
};

/// The secret of `ControllerModifyVolume`.
pub const CONTROLLER_MODIFY_SECRET_PARAMS: SecretParams = SecretParams {
    name: "ControllerModify",
    deprecated_name_key: None,
    deprecated_namespace_key: None,
    name_key: "csi.storage.k8s.io/controller-modify-secret-name",
    namespace_key: "csi.storage.k8s.io/controller-modify-secret-namespace",
};

/// Which CSI call a secret is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// `CreateVolume` / `DeleteVolume`.
    Provisioner,
    /// `ControllerPublishVolume` / `ControllerUnpublishVolume`.
    ControllerPublish,
    /// `NodeStageVolume`.
    NodeStage,
    /// `NodePublishVolume`.
    NodePublish,
    /// `ControllerExpandVolume`.
    ControllerExpand,
    /// `NodeExpandVolume`.
    NodeExpand,
    /// `ControllerModifyVolume`.
    ControllerModify,
}

impl SecretKind {
    /// Every kind.
    pub const ALL: [SecretKind; 7] = [
        SecretKind::Provisioner,
        SecretKind::ControllerPublish,
        SecretKind::NodeStage,
        SecretKind::NodePublish,
        SecretKind::ControllerExpand,
        SecretKind::NodeExpand,
        SecretKind::ControllerModify,
    ];

    /// The parameter keys of this kind.
    pub const fn params(self) -> SecretParams {
        match self {
            SecretKind::Provisioner => PROVISIONER_SECRET_PARAMS,
            SecretKind::ControllerPublish => CONTROLLER_PUBLISH_SECRET_PARAMS,
            SecretKind::NodeStage => NODE_STAGE_SECRET_PARAMS,
            SecretKind::NodePublish => NODE_PUBLISH_SECRET_PARAMS,
            SecretKind::ControllerExpand => CONTROLLER_EXPAND_SECRET_PARAMS,
            SecretKind::NodeExpand => NODE_EXPAND_SECRET_PARAMS,
            SecretKind::ControllerModify => CONTROLLER_MODIFY_SECRET_PARAMS,
        }
    }
}

/// The parameters name a secret wrongly (upstream's
/// `verifyAndGetSecretNameAndNamespaceTemplate` errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretParamsError {
    /// The name or the namespace is given in both the deprecated and the prefixed form.
    #[error(
        "{0} secrets specified in parameters with both \"csi\" and \"csi.storage.k8s.io/\" keys"
    )]
    BothForms(&'static str),
    /// Only one of name and namespace is given.
    #[error("either name and namespace for {0} secrets specified, Both must be specified")]
    Incomplete(&'static str),
    /// Name or namespace is given with an empty value.
    #[error("{0} secrets specified in parameters but value of either namespace or name is empty")]
    Empty(&'static str),
}

/// A template uses tokens that are not available (upstream's `resolveTemplate` error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tokens: {}", go_quote_list(.missing))]
pub struct TemplateError {
    /// The unknown tokens, sorted.
    pub missing: Vec<String>,
}

/// Why no secret reference could be made (upstream's `getSecretReference` errors, same
/// messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretReferenceError {
    /// The kind's own parameters are wrong.
    #[error("failed to get name and namespace template from params: {0}")]
    Params(SecretParamsError),
    /// The default parameters (`csi.storage.k8s.io/secret-name`) are wrong.
    #[error("failed to get default name and namespace template from params: {0}")]
    DefaultParams(SecretParamsError),
    /// A template could not be resolved.
    #[error("error resolving value {template:?}: {error}")]
    Resolve {
        /// The template.
        template: String,
        /// Which tokens are unknown.
        error: TemplateError,
    },
    /// The namespace is not a DNS-1123 label.
    #[error("{}", invalid_message(.template, .resolved, "namespace"))]
    InvalidNamespace {
        /// The namespace template.
        template: String,
        /// What it resolved to.
        resolved: String,
    },
    /// The name is not a DNS-1123 subdomain.
    #[error("{}", invalid_message(.template, .resolved, "secret"))]
    InvalidName {
        /// The name template.
        template: String,
        /// What it resolved to.
        resolved: String,
    },
}

fn invalid_message(template: &str, resolved: &str, what: &str) -> String {
    if template != resolved {
        format!("{template:?} resolved to {resolved:?} which is not a valid {what} name")
    } else {
        format!("{template:?} is not a valid {what} name")
    }
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Upstream's `deprecationWarning`.
fn deprecation_warning(deprecated: &str, new: &str) -> String {
    format!(
        "{deprecated:?} is deprecated and will be removed in a future release, please use {new:?} instead"
    )
}

/// The name and namespace templates `params` gives for `secret`: both empty when it gives
/// none (upstream's `verifyAndGetSecretNameAndNamespaceTemplate`). A deprecated key is logged
/// as a warning.
pub fn secret_templates(
    secret: &SecretParams,
    params: &BTreeMap<String, String>,
) -> Result<(String, String), SecretParamsError> {
    let mut name = None;
    let mut namespace = None;
    let (mut names, mut namespaces) = (0, 0);
    if let Some(value) = secret.deprecated_name_key.and_then(|k| params.get(k)) {
        name = Some(value);
        names += 1;
        warn!(
            "{}",
            deprecation_warning(
                secret.deprecated_name_key.unwrap_or_default(),
                secret.name_key
            )
        );
    }
    if let Some(value) = secret.deprecated_namespace_key.and_then(|k| params.get(k)) {
        namespace = Some(value);
        namespaces += 1;
        warn!(
            "{}",
            deprecation_warning(
                secret.deprecated_namespace_key.unwrap_or_default(),
                secret.namespace_key
            )
        );
    }
    if let Some(value) = params.get(secret.name_key) {
        name = Some(value);
        names += 1;
    }
    if let Some(value) = params.get(secret.namespace_key) {
        namespace = Some(value);
        namespaces += 1;
    }
    if names > 1 || namespaces > 1 {
        return Err(SecretParamsError::BothForms(secret.name));
    }
    if names != namespaces {
        return Err(SecretParamsError::Incomplete(secret.name));
    }
    match (name, namespace) {
        (Some(name), Some(namespace)) => {
            if name.is_empty() || namespace.is_empty() {
                return Err(SecretParamsError::Empty(secret.name));
            }
            Ok((name.clone(), namespace.clone()))
        }
        _ => Ok((String::new(), String::new())),
    }
}

/// The secret `params` name for `secret` (falling back to [`DEFAULT_SECRET_PARAMS`]), with
/// the templates resolved; `None` when no secret is named. The secret is not read.
///
/// Tokens in the namespace: `${pv.name}`, `${pvc.namespace}`. Tokens in the name: those and
/// `${pvc.name}`, `${pvc.annotations['<key>']}` (which the PVC's user controls). The PVC
/// tokens exist only when `pvc` is given. The namespace must be a DNS-1123 label, the name a
/// DNS-1123 subdomain (upstream's `getSecretReference`).
pub fn secret_reference(
    secret: &SecretParams,
    params: &BTreeMap<String, String>,
    pv_name: &str,
    pvc: Option<&PersistentVolumeClaim>,
) -> Result<Option<SecretReference>, SecretReferenceError> {
    let (mut name_template, mut namespace_template) =
        secret_templates(secret, params).map_err(SecretReferenceError::Params)?;
    if name_template.is_empty() && namespace_template.is_empty() {
        (name_template, namespace_template) = secret_templates(&DEFAULT_SECRET_PARAMS, params)
            .map_err(SecretReferenceError::DefaultParams)?;
    }
    if name_template.is_empty() && namespace_template.is_empty() {
        return Ok(None);
    }

    let pvc_name = pvc.map(|pvc| pvc.metadata.name.clone().unwrap_or_default());
    let pvc_namespace = pvc.map(|pvc| pvc.metadata.namespace.clone().unwrap_or_default());

    // The namespace can use the PV name and the PVC namespace, neither of which the PVC's
    // user controls.
    let mut namespace_params = HashMap::from([("pv.name".to_string(), pv_name.to_string())]);
    if let Some(namespace) = &pvc_namespace {
        namespace_params.insert("pvc.namespace".to_string(), namespace.clone());
    }
    let namespace = resolve_template(&namespace_template, &namespace_params).map_err(|error| {
        SecretReferenceError::Resolve {
            template: namespace_template.clone(),
            error,
        }
    })?;
    if !is_dns1123_label(&namespace) {
        return Err(SecretReferenceError::InvalidNamespace {
            template: namespace_template,
            resolved: namespace,
        });
    }

    let mut name_params = HashMap::from([("pv.name".to_string(), pv_name.to_string())]);
    if let (Some(pvc), Some(pvc_name), Some(pvc_namespace)) = (pvc, pvc_name, pvc_namespace) {
        name_params.insert("pvc.name".to_string(), pvc_name);
        name_params.insert("pvc.namespace".to_string(), pvc_namespace);
        for (key, value) in pvc.metadata.annotations.iter().flatten() {
            name_params.insert(format!("pvc.annotations['{key}']"), value.clone());
        }
    }
    let name = resolve_template(&name_template, &name_params).map_err(|error| {
        SecretReferenceError::Resolve {
            template: name_template.clone(),
            error,
        }
    })?;
    if !is_dns1123_subdomain(&name) {
        return Err(SecretReferenceError::InvalidName {
            template: name_template,
            resolved: name,
        });
    }
    Ok(Some(SecretReference {
        name: Some(name),
        namespace: Some(namespace),
    }))
}

/// Replaces `${token}` and `$token` in `template` as Go's `os.Expand` does, with the values in
/// `params`; any token not in `params` is an error naming it (upstream's `resolveTemplate`).
pub fn resolve_template(
    template: &str,
    params: &HashMap<String, String>,
) -> Result<String, TemplateError> {
    let mut missing = BTreeSet::new();
    let resolved = os_expand(template, |token| match params.get(token) {
        Some(value) => value.clone(),
        None => {
            missing.insert(token.to_string());
            String::new()
        }
    });
    if missing.is_empty() {
        Ok(resolved)
    } else {
        Err(TemplateError {
            missing: missing.into_iter().collect(),
        })
    }
}

/// Go's `os.Expand`.
fn os_expand(s: &str, mut mapping: impl FnMut(&str) -> String) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut j = 0;
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_str(&s[i..j]);
            let (name, width) = shell_name(&s[j + 1..]);
            if name.is_empty() && width > 0 {
                // Invalid syntax: the characters are eaten.
            } else if name.is_empty() {
                // `$` not followed by a name stays.
                out.push('$');
            } else {
                out.push_str(&mapping(name));
            }
            j += width;
            i = j + 1;
        }
        j += 1;
    }
    out.push_str(&s[i.min(s.len())..]);
    out
}

fn is_shell_special(c: u8) -> bool {
    matches!(
        c,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

/// Go's `getShellName`: the name at the start of `s` and how many bytes it takes.
fn shell_name(s: &str) -> (&str, usize) {
    let bytes = s.as_bytes();
    if bytes[0] == b'{' {
        if bytes.len() > 2 && is_shell_special(bytes[1]) && bytes[2] == b'}' {
            return (&s[1..2], 3);
        }
        for (i, &c) in bytes.iter().enumerate().skip(1) {
            if c == b'}' {
                if i == 1 {
                    // `${}`: bad syntax, eaten.
                    return ("", 2);
                }
                return (&s[1..i], i + 1);
            }
        }
        // No closing brace: bad syntax, `${` eaten.
        return ("", 1);
    }
    if is_shell_special(bytes[0]) {
        return (&s[0..1], 1);
    }
    let len = bytes
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (&s[..len], len)
}

/// apimachinery's `IsDNS1123Label`: at most 63 characters of `[a-z0-9-]`, starting and ending
/// with an alphanumeric.
pub fn is_dns1123_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// apimachinery's `IsDNS1123Subdomain`: at most 253 characters, DNS-1123 labels joined by `.`
/// (each label without the 63-character limit).
pub fn is_dns1123_subdomain(value: &str) -> bool {
    value.len() <= 253
        && value.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
        })
}

/// Reads secrets from the API server (secrets are never cached).
pub trait SecretGetter: Send + Sync {
    /// `GET secrets/<name>` in `namespace`.
    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>>;
}

impl SecretGetter for kube::Client {
    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>> {
        Box::pin(async move {
            let api: Api<Secret> = Api::namespaced(self.clone(), namespace);
            Ok(api.get(name).await?)
        })
    }
}

/// A secret's data as strings (what CSI requests carry). `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData(HashMap<String, String>);

impl SecretData {
    /// The data of `secret` (`data`, as UTF-8 with invalid bytes replaced; `stringData` is
    /// write-only and never read back).
    pub fn from_secret(secret: Secret) -> Self {
        SecretData(
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(key, value)| (key, String::from_utf8_lossy(&value.0).into_owned()))
                .collect(),
        )
    }

    /// The data, for a CSI request.
    pub fn into_map(self) -> HashMap<String, String> {
        self.0
    }

    /// Whether there is no data.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.0.keys().collect();
        keys.sort();
        f.debug_struct("SecretData")
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

/// A secret could not be read (upstream's `getCredentials` error, same message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error getting secret {name} in namespace {namespace}: {error}")]
pub struct GetSecretError {
    /// The secret's namespace.
    pub namespace: String,
    /// The secret's name.
    pub name: String,
    /// What the API server answered (a missing secret is [`ApiError::is_not_found`]).
    pub error: ApiError,
}

/// Reads the secret `reference` points to and returns its data (upstream's `getCredentials`).
pub async fn secret_data(
    getter: &dyn SecretGetter,
    reference: &SecretReference,
) -> Result<SecretData, GetSecretError> {
    let namespace = reference.namespace.clone().unwrap_or_default();
    let name = reference.name.clone().unwrap_or_default();
    match getter.get_secret(&namespace, &name).await {
        Ok(secret) => Ok(SecretData::from_secret(secret)),
        Err(error) => Err(GetSecretError {
            namespace,
            name,
            error,
        }),
    }
}

#[cfg(test)]
mod tests;
