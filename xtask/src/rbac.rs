//! `cargo xtask rbac [--check]`: generates `sidecars/aio/deploy/rbac.yaml`, the RBAC of the
//! all-in-one `csi-sidecars`, from the RBAC each component ships.
//!
//! A component is every `sidecars/*/deploy/rbac.yaml` except aio's own, and every
//! `controllers/*/deploy/rbac.yaml` of a controller `csi-sidecars` runs. Of each file only the
//! rules of its ClusterRoles and Roles count; its ServiceAccount and bindings are replaced by
//! `csi-sidecars`' own. The rules are united per (API group, resource): a rule naming several
//! groups or resources grants each pair, so it is split into one rule per pair, and rules for the
//! same pair are merged by uniting their verbs. The result is sorted by group, then resource, with
//! the verbs in Kubernetes' usual order, so it does not depend on which component is read first.
//! Each rule is preceded by a comment naming the components that need it.
//!
//! Rules the union cannot merge without changing what they grant (`resourceNames`,
//! `nonResourceURLs`, aggregated ClusterRoles) are rejected with an error rather than widened.
//!
//! `--check` generates in memory and fails when the committed file differs; the unit test
//! `tests::committed_aio_rbac_is_up_to_date` does the same in `cargo test`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context as _, bail};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use serde::Deserialize as _;

/// The generated file, relative to the workspace root.
pub const AIO_RBAC: &str = "sidecars/aio/deploy/rbac.yaml";

/// Where components live, relative to the workspace root; each holds `<name>/deploy/rbac.yaml`.
const COMPONENT_DIRS: &[&str] = &["sidecars", "controllers"];

/// Components with their own binary that `csi-sidecars` does not run: their RBAC is not part
/// of its union (the snapshot-controller is cluster-wide, with a Role in kube-system).
const NOT_IN_CSI_SIDECARS: &[&str] = &["controllers/snapshot-controller/deploy/rbac.yaml"];

/// The namespace of every namespaced object, as in upstream's files.
const NAMESPACE: &str = "default";

const SERVICE_ACCOUNT: &str = "csi-sidecars";
const CLUSTER_ROLE: &str = "csi-sidecars-runner";
const CLUSTER_ROLE_BINDING: &str = "csi-sidecars-role";
const ROLE: &str = "csi-sidecars-cfg";
const ROLE_BINDING: &str = "csi-sidecars-role-cfg";

/// Verbs in the order Kubernetes' own manifests list them; any other verb follows, sorted.
const VERB_ORDER: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask rbac [--check] (got {args:?})"),
    };
    let root = crate::project_root();
    let generated = generate(&root)?;
    let path = root.join(AIO_RBAC);
    let committed = match fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    if check {
        match committed {
            None => bail!("{AIO_RBAC} is missing: run `cargo xtask rbac` to generate it"),
            Some(committed) if committed != generated => bail!(
                "{AIO_RBAC} is stale: {}; run `cargo xtask rbac` and commit the result",
                first_difference(&committed, &generated)
            ),
            Some(_) => println!("{AIO_RBAC} is up to date"),
        }
    } else if committed.as_deref() == Some(generated.as_str()) {
        println!("{AIO_RBAC} is up to date");
    } else {
        let dir = path.parent().expect("AIO_RBAC has a directory");
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::write(&path, &generated).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {AIO_RBAC}");
    }
    Ok(())
}

/// The contents `sidecars/aio/deploy/rbac.yaml` should have, from the components under `root`.
pub fn generate(root: &Path) -> anyhow::Result<String> {
    let mut components = Vec::new();
    for (name, source) in discover(root)? {
        let path = root.join(&source);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        components.push(
            Component::parse(name, source, &text)
                .with_context(|| format!("in {}", path.display()))?,
        );
    }
    if components.is_empty() {
        bail!(
            "no component RBAC found (looked for {}/*/deploy/rbac.yaml)",
            COMPONENT_DIRS.join(", ")
        );
    }
    Ok(render(&components))
}

/// `(name, path relative to root)` of every component's rbac.yaml: the `COMPONENT_DIRS` in
/// that order, each sorted by name, without aio's own file and [`NOT_IN_CSI_SIDECARS`].
fn discover(root: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for dir in COMPONENT_DIRS {
        let entries = match fs::read_dir(root.join(dir)) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("listing {dir}")),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {dir}"))?;
            let Ok(name) = entry.file_name().into_string() else {
                bail!("{dir}: a non-UTF-8 file name: {:?}", entry.file_name());
            };
            let source = format!("{dir}/{name}/deploy/rbac.yaml");
            if source != AIO_RBAC
                && !NOT_IN_CSI_SIDECARS.contains(&source.as_str())
                && root.join(&source).is_file()
            {
                names.push((name, source));
            }
        }
        names.sort();
        found.extend(names);
    }
    Ok(found)
}

