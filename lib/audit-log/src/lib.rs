//! The kube-apiserver audit log (Metadata level, one JSON `audit.k8s.io/v1` Event a line), read
//! by the end-to-end tests (which requests a sidecar made, which were forbidden) and by the
//! bench (API-server load per contender). One parser for both: [`AuditEvent::parse`].
//!
//! A request is logged once per stage it reaches (a watch: `ResponseStarted`, then
//! `ResponseComplete` when it ends), so counting requests means counting audit IDs
//! ([`AuditLog::requests`]). The file is read afresh on every call; a last line the API server
//! is still writing is skipped.

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors reading the audit log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The audit log.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One line of the audit log: the fields the tests and the bench look at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditEvent {
    /// `auditID`: one per request; a long-running request (a watch) is logged once when its
    /// response starts and once when it ends.
    pub audit_id: String,
    /// `stage`: `ResponseStarted`, `ResponseComplete` or `Panic` (`RequestReceived` is omitted
    /// by our audit policy).
    pub stage: String,
    /// `verb`: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...
    pub verb: String,
    /// `user.username`.
    pub username: String,
    /// `userAgent`.
    pub user_agent: String,
    /// `objectRef.apiGroup` (empty for the core group).
    pub api_group: String,
    /// `objectRef.resource` (`volumeattachments`).
    pub resource: String,
    /// `objectRef.subresource` (`status`).
    pub subresource: String,
    /// `objectRef.namespace`.
    pub namespace: String,
    /// `objectRef.name`.
    pub name: String,
    /// `responseStatus.code`.
    pub code: Option<u16>,
    /// `responseStatus.message` (set on failures).
    pub message: String,
    /// `requestURI`.
    pub request_uri: String,
}

/// The JSON shape of an audit event, as far as [`AuditEvent`] reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(rename = "auditID", default)]
    audit_id: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    verb: String,
    #[serde(default)]
    user: RawUser,
    #[serde(default)]
    user_agent: String,
    #[serde(default)]
    object_ref: RawObjectRef,
    #[serde(default)]
    response_status: RawStatus,
    #[serde(rename = "requestURI", default)]
    request_uri: String,
}

#[derive(Default, Deserialize)]
struct RawUser {
    #[serde(default)]
    username: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawObjectRef {
    #[serde(default)]
    api_group: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
}

#[derive(Default, Deserialize)]
struct RawStatus {
    code: Option<u64>,
    #[serde(default)]
    message: String,
}

impl AuditEvent {
    /// Parses one line; `None` for anything that is not a JSON object (such as a last line
    /// the API server is still writing).
    pub fn parse(line: &str) -> Option<AuditEvent> {
        let raw: Raw = serde_json::from_str(line).ok()?;
        Some(AuditEvent {
            audit_id: raw.audit_id,
            stage: raw.stage,
            verb: raw.verb,
            username: raw.user.username,
            user_agent: raw.user_agent,
            api_group: raw.object_ref.api_group,
            resource: raw.object_ref.resource,
            subresource: raw.object_ref.subresource,
            namespace: raw.object_ref.namespace,
            name: raw.object_ref.name,
            code: raw.response_status.code.and_then(|c| u16::try_from(c).ok()),
            message: raw.response_status.message,
            request_uri: raw.request_uri,
        })
    }

    /// `resource` or `resource/subresource`.
    pub fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// The label and field selectors of the request, sorted
    /// (`fieldSelector=x&labelSelector=a%3Db`); empty when it has none. Two watches of one
    /// resource with the same selectors watch the same objects.
    pub fn selectors(&self) -> String {
        let query = self
            .request_uri
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default();
        let mut parts: Vec<&str> = query
            .split('&')
            .filter(|kv| kv.starts_with("labelSelector=") || kv.starts_with("fieldSelector="))
            .collect();
        parts.sort_unstable();
        parts.join("&")
    }
}

impl std::fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} by {} ({}) -> {}",
            self.verb,
            self.request_uri,
            self.username,
            self.user_agent,
            self.code.map_or_else(|| "?".to_string(), |c| c.to_string())
        )?;
        if !self.message.is_empty() {
            write!(f, " {}", self.message)?;
        }
        Ok(())
    }
}

