//! API-server load from the kube-apiserver audit log (Metadata level, one JSON event a line),
//! attributed by user name and user agent.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead as _, BufReader, Seek as _, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Requests of one configuration.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiLoad {
    /// Every request (watches included), once each.
    pub total: u64,
    /// "<verb> <resource>[/<subresource>]" -> count.
    pub by_verb_resource: BTreeMap<String, u64>,
    /// Watch requests opened (re-opened watches count again).
    pub watches: u64,
    /// The distinct (resource, selector) pairs watched.
    pub watched: BTreeSet<String>,
    /// The user agents seen, for the report (which string upstream sends).
    pub user_agents: BTreeSet<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(rename = "auditID")]
    audit_id: String,
    verb: String,
    #[serde(default)]
    request_uri: String,
    #[serde(default)]
    user_agent: String,
    user: User,
    object_ref: Option<ObjectRef>,
}

#[derive(Debug, Deserialize)]
struct User {
    #[serde(default)]
    username: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: String,
}

/// The current end of the audit log: count from here.
pub fn offset(log: &Path) -> u64 {
    std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// Whether a user agent is one of `prefixes` ("csi-attacher" matches "csi-attacher/v4.12.0 ...").
pub fn agent_matches(agent: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| {
        agent
            .strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The requests logged after `from` by `user` with one of the user agent `prefixes`.
pub fn load_since(log: &Path, from: u64, user: &str, prefixes: &[&str]) -> anyhow::Result<ApiLoad> {
    let mut file = std::fs::File::open(log)?;
    // A rotated or truncated log: start over.
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(if from <= len { from } else { 0 }))?;
    let mut lines = Vec::new();
    for line in BufReader::new(file).lines() {
        lines.push(line?);
    }
    Ok(count(lines.iter().map(String::as_str), user, prefixes))
}

/// Whether a watch of `resource` by one of `prefixes` was logged after `from`.
pub fn watch_seen(log: &Path, from: u64, user: &str, prefixes: &[&str], resource: &str) -> bool {
    load_since(log, from, user, prefixes)
        .map(|load| {
            load.watched
                .iter()
                .any(|w| w.split(' ').next() == Some(resource))
        })
        .unwrap_or(false)
}

fn count<'a>(lines: impl Iterator<Item = &'a str>, user: &str, prefixes: &[&str]) -> ApiLoad {
    let mut load = ApiLoad::default();
    // A request is logged once per stage (ResponseStarted for watches, ResponseComplete).
    let mut seen = HashSet::new();
    for line in lines {
        let Ok(event) = serde_json::from_str::<Event>(line) else {
            continue;
        };
        if event.user.username != user || !agent_matches(&event.user_agent, prefixes) {
            continue;
        }
        if !seen.insert(event.audit_id) {
            continue;
        }
        let (resource, subresource) = event
            .object_ref
            .map(|o| (o.resource, o.subresource))
            .unwrap_or_default();
        let resource = if resource.is_empty() {
            // Non-resource URLs (/version, /healthz): the path.
            event
                .request_uri
                .split('?')
                .next()
                .unwrap_or_default()
                .to_string()
        } else if subresource.is_empty() {
            resource
        } else {
            format!("{resource}/{subresource}")
        };
        load.total += 1;
        *load
            .by_verb_resource
            .entry(format!("{} {resource}", event.verb))
            .or_default() += 1;
        if event.verb == "watch" {
            load.watches += 1;
            load.watched
                .insert(format!("{resource} {}", selectors(&event.request_uri)));
        }
        load.user_agents.insert(event.user_agent);
    }
    load
}

/// "labelSelector=...&fieldSelector=..." of a request URI (empty when none).
fn selectors(uri: &str) -> String {
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let mut parts: Vec<&str> = query
        .split('&')
        .filter(|kv| kv.starts_with("labelSelector=") || kv.starts_with("fieldSelector="))
        .collect();
    parts.sort_unstable();
    parts.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"kind":"Event","auditID":"a","stage":"ResponseStarted","verb":"watch","requestURI":"/apis/storage.k8s.io/v1/volumeattachments?allowWatchBookmarks=true&watch=true","user":{"username":"admin"},"userAgent":"csi-attacher/v4.12.0 (linux/amd64) kubernetes/$Format","objectRef":{"resource":"volumeattachments","apiGroup":"storage.k8s.io"}}
{"kind":"Event","auditID":"a","stage":"ResponseComplete","verb":"watch","requestURI":"/apis/storage.k8s.io/v1/volumeattachments?allowWatchBookmarks=true&watch=true","user":{"username":"admin"},"userAgent":"csi-attacher/v4.12.0 (linux/amd64) kubernetes/$Format","objectRef":{"resource":"volumeattachments","apiGroup":"storage.k8s.io"}}
{"kind":"Event","auditID":"b","stage":"ResponseComplete","verb":"patch","requestURI":"/apis/storage.k8s.io/v1/volumeattachments/x/status","user":{"username":"admin"},"userAgent":"csi-attacher/0.1.0","objectRef":{"resource":"volumeattachments","subresource":"status"}}
{"kind":"Event","auditID":"c","stage":"ResponseComplete","verb":"list","requestURI":"/api/v1/persistentvolumes?labelSelector=a%3Db&limit=500","user":{"username":"admin"},"userAgent":"kube-controller-manager/v1.36.3","objectRef":{"resource":"persistentvolumes"}}
{"kind":"Event","auditID":"d","stage":"ResponseComplete","verb":"get","requestURI":"/api","user":{"username":"system:serviceaccount:e2e:x"},"userAgent":"csi-attacher/0.1.0"}
{"kind":"Event","auditID":"e","stage":"ResponseComplete","verb":"get","requestURI":"/version?timeout=32s","user":{"username":"admin"},"userAgent":"csi-attacher-other/1"}
not json
"#;

    #[test]
    fn counts_each_request_once_by_agent_and_user() {
        let load = count(LOG.lines(), "admin", &["csi-attacher"]);
        assert_eq!(load.total, 2);
        assert_eq!(load.watches, 1);
        assert_eq!(
            load.by_verb_resource,
            BTreeMap::from([
                ("patch volumeattachments/status".to_string(), 1),
                ("watch volumeattachments".to_string(), 1)
            ])
        );
        assert_eq!(
            load.watched,
            BTreeSet::from(["volumeattachments ".to_string()])
        );
        assert_eq!(load.user_agents.len(), 2);
    }

    #[test]
    fn selectors_are_part_of_a_watch_key() {
        assert_eq!(
            selectors("/api/v1/pods?watch=true&labelSelector=a%3Db&fieldSelector=x"),
            "fieldSelector=x&labelSelector=a%3Db"
        );
        assert_eq!(selectors("/api/v1/pods"), "");
    }

    #[test]
    fn agents_match_by_program_name() {
        assert!(agent_matches("csi-sidecars/0.1.0", &["csi-sidecars"]));
        assert!(agent_matches("csi-attacher", &["csi-attacher"]));
        assert!(!agent_matches("csi-attacher-x/1", &["csi-attacher"]));
        assert!(!agent_matches(
            "kube-rs/5",
            &["csi-attacher", "csi-sidecars"]
        ));
    }
}