/// The rules one component's rbac.yaml grants.
#[derive(Debug, Clone, PartialEq)]
struct Component {
    /// The component's directory name (`external-attacher`).
    name: String,
    /// Its rbac.yaml, relative to the workspace root.
    source: String,
    /// The rules of its ClusterRoles.
    cluster_rules: Vec<PolicyRule>,
    /// The rules of its Roles (all in [`NAMESPACE`]).
    role_rules: Vec<PolicyRule>,
}

impl Component {
    fn parse(name: String, source: String, text: &str) -> anyhow::Result<Self> {
        let mut component = Component {
            name,
            source,
            cluster_rules: Vec::new(),
            role_rules: Vec::new(),
        };
        for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let context = || format!("document {}", index + 1);
            let value = serde_yaml::Value::deserialize(document).with_context(context)?;
            if value.is_null() {
                continue; // an empty document, e.g. after a trailing `---`
            }
            let kind = value.get("kind").and_then(|kind| kind.as_str());
            match kind {
                Some("ClusterRole") => {
                    let role: ClusterRole = serde_yaml::from_value(value).with_context(context)?;
                    let name = role.metadata.name.unwrap_or_default();
                    if role.aggregation_rule.is_some() {
                        bail!(
                            "ClusterRole {name:?} aggregates other roles; only plain rules can be united"
                        );
                    }
                    let rules = role.rules.unwrap_or_default();
                    check_rules(&rules).with_context(|| format!("ClusterRole {name:?}"))?;
                    component.cluster_rules.extend(rules);
                }
                Some("Role") => {
                    let role: Role = serde_yaml::from_value(value).with_context(context)?;
                    let name = role.metadata.name.unwrap_or_default();
                    let namespace = role.metadata.namespace.unwrap_or_default();
                    if namespace != NAMESPACE {
                        bail!(
                            "Role {name:?} is in namespace {namespace:?}; every component's Role must be in {NAMESPACE:?}, where csi-sidecars' Role is"
                        );
                    }
                    let rules = role.rules.unwrap_or_default();
                    check_rules(&rules).with_context(|| format!("Role {name:?}"))?;
                    component.role_rules.extend(rules);
                }
                // Replaced by csi-sidecars' own.
                Some("ServiceAccount" | "ClusterRoleBinding" | "RoleBinding") => {}
                Some(other) => bail!(
                    "{}: a {other} in an RBAC file (expected ServiceAccount, ClusterRole, ClusterRoleBinding, Role, RoleBinding)",
                    context()
                ),
                None => bail!("{}: no kind", context()),
            }
        }
        Ok(component)
    }
}

/// Rejects what cannot be united per (group, resource) without granting more or less.
fn check_rules(rules: &[PolicyRule]) -> anyhow::Result<()> {
    for rule in rules {
        if rule
            .non_resource_urls
            .as_ref()
            .is_some_and(|u| !u.is_empty())
        {
            bail!("a rule with nonResourceURLs is not supported: {rule:?}");
        }
        if rule.resource_names.as_ref().is_some_and(|n| !n.is_empty()) {
            bail!(
                "a rule with resourceNames is not supported (the union would widen it): {rule:?}"
            );
        }
        if rule.api_groups.as_ref().is_none_or(Vec::is_empty) {
            bail!("a rule without apiGroups: {rule:?}");
        }
        if rule.resources.as_ref().is_none_or(Vec::is_empty) {
            bail!("a rule without resources: {rule:?}");
        }
        if rule.verbs.is_empty() {
            bail!("a rule without verbs: {rule:?}");
        }
    }
    Ok(())
}

/// One rule of the union: the verbs granted on one resource of one API group, and the
/// components that asked for them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MergedRule {
    api_group: String,
    resource: String,
    verbs: Vec<String>,
    components: Vec<String>,
}