/// Whether a user agent is one of the programs `prefixes` names: `csi-attacher` matches
/// `csi-attacher/v4.12.0 (linux/amd64) kubernetes/$Format` and `csi-attacher`, not
/// `csi-attacher-x/1`.
pub fn agent_is(agent: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| {
        agent
            .strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The API server's audit log, read afresh on every call.
#[derive(Clone, Debug)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// The audit log at `path`.
    pub fn at(path: impl Into<PathBuf>) -> AuditLog {
        AuditLog { path: path.into() }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current end of the log (0 if it does not exist yet): pass it to
    /// [`AuditLog::events_since`] to read what is logged from now on.
    pub fn offset(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Every event logged so far, oldest first.
    pub fn events(&self) -> Result<Vec<AuditEvent>> {
        self.events_since(0)
    }

    /// The events logged after `offset` (from [`AuditLog::offset`]), oldest first. A log
    /// shorter than `offset` was rotated or truncated: it is read from its start.
    pub fn events_since(&self, offset: u64) -> Result<Vec<AuditEvent>> {
        let read = |source| Error::Read {
            path: self.path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&self.path).map_err(read)?;
        let len = file.metadata().map_err(read)?.len();
        file.seek(SeekFrom::Start(if offset <= len { offset } else { 0 }))
            .map_err(read)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(read)?;
        Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(AuditEvent::parse)
            .collect())
    }

    /// One event per request (audit ID) that `filter` accepts, the last stage logged so far,
    /// in the order the requests were first logged.
    pub fn requests(&self, filter: impl Fn(&AuditEvent) -> bool) -> Result<Vec<AuditEvent>> {
        self.requests_since(0, filter)
    }

    /// [`AuditLog::requests`] among the events logged after `offset`.
    pub fn requests_since(
        &self,
        offset: u64,
        filter: impl Fn(&AuditEvent) -> bool,
    ) -> Result<Vec<AuditEvent>> {
        Ok(one_per_request(
            self.events_since(offset)?.into_iter().filter(|e| filter(e)),
        ))
    }

    /// The watch requests whose user agent starts with `user_agent_prefix` (and, with
    /// `username`, made by that user), counted per resource (`resource` or
    /// `resource/subresource`).
    pub fn watches_per_resource(
        &self,
        user_agent_prefix: &str,
        username: Option<&str>,
    ) -> Result<BTreeMap<String, usize>> {
        let watches = self.requests(|e| {
            e.verb == "watch"
                && e.user_agent.starts_with(user_agent_prefix)
                && username.is_none_or(|u| e.username == u)
        })?;
        let mut counts = BTreeMap::new();
        for watch in watches {
            *counts.entry(watch.resource_path()).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// The requests of `username` that were answered 403 Forbidden.
    pub fn forbidden(&self, username: &str) -> Result<Vec<AuditEvent>> {
        self.requests(|e| e.username == username && e.code == Some(403))
    }
}

/// One event per audit ID, the last one, in the order the IDs first appear.
pub fn one_per_request(events: impl IntoIterator<Item = AuditEvent>) -> Vec<AuditEvent> {
    let mut order: Vec<String> = Vec::new();
    let mut latest: BTreeMap<String, AuditEvent> = BTreeMap::new();
    for event in events {
        if !latest.contains_key(&event.audit_id) {
            order.push(event.audit_id.clone());
        }
        latest.insert(event.audit_id.clone(), event);
    }
    order
        .into_iter()
        .filter_map(|id| latest.remove(&id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit_line(id: &str, stage: &str, verb: &str, user: &str, agent: &str, code: u16) -> String {
        serde_json::json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": id,
            "stage": stage,
            "requestURI": "/apis/storage.k8s.io/v1/volumeattachments?watch=true",
            "verb": verb,
            "user": {"username": user, "groups": ["system:authenticated"]},
            "userAgent": agent,
            "objectRef": {"resource": "volumeattachments", "apiGroup": "storage.k8s.io", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": code},
        })
        .to_string()
    }

    #[test]
    fn audit_events_parse_and_count_per_request() {
        let user = "system:serviceaccount:ns:csi-sidecars";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let lines = [
            // One watch, logged when its response starts and when it ends.
            audit_line(
                "a",
                "ResponseStarted",
                "watch",
                user,
                "csi-sidecars/0.1.0",
                200,
            ),
            audit_line(
                "a",
                "ResponseComplete",
                "watch",
                user,
                "csi-sidecars/0.1.0",
                200,
            ),
            audit_line(
                "b",
                "ResponseStarted",
                "watch",
                user,
                "csi-attacher/0.1.0",
                200,
            ),
            audit_line(
                "c",
                "ResponseStarted",
                "watch",
                "admin",
                "csi-sidecars/0.1.0",
                200,
            ),
            audit_line(
                "d",
                "ResponseComplete",
                "patch",
                user,
                "csi-attacher/0.1.0",
                403,
            ),
            // A line still being written.
            "{\"kind\":\"Event\",\"auditID\":\"e\"".to_string(),
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let log = AuditLog::at(&path);

        let events = log.events().unwrap();
        assert_eq!(events.len(), 5);
        assert_eq!(events[0].api_group, "storage.k8s.io");
        assert_eq!(events[0].code, Some(200));
        assert_eq!(
            log.watches_per_resource("csi-sidecars/", Some(user))
                .unwrap(),
            BTreeMap::from([("volumeattachments".to_string(), 1)])
        );
        assert_eq!(
            log.watches_per_resource("", Some(user)).unwrap(),
            BTreeMap::from([("volumeattachments".to_string(), 2)])
        );
        assert_eq!(
            log.watches_per_resource("csi-sidecars/", None).unwrap(),
            BTreeMap::from([("volumeattachments".to_string(), 2)])
        );
        let forbidden = log.forbidden(user).unwrap();
        assert_eq!(forbidden.len(), 1);
        assert_eq!(forbidden[0].verb, "patch");
        assert!(
            forbidden[0].to_string().contains("-> 403"),
            "{}",
            forbidden[0]
        );
    }

    #[test]
    fn reading_from_an_offset_sees_only_what_came_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::at(&path);
        assert_eq!(log.offset(), 0);
        assert!(matches!(log.events(), Err(Error::Read { .. })));
        let first = audit_line("a", "ResponseComplete", "get", "administrator", "x", 200) + "\n";
        std::fs::write(&path, &first).unwrap();
        let offset = log.offset();
        let second = audit_line("b", "ResponseComplete", "get", "admin", "x", 200) + "\n";
        std::fs::write(&path, first.clone() + &second).unwrap();
        let ids = |events: Vec<AuditEvent>| -> Vec<String> {
            events.into_iter().map(|e| e.audit_id).collect()
        };
        assert_eq!(ids(log.events_since(offset).unwrap()), ["b"]);
        // Truncated (rotated) since, now shorter than the offset: read from the start.
        std::fs::write(&path, &second).unwrap();
        assert_eq!(ids(log.events_since(offset).unwrap()), ["b"]);
        assert_eq!(ids(log.requests_since(0, |_| true).unwrap()), ["b"]);
    }

    #[test]
    fn selectors_are_sorted_and_nothing_else() {
        let event = |uri: &str| AuditEvent {
            request_uri: uri.to_string(),
            ..AuditEvent::default()
        };
        assert_eq!(
            event("/api/v1/pods?watch=true&labelSelector=a%3Db&fieldSelector=x").selectors(),
            "fieldSelector=x&labelSelector=a%3Db"
        );
        assert_eq!(event("/api/v1/pods").selectors(), "");
    }

    #[test]
    fn agents_match_by_program_name() {
        assert!(agent_is("csi-sidecars/0.1.0", &["csi-sidecars"]));
        assert!(agent_is("csi-attacher", &["csi-attacher"]));
        assert!(!agent_is("csi-attacher-x/1", &["csi-attacher"]));
        assert!(!agent_is("kube-rs/5", &["csi-attacher", "csi-sidecars"]));
    }
}
