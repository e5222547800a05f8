//! Which rules of a shipped RBAC manifest a component needed, proven from the audit log.
//!
//! A rule of a Role or ClusterRole grants each of its verbs on each of its resources
//! ([`Permission`]: API group, resource with subresource, verb). A permission is *used* when
//! the audit log holds a request of the component's ServiceAccount with that verb on that
//! resource that RBAC let through (any code but 401 and 403: a 404 or a 409 was authorized
//! first). Without a used permission that request would be refused, so the permission is
//! needed; an unused one must be documented as optional, or go.
//!
//! [`without_permission`] writes a manifest with one permission taken out, for the tests that
//! show what breaks without it.

use std::fmt;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::AuditEvent;
use crate::rbac::parse_yaml_documents;

/// One verb on one resource, granted by a rule of a (Cluster)Role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    /// The Role or ClusterRole, as `ClusterRole/<name>` (the manifest's name).
    pub role: String,
    /// The API group, empty for the core group.
    pub api_group: String,
    /// `persistentvolumes`, `volumeattachments/status`.
    pub resource: String,
    /// `get`, `list`, `watch`, ...
    pub verb: String,
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        write!(f, "{} {group}/{}", self.verb, self.resource)
    }
}

impl Permission {
    /// Whether `event` is a request this permission authorized (a request RBAC refused is
    /// not).
    pub fn authorized(&self, event: &AuditEvent) -> bool {
        let resource = if event.subresource.is_empty() {
            event.resource.clone()
        } else {
            format!("{}/{}", event.resource, event.subresource)
        };
        let refused = matches!(event.code, Some(401 | 403) | None);
        !refused
            && matches_or_any(&self.verb, &event.verb)
            && matches_or_any(&self.api_group, &event.api_group)
            && matches_or_any(&self.resource, &resource)
    }
}

fn matches_or_any(granted: &str, requested: &str) -> bool {
    granted == "*" || granted == requested
}