/// The union of `rules` (each with the component it comes from), one rule per
/// (API group, resource), sorted by group and resource. `*` among the verbs makes the others
/// redundant, so it is then the only one.
fn union<'a>(rules: impl IntoIterator<Item = (&'a str, &'a PolicyRule)>) -> Vec<MergedRule> {
    let mut merged: BTreeMap<(&str, &str), MergedRule> = BTreeMap::new();
    for (component, rule) in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                let entry = merged
                    .entry((group, resource))
                    .or_insert_with(|| MergedRule {
                        api_group: group.clone(),
                        resource: resource.clone(),
                        verbs: Vec::new(),
                        components: Vec::new(),
                    });
                for verb in &rule.verbs {
                    if !entry.verbs.contains(verb) {
                        entry.verbs.push(verb.clone());
                    }
                }
                if !entry.components.iter().any(|c| c == component) {
                    entry.components.push(component.to_string());
                }
            }
        }
    }
    let mut merged: Vec<MergedRule> = merged.into_values().collect();
    for rule in &mut merged {
        if rule.verbs.iter().any(|verb| verb == "*") {
            rule.verbs = vec!["*".to_string()];
        }
        rule.verbs.sort_by(|a, b| verb_rank(a).cmp(&verb_rank(b)));
    }
    merged
}

/// Sort key of a verb: Kubernetes' usual order, then any other verb alphabetically.
fn verb_rank(verb: &str) -> (usize, &str) {
    let rank = VERB_ORDER.iter().position(|known| *known == verb);
    (rank.unwrap_or(VERB_ORDER.len()), verb)
}

fn cluster_union(components: &[Component]) -> Vec<MergedRule> {
    union(components.iter().flat_map(|component| {
        component
            .cluster_rules
            .iter()
            .map(|rule| (component.name.as_str(), rule))
    }))
}

fn role_union(components: &[Component]) -> Vec<MergedRule> {
    union(components.iter().flat_map(|component| {
        component
            .role_rules
            .iter()
            .map(|rule| (component.name.as_str(), rule))
    }))
}

/// A YAML flow sequence of double-quoted strings: `["get", "list"]`. A JSON string is a valid
/// YAML double-quoted scalar.
fn flow_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| serde_json::Value::from(item.as_str()).to_string())
        .collect();
    format!("[{}]", quoted.join(", "))
}

fn render_rules(out: &mut String, rules: &[MergedRule]) {
    if rules.is_empty() {
        out.push_str("rules: []\n");
        return;
    }
    out.push_str("rules:\n");
    for rule in rules {
        let _ = writeln!(out, "  # {}", rule.components.join(", "));
        let _ = writeln!(
            out,
            "  - apiGroups: {}",
            flow_list(std::slice::from_ref(&rule.api_group))
        );
        let _ = writeln!(
            out,
            "    resources: {}",
            flow_list(std::slice::from_ref(&rule.resource))
        );
        let _ = writeln!(out, "    verbs: {}", flow_list(&rule.verbs));
    }
}

/// The whole file, in the layout of upstream's rbac.yaml files.
fn render(components: &[Component]) -> String {
    let mut out = String::new();
    out.push_str(
        "# generated by cargo xtask rbac; do not edit.\n\
         #\n\
         # All RBAC objects csi-sidecars (the all-in-one binary) needs to run every controller:\n\
         # the union of the ClusterRole and Role rules of\n",
    );
    for component in components {
        let _ = writeln!(out, "#   {}", component.source);
    }
    out.push_str(
        "# merged per API group and resource by uniting the verbs; the comment above each rule\n\
         # names the components that need it. Change those files, then run `cargo xtask rbac`.\n\
         # Rules those files leave commented out as optional (secrets, for example) are not\n\
         # included: grant them separately if the driver needs them.\n\
         #\n\
         # In production, use a non-default namespace and, to avoid conflicts, different names\n\
         # for the non-namespaced ClusterRole and ClusterRoleBinding.\n",
    );
    let _ = write!(
        out,
        "
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {SERVICE_ACCOUNT}
  # replace with non-default namespace name
  namespace: {NAMESPACE}

---
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: {CLUSTER_ROLE}
"
    );
    render_rules(&mut out, &cluster_union(components));
    let _ = write!(
        out,
        "
---
kind: ClusterRoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: {CLUSTER_ROLE_BINDING}
subjects:
  - kind: ServiceAccount
    name: {SERVICE_ACCOUNT}
    # replace with non-default namespace name
    namespace: {NAMESPACE}
roleRef:
  kind: ClusterRole
  name: {CLUSTER_ROLE}
  apiGroup: rbac.authorization.k8s.io

---
# Leader election (leases) and other namespaced needs, in the namespace csi-sidecars runs in
kind: Role
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  # replace with non-default namespace name
  namespace: {NAMESPACE}
  name: {ROLE}
"
    );
    render_rules(&mut out, &role_union(components));
    let _ = write!(
        out,
        "
---
kind: RoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: {ROLE_BINDING}
  # replace with non-default namespace name
  namespace: {NAMESPACE}
subjects:
  - kind: ServiceAccount
    name: {SERVICE_ACCOUNT}
    # replace with non-default namespace name
    namespace: {NAMESPACE}
roleRef:
  kind: Role
  name: {ROLE}
  apiGroup: rbac.authorization.k8s.io
"
    );
    out
}

