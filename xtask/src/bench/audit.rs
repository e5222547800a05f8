//! API-server load from the kube-apiserver audit log (read by `csi-audit-log`), attributed by
//! user name and user agent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use csi_audit_log::{AuditEvent, AuditLog};
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

/// The current end of the audit log: count from here.
pub fn offset(log: &Path) -> u64 {
    AuditLog::at(log).offset()
}

/// The requests logged after `from` by `user` with one of the user agent `prefixes`.
pub fn load_since(log: &Path, from: u64, user: &str, prefixes: &[&str]) -> anyhow::Result<ApiLoad> {
    let requests = AuditLog::at(log).requests_since(from, |e| {
        e.username == user && csi_audit_log::agent_is(&e.user_agent, prefixes)
    })?;
    Ok(count(requests))
}

/// The requests logged between offsets `from` and `to` by `user` with one of the user agent
/// `prefixes` (a request counts where its last stage was logged).
pub fn load_between(
    log: &Path,
    from: u64,
    to: u64,
    user: &str,
    prefixes: &[&str],
) -> anyhow::Result<ApiLoad> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = std::fs::File::open(log)?;
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = vec![0; usize::try_from(to.saturating_sub(from))?];
    file.read_exact(&mut bytes)?;
    let events = String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(AuditEvent::parse)
        .filter(|e| e.username == user && csi_audit_log::agent_is(&e.user_agent, prefixes))
        .collect::<Vec<_>>();
    Ok(count(csi_audit_log::one_per_request(events)))
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

/// Adds up requests (one event each).
fn count(requests: impl IntoIterator<Item = AuditEvent>) -> ApiLoad {
    let mut load = ApiLoad::default();
    for event in requests {
        let resource = if event.resource.is_empty() {
            // Non-resource URLs (/version, /healthz): the path.
            event
                .request_uri
                .split('?')
                .next()
                .unwrap_or_default()
                .to_string()
        } else {
            event.resource_path()
        };
        load.total += 1;
        *load
            .by_verb_resource
            .entry(format!("{} {resource}", event.verb))
            .or_default() += 1;
        if event.verb == "watch" {
            load.watches += 1;
            load.watched
                .insert(format!("{resource} {}", event.selectors()));
        }
        load.user_agents.insert(event.user_agent);
    }
    load
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, LOG).unwrap();
        let load = load_since(&path, 0, "admin", &["csi-attacher"]).unwrap();
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
        assert!(watch_seen(
            &path,
            0,
            "admin",
            &["csi-attacher"],
            "volumeattachments"
        ));
        assert!(!watch_seen(
            &path,
            offset(&path),
            "admin",
            &["csi-attacher"],
            "volumeattachments"
        ));
    }
}
