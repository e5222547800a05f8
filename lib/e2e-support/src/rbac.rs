//! [`apply_rbac_manifest`]: a shipped RBAC manifest, server-side applied into a test's
//! namespace, its cluster-scoped objects renamed per test, deleted again afterwards.

use std::path::Path;

use anyhow::{Context as _, bail};
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};

/// Kinds [`apply_rbac_manifest`] applies, and whether they are namespaced.
const RBAC_KINDS: &[(&str, bool)] = &[
    ("ServiceAccount", true),
    ("Role", true),
    ("RoleBinding", true),
    ("ClusterRole", false),
    ("ClusterRoleBinding", false),
];

/// One object [`apply_rbac_manifest`] applied.
#[derive(Clone, Debug)]
pub struct AppliedObject {
    /// Its kind (`ClusterRole`).
    pub kind: String,
    /// Its namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Its name as applied (cluster-scoped objects get a suffix).
    pub name: String,
    /// Its name in the manifest.
    pub manifest_name: String,
    resource: ApiResource,
}

/// What [`apply_rbac_manifest`] applied; [`AppliedManifest::delete`] removes it again.
pub struct AppliedManifest {
    client: Client,
    /// The objects, in manifest order.
    pub objects: Vec<AppliedObject>,
}

impl std::fmt::Debug for AppliedManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppliedManifest")
            .field("objects", &self.objects)
            .finish()
    }
}

impl AppliedManifest {
    /// The applied objects of `kind`.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a AppliedObject> + 'a {
        self.objects.iter().filter(move |o| o.kind == kind)
    }

    /// The name of the manifest's only ServiceAccount.
    pub fn service_account(&self) -> anyhow::Result<&str> {
        let accounts: Vec<&AppliedObject> = self.of_kind("ServiceAccount").collect();
        match accounts.as_slice() {
            [one] => Ok(&one.name),
            other => bail!(
                "the manifest has {} ServiceAccounts, expected exactly one",
                other.len()
            ),
        }
    }

    /// Deletes every applied object (newest first), ignoring those already gone.
    pub async fn delete(self) -> anyhow::Result<()> {
        for object in self.objects.iter().rev() {
            let api: Api<DynamicObject> = match &object.namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &object.resource),
                None => Api::all_with(self.client.clone(), &object.resource),
            };
            match api.delete(&object.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("deleting {} {}", object.kind, object.name));
                }
            }
        }
        Ok(())
    }
}

/// Applies the RBAC manifest at `path` (multi-document YAML: ServiceAccounts, Roles,
/// RoleBindings, ClusterRoles, ClusterRoleBindings) with server-side apply as the admin,
/// isolated for one test:
///
/// - namespaced objects go into `namespace` (the shipped manifests say `default`), and so do
///   the ServiceAccount subjects of every binding;
/// - cluster-scoped objects are named `<name>-<namespace>`, and bindings that refer to a
///   ClusterRole of the manifest refer to the renamed one.
///
/// The rules themselves are applied unchanged: what the test checks is the shipped RBAC.
pub async fn apply_rbac_manifest(
    client: &Client,
    path: &Path,
    namespace: &str,
) -> anyhow::Result<AppliedManifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let planned = plan_rbac_manifest(&text, namespace)
        .with_context(|| format!("reading the RBAC manifest {}", path.display()))?;

    let mut applied = AppliedManifest {
        client: client.clone(),
        objects: Vec::new(),
    };
    for (object, document) in planned {
        let api: Api<DynamicObject> = match &object.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &object.resource),
            None => Api::all_with(client.clone(), &object.resource),
        };
        if let Err(err) = api
            .patch(
                &object.name,
                &PatchParams::apply("csi-e2e").force(),
                &Patch::Apply(&document),
            )
            .await
        {
            // Leave nothing half-applied behind.
            let _ = applied.delete().await;
            return Err(err).with_context(|| {
                format!(
                    "applying {} {} from {}",
                    object.kind,
                    object.name,
                    path.display()
                )
            });
        }
        applied.objects.push(object);
    }
    Ok(applied)
}