/// Where `committed` and `generated` first differ, for the `--check` message.
fn first_difference(committed: &str, generated: &str) -> String {
    let mut committed_lines = committed.lines();
    let mut generated_lines = generated.lines();
    for number in 1.. {
        match (committed_lines.next(), generated_lines.next()) {
            (Some(a), Some(b)) if a == b => {}
            (None, None) => break,
            (a, b) => {
                let show = |line: Option<&str>| {
                    line.map_or("end of file".to_string(), |l| format!("{l:?}"))
                };
                return format!(
                    "line {number} is {} but would be generated as {}",
                    show(a),
                    show(b)
                );
            }
        }
    }
    "it differs only in line endings or the final newline".to_string()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};

    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyRule {
            api_groups: Some(strings(groups)),
            resources: Some(strings(resources)),
            verbs: strings(verbs),
            ..PolicyRule::default()
        }
    }

    fn merged(group: &str, resource: &str, verbs: &[&str], components: &[&str]) -> MergedRule {
        MergedRule {
            api_group: group.to_string(),
            resource: resource.to_string(),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            components: components.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn committed_aio_rbac_is_up_to_date() {
        let root = crate::project_root();
        let generated = generate(&root).unwrap();
        let committed = fs::read_to_string(root.join(AIO_RBAC))
            .unwrap_or_else(|err| panic!("{AIO_RBAC}: {err}; run `cargo xtask rbac`"));
        assert!(
            committed == generated,
            "{AIO_RBAC} is stale: {}; run `cargo xtask rbac`",
            first_difference(&committed, &generated)
        );
    }

    #[test]
    fn the_attacher_rbac_is_upstreams() {
        let root = crate::project_root();
        let source = "sidecars/external-attacher/deploy/rbac.yaml";
        let text = fs::read_to_string(root.join(source)).unwrap();
        let attacher = Component::parse("external-attacher".into(), source.into(), &text).unwrap();
        assert_eq!(
            attacher.cluster_rules,
            [
                rule(
                    &[""],
                    &["persistentvolumes"],
                    &["get", "list", "watch", "patch"]
                ),
                rule(
                    &["storage.k8s.io"],
                    &["csinodes"],
                    &["get", "list", "watch"]
                ),
                rule(
                    &["storage.k8s.io"],
                    &["volumeattachments"],
                    &["get", "list", "watch", "patch"]
                ),
                rule(
                    &["storage.k8s.io"],
                    &["volumeattachments/status"],
                    &["patch"]
                ),
            ]
        );
        assert_eq!(
            attacher.role_rules,
            [rule(
                &["coordination.k8s.io"],
                &["leases"],
                &["get", "watch", "list", "delete", "update", "create"]
            )]
        );
    }

    #[test]
    fn union_merges_the_same_group_and_resource_by_uniting_verbs() {
        let a = [
            rule(
                &[""],
                &["persistentvolumes"],
                &["get", "list", "watch", "patch"],
            ),
            rule(
                &["storage.k8s.io"],
                &["csinodes"],
                &["get", "list", "watch"],
            ),
        ];
        let b = [
            rule(&["storage.k8s.io"], &["csinodes"], &["watch", "get"]),
            rule(&[""], &["persistentvolumes"], &["delete", "create", "get"]),
            rule(&[""], &["events"], &["patch", "create"]),
        ];
        let rules = a.iter().map(|r| ("a", r)).chain(b.iter().map(|r| ("b", r)));
        assert_eq!(
            union(rules),
            [
                merged("", "events", &["create", "patch"], &["b"]),
                merged(
                    "",
                    "persistentvolumes",
                    &["get", "list", "watch", "create", "patch", "delete"],
                    &["a", "b"]
                ),
                merged(
                    "storage.k8s.io",
                    "csinodes",
                    &["get", "list", "watch"],
                    &["a", "b"]
                ),
            ]
        );
    }

    #[test]
    fn union_does_not_depend_on_the_order_of_its_inputs() {
        let a = rule(&[""], &["pods"], &["get", "list"]);
        let b = rule(&[""], &["pods", "nodes"], &["watch", "get"]);
        let forward = union([("a", &a), ("b", &b)]);
        let backward = union([("b", &b), ("a", &a)]);
        let without_components = |rules: Vec<MergedRule>| {
            rules
                .into_iter()
                .map(|r| (r.api_group, r.resource, r.verbs))
                .collect::<Vec<_>>()
        };
        assert_eq!(without_components(forward), without_components(backward));
    }

    #[test]
    fn union_splits_rules_with_several_groups_or_resources() {
        let r = rule(&["", "apps"], &["pods", "replicasets"], &["get"]);
        let rules = union([("a", &r)]);
        assert_eq!(
            rules,
            [
                merged("", "pods", &["get"], &["a"]),
                merged("", "replicasets", &["get"], &["a"]),
                merged("apps", "pods", &["get"], &["a"]),
                merged("apps", "replicasets", &["get"], &["a"]),
            ]
        );
    }

    #[test]
    fn union_keeps_unknown_verbs_after_known_ones_and_star_alone() {
        let a = rule(&["x"], &["things"], &["escalate", "get", "bind"]);
        let b = rule(&["x"], &["others"], &["get", "*"]);
        let c = rule(&["x"], &["others"], &["list"]);
        assert_eq!(
            union([("a", &a), ("b", &b), ("c", &c)]),
            [
                merged("x", "others", &["*"], &["b", "c"]),
                merged("x", "things", &["get", "bind", "escalate"], &["a"]),
            ]
        );
    }

    const SMALL: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: csi-x, namespace: default}
---
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: x-runner}
rules:
  - apiGroups: [""]
    resources: ["persistentvolumes"]
    verbs: ["get", "list"]
