//! [`render`]: `kustomize build DIR` for the subset of kustomize our `deploy/` bases use
//! (`resources` — files and directories —, `images` with `newName`/`newTag`, `namespace`). Any
//! other field of a kustomization is an error rather than silently ignored, so a base that
//! starts using one fails the tests that render it until this renderer implements it.

use std::path::Path;

use anyhow::{Context as _, bail, ensure};
use serde_yaml::Value;

/// The kustomization fields [`render`] implements.
const FIELDS: &[&str] = &["apiVersion", "kind", "resources", "images", "namespace"];

/// Kinds `namespace:` does not apply to.
const CLUSTER_SCOPED: &[&str] = &[
    "ClusterRole",
    "ClusterRoleBinding",
    "CSIDriver",
    "StorageClass",
    "Namespace",
    "CustomResourceDefinition",
];

/// The non-empty documents of a multi-document YAML text.
pub fn documents(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value: Value = serde::Deserialize::deserialize(document)
            .with_context(|| format!("document {}", i + 1))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// The objects `kustomize build dir` writes, in resource order.
pub fn render(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let path = dir.join("kustomization.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let k: Value =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let fields = k
        .as_mapping()
        .with_context(|| format!("{} is not a mapping", path.display()))?;
    for key in fields.keys() {
        let key = key.as_str().unwrap_or_default();
        ensure!(
            FIELDS.contains(&key),
            "{}: this renderer does not implement {key:?}",
            path.display()
        );
    }
    let mut out = Vec::new();
    for r in k["resources"].as_sequence().into_iter().flatten() {
        let Some(r) = r.as_str() else {
            bail!("{}: a resource that is not a path: {r:?}", path.display());
        };
        let resource = dir.join(r);
        if resource.is_dir() {
            out.extend(render(&resource).with_context(|| format!("in {}", path.display()))?);
        } else {
            let text = std::fs::read_to_string(&resource)
                .with_context(|| format!("reading {}", resource.display()))?;
            out.extend(documents(&text).with_context(|| format!("in {}", resource.display()))?);
        }
    }
    for image in k["images"].as_sequence().into_iter().flatten() {
        let name = image["name"]
            .as_str()
            .with_context(|| format!("{}: an image without a name", path.display()))?;
        for doc in &mut out {
            set_image(doc, name, image);
        }
    }
    if let Some(ns) = k.get("namespace").and_then(Value::as_str) {
        for doc in &mut out {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            if !CLUSTER_SCOPED.contains(&kind.as_str()) {
                doc["metadata"]["namespace"] = Value::from(ns);
            }
            let subjects = doc.get_mut("subjects").and_then(Value::as_sequence_mut);
            for s in subjects.into_iter().flatten() {
                if s["kind"] == "ServiceAccount" {
                    s["namespace"] = Value::from(ns);
                }
            }
        }
    }
    Ok(out)
}

/// kustomize's `images` transformer on the containers of one workload.
fn set_image(doc: &mut Value, name: &str, image: &Value) {
    // get_mut, not indexing: indexing a Value mutably adds the missing keys.
    let containers = doc
        .get_mut("spec")
        .and_then(|s| s.get_mut("template"))
        .and_then(|t| t.get_mut("spec"))
        .and_then(|s| s.get_mut("containers"))
        .and_then(Value::as_sequence_mut);
    for c in containers.into_iter().flatten() {
        let Some(current) = c.get("image").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        let (repo, tag) = match current.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
            _ => (current.clone(), None),
        };
        if repo != name {
            continue;
        }
        let repo = image
            .get("newName")
            .and_then(Value::as_str)
            .map_or(repo.clone(), str::to_string);
        let tag = image
            .get("newTag")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(tag);
        c["image"] = Value::from(match tag {
            Some(t) => format!("{repo}:{t}"),
            None => repo,
        });
    }
}

/// The objects of `kind`.
pub fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The containers of a workload's pod template.
pub fn containers(workload: &Value) -> Vec<Value> {
    workload["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .cloned()
        .unwrap_or_default()
}

/// A container's `args`, as strings.
pub fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|a| match a {
            Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn resources_images_and_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "base/kustomization.yaml", "resources: [rbac.yaml]\n");
        write(
            d,
            "base/rbac.yaml",
            "kind: ClusterRoleBinding\nmetadata: {name: b}\nsubjects:\n- {kind: ServiceAccount, name: sa, namespace: default}\n---\nkind: ServiceAccount\nmetadata: {name: sa, namespace: default}\n",
        );
        write(
            d,
            "kustomization.yaml",
            "resources: [base, app.yaml]\nnamespace: ns\nimages:\n- {name: x/app, newTag: v2}\n- {name: y, newName: z/y}\n",
        );
        write(
            d,
            "app.yaml",
            "kind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: a, image: 'x/app:v1'}\n      - {name: b, image: y}\n      - {name: c, image: 'x/appx'}\n",
        );
        let out = render(d).unwrap();
        assert_eq!(out.len(), 3);
        let binding = of_kind(&out, "ClusterRoleBinding")[0];
        assert!(binding["metadata"].get("namespace").is_none());
        assert_eq!(binding["subjects"][0]["namespace"], "ns");
        assert_eq!(
            of_kind(&out, "ServiceAccount")[0]["metadata"]["namespace"],
            "ns"
        );
        let images: Vec<Value> = containers(of_kind(&out, "Deployment")[0])
            .iter()
            .map(|c| c["image"].clone())
            .collect();
        assert_eq!(images, ["x/app:v2", "z/y", "x/appx"]);
    }

    #[test]
    fn an_unknown_field_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "kustomization.yaml",
            "resources: []\npatches: []\n",
        );
        let e = render(dir.path()).unwrap_err().to_string();
        assert!(e.contains("\"patches\""), "{e}");
    }
}