/// What [`apply_rbac_manifest`] applies for the manifest `text` in `namespace`: each object
/// and its rewritten document, in manifest order. Fails on anything but the RBAC kinds.
pub fn plan_rbac_manifest(
    text: &str,
    namespace: &str,
) -> anyhow::Result<Vec<(AppliedObject, serde_json::Value)>> {
    let documents = parse_yaml_documents(text).context("parsing the manifest as YAML")?;
    let cluster_roles: Vec<String> = documents
        .iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let suffixed = |name: &str| format!("{name}-{namespace}");

    // Everything is checked and rewritten before anything is applied.
    let mut planned = Vec::with_capacity(documents.len());
    for mut document in documents {
        let api_version = document["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = document["kind"].as_str().unwrap_or_default().to_string();
        let manifest_name = document["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(&(_, namespaced)) = RBAC_KINDS.iter().find(|(k, _)| *k == kind) else {
            bail!("{kind} {manifest_name:?} is not an RBAC kind this helper applies");
        };
        if manifest_name.is_empty() {
            bail!("a {kind} without a name");
        }
        let name = if namespaced {
            document["metadata"]["namespace"] = namespace.into();
            manifest_name.clone()
        } else {
            suffixed(&manifest_name)
        };
        document["metadata"]["name"] = name.clone().into();
        // `get_mut`, not `document["subjects"]`: indexing a JSON object mutably inserts a
        // null, which the API server rejects for kinds without that field.
        if let Some(subjects) = document
            .get_mut("subjects")
            .and_then(serde_json::Value::as_array_mut)
        {
            for subject in subjects {
                if subject["kind"] == "ServiceAccount" {
                    subject["namespace"] = namespace.into();
                }
            }
        }
        if document["roleRef"]["kind"] == "ClusterRole"
            && let Some(role) = document["roleRef"]["name"].as_str()
            && cluster_roles.iter().any(|r| r == role)
        {
            document["roleRef"]["name"] = suffixed(role).into();
        }
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version.as_str()),
        };
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
        planned.push((
            AppliedObject {
                kind,
                namespace: namespaced.then(|| namespace.to_string()),
                name,
                manifest_name,
                resource,
            },
            document,
        ));
    }
    if planned.is_empty() {
        bail!("the manifest holds no objects");
    }
    Ok(planned)
}

/// The non-empty documents of a multi-document YAML text, as JSON values.
pub fn parse_yaml_documents(text: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    use serde::Deserialize as _;
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(document)?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rbac_manifest_is_isolated_in_the_test_namespace() {
        let manifest = "\
# a comment
apiVersion: v1
kind: ServiceAccount
metadata:
  name: csi-attacher
  namespace: default
---
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: external-attacher-runner
rules:
  - apiGroups: [\"\"]
    resources: [\"persistentvolumes\"]
    verbs: [\"get\"]
---
kind: ClusterRoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: csi-attacher-role
subjects:
  - kind: ServiceAccount
    name: csi-attacher
    namespace: default
roleRef:
  kind: ClusterRole
  name: external-attacher-runner
  apiGroup: rbac.authorization.k8s.io
---
kind: RoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: csi-attacher-role-cfg
  namespace: default
subjects:
  - kind: ServiceAccount
    name: csi-attacher
    namespace: default
roleRef:
  kind: Role
  name: external-attacher-cfg
  apiGroup: rbac.authorization.k8s.io
---
";
        let planned = plan_rbac_manifest(manifest, "e2e-x").unwrap();
        let names: Vec<(&str, Option<&str>, &str)> = planned
            .iter()
            .map(|(o, _)| (o.kind.as_str(), o.namespace.as_deref(), o.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("ServiceAccount", Some("e2e-x"), "csi-attacher"),
                ("ClusterRole", None, "external-attacher-runner-e2e-x"),
                ("ClusterRoleBinding", None, "csi-attacher-role-e2e-x"),
                ("RoleBinding", Some("e2e-x"), "csi-attacher-role-cfg"),
            ]
        );
        let (_, account) = &planned[0];
        assert_eq!(account["metadata"]["namespace"], "e2e-x");
        assert!(account.get("subjects").is_none(), "{account}");
        let (_, binding) = &planned[2];
        assert_eq!(binding["roleRef"]["name"], "external-attacher-runner-e2e-x");
        assert_eq!(binding["subjects"][0]["namespace"], "e2e-x");
        assert_eq!(binding["metadata"]["name"], "csi-attacher-role-e2e-x");
        let (_, role_binding) = &planned[3];
        assert_eq!(role_binding["roleRef"]["name"], "external-attacher-cfg");
        assert_eq!(role_binding["subjects"][0]["namespace"], "e2e-x");

        assert!(plan_rbac_manifest("kind: Deployment\nmetadata: {name: x}\n", "n").is_err());
        assert!(plan_rbac_manifest("---\n", "n").is_err());
    }

    #[test]
    fn the_shipped_rbac_manifests_plan() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for manifest in [
            "sidecars/external-attacher/deploy/rbac.yaml",
            "sidecars/aio/deploy/rbac.yaml",
        ] {
            let path = root.join(manifest);
            let text = std::fs::read_to_string(&path).unwrap();
            let planned = plan_rbac_manifest(&text, "e2e-x").unwrap();
            let accounts = planned
                .iter()
                .filter(|(o, _)| o.kind == "ServiceAccount")
                .count();
            assert_eq!(accounts, 1, "{manifest}");
        }
    }
}