---
kind: Role
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: x-cfg, namespace: default}
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get", "create"]
---
"#;

    #[test]
    fn parse_takes_the_rules_of_roles_only() {
        let c = Component::parse("x".into(), "x.yaml".into(), SMALL).unwrap();
        assert_eq!(
            c.cluster_rules,
            [rule(&[""], &["persistentvolumes"], &["get", "list"])]
        );
        assert_eq!(
            c.role_rules,
            [rule(
                &["coordination.k8s.io"],
                &["leases"],
                &["get", "create"]
            )]
        );
    }

    #[test]
    fn parse_rejects_what_the_union_cannot_represent() {
        let cases = [
            (
                "kind: ClusterRole\napiVersion: rbac.authorization.k8s.io/v1\nmetadata: {name: r}\n\
                 rules: [{apiGroups: [''], resources: [secrets], resourceNames: [s], verbs: [get]}]",
                "resourceNames",
            ),
            (
                "kind: ClusterRole\napiVersion: rbac.authorization.k8s.io/v1\nmetadata: {name: r}\n\
                 rules: [{nonResourceURLs: [/metrics], verbs: [get]}]",
                "nonResourceURLs",
            ),
            (
                "kind: ClusterRole\napiVersion: rbac.authorization.k8s.io/v1\nmetadata: {name: r}\n\
                 aggregationRule: {clusterRoleSelectors: []}",
                "aggregates",
            ),
            (
                "kind: Role\napiVersion: rbac.authorization.k8s.io/v1\nmetadata: {name: r, namespace: kube-system}\n\
                 rules: []",
                "namespace \"kube-system\"",
            ),
            (
                "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: d}",
                "a Deployment",
            ),
        ];
        for (text, expected) in cases {
            let err = Component::parse("x".into(), "x.yaml".into(), text).unwrap_err();
            let message = format!("{err:#}");
            assert!(
                message.contains(expected),
                "{expected:?} not in {message:?}"
            );
        }
    }

    /// The rendered file parses back (with k8s-openapi's types) to exactly the objects meant.
    #[test]
    fn render_produces_the_rbac_objects() {
        let a = Component::parse("a".into(), "sidecars/a/deploy/rbac.yaml".into(), SMALL).unwrap();
        let mut b = a.clone();
        b.name = "b".into();
        b.source = "controllers/b/deploy/rbac.yaml".into();
        b.cluster_rules = vec![rule(&[""], &["events", "persistentvolumes"], &["create"])];
        b.role_rules = vec![];
        let components = [a, b];
        let text = render(&components);
        assert!(text.starts_with("# generated by cargo xtask rbac; do not edit"));
        assert!(
            text.contains("#   sidecars/a/deploy/rbac.yaml\n#   controllers/b/deploy/rbac.yaml\n")
        );

        let documents: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde_yaml::Value::deserialize(d).unwrap())
            .collect();
        assert_eq!(documents.len(), 5);
        let account: ServiceAccount = serde_yaml::from_value(documents[0].clone()).unwrap();
        let cluster_role: ClusterRole = serde_yaml::from_value(documents[1].clone()).unwrap();
        let cluster_binding: ClusterRoleBinding =
            serde_yaml::from_value(documents[2].clone()).unwrap();
        let role: Role = serde_yaml::from_value(documents[3].clone()).unwrap();
        let binding: RoleBinding = serde_yaml::from_value(documents[4].clone()).unwrap();

        assert_eq!(account.metadata.name.as_deref(), Some(SERVICE_ACCOUNT));
        assert_eq!(account.metadata.namespace.as_deref(), Some(NAMESPACE));
        assert_eq!(cluster_role.metadata.name.as_deref(), Some(CLUSTER_ROLE));
        assert_eq!(
            cluster_role.rules.unwrap(),
            [
                rule(&[""], &["events"], &["create"]),
                rule(&[""], &["persistentvolumes"], &["get", "list", "create"]),
            ]
        );
        assert!(text.contains("  # b\n  - apiGroups: [\"\"]\n    resources: [\"events\"]\n"));
        assert!(
            text.contains(
                "  # a, b\n  - apiGroups: [\"\"]\n    resources: [\"persistentvolumes\"]\n"
            )
        );
        assert_eq!(role.metadata.name.as_deref(), Some(ROLE));
        assert_eq!(role.metadata.namespace.as_deref(), Some(NAMESPACE));
        assert_eq!(
            role.rules.unwrap(),
            [rule(
                &["coordination.k8s.io"],
                &["leases"],
                &["get", "create"]
            )]
        );
        for (subjects, role_ref, kind, name) in [
            (
                cluster_binding.subjects.unwrap(),
                cluster_binding.role_ref,
                "ClusterRole",
                CLUSTER_ROLE,
            ),
            (binding.subjects.unwrap(), binding.role_ref, "Role", ROLE),
        ] {
            assert_eq!(subjects.len(), 1);
            assert_eq!(subjects[0].kind, "ServiceAccount");
            assert_eq!(subjects[0].name, SERVICE_ACCOUNT);
            assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE));
            assert_eq!(role_ref.kind, kind);
            assert_eq!(role_ref.name, name);
            assert_eq!(role_ref.api_group, "rbac.authorization.k8s.io");
        }
        assert_eq!(binding.metadata.name.as_deref(), Some(ROLE_BINDING));
        assert_eq!(binding.metadata.namespace.as_deref(), Some(NAMESPACE));
        assert_eq!(
            cluster_binding.metadata.name.as_deref(),
            Some(CLUSTER_ROLE_BINDING)
        );
    }

    #[test]
    fn discover_finds_components_but_not_aio_itself() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for path in [
            "sidecars/aio/deploy/rbac.yaml",
            "sidecars/zeta/deploy/rbac.yaml",
            "sidecars/alpha/deploy/rbac.yaml",
            "controllers/beta/deploy/rbac.yaml",
        ] {
            fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            fs::write(root.join(path), SMALL).unwrap();
        }
        fs::create_dir_all(root.join("sidecars/livenessprobe/src")).unwrap();
        assert_eq!(
            discover(root).unwrap(),
            [
                ("alpha".into(), "sidecars/alpha/deploy/rbac.yaml".into()),
                ("zeta".into(), "sidecars/zeta/deploy/rbac.yaml".into()),
                ("beta".into(), "controllers/beta/deploy/rbac.yaml".into()),
            ]
        );
        let text = generate(root).unwrap();
        assert!(text.contains("  # alpha, zeta, beta\n"));
    }

    #[test]
    fn generate_fails_without_components() {
        let dir = tempfile::tempdir().unwrap();
        let err = generate(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no component RBAC found"), "{err}");
    }

    #[test]
    fn first_difference_names_the_line() {
        assert_eq!(
            first_difference("a\nb\n", "a\nc\n"),
            "line 2 is \"b\" but would be generated as \"c\""
        );
        assert_eq!(
            first_difference("a\n", "a\nb\n"),
            "line 2 is end of file but would be generated as \"b\""
        );
    }
}