/// The permissions of every Role and ClusterRole of a manifest, in manifest order.
pub fn permissions(manifest: &str) -> anyhow::Result<Vec<Permission>> {
    let mut out = Vec::new();
    for document in parse_yaml_documents(manifest)? {
        let kind = document["kind"].as_str().unwrap_or_default();
        if kind != "Role" && kind != "ClusterRole" {
            continue;
        }
        let role = format!(
            "{kind}/{}",
            document["metadata"]["name"].as_str().unwrap_or_default()
        );
        for rule in document["rules"].as_array().into_iter().flatten() {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            };
            for api_group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        out.push(Permission {
                            role: role.clone(),
                            api_group: api_group.clone(),
                            resource: resource.clone(),
                            verb,
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// How many of `requests` each permission authorized (requests of other users are ignored).
pub fn coverage<'a>(
    permissions: &'a [Permission],
    requests: &[AuditEvent],
    username: &str,
) -> Vec<(&'a Permission, usize)> {
    let mine: Vec<&AuditEvent> = requests.iter().filter(|e| e.username == username).collect();
    permissions
        .iter()
        .map(|p| (p, mine.iter().filter(|e| p.authorized(e)).count()))
        .collect()
}

/// `manifest` with `permission` taken out of its role: the verb is removed from the rule that
/// grants it, for that resource only (the rule is split when it names more resources, and
/// dropped when no verb is left). Fails if no rule grants it.
pub fn without_permission(manifest: &str, permission: &Permission) -> anyhow::Result<String> {
    let mut documents = parse_yaml_documents(manifest)?;
    let mut found = false;
    for document in &mut documents {
        let kind = document["kind"].as_str().unwrap_or_default().to_string();
        let name = document["metadata"]["name"].as_str().unwrap_or_default();
        if format!("{kind}/{name}") != permission.role {
            continue;
        }
        let rules = document["rules"]
            .as_array()
            .cloned()
            .with_context(|| format!("{} has no rules", permission.role))?;
        let mut kept = Vec::new();
        for rule in rules {
            let has = |key: &str, value: &str| {
                rule[key]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(value)))
            };
            let grants = has("apiGroups", &permission.api_group)
                && has("resources", &permission.resource)
                && has("verbs", &permission.verb);
            if !grants {
                kept.push(rule);
                continue;
            }
            found = true;
            let others: Vec<Value> = rule["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r.as_str() != Some(permission.resource.as_str()))
                .cloned()
                .collect();
            if !others.is_empty() {
                let mut rest = rule.clone();
                rest["resources"] = Value::Array(others);
                kept.push(rest);
            }
            let verbs: Vec<Value> = rule["verbs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v.as_str() != Some(permission.verb.as_str()))
                .cloned()
                .collect();
            if !verbs.is_empty() {
                let mut narrowed = rule.clone();
                narrowed["resources"] = json!([permission.resource]);
                narrowed["verbs"] = Value::Array(verbs);
                kept.push(narrowed);
            }
        }
        document["rules"] = Value::Array(kept);
    }
    if !found {
        bail!("no rule of the manifest grants {permission}");
    }
    let mut text = String::new();
    for document in documents {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(&document)?);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: csi-test
---
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: runner
rules:
  - apiGroups: [\"\"]
    resources: [\"persistentvolumes\", \"persistentvolumeclaims\"]
    verbs: [\"get\", \"patch\"]
  - apiGroups: [\"storage.k8s.io\"]
    resources: [\"volumeattachments/status\"]
    verbs: [\"patch\"]
---
kind: Role
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: cfg
rules:
  - apiGroups: [\"coordination.k8s.io\"]
    resources: [\"leases\"]
    verbs: [\"get\"]
";

    fn event(verb: &str, group: &str, resource: &str, sub: &str, code: u16) -> AuditEvent {
        AuditEvent {
            verb: verb.into(),
            username: "me".into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            code: Some(code),
            ..AuditEvent::default()
        }
    }

    #[test]
    fn a_rule_grants_each_verb_on_each_resource() {
        let all = permissions(MANIFEST).unwrap();
        let names: Vec<String> = all.iter().map(|p| format!("{} {p}", p.role)).collect();
        assert_eq!(
            names,
            [
                "ClusterRole/runner get core/persistentvolumes",
                "ClusterRole/runner patch core/persistentvolumes",
                "ClusterRole/runner get core/persistentvolumeclaims",
                "ClusterRole/runner patch core/persistentvolumeclaims",
                "ClusterRole/runner patch storage.k8s.io/volumeattachments/status",
                "Role/cfg get coordination.k8s.io/leases",
            ]
        );
    }

    #[test]
    fn only_authorized_requests_of_the_user_count() {
        let all = permissions(MANIFEST).unwrap();
        let mut other_user = event("get", "", "persistentvolumes", "", 200);
        other_user.username = "someone-else".into();
        let requests = [
            event("get", "", "persistentvolumes", "", 200),
            // Not found is authorized first.
            event("get", "", "persistentvolumes", "", 404),
            // Refused: no permission used it.
            event("patch", "", "persistentvolumes", "", 403),
            // The subresource is its own resource.
            event(
                "patch",
                "storage.k8s.io",
                "volumeattachments",
                "status",
                200,
            ),
            event("patch", "storage.k8s.io", "volumeattachments", "", 200),
            other_user,
        ];
        let counts: Vec<(String, usize)> = coverage(&all, &requests, "me")
            .into_iter()
            .map(|(p, n)| (p.to_string(), n))
            .collect();
        assert_eq!(
            counts,
            [
                ("get core/persistentvolumes".to_string(), 2),
                ("patch core/persistentvolumes".to_string(), 0),
                ("get core/persistentvolumeclaims".to_string(), 0),
                ("patch core/persistentvolumeclaims".to_string(), 0),
                (
                    "patch storage.k8s.io/volumeattachments/status".to_string(),
                    1
                ),
                ("get coordination.k8s.io/leases".to_string(), 0),
            ]
        );
    }

    #[test]
    fn a_permission_is_taken_out_of_its_rule_only() {
        let all = permissions(MANIFEST).unwrap();
        let patch_pvs = all
            .iter()
            .find(|p| p.to_string() == "patch core/persistentvolumes")
            .unwrap();
        let text = without_permission(MANIFEST, patch_pvs).unwrap();
        let mut left: Vec<String> = permissions(&text)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        left.sort();
        let mut expected: Vec<String> = all
            .iter()
            .filter(|p| *p != patch_pvs)
            .map(ToString::to_string)
            .collect();
        expected.sort();
        assert_eq!(left, expected);
        // The other documents are kept.
        assert!(text.contains("kind: ServiceAccount"));

        let lease = all.iter().find(|p| p.resource == "leases").unwrap();
        let text = without_permission(MANIFEST, lease).unwrap();
        assert!(
            !text.contains("leases"),
            "a rule with no verb left goes:\n{text}"
        );

        let missing = Permission {
            verb: "delete".into(),
            ..lease.clone()
        };
        assert!(without_permission(MANIFEST, &missing).is_err());
    }
}
